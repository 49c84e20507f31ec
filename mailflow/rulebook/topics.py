"""The monthly discussion topics, from `rules/topics.toml`.

Coordinators edit the list without touching code, so it is read with errors that name the
file, the topic's number and the key, the way a person would fix it. The file is a list of
[[topic]] entries, not sections of known keys, so it is read by `read_file` and checked
here, an entry at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailflow.errors import RulesError
from mailflow.rulebook import read_file

FILE = "topics.toml"


@dataclass(frozen=True)
class Topic:
    title: str
    text: str


def load_topics(rules: Path) -> tuple[Topic, ...]:
    """The topics in order; RulesError naming the file, the topic and the key when wrong."""
    path = rules / FILE
    data = read_file(path)
    unknown = sorted(set(data) - {"topic"})
    if unknown:
        raise RulesError(f"{path}: unknown section {unknown[0]!r}; topics are [[topic]] entries")
    entries = data.get("topic")
    if not isinstance(entries, list) or not entries:
        raise RulesError(f"{path}: needs at least one [[topic]] with a title and a text")
    topics, titles = [], set()
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: topic {number}"
        if not isinstance(entry, dict):
            raise RulesError(f"{where}: must be a [[topic]] with a title and a text")
        extra = sorted(set(entry) - {"title", "text"})
        if extra:
            raise RulesError(f"{where}: unknown key {extra[0]!r}; a topic has a title and a text")
        values = {}
        for key in ("title", "text"):
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise RulesError(f"{where}: {key} must be some text, not {value!r}")
            values[key] = value.strip()
        if "\n" in values["title"]:
            raise RulesError(f"{where}: title must be one line (it is the subject)")
        if values["title"].casefold() in titles:
            raise RulesError(f"{where}: the title {values['title']!r} is used twice")
        titles.add(values["title"].casefold())
        topics.append(Topic(**values))
    return tuple(topics)


def topic_for_month(topics: tuple[Topic, ...], month: int) -> Topic:
    """The topic of a partnership's `month`-th month (1 for the first), round and round."""
    if month < 1:
        raise ValueError(f"months are counted from 1, not {month}")
    return topics[(month - 1) % len(topics)]
