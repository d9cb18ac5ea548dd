"""The embedded stack behind ``make demo`` and ``make airflow`` (never imported by tasks)."""
