"""Writing to a round's discussion, and choosing how much of it arrives.

A post is written to the round's address (local+round-N@domain), or as a reply to any
discussion mail, whose Reply-To is the reader's own standing token: a reply to it is
proven, and goes out as soon as the rules allow. Mail to the round's address proves
nothing (anyone can write any From), so, unless a trusted DKIM signature proves it, the
author is asked first and only their YES posts it: nobody posts in another's name.

What goes out is the text above the quote, under the author's name and country. A post
that is too long or too big, or past the day's posts, is refused with the reason; an
attachment is left out with a note; a short reply that is only a command ("QUIET",
"STOP") is that command, not a post to everyone (Mailman's administrivia check). Mail
from programs never reaches here: automatic mail and list mail are set aside before any
handler runs (`read.classify`), and the program's own addresses are refused below.

DISCUSS, DIGEST DAILY, DIGEST WEEKLY and QUIET choose the delivery; each needs proof like
any change in a person's name (a reply to the confirmation carries it out), but the
discussion's List-Unsubscribe address is proof enough for QUIET. ARCHIVE is read-only:
its answer goes to the address it names.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from mailflow.app import discussions as discussion_mail
from mailflow.conversation import commands
from mailflow.conversation.commands import command
from mailflow.conversation.turn import Turn, answer_stranger_once, continues, says_yes
from mailflow.model import coordinators, discussions, participants, tokens
from mailflow.read import parse
from mailflow.read.parse import SUBJECT_PREFIX
from mailflow.send.compose import new_message_id
from mailflow.send.sending import Thread, reply_subject

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
SUBJECT_CHARACTERS = 200
# A reply this short whose first line is a command is the command (administrivia).
COMMAND_ONLY = 60
CHOICES = {  # command -> the delivery it chooses
    "DISCUSS": "every",
    "DIGEST DAILY": "daily",
    "DIGEST WEEKLY": "weekly",
    "QUIET": "quiet",
}


def round_address(turn: Turn) -> int | None:
    """The round whose discussion address the message was written to, if any."""
    config = turn.program.config
    return discussions.round_written_to(turn.message.recipients, config.local_part, config.domain)


def write_to_round(turn: Turn, round_id: int) -> str:
    """Mail to a round's discussion address."""
    return _post(turn, round_id, proven=turn.proven)


@continues(tokens.DISCUSSION)
def reply_to_discussion(turn: Turn, token: tokens.Token) -> str:
    """A reply to a discussion mail (or to the topic): a post to the writer's round."""
    me = participants.find(turn.program.db, turn.sender)
    where = discussion_mail.of_participant(turn.program, me["id"]) if me else None
    if where is None:
        if _only_a_command(turn):
            return _run_command(turn)
        turn.answer("discussion-refused", {"reason": "not-in-round"})
        return "post-refused:not-in-round"
    return _post(turn, where.round.id, proven=True)


@continues(tokens.DISCUSSION_QUIET, always_acted=True)
def quiet_by_unsubscribe(turn: Turn, token: tokens.Token) -> str:
    """Writing to the discussion's List-Unsubscribe address: QUIET (RFC 2369), whatever the
    message says. The program's other mail goes on."""
    tokens.use(turn.program.db, token.token, turn.now)
    return _choose(turn, "quiet", proven=True)


def quiet_one_click(program, token: tokens.Token, now) -> bool:
    """QUIET for the owner of a discussion's unsubscribe token, from a one-click POST."""
    me = participants.find(program.db, token.address)
    tokens.use(program.db, token.token, now)
    if me is None:
        return True
    discussions.choose(program.db, me["id"], "quiet", now)
    log.info("one-click: participant %s chose no discussion mail", me["id"])
    return True


def _only_a_command(turn: Turn) -> bool:
    """One short line that is a command as written: the command alone ("QUIET", "Stop."),
    or one that takes words after it with them ("PAUSE until May"). "Stop by my library
    some day" and "Archive me, please" are posts."""
    lines = [line for line in turn.message.reply.splitlines() if line.strip()]
    if len(lines) != 1 or len(lines[0].strip()) > COMMAND_ONLY:
        return False
    found = commands.find(lines[0])
    if found is None:
        return False
    entry, arguments = found
    return not arguments or entry.usage != entry.name


def _run_command(turn: Turn) -> str:
    entry, arguments = commands.find(turn.first_line)  # type: ignore[misc]
    return f"command:{entry.name.lower()}:" + entry.run(turn, arguments)


def _post(turn: Turn, round_id: int, *, proven: bool) -> str:
    program, db = turn.program, turn.program.db
    config = program.config
    # The program's own addresses (local, local+anything), not its whole domain: a
    # coordinator may well write from the domain the program's address is at.
    local, _, domain = turn.sender.lower().rpartition("@")
    ours = domain == config.domain and (
        local == config.local_part or local.startswith(config.local_part + "+")
    )
    if ours or turn.message.has_header("X-Mailflow-Template"):
        # Our own mail come back (a forwarder, a misconfigured alias): never a post.
        log.info("message %d: the program's own mail written to a discussion", turn.row_id)
        return "ignored:own-mail"
    if _only_a_command(turn):
        return _run_command(turn)
    me = participants.find(db, turn.sender)
    coordinator = coordinators.find(db, turn.sender)
    in_round = me is not None and discussions.reads(db, round_id, me["id"])
    if not in_round and coordinator is None:
        if me is None:
            return answer_stranger_once(turn, "discussion-refused")
        turn.answer("discussion-refused", {"reason": "not-in-round"})
        return "post-refused:not-in-round"
    refusal = _refusal(turn, round_id)
    if refusal:
        turn.answer("discussion-refused", refusal)
        return f"post-refused:{refusal['reason']}"
    post_id = _keep(turn, round_id, me if in_round else None, proven=proven)
    if not proven:
        turn.answer(
            "discussion-confirm",
            {
                "what": "post",
                "post": discussions.post(db, post_id),
                "round": _round(turn, round_id),
            },
            token_purpose=tokens.DISCUSSION_CONFIRM,
            payload={"post": post_id},
        )
        return "post-confirm"
    return _submitted(turn, post_id)


def _round(turn: Turn, round_id: int) -> discussion_mail.Discussion:
    return discussion_mail.discussion(turn.program, round_id)


def _refusal(turn: Turn, round_id: int) -> dict | None:
    """Why this message can't be posted, as the refusal's context; None if it can."""
    db, rules = turn.program.db, turn.program.rules.discussion
    where = _round(turn, round_id)
    if discussions.is_off(db, round_id):
        return {"reason": "off", "round": where}
    size = db.execute("SELECT size FROM messages WHERE id = ?", [turn.row_id]).fetchone()[0]
    if size > rules.max_bytes:
        return {"reason": "too-big", "kilobytes": size // 1024, "most": rules.max_kilobytes}
    text = turn.message.reply.strip()
    if not text:
        return {"reason": "empty", "round": where}
    if len(text) > rules.max_characters:
        return {"reason": "too-long", "characters": len(text), "most": rules.max_characters}
    if discussions.posts_since(db, turn.sender, turn.now - DAY) >= rules.per_day:
        return {"reason": "too-many", "most": rules.per_day}
    return None


def _keep(turn: Turn, round_id: int, me: dict | None, *, proven: bool) -> int:
    """Store the post: its text, its thread, its author as others will see them."""
    db, message = turn.program.db, turn.message
    parent = discussions.post_answered(
        db, round_id, (*message.in_reply_to, *reversed(message.references))
    )
    if parent is not None:
        subject = reply_subject(parent.subject)
        # Its root and latest ones, trimmed as every thread of ours is.
        thread = Thread(parent.message_id, parent.references).references
    else:
        subject = _subject(message.subject, _round(turn, round_id).prefix)
        thread = ()
    raw = db.execute("SELECT raw FROM messages WHERE id = ?", [turn.row_id]).fetchone()[0]
    dropped = "; ".join(name or kind for name, kind, _ in parse.attachments(raw))
    coordinator = me is None
    name = (me or {}).get("name") or parse.clean(message.sender_name, 100) or "A coordinator"
    # The post's Message-ID, the same on every copy: a reply to any of them threads.
    key = f"discussion:{turn.row_id}"
    return discussions.add_post(
        db,
        round_id=round_id,
        author_email=turn.sender,
        author_name=name,
        author_country="" if coordinator else me["country"],
        facilitator=coordinator,
        subject=subject,
        body=message.reply.strip("\n"),
        dropped=dropped,
        message_id=new_message_id(turn.program.config.domain, key, turn.program.secret),
        parent_id=parent.id if parent else None,
        thread=thread,
        inbound_id=turn.row_id,
        state="unconfirmed",  # until `submit` publishes or holds it
        now=turn.now,
    )


def _subject(written: str, prefix: str) -> str:
    """A new thread's subject: what they wrote, without the round's prefix, and with one
    "Re: " if it answered something ("Re: This month's topic: ...")."""
    subject = re.sub(re.escape(prefix), "", written, flags=re.IGNORECASE).strip()
    bare = SUBJECT_PREFIX.sub("", subject).strip()
    subject = reply_subject(bare) if bare != subject else bare
    return parse.clean(subject, SUBJECT_CHARACTERS) or "(no subject)"


def _submitted(turn: Turn, post_id: int) -> str:
    outcome = discussion_mail.submit(turn.program, post_id, turn.now)
    if outcome == "held":
        turn.answer(
            "discussion-pending",
            {"post": discussions.post(turn.program.db, post_id)},
        )
    return f"post-{outcome}"


@continues(tokens.DISCUSSION_CONFIRM)
def confirm_reply(turn: Turn, token: tokens.Token) -> str:
    """A reply to discussion-confirm: only a clear YES posts, or makes the choice."""
    db = turn.program.db
    tokens.use(db, token.token, turn.now)
    post = discussions.post(db, token.payload.get("post", 0)) if "post" in token.payload else None
    if not says_yes(turn.first_line):
        if post is not None and post.state == "unconfirmed":
            discussions.set_state(db, post.id, "rejected", reason="not confirmed")
        turn.answer("discussion-confirm", {"what": "cancelled"})
        return "discussion-cancelled"
    if "mode" in token.payload:
        return _choose(turn, token.payload["mode"], proven=True)
    if post is None or post.state != "unconfirmed":
        turn.answer("discussion-confirm", {"what": "gone"})
        return "post-gone"
    refusal = _confirmed_refusal(turn, post)
    if refusal:
        discussions.set_state(db, post.id, "rejected", reason=refusal["reason"])
        turn.answer("discussion-refused", refusal)
        return f"post-refused:{refusal['reason']}"
    return _submitted(turn, post.id)


def _confirmed_refusal(turn: Turn, post: discussions.Post) -> dict | None:
    """What changed between the post and its YES: the round's discussion turned off, the
    author no longer in it, or the day's posts written meanwhile."""
    db, rules = turn.program.db, turn.program.rules.discussion
    if discussions.is_off(db, post.round_id):
        return {"reason": "off", "round": _round(turn, post.round_id)}
    me = participants.find(db, turn.sender)
    if not post.facilitator and (me is None or not discussions.reads(db, post.round_id, me["id"])):
        return {"reason": "not-in-round"}
    if post.facilitator and coordinators.find(db, turn.sender) is None:
        return {"reason": "not-in-round"}
    if discussions.posts_since(db, turn.sender, turn.now - DAY) >= rules.per_day:
        return {"reason": "too-many", "most": rules.per_day}
    return None


# --- How much arrives -----------------------------------------------------------------


def _chooser(mode: str):
    def choose(turn: Turn, arguments: str) -> str:
        return _choose(turn, mode, proven=turn.proven)

    return choose


for _name, _mode in CHOICES.items():  # DISCUSS, DIGEST DAILY, DIGEST WEEKLY, QUIET
    command(_name)(_chooser(_mode))


def _choose(turn: Turn, mode: str, *, proven: bool) -> str:
    program = turn.program
    me = participants.find(program.db, turn.sender)
    if me is None:
        answer_stranger_once(turn, "discussion-choice", {"known": False})
        return "unknown"
    if not proven:
        turn.answer(
            "discussion-confirm",
            {"what": "choice", "mode": mode},
            token_purpose=tokens.DISCUSSION_CONFIRM,
            payload={"mode": mode},
        )
        return f"{mode}-confirm"
    before, _ = discussion_mail.delivery(program, me["id"])
    discussions.choose(program.db, me["id"], mode, turn.now)
    turn.answer("discussion-choice", _choice_context(turn, me, mode, before))
    return f"chose-{mode}"


def _choice_context(turn: Turn, me: dict, mode: str, before: str) -> dict:
    rules = turn.program.rules.discussion
    return {
        "known": True,
        "mode": mode,
        "before": before,
        "discussion": discussion_mail.of_participant(turn.program, me["id"]),
        "hour": rules.digest_hour,
        "weekday": discussion_mail.weekday_name(rules.weekly_day),
    }


@command("ARCHIVE")
def archive(turn: Turn, arguments: str) -> str:
    me = participants.find(turn.program.db, turn.sender)
    found = discussion_mail.archive(turn.program, me, turn.now) if me else None
    if me is None:
        answer_stranger_once(turn, "discussion-archive", {"in_round": False, "known": False})
        return "archive:unknown"
    if found is None:
        turn.answer("discussion-archive", {"in_round": False, "known": True})
        return "archive:not-in-round"
    turn.answer("discussion-archive", {"in_round": True, **found})
    return f"archive:{len(found['posts'])}"
