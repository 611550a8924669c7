"""sentence-transformers' ONNX backend and optimum open an exported artifact unchanged and give our vectors.

Both need ``optimum-onnx``, which pins transformers 4.57 against the exporter's transformers 5, so they run in an
environment of their own: CI's interop stage installs the runtime with ``sentence-transformers[onnx]`` and points
``ROSBERTA_INTEROP_ARTIFACTS`` (paths joined by ``os.pathsep``) at artifacts the exporter wrote in the same run
(the tiny stand-in: RoBERTa, CLS, prompts; MiniLM: BERT, mean pooling, real weights). Without them the tests are
skipped, unless ``ROSBERTA_REQUIRE_INTEROP`` is set (CI), which makes a skip a failure.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmarks.studies.interop import cosines, sentence_transformers_model
from rosberta_onnx import Encoder

ARTIFACTS = [Path(p) for p in os.environ.get("ROSBERTA_INTEROP_ARTIFACTS", "").split(os.pathsep) if p]
MISSING = (
    "needs optimum-onnx and sentence-transformers (pip install 'sentence-transformers[onnx]', its own environment) "
    "and ROSBERTA_INTEROP_ARTIFACTS=DIR[:DIR] naming exported artifacts"
)
if (
    not ARTIFACTS
    or importlib.util.find_spec("optimum") is None
    or importlib.util.find_spec("sentence_transformers") is None
):
    if os.environ.get("ROSBERTA_REQUIRE_INTEROP"):
        raise RuntimeError(f"ROSBERTA_REQUIRE_INTEROP is set, but this test {MISSING}")
    pytest.skip(MISSING, allow_module_level=True)

pytestmark = pytest.mark.interop
MIN_COS = 0.99999
TEXTS = ["A man is playing a flute.", "Человек играет на флейте.", "", "emoji 👩‍👩‍👧 and\ttabs", "слово word " * 400]


@pytest.fixture(scope="module", params=ARTIFACTS, ids=[p.name for p in ARTIFACTS])
def artifact(request) -> Path:
    return request.param


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_sentence_transformers_onnx_backend_gives_our_vectors(artifact, variant):
    enc = Encoder.load(artifact, variant=variant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optimum and transformers speak of their own deprecations
        st = sentence_transformers_model(artifact, enc.manifest.variant(variant).file)
        assert st.max_seq_length == enc.max_length
        for task in [None, *(["search_query"] if "search_query" in enc.tasks else [])]:
            got = st.encode(TEXTS, prompt_name=task, normalize_embeddings=False)
            cos = cosines(got, enc.encode(TEXTS, task=task))
            assert cos.min() >= MIN_COS, f"{variant}, prompt_name={task}: cosines {np.round(cos, 6).tolist()}"


def test_optimum_loads_the_folder_and_its_hidden_states_pool_to_ours(artifact):
    from optimum.onnxruntime import ORTModelForFeatureExtraction
    from transformers import AutoTokenizer

    enc = Encoder.load(artifact, variant="fp32")
    texts = TEXTS[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ORTModelForFeatureExtraction.from_pretrained(str(artifact), file_name=enc.manifest.variant("fp32").file)
        tok = AutoTokenizer.from_pretrained(str(artifact))
        batch = tok(texts, padding=True, truncation=True, return_tensors="np")
        hidden = model(**batch).last_hidden_state
    hidden = np.asarray(hidden, np.float32)
    if enc.manifest.model.pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
    cos = cosines(pooled, enc.encode(texts))
    assert cos.min() >= MIN_COS, np.round(cos, 6).tolist()
