"""Replies to the end-of-term survey: a 1-5 rating, would they sign up again, a comment.

What is readable is stored at once; what is missing may be added by replying again, to
the fresh reply address the thanks carries. The survey itself is sent by
`schedule.endofterm`.
"""

from __future__ import annotations

from mailflow.conversation.turn import Turn, continues
from mailflow.model import rounds, tokens
from mailflow.model.participants import find as find_participant
from mailflow.read.survey import read_survey
from mailflow.store import iso


@continues(tokens.SURVEY)
def survey_reply(turn: Turn, token: tokens.Token) -> str:
    """A reply to the survey: a 1-5 rating, would they sign up again, a comment."""
    tokens.use(turn.program.db, token.token, turn.now)
    answer = read_survey(turn.message.reply)
    if answer.rating is None and answer.again is None and not answer.comment:
        # Nothing readable: a fresh reply address for the same survey.
        turn.answer(
            "survey-thanks",
            {"understood": False, "answer": answer},
            token_purpose=tokens.SURVEY,
            payload=token.payload,
        )
        return "survey-unclear"
    me = find_participant(turn.program.db, turn.sender)
    if me is not None:
        turn.program.db.execute(
            "INSERT INTO survey_answers (partnership_id, participant_id, rating, again, comment,"
            " answered_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (partnership_id, participant_id) DO UPDATE SET"
            " rating = coalesce(excluded.rating, rating), again = coalesce(excluded.again, again),"
            " comment = CASE WHEN excluded.comment != '' THEN excluded.comment ELSE comment END,"
            " answered_at = excluded.answered_at",
            [
                token.payload["partnership"],
                me["id"],
                answer.rating,
                None if answer.again is None else int(answer.again),
                answer.comment[:5000],
                iso(turn.now),
            ],
        )
    missing = answer.rating is None or answer.again is None
    turn.answer(
        "survey-thanks",
        {
            "understood": True,
            "answer": answer,
            "next_round": rounds.open_round(turn.program.db, turn.now).name,
        },
        # Part of it missing: they may add it by replying again.
        token_purpose=tokens.SURVEY if missing else None,
        payload=token.payload if missing else None,
    )
    return "survey-answered"
