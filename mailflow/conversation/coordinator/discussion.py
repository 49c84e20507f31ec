"""Coordinators facilitating a round's discussion: deciding on held posts, and HOLD,
RELEASE, DISCUSSION OFF and DISCUSSION ON.

A held post reaches each coordinator who covers its author's country as one
`discussion-held`, whose reply address is a single-use token of that coordinator's own
(`app.discussions.ask_coordinators`). A reply to it whose first line is APPROVE publishes
the post (the delivery loop's `fan_out` sends the copies); REJECT and a reason tells the
author it was not sent, and why. The token is the proof, as a reply to `command-confirm`
is: a forged From, or APPROVE written cold to the program's address, decides nothing. The
first coordinator to decide wins; each later reply is told who did. Every reply is
answered and written to the audit, and a reply that decides nothing (unclear, or the
round's discussion off) is answered with a new token, so the coordinator can try again.

HOLD, RELEASE and DISCUSSION OFF|ON change data, so they go through the preview and
CONFIRM of every coordinator's command (`coordinator.proof`). A country coordinator holds
and releases only the participants of their countries; an address with no participant
record only a program-wide coordinator may hold (a country coordinator can't know whose
it is); turning a round's discussion off or on is for program-wide coordinators only.

Nothing here sends a post's copies, and nothing here decides whether a post is held.
"""

from __future__ import annotations

from mailflow.app import discussions as discussion_mail
from mailflow.conversation.commands import TRAILING, command
from mailflow.conversation.coordinator import proof
from mailflow.conversation.coordinator.ask import (
    AUDIENCE,
    Ask,
    Refusal,
    email_address,
    only_program_wide,
    person,
    who,
)
from mailflow.conversation.turn import Turn, continues
from mailflow.model import coordinators, discussions, participants, partnerships, rounds, tokens
from mailflow.model.discussions import Post
from mailflow.send.sending import send

REASON_CHARACTERS = 500  # of a rejection's reason, quoted to the author
DECIDED_BY = "held post reply"  # the audit's proof of a decision


# --- A coordinator's reply to a held post ---------------------------------------------------


def decision(text: str) -> tuple[str, str]:
    """('approve', '') for APPROVE alone on the first line, ('reject', reason) for REJECT
    and the reason (the rest of the line, else the lines after it), ('', '') for anything
    else. Any case; a full stop, "!" or a colon after the word is no matter. "Approve? not
    sure" is not an APPROVE: it publishes to everyone, so only a clear one counts."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "", ""
    first = lines[0]
    if " ".join(first.lower().strip(" .!").split()) == "approve":
        return "approve", ""
    word, _, rest = first.partition(" ")
    if word.rstrip(TRAILING + "-").lower() != "reject":
        return "", ""
    reason = rest.strip(" :-–—") or " ".join(lines[1:])
    reason = " ".join(reason.split())
    if len(reason) > REASON_CHARACTERS:
        reason = reason[: REASON_CHARACTERS - 1].rstrip() + "…"
    return "reject", reason


@continues(tokens.DISCUSSION_HELD)
def held_reply(turn: Turn, token: tokens.Token) -> str:
    """A coordinator's reply to `discussion-held`: APPROVE, REJECT reason, or neither."""
    db = turn.program.db
    tokens.use(db, token.token, turn.now)
    post = discussions.post(db, token.payload.get("post", 0))
    coordinator = coordinators.find(db, turn.sender)
    line = turn.first_line[:200]
    if token.address != turn.sender or coordinator is None:
        # The router passes only the sender's own live token; a coordinator removed since.
        return _answer(turn, None, line, "not-coordinator", "not a coordinator")
    if post is None:  # its author's data was erased
        return _answer(turn, post, line, "gone", "post gone")
    if not coordinator.covers(post.author_country):
        return _answer(turn, post, line, "not-yours", "not their country")
    if post.state != "held":
        by = post.decided_by or ""
        return _answer(turn, post, line, "already", f"already {post.state} by {by}")
    choice, reason = decision(turn.message.reply)
    if not choice:
        return _answer(turn, post, line, "unclear", "not understood", again=True)
    if choice == "reject":
        discussions.set_state(db, post.id, "rejected", reason=reason, by=coordinator.email)
        _tell_author(turn, post, reason)
        return _answer(turn, post, line, "rejected", f"rejected: {reason}", changed=True)
    if discussions.is_off(db, post.round_id):
        return _answer(turn, post, line, "off", "discussion off", again=True)
    author = participants.find(db, post.author_email)
    if not post.facilitator and (
        author is None or not discussions.reads(db, post.round_id, author["id"])
    ):
        # They paused or left since: their words don't go out in a round they are not in.
        discussions.set_state(db, post.id, "rejected", reason="author left", by=coordinator.email)
        return _answer(turn, post, line, "author-left", "author left", changed=True)
    discussions.publish(db, post.id, turn.now, by=coordinator.email)
    return _answer(turn, post, line, "approved", "approved", changed=True)


def _answer(
    turn: Turn,
    post: Post | None,
    line: str,
    outcome: str,
    audited: str,
    *,
    changed: bool = False,
    again: bool = False,
) -> str:
    """Tell the coordinator what their reply did (`discussion-decided`), and audit it. With
    `again`, the answer carries a new token: a reply to it decides, as to the first."""
    where = discussion_mail.discussion(turn.program, post.round_id) if post else None
    decided = None
    if post is not None and outcome in ("already", "approved", "rejected", "author-left"):
        decided = discussions.post(turn.program.db, post.id)
    turn.answer(
        "discussion-decided",
        {
            "outcome": outcome,
            "post": decided or post,
            "author": discussion_mail.author_line(post) if post else "",
            "discussion": where,
            "mine": decided is not None and decided.decided_by == turn.sender,
            "readers": _readers(turn, post) if outcome == "approved" else 0,
        },
        token_purpose=tokens.DISCUSSION_HELD if again and post else None,
        payload={"post": post.id} if again and post else None,
    )
    what = f"{line} [post {post.id}]" if post else line
    proof.record(turn, what, DECIDED_BY, audited, changed)
    return f"held-{outcome}"


def _readers(turn: Turn, post: Post | None) -> int:
    """How many of the round's participants the post reaches (its author aside)."""
    if post is None:
        return 0
    default = turn.program.rules.discussion.default
    everyone = discussions.readers(turn.program.db, post.round_id, default)
    return sum(1 for reader in everyone if reader.email.lower() != post.author_email.lower())


def _tell_author(turn: Turn, post: Post, reason: str) -> None:
    send(
        turn.program,
        template="discussion-rejected",
        to=post.author_email,
        name=post.author_name,
        context={
            "post": post,
            "reason": reason,
            "discussion": discussion_mail.discussion(turn.program, post.round_id),
        },
        key=f"post-rejected:{post.id}",
        now=turn.now,
    )


# --- HOLD and RELEASE -------------------------------------------------------------------------


def _whose(ask: Ask) -> tuple[str, str]:
    """(the address written, how the answer names its owner) if this coordinator may hold
    or release it. No participant has it: only a program-wide coordinator may."""
    address = email_address(ask.arguments)
    if ask.coordinator.program_wide and participants.find(ask.db, address) is None:
        return address, address
    return address, who(person(ask, address))


def _about(ask: Ask, address: str, named: str) -> dict:
    return {
        "who": named,
        "known": named != address,
        "rules": ask.program.rules.discussion.hold,
        "waiting": discussions.held_posts(ask.db, address),
    }


def _hold_check(ask: Ask) -> tuple[str, str]:
    address, named = _whose(ask)
    if discussions.is_held(ask.db, address):
        raise Refusal("discussion", "already-held", who=named)
    return address, named


def _hold_preview(ask: Ask) -> str:
    address, named = _hold_check(ask)
    return ask.say("discussion", "hold-preview", **_about(ask, address, named))


@command(
    "HOLD",
    usage="HOLD address",
    audience=AUDIENCE,
    changes=True,
    preview=_hold_preview,
)
def hold(ask: Ask) -> str:
    address, named = _hold_check(ask)
    discussions.hold(ask.db, address, ask.sender, ask.now)
    return ask.say("discussion", "held", **_about(ask, address, named))


def _release_check(ask: Ask) -> tuple[str, str]:
    address, named = _whose(ask)
    if not discussions.is_held(ask.db, address):
        raise Refusal("discussion", "not-held", who=named)
    return address, named


def _release_preview(ask: Ask) -> str:
    address, named = _release_check(ask)
    return ask.say("discussion", "release-preview", **_about(ask, address, named))


@command(
    "RELEASE",
    usage="RELEASE address",
    audience=AUDIENCE,
    changes=True,
    preview=_release_preview,
)
def release(ask: Ask) -> str:
    address, named = _release_check(ask)
    discussions.release(ask.db, address)
    return ask.say("discussion", "released", **_about(ask, address, named))


# --- DISCUSSION OFF and ON ----------------------------------------------------------------------


def _round(ask: Ask, command_name: str) -> rounds.Round:
    """The round named after the command; unnamed, the one round whose discussion is going
    on (a round with active partnerships). Of several, the coordinator names one: turning
    the wrong discussion off is worse than a second message."""
    only_program_wide(ask, command_name)
    name = ask.arguments.strip()
    if name:
        found = rounds.named(ask.db, name)
        if found is None:
            raise Refusal("discussion", "no-such-round", name=name)
        return found
    going = [rounds.get(ask.db, found) for found in partnerships.running_rounds(ask.db)]
    if len(going) != 1:
        raise Refusal("discussion", "which-round", command=command_name, going=going)
    return going[0]


def _off_check(ask: Ask) -> rounds.Round:
    chosen = _round(ask, "DISCUSSION OFF")
    if discussions.is_off(ask.db, chosen.id):
        raise Refusal("discussion", "already-off", round=chosen)
    return chosen


def _off_preview(ask: Ask) -> str:
    return ask.say("discussion", "off-preview", round=_off_check(ask))


@command(
    "DISCUSSION OFF",
    usage="DISCUSSION OFF [round]",
    audience=AUDIENCE,
    changes=True,
    preview=_off_preview,
)
def discussion_off(ask: Ask) -> str:
    chosen = _off_check(ask)
    discussions.turn_off(ask.db, chosen.id, ask.sender, ask.now)
    return ask.say("discussion", "turned-off", round=chosen)


def _on_check(ask: Ask) -> rounds.Round:
    chosen = _round(ask, "DISCUSSION ON")
    if not discussions.is_off(ask.db, chosen.id):
        raise Refusal("discussion", "not-off", round=chosen)
    return chosen


def _on_preview(ask: Ask) -> str:
    return ask.say("discussion", "on-preview", round=_on_check(ask))


@command(
    "DISCUSSION ON",
    usage="DISCUSSION ON [round]",
    audience=AUDIENCE,
    changes=True,
    preview=_on_preview,
)
def discussion_on(ask: Ask) -> str:
    chosen = _on_check(ask)
    discussions.turn_on(ask.db, chosen.id)
    return ask.say("discussion", "turned-on", round=chosen)
