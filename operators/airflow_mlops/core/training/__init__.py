"""Training: the pipeline, conversion to ONNX with parity, evaluation gates, importance."""
