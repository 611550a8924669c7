"""Atomic writes: a regular file is replaced whole or not at all; a device or pipe is written in place, never
replaced by a regular file."""

import os
import stat
import threading

import pytest

from rosberta_onnx.atomic import atomic_file, write_json_atomic


def test_a_regular_file_is_replaced_whole_or_left_as_it_was(tmp_path):
    p = tmp_path / "out.json"
    write_json_atomic(p, {"a": 1})
    with pytest.raises(RuntimeError), atomic_file(p, "w") as f:
        f.write('{"half": ')
        raise RuntimeError("the writer failed midway")
    assert p.read_text() == '{\n  "a": 1\n}\n' and [x.name for x in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_is_written_through_and_stays_a_pipe(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)  # opening waits for a writer
    t.start()
    with atomic_file(fifo, "wb") as f:
        f.write(b"vectors")
    t.join(10)
    assert got == [b"vectors"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and [x.name for x in tmp_path.iterdir()] == ["pipe"]
