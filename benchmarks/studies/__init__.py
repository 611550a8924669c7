"""Investigations run one at a time (``python -m benchmarks.studies.NAME``): GEMM ceilings, int8 recipes, NNCF
accuracy control, the int8 error budget, thread spinning, server load, Ray throughput."""
