"""Answers to check-ins: a reply to a `checkin` mail, read from its first line above the
quote, as a number (1-4) or in words, and stored."""

from __future__ import annotations

import re

from mailflow import tokens
from mailflow.conversation import Turn, continues
from mailflow.participants import find as find_participant
from mailflow.store import iso

CHECKIN = "checkin"
MEANINGS = {
    1: "we are in regular contact",
    2: "we have had some contact",
    3: "I have had no word from my partner",
    4: "I want to leave the program",
}
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


def read_answer(line: str) -> int | None:
    """1-4 from "1", "1.", "(2) some", "#3", "Regular contact!", "no word"; None otherwise."""
    text = line.strip().lower()
    number = re.match(r"^[#(\[]?\s*([1-4])(?![0-9])", text)
    if number:
        return int(number.group(1))
    words = re.sub(r"[^\w\s]", " ", text)
    words = " ".join(words.split())
    for phrase, answer in _WORDS:
        if re.search(rf"\b{re.escape(phrase)}\b", words):
            return answer
    return None


@continues(CHECKIN)
def checkin_reply(turn: Turn, token: tokens.Token) -> str:
    answer = read_answer(turn.first_line)
    if answer is None:
        # A fresh reply address for the same check-in: they may simply answer it again.
        tokens.use(turn.program.db, token.token, turn.now)
        turn.answer(
            "checkin-unclear",
            {"first_line": turn.first_line[:200], "meanings": MEANINGS},
            token_purpose=CHECKIN,
            payload=token.payload,
        )
        return "checkin-unclear"
    tokens.use(turn.program.db, token.token, turn.now)
    me = find_participant(turn.program.db, turn.sender)
    if me is not None:
        turn.program.db.execute(
            "INSERT INTO checkin_answers (partnership_id, participant_id, number, answer,"
            " answered_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (partnership_id, participant_id, number)"
            " DO UPDATE SET answer = excluded.answer, answered_at = excluded.answered_at",
            [
                token.payload["partnership"],
                me["id"],
                token.payload["number"],
                answer,
                iso(turn.now),
            ],
        )
    turn.answer("checkin-thanks", {"answer": answer, "meaning": MEANINGS[answer]})
    return f"checkin-{answer}"
