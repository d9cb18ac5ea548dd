"""The lifecycle as plain Python: no Airflow import anywhere below this package."""
