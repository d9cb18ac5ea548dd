"""The peak-memory probe of a profile: run as ``python -m airflow_mlops.core.profiling.probe``.

``profile.py`` starts it in a fresh interpreter so that the figure is a scoring process's own
(numpy, ONNX Runtime, the session and one batch), not the test runner's or the Airflow worker's
heap. It prints ``<baseline bytes> <peak bytes>``: the high-water mark before the model is
loaded, and after three runs of the batch.
"""

from __future__ import annotations

import sys

import numpy as np


def high_water() -> int:
    """This process's peak resident memory in bytes (``VmHWM``, else ``ru_maxrss``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def probe(model: str, feed_path: str, threads: int) -> tuple[int, int]:
    """``(baseline, peak)`` bytes: load ``model``, score the ``.npz`` feed three times.

    Strings arrive as fixed-width unicode (``np.savez`` needs pickle for object arrays) and go
    back to objects, as the feed contract has them.
    """
    # onnxruntime first, so the baseline holds the runtime as the original script's did.
    import onnxruntime  # noqa: F401

    from airflow_mlops.core.model.session import load_session

    baseline = high_water()
    with np.load(feed_path) as data:
        feed = {k: (v.astype(object) if v.dtype.kind == "U" else v) for k, v in data.items()}
    # Spinning threads, as the scoring server runs its sessions: the figure sizes serving.
    session = load_session(model, threads, spinning=True)
    for _ in range(3):
        session.run(None, feed)
    return baseline, high_water()


def main(argv: list[str] | None = None) -> None:
    """``probe.py <model.onnx> <feed.npz> <threads>``: prints ``baseline peak``."""
    model, feed_path, threads = argv if argv is not None else sys.argv[1:]
    baseline, peak = probe(model, feed_path, int(threads))
    print(baseline, peak)


if __name__ == "__main__":
    main()
