"""The model config: one YAML file (or these dataclasses) drives every lifecycle step.

``model`` holds :class:`~airflow_mlops.core.config.model.ModelConfig` and its loaders, one
module per section holds that section's dataclass, ``parse`` the helpers every section's
parser uses. Nothing is imported here: import the module you need.
"""
