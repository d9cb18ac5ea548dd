#!/bin/sh
# Creates the buckets the stack uses; run by the minio-init service (minio/mc image) once MinIO
# is healthy. Idempotent: re-running leaves existing buckets and their objects alone.
set -eu
mc alias set local "http://minio:9000" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
# mlflow: MLflow's artifact store (--artifacts-destination s3://mlflow/).
# mlops: training data and run folders when a model config uses s3:// URIs.
for bucket in mlflow mlops; do
    mc mb --ignore-existing "local/$bucket"
done
mc ls local
