"""Benchmarks: rosberta-onnx against the runtimes a user would otherwise pick, on the same inputs.

Run ``python -m benchmarks DIR [--reference MODEL] [--quick]`` (or ``rosberta-onnx bench ...``) from a
source checkout. Peers come from the ``bench`` extra and are never runtime dependencies; a peer that is
not installed is reported as skipped, with the reason, not faked.
"""
