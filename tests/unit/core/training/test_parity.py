"""The parity result's message (the figures against native scoring are in test_convert.py)."""

from __future__ import annotations

import dataclasses

from airflow_mlops.core.training.parity import ParityResult


def test_parity_message_formats():
    ok = ParityResult(2000, 2.1e-07, 3e-08, 0, 1e-4, 0, True)
    assert ok.message == (
        "parity ok: max |Δp| 2.1e-07 (allowed 1e-04), 0 label disagreements of 2000 rows "
        "(allowed 0)"
    )
    bad = dataclasses.replace(ok, max_abs_diff=3.5e-2, label_disagreements=3, passed=False)
    assert bad.message == (
        "parity failed: max |Δp| 3.5e-02 exceeds allowed 1e-04; 3 label disagreements of 2000 "
        "rows exceed allowed 0 (mean |Δp| 3e-08)"
    )
