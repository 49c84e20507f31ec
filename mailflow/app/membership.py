"""Life events: leaving, pausing and resuming, erasure, and the rematch a partner gets when
the other leaves.

These change the store and tell the partners; the answer to the person who asked (STOP,
PAUSE, ...) is the caller's. Every function runs inside the caller's transaction (or opens
its own), so a change and the mail that reports it are stored together.
"""

from __future__ import annotations

import binascii
import contextlib
import email
import email.header
import email.message
import email.policy
import functools
import logging
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailflow import matching
from mailflow.config import parse_time
from mailflow.matching import matchmaker
from mailflow.model import discussions, network, participants, partnerships, rounds
from mailflow.model.participants import NO_PAUSE, Status
from mailflow.model.partnerships import Partnership
from mailflow.program import Program
from mailflow.rulebook.cadence import Cadence
from mailflow.send import outbox
from mailflow.send.sending import send
from mailflow.store import iso, transaction

log = logging.getLogger(__name__)

TAKING_PART = (Status.APPLIED, Status.WAITING, Status.MATCHED)  # the statuses PAUSE may pause


# --- Leaving ---------------------------------------------------------------------------


def leave(program: Program, me: dict, now: datetime, cadence: Cadence, why: str = "left") -> str:
    """STOP: nothing is sent to them any more; their partner is told and, while the term has
    time left, gets a new partner. Returns what became of the partnership, for the log."""
    with transaction(program.db):
        outcome = part_from_partnership(program, me, now, cadence, why)
        participants.set_status(program.db, me["id"], Status.LEFT, now, **NO_PAUSE)
        network.unlist(program.db, me["id"])
    return outcome


def part_from_partnership(
    program: Program, me: dict, now: datetime, cadence: Cadence, why: str
) -> str:
    """Take `me` out of their active partnership, if any, and look after those who stay."""
    partnership = partnerships.active(program.db, me["id"])
    if partnership is None:
        return "no partnership"
    db = program.db
    stayers = [m for m in partnership.members if m != me["id"]]
    if len(stayers) == 2:
        # A group of three goes on as a pair.
        a, b = stayers
        partnerships.go_on_as_pair(db, partnership.id, a, b)
        for stayer in stayers:
            other = participants.by_id(program.db, b if stayer == a else a)
            _tell_partner_left(program, stayer, me, partnership, now, why, still_with=other)
        return "group of three goes on as a pair"
    partnerships.dissolve(db, partnership.id, why, now)
    outcomes = []
    for stayer in stayers:
        outcomes.append(_after_partner_left(program, stayer, me, partnership, now, cadence, why))
    return "; ".join(outcomes)


def wait_for_next_round(program: Program, me: dict, now: datetime) -> rounds.Round:
    """Out of a partnership: enrolled in the round accepting applications, and waiting (a
    paused person waits once they resume). Returns that round."""
    nxt = rounds.open_round(program.db, now)
    participants.enrol(program.db, me["id"], nxt.id, now)
    if me["status"] == Status.PAUSED:
        program.db.execute(
            "UPDATE participants SET resume_status = ?, updated_at = ? WHERE id = ?",
            [Status.WAITING, iso(now), me["id"]],
        )
    elif me["status"] == Status.MATCHED:
        participants.set_status(program.db, me["id"], Status.WAITING, now, **NO_PAUSE)
    return nxt


def _after_partner_left(
    program: Program,
    stayer_id: int,
    leaver: dict,
    old: Partnership,
    now: datetime,
    cadence,
    why: str = "left",
) -> str:
    stayer = participants.by_id(program.db, stayer_id)
    if stayer is None:
        return "partner gone"
    days_left = (old.term_end - now).days
    if stayer["status"] == Status.MATCHED and days_left >= cadence.rematch_min_days_left:
        newcomer = rematch(program, stayer, old, now)
        if newcomer is not None:
            _tell_partner_left(program, stayer_id, leaver, old, now, why, new_partner=newcomer)
            return f"rematched with {newcomer['id']}"
    # No one to rematch with (or the term is nearly over): they wait for the next round.
    nxt = wait_for_next_round(program, stayer, now)
    _tell_partner_left(
        program,
        stayer_id,
        leaver,
        old,
        now,
        why,
        next_round=nxt.name,
        nearly_over=days_left < cadence.rematch_min_days_left,
    )
    return "partner waits for the next round"


def _tell_partner_left(
    program: Program,
    stayer_id: int,
    leaver: dict,
    old: Partnership,
    now: datetime,
    why: str,
    *,
    still_with: dict | None = None,
    new_partner: dict | None = None,
    next_round: str | None = None,
    nearly_over: bool = False,
) -> None:
    stayer = participants.by_id(program.db, stayer_id)
    assert stayer is not None
    send(
        program,
        template="partner-left",
        to=stayer["email"],
        name=stayer["name"],
        context={
            "leaver": leaver["name"],
            "unreachable": why == "unreachable",
            "still_with": still_with["name"] if still_with else None,
            "new_partner": new_partner["name"] if new_partner else None,
            "next_round": next_round,
            "nearly_over": nearly_over,
            "term_end": iso(old.term_end)[:10],
        },
        key=f"partner-left:{old.id}:{leaver['id']}:{stayer_id}",
        now=now,
    )


def take(program: Program, participant_id: int, now: datetime) -> None:
    """Matched outside a round's matching: they no longer wait for the next round's."""
    participants.set_status(program.db, participant_id, Status.MATCHED, now, **NO_PAUSE)
    program.db.execute(
        "DELETE FROM applications WHERE participant_id = ?"
        " AND round_id IN (SELECT id FROM rounds WHERE state = 'open')",
        [participant_id],
    )


def add_partnership(
    program: Program,
    round_id: int,
    pair: matching.Pair,
    term_end: datetime,
    made_by: str,
    now: datetime,
) -> int:
    """A partnership made outside a round's matching (a rematch, a pair by hand), from now
    to `term_end`; its members are taken out of the wait. Returns its id."""
    members = sorted(pair.members)
    partnership_id = partnerships.add(
        program.db,
        round_id,
        members,
        now,
        term_end,
        pair.score,
        matchmaker.reasons(program, pair),
        made_by,
        now,
    )
    for member in members:
        take(program, member, now)
    return partnership_id


def rematch(program: Program, stayer: dict, old: Partnership, now: datetime) -> dict | None:
    """Pair the stayer with the best allowed person waiting for a partner, for the rest of
    the old term; introduce them to each other. None when nobody waiting fits."""
    db = program.db
    waiting = participants.select(db, "status = ? AND id != ?", [Status.WAITING, stayer["id"]])
    if not waiting:
        return None
    weights = program.rules.weights
    seeker, *candidates = matchmaker.applicants(program, [stayer, *waiting], now)
    pair = matching.best_partner(
        seeker,
        candidates,
        weights,
        former=matchmaker.former_partners(program),
    )
    if pair is None:
        return None
    newcomer = next(r for r in waiting if r["id"] in pair.members and r["id"] != stayer["id"])
    partnership_id = add_partnership(program, old.round_id, pair, old.term_end, "rematch", now)
    matchmaker.introduce(
        program,
        partnership_id,
        pair,
        {stayer["id"]: stayer, newcomer["id"]: newcomer},
        rounds.get(db, old.round_id).name,
        now,
        old.term_end,
        now,
        weights.waking_hours,
        template="rematch-intro",
        joining=newcomer["id"],
    )
    return newcomer


# --- Pausing ---------------------------------------------------------------------------


def pause(program: Program, me: dict, until: datetime | None, now: datetime) -> str:
    """PAUSE [until DATE]: nothing scheduled reaches them until then (or RESUME)."""
    if me["status"] == Status.PAUSED:
        program.db.execute(
            "UPDATE participants SET paused_until = ?, updated_at = ? WHERE id = ?",
            [iso(until) if until else None, iso(now), me["id"]],
        )
        return "changed"
    participants.set_status(
        program.db,
        me["id"],
        Status.PAUSED,
        now,
        resume_status=me["status"],
        paused_until=iso(until) if until else None,
    )
    return "paused"


def resume(program: Program, me: dict, now: datetime) -> str:
    """Back to where they were: in their partnership if it still runs, else waiting."""
    status = Status(me["resume_status"] or Status.APPLIED)
    if status == Status.MATCHED and partnerships.active(program.db, me["id"]) is None:
        status = Status.WAITING
    participants.set_status(program.db, me["id"], status, now, **NO_PAUSE)
    return status


def resume_due(program: Program, now: datetime) -> list[dict]:
    """Everyone whose pause ends by `now`: resumed and told (the tick's part)."""
    due = participants.select(
        program.db,
        "status = ? AND paused_until IS NOT NULL AND paused_until <= ?",
        [Status.PAUSED, iso(now)],
    )
    for me in due:
        with transaction(program.db):
            resume(program, me, now)
            send(
                program,
                template="resumed",
                to=me["email"],
                name=me["name"],
                context=resumed_context(program, me["id"], by_date=True),
                key=f"resumed:{me['id']}:{me['paused_until']}",
                now=now,
            )
    return due


def resumed_context(program: Program, participant_id: int, *, by_date: bool) -> dict:
    return {
        "was_paused": True,
        "by_date": by_date,
        "partnership": partnerships.summary(program.db, participant_id),
    }


# --- Erasure ---------------------------------------------------------------------------


def erase(program: Program, email: str, now: datetime, cadence: Cadence) -> None:
    """DELETE MY DATA: take them out of any partnership (their partner is looked after),
    then remove everything held that names or quotes them but a keyed hash that keeps the
    address from being written to again: their profile and answers, their messages and the
    mail to them, and, in what others sent or were sent (a partner's introduction, a
    coordinator's FIND result, the audit, a delivery report), their address, name and
    About me. Partnerships keep their member's row id, for the partners' history and so
    that the pair is never made again; that row keeps nothing but the id. The Maildir
    copies and the WAL follow in the next delivery pass, once this has committed."""
    db = program.db
    with transaction(db):
        me = participants.find(db, email)
        traces = _traces(email, me)
        if me is not None:
            # The partner is told that their partner left, not who: the notice outlives us.
            part_from_partnership(program, dict(me, name=""), now, cadence, "erased")
            for table in (
                "applications",
                "checkin_answers",
                "away_notices",
                "survey_answers",
                "invitations",
            ):
                db.execute(f"DELETE FROM {table} WHERE participant_id = ?", [me["id"]])
            db.execute("DELETE FROM scheduled WHERE participant_id = ?", [me["id"]])
            network.unlist(db, me["id"])
            participants.set_status(
                db,
                me["id"],
                Status.LEFT,
                now,
                email=participants.erased_placeholder(me["id"]),
                **dict.fromkeys(participants.PROFILE_COLUMNS, ""),
                **NO_PAUSE,
                completed_at=None,
                created_at=iso(now),
            )
        # Their posts leave the discussion's archive and every digest not yet sent.
        discussions.forget(db, email, me["id"] if me else None)
        db.execute("DELETE FROM tokens WHERE address = ?", [email])
        db.execute("DELETE FROM bounce_codes WHERE address = ?", [email])
        db.execute("DELETE FROM bounce_scores WHERE address = ?", [email])
        since = _first_trace(db, email, me)
        db.conn.create_function("mentions_erased", 1, traces.found_in)
        try:
            _forget_messages(db, email, traces, since)
            _forget_outbox(db, email, traces, since)
            _forget_free_text(db, traces, since)
        finally:
            db.conn.create_function("mentions_erased", 1, None)
        participants.mark_erased(db, email, now)
    _forget_set_aside(program.config.spool / "bad", traces)
    log.info("data deleted at its owner's request (participant %s)", me["id"] if me else "-")


ERASED = "[erased]"
LONG_ENOUGH = 24  # an About me line this long is theirs alone, wherever it is quoted


@dataclass(frozen=True)
class Traces:
    """What names or quotes an erased person: their address, their name, the longer lines
    of their About me, as they were written."""

    words: tuple[str, ...]

    @functools.cached_property
    def _folded(self) -> tuple[str, ...]:
        # The longest part of each word: a cheap test that must pass before the pattern is tried.
        return tuple(max(word.split(), key=len).casefold() for word in self.words)

    @functools.cached_property
    def _plain(self) -> tuple[bytes, ...]:
        return tuple(word.encode() for word in self._folded if word.isascii())

    def found_in(self, value: bytes | str | None) -> bool:
        """In a stored text or a raw mail, however the mail encodes them (quoted-printable,
        base64, RFC 2047 words). Only C-speed decoders and byte searches: an erasure reads
        every message since the person's first within one message's handling budget."""
        if not value:
            return False
        if isinstance(value, str):
            return self._in_text(value)
        return any(self._in_bytes(reading) for reading in _readings(value))

    def _in_bytes(self, data: bytes) -> bool:
        lowered = data.lower()
        if any(word in lowered for word in self._plain):  # rare: only then decoded
            return self._in_text(data.decode("utf-8", "replace"))
        if len(self._plain) < len(self.words):  # a word beyond ASCII: read as UTF-8
            return self._in_text(data.decode("utf-8", "replace"))
        return False

    @functools.cached_property
    def _pattern(self) -> re.Pattern:
        # Whole words only: ann@example.org is not in joann@example.org or in
        # ann@example.org.uk, and Ann Lee is not in Joann Leeds; any spaces between words
        # (a folded header, a re-wrapped line).
        words = "|".join(r"\s+".join(map(re.escape, word.split())) for word in self.words)
        return re.compile(rf"(?<![\w.+%-])(?:{words})(?![\w-]|\.\w)", re.IGNORECASE)

    def _in_text(self, text: str) -> bool:
        folded = text.casefold()
        if not any(word in folded for word in self._folded):
            return False
        return self._pattern.search(text) is not None

    def scrub(self, text: str) -> str:
        return self._pattern.sub(ERASED, text)

    def like(self, column: str) -> tuple[str, list[str]]:
        """A SQL condition and its parameters: the column holds one of them (LIKE ignores
        the case of ASCII letters)."""
        condition = " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in self.words)
        return f"({condition})", [f"%{_escaped(word)}%" for word in self.words]


def _readings(raw: bytes) -> Iterator[bytes]:
    """The raw bytes, then what its encodings decode to."""
    yield raw
    lowered = raw.lower()
    if b"quoted-printable" in lowered:
        yield binascii.a2b_qp(raw)  # the rest of the mail is only read once more
    at = lowered.find(b"base64")
    while at >= 0:  # each base64 body: from the blank line after its header to a boundary
        start = min(
            (s for s in (raw.find(b"\n\n", at), raw.find(b"\n\r\n", at)) if s >= 0),
            default=len(raw),
        )
        end = raw.find(b"\n--", start)
        end = len(raw) if end < 0 else end
        with contextlib.suppress(binascii.Error, ValueError):
            yield binascii.a2b_base64(raw[start:end])  # skips line ends and stray characters
        at = lowered.find(b"base64", max(end, at + 6))
    if b"=?" in raw:
        ends = [raw.find(blank) for blank in (b"\r\n\r\n", b"\n\n")]
        head = raw[: min((at for at in ends if at >= 0), default=len(raw))]
        with contextlib.suppress(Exception):  # a malformed encoded word: nothing to read
            words = email.header.decode_header(head.decode("ascii", "replace"))
            yield str(email.header.make_header(words)).encode()


def _escaped(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _traces(email: str, me: dict | None) -> Traces:
    words = {email.strip()}
    if me is not None:
        if len(me["name"].strip()) >= 4:
            words.add(" ".join(me["name"].split()))
        for line in me["about_me"].splitlines():
            if len(line.strip()) >= LONG_ENOUGH:
                words.add(line.strip())
    return Traces(tuple(sorted(words, key=len, reverse=True)))


def _decoded(part: email.message.Message) -> str:
    content = part.get_payload(decode=True) or b""
    try:
        return content.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        return content.decode("utf-8", "replace")


DROPPED_HEADERS = ("mime-version", "dkim-signature")  # the signature no longer holds


def redacted_mail(raw: bytes, traces: Traces) -> bytes:
    """The mail with their traces replaced, as one plain text part: what its recipient read,
    less them."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    text = [
        _decoded(part)
        for part in message.walk()
        if not part.is_multipart() and part.get_content_maintype() == "text"
    ]
    kept = email.message.EmailMessage()
    for name, value in message.items():
        if name.lower().startswith("content-") or name.lower() in DROPPED_HEADERS:
            continue
        try:
            kept[name] = traces.scrub(str(value))
        except Exception:
            continue
    kept.set_content(traces.scrub("\n".join(text)))
    return kept.as_bytes(policy=email.policy.SMTP)


def _first_trace(db, email: str, me: dict | None) -> str:
    """A day before the program first heard of them: nothing can name them before that."""
    times = [
        db.execute(
            "SELECT min(received_at) FROM messages WHERE sender = ? COLLATE NOCASE"
            " OR envelope_from = ? COLLATE NOCASE",
            [email, email],
        ).fetchone()[0],
        db.execute(
            "SELECT min(created_at) FROM outbox WHERE recipient = ? COLLATE NOCASE", [email]
        ).fetchone()[0],
        me["created_at"] if me is not None else None,
    ]
    known = [parse_time(moment) for moment in times if moment]
    return iso(min(known) - timedelta(days=1)) if known else ""


def _forget_messages(db, email: str, traces: Traces, since: str) -> None:
    """Their own messages (by the parsed sender, the envelope's or the From a long display
    name hid) keep nothing; others' that name or quote them lose their raw text."""
    for row_id, sender, envelope_from, state in db.execute(
        "SELECT id, sender, envelope_from, state FROM messages WHERE sender = ? COLLATE NOCASE"
        " OR envelope_from = ? COLLATE NOCASE OR (received_at >= ? AND mentions_erased(raw))",
        [email, email, since],
    ).fetchall():
        theirs = email.casefold() in ((sender or "").casefold(), (envelope_from or "").casefold())
        if theirs or sender is None:
            db.execute(
                "UPDATE messages SET raw = x'', sender = NULL, envelope_from = NULL,"
                " message_id = NULL, dedupe_key = 'erased:' || id WHERE id = ?",
                [row_id],
            )
        elif state != "received":  # one still to be handled keeps its text until it is
            db.execute("UPDATE messages SET raw = x'' WHERE id = ?", [row_id])


def _forget_outbox(db, email: str, traces: Traces, since: str) -> None:
    """Mail to them goes; mail to others that names them is redacted once sent, and
    dropped while unsent (an introduction to a partnership that ended with them). The
    Maildir copies of both are taken care of by the next delivery pass."""
    touched = []
    for row_id, recipient, state, raw in db.execute(
        "SELECT id, recipient, state, raw FROM outbox WHERE recipient = ? COLLATE NOCASE"
        " OR (created_at >= ? AND mentions_erased(raw))",
        [email, since],
    ).fetchall():
        touched.append(row_id)
        if recipient.casefold() == email.casefold() or state != "sent":
            db.execute("DELETE FROM outbox WHERE id = ?", [row_id])
            continue
        try:
            clean = redacted_mail(raw, traces)
        except Exception:
            clean = b""
        db.execute("UPDATE outbox SET raw = ?, last_error = NULL WHERE id = ?", [clean, row_id])
    outbox.scrub_later(db, touched)


# Tables whose rows carry a time, read only since the person's first trace: their raw
# mail makes every other column slow to reach.
SINCE = {"messages": "received_at", "outbox": "created_at"}


def _forget_free_text(db, traces: Traces, since: str) -> None:
    """Every other text in the store (the audit's commands and results, tokens' payloads,
    a bounce's detail, an outcome): their traces replaced, wherever a table keeps them."""
    tables = [
        name
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name NOT IN ('schema_migrations', 'settings', 'erased')"
        ).fetchall()
    ]
    for table in tables:
        columns = [
            (column[1], (column[2] or "").upper())
            for column in db.execute(f'PRAGMA table_info("{table}")').fetchall()
            if not (table in ("messages", "outbox") and column[1] == "raw")
        ]
        # Text is searched by SQLite itself, in one pass a table; a rare blob column is
        # read here.
        conditions, parameters = [], []
        for name, kind in columns:
            if kind == "BLOB":
                conditions.append(f'mentions_erased("{name}")')
            elif not kind or any(word in kind for word in ("CHAR", "TEXT", "CLOB")):
                condition, words = traces.like(f'"{name}"')
                conditions.append(condition)
                parameters.extend(words)
        if not conditions:
            continue
        names = ", ".join(f'"{name}"' for name, _ in columns)
        where = f"({' OR '.join(conditions)})"
        if table in SINCE:
            where += f' AND "{SINCE[table]}" >= ?'
            parameters.append(since)
        rows = db.execute(
            f'SELECT rowid, {names} FROM "{table}" WHERE {where}', parameters
        ).fetchall()
        for rowid, *values in rows:
            for (name, _), value in zip(columns, values, strict=True):
                if not isinstance(value, str | bytes) or not traces.found_in(value):
                    continue
                clean = b"" if isinstance(value, bytes) else traces.scrub(value)
                try:
                    db.execute(f'UPDATE "{table}" SET "{name}" = ? WHERE rowid = ?', [clean, rowid])
                except sqlite3.IntegrityError:  # a unique column: made unique again
                    db.execute(
                        f'UPDATE "{table}" SET "{name}" = ? WHERE rowid = ?',
                        [f"{ERASED} {table} {rowid}", rowid],
                    )


def _forget_set_aside(folder, traces: Traces) -> None:
    """Spool files set aside as unreadable that name them."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            if traces.found_in(path.read_bytes()):
                path.unlink()


# --- An unproven STOP ------------------------------------------------------------------


def hold_all_mail(program: Program, me: dict, now: datetime) -> None:
    """An unproven STOP: nothing scheduled reaches them from now on (an open-ended pause),
    but the partnership stays until the STOP is proven; RESUME takes them back."""
    if me["status"] == Status.PAUSED:
        program.db.execute(
            "UPDATE participants SET paused_until = NULL, updated_at = ? WHERE id = ?",
            [iso(now), me["id"]],
        )
        return
    pause(program, me, None, now)
