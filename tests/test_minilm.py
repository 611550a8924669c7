"""Real trained weights (all-MiniLM-L6-v2, BERT, mean pooling): where quantisation error shows."""

import numpy as np
import pytest

from rosberta_onnx import Encoder

pytestmark = pytest.mark.torch


def test_minilm_manifest_facts(minilm_export):
    f = minilm_export.manifest.model
    assert (f.architecture, f.pooling, f.normalize, f.pad_token_id, f.dim) == ("bert", "mean", True, 0, 384)
    assert f.max_length == 256  # sentence_bert_config.json caps 512 positions at 256, as sentence-transformers does
    assert dict(f.prompts) == {}


def test_minilm_parity_fp32_fp16(minilm_export):
    v = minilm_export.manifest.variants
    assert v["fp32"].parity["cos_min"] >= 0.99999 and v["fp32"].parity["max_abs"] <= 1e-4, v["fp32"].parity["failures"]
    assert v["fp16"].parity["cos_min"] >= 0.999, v["fp16"].parity["failures"]
    assert minilm_export.ok


def test_minilm_int8_is_measured_and_auto_respects_its_gate(minilm_export):
    rec = minilm_export.manifest.variants["int8"]
    p = rec.parity
    assert 0.5 < p["cos_min"] <= p["cos_mean"] < 1.0  # real weights: int8 error is visible, recorded
    assert rec.gate["thresholds"] == {"cos_min": 0.995, "cos_mean": 0.998}
    assert rec.gate_passed == (p["cos_min"] >= 0.995 and p["cos_mean"] >= 0.998)
    enc = Encoder.load(minilm_export.folder)
    assert enc.variant == ("int8" if rec.gate_passed else "fp32")


def test_minilm_matches_sentence_transformers(minilm_dir, minilm_export):
    """The peer users compare against: sentence-transformers' own encode of the same model."""
    from sentence_transformers import SentenceTransformer

    from rosberta_export.corpus import parity_texts

    texts = parity_texts(32)
    st = SentenceTransformer(str(minilm_dir), device="cpu").encode(texts, normalize_embeddings=True)
    ours = Encoder.load(minilm_export.folder, variant="fp32").encode(texts)
    assert ((st * ours).sum(1)).min() >= 0.99999
