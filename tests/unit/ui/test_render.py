"""The HTML page: what it shows, and that MLflow-controlled text cannot inject markup."""

from __future__ import annotations

from airflow_mlops.ui import overview, render

EVIL = '<script>alert("x")</script>'


def one_model(name: str = "churn", **version_fields: object) -> overview.Overview:
    fields: dict = {
        "version": "3",
        "aliases": ("champion",),
        "created": 1_700_000_000_000,
        "run_id": "r1",
        "version_url": "http://mlflow/#/models/churn/versions/3",
        "run_url": "http://mlflow/#/runs/r1",
        "metrics": {"roc_auc": 0.912345},
        "deployments": (overview.Deployment("local", "http://127.0.0.1:8080", 90),),
        "drift": overview.Drift(
            "drift", 2, "2026-01-02", "d1", "http://mlflow/#/e/1/runs/d1", "http://mlflow/r.html"
        ),
    }
    fields.update(version_fields)
    model = overview.ModelView(
        name=name,
        description="",
        model_url="http://mlflow/#/models/churn",
        aliases={"champion": "3"},
        versions=(overview.VersionView(**fields),),
        hidden_versions=4,
    )
    return overview.Overview("http://mlflow:5000", "http://mlflow", (model,))


def test_page_shows_version_alias_metric_deployment_and_drift_links() -> None:
    html = render.page(one_model())
    assert ">v3</a>" in html
    assert '<span class="badge champion">champion</span>' in html
    assert "<b>roc_auc</b> 0.9123" in html
    assert "<b>local</b> 90%" in html
    assert 'href="http://mlflow/r.html"' in html and ">report</a>" in html
    assert "2 drifting window(s) in a row" in html
    assert "4 older version(s) not shown" in html
    assert 'target="_blank" rel="noopener"' in html


def test_mlflow_text_is_escaped() -> None:
    html = render.page(one_model(name=EVIL, aliases=(EVIL,), metrics={EVIL: EVIL}, evaluation=EVIL))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_link_urls_are_escaped() -> None:
    html = render.page(one_model(version_url='http://x/"onmouseover="alert(1)'))
    assert '"onmouseover="' not in html
    assert "&quot;onmouseover=&quot;" in html


def test_error_page_and_empty_registry() -> None:
    assert "MLflow down &amp; out" in render.page(None, error="MLflow down & out")
    empty = overview.Overview("http://mlflow:5000", None, ())
    assert "No registered models yet" in render.page(empty)


def test_numbers_from_tags_are_shortened_words_kept() -> None:
    assert render._fmt("1.293171573157892e-07") == "1.293e-07"
    assert render._fmt("4000") == "4000"
    assert render._fmt("v1.2.3") == "v1.2.3"
