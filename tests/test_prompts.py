import pytest

from rosberta_onnx.errors import TaskError
from rosberta_onnx.prompts import PromptWarning, apply_prompt

P = {
    "search_query": "search_query: ",
    "search_document": "search_document: ",
    "classification": "classification: ",
    "clustering": "clustering: ",
}


def test_none_keeps_texts_as_given():
    assert apply_prompt(["a", "search_query: b"], None, P) == ["a", "search_query: b"]


def test_each_task_adds_its_prefix():
    for task, prefix in P.items():
        assert apply_prompt(["текст"], task, P) == [prefix + "текст"]


def test_unknown_task_lists_valid_ones():
    with pytest.raises(TaskError) as e:
        apply_prompt(["x"], "query", P)
    for t in P:
        assert t in str(e.value)
    assert isinstance(e.value, ValueError)


def test_already_prefixed_text_is_not_prefixed_twice_and_warns():
    with pytest.warns(PromptWarning, match=r"2 text\(s\) already start"):
        out = apply_prompt(["search_query: a", "b", "search_document:c"], "search_query", P)
    assert out == ["search_query: a", "search_query: b", "search_document:c"]
