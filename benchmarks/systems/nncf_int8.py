"""OpenVINO int8 as its users make it: NNCF post-training quantisation of the fp32 model.

Static int8 (activation scales fixed at calibration), ``model_type=TRANSFORMER`` (SmoothQuant on the
MatMul inputs, the transformer ignored-patterns), NNCF's default fast bias correction; calibrated on
``SENTENCES`` RU/EN STS *train* sentences, one per inference, as sentence-transformers' OpenVINO
int8 export calibrates. The strongest CPU int8 peer measured in ../shared/PEERS.md.
"""

from __future__ import annotations

import time

__all__ = ["SENTENCES", "RECIPE", "nncf_quantize"]

SENTENCES = 200
RECIPE = (
    f"NNCF post-training int8 (static activation scales, SmoothQuant, fast bias correction), "
    f"{SENTENCES} RU/EN STS train sentences"
)


def nncf_quantize(model, tokenize):
    """``model``: an ``openvino.Model`` with dynamic input shapes; ``tokenize(list[str]) -> (ids, mask)``.
    Returns (quantised model, seconds it took)."""
    import nncf

    from rosberta_export.quantize import calibration_texts

    names = {i.get_any_name() for i in model.inputs}
    items = []
    for text in calibration_texts(SENTENCES):
        ids, mask = tokenize([text])
        items.append({k: v for k, v in (("input_ids", ids), ("attention_mask", mask)) if k in names})
    t0 = time.perf_counter()
    q = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))
    return q, time.perf_counter() - t0
