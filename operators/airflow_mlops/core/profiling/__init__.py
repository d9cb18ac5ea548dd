"""Profiling a model version: measurements, resource recommendations, the SLO verdict."""
