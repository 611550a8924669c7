"""Length-sorted, token-budgeted batches.

Padding a 10-token query to the length of a 500-token document in the same batch wastes 98% of the
work. So texts are sorted by token length, cut into batches bounded both by count and by padded tokens
(rows x longest row), and the results are put back in input order by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plan_batches"]


def plan_batches(lengths: Sequence[int], *, batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices into ``lengths`` grouped into batches, longest texts first.

    Each batch has at most ``batch_size`` rows and ``rows * max(length) <= max_batch_tokens``, except a
    single text longer than the budget, which gets a batch of its own.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        # Sorted descending, so the first row of a batch is its longest.
        width = max(longest, n)
        if current and (len(current) >= batch_size or (len(current) + 1) * width > max_batch_tokens):
            batches.append(current)
            current, width = [], n
        current.append(i)
        longest = width
    if current:
        batches.append(current)
    return batches
