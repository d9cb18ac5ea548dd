"""The drift operator and sensor: constructors only assign, templating, sensor defaults."""

from __future__ import annotations

from airflow_mlops.links.drift import report_url
from airflow_mlops.operators.drift import EVENT_KEYS, DriftCheckOperator
from airflow_mlops.sensors.drift import DriftSensor


def test_operator_templates_ref_and_day_and_assigns_only():
    op = DriftCheckOperator(task_id="check", config="/nowhere.yaml", ref="{{ params.ref }}")
    assert {"config", "work_dir", "ref", "day"} <= set(op.template_fields)
    assert op.ref == "{{ params.ref }}" and op.day is None
    assert {"model", "version", "drifted_columns", "drift_share", "report_uri", "window"} <= set(
        EVENT_KEYS
    )


def test_sensor_reschedules_by_default_so_no_slot_is_held():
    sensor = DriftSensor(task_id="wait", config="/nowhere.yaml")
    assert sensor.mode == "reschedule"
    assert (
        sensor.poke_interval.total_seconds() == 1800
        if hasattr(sensor.poke_interval, "total_seconds")
        else sensor.poke_interval == 1800
    )


def test_report_url_points_at_the_mlflow_artifact_or_is_empty():
    assert report_url("http://127.0.0.1:5000", "abc") == (
        "http://127.0.0.1:5000/get-artifact?path=drift/report.html&run_uuid=abc"
    )
    assert report_url(None, "abc") == ""
