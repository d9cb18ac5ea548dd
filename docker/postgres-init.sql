-- Runs once, when the Postgres volume is first created: the image's POSTGRES_* variables made
-- the Airflow database and user; MLflow gets a database and user of its own.
CREATE USER mlflow WITH PASSWORD 'mlflow';
CREATE DATABASE mlflow OWNER mlflow;
