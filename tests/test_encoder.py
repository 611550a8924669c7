"""The Encoder API on a small artifact: shapes, contract, invariance and bad input."""

import numpy as np
import pytest
from isa import int8_here

from rosberta_onnx import Encoder, PromptWarning
from rosberta_onnx.errors import InputTooLongError, InputTypeError, TaskError
from rosberta_onnx.manifest import GATED_VARIANTS, Manifest
from rosberta_onnx.openvino_engine import openvino_available

TEXTS = [
    "Человек в твердой шляпе танцует.",
    "A man is playing a flute.",
    "я",
    "",
    "Мужчина разбрасывает измельченный сыр на вареную пиццу. " * 5,
    "A plane is taking off.",
]


@pytest.fixture(scope="module")
def enc(runtime_artifact):
    return Encoder.load(runtime_artifact, variant="fp32")


def cos(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_shape_dtype_norm(enc):
    v = enc.encode(TEXTS)
    assert v.shape == (len(TEXTS), enc.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(v).all()


def test_facts_come_from_the_manifest(enc, runtime_artifact):
    m = Manifest.read(runtime_artifact).model
    assert (enc.dim, enc.max_length, enc.tasks) == (m.hidden_size, m.max_length, tuple(m.prompts))
    assert enc.max_length == 512 and m.pad_token_id == 1 and m.pooling == "cls"


def test_bare_string_is_one_text_and_empty_list_is_empty(enc):
    np.testing.assert_array_equal(enc.encode("hello"), enc.encode(["hello"]))
    e = enc.encode([])
    assert e.shape == (0, enc.dim) and e.dtype == np.float32


def test_normalize_false_returns_raw_pooled_vectors(enc):
    raw = enc.encode(TEXTS, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), enc.encode(TEXTS), atol=1e-6)


def test_task_prefix_and_helpers(enc):
    np.testing.assert_array_equal(enc.encode_queries(TEXTS[:2]), enc.encode(["search_query: " + t for t in TEXTS[:2]]))
    np.testing.assert_array_equal(enc.encode_documents(TEXTS[:2]), enc.encode(TEXTS[:2], task="search_document"))
    with pytest.raises(TaskError, match="valid tasks"):
        enc.encode(["x"], task="query")
    with pytest.warns(PromptWarning):
        doubled = enc.encode(["search_query: x"], task="search_query")
    np.testing.assert_array_equal(doubled, enc.encode(["search_query: x"]))


def _batching_invariance(artifact, variant):
    e = Encoder.load(artifact, variant=variant, allow_cpu_fp16=True)
    base = e.encode(TEXTS, batch_size=1)
    for bs, budget in [(2, 16384), (64, 16384), (64, 40), (3, 100)]:
        got = e.encode(TEXTS, batch_size=bs, max_batch_tokens=budget)
        assert cos(base, got).min() >= 0.99999, (variant, bs, budget)
    # neighbours: same text padded next to a 512-token one, and in reverse order
    long = "слово word " * 400
    alone = e.encode([TEXTS[0]])
    assert cos(alone, e.encode([TEXTS[0], long], batch_size=2)[:1]).min() >= 0.99999
    np.testing.assert_allclose(e.encode(TEXTS[::-1])[::-1], e.encode(TEXTS), atol=1e-5)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_results_do_not_depend_on_batching_or_neighbours(runtime_artifact, variant):
    _batching_invariance(runtime_artifact, variant)


@pytest.mark.parametrize("variant", ["fp32", "int8", "fp16"])
def test_exported_variants_do_not_depend_on_batching_or_neighbours(tiny_artifact, variant):
    """The exporter's fused graphs (and its fp16 conversion), not only the factory's plain ones."""
    _batching_invariance(tiny_artifact, variant)


def test_token_counts_and_truncation_flags(enc):
    long = "слово word " * 600
    r = enc.encode_detailed(["a", long], task="search_query")
    assert r.truncated.tolist() == [False, True]
    assert r.token_counts[1] > 512
    assert r.token_counts[0] == len(enc.tokenize(["a"], task="search_query")[0])
    assert len(enc.tokenize([long])[0]) == 512
    np.testing.assert_array_equal(enc.count_tokens(["a", long], task="search_query"), r.token_counts)


def test_truncate_false_names_index_and_count(enc):
    long = "слово word " * 600
    with pytest.raises(InputTooLongError, match=r"texts\[2\] has \d+ tokens.*max length of 512"):
        enc.encode(["a", "b", long], truncate=False)


@pytest.mark.parametrize(
    "bad,where",
    [
        ([None], r"texts\[0\] is NoneType"),
        (["a", 3], r"texts\[1\] is int"),
        (["a", ["b"]], r"texts\[1\] is list.*nested"),
        (None, "got NoneType"),
        (b"bytes", "Decode bytes"),
        (42, "got int"),
    ],
)
def test_bad_types_name_the_index(enc, bad, where):
    with pytest.raises(InputTypeError, match=where):
        enc.encode(bad)
    with pytest.raises(TypeError):
        enc.encode(bad)


def test_odd_text_never_crashes_or_nans(enc):
    odd = [
        "",
        "   \t\n",
        "\x00",
        "a\x00b",
        "\ud800 lone surrogate",
        "\udfff",
        "👨‍👩‍👧‍👦" * 50,
        "e\u0301" * 300,
        "<s></s><pad><unk><mask>",
        "\u202e\u200b\ufeff",
    ]
    v = enc.encode(odd)
    assert v.shape == (len(odd), enc.dim) and np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_ten_megabyte_text(enc):
    big = ("Большой текст, big text. " * 420_000)[:10_000_000]
    r = enc.encode_detailed([big, "short"])
    assert r.truncated.tolist() == [True, False] and r.token_counts[0] > 1_000_000
    assert np.isfinite(r.embeddings).all()


def _with_gate(src, dst, passed: bool):
    import json
    import shutil

    # a new artifact: no timing or per-CPU verdict yet
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".autotune.json", ".verified.json"))
    d = json.loads((dst / "manifest.json").read_text())
    for v in GATED_VARIANTS:  # every int8 variant the artifact has
        if v in d["variants"]:
            d["variants"][v]["gate"]["passed"] = passed
    (dst / "manifest.json").write_text(json.dumps(d))
    return dst


def test_auto_variant_follows_the_gate(runtime_artifact, tmp_path):
    # The tiny stand-in's own verdict (random weights: judged on the cosine criteria only), then forced either way.
    m = Manifest.read(runtime_artifact)
    here = int8_here()
    runnable = [v for v in GATED_VARIANTS if v in m.variants and (v in (here, "int4") or openvino_available())]
    gated = [v for v in runnable if m.variants[v].gate_passed]
    assert Encoder.load(runtime_artifact, autotune=False).variant == (gated + ["fp32"])[0]
    assert Encoder.load(_with_gate(runtime_artifact, tmp_path / "pass", True), autotune=False).variant == here
    assert Encoder.load(_with_gate(runtime_artifact, tmp_path / "fail", False), autotune=False).variant == "fp32"


def test_auto_measures_int8_against_fp32_once_and_caches_it(runtime_artifact, tmp_path):
    import json

    from rosberta_onnx.session import resolve_providers
    from rosberta_onnx.variants import auto_candidates

    art = _with_gate(runtime_artifact, tmp_path / "art", True)
    e = Encoder.load(art)
    cache = json.loads((art / ".autotune.json").read_text())
    (entry,) = cache["entries"].values()
    d = entry["value"]
    timed = set(auto_candidates(Manifest.read(art), resolve_providers(None)))
    assert {int8_here(), "fp32"} <= timed and set(d["ms"]) == timed and all(ms > 0 for ms in d["ms"].values())
    assert e.variant == d["choice"] == min(d["ms"], key=d["ms"].get)
    assert e.selection.timings_ms == d["ms"] and not e.selection.cached and "ms" in str(e.selection)
    # a forged verdict in the cache is obeyed: proof the second load reads it instead of re-measuring
    forged = "fp32" if e.variant != "fp32" else int8_here()
    d.update(choice=forged)
    (art / ".autotune.json").write_text(json.dumps(cache))
    again = Encoder.load(art)
    assert again.variant == forged and again.selection.cached and "cached" in again.selection.reason


def test_autotune_times_fp32_alone_and_keeps_only_the_choice(runtime_artifact, tmp_path, monkeypatch):
    """Memory first: fp32 (the largest file) is never open beside a quantised candidate, and once ``auto`` has
    chosen, the process holds the chosen session only (the full-size first load peaked at 2.45 GB holding all)."""
    import gc
    import weakref

    import rosberta_onnx.encoder as encoder

    art = _with_gate(runtime_artifact, tmp_path / "art", True)
    live: dict[str, weakref.ref] = {}
    beside_fp32: list[tuple[str, list[str]]] = []

    def tracked(path, record, **kw):
        gc.collect()
        alive = [n for n, r in live.items() if r() is not None]
        if record.name == "fp32" or "fp32" in alive:
            beside_fp32.append((record.name, alive))
        s = real(path, record, **kw)
        live[record.name] = weakref.ref(s)
        return s

    real = encoder.open_session
    monkeypatch.setattr(encoder, "open_session", tracked)
    e = Encoder.load(art)
    gc.collect()
    assert set(e.selection.timings_ms) >= {"fp32", int8_here()}, e.selection  # it did time them
    assert ("fp32", []) in beside_fp32 and all(alive == [] for _, alive in beside_fp32), beside_fp32
    assert [n for n, r in live.items() if r() is not None] == [e.variant]


def test_cpu_without_vnni_runs_the_unsigned_twin_only_once_it_is_measured_here(runtime_artifact, tmp_path, monkeypatch):
    import json

    import rosberta_onnx.variants as variants

    monkeypatch.setattr(variants, "cpu_isa", lambda: "avx2")  # this CPU, as the rules and the trust see it
    art = _with_gate(runtime_artifact, tmp_path / "art", True)
    d = json.loads((art / "manifest.json").read_text())
    for rec in d["variants"].values():  # gated elsewhere, whatever CPU built the artifact
        rec["isa"] = "avx512_vnni" if rec.get("isa") else ""
    (art / "manifest.json").write_text(json.dumps(d))
    # onnxruntime's U8xS8 int8 saturates without VNNI: out by the rule, no warning, since int8-avx2 is here; and
    # int8-avx2 was gated on this machine's real ISA, not on avx2: measuring nothing, auto leaves it out too
    lean = Encoder.load(art, autotune=False)
    assert lean.variant == "fp32" and "int8" not in lean.selection.candidates
    assert lean.selection.trust["int8-avx2"].startswith("unverified") and "verify" in lean.selection.reason
    # with measurement: int8-avx2 re-measured against the reference set, kept, timed against fp32
    e = Encoder.load(art)
    assert e.selection.trust["int8-avx2"].startswith("verified: re-measured on avx2")
    timed = set(e.selection.timings_ms)
    assert {"int8-avx2", "fp32"} <= timed and "int8" not in timed
    (entry,) = [
        x
        for x in json.loads((art / ".verified.json").read_text())["entries"].values()
        if x["key"]["variant"] == "int8-avx2"
    ]
    assert entry["key"]["isa"] == "avx2" and entry["value"]["passed"] and entry["value"]["cos_min"] > 0.995
    # the verdict is remembered: without measuring, the next load trusts it
    assert Encoder.load(art, autotune=False).selection.trust["int8-avx2"].startswith("verified")


def test_cpu_without_vnni_and_no_unsigned_twin_warns(runtime_artifact, tmp_path, monkeypatch):
    import json

    import rosberta_onnx.variants as variants
    from rosberta_onnx import HardwareWarning

    monkeypatch.setattr(variants, "cpu_isa", lambda: "avx2")
    art = _with_gate(runtime_artifact, tmp_path / "art", True)
    d = json.loads((art / "manifest.json").read_text())
    del d["variants"]["int8-avx2"]
    (art / "manifest.json").write_text(json.dumps(d))
    with pytest.warns(HardwareWarning, match=r"\(avx2: AVX2 without VNNI\) has no VNNI/AMX.*auto' leaves it out"):
        e = Encoder.load(art, autotune=False)
    assert e.variant != "int8" and "not exact on avx2" in e.selection.reason
    with pytest.warns(HardwareWarning, match="Consider variant='fp32'"):
        assert Encoder.load(art, variant="int8").variant == "int8"  # asked for by name: warned, not refused
