"""The four lifecycle DAGs as factories over a model config, and the Assets between them."""
