"""ONNX Runtime sessions: the one place that decides threads, spinning and providers.

Every session of this package is a CPU session with sequential execution and one inter-op
thread (a model is one chain of ops). What differs between callers is two knobs:

- ``threads``: intra-op threads (``None``: ONNX Runtime's default, one per core);
- ``spinning``: whether idle intra-op threads spin-wait for work. The scoring server's sessions
  spin (ONNX Runtime's own default: it saves a wake-up per request), and so do the profiles that
  size serving; batch scoring and parity checks feed large batches, where spinning saves nothing
  and, when mapped tasks share a worker's cores, burns the CPU the others need.

onnxruntime (and fsspec, for remote files) is imported inside the functions, and nothing from
this package, so the registered pyfunc loads this file on its own from the version's artifacts.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["PROVIDERS", "load_session", "session_options"]

PROVIDERS = ("CPUExecutionProvider",)


def session_options(threads: int | None = None, *, spinning: bool = False) -> Any:
    """The ``SessionOptions`` of every session (see the module docstring for the knobs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_session(
    onnx: bytes | str | os.PathLike[str], threads: int | None = None, *, spinning: bool = False
) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session with sequential execution.

    :param onnx: the serialized model, or a local path / fsspec URI of a ``.onnx`` file.
    :param threads: intra-op threads (``None``: ONNX Runtime's default, one per core).
    :param spinning: let idle intra-op threads spin-wait for work (off by default: see the
        module docstring).
    """
    import onnxruntime as ort

    source: bytes | str = onnx if isinstance(onnx, bytes) else os.fspath(onnx)
    if isinstance(source, str) and "://" in source and not source.startswith("file://"):
        import fsspec

        with fsspec.open(source, "rb") as fh:
            source = fh.read()
    elif isinstance(source, str):
        source = source.removeprefix("file://")
    return ort.InferenceSession(
        source,
        sess_options=session_options(threads, spinning=spinning),
        providers=list(PROVIDERS),
    )
