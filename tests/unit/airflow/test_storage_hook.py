"""How an ``aws`` connection's fields become s3fs options."""

from __future__ import annotations

import json

import fsspec.config

from airflow_mlops.hooks.storage import configure_object_storage, s3_options


def test_connection_fields_map_to_s3fs_options() -> None:
    options = s3_options(
        "AKIA", "s3cret", {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1",
                           "aws_session_token": "tok"},
    )  # fmt: skip
    assert options == {
        "key": "AKIA",
        "secret": "s3cret",
        "token": "tok",
        "client_kwargs": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"},
    }
    nested = s3_options(None, None, {"service_config": {"s3": {"endpoint_url": "http://s3:9000"}}})
    assert nested == {"client_kwargs": {"endpoint_url": "http://s3:9000"}}
    assert s3_options(None, None, {}) == {}


def test_a_missing_connection_changes_nothing(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_STORAGE", raising=False)
    before = json.dumps(fsspec.config.conf, sort_keys=True, default=str)
    assert configure_object_storage("no_such_storage") is False
    assert configure_object_storage(None) is False
    assert json.dumps(fsspec.config.conf, sort_keys=True, default=str) == before
