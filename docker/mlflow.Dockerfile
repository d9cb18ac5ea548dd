# MLflow tracking server for the compose stack: the official image, pinned to the version in
# requirements.txt, plus the two drivers it lacks (Postgres backend store, S3 artifact store).
FROM ghcr.io/mlflow/mlflow:v3.17.2

RUN pip install --no-cache-dir psycopg2-binary==2.9.13 boto3==1.43.117 \
    && python -c "import psycopg2, boto3, mlflow; assert mlflow.__version__ == '3.17.2'"

# The official image has no non-root user; this one owns nothing it needs to write (the backend
# is Postgres, artifacts go to MinIO).
RUN useradd --create-home --uid 10001 mlflow
USER mlflow
EXPOSE 5000
