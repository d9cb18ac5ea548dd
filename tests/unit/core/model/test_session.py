"""The one ONNX Runtime session builder: threads, spinning, providers, where the model is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airflow_mlops.core.model.feed import check_row_feed, split_inputs
from airflow_mlops.core.model.session import PROVIDERS, load_session, session_options


def test_options_carry_threads_and_spinning():
    quiet = session_options(2)
    assert quiet.intra_op_num_threads == 2 and quiet.inter_op_num_threads == 1
    assert quiet.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning = session_options(None, spinning=True)
    assert spinning.intra_op_num_threads == 0  # ONNX Runtime's default: one per core
    with pytest.raises(RuntimeError, match="does not have configuration"):
        spinning.get_session_config_entry("session.intra_op.allow_spinning")


def test_sessions_load_from_bytes_paths_and_file_uris(onnx_model):
    data = Path(onnx_model).read_bytes()
    for source in (data, onnx_model, Path(onnx_model), f"file://{onnx_model}"):
        session = load_session(source, threads=1)
        assert session.get_providers() == list(PROVIDERS)
        numeric, categorical = split_inputs(session.get_inputs())
        _, proba = session.run(None, check_row_feed(numeric, categorical, rows=2))
        assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_profiling_memory_probe_is_a_module(onnx_model, tmp_path):
    from airflow_mlops.core.profiling.profile import _measure_rss

    session = load_session(onnx_model, threads=1)
    numeric, categorical = split_inputs(session.get_inputs())
    peak, baseline = _measure_rss(onnx_model, check_row_feed(numeric, categorical, 64), 1)
    assert peak >= baseline > 0
