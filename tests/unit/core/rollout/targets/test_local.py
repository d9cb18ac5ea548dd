"""The local target starts its server with a generated admin token (a 0600 file, never argv) and
sends it on every admin call; no real server here (the integration test runs one)."""

from __future__ import annotations

import json
import stat
import urllib.request
from pathlib import Path

import pytest

from airflow_mlops.core.registry.tracking import TrackingConfig
from airflow_mlops.core.rollout.policy import LocalSpec
from airflow_mlops.core.rollout.targets import local


class _FakeProc:
    pid = 4242
    returncode = None

    def poll(self):
        return None


class _Answer:
    status = 200

    def __init__(self, body: bytes) -> None:
        self._body = body

    def read(self) -> bytes:
        return self._body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture()
def started(tmp_path, monkeypatch):
    launched: dict = {}
    sent: list[urllib.request.Request] = []

    def popen(argv, **kwargs):
        launched["argv"] = argv
        launched["env"] = kwargs.get("env")
        return _FakeProc()

    def urlopen(request, timeout=None):
        sent.append(request)
        body = {"model": "m", "routes": {"1": 100.0}, "shadow": None, "loaded": ["1"]}
        return _Answer(json.dumps(body).encode())

    monkeypatch.setattr(local.subprocess, "Popen", popen)
    monkeypatch.setattr(local.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(local.LocalTarget, "model_folder", lambda self, v: tmp_path / f"v{v}")
    target = local.LocalTarget(
        LocalSpec(work_dir=str(tmp_path / "work"), port=18080),
        TrackingConfig(tracking_uri="http://127.0.0.1:9"),
        "m",
    )
    target.start("1")
    return target, launched, sent


def test_the_server_gets_a_generated_token_in_a_private_file_not_on_its_command_line(started):
    target, launched, _ = started
    config = json.loads((target.work_dir / "serving.json").read_text())
    token_file = Path(config["admin"]["token_file"])
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert not any(token in str(arg) for arg in launched["argv"])
    assert token not in (target.work_dir / "serving.json").read_text()
    assert config["admin"]["model_root"] == str(target.work_dir / "models")


def test_admin_calls_carry_the_bearer_token(started):
    target, _, sent = started
    token = (
        Path(json.loads((target.work_dir / "serving.json").read_text())["admin"]["token_file"])
        .read_text()
        .strip()
    )
    target.routes()
    target.set_weights({"1": 100}, None)
    admin = [r for r in sent if "/admin/" in r.full_url]
    assert len(admin) == 2
    assert all(r.get_header("Authorization") == f"Bearer {token}" for r in admin)
    # A later task (another process) reconnecting to the recorded server finds the token too.
    again = local.LocalTarget(LocalSpec(work_dir=str(target.work_dir)), target.tracking, "m")
    again._url = target.url
    again.routes()
    assert sent[-1].get_header("Authorization") == f"Bearer {token}"
