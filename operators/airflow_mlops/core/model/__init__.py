"""The model artifact contract: ONNX feeds, model folders, ``models:/`` references, sessions."""
