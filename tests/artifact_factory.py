"""A small rosberta-onnx artifact built without torch, for the fast test tier.

    build_artifact(folder, pooling="cls")   -> folder with manifest.json, tokenizer.json, fp32, int8, int8-avx2, int4

The model is a 2-layer RoBERTa-shaped encoder written with ``onnx.helper`` from seeded numpy weights: word and
position embeddings with RoBERTa's position ids (counted from the first non-pad token, starting at pad id + 1),
multi-head self-attention that masks padding, a GELU feed-forward block and post-LayerNorm residuals. Its
tokenizer is a byte-level BPE trained on the shipped STS sentences with RoBERTa's specials (<s>=0, <pad>=1,
</s>=2). ``int8`` is the exporter's own row-wise recipe (torch-free: onnx, onnxruntime and numpy; round to
nearest, calibrated on STS train sentences), ``int8-avx2`` the same file with the exporter's unsigned weights,
``int4`` the exporter's 4-bit writer (rounded to nearest), all with the exporter's int8 embedding tables; their gate
records are measured here against fp32 on real sentences, on this machine's ISA: random weights, so the cosine
criteria are judged and nothing else. The reference set that ``verify`` reads holds the exporter's parity cases with
this fp32 graph's vectors (the fast tier has no PyTorch to make them).

The weights are random, so the vectors mean nothing; what the runtime does with them (tokenisation, prefixes,
truncation, batching, pooling, checksums, errors) is what the fast tier tests. Everything that needs the real
exporter or a PyTorch reference is in the slow tier.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rosberta_export.corpus import LANGS, sts_pairs
from rosberta_export.defaults import ROSBERTA_PROMPTS
from rosberta_export.gate import INT8_GATE, gate_record
from rosberta_export.parity import THRESHOLDS, parity_cases
from rosberta_onnx.hardware import cpu_isa
from rosberta_onnx.manifest import FORMAT_VERSION, Manifest, ModelFacts, VariantRecord, sha256_file
from rosberta_onnx.reference import write_reference

__all__ = ["build_artifact", "HIDDEN", "LAYERS", "MAX_LENGTH"]

HIDDEN, HEADS, FFN, LAYERS = 32, 2, 64, 2
MAX_POSITIONS, PAD = 514, 1
MAX_LENGTH = MAX_POSITIONS - (PAD + 1)  # RoBERTa: positions start at pad id + 1
VOCAB = 2000
OPSET = 17
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def _tokenizer():
    from tokenizers import ByteLevelBPETokenizer, processors

    texts = [s for lang in LANGS for p in sts_pairs(lang, "train") for s in (p.sentence1, p.sentence2)]
    tok = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    tok.train_from_iterator(texts, vocab_size=VOCAB, min_frequency=2, special_tokens=SPECIALS, show_progress=False)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    return tok


def _graph(rng: np.random.Generator, vocab: int):
    """The encoder as an ONNX model: (input_ids, attention_mask) int64 (b, s) -> last_hidden_state (b, s, HIDDEN)."""
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(name: str, *shape: int, scale: float = 0.5) -> str:
        return const(name, (rng.standard_normal(shape) * scale / np.sqrt(shape[0])).astype(np.float32))

    def op(kind: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def layer_norm(x: str, name: str) -> str:
        return op(
            "LayerNormalization",
            [x, const(f"{name}.g", np.ones(HIDDEN, np.float32)), const(f"{name}.b", np.zeros(HIDDEN, np.float32))],
            name,
            axis=-1,
            epsilon=1e-5,
        )

    one = const("one", np.array(1, np.int64))
    # RoBERTa's positions: cumsum over the non-pad tokens, pad id + 1 onwards, pad positions at pad id
    not_pad = op(
        "Cast",
        [op("Not", [op("Equal", ["input_ids", const("pad", np.array(PAD, np.int64))], "is_pad")], "is_tok")],
        "tok_i64",
        to=TensorProto.INT64,
    )
    positions = op(
        "Add",
        [
            op("Mul", [op("CumSum", [not_pad, one], "cum"), not_pad], "cum_tok"),
            const("pad_id", np.array(PAD, np.int64)),
        ],
        "positions",
    )
    x = op(
        "Add",
        [
            op("Gather", [weight("word_emb", vocab, HIDDEN, scale=1.0), "input_ids"], "words"),
            op("Gather", [weight("pos_emb", MAX_POSITIONS, HIDDEN, scale=1.0), positions], "pos"),
        ],
        "emb",
    )
    x = layer_norm(x, "emb_ln")
    # additive mask (b, 1, 1, s): 0 for tokens, -10000 for padding
    mask_f = op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    bias = op(
        "Mul",
        [
            op("Sub", [const("onef", np.array(1.0, np.float32)), mask_f], "inv_mask"),
            const("neg", np.array(-10000.0, np.float32)),
        ],
        "mask_bias",
    )
    bias = op("Unsqueeze", [bias, const("axes12", np.array([1, 2], np.int64))], "mask_b11s")
    split = const("split_shape", np.array([0, 0, HEADS, HIDDEN // HEADS], np.int64))
    merge = const("merge_shape", np.array([0, 0, HIDDEN], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(HIDDEN // HEADS), np.float32))
    for i in range(LAYERS):

        def proj(name: str, inp: str, k: int, n: int) -> str:
            return op(
                "Add",
                [
                    op("MatMul", [inp, weight(f"l{i}.{name}.w", k, n)], f"l{i}.{name}.mm"),
                    const(f"l{i}.{name}.b", np.zeros(n, np.float32)),
                ],
                f"l{i}.{name}",
            )

        def heads(t: str) -> str:
            return op("Transpose", [op("Reshape", [t, split], f"{t}.split")], f"{t}.heads", perm=[0, 2, 1, 3])

        q, k, v = (heads(proj(n, x, HIDDEN, HIDDEN)) for n in ("q", "k", "v"))
        scores = op(
            "Add",
            [
                op(
                    "Mul",
                    [op("MatMul", [q, op("Transpose", [k], f"l{i}.kT", perm=[0, 1, 3, 2])], f"l{i}.qk"), scale],
                    f"l{i}.scaled",
                ),
                bias,
            ],
            f"l{i}.masked",
        )
        ctx = op("MatMul", [op("Softmax", [scores], f"l{i}.probs", axis=-1), v], f"l{i}.ctx_heads")
        ctx = op("Reshape", [op("Transpose", [ctx], f"l{i}.ctx_t", perm=[0, 2, 1, 3]), merge], f"l{i}.ctx")
        x = layer_norm(op("Add", [x, proj("o", ctx, HIDDEN, HIDDEN)], f"l{i}.res1"), f"l{i}.ln1")
        up = proj("up", x, HIDDEN, FFN)  # GELU(x) = x/2 (1 + erf(x / sqrt 2))
        gelu = op(
            "Mul",
            [
                op("Mul", [up, const(f"l{i}.half", np.array(0.5, np.float32))], f"l{i}.half_up"),
                op(
                    "Add",
                    [
                        op(
                            "Erf",
                            [
                                op(
                                    "Div",
                                    [up, const(f"l{i}.sqrt2", np.array(np.sqrt(2), np.float32))],
                                    f"l{i}.scaled_up",
                                )
                            ],
                            f"l{i}.erf",
                        ),
                        "onef",
                    ],
                    f"l{i}.erf1",
                ),
            ],
            f"l{i}.gelu",
        )
        x = layer_norm(op("Add", [x, proj("down", gelu, FFN, HIDDEN)], f"l{i}.res2"), f"l{i}.ln2")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        nodes,
        "factory_encoder",
        [
            helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
            for n in ("input_ids", "attention_mask")
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def _gate(folder: Path, variant: str, recipe: str) -> dict:
    """A quantised variant against fp32 through onnxruntime on real sentences: cosine figures and a gate record."""
    from rosberta_onnx import Encoder

    texts = [p.sentence1 for lang in LANGS for p in sts_pairs(lang, "dev")[:40]]
    fp32 = Encoder.load(folder, variant="fp32", verify=False).encode(texts)
    quantised = Encoder.load(folder, variant=variant, verify=False).encode(texts)
    cos = (fp32 * quantised).sum(1)
    parity = {
        "n": len(texts),
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
        "max_abs": float(np.abs(fp32 - quantised).max()),
        "worst_case": f"sts[{int(cos.argmin())}]",
    }
    figures = {"pairs_per_lang": 0, "top10_overlap": {}, "spearman_fp32": {}, "spearman_int8": {}}
    gate = gate_record(parity, figures, random_weights=True, thresholds=INT8_GATE)
    return {
        "parity": {**parity, "thresholds": {}, "passed": True, "failures": []},
        "gate": {**gate, "recipe": recipe},
    }


def _quantised(folder: Path, text_tok) -> None:
    """``model_int8.onnx``, ``model_int8_avx2.onnx`` and ``model_int4.onnx`` from the fp32 graph, as the exporter
    writes them."""
    import onnx

    from rosberta_export.embedding_int8 import quantize_embedding_tables
    from rosberta_export.int4 import Int4Settings, plan_int4, write_int4
    from rosberta_export.quantize import quantize_int8
    from rosberta_export.unsigned_int8 import unsigned_weights

    fp32 = folder / "model.onnx"
    quantize_int8(fp32, folder / "model_int8.onnx", recipe="rowwise-sq-rtn", tokenizer=text_tok)
    int8 = onnx.load(str(folder / "model_int8.onnx"))
    int4_settings = Int4Settings(block=32, accuracy_level=4, gptq=False)
    int4 = write_int4(fp32, plan_int4(fp32, None, int4_settings), int4_settings)
    for model, name in ((int8, "model_int8.onnx"), (int4, "model_int4.onnx")):
        quantize_embedding_tables(model.graph)
        onnx.save(model, str(folder / name))
    unsigned_weights(int8.graph)
    onnx.save(int8, str(folder / "model_int8_avx2.onnx"))


def _reference(folder: Path, text_tok) -> dict:
    """The reference set: the exporter's parity cases (16 real sentences) with this fp32 graph's vectors."""
    from rosberta_onnx import Encoder

    cases = parity_cases(16, max_length=MAX_LENGTH, count_tokens=lambda t: text_tok.tokenize([t]).token_counts[0])
    texts = [c.text for c in cases]
    vectors = Encoder.load(folder, variant="fp32", verify=False).encode(texts)
    sts = {lang: sts_pairs(lang, "dev")[:32] for lang in LANGS}
    made_by = "the test factory's fp32 ONNX graph (no PyTorch in the fast tier)"
    return write_reference(folder, [c.name for c in cases], texts, vectors, sts, made_by=made_by)


def build_artifact(folder: str | os.PathLike, *, pooling: str = "cls", seed: int = 0) -> Path:
    """Write the artifact into ``folder`` (created; must not exist) and return it."""
    import onnx

    from rosberta_onnx.tokenize import TextTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True)
    tok = _tokenizer()
    tok.save(str(folder / "tokenizer.json"))
    model = _graph(np.random.default_rng(seed), tok.get_vocab_size())
    onnx.checker.check_model(model)
    onnx.save_model(
        model,
        str(folder / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
    )  # weights apart, as the exporter writes fp32; shapes stay inline
    text_tok = TextTokenizer(folder / "tokenizer.json", max_length=MAX_LENGTH, pad_id=PAD)
    _quantised(folder, text_tok)
    facts = ModelFacts(
        architecture="roberta",
        hidden_size=HIDDEN,
        num_layers=LAYERS,
        num_heads=HEADS,
        intermediate_size=FFN,
        vocab_size=tok.get_vocab_size(),
        pad_token_id=PAD,
        max_position_embeddings=MAX_POSITIONS,
        max_length=MAX_LENGTH,
        pooling=pooling,
        normalize=True,
        prompts=dict(ROSBERTA_PROMPTS),
    )

    def record(name: str, files: list[str], recipe: str, **extra) -> VariantRecord:
        return VariantRecord(
            name=name,
            file=files[0],
            files={f: sha256_file(folder / f) for f in files},
            size_bytes=sum((folder / f).stat().st_size for f in files),
            recipe=recipe,
            **extra,
        )

    variants = {
        "fp32": record(
            "fp32",
            ["model.onnx", "model.onnx.data"],
            "fp32, numpy weights (test factory)",
            parity={"thresholds": THRESHOLDS["fp32"], "passed": True, "failures": []},  # the reference: itself
        ),
        "int8": record("int8", ["model_int8.onnx"], "rowwise-sq-rtn (the exporter's recipe, test factory)"),
        "int8-avx2": record(
            "int8-avx2", ["model_int8_avx2.onnx"], "the int8 file with unsigned weights (test factory)"
        ),
        "int4": record(
            "int4", ["model_int4.onnx"], "int4 rounded to nearest, blocks of 32 (the exporter's, test factory)"
        ),
    }
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        source={
            "model": "test-factory",
            "revision": f"seed-{seed}",
            "kind": "local",
            "stand_in": True,
            "note": "random numpy weights built without torch for the fast test tier: meaningless embeddings",
        },
        model=facts,
        tokenizer_file="tokenizer.json",
        tokenizer_sha256=sha256_file(folder / "tokenizer.json"),
        opset=OPSET,
        tools={"onnx": onnx.__version__},
        variants=variants,
    )
    manifest.write(folder)
    for variant, recipe in (
        ("int8", "rowwise-sq-rtn"),
        ("int8-avx2", "rowwise-sq-rtn-u8-weights"),
        ("int4", "int4-rtn-b32-acc4"),
    ):
        gated = {**_gate(folder, variant, recipe), "isa": cpu_isa()}
        variants[variant] = VariantRecord(**{**variants[variant].__dict__, **gated})
    reference = _reference(folder, text_tok)
    Manifest(**{**manifest.__dict__, "variants": variants, "reference": reference}).write(folder)
    (folder / "ORIGIN.json").write_text(json.dumps({"built_by": __name__, "seed": seed, "pooling": pooling}))
    return folder
