"""The native peers (CTranslate2, llama.cpp) as benchmark systems on the tiny stand-in: each converts the checkpoint
once into its cache, checks that conversion against torch, and a conversion that disagrees is a skip naming the
figure, never a row. llama.cpp's tests need the ``peers`` extra (it compiles llama.cpp); CI installs CTranslate2 only.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

pytestmark = pytest.mark.torch

from benchmarks.harness.base import Context, Skip  # noqa: E402
from benchmarks.systems import make_system  # noqa: E402
from benchmarks.systems.peer_files import checked, ct2_model  # noqa: E402

TEXTS = ["Hello world, this is a test.", "Привет, мир! Это проверка.", "search_query: ukulele players in Moscow"]
needs_ct2 = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None, reason="pip install ctranslate2")
needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="needs the peers extra: pip install 'rosberta-onnx[peers]'"
)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("peers-cache")  # conversions (and llama.cpp's converter) fetched once


@pytest.fixture
def ctx(tiny_artifact, shared_cache, monkeypatch):
    monkeypatch.setenv("ROSBERTA_PEERS_CACHE", str(shared_cache))
    c = Context(tiny_artifact, reference=None, threads=1)
    yield c
    c.close()


def _torch(ctx) -> np.ndarray:
    from benchmarks.systems.peers import _reference

    ref, _ = _reference(ctx)
    return ref.embed(TEXTS, batch_size=8)


def _run(name: str, ctx) -> tuple[np.ndarray, object]:
    system = make_system(name, ctx)
    system.build()
    system.prepare()
    system.load()
    try:
        return system.encode(TEXTS, own_batching=True), system
    finally:
        system.close()


@needs_ct2
def test_ctranslate2_int8_is_converted_checked_and_close_to_torch(ctx):
    got, system = _run("ct2-int8", ctx)
    cos = (got * _torch(ctx)).sum(1)
    assert got.shape == (len(TEXTS), ctx.facts.dim) and cos.min() > 0.999
    folder, meta = ct2_model(ctx, "float32")
    assert meta["parity"]["cos_min"] > 0.9999  # the float32 conversion computes torch's function
    # the stand-in's tokenizer covers fewer ids than its embedding matrix: padded, and said so
    assert any("padded with" in n for n in system.notes)


@needs_ct2
def test_a_conversion_that_disagrees_with_torch_is_a_skip_naming_the_figure(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("ROSBERTA_PEERS_CACHE", str(tmp_path))  # its verdict must not reach the other tests
    folder, _ = ct2_model(ctx, "float32")
    rng = np.random.default_rng(0)

    def wrong(texts):  # what a conversion with shifted position ids or a mislabelled vocabulary gives: other vectors
        v = rng.standard_normal((len(texts), ctx.facts.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    with pytest.raises(Skip, match=r"disagrees with torch fp32 \(cosine min -?0\.\d+ < 0\.9999"):
        checked(ctx, folder, "CTranslate2", "float32", wrong)
    # the figure is kept with the conversion: the next run skips it without recomputing
    assert json.loads((folder / "conversion.json").read_text())["parity"]["cos_min"] < 0.9
    with pytest.raises(Skip):
        make_system("ct2-int8", ctx).prepare()


@needs_llama
@pytest.mark.parametrize("name", ["llama-f16", "llama-q8_0", "llama-q4_k_m"])
def test_llama_cpp_gguf_files_are_converted_checked_and_close_to_torch(ctx, name):
    got, system = _run(name, ctx)
    cos = (got * _torch(ctx)).sum(1)
    assert got.shape == (len(TEXTS), ctx.facts.dim) and cos.min() > 0.99
    assert any("roberta-bpe" in n for n in system.notes)  # the stand-in's tokenizer hash is unknown to llama.cpp


@needs_ct2
def test_a_tokenizer_that_pads_is_given_unpadded_to_ctranslate2(
    tiny_artifact, tiny_checkpoint, shared_cache, tmp_path, monkeypatch
):
    """MiniLM's tokenizer.json pads every text to 128 tokens; CTranslate2 takes ragged ids and would read the pads as
    tokens (its conversion check then fails at cosine 0.22, as it did once on MiniLM)."""
    import shutil

    from tokenizers import Tokenizer

    art = tmp_path / "padded"
    shutil.copytree(tiny_artifact, art)
    tok = Tokenizer.from_file(str(art / "tokenizer.json"))
    tok.enable_padding(length=64, pad_id=_pad_id(art), pad_token="<pad>")
    tok.save(str(art / "tokenizer.json"))
    monkeypatch.setenv("ROSBERTA_PEERS_CACHE", str(shared_cache))
    c = Context(art, reference=tiny_checkpoint, threads=1)
    try:
        got, _ = _run("ct2-int8", c)
        assert (got * _torch(c)).sum(1).min() > 0.999
    finally:
        c.close()


def _pad_id(art) -> int:
    from rosberta_onnx.manifest import Manifest

    return Manifest.read(art).model.pad_token_id
