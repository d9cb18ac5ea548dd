"""Airflow sensors of airflow-mlops."""
