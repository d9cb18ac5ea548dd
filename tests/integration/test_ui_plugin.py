"""The "Models" view with real data: the ``champion`` fixture's model in a real MLflow server,
the plugin mounted by a real ``airflow api-server``, and the page loaded in headless Chromium.

A second model, ``ui_churn``, is a registry copy of the champion carrying what later stages write
(profile, deployment, drift with a logged report), so ``fixture_churn`` itself is not changed
(a ``mlops.deployed`` tag would make it live for the rollout tests).

``MLOPS_UPDATE_SCREENSHOTS=1`` copies the browser's screenshot to docs/img/models-view.png.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from airflow_mlops.devstack.stack import airflow_env, free_port, stop_group, wait_healthy

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "models-view.png"
COPY = "ui_churn"


@pytest.fixture(scope="module")
def ui_model(champion, tmp_path_factory) -> dict:
    """``ui_churn`` v1 (copy of the champion) as the rollout and drift monitor leave it."""
    import mlflow

    tracking = champion["tracking"]
    client = tracking.client()
    source = champion["registered"]["version"]
    copied = client.copy_model_version(f"models:/fixture_churn/{source}", COPY)
    version = str(copied.version)
    report = tmp_path_factory.mktemp("drift") / "report.html"
    report.write_text("<html><body>drift report</body></html>")
    with tracking.activate():
        experiment = mlflow.set_experiment(f"{COPY}-monitoring")
        with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
            mlflow.log_artifact(str(report), artifact_path="drift")
    tags = {
        "mlops.profile.p50_ms": "0.41",
        "mlops.profile.p99_ms": "1.7",
        "mlops.profile.max_rows_per_s": "52000",
        "mlops.profile.slo_met": "true",
        "mlops.deployed.local": "http://127.0.0.1:8080|90",
        "mlops.drift.last_status": "drift",
        "mlops.drift.consecutive": "2",
        "mlops.drift.last_window": "2026-01-02",
        "mlops.drift.last_run_id": run.info.run_id,
    }
    for key, value in tags.items():
        client.set_model_version_tag(COPY, version, key, value)
    client.set_registered_model_alias(COPY, "champion", version)
    return {
        "version": version,
        "drift_run": run.info.run_id,
        "drift_experiment": experiment.experiment_id,
        "fixture_version": str(source),
        "roc_auc": float(copied.tags["mlops.metric.roc_auc"]),
    }


def test_json_lists_the_champion_and_the_later_stages(champion, ui_model, mlflow_server) -> None:
    from airflow_mlops.ui.app import create_app

    client = TestClient(create_app(lambda: champion["tracking"]))
    body = client.get("/api/models").json()
    models = {m["name"]: m for m in body["models"]}
    fixture = models["fixture_churn"]
    assert fixture["aliases"]["champion"] == ui_model["fixture_version"]
    champ = next(v for v in fixture["versions"] if v["version"] == ui_model["fixture_version"])
    assert "champion" in champ["aliases"]
    assert set(champ["metrics"]) >= {"roc_auc", "accuracy"}
    assert float(champ["parity"]["rows"]) > 0
    assert champ["version_url"] == (
        f"{mlflow_server}/#/models/fixture_churn/versions/{ui_model['fixture_version']}"
    )

    (copy,) = models[COPY]["versions"]
    assert copy["metrics"]["roc_auc"] == ui_model["roc_auc"]
    assert copy["profile"]["p99_ms"] == "1.7"
    assert copy["deployments"] == [
        {"target": "local", "endpoint": "http://127.0.0.1:8080", "weight": 90}
    ]
    run_url = f"{mlflow_server}/#/experiments/{ui_model['drift_experiment']}/runs/"
    run_url += ui_model["drift_run"]
    assert copy["drift"]["status"] == "drift" and copy["drift"]["consecutive"] == 2
    assert copy["drift"]["report_url"] == f"{run_url}/artifacts/drift/report.html"
    # The link points at an artifact that exists in that run.
    listed = champion["tracking"].client().list_artifacts(ui_model["drift_run"], "drift")
    assert [a.path for a in listed] == ["drift/report.html"]

    one = client.get("/api/models", params={"model": COPY}).json()
    assert [m["name"] for m in one["models"]] == [COPY]
    assert client.get("/api/models", params={"model": "nope"}).json()["models"] == []


def test_html_page_has_the_model_alias_and_metric(champion, ui_model) -> None:
    from airflow_mlops.ui.app import create_app

    page = TestClient(create_app(lambda: champion["tracking"])).get("/")
    assert page.status_code == 200
    assert "fixture_churn" in page.text and COPY in page.text
    assert '<span class="badge champion">champion</span>' in page.text
    assert f"<b>roc_auc</b> {ui_model['roc_auc']:.4g}" in page.text


@pytest.fixture(scope="module")
def api_server(airflow_db, mlops_home, mlflow_server, ui_model, tmp_path_factory):
    """``airflow api-server`` on 127.0.0.1 with the repo's plugins folder (open access)."""
    port = free_port()
    env = {
        **airflow_env(mlops_home, mlflow_server),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    env.pop("MLFLOW_TRACKING_URI")  # the plugin must find MLflow through the connection
    log_path = tmp_path_factory.mktemp("api-server") / "api-server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed at teardown
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.Popen(
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--apps", "core"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/mlops/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_healthy(proc, ready, 180, f"airflow api-server on {url} (/mlops/health)", log_path)
        yield url
    finally:
        stop_group(proc, grace=30)
        log.close()


def test_airflow_mounts_the_app_and_lists_the_view(api_server) -> None:
    with urllib.request.urlopen(f"{api_server}/api/v2/plugins", timeout=30) as r:
        plugins = {p["name"]: p for p in json.loads(r.read())["plugins"]}
    ui = plugins["mlops_ui"]
    assert ui["fastapi_apps"][0]["url_prefix"] == "/mlops"
    (view,) = ui["external_views"]
    assert (view["name"], view["href"], view["url_route"]) == ("Models", "/mlops/", "mlops_models")
    # The package's entry points register both plugins; the repo's plugins folder, which this
    # api-server also loads, must not add a second copy (Airflow reports one as an import error).
    assert "mlops_events" in plugins and "airflow-mlops" in ui["source"]
    with urllib.request.urlopen(f"{api_server}/api/v2/plugins/importErrors", timeout=30) as r:
        assert json.loads(r.read())["import_errors"] == []
    with urllib.request.urlopen(f"{api_server}/mlops/api/models", timeout=30) as r:
        names = [m["name"] for m in json.loads(r.read())["models"]]
    assert {"fixture_churn", COPY} <= set(names)


def test_the_view_goes_through_airflows_access_check(api_server) -> None:
    # The all-admins middleware gives a token to requests that bring none; a request that
    # brings a bad one is refused - by Airflow's own API and, the same way, by the view.
    bad = {"Authorization": "Bearer not-a-token"}
    for path in ("/api/v2/plugins", "/mlops/", "/mlops/api/models"):
        request = urllib.request.Request(f"{api_server}{path}", headers=bad)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 403, path
    with urllib.request.urlopen(f"{api_server}/mlops/health", timeout=30) as r:
        assert r.status == 200


def chromium(url: str, profile: Path, *extra: str) -> str:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
        *extra,
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} absent: apt-get install -y chromium chromium-driver",
)
def test_page_in_headless_chromium(api_server, ui_model, tmp_path) -> None:
    url = f"{api_server}/mlops/"
    dom = chromium(url, tmp_path / "profile", "--dump-dom")
    assert "fixture_churn" in dom and COPY in dom
    assert f">v{ui_model['version']}</a>" in dom
    assert '<span class="badge champion">champion</span>' in dom
    assert f"<b>roc_auc</b> {ui_model['roc_auc']:.4g}" in dom
    assert "2 drifting window(s) in a row" in dom

    shot = tmp_path / "models-view.png"
    chromium(url, tmp_path / "profile", f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    # The docs image changes only on request, so ordinary runs leave the checkout clean.
    if os.environ.get("MLOPS_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
