"""edgefer training (Keras 3 on TensorFlow). Imports TensorFlow lazily."""
