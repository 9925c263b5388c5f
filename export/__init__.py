"""edgefer export: Keras -> ONNX (float, INT8) and TFLite (float32, float16, INT8).

One table of formats (:mod:`.formats`) drives everything; each row names its file, what it
needs, how it is verified, and the function that writes it. Every row goes through the same
wrapper (:func:`.runner.export_format`): timing, a non-empty-file check, edgefer metadata,
verification against the float Keras model on real images, and a one-line summary.

Modules: ``source`` (load a .keras file or run folder), ``calibration`` (real images, sampled
by class), ``onnx_float`` / ``onnx_int8`` / ``tflite`` (the converters), ``artifact_metadata``
(cards and ONNX ``metadata_props``), ``verify``, ``runner``, ``cli``. This package imports
nothing at start-up: ``edgefer --help`` registers the export command through ``cli`` without
loading numpy, OpenCV or TensorFlow. Use ``from edgefer.export.runner import export_model``.
"""
