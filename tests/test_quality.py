"""The gate's figures helpers, on vectors computed here."""

import numpy as np

from rosberta_onnx.quality import memo, sts_figures


def _embedder(calls: list):
    """A deterministic stand-in for an encoder: each (text, task) maps to its own unit vector; records each call."""

    def embed(texts, task):
        calls.append((list(texts), task))
        rows = [np.random.default_rng(abs(hash((t, task))) % 2**32).standard_normal(8) for t in texts]
        v = np.array(rows, dtype=np.float32).reshape(len(texts), 8)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    return embed


def test_memo_encodes_each_text_once_per_task_and_keeps_the_callers_order():
    calls: list = []
    raw, cached = _embedder([]), memo(_embedder(calls))
    first = cached(["b", "a", "b"], None)
    assert calls == [(["b", "a"], None)]  # the repeated text within a call, too, is encoded once
    again = cached(["a", "c", "b"], None)
    assert calls[-1] == (["c"], None)  # only the text not seen under this task
    cached(["a"], "search_query")
    assert calls[-1] == (["a"], "search_query")  # another task is another text
    np.testing.assert_array_equal(first, raw(["b", "a", "b"], None))
    np.testing.assert_array_equal(again, raw(["a", "c", "b"], None))
    assert cached([], None).shape == (0, 8)


def test_sts_figures_through_memo_equal_the_uncached_figures_with_fewer_texts_encoded():
    """A model without task prefixes: every sentence1 is also a query and every sentence2 a document, so the cached
    gate encodes each sentence once per model, with the same figures."""
    pairs = {"en": [(f"q{i}", f"d{i % 30}", float(i % 5)) for i in range(40)]}
    plain_calls: list = []
    cached_calls: list = []
    plain = sts_figures(_embedder(plain_calls), _embedder([]), prompts={}, pairs=pairs)
    cached = sts_figures(memo(_embedder(cached_calls)), _embedder([]), prompts={}, pairs=pairs)
    assert plain == cached
    n = lambda calls: sum(len(t) for t, _ in calls)
    assert n(plain_calls) == 40 + 40 + 40 + 30 and n(cached_calls) == 40 + 30
