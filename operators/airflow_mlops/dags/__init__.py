"""The four lifecycle DAGs as factories over a model config, and the Assets between them.

One module per DAG: ``training``, ``batch_scoring``, ``drift_monitor``, ``rollout``; the
repo's ``dags/*.py`` files call them with a config path.
"""
