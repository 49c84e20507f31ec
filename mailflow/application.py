"""Applying by email: the blank form, validation with every problem at once, proof of
address, and saving the application to the round that is accepting them.

A form replied to one of our reply addresses proves the address is the sender's, so it is
saved at once; the same form sent cold is confirmed by a reply first. Answers given so far
travel in the token, so a person fixing mistakes only needs to send the corrected lines.
"""

from __future__ import annotations

from mailflow import form, participants, tokens
from mailflow.conversation import Turn, continues
from mailflow.countries import country_name
from mailflow.rounds import accepting

FORM = "form"  # a reply to it carries the form (blank, or with problems to fix)
CONFIRM = "confirm-application"  # a reply to it confirms a form that arrived cold
CANCEL_WORDS = frozenset({"cancel", "no", "stop"})


def is_form(turn: Turn) -> bool:
    return form.looks_like_form(turn.message.reply)


def send_blank_form(turn: Turn) -> str:
    choices = turn.program.choices
    turn.answer(
        "application-form",
        {"fields": form.FIELDS, "choices": choices, "blank_form": form.render_answers({})},
        token_purpose=FORM,
        payload={"answers": {}},
    )
    return "application-form"


def _problems(turn: Turn, answers: dict[str, str], problems: list[form.Problem]) -> str:
    turn.answer(
        "application-problems",
        {
            "problems": problems,
            "answers_block": form.render_answers(answers),
            "choices": turn.program.choices,
        },
        token_purpose=FORM,
        payload={"answers": answers},
    )
    return "application-problems"


def details(record: dict) -> list[tuple[str, str]]:
    """(label, stored value) in form order, for showing a person exactly what we hold."""
    shown = []
    for entry in form.FIELDS:
        value = str(record.get(entry.key) or "")
        if entry.key == "country" and value:
            value = f"{country_name(value)} ({value})"
        shown.append((entry.label, value))
    return shown


def save(turn: Turn, profile: form.Profile) -> tuple[dict, bool, str | None]:
    """Save the participant and their application to the round accepting them:
    (record, was it an update, the name of the round whose window it missed)."""
    participant_id, updated = participants.upsert(turn.program.db, turn.sender, profile, turn.now)
    current, missed = accepting(turn.program.db, turn.now)
    participants.enrol(turn.program.db, participant_id, current.id, turn.now)
    record = {**profile.as_record(), "email": turn.sender, "round": current.name}
    return record, updated, missed.name if missed else None


def _received(turn: Turn, profile: form.Profile) -> str:
    record, updated, missed = save(turn, profile)
    if missed:
        turn.answer(
            "application-waitlisted",
            {"details": details(record), "round": record["round"], "missed": missed},
        )
        return "application-waitlisted"
    turn.answer(
        "application-received",
        {"details": details(record), "updated": updated, "round": record["round"]},
    )
    return "application-updated" if updated else "application-received"


@continues(FORM)
def form_reply(turn: Turn, token: tokens.Token) -> str:
    """A reply to our form or problem list: the address is proven, so a valid form is saved."""
    tokens.use(turn.program.db, token.token, turn.now)
    answers = form.merge_answers(
        token.payload.get("answers", {}), form.read_answers(turn.message.reply)
    )
    profile, problems = form.validate(answers, turn.program.choices)
    if problems:
        return _problems(turn, answers, problems)
    assert profile is not None
    return _received(turn, profile)


def cold_form(turn: Turn) -> str:
    """A filled form without a reply address of ours: check it, then ask the sender to confirm."""
    answers = form.read_answers(turn.message.reply)
    profile, problems = form.validate(answers, turn.program.choices)
    if problems:
        return _problems(turn, answers, problems)
    assert profile is not None
    turn.answer(
        "application-confirm",
        {"details": details(profile.as_record())},
        token_purpose=CONFIRM,
        payload={"answers": answers},
    )
    return "application-confirm"


@continues(CONFIRM)
def confirm_reply(turn: Turn, token: tokens.Token) -> str:
    tokens.use(turn.program.db, token.token, turn.now)
    if turn.first_line.lower().strip(" .!") in CANCEL_WORDS:
        turn.answer("application-cancelled")
        return "application-cancelled"
    # Validated again: the form rules may have changed since the form arrived, and the
    # reply may correct a line or two.
    answers = form.merge_answers(
        token.payload.get("answers", {}), form.read_answers(turn.message.reply)
    )
    profile, problems = form.validate(answers, turn.program.choices)
    if problems:
        return _problems(turn, answers, problems)
    assert profile is not None
    return _received(turn, profile)
