"""A check-in's answer as people write it: a number (1-4) or a few words, first line only.

Pure: no store, no clock. What each number means, in the words mailed to partners, is
templates/_checkin.txt's; here are the words read as each.
"""

from __future__ import annotations

import re

# What each number means is templates/_checkin.txt's; these are the words read as each.
# Longest first, so "no contact" is read before "contact".
_WORDS = sorted(
    [
        ("in regular contact", 1),
        ("regular contact", 1),
        ("regular", 1),
        ("some contact", 2),
        ("a little", 2),
        ("some", 2),
        ("no word from my partner", 3),
        ("no word", 3),
        ("no contact", 3),
        ("no reply", 3),
        ("no answer", 3),
        ("silent", 3),
        ("i want to leave", 4),
        ("leave", 4),
    ],
    key=lambda entry: -len(entry[0]),
)


ANSWER_CHARACTERS = 300


def read_answer(line: str) -> int | None:
    """1-4 from "1", "1.", "(2) some", "#3", "Regular contact!", "no word"; None otherwise."""
    # The answer is a number or a short phrase at the start: a megabyte of line is not read.
    text = line[:ANSWER_CHARACTERS].strip().lower()
    number = re.match(r"^[#(\[]?\s*([1-4])(?![0-9])", text)
    if number:
        return int(number.group(1))
    words = re.sub(r"[^\w\s]", " ", text)
    words = " ".join(words.split())
    for phrase, answer in _WORDS:
        if re.search(rf"\b{re.escape(phrase)}\b", words):
            return answer
    return None
