"""Coordinators' commands. Each takes one `ask.Ask` and returns its answer line.

Those that change data (changes=True) have a `preview` that checks everything a command
can check before it is confirmed, so a coordinator learns of a mistake before replying
CONFIRM; the command checks again when it runs, since the program may have moved on in
between. A country coordinator sees and changes only the participants of their
countries; what is not theirs is answered as if it did not exist.
"""

from __future__ import annotations

from datetime import datetime

from mailflow import matching
from mailflow.app import membership, roster
from mailflow.config import parse_time
from mailflow.conversation.commands import command, listing
from mailflow.conversation.coordinator.ask import AUDIENCE, Ask, Refusal
from mailflow.matching import matchmaker
from mailflow.model import coordinators as roles
from mailflow.model import participants, rounds, stats
from mailflow.read import dates
from mailflow.read.countries import country_name
from mailflow.send.compose import Attachment
from mailflow.send.sending import send
from mailflow.store import iso

FOUND_AT_MOST = 20
# Each word of FIND is one more LIKE over every participant; a few say what is wanted.
FIND_WORDS = 8
FIND_CHARACTERS = 200
BROADCAST_CHARACTERS = 20_000  # the text mailed to everyone; kept in the token till CONFIRM
IMPORT_ROWS = 5_000  # of an emailed file; the operator's `mailflow import` reads them all
UNKNOWN_SHOWN = 10  # words that name no country, quoted back to COORDINATOR ADD
CSV_TYPES = ("text/csv", "text/comma-separated-values", "application/vnd.ms-excel", "text/plain")
# The statuses a broadcast reaches: everyone taking part now. Paused people asked for quiet.
BROADCAST_TO = ("applied", "waiting", "matched")


# --- Who and what a coordinator may touch -----------------------------------------------


def _program_wide(ask: Ask, what: str) -> None:
    if not ask.coordinator.program_wide:
        raise Refusal(
            f"only a program-wide coordinator can {what}; you coordinate {ask.coordinator.scope()}."
        )


def _address(text: str) -> str:
    address = text.strip().strip("<>").lower()
    if not roster.ADDRESS.match(address):
        raise Refusal(f"{text.strip() or 'nothing'!r} is not an email address.")
    return address


def _person(ask: Ask, text: str) -> dict:
    """The participant with this address, if the coordinator may see them."""
    address = _address(text)
    found = participants.find(ask.db, address)
    if found is None or not ask.coordinator.covers(found["country"]):
        whose = "" if ask.coordinator.program_wide else " in your countries"
        raise Refusal(f"no participant{whose} has the address {address}.")
    return found


def _who(record: dict) -> str:
    return f"{record['name']} <{record['email']}> ({country_name(record['country'])})"


def _partners_of(ask: Ask, record: dict) -> tuple[membership.Partnership | None, list[dict]]:
    partnership = membership.active_partnership(ask.program, record["id"])
    if partnership is None:
        return None, []
    others = [participants.by_id(ask.db, m) for m in partnership.members if m != record["id"]]
    return partnership, [o for o in others if o is not None]


def _running_term(ask: Ask) -> tuple[int, datetime] | None:
    """(round id, term end) of the latest round whose term is running."""
    row = ask.db.execute(
        "SELECT id, term_end FROM rounds WHERE state = 'matched' AND term_end > ?"
        " ORDER BY term_end DESC, id DESC LIMIT 1",
        [iso(ask.now)],
    ).fetchone()
    return (row[0], parse_time(row[1])) if row else None


def _set_waiting(ask: Ask, record: dict, why: str) -> str:
    """Out of a partnership by a coordinator's hand: they wait for the next round, and are
    told. Returns the round they wait for."""
    nxt = membership.wait_for_next_round(ask.program, record, ask.now)
    send(
        ask.program,
        template="partnership-ended",
        to=record["email"],
        name=record["name"],
        context={"why": why, "next_round": nxt.name},
        key=f"partnership-ended:{ask.source_row}:{ask.turn.row_id}:{record['id']}",
        now=ask.now,
    )
    return nxt.name


# --- Read-only --------------------------------------------------------------------------


@command("HELP", audience=AUDIENCE)
def help_(ask: Ask) -> str:
    summary = ask.turn.program.renderer.sentence
    return "\n".join(
        f"{entry.usage}: {summary('_summaries', 'summary', entry)}" for entry in listing(AUDIENCE)
    )


@command(
    "STATS",
    audience=AUDIENCE,
)
def stats_(ask: Ask) -> str:
    countries = None if ask.coordinator.program_wide else ask.coordinator.countries
    figures = stats.figures(ask.db, ask.now, countries)
    ask.files.append(Attachment("stats.png", "image/png", stats.chart_png(figures)))
    return stats.text(figures)


@command(
    "FIND",
    usage="FIND text",
    audience=AUDIENCE,
)
def find(ask: Ask) -> str:
    words = ask.arguments.split()
    if not words:
        raise Refusal("write what to look for after FIND, e.g. FIND archivists in Kenya.")
    if len(words) > FIND_WORDS or len(ask.arguments) > FIND_CHARACTERS:
        raise Refusal(
            f"FIND takes at most {FIND_WORDS} words and {FIND_CHARACTERS} characters (this one"
            f" has {len(words):,} words); look for fewer, e.g. FIND archivists in Kenya."
        )
    countries, rest = roles.read_countries(words, codes_in_capitals=True)
    rest = [w for w in rest if w.lower() not in ("in", "from", "of", "and")]
    if not ask.coordinator.program_wide:
        countries = (countries & ask.coordinator.countries) if countries else None
        countries = countries if countries is not None else ask.coordinator.countries
        if not countries:
            return "No participant in your countries matches."
    where = ["email NOT LIKE ?"]
    values: list = [f"%@{participants.ERASED_DOMAIN}"]
    if countries:
        where.append(f"country IN ({', '.join('?' for _ in countries)})")
        values += sorted(countries)
    for word in rest:
        where.append(
            "(email || ' ' || name || ' ' || role || ' ' || library_type || ' ' || interests"
            " || ' ' || career_stage) LIKE ? ESCAPE '\\'"
        )
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        values.append(f"%{escaped}%")
    found = participants.select(ask.db, " AND ".join(where), values)
    if not found:
        return f"No participant matches {ask.arguments!r}."
    lines = [f"{len(found)} found" + (f", the first {FOUND_AT_MOST}:" if len(found) > 20 else ":")]
    for record in found[:FOUND_AT_MOST]:
        _, partners = _partners_of(ask, record)
        line = f"- {_who(record)}: {record['status']}"
        if partners:
            line += ", with " + " and ".join(_who(p) for p in partners)
        lines.append(line)
    return "\n".join(lines)


@command(
    "COORDINATOR LIST",
    audience=AUDIENCE,
)
def coordinator_list(ask: Ask) -> str:
    return "\n".join(f"- {c.email}: {c.scope()}" for c in roles.listing(ask.db))


@command(
    "EXPORT",
    audience=AUDIENCE,
)
def export(ask: Ask) -> str:
    countries = None if ask.coordinator.program_wide else ask.coordinator.countries
    people = list(roster.export_participants(ask.db, countries))
    partnerships = list(roster.export_partnerships(ask.db, countries))
    ask.files.append(Attachment("participants.csv", "text/csv", roster.to_csv(people).encode()))
    ask.files.append(
        Attachment("partnerships.csv", "text/csv", roster.to_csv(partnerships).encode())
    )
    return (
        f"Attached: participants.csv ({len(people) - 1} participants) and partnerships.csv"
        f" ({len(partnerships) - 1} partnerships)."
    )


# --- Matching ---------------------------------------------------------------------------


def _match_preview(ask: Ask) -> str:
    _program_wide(ask, "match a round")
    try:
        plan = matchmaker.plan(ask.program, ask.now)
    except ValueError as mistake:  # rules/matching.toml or regions.toml written wrongly
        raise Refusal(f"the matching rules need fixing first: {mistake}") from None
    return matchmaker.preview_text(ask.program, plan)


@command(
    "MATCH",
    audience=AUDIENCE,
    changes=True,
    preview=_match_preview,
)
def match(ask: Ask) -> str:
    _program_wide(ask, "match a round")
    plan = matchmaker.plan(ask.program, ask.now)
    return matchmaker.carry_out(ask.program, plan, ask.now, made_by=ask.sender)


def _rematch_check(ask: Ask) -> tuple[dict, membership.Partnership | None, list[dict]]:
    me = _person(ask, ask.arguments)
    partnership, partners = _partners_of(ask, me)
    if partnership is None and me["status"] != "waiting":
        raise Refusal(f"{_who(me)} is {me['status']}, neither in a partnership nor waiting.")
    if partnership is None and _running_term(ask) is None:
        raise Refusal(f"no round's term is running: {_who(me)} will be matched in the next round.")
    return me, partnership, partners


def _rematch_preview(ask: Ask) -> str:
    me, _, partners = _rematch_check(ask)
    waiting = participants.select(ask.db, "status = 'waiting' AND id != ?", [me["id"]])
    seeker, *candidates = matchmaker.applicants(ask.program, [me, *waiting], ask.now)
    best = matching.best_partner(
        seeker,
        candidates,
        matching.load_weights(ask.program.config.rules),
        former=matchmaker.former_partners(ask.program),
    )
    lines = []
    if partners:
        names = " and ".join(_who(p) for p in partners)
        lines.append(f"Ends the partnership with {names}, who will wait for the next round.")
    if best is None:
        lines.append("Nobody waiting fits now: they will wait for the next round.")
    else:
        newcomer = next(w for w in waiting if w["id"] in best.members)
        lines.append(f"New partner: {_who(newcomer)}, score {best.score}.")
    return " ".join(lines)


@command(
    "REMATCH",
    usage="REMATCH address",
    audience=AUDIENCE,
    changes=True,
    preview=_rematch_preview,
)
def rematch(ask: Ask) -> str:
    me, partnership, partners = _rematch_check(ask)
    why = f"rematched by coordinator {ask.sender}"
    if partnership is not None:
        membership.dissolve(ask.program, partnership.id, why, ask.now)
        for partner in partners:
            _set_waiting(ask, partner, "rematch")
    else:
        round_id, term_end = _running_term(ask)  # type: ignore[misc]  # checked above
        partnership = membership.Partnership(0, round_id, (), ask.now, term_end, ask.now)
    newcomer = membership.rematch(ask.program, me, partnership, ask.now)
    if newcomer is None:
        nxt = _set_waiting(ask, me, "no-one-waiting")
        return f"{_who(me)}: nobody waiting fits, so they wait for {nxt}."
    return f"{_who(me)} is now with {_who(newcomer)}; both were introduced."


def _pair_check(ask: Ask) -> tuple[list[dict], matching.Pair, list[str]]:
    words = ask.arguments.replace(",", " ").split()
    if len(words) != 2:
        raise Refusal("write two addresses: PAIR first@example.org second@example.org.")
    people = [_person(ask, word) for word in words]
    if people[0]["id"] == people[1]["id"]:
        raise Refusal("those are the same person.")
    for record in people:
        if record["status"] == "matched":
            raise Refusal(f"{_who(record)} is already in a partnership: END or REMATCH first.")
        if record["status"] not in ("applied", "waiting", "completed"):
            raise Refusal(f"{_who(record)} is {record['status']}.")
    applicants = matchmaker.applicants(ask.program, people, ask.now)
    former = matchmaker.former_partners(ask.program)
    weights = matching.load_weights(ask.program.config.rules)
    ids = [record["id"] for record in people]
    result = matching.match(applicants, weights, former=former, fixed=[ids], country_cap=0)
    return people, result.pairs[0], matching.broken_rules(*applicants, former)


def _pair_preview(ask: Ask) -> str:
    people, pair, notes = _pair_check(ask)
    running = _running_term(ask)
    term = f"until {iso(running[1])[:10]}" if running else "for a new term starting now"
    warning = f" Note: {'; '.join(notes)}; they are paired anyway, as you ask." if notes else ""
    return f"Pairs {_who(people[0])} with {_who(people[1])}, score {pair.score}, {term}.{warning}"


@command(
    "PAIR",
    usage="PAIR address address",
    audience=AUDIENCE,
    changes=True,
    preview=_pair_preview,
)
def pair(ask: Ask) -> str:
    people, made, _ = _pair_check(ask)
    running = _running_term(ask)
    if running:
        round_id, end = running
    else:
        round_id = rounds.to_match(ask.db, ask.now).id
        end = rounds.add_months(ask.now, rounds.term_months(ask.program.config.rules))
    partnership_id = membership.add_partnership(
        ask.program, round_id, made, end, ask.sender, ask.now
    )
    matchmaker.introduce(
        ask.program,
        partnership_id,
        made,
        {record["id"]: record for record in people},
        rounds.get(ask.db, round_id).name,
        ask.now,
        end,
        ask.now,
        matching.load_weights(ask.program.config.rules).waking_hours,
    )
    return (
        f"Paired {_who(people[0])} with {_who(people[1])} until {iso(end)[:10]}; both were"
        " introduced."
    )


def _end_check(ask: Ask) -> tuple[dict, membership.Partnership, list[dict]]:
    me = _person(ask, ask.arguments)
    partnership, partners = _partners_of(ask, me)
    if partnership is None:
        raise Refusal(f"{_who(me)} is not in a partnership ({me['status']}).")
    return me, partnership, partners


def _end_preview(ask: Ask) -> str:
    me, _, partners = _end_check(ask)
    everyone = " and ".join(_who(p) for p in [me, *partners])
    return f"Ends the partnership of {everyone}; they will wait for the next round."


@command(
    "END",
    usage="END address",
    audience=AUDIENCE,
    changes=True,
    preview=_end_preview,
)
def end(ask: Ask) -> str:
    me, partnership, partners = _end_check(ask)
    membership.dissolve(ask.program, partnership.id, f"ended by coordinator {ask.sender}", ask.now)
    nxt = ""
    for record in [me, *partners]:
        nxt = _set_waiting(ask, record, "ended")
    everyone = " and ".join(_who(p) for p in [me, *partners])
    return f"Ended the partnership of {everyone}; they wait for {nxt} and were told."


# --- Rounds -----------------------------------------------------------------------------

ROUND_KEYWORDS = ("OPEN", "CLOSE", "START")


def read_round_line(arguments: str) -> dict[str, str | None] | None:
    """`name OPEN date CLOSE date START date [END date]`, each part up to the next keyword.
    Words are walked once: a pattern of lazy groups backtracked polynomially on repeated
    keywords (16 KB of 'OPEN a CLOSE b' took a minute)."""
    words = arguments.split()
    parts: dict[str, list[str]] = {"name": []}
    current = "name"
    for index, word in enumerate(words):
        keyword = word.upper()
        wanted = ROUND_KEYWORDS[len(parts) - 1] if len(parts) <= len(ROUND_KEYWORDS) else None
        # END splits START's date only when something follows it (as the pattern did).
        if keyword == wanted or (
            keyword == "END" and current == "start" and index + 1 < len(words)
        ):
            if not parts[current]:
                return None
            current = keyword.lower()
            parts[current] = []
            continue
        parts[current].append(word)
    if "start" not in parts or not parts[current]:
        return None
    found: dict[str, str | None] = {key: " ".join(value) for key, value in parts.items()}
    found.setdefault("end", None)
    return found


def _round_check(ask: Ask) -> tuple[str, dict[str, datetime | None], rounds.Round | None]:
    _program_wide(ask, "schedule rounds")
    found = read_round_line(ask.arguments)
    if not found:
        raise Refusal(
            "write ROUND name OPEN date CLOSE date START date, and END date if the term is not"
            " the usual length, e.g. ROUND Spring 2027 OPEN 1 Feb 2027 CLOSE 28 Feb 2027"
            " START 1 Mar 2027."
        )
    name = found["name"].strip()
    if len(name) > 60:
        raise Refusal("a round's name can be at most 60 characters.")
    moments: dict[str, datetime | None] = {}
    for key in ("open", "close", "start", "end"):
        if found[key] is None:
            moments[key] = None
            continue
        moments[key] = dates.read_date(found[key], ask.now)
        if moments[key] is None:
            raise Refusal(f"{key.upper()} {found[key]!r} is not a date I can read.")
    if not moments["open"] < moments["close"] <= moments["start"]:  # type: ignore[operator]
        raise Refusal("the dates must come in order: OPEN before CLOSE, CLOSE no later than START.")
    if moments["end"] is not None and moments["end"] <= moments["start"]:  # type: ignore[operator]
        raise Refusal("END must come after START.")
    if moments["close"] <= ask.now:  # type: ignore[operator]
        raise Refusal("CLOSE is in the past.")
    return name, moments, _round_to_schedule(ask, name)


def _round_to_schedule(ask: Ask, name: str) -> rounds.Round | None:
    """The round a ROUND line changes: the open round of that name, else the round now
    accepting applications if nobody has scheduled it yet; None: a new round."""
    row = ask.db.execute(
        f"SELECT {rounds.COLUMNS} FROM rounds WHERE state = 'open' AND lower(name) = lower(?)",
        [name],
    ).fetchone()
    if row:
        return rounds.Round(*row)
    current = rounds.open_round(ask.db, ask.now)
    return current if current.closes_at is None else None


def _round_description(name: str, moments: dict[str, datetime | None]) -> str:
    day = {k: iso(v)[:10] if v else None for k, v in moments.items()}
    term = f"term from {day['start']}" + (f" to {day['end']}" if day["end"] else "")
    return f"{name}: applications {day['open']} to {day['close']}; {term}"


def _round_preview(ask: Ask) -> str:
    name, moments, existing = _round_check(ask)
    what = "Creates" if existing is None else f"Schedules {existing.name} as"
    return f"{what} {_round_description(name, moments)}."


@command(
    "ROUND",
    usage="ROUND name OPEN date CLOSE date START date [END date]",
    audience=AUDIENCE,
    changes=True,
    preview=_round_preview,
)
def round_(ask: Ask) -> str:
    name, moments, existing = _round_check(ask)
    values = [
        name,
        iso(moments["open"]),  # type: ignore[arg-type]
        iso(moments["close"]),  # type: ignore[arg-type]
        iso(moments["start"]),  # type: ignore[arg-type]
        iso(moments["end"]) if moments["end"] else None,
    ]
    if existing is None:
        ask.db.execute(
            "INSERT INTO rounds (name, opens_at, closes_at, match_at, term_end, state, created_at)"
            " VALUES (?, ?, ?, ?, ?, 'open', ?)",
            [*values, iso(ask.now)],
        )
        return f"Created {_round_description(name, moments)}."
    ask.db.execute(
        "UPDATE rounds SET name = ?, opens_at = ?, closes_at = ?, match_at = ?, term_end = ?"
        " WHERE id = ?",
        [*values, existing.id],
    )
    return f"Scheduled {_round_description(name, moments)}."


# --- Mail to everyone -------------------------------------------------------------------


def _broadcast_check(ask: Ask) -> tuple[str, list[dict]]:
    if not ask.text.strip():
        raise Refusal("write the message on the lines after BROADCAST.")
    if len(ask.text) > BROADCAST_CHARACTERS:
        raise Refusal(
            f"the message may have {BROADCAST_CHARACTERS:,} characters; this one has"
            f" {len(ask.text):,}."
        )
    subject = ask.arguments.strip() or f"News from {ask.program.config.program_name}"
    where = f"status IN ({', '.join('?' for _ in BROADCAST_TO)})"
    values: list = list(BROADCAST_TO)
    if not ask.coordinator.program_wide:
        where += f" AND country IN ({', '.join('?' for _ in ask.coordinator.countries)})"
        values += sorted(ask.coordinator.countries)
    return subject, participants.select(ask.db, where, values)


def _broadcast_preview(ask: Ask) -> str:
    subject, recipients = _broadcast_check(ask)
    first = ask.text.strip().splitlines()[0][:80]
    return f"Sends {subject!r} to {len(recipients)} participants, beginning: {first}"


@command(
    "BROADCAST",
    usage="BROADCAST [subject]",
    audience=AUDIENCE,
    changes=True,
    preview=_broadcast_preview,
    takes_text=True,
)
def broadcast(ask: Ask) -> str:
    subject, recipients = _broadcast_check(ask)
    for record in recipients:
        send(
            ask.program,
            template="broadcast",
            to=record["email"],
            name=record["name"],
            context={"subject": subject, "text": ask.text.strip("\n"), "sender": ask.sender},
            key=f"broadcast:{ask.source_row}:{record['id']}",
            now=ask.now,
        )
    return f"Sent {subject!r} to {len(recipients)} participants."


# --- Import -----------------------------------------------------------------------------


def _csv_text(ask: Ask) -> tuple[str, str]:
    files = ask.attachments()
    for filename, content_type, data in files:
        if filename.lower().endswith(".csv") or content_type in CSV_TYPES:
            return filename or "the attachment", data.decode("utf-8-sig", errors="replace")
    raise Refusal("attach the CSV file to the message with IMPORT (columns as in EXPORT).")


def _import(ask: Ask, dry_run: bool) -> str:
    filename, text = _csv_text(ask)
    countries = None if ask.coordinator.program_wide else ask.coordinator.countries
    report = roster.import_csv(
        ask.program, text, ask.now, countries=countries, dry_run=dry_run, max_rows=IMPORT_ROWS
    )
    lines = report.lines()
    head = ("Would be: " if dry_run else "") + lines[0]
    return "\n".join([f"{filename}: {head}", *lines[1:]])


@command(
    "IMPORT",
    audience=AUDIENCE,
    changes=True,
    preview=lambda ask: _import(ask, dry_run=True),
)
def import_(ask: Ask) -> str:
    return _import(ask, dry_run=False)


# --- Coordinators -----------------------------------------------------------------------


def _coordinator_add_check(ask: Ask) -> tuple[str, frozenset[str]]:
    _program_wide(ask, "add coordinators")
    words = ask.arguments.split()
    if not words:
        raise Refusal("write the address: COORDINATOR ADD someone@example.org [countries].")
    address = _address(words[0])
    countries, unknown = roles.read_countries(words[1:])
    if unknown:
        more = len(unknown) - UNKNOWN_SHOWN
        named = ", ".join(unknown[:UNKNOWN_SHOWN]) + (f" and {more:,} more" if more > 0 else "")
        raise Refusal(f"not a country: {named}.")
    return address, countries


def _coordinator_add_preview(ask: Ask) -> str:
    address, countries = _coordinator_add_check(ask)
    scope = roles.Coordinator(address, countries).scope()
    return f"Makes {address} a coordinator for {scope}."


@command(
    "COORDINATOR ADD",
    usage="COORDINATOR ADD address [country ...]",
    audience=AUDIENCE,
    changes=True,
    preview=_coordinator_add_preview,
)
def coordinator_add(ask: Ask) -> str:
    address, countries = _coordinator_add_check(ask)
    new = roles.add(ask.db, address, countries, source="command", by=ask.sender, now=ask.now)
    scope = roles.Coordinator(address, countries).scope()
    return f"{address} is {'now' if new else 'still'} a coordinator, for {scope}."


def _coordinator_remove_check(ask: Ask) -> roles.Coordinator:
    _program_wide(ask, "remove coordinators")
    address = _address(ask.arguments)
    found = roles.find(ask.db, address)
    if found is None:
        raise Refusal(f"{address} is not a coordinator.")
    others = [c for c in roles.listing(ask.db) if c.program_wide and c.email != address]
    if found.program_wide and not others:
        raise Refusal(f"{address} is the last program-wide coordinator.")
    return found


def _coordinator_remove_preview(ask: Ask) -> str:
    found = _coordinator_remove_check(ask)
    note = (
        " They are in MAILFLOW_COORDINATORS, so they come back when the program restarts"
        " unless the operator takes them out of it."
        if found.source == "config"
        else ""
    )
    return f"Removes {found.email} ({found.scope()}).{note}"


@command(
    "COORDINATOR REMOVE",
    usage="COORDINATOR REMOVE address",
    audience=AUDIENCE,
    changes=True,
    preview=_coordinator_remove_preview,
)
def coordinator_remove(ask: Ask) -> str:
    found = _coordinator_remove_check(ask)
    roles.remove(ask.db, found.email)
    return f"{found.email} is no longer a coordinator."
