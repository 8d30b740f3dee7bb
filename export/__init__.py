"""Export: torch → ONNX and, later, ONNX → TensorRT engines. May import train and runtime."""
