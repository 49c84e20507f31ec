"""Applying by email: the blank form, validation with every problem at once, proof of
address, and saving the application to the round that is accepting them.

A form replied to one of our reply addresses proves the address is the sender's, so it is
saved at once; the same form sent cold is confirmed by a clear YES in reply first. Answers
given so far travel in the token, so a person fixing mistakes only needs to send the
corrected lines. An address whose owner had their data erased stays erased until a reply
to a form we sent it proves that the owner asked again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from mailflow.conversation import commands
from mailflow.conversation.turn import (
    Turn,
    answered_lately,
    continues,
    conversation_token,
    says_yes,
    stranger,
)
from mailflow.model import participants, tokens
from mailflow.model.rounds import accepting
from mailflow.read import form
from mailflow.read.countries import country_name
from mailflow.store import iso

ERASED_FORM_EVERY = timedelta(days=1)  # forms sent to an erased address, at most

log = logging.getLogger(__name__)


def is_form(turn: Turn) -> bool:
    return form.looks_like_form(turn.message.reply)


def send_blank_form(turn: Turn, *, past_erasure: bool = False) -> str:
    """The form, with a reply token. `past_erasure`: to an address still marked erased,
    sent as the farewell is (the mark stays until a reply to this form proves the owner)."""
    choices = turn.program.choices
    turn.answer(
        "application-form",
        {"fields": form.FIELDS, "choices": choices, "blank_form": form.render_answers({})},
        token_purpose=tokens.FORM,
        payload={"answers": {}},
        farewell=past_erasure,
    )
    return "application-form"


def from_erased(turn: Turn) -> str:
    """Mail from an address whose data was deleted at its owner's request: nothing is kept
    and nothing is answered, but APPLY or AGAIN gets the form (once a day at most: the From
    may be forged), and a reply to that form's token is handled as any other."""
    db = turn.program.db
    _, token = _own_live_token(turn)
    if token is not None and token.purpose == tokens.FORM:
        return "erased:" + form_reply(turn, token)
    found = commands.find(turn.first_line) or commands.find(turn.subject_command)
    db.execute(
        "UPDATE messages SET raw = x'', sender = NULL, envelope_from = NULL WHERE id = ?",
        [turn.row_id],
    )
    if found is None or found[0].name not in ("APPLY", "AGAIN"):
        log.info("message %d from an erased address: not answered, not kept", turn.row_id)
        return "ignored:erased"
    lately = db.execute(
        "SELECT 1 FROM tokens WHERE address = ? AND purpose = ? AND created_at >= ?",
        [turn.sender, tokens.FORM, iso(turn.now - ERASED_FORM_EVERY)],
    ).fetchone()
    if lately:
        return "ignored:erased:form-sent-today"
    return "erased:" + send_blank_form(turn, past_erasure=True)


def _own_live_token(turn: Turn) -> tuple[str | None, tokens.Token | None]:
    written, token = conversation_token(turn)
    if token is None or not turn.token_proven:
        return written, None
    return written, token


def _problems(turn: Turn, answers: dict[str, str], problems: list[form.Problem]) -> str:
    turn.answer(
        "application-problems",
        {
            "problems": problems,
            "answers_block": form.render_answers(answers),
            "choices": turn.program.choices,
        },
        token_purpose=tokens.FORM,
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


@continues(tokens.FORM)
def form_reply(turn: Turn, token: tokens.Token) -> str:
    """A reply to our form or problem list: the address is proven, so a valid form is saved.
    An erasure mark on the address goes now: its owner asked for the form and answered it."""
    tokens.use(turn.program.db, token.token, turn.now)
    if participants.is_erased(turn.program.db, turn.sender):
        participants.unerase(turn.program.db, turn.sender)
    answers = form.merge_answers(
        token.payload.get("answers", {}), form.read_answers(turn.message.reply)
    )
    profile, problems = form.validate(answers, turn.program.choices)
    if problems:
        return _problems(turn, answers, problems)
    assert profile is not None
    return _received(turn, profile)


def cold_form(turn: Turn) -> str:
    """A filled form without a reply address of ours: check it, then ask the sender to confirm.
    Both answers quote the form, and the From may be forged: to a stranger, one a day."""
    if stranger(turn) and any(
        answered_lately(turn, template)
        for template in ("application-confirm", "application-problems")
    ):
        log.info("message %d: a cold form already answered to this stranger today", turn.row_id)
        return "ignored:cold-form-today"
    answers = form.read_answers(turn.message.reply)
    profile, problems = form.validate(answers, turn.program.choices)
    if problems:
        return _problems(turn, answers, problems)
    assert profile is not None
    turn.answer(
        "application-confirm",
        {"details": details(profile.as_record())},
        token_purpose=tokens.CONFIRM_APPLICATION,
        payload={"answers": answers},
    )
    return "application-confirm"


@continues(tokens.CONFIRM_APPLICATION)
def confirm_reply(turn: Turn, token: tokens.Token) -> str:
    tokens.use(turn.program.db, token.token, turn.now)
    if not says_yes(turn.first_line):
        # Only a clear yes enrols anyone: "What is this? I never applied" must not.
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
