"""Drift monitoring: policy, per-column statistics, the check, the Evidently report, the monitor."""
