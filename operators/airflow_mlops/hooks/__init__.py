"""Airflow hooks of airflow-mlops."""
