"""A round's discussion by mail: what happens to a post once it is written, and how the
discussion reaches each of the round's active participants.

A post is kept as the author wrote it above the quote. It is held for a coordinator when
the rules or a HOLD say so (`submit`); otherwise, or once approved, it is published. A
published post goes out to everyone who takes every post as one copy each, all copies
under the post's one Message-ID (`fan_out`); the daily and weekly digests gather it with
the others of their period (`send_digests`), RFC 1153 style; ARCHIVE gives the current
topic's posts in one mail (`archive`).

Big sends never stall the mail coming in: the copies and the digests are queued in
transactions that each hold the store's write lock for at most BATCH_SECONDS, with a
break between them for any other writer (`store.give_way`), and the copies are queued after
the post's own transaction has committed, by whichever process delivers the outbox
(`fan_out` runs before every delivery pass). Each copy has an idempotency key, so a crash
midway never makes a second copy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailflow.config import parse_time
from mailflow.model import coordinators, discussions, partnerships, rounds, tokens
from mailflow.model.discussions import Post, Reader
from mailflow.program import Program
from mailflow.read.countries import country_name
from mailflow.rulebook.discussion import DAYS
from mailflow.send.sending import ListMail, Thread, phrase, send
from mailflow.store import BATCH_SECONDS, give_way, iso, transaction

log = logging.getLogger(__name__)

CHUNK = 500  # people read from the store at a time, while queuing copies
DIGEST_POSTS = 50  # the most posts one digest carries in full; the rest are counted
ARCHIVE_POSTS = 100  # the most posts ARCHIVE sends in full (the latest ones)
PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
TOKEN_DAYS = 400  # a discussion's reply and unsubscribe addresses outlive a term


@dataclass(frozen=True)
class Discussion:
    """A round's discussion as its mail names it."""

    round: rounds.Round
    address: str  # where anyone in the round writes to everyone

    @property
    def prefix(self) -> str:
        return f"[{self.round.name}]"


def discussion(program: Program, round_id: int) -> Discussion:
    config = program.config
    return Discussion(
        rounds.get(program.db, round_id),
        discussions.address(config.local_part, config.domain, round_id),
    )


def of_participant(program: Program, participant_id: int) -> Discussion | None:
    """The discussion of the round this participant is taking part in, if any."""
    partnership = partnerships.active(program.db, participant_id)
    return discussion(program, partnership.round_id) if partnership else None


def delivery(program: Program, participant_id: int) -> tuple[str, bool]:
    """(how the discussion reaches them, whether they chose it rather than the default)."""
    chosen = discussions.mode(program.db, participant_id)
    return chosen or program.rules.discussion.default, chosen is not None


def list_mail(program: Program, where: Discussion, sender_name: str, message_id=None):
    config = program.config
    return ListMail(
        prefix=where.prefix,
        sender_name=sender_name,
        list_id=(
            f"{phrase(f'{where.round.name} discussion, {config.program_name}')}"
            f" <{discussions.ADDRESS_PREFIX}{where.round.id}.{config.local_part}.{config.domain}>"
        ),
        post_address=where.address,
        message_id=message_id,
    )


def weekday_name(day: int) -> str:
    return DAYS[day].capitalize()


def author_line(post: Post) -> str:
    """How a post is signed: the author's name and country, never their address."""
    if post.facilitator:
        return f"{post.author_name} (facilitator)"
    return f"{post.author_name} ({country_name(post.author_country)})"


# --- A post, once written ------------------------------------------------------------------


def hold_reason(program: Program, post: Post) -> str:
    """Why the post waits for a coordinator ('held', 'all', 'first'), or '' if it does not.
    A facilitator's post is never held."""
    if post.facilitator:
        return ""
    db, hold = program.db, program.rules.discussion.hold
    if discussions.is_held(db, post.author_email):
        return "held"
    if hold == "all":
        return "all"
    if hold == "first" and not discussions.has_published(db, post.round_id, post.author_email):
        return "first"
    return ""


def submit(program: Program, post_id: int, now: datetime) -> str:
    """A proven post goes out, or waits for a coordinator: 'published' or 'held'."""
    post = discussions.post(program.db, post_id)
    assert post is not None
    reason = hold_reason(program, post)
    if reason:
        discussions.set_state(program.db, post_id, "held", reason=reason)
        ask_coordinators(program, post, reason, now)
        return "held"
    discussions.publish(program.db, post_id, now)
    return "published"


def ask_coordinators(program: Program, post: Post, reason: str, now: datetime) -> int:
    """One `discussion-held` to each coordinator who covers the author's country; a reply
    APPROVE or REJECT reason to it decides (`conversation.coordinator.discussion`). How
    many were asked."""
    where = discussion(program, post.round_id)
    asked = 0
    for coordinator in coordinators.listing(program.db):
        if not coordinator.covers(post.author_country):
            continue
        send(
            program,
            template="discussion-held",
            to=coordinator.email,
            context={
                "post": post,
                "author": author_line(post),
                "author_email": post.author_email,
                "reason": reason,
                "discussion": where,
            },
            key=f"held:{post.id}:{coordinator.email}",
            now=now,
            token_purpose=tokens.DISCUSSION_HELD,
            payload={"post": post.id},
            unsubscribe=False,
        )
        asked += 1
    if not asked:
        log.warning("post %d is held, and no coordinator covers its author's country", post.id)
    return asked


# --- Every post, as it comes -----------------------------------------------------------------


def fan_out(program: Program, now: datetime | None = None, seconds: float = BATCH_SECONDS) -> int:
    """Queue a copy of each published post to everyone of its round who takes every post
    (but its author), in transactions of at most `seconds`; how many copies were queued."""
    db = program.db
    now = now or program.now()
    default = program.rules.discussion.default
    queued, rested = 0, time.monotonic()
    for post_id, after in list(discussions.to_fan_out(db)):
        done = False
        while not done:
            rested = give_way(rested)
            with transaction(db):
                post = discussions.post(db, post_id)
                if post is None or post.state != "published":  # erased meanwhile
                    break
                where = discussion(program, post.round_id)
                started = time.monotonic()
                readers = discussions.readers(
                    db, post.round_id, default, modes=("every",), after=after, limit=CHUNK
                )
                done = len(readers) < CHUNK
                for reader in readers:
                    if reader.email.lower() != post.author_email.lower():
                        _copy(program, where, post, reader, now)
                        queued += 1
                    after = reader.id
                    if time.monotonic() - started > seconds and reader is not readers[-1]:
                        done = False
                        break
                discussions.fanned(db, post_id, after, now if done else None)
    return queued


def _copy(program: Program, where: Discussion, post: Post, reader: Reader, now: datetime):
    references = post.references
    send(
        program,
        template="discussion-post",
        to=reader.email,
        name=reader.name,
        context={"post": post, "author": author_line(post), "discussion": where},
        key=f"post:{post.id}:{reader.id}",
        now=now,
        thread=Thread(references[-1], references[:-1]) if references else None,
        as_list=list_mail(
            program,
            where,
            f"{author_line(post)} via {program.config.program_name}",
            post.message_id,
        ),
    )


# --- Digests --------------------------------------------------------------------------


def digest_due(program: Program, mode: str, now: datetime) -> datetime:
    """The end of the latest period of a `mode` digest that has ended by `now`: today's (or
    the week's) digest hour, or the one before it."""
    rules = program.rules.discussion
    cutoff = now.replace(hour=rules.digest_hour, minute=0, second=0, microsecond=0)
    if cutoff > now:
        cutoff -= timedelta(days=1)
    if mode == "weekly":
        cutoff -= timedelta(days=(cutoff.weekday() - rules.weekly_day) % 7)
    return cutoff


def send_digests(program: Program, now: datetime, seconds: float = BATCH_SECONDS) -> int:
    """Each daily and weekly digest that fell due, to those who chose it, of the posts of
    their period; none when there was nothing. In transactions of at most `seconds`.
    How many digests were queued."""
    db = program.db
    default = program.rules.discussion.default
    queued, rested = 0, time.monotonic()
    for round_id in partnerships.running_rounds(db):
        if discussions.is_off(db, round_id):
            continue
        where = discussion(program, round_id)
        oldest = discussions.oldest_digest(db, round_id)
        for mode, period in PERIODS.items():
            cutoff = digest_due(program, mode, now)
            # Each reader's digest covers what came after their last one (or one period),
            # so none of them can have a post when the round has none since the oldest of
            # those: then nobody is gone through (100,000 readers took 30 s a tick) and
            # nobody is marked, which changes nothing, there being no post to leave out.
            since = min(filter(None, [oldest, iso(cutoff - period)]))
            if not discussions.count_published(db, round_id, since, cutoff):
                continue
            gathered: dict[str, tuple[list[Post], int]] = {}
            after = 0
            while True:
                rested = give_way(rested)
                with transaction(db):
                    readers = discussions.readers(
                        db, round_id, default, modes=(mode,), after=after, limit=CHUNK
                    )
                    if not readers:
                        break
                    through = discussions.digests_through(db, [r.id for r in readers])
                    started = time.monotonic()
                    for reader in readers:
                        after = reader.id
                        last = through.get(reader.id)
                        if last is not None and last >= iso(cutoff):
                            continue
                        since = max(last or iso(cutoff - period), reader.chosen_at)
                        if since not in gathered:
                            gathered[since] = (
                                discussions.published(db, round_id, since, cutoff, DIGEST_POSTS),
                                discussions.count_published(db, round_id, since, cutoff),
                            )
                        posts, total = gathered[since]
                        if posts:
                            _digest(program, where, reader, mode, posts, total, cutoff, now)
                            queued += 1
                        discussions.digested(db, reader.id, cutoff)
                        if time.monotonic() - started > seconds:
                            break
    return queued


def _digest(program, where, reader, mode, posts, total, cutoff, now) -> None:
    send(
        program,
        template="discussion-digest",
        to=reader.email,
        name=reader.name,
        context={
            "mode": mode,
            "date": cutoff.strftime("%-d %B %Y"),
            "posts": [(post, author_line(post)) for post in posts],
            "more": total - len(posts),
            "discussion": where,
        },
        key=f"digest:{mode}:{reader.id}:{iso(cutoff)}",
        now=now,
        as_list=list_mail(program, where, f"{where.round.name} discussion"),
    )


# --- ARCHIVE --------------------------------------------------------------------------


def archive(program: Program, me: dict, now: datetime) -> dict | None:
    """The current topic's discussion so far, for the ARCHIVE answer: the posts of their
    round since the latest topic mail they were sent (or since their partnership began),
    the latest ARCHIVE_POSTS of them in full. None when they take part in no round."""
    db = program.db
    partnership = partnerships.active(db, me["id"])
    if partnership is None:
        return None
    since = discussions.latest_topic(db, me["email"]) or iso(partnership.created_at)
    posts = discussions.published(db, partnership.round_id, since, now, ARCHIVE_POSTS)
    total = discussions.count_published(db, partnership.round_id, since, now)
    return {
        "posts": [(post, author_line(post)) for post in posts],
        "more": total - len(posts),
        "since": parse_time(since).strftime("%-d %B %Y"),
        "discussion": discussion(program, partnership.round_id),
        "off": discussions.is_off(db, partnership.round_id),
    }
