"""The model this project is for, and its prompt table: facts the commands need before torch is imported."""

from __future__ import annotations

__all__ = ["DEFAULT_MODEL", "ROSBERTA_PROMPTS"]

DEFAULT_MODEL = "ai-forever/ru-en-RoSBERTa"
ROSBERTA_PROMPTS = {
    "search_query": "search_query: ",
    "search_document": "search_document: ",
    "classification": "classification: ",
    "clustering": "clustering: ",
}
