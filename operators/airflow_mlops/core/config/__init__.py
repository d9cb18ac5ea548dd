"""The model config: one YAML file (or these dataclasses) drives every lifecycle step."""
