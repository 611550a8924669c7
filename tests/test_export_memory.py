"""The export's memory check: refused up front, with the figures and the fix, where the machine cannot hold it."""

from __future__ import annotations

import pytest

from rosberta_export import memory
from rosberta_export.memory import NotEnoughMemory, check_memory, needed_bytes, weight_bytes


def test_the_need_grows_with_the_checkpoints_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    (tmp_path / "config.json").write_text("{}")
    assert weight_bytes(tmp_path) == 1000
    assert needed_bytes(2 * 10**9) - needed_bytes(10**9) == pytest.approx(memory.PEAK_PER_WEIGHT_BYTE * 10**9)


def test_too_little_memory_is_refused_with_the_figures_and_the_fix(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * 1024**3)
    with pytest.raises(NotEnoughMemory) as err:
        check_memory(5 * 1024**3, "exporting ru-en-RoSBERTa")
    msg = str(err.value)
    assert "5.0 GB" in msg and "2.0 GB are available" in msg and "exporting ru-en-RoSBERTa" in msg
    check_memory(1 * 1024**3, "exporting a small model")  # fits: no error


def test_where_memory_cannot_be_read_nothing_is_refused(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    check_memory(10**15, "exporting anything")


def test_this_machine_reports_what_it_has():
    avail = memory.available_bytes()
    assert avail is None or avail > 0
