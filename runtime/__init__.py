"""edgefer runtime: face detection + emotion classification without TensorFlow."""
