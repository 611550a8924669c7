import random

import pytest

from rosberta_onnx.batching import PAD_CUT_FROM, plan_batches


@pytest.mark.parametrize("seed", range(5))
def test_batches_cover_every_index_once_within_limits(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(2, 512) for _ in range(rng.randint(1, 300))]
    bs, budget = rng.randint(1, 64), rng.randint(256, 8192)
    batches = plan_batches(lengths, batch_size=bs, max_batch_tokens=budget)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= bs
        width = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * width <= budget
        if width >= PAD_CUT_FROM:  # no short row padded to a long batch's width
            assert all(2 * lengths[i] >= width for i in b)
        # sorted: a batch holds lengths no longer than the previous batch's shortest
    widths = [max(lengths[i] for i in b) for b in batches]
    assert widths == sorted(widths, reverse=True)


def test_text_longer_than_budget_gets_its_own_batch():
    assert plan_batches([600, 10, 10], batch_size=8, max_batch_tokens=512) == [[0], [1, 2]]


def test_bad_limits_are_value_errors():
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([3], batch_size=0, max_batch_tokens=10)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        plan_batches([3], batch_size=1, max_batch_tokens=0)


def test_short_texts_are_not_padded_to_a_long_texts_width():
    # two long texts and thirty short ones: the long ones get a batch of their own
    assert plan_batches([512, 512] + [40] * 30, batch_size=32, max_batch_tokens=16384) == [
        [0, 1],
        list(range(2, 32)),
    ]
    # short batches stay whole: padding 60 tokens to 100 costs less than a second batch
    assert plan_batches([100, 60, 40], batch_size=8, max_batch_tokens=4096) == [[0, 1, 2]]
