"""``rosberta-onnx encode`` and ``info`` as a user runs them."""

import io
import json
import os
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

from rosberta_onnx import Encoder


def cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "rosberta_onnx.cli", *args], input=stdin, capture_output=True, timeout=300
    )


TEXTS = ["Первая строка", "second line", "", "третья — third"]


def test_encode_lines_from_stdin_to_npy(runtime_artifact):
    r = cli(
        "encode",
        str(runtime_artifact),
        "--variant",
        "fp32",
        "--task",
        "search_query",
        stdin="\n".join(TEXTS).encode() + b"\n",
    )
    assert r.returncode == 0, r.stderr
    got = np.load(io.BytesIO(r.stdout))
    want = Encoder.load(runtime_artifact, variant="fp32").encode(TEXTS, task="search_query")
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_encode_jsonl_file_to_jsonl_file(runtime_artifact, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in enumerate(TEXTS)))
    out = tmp_path / "out.jsonl"
    r = cli("encode", str(runtime_artifact), "-i", str(src), "-o", str(out), "--variant", "fp32")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(len(TEXTS)))
    want = Encoder.load(runtime_artifact, variant="fp32").encode(TEXTS)
    np.testing.assert_allclose(np.array([row["embedding"] for row in rows]), want, atol=1e-6)
    assert all(row["truncated"] is False and row["tokens"] >= 2 for row in rows)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_encode_to_a_named_pipe_writes_through_it(runtime_artifact, tmp_path):
    """``-o`` naming a pipe or device (``/dev/null``, ``/dev/stdout``) writes to it: it is not replaced by a file."""
    fifo = tmp_path / "vectors.jsonl"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = cli("encode", str(runtime_artifact), "-o", str(fifo), "--variant", "fp32", stdin=b"one line\n")
    reader.join(60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert len(json.loads(got[0])["embedding"]) == Encoder.load(runtime_artifact, variant="fp32").dim


def test_invalid_utf8_is_replaced_with_a_warning(runtime_artifact, tmp_path):
    src = tmp_path / "bad.txt"
    src.write_bytes(b"ok line\nbad \xff\xfe bytes\n")
    r = cli("encode", str(runtime_artifact), "-i", str(src), "-o", str(tmp_path / "o.npy"))
    assert r.returncode == 0, r.stderr
    assert b"invalid UTF-8" in r.stderr
    assert np.load(tmp_path / "o.npy").shape[0] == 2


def test_bad_jsonl_and_missing_model_are_one_line_errors(runtime_artifact, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a"}\n{"txt": "b"}\n')
    r = cli("encode", str(runtime_artifact), "-i", str(src))
    assert r.returncode == 2 and b"in.jsonl:2" in r.stderr and b"'text'" in r.stderr
    r = cli("encode", str(tmp_path / "nope"), stdin=b"x\n")
    assert r.returncode == 2 and r.stderr.decode().startswith("error:") and b"Traceback" not in r.stderr


def test_unknown_task_lists_valid_ones(runtime_artifact):
    r = cli("encode", str(runtime_artifact), "--task", "query", stdin=b"x\n")
    assert r.returncode == 2 and b"search_document" in r.stderr


def test_info_prints_the_parity_table(runtime_artifact):
    r = cli("info", str(runtime_artifact))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "STAND-IN" in out and "| fp32 |" in out and "| int8 |" in out and "max length 512" in out


LONG = " ".join(f"предложение {i}, sentence {i}." for i in range(200))


def test_long_chunk_and_error_modes(runtime_artifact):
    stdin = (LONG + "\nshort\n").encode()
    r = cli("encode", str(runtime_artifact), "--variant", "fp32", "--long", "chunk", "--format", "jsonl", stdin=stdin)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
    want = Encoder.load(runtime_artifact, variant="fp32").encode([LONG, "short"], long="chunk")
    assert [row["truncated"] for row in rows] == [False, False] and rows[0]["tokens"] > 512
    np.testing.assert_allclose([row["embedding"] for row in rows], want, atol=1e-6)
    r = cli("encode", str(runtime_artifact), "--long", "error", stdin=stdin)
    assert r.returncode == 2 and b"texts[0] has" in r.stderr and b"long='chunk'" in r.stderr


def test_chunks_write_one_line_per_window_with_character_spans(runtime_artifact, tmp_path):
    out = tmp_path / "chunks.jsonl"
    stdin = (LONG + "\nshort\n").encode()
    r = cli(
        "encode",
        str(runtime_artifact),
        "--variant",
        "fp32",
        "--chunks",
        "--window",
        "150",
        "--overlap",
        "20",
        "--task",
        "search_document",
        "-o",
        str(out),
        stdin=stdin,
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    enc = Encoder.load(runtime_artifact, variant="fp32")
    chunks = enc.encode_chunks([LONG, "short"], task="search_document", window=150, overlap=20)
    assert [(row["index"], row["chunk"]) for row in rows] == [
        (i, j) for i, c in enumerate(chunks) for j in range(len(c))
    ]
    assert [(row["start"], row["end"]) for row in rows] == [tuple(s) for c in chunks for s in c.char_spans]
    plans = enc.plan([LONG, "short"], task="search_document", window=150, overlap=20)
    assert [row["tokens"] for row in rows] == [len(r) for p in plans for r in p.rows]  # what the model ran, per window
    assert rows[0]["start"] == 0 and 0 < rows[1]["start"] < rows[0]["end"] < rows[1]["end"]  # overlapping windows
    np.testing.assert_allclose(
        [row["embedding"] for row in rows], np.concatenate([c.vectors for c in chunks]), atol=1e-6
    )
    for bad, message in (
        (["--chunks", "--format", "npy"], b"drop --format npy"),
        (["--window", "10"], b"add --chunks"),
    ):
        r = cli("encode", str(runtime_artifact), *bad, stdin=b"x\n")
        assert r.returncode == 2 and message in r.stderr
