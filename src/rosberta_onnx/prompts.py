"""The prefix contract: task names map to the manifest's prompt table, and nothing is prefixed twice.

ru-en-RoSBERTa was trained with task prefixes (``search_query: ``, ``search_document: ``,
``classification: ``, ``clustering: ``); a text embedded without one gives a valid-looking but
off-label vector, and one embedded with two is off-label too. So:

- ``task=None`` embeds the texts exactly as given;
- an unknown task raises :class:`TaskError` listing the valid ones;
- a text that already starts with any known prefix is left alone, and a warning says how many were.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from .errors import TaskError

__all__ = ["apply_prompt", "apply_prompt_spans", "PromptWarning", "known_prefix"]


class PromptWarning(UserWarning):
    """Some texts already carried a task prefix and were not prefixed again."""


def known_prefix(text: str, prompts: Mapping[str, str]) -> str | None:
    """The task whose prefix ``text`` already starts with (trailing space optional), else ``None``."""
    head = text.lstrip()
    for name, prefix in prompts.items():
        stem = prefix.rstrip()
        if stem and head.startswith(stem):
            return name
    return None


def apply_prompt(texts: list[str], task: str | None, prompts: Mapping[str, str]) -> list[str]:
    return apply_prompt_spans(texts, task, prompts)[0]


def apply_prompt_spans(texts: list[str], task: str | None, prompts: Mapping[str, str]) -> tuple[list[str], list[int]]:
    """:func:`apply_prompt`, plus where each prepared text's own words start: the characters of its task prefix
    (added, or already there; 0 with ``task=None``). Chunking repeats that prefix in every window."""
    if task is None:
        return texts, [0] * len(texts)
    if task not in prompts:
        valid = ", ".join(repr(t) for t in prompts) or "(none: this model has no prompt table; pass task=None)"
        raise TaskError(f"unknown task {task!r}; valid tasks for this model: {valid}, or None for no prefix")
    prefix = prompts[task]
    out: list[str] = []
    starts: list[int] = []
    already: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        found = known_prefix(t, prompts)
        if found is None:
            out.append(prefix + t)
            starts.append(len(prefix))
        else:
            already.setdefault(found, []).append(i)
            out.append(t)
            stem = prompts[found].rstrip()
            starts.append(len(t) - len(t.lstrip()) + len(stem))
    if already:
        parts = "; ".join(f"{len(ix)} with {prompts[name]!r} (first at index {ix[0]})" for name, ix in already.items())
        warnings.warn(
            f"task={task!r}: {sum(map(len, already.values()))} text(s) already start with a task prefix and were "
            f"not prefixed again: {parts}. Pass task=None to embed texts exactly as given.",
            PromptWarning,
            stacklevel=4,
        )
    return out, starts
