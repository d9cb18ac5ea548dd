"""MLflow: tracking settings, registered versions with lineage, aliases."""
