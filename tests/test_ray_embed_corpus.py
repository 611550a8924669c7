"""``embed-corpus`` end to end on a local Ray instance (2 CPUs, loopback only) with the tiny stand-in.

A few thousand STS sentences in four shards (Parquet and JSONL) with bad rows mixed in; two actors.
Checks every id exactly once, vectors equal to ``Encoder.encode``, bad rows in the errors file, the
restart that rewrites only a deleted shard, and the ``RayEmbedder`` entry point on a user's dataset.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

if "ray" not in sys.modules:
    # Ray reads its auth settings once, at import: give this process's local instance a token held in
    # the environment, so Ray neither writes one to ~/.ray nor runs without authentication.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex)
ray = pytest.importorskip("ray", reason="needs the distributed extra: pip install 'rosberta-onnx[distributed]'")
pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from rosberta_onnx import Encoder  # noqa: E402
from rosberta_onnx.cli import main  # noqa: E402
from rosberta_ray import RayEmbedder, embed_corpus  # noqa: E402
from rosberta_ray.shards import OutputMismatchError  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # a real local Ray instance: a minute to start

ROWS_PER_SHARD = 750
TASK = "search_document"


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A private local Ray instance on this machine: 2 CPUs, session files under a temp dir, no
    dashboard, no usage stats, a 500 MB object store."""
    if ray.is_initialized():
        pytest.skip("another Ray instance is already initialised in this process")
    saved = os.environ.get("RAY_DISABLE_USAGE_STATS")
    os.environ["RAY_DISABLE_USAGE_STATS"] = "1"
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=500 * 1024**2,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_DISABLE_USAGE_STATS", None)
        else:
            os.environ["RAY_DISABLE_USAGE_STATS"] = saved


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four shards (two Parquet, two JSONL) of STS sentences with integer ids, plus the expected rows."""
    from rosberta_export.corpus import sts_sentences

    sents = sts_sentences("dev")[: 4 * ROWS_PER_SHARD]
    root = tmp_path_factory.mktemp("corpus")
    good: dict[int, str] = {}
    bad: dict[int | None, str] = {}
    for k in range(4):
        rows = [
            {"id": k * ROWS_PER_SHARD + i, "text": t}
            for i, t in enumerate(sents[k * ROWS_PER_SHARD : (k + 1) * ROWS_PER_SHARD])
        ]
        rows[7]["text"] = None
        if k % 2 == 0:
            pq.write_table(pa.Table.from_pylist(rows), root / f"shard-{k}.parquet", row_group_size=200)
            lines = None
        else:
            rows[11]["text"] = 42
            lines = [json.dumps(r, ensure_ascii=False) for r in rows]
            lines[13] = json.dumps({"id": rows[13]["id"]})  # no text field
            lines.insert(20, '{"id": "broken", "text": ')  # not JSON: its id can't be known
            lines.insert(30, "")  # a blank line is not a row
            (root / f"shard-{k}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for r in rows:
            if isinstance(r["text"], str) and not (lines is not None and r["id"] == rows[13]["id"]):
                good[r["id"]] = r["text"]
            else:
                bad[r["id"]] = r["text"]
    bad[None] = "broken JSON"  # once per JSONL shard
    return root, good, bad


def read_output(out: Path) -> tuple[list, np.ndarray, np.ndarray]:
    tables = [pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))]
    t = pa.concat_tables(tables)
    vecs = np.stack(t.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)
    return t.column("id").to_pylist(), vecs, t.column("token_count").to_numpy()


def test_embed_corpus_then_restart_rewrites_only_the_missing_shard(ray_local, corpus, runtime_artifact, tmp_path):
    src, good, bad = corpus
    out = tmp_path / "out"
    seen = []
    summary = embed_corpus(
        runtime_artifact,
        src,
        out,
        task=TASK,
        variant="fp32",
        actors=2,
        threads_per_actor=1,
        batch_size=16,
        chunk_rows=256,
        progress=seen.append,
        progress_every=0.5,
    )
    assert summary.failed == [] and summary.shards_total == 4 and summary.shards_skipped == 0
    assert summary.embedded == len(good) and summary.error_rows == len(bad) + 1  # one broken line per JSONL shard
    assert summary.rows == len(good) + len(bad) + 1
    assert seen and seen[-1].rows == summary.rows and seen[-1].shards_done == 4

    # Every good id exactly once, no bad id; vectors and token counts equal to Encoder.encode.
    ids, vecs, counts = read_output(out)
    assert Counter(ids) == Counter(list(good))
    enc = Encoder.load(runtime_artifact, variant="fp32")
    texts = [good[i] for i in ids]
    ref = enc.encode_detailed(texts, task=TASK)
    np.testing.assert_allclose(vecs, ref.embeddings, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(counts, ref.token_counts)
    assert vecs.shape[1] == enc.dim and pq.read_schema(next(out.glob("part-*.parquet"))).field(
        "embedding"
    ).type == pa.list_(pa.float32(), enc.dim)

    # Bad rows: in the errors file, each with its id, shard and reason.
    errors = [json.loads(line) for line in (out / "_errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert Counter(e["id"] for e in errors if e["id"] is not None) == Counter(i for i in bad if i is not None)
    assert sum(e["id"] is None and "not valid JSON" in e["reason"] for e in errors) == 2
    reasons = {e["id"]: e["reason"] for e in errors}
    assert reasons[7] == "text is null" and reasons[ROWS_PER_SHARD + 11] == "text is int, not str"
    assert "no 'text' field" in reasons[ROWS_PER_SHARD + 13]
    assert all(e["shard"].startswith("shard-") and isinstance(e["row"], int) for e in errors)

    # Restart after losing one shard: only that one is rewritten, byte-identical vectors come back.
    parts = {p.name: p.stat() for p in out.glob("part-*.parquet")}
    lost = out / "part-shard-2.parquet"
    before = pq.read_table(lost)
    lost.unlink()
    again = embed_corpus(
        runtime_artifact,
        src,
        out,
        task=TASK,
        variant="fp32",
        actors=2,
        threads_per_actor=1,
        batch_size=16,
        chunk_rows=256,
    )
    assert [r.shard for r in again.results] == ["shard-2.parquet"] and again.shards_skipped == 3
    for name, st in parts.items():
        if name != lost.name:
            now = (out / name).stat()
            assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), f"{name} was rewritten"
    assert pq.read_table(lost).equals(before)
    assert len((out / "_errors.jsonl").read_text(encoding="utf-8").splitlines()) == len(errors)
    assert not list(out.glob(".*.tmp")) and not list((out / "_state").glob(".*.tmp"))

    # Nothing left to do: no Ray work at all. Other settings on the same output: refused.
    done = embed_corpus(runtime_artifact, src, out, task=TASK, variant="fp32")
    assert done.results == [] and done.shards_skipped == 4
    with pytest.raises(OutputMismatchError, match="task"):
        embed_corpus(runtime_artifact, src, out, task="search_query", variant="fp32")


def test_window_rows_restart_without_duplicates(ray_local, corpus, runtime_artifact, tmp_path):
    """``--chunks`` through Ray: one row per window; a lost shard is redone with the same rows, none twice."""
    src, good, _ = corpus
    out = tmp_path / "out"
    opts = dict(task=TASK, variant="fp32", actors=2, threads_per_actor=1, batch_size=16, chunk_rows=256, windows=True)
    first = embed_corpus(runtime_artifact, src, out, **opts)
    assert first.failed == [] and first.embedded == len(good)
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))])
    keys = list(zip(table.column("id").to_pylist(), table.column("chunk").to_pylist()))
    assert len(keys) == len(set(keys)) >= len(good)  # every (id, window) once
    lost = out / "part-shard-1.parquet"  # written from the JSONL shard: outputs are Parquet whatever the input
    before = pq.read_table(lost)
    lost.unlink()
    again = embed_corpus(runtime_artifact, src, out, **opts)
    assert [r.shard for r in again.results] == ["shard-1.jsonl"] and pq.read_table(lost).equals(before)
    with pytest.raises(OutputMismatchError, match="windows"):
        embed_corpus(runtime_artifact, src, out, **{**opts, "windows": False})


def test_cli_reports_a_failed_shard_and_still_writes_the_others(ray_local, runtime_artifact, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(40)))
    pq.write_table(pa.table({"id": [1, 2], "body": ["a", "b"]}), src / "no_text_column.parquet")
    rc = main(
        [
            "embed-corpus",
            str(runtime_artifact),
            "--input",
            str(src),
            "--output",
            str(tmp_path / "out"),
            "--actors",
            "1",
            "--variant",
            "fp32",
            "--task",
            "search_query",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "FAILED no_text_column.parquet" in err and "no column 'text'" in err and "40 embedded" in err
    t = pq.read_table(tmp_path / "out" / "part-good.parquet")
    assert t.column("id").to_pylist() == [f"d{i}" for i in range(40)]
    assert not (tmp_path / "out" / "part-no_text_column.parquet").exists()
    assert json.loads((tmp_path / "out" / "_summary.json").read_text())["shards_failed"] == 1


def test_ray_embedder_on_a_user_dataset(ray_local, runtime_artifact):
    from rosberta_export.corpus import sts_sentences

    texts: list = sts_sentences("dev")[:200]
    texts[5] = None
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    out = ds.map_batches(
        RayEmbedder,
        fn_constructor_args=(str(runtime_artifact),),
        fn_constructor_kwargs={"variant": "fp32", "task": "search_query", "threads": 1},
        concurrency=1,
        num_cpus=1,
        batch_size=64,
        batch_format="pyarrow",
    ).take_all()
    assert sorted(r["id"] for r in out) == list(range(200))
    by_id = {r["id"]: r for r in out}
    assert by_id[5]["error"] == "text is null" and np.isnan(by_id[5]["embedding"]).all()
    ok = [i for i in range(200) if i != 5]
    ref = Encoder.load(runtime_artifact, variant="fp32").encode([texts[i] for i in ok], task="search_query")
    got = np.stack([np.asarray(by_id[i]["embedding"], dtype=np.float32) for i in ok])
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    assert all(by_id[i]["error"] is None for i in ok)
