"""The pieces of ``rosberta_ray`` that need no Ray instance: shard discovery and reading, atomic
writes, the restart check, the per-shard worker and ``RayEmbedder`` called directly, and the
promise that the runtime and the CLI never import Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from rosberta_onnx import Encoder  # noqa: E402
from rosberta_onnx.errors import TaskError  # noqa: E402
from rosberta_ray.embedder import RayEmbedder, find_bad_rows  # noqa: E402
from rosberta_ray.shards import (  # noqa: E402
    AtomicParquetWriter,
    OutputMismatchError,
    ShardError,
    discover,
    is_complete,
    output_path,
    read_chunks,
    record_path,
)
from rosberta_ray.worker import ShardEmbedder  # noqa: E402

SETTINGS = {"model": "m", "variant": "fp32", "task": None, "text_column": "text", "id_column": "id"}


@pytest.fixture(scope="module")
def embedder(runtime_artifact):
    return RayEmbedder(runtime_artifact, variant="fp32", threads=1, task="search_query")


def write_jsonl(path, lines):
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines))


# -- discovery and reading ---------------------------------------------------------------------
def test_discover_a_file_a_folder_and_what_it_skips(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "_skip").mkdir()
    for p in ["a.jsonl", "sub/b.parquet", "_skip/c.jsonl", ".hidden.jsonl", "notes.txt", "out/part-a.parquet"]:
        (tmp_path / p).parent.mkdir(exist_ok=True)
        (tmp_path / p).write_text("")
    shards = discover(tmp_path, exclude=tmp_path / "out")
    assert [(s.name, s.format, s.stem) for s in shards] == [
        ("a.jsonl", "jsonl", "a"),
        ("sub/b.parquet", "parquet", "sub__b"),
    ]
    assert [s.name for s in discover(tmp_path / "a.jsonl")] == ["a.jsonl"]
    (tmp_path / "a.parquet").write_text("")
    with pytest.raises(ShardError, match="part-a.parquet"):
        discover(tmp_path, exclude=tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .jsonl"):
        discover(tmp_path / "empty")


def test_jsonl_rows_and_what_makes_them_bad(tmp_path):
    write_jsonl(
        tmp_path / "x.jsonl",
        [
            '{"id": 1, "text": "a"}',
            "",
            '{"id": 2}',
            b'{"id": 3, "text": "\xff"}',
            "[1, 2]",
            '{"id": 4, "text": ',
            '{"id": 5, "text": "b"}',
        ],
    )
    chunks = list(read_chunks(discover(tmp_path / "x.jsonl")[0], text_column="text", id_column="id", chunk_rows=4))
    assert [c.start for c in chunks] == [0, 4] and [len(c.texts) for c in chunks] == [4, 2]
    assert chunks[0].ids == [1, 2, None, None] and chunks[1].ids == [None, 5]
    p0, p1 = chunks[0].problems, chunks[1].problems
    assert p0[1] == "line 3: no 'text' field" and "invalid UTF-8" in p0[2] and "a JSON list" in p0[3] and 0 not in p0
    assert "line 6: not valid JSON" in p1[0] and 1 not in p1


def test_parquet_without_the_text_column_is_a_shard_error(tmp_path):
    pq.write_table(pa.table({"id": [1], "body": ["x"]}), tmp_path / "p.parquet")
    with pytest.raises(ShardError, match=r"no column 'text'; its columns are \['id', 'body'\]"):
        list(read_chunks(discover(tmp_path / "p.parquet")[0], text_column="text", id_column="id", chunk_rows=8))


def test_find_bad_rows_names_each_reason():
    assert find_bad_rows([1, None, 3, 4, 5], ["ok", "ok", None, 7, float("nan")]) == {
        1: "id is null",
        2: "text is null",
        3: "text is int, not str",
        4: "text is null",
    }
    assert find_bad_rows(None, ["", b"x"]) == {1: "text is bytes, not str"}


# -- atomic write and the restart check ---------------------------------------------------------
def test_atomic_writer_leaves_nothing_on_failure_and_replaces_on_success(tmp_path):
    target = tmp_path / "part-x.parquet"
    pq.write_table(pa.table({"a": [0]}), target)
    with pytest.raises(RuntimeError, match="boom"):
        with AtomicParquetWriter(target, metadata={"k": "v"}) as w:
            w.write(pa.table({"a": [1, 2]}))
            raise RuntimeError("boom")
    assert pq.read_table(target).column("a").to_pylist() == [0]
    assert [p.name for p in tmp_path.iterdir()] == ["part-x.parquet"]
    with AtomicParquetWriter(target, metadata={"k": "v"}) as w:
        w.write(pa.table({"a": [1, 2]}))
        w.write(pa.table({"a": [3]}))
    assert pq.read_table(target).column("a").to_pylist() == [1, 2, 3]
    assert pq.read_schema(target).metadata[b"k"] == b"v" and len(list(tmp_path.iterdir())) == 1


def test_worker_writes_a_shard_and_the_restart_check_reads_it(runtime_artifact, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    write_jsonl(src / "s.jsonl", [json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(["a", None, "c", 5])])
    write_jsonl(src / "allbad.jsonl", [json.dumps({"id": 1, "text": None})])
    write_jsonl(src / "mixed.jsonl", [json.dumps({"id": 1, "text": "a"}), json.dumps({"id": "two", "text": "b"})])
    s, allbad, mixed = (
        next(x for x in discover(src) if x.name == n) for n in ("s.jsonl", "allbad.jsonl", "mixed.jsonl")
    )
    w = ShardEmbedder(
        str(runtime_artifact), output=str(out), settings=SETTINGS, variant="fp32", threads=1, chunk_rows=2
    )
    assert not is_complete(out, s, SETTINGS)

    stats = w.run_shard(s)
    assert stats["failure"] == "" and (stats["rows"], stats["embedded"], stats["errors"]) == (4, 2, 2)
    t = pq.read_table(output_path(out, s))
    assert t.column("id").to_pylist() == ["d0", "d2"]
    np.testing.assert_allclose(
        np.stack(t.column("embedding").to_numpy(zero_copy_only=False)),
        Encoder.load(runtime_artifact, variant="fp32").encode(["a", "c"]),
        atol=1e-6,
    )
    rec = json.loads(record_path(out, s).read_text())
    assert [(e["id"], e["row"], e["reason"]) for e in rec["errors"]] == [
        ("d1", 1, "text is null"),
        ("d3", 3, "text is int, not str"),
    ]
    assert is_complete(out, s, SETTINGS)
    with pytest.raises(OutputMismatchError, match="task: None then, 'search_query' now"):
        is_complete(out, s, {**SETTINGS, "task": "search_query"})

    assert w.run_shard(allbad)["embedded"] == 0 and pq.read_table(output_path(out, allbad)).num_rows == 0
    assert is_complete(out, allbad, SETTINGS)
    failed = w.run_shard(mixed)
    assert "ArrowInvalid" in failed["failure"] or "ArrowTypeError" in failed["failure"], failed["failure"]
    assert failed["embedded"] == failed["rows"] == 0
    assert not output_path(out, mixed).exists() and not is_complete(out, mixed, SETTINGS)

    # A changed input shard, or an output whose row count disagrees with its record, is redone.
    write_jsonl(src / "s.jsonl", [json.dumps({"id": "d0", "text": "a longer text now"})])
    assert not is_complete(out, discover(src / "s.jsonl")[0], SETTINGS)
    pq.write_table(pa.table({"id": ["d0"]}), output_path(out, s))
    assert not is_complete(out, s, SETTINGS)


# -- RayEmbedder as a map_batches callable -----------------------------------------------------
def test_ray_embedder_on_arrow_pandas_and_numpy_batches(embedder, runtime_artifact):
    texts = ["Привет, мир", None, "hello", 3]
    ref = Encoder.load(runtime_artifact, variant="fp32").encode(["Привет, мир", "hello"], task="search_query")
    arrow = embedder(
        pa.table({"id": ["a", "b", "c", "d"], "text": pa.array([t if isinstance(t, str) else None for t in texts])})
    )
    assert arrow.column_names == ["id", "embedding", "token_count", "truncated", "error"]
    assert arrow.schema.field("embedding").type == pa.list_(pa.float32(), embedder.dim)
    assert arrow.column("error").to_pylist() == [None, "text is null", None, "text is null"]
    vecs = np.stack(arrow.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(vecs[[0, 2]], ref, atol=1e-6)
    assert np.isnan(vecs[[1, 3]]).all()

    numpy_batch = {"id": np.arange(4), "text": np.array(texts, dtype=object)}
    got = embedder(numpy_batch)
    assert got["embedding"].shape == (4, embedder.dim) and got["id"].tolist() == [0, 1, 2, 3]
    assert list(got["error"]) == [None, "text is null", None, "text is int, not str"]
    np.testing.assert_allclose(got["embedding"][[0, 2]], ref, atol=1e-6)

    pd = pytest.importorskip("pandas")
    frame = embedder(pd.DataFrame({"id": [1, 2, 3, 4], "text": texts}))
    assert list(frame["error"]) == [None, "text is null", None, "text is int, not str"]
    assert list(frame["token_count"][[0, 2]]) == list(
        Encoder.load(runtime_artifact, variant="fp32").count_tokens(["Привет, мир", "hello"], task="search_query")
    )


def test_ray_embedder_columns_and_task_are_checked(embedder, runtime_artifact):
    with pytest.raises(ValueError, match=r"no column 'text'; its columns are \['id', 'body'\].*text_column="):
        embedder({"id": np.arange(1), "body": np.array(["x"])})
    no_ids = RayEmbedder(runtime_artifact, variant="fp32", threads=1, id_column=None)
    assert "id" not in no_ids({"text": np.array(["x", "y"])})
    with pytest.raises(TaskError, match="search_query"):
        RayEmbedder(runtime_artifact, variant="fp32", task="query")


# -- boundaries --------------------------------------------------------------------------------
def test_runtime_and_cli_never_import_ray():
    code = textwrap.dedent("""
        import sys
        import rosberta_onnx, rosberta_onnx.cli, rosberta_ray
        rosberta_onnx.cli.build_parser().parse_args(["embed-corpus", "m", "--input", "i", "--output", "o"])
        print("RAY", sorted(m for m in sys.modules if m.split(".")[0] == "ray"))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "RAY []" in r.stdout


def test_cli_without_ray_names_the_extra(monkeypatch, capsys, tmp_path):
    from rosberta_onnx.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as without the extra
    rc = main(["embed-corpus", str(tmp_path), "--input", str(tmp_path), "--output", str(tmp_path / "o")])
    assert rc == 2
    assert "pip install 'rosberta-onnx[distributed]'" in capsys.readouterr().err


def test_worker_writes_one_row_per_window_with_spans(runtime_artifact, tmp_path):
    """``--chunks``: each text's windows as rows (id, chunk, start, end, tokens, embedding), from the encoder's plan."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    long = " ".join(f"предложение номер {i}, sentence number {i}." for i in range(150))
    write_jsonl(src / "s.jsonl", [json.dumps({"id": "long", "text": long}), json.dumps({"id": "short", "text": "hi"})])
    shard = discover(src)[0]
    settings = {**SETTINGS, "long": "truncate", "windows": True}
    w = ShardEmbedder(
        str(runtime_artifact), output=str(out), settings=settings, variant="fp32", threads=1, windows=True
    )
    stats = w.run_shard(shard)
    assert stats["failure"] == "" and (stats["rows"], stats["embedded"]) == (2, 2)
    t = pq.read_table(output_path(out, shard))
    enc = Encoder.load(runtime_artifact, variant="fp32")
    plans = enc.plan([long, "hi"])
    assert t.column("id").to_pylist() == ["long"] * len(plans[0].rows) + ["short"]
    assert t.column("chunk").to_pylist() == [*range(len(plans[0].rows)), 0] and len(plans[0].rows) > 1
    assert (
        list(zip(t.column("start").to_pylist(), t.column("end").to_pylist()))
        == plans[0].char_spans + plans[1].char_spans
    )
    assert t.column("tokens").to_pylist() == [len(r) for p in plans for r in p.rows]
    vecs = np.stack(t.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(vecs, enc.encode_ids([r for p in plans for r in p.rows]), atol=1e-6)
    assert stats["tokens"] == int(t.column("tokens").to_numpy().sum())
