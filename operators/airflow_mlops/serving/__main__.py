"""``python -m airflow_mlops.serving``: see :mod:`airflow_mlops.serving.main`."""

from __future__ import annotations

import sys

from airflow_mlops.serving.main import serve

if __name__ == "__main__":
    sys.exit(serve())
