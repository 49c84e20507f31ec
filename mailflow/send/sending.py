"""Sending one message from a template: render, compose, queue, in the caller's transaction.

Answers to an inbound message and messages the program starts (introductions, notices)
take this one path, so headers, tokens and idempotency are the same for all of them.

One conversation, one thread. Gmail puts mail in one conversation only when the subjects
match (ignoring Re:/Fwd:) and References point at earlier messages, so a message that
continues a conversation (`Thread`) goes under the conversation's subject: the sending path
replaces the template's `Subject:` with "Re: " and the conversation's subject, stripped of
its Re:/AW:/SV:... prefixes, and carries In-Reply-To and References (RFC 5322 3.6.4). That
is an answer to a person's message (`answering`: their subject) and a follow-up the program
sends to its own mail, such as a check-in's reminder (`following`: the subject of the mail
it follows). The template's subject is the default: it names a first message, and an
answer whose conversation has no subject (or one we must not repeat, see `answering`).
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from mailflow.model import participants, tokens
from mailflow.read.parse import SUBJECT_PREFIX, Inbound, clean, decode_header, message_ids
from mailflow.send import makers, outbox, signatures, verp
from mailflow.send.compose import Attachment, Outgoing, compose, new_message_id
from mailflow.store import BATCH_BREAK, BATCH_SECONDS, give_way, transaction

if TYPE_CHECKING:  # named for its type only: the program is built above sending
    from mailflow.program import Program

log = logging.getLogger(__name__)

ANSWER = "auto-replied"  # RFC 3834: a reply to a message
NOTICE = "auto-generated"  # RFC 3834: started by the program itself
UNSUBSCRIBE_DAYS = 400  # outlives a term and the next round's wait
REFERENCES_KEPT = 10  # the first (the conversation's start) and the nine latest


@dataclass(frozen=True)
class Thread:
    """The conversation a message continues: the message it answers or follows (`parent`),
    the Message-IDs before that one, and the conversation's subject ('' when it has none
    we may use: the template's subject then stands)."""

    parent: str
    earlier: tuple[str, ...] = ()
    subject: str = ""

    @property
    def references(self) -> tuple[str, ...]:
        """The parent's References and its Message-ID (RFC 5322 3.6.4), trimmed as RFC 5537
        3.4.4 does for long threads: the first kept, so the thread keeps its root, and
        the latest ones."""
        chain = tuple(dict.fromkeys(i for i in (*self.earlier, self.parent) if i))
        if len(chain) > REFERENCES_KEPT:
            chain = (chain[0], *chain[-(REFERENCES_KEPT - 1) :])
        return chain


def reply_subject(subject: str) -> str:
    """'Re: ' and the subject without its reply and forward prefixes (Re: Re:, AW:, SV:,
    Fwd:, 回复: ...), so answers never pile up 'Re: Re: AW:'; '' for an empty one."""
    bare = SUBJECT_PREFIX.sub("", subject).strip()
    return f"Re: {bare}" if bare else ""


def answering(
    message: Inbound, *, keep_subject: bool = True, replied_to: str | None = None
) -> Thread | None:
    """The thread of an answer to `message`. Without References, a single In-Reply-To
    stands for them (RFC 5322 3.6.4). `replied_to`: the Message-ID of our mail whose reply
    address it was written to, kept in the chain when a client left it out. `keep_subject`
    False: the subject is not repeated (what a stranger wrote is not carried back under
    the program's name)."""
    if message.message_id is None:
        return None
    earlier = message.references
    if not earlier and len(message.in_reply_to) == 1:
        earlier = message.in_reply_to
    if replied_to and replied_to not in earlier:
        earlier = (replied_to, *earlier)
    return Thread(message.message_id, earlier, message.subject if keep_subject else "")


def replies_to_ours(program: Program, message: Inbound) -> bool:
    """Does `message` reply to mail of ours (a Message-ID of `new_message_id`'s form)?"""
    mine = f".mailflow@{program.config.domain}>"
    return any(i.endswith(mine) for i in (*message.in_reply_to, *message.references))


def following(program: Program, key: str) -> Thread | None:
    """The thread of a follow-up to the mail queued under `key` (a reminder of a check-in):
    its subject and References, read from the outbox; None when nothing was queued under
    it. A row whose bytes are gone (an erasure) still gives its Message-ID."""
    row = program.db.execute(
        "SELECT message_id, raw FROM outbox WHERE idempotency_key = ?", [key]
    ).fetchone()
    if row is None or not row[0]:
        return None
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(row[1] or b"")
    subject = clean(decode_header(str(head.get("Subject", "")), 500), 500)
    return Thread(row[0], message_ids(str(head.get("References", ""))), subject)


@dataclass(frozen=True)
class ListMail:
    """Mail of a round's discussion: under a `[Round N]` subject prefix, from the program's
    address under the author's name (`sender_name`; never their address), with a Reply-To
    of the recipient's standing discussion token (writing to it posts, proven) and
    List-Post naming the round's address. `message_id`: every copy of a post carries the
    post's one Message-ID, so that replies thread for everyone, as a mailing list does.
    Its List-Unsubscribe ends the discussion's mail alone (a discussion-quiet token)."""

    prefix: str
    sender_name: str
    list_id: str  # its own List-Id, so that a filter can sort the discussion apart
    post_address: str
    message_id: str | None = None

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("List-Id", self.list_id), ("List-Post", f"<mailto:{self.post_address}>"))


@dataclasses.dataclass(frozen=True)
class Listing:
    """The headers filters and mail clients look for, and the footer's unsubscribe link."""

    headers: tuple[tuple[str, str], ...]
    unsubscribe_url: str = ""  # the one-click page, when the program has a public address


def list_headers(
    program: Program,
    to: str,
    now: datetime,
    *,
    answer: bool,
    unsubscribe: bool,
    purpose: str = tokens.UNSUBSCRIBE,
    issued: list[tuple] | None = None,
) -> Listing:
    """List-Id (RFC 2919) and List-Help (RFC 2369) on every message, so a filter can sort
    all of the program's mail by one header; List-Unsubscribe to the address's standing
    unsubscribe token, and the one-click form (RFC 8058) with a link for the footer when
    the program has a public HTTPS address, unless `unsubscribe` is False.

    Unsubscribing an address that takes no part (a stranger answered) stops nothing and
    harms nothing: it is answered as STOP from a stranger is. Answers ask Exchange and
    Outlook not to send out-of-office replies (an answer goes to someone who just wrote,
    so "I am away" is no news), but only the out-of-office kinds: delivery reports are
    our bounces. Mail the program starts keeps them: a check-in's away notice is stored.
    No `Precedence: bulk`, which Exchange also reads: it is not a standard, and filters
    (Gmail's among them) may count it against the mail; Auto-Submitted (RFC 3834) already
    tells every other responder. `purpose`: what the unsubscribe token does (a round's
    discussion mail unsubscribes from the discussion alone). `issued`: where a new standing
    token's row goes, to be stored with the mail (see `make`), instead of at once."""
    config = program.config
    headers = [
        ("List-Id", f"{phrase(config.program_name)} <{config.local_part}.{config.domain}>"),
        ("List-Help", f"<mailto:{config.address}?subject=HELP>"),
    ]
    url = ""
    if unsubscribe:
        token = _standing(program, purpose, to, now, issued)
        targets = [f"<mailto:{config.token_address(token)}>"]
        if config.public_url:
            url = f"{config.public_url.rstrip('/')}/unsubscribe/{token}"
            targets.append(f"<{url}>")
        headers.append(("List-Unsubscribe", ", ".join(targets)))
        if url:
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    if answer:
        # [MS-OXCMAIL] 2.1.3.2.20: OOF and AutoReply; not DR/NDR, which would stop bounces.
        headers.append(("X-Auto-Response-Suppress", "OOF, AutoReply"))
    return Listing(tuple(headers), url)


def _standing(
    program: Program, purpose: str, to: str, now: datetime, issued: list[tuple] | None
) -> str:
    """The address's standing token of `purpose` (`tokens.standing`); a new one's row is
    added to `issued` when that is given, else stored at once."""
    if issued is None:
        return tokens.standing(
            program.db, purpose=purpose, address=to, now=now, days=UNSUBSCRIBE_DAYS
        )
    found = tokens.live_standing(
        program.db, purpose=purpose, address=to, now=now, days=UNSUBSCRIBE_DAYS
    )
    if found is None:
        # One a person in a batch too: mail made before this batch was stored names it.
        found = next((row[0] for row in issued if row[1] == purpose and row[2] == to), None)
    if found is None:
        found = tokens.new_token()
        issued.append(tokens.row(found, purpose, to, now, UNSUBSCRIBE_DAYS))
    return found


def _with(headers, replacing) -> tuple[tuple[str, str], ...]:
    """`headers`, each of `replacing` in the place of the one of its name (or added)."""
    names = {name for name, _ in replacing}
    kept = [(name, value) for name, value in headers if name not in names]
    return (*replacing[:1], *kept, *replacing[1:])


def phrase(name: str) -> str:
    """The program's name as the phrase before List-Id's <id>: quoted if it holds a
    character RFC 5322 reserves; a name beyond ASCII is left to the header's encoding."""
    name = " ".join(name.split())
    if name.isascii() and re.search(r'[()<>\[\]:;@\\,."]', name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def send(
    program: Program,
    *,
    template: str,
    to: str,
    name: str = "",
    context: dict | None = None,
    key: str,
    now: datetime,
    auto_submitted: str = NOTICE,
    token_purpose: str | None = None,
    payload: dict | None = None,
    thread: Thread | None = None,
    inbound_id: int | None = None,
    unsubscribe: bool = True,
    attachments: tuple[Attachment, ...] = (),
    farewell: bool = False,
    token_days: int | None = None,
    as_list: ListMail | None = None,
) -> str | None:
    """Queue `template` to `to` unless `key` was queued before; return its Message-ID.

    Every message carries List-Unsubscribe but the farewell (its token would keep the
    erased address) and mail with `unsubscribe` False: what coordinators are sent as
    coordinators, which no unsubscribing could stop. A `thread` puts it in that
    conversation (its subject, In-Reply-To and References: see the module's docstring).
    Nothing is ever queued to an address whose owner had their data deleted (None, with a
    log line), but the `farewell` that tells them it is done. `as_list`: a copy of a post
    to a round's discussion (see `ListMail`).
    """
    if not farewell and participants.is_erased(program.db, to):
        log.info("not sending %s: the address's data was deleted at its owner's request", template)
        return None
    made = make(
        program,
        template=template,
        to=to,
        name=name,
        context=context,
        key=key,
        now=now,
        auto_submitted=auto_submitted,
        token_purpose=token_purpose,
        payload=payload,
        thread=thread,
        inbound_id=inbound_id,
        unsubscribe=unsubscribe,
        attachments=attachments,
        farewell=farewell,
        token_days=token_days,
        as_list=as_list,
    )
    if made is None:
        return None
    queue_made(program, [made], now)
    return made.outgoing.message_id


@dataclass(frozen=True)
class Made:
    """A message made (`make`) and not yet queued, with the rows stored with it: the
    tokens it carries and the bounce code of its return path."""

    outgoing: Outgoing
    key: str
    inbound_id: int | None
    tokens: tuple[tuple, ...]
    bounces: tuple[tuple[str, str], ...]
    farewell: bool


def queue_made(program: Program, made: list[Made], now: datetime) -> int:
    """Queue made mail, in the caller's transaction, each message with its tokens and
    bounce code, a few statements for all of them; how many were queued (a key queued
    before is not queued again). Erasure is looked at again here: someone may have asked
    for it since their mail was made."""
    erased = participants.erased_among(
        program.db, [m.outgoing.recipient for m in made if not m.farewell]
    )
    kept = [m for m in made if m.farewell or m.outgoing.recipient not in erased]
    if len(kept) < len(made):
        log.info("not sending %d: their data was deleted meanwhile", len(made) - len(kept))
    with transaction(program.db):  # a message and its tokens, all or nothing
        tokens.insert(program.db, [row for m in kept for row in m.tokens])
        verp.remember(program, [code for m in kept for code in m.bounces])
        messages = [(m.outgoing, m.key, m.inbound_id) for m in kept]
        return outbox.queue_many(program.db, messages, now)


def make(
    program: Program,
    *,
    template: str,
    to: str,
    name: str = "",
    context: dict | None = None,
    key: str,
    now: datetime,
    auto_submitted: str = NOTICE,
    token_purpose: str | None = None,
    payload: dict | None = None,
    thread: Thread | None = None,
    inbound_id: int | None = None,
    unsubscribe: bool = True,
    attachments: tuple[Attachment, ...] = (),
    farewell: bool = False,
    token_days: int | None = None,
    as_list: ListMail | None = None,
) -> Made | None:
    """`template` to `to` made ready to queue (`queue_made`), reading the store and
    writing nothing, so a big send makes its mail outside any transaction (see `send`,
    whose arguments it takes). Whether the address's data was deleted is `queue_made`'s
    to see, for a whole batch at once: looked up here for each mail, it took a tenth of
    making one.
    """
    config = program.config
    issued: list[tuple] = []  # the rows of the tokens it carries, stored with it
    listing = list_headers(
        program,
        to,
        now,
        answer=auto_submitted == ANSWER,
        unsubscribe=unsubscribe and not farewell,
        purpose=tokens.DISCUSSION_QUIET if as_list else tokens.UNSUBSCRIBE,
        issued=issued,
    )
    message_id = (as_list and as_list.message_id) or new_message_id(
        config.domain, key, program.secret
    )
    reply_to = None
    if as_list:
        reply_to = config.token_address(_standing(program, tokens.DISCUSSION, to, now, issued))
    token = None
    if token_purpose:
        token = tokens.new_token()
        days = token_days or config.token_days
        issued.append(tokens.row(token, token_purpose, to, now, days, payload, message_id))
    values = {
        "program": {"name": config.program_name, "address": config.address},
        "name": name,
        "email": to,
        "token_days": token_days or config.token_days,
        "unsubscribe_url": listing.unsubscribe_url,
        **(context or {}),
    }
    rendered = program.renderer.render(template, values)
    subject = (reply_subject(thread.subject) if thread else "") or rendered.subject
    if as_list:
        subject = f"{as_list.prefix} {subject}"
        reply_to = reply_to or (config.token_address(token) if token else None)
    elif token:
        reply_to = config.token_address(token)
    # A bounce of this mail names its recipient; not for the farewell, which must leave
    # nothing of the address behind.
    return_path, bounce = (None, None) if farewell else verp.coded(program, to)
    outgoing = compose(
        template=template,
        subject=subject,
        body=rendered.body,
        sender_name=as_list.sender_name if as_list else config.program_name,
        sender=config.address,
        recipient=to,
        recipient_name=name,
        message_id=message_id,
        now=now,
        reply_to=reply_to,
        in_reply_to=thread.parent if thread else None,
        references=thread.references if thread else (),
        auto_submitted=auto_submitted,
        extra_headers=_with(listing.headers, as_list.headers) if as_list else listing.headers,
        attachments=attachments,
        envelope_from=return_path,
    )
    if program.dkim_key is not None:
        # Signed as queued: the stored bytes are the bytes sent, at every retry.
        signed = signatures.sign(
            outgoing.raw, config.dkim_selector or "", config.domain, program.dkim_key
        )
        outgoing = dataclasses.replace(outgoing, raw=signed)
    return Made(outgoing, key, inbound_id, tuple(issued), (bounce,) if bounce else (), farewell)


Item = TypeVar("Item")
FIRST_BATCH = 500  # items in a big send's first batch; then as many as store in half the time


@dataclass
class Batches:
    """What a big send did: mail queued, its transactions, and the longest of them (the
    longest another writer could have waited for the lock), in seconds."""

    queued: int = 0
    transactions: int = 0
    longest: float = 0.0


def send_in_batches(
    program: Program,
    items: Sequence[Item],
    make_one: Callable[[Item], Made | list[Made] | None],
    now: datetime,
    *,
    also: Callable[[list[Item]], None] | None = None,
    seconds: float = BATCH_SECONDS,
    elsewhere: makers.Maker | None = None,
) -> Batches:
    """A big send that never stalls the mail coming in. Each item's mail (one message,
    several or none) is made (`make_one`, which reads and never writes) outside any
    transaction, `seconds` of making at a time and no more than the last batch's pace
    stores in half of that; then that batch is queued, with `also`'s rows for its items,
    in one transaction, which holds the write lock only to store it.
    The making between two transactions is the break a waiting writer needs (`give_way`
    adds one when making was quicker). Each batch is all or nothing and every message has
    its key, so a crash midway queues nothing twice. Inside a caller's transaction, one
    savepoint a batch.

    `elsewhere`: `make_one` as a module's function of (program, item, now), for helper
    processes to make a big send's mail with (`makers`); not inside a caller's
    transaction, whose uncommitted rows they could not see."""
    db, done = program.db, Batches()
    outer = db.conn.in_transaction
    if elsewhere is not None and len(items) >= makers.HELPED_FROM and not outer:
        each: Iterator = makers.made(program, elsewhere, items, now)
    else:
        each = map(make_one, items)
    rested, position, most = time.monotonic(), 0, FIRST_BATCH
    while position < len(items):
        making, batch, made = time.monotonic(), [], []
        while (
            position < len(items)
            and len(batch) < most
            and (not batch or time.monotonic() - making < seconds)
        ):
            batch.append(items[position])
            position += 1
            one = next(each)
            made += [] if one is None else one if isinstance(one, list) else [one]
        if time.monotonic() - making >= BATCH_BREAK:
            rested = time.monotonic()  # nobody waited on us while we made the batch
        if not outer:
            rested = give_way(rested)
        holding = time.monotonic()
        with transaction(db):
            done.queued += queue_made(program, made, now)
            if also is not None:
                also(batch)
        held = time.monotonic() - holding
        # The next batch: as many items as this one stored in half of `seconds`. Mail made
        # by helpers comes faster than it is stored: a batch of all that came within
        # `seconds` held the lock for over a second.
        most = max(1, int(len(batch) * seconds / 2 / max(held, 0.001)))
        done.transactions += 1
        done.longest = max(done.longest, held)
    return done
