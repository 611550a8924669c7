"""The real ru-en-RoSBERTa: runs only when ROSBERTA_MODEL_DIR points at a downloaded checkpoint.

Reproduces the model card's similarities for its six example texts (fp32 within 1e-3).
"""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.realmodel

MODEL_DIR = os.environ.get("ROSBERTA_MODEL_DIR")
# The model card's example (transformers section): embeddings[:3] @ embeddings[3:].T, diagonal.
CARD_TEXTS = [
    "classification: Он нам и <unk> не нужон ваш Интернет!",
    "clustering: В Ярославской области разрешили работу бань, но без посетителей",
    "search_query: Сколько программистов нужно, чтобы вкрутить лампочку?",
    "classification: What a time to be alive!",
    "clustering: Ярославским баням разрешили работать без посетителей",
    "search_document: Чтобы вкрутить лампочку, требуется три программиста: один напишет программу извлечения "
    "лампочки, другой — вкручивания лампочки, а третий проведет тестирование.",
]
CARD_SIMILARITIES = [0.4797, 0.9409, 0.7761]


@pytest.mark.skipif(not MODEL_DIR, reason="set ROSBERTA_MODEL_DIR to a downloaded ai-forever/ru-en-RoSBERTa")
def test_real_rosberta_reproduces_the_model_card(tmp_path):
    from rosberta_export.pipeline import export
    from rosberta_onnx import Encoder

    r = export(MODEL_DIR, tmp_path / "rosberta-onnx", parity_texts=64)
    assert r.ok, r.parity_failures
    for variant, tol in (("fp32", 1e-3), ("int8", 2e-2)):
        e = Encoder.load(r.folder, variant=variant).encode(CARD_TEXTS)
        sims = (e[:3] * e[3:]).sum(1)
        np.testing.assert_allclose(sims, CARD_SIMILARITIES, atol=tol, err_msg=variant)
