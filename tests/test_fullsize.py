"""End to end on the full-size stand-in (exact ru-en-RoSBERTa shape, random weights): CI runs it."""

import pytest
from isa import int8_here

from rosberta_onnx import Encoder
from rosberta_onnx.openvino_engine import openvino_available

pytestmark = [pytest.mark.fullsize, pytest.mark.torch]


def test_fullsize_export_all_variants(tmp_path_factory):
    from rosberta_export.pipeline import export
    from rosberta_export.synth import synth

    root = tmp_path_factory.mktemp("full")
    ckpt = synth(root / "standin-full", size="full", seed=0)
    # 256 calibration sentences instead of 1024: ~3 minutes less of CI; the gate still judges what it gives.
    # int4 is left to the tiny and MiniLM exports of this tier (MiniLM judges its quality): at full size its 4-bit
    # GPTQ, parity and gate add ~4 minutes (measured: 13.2 min with it); the demo builds it.
    # On random weights the gate's retrieval and STS figures are recorded, not judged: 20 STS pairs per language show
    # they are computed and recorded (~2 minutes less of CI than 100); MiniLM's export judges them on all 1500.
    # On x86 without VNNI onnxruntime's signed int8 saturates; there its unsigned twin is the int8 auto weighs.
    here = int8_here()
    variants = ("fp32", "fp16", "int8", here) + (("int8-openvino",) if openvino_available() else ())
    variants = tuple(dict.fromkeys(variants))
    r = export(
        str(ckpt),
        root / "standin-full-onnx",
        variants=variants,
        parity_texts=32,
        gate_pairs=20,
        calibration_sentences=256,
    )
    m = r.manifest
    f = m.model
    assert (f.num_layers, f.hidden_size, f.num_heads, f.intermediate_size, f.vocab_size) == (24, 1024, 16, 4096, 50265)
    assert (f.max_position_embeddings, f.pad_token_id, f.max_length) == (514, 1, 512)
    fused = m.variants["fp32"].fused_ops
    assert (fused["Attention"], fused["SkipLayerNormalization"], fused["BiasGelu"]) == (24, 48, 24)
    # CLS pooling: every variant's last layer runs its tail on the first token (fp16 is converted from fp32's graph)
    assert all(rec.graph_rewrites["first_token_tail"] == 1 for rec in m.variants.values()), m.variants
    assert r.ok, r.parity_failures
    p = {v: rec.parity for v, rec in m.variants.items()}
    assert p["fp32"]["cos_min"] >= 0.99999 and p["fp32"]["max_abs"] <= 1e-4
    assert p["fp16"]["cos_min"] >= 0.999
    assert p["int8"]["n"] == p["fp32"]["n"] == p[here]["n"]
    int8 = m.variants[here]
    assert int8.gate["weights"].startswith("random") and "calibrated on 256 RU/EN" in int8.recipe
    assert p[here]["cos_min"] >= 0.995 and p[here]["cos_mean"] >= 0.998
    # Random weights: the cosine criteria decide; retrieval and STS are recorded, not judged (random embeddings
    # are crowded, so top-10 lists are near-ties any rounding reorders). MiniLM's test judges them on real weights.
    assert set(int8.gate["figures"]["top10_overlap"]) == {"en", "ru"} and int8.gate["figures"]["pairs_per_lang"] == 20
    assert int8.gate["judged"] == ["cos_min", "cos_mean"] and int8.gate["recorded_reason"] == "random weights"
    assert int8.gate["passed"]
    if "int8-openvino" in m.variants:  # exported where openvino is installed (CI's full environment)
        ov = m.variants["int8-openvino"]
        assert ov.engine == "openvino" and p["int8-openvino"]["n"] == p["fp32"]["n"] and "on 256 RU/EN" in ov.recipe
        assert p["int8-openvino"]["cos_min"] >= 0.995 and p["int8-openvino"]["cos_mean"] >= 0.998
        assert set(ov.gate["figures"]["top10_overlap"]) == {"en", "ru"} and ov.gate["passed"]
    gated = [v for v in (here, "int8-openvino") if v in m.variants and m.variants[v].gate_passed]
    assert Encoder.load(r.folder, autotune=False).variant == (gated + ["fp32"])[0]
    enc = Encoder.load(r.folder, variant="fp32")
    v = enc.encode(["Привет, мир", "Hello, world"], task="search_query")
    assert v.shape == (2, 1024)
    print({k: (round(x["cos_min"], 7), round(x["cos_mean"], 7), f"{x['max_abs']:.1e}") for k, x in p.items()})
