"""Batch scoring with ONNX Runtime: one partition, its I/O, runs of partitions, pods."""
