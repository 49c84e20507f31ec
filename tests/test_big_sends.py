"""Big sends take turns with the mail coming in, and stay safe: a tick's check-ins are
stored in several short transactions with the write lock free while the mail is made, a
crash between writing the Maildir files and marking their rows sent makes no second copy,
and what a batch sends is what one message at a time sent."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading

import pytest

from mailflow.config import parse_time
from mailflow.schedule import scheduler
from mailflow.send import makers, outbox, sending
from tests.conftest import command, start_in_process
from tests.people import roster


def quiet(home):
    """In process on the day of the first check-in, the rules not yet run."""
    return start_in_process(home, "--no-scheduler", MAILFLOW_NOW="2026-03-16T09:00:00Z")


def _writer_gets_in(database, moments: list[float]) -> None:
    """Another process's writer: takes the write lock, writes, commits, within 2 s."""
    connection = sqlite3.connect(database, timeout=2.0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES ('bench-writer', 'in')"
        )
        connection.execute("COMMIT")
        moments.append(1.0)
    finally:
        connection.close()


def test_a_tick_stores_its_mail_in_several_batches_and_another_writer_gets_in_between(
    matched, monkeypatch
):
    running = quiet(matched)
    program = running.program
    made, writers, batches = [], [], []
    real_make, real_batches = scheduler._make_due, sending.send_in_batches

    def making(program, item, topics, now):
        # While a mail is made, nobody holds the write lock: another writer gets in.
        if len(made) == 3:
            thread = threading.Thread(target=_writer_gets_in, args=(program.config.db, writers))
            thread.start()
            thread.join(5)
        made.append(item)
        return real_make(program, item, topics, now)

    def in_batches(*args, **kwargs):
        kwargs["seconds"] = 0.0  # a batch a mail: eight check-ins, eight transactions
        batches.append(real_batches(*args, **kwargs))
        return batches[-1]

    monkeypatch.setattr(scheduler, "_make_due", making)
    monkeypatch.setattr(scheduler, "send_in_batches", in_batches)
    sent = scheduler.tick(program, parse_time("2026-03-16T09:00:00Z"))
    running.stop()
    assert sent["checkin"] == 8
    assert writers == [1.0], "the other writer waited for the lock while mail was made"
    assert batches[0].queued == 8 and batches[0].transactions == 8
    with sqlite3.connect(matched / "mailflow.db") as db:
        assert (
            db.execute("SELECT count(*) FROM scheduled WHERE kind = 'checkin'").fetchone()[0] == 8
        )
        queued = db.execute("SELECT count(*) FROM outbox WHERE template = 'checkin'")
        assert queued.fetchone()[0] == 8


def test_a_crash_between_writing_the_files_and_marking_them_sent_makes_no_second_copy(
    matched, monkeypatch
):
    running = quiet(matched)
    program = running.program
    now = parse_time("2026-03-16T09:00:00Z")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("the process stops here")

    with monkeypatch.context() as patched:
        patched.setattr(outbox, "_mark_sent", crash)
        with pytest.raises(KeyboardInterrupt):
            scheduler.tick(program, now)  # queues the check-ins, then delivers them
    maildir = program.config.outbox
    written = sorted(os.listdir(maildir / "new"))
    checkins = [n for n in written if _template(maildir / "new" / n) == "checkin"]
    assert len(checkins) == 8, "the files were written before the crash"
    # A reader takes one of them into cur/ meanwhile, with its flags.
    os.rename(maildir / "new" / checkins[0], maildir / "cur" / f"{checkins[0]}:2,S")
    sent, queued = outbox.deliver(program.db, program.config, now)
    running.stop()
    assert queued == 0 and sent >= 8
    again = sorted(os.listdir(maildir / "new")) + sorted(os.listdir(maildir / "cur"))
    assert len(again) == len(written), "no file was written a second time"
    with sqlite3.connect(matched / "mailflow.db") as db:
        states = db.execute("SELECT state, count(*) FROM outbox WHERE template = 'checkin'")
        assert dict(states.fetchall()) == {"sent": 8}


def _template(path) -> str:
    for line in path.read_bytes().split(b"\r\n"):
        if line.startswith(b"X-Mailflow-Template: "):
            return line.split(b": ", 1)[1].decode()
    return ""


def test_mail_made_in_batches_is_the_mail_sent_one_at_a_time(matched, tmp_path, monkeypatch):
    """The same tick in three copies of a store: one message a transaction (as `send` does
    for an answer), in batches, and in batches made by helper processes (as a big send's
    mail is): the same bytes, but for the tokens drawn at random, and the same tokens
    stored with them."""
    monkeypatch.setattr(makers, "HELPED_FROM", 1)  # eight check-ins count as a big send
    now = parse_time("2026-03-16T09:00:00Z")
    raws, stored = [], []
    for number, (seconds, helped) in enumerate(((0.0, False), (10.0, False), (10.0, True))):
        home = tmp_path / f"copy-{number}"
        shutil.copytree(matched, home)
        running = quiet(home)
        program = running.program
        items = scheduler.due(program, program.rules.cadence, now)
        sending.send_in_batches(
            program,
            items,
            lambda item, p=program: scheduler._make_due(p, item, p.rules.topics, now),
            now,
            seconds=seconds,
            elsewhere=scheduler._made_elsewhere if helped else None,
        )
        rows = program.db.execute(
            "SELECT idempotency_key, raw FROM outbox WHERE template = 'checkin' ORDER BY 1"
        ).fetchall()
        tokens = program.db.execute("SELECT token, purpose, address FROM tokens").fetchall()
        raw = {key: _without(body, [t for t, _, _ in tokens]) for key, body in rows}
        raws.append(raw)
        # Every token a mail carries is stored, for the address the mail went to.
        stored.append(sorted((purpose, address) for _, purpose, address in tokens))
        for _, body in rows:
            carried = [t for t, _, address in tokens if t.encode() in body]
            assert carried and all(a.encode() in body for t, _, a in tokens if t in carried)
        running.stop()
    assert len(raws[0]) == 8 and raws[0] == raws[1] == raws[2]
    assert stored[0] == stored[1] == stored[2] and len(stored[0]) == 16


def _without(raw: bytes, tokens: list[str]) -> bytes:
    for token in tokens:
        raw = raw.replace(token.encode(), b"TOKEN")
    return raw


# Names in ASCII: one beyond it is written as encoded words of our own (test_composing).
NAMES = ("Ann Okafor", "Jo", "Mary-Jane O'Brien", "Ann  Okafor", "Dr. Who", "")
ADDRESSES = ("ann@uni.example.edu", "member12345@lib42.example.org", "a" * 40 + "@example.org")
UNSUBSCRIBE = (
    "<mailto:program+eykt7odgg7h6z562@example.org>",
    "<mailto:program+eykt7odgg7h6z562@example.org>,"
    " <https://mentoring.example.org/unsubscribe/eykt7odgg7h6z562>",
    "<mailto:program+eykt7odgg7h6z562@example.org>, <https://"
    + "x" * 70
    + ".example.org/unsubscribe/eykt7odgg7h6z562>",
)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("address", ADDRESSES)
def test_headers_written_without_the_parser_are_the_email_packages_own(name, address):
    """The shortcuts of `compose` (a plain To, the list headers) fold as the email package
    folds the same values, byte for byte."""
    from email.headerregistry import Address
    from email.message import EmailMessage
    from email.policy import SMTP

    from mailflow.send.compose import POLICY

    local, _, domain = address.partition("@")
    for header, value in [("To", Address(name, local, domain))] + [
        ("List-Unsubscribe", text) for text in UNSUBSCRIBE
    ]:
        ours, theirs = EmailMessage(policy=POLICY), EmailMessage(policy=SMTP)
        ours[header], theirs[header] = value, value
        assert ours.as_bytes() == theirs.as_bytes(), (header, value)


def test_a_broadcast_goes_out_after_its_command_in_batches_and_a_crash_midway_repeats_none(
    matched, monkeypatch
):
    from mailflow.app import broadcasts, bulk

    running = quiet(matched)
    program = running.program
    now = parse_time("2026-03-16T09:00:00Z")
    with sending.transaction(program.db):
        broadcasts.start(
            program,
            source_row=1,
            subject="News",
            text="Hello everyone.",
            sender="coordinator@example.org",
            countries=None,
            now=now,
        )
    made, real_make = [], broadcasts.make

    def crashing(*args, **kwargs):
        if len(made) == 5:
            raise KeyboardInterrupt("the process stops here")
        made.append(kwargs["to"])
        return real_make(*args, **kwargs)

    real_batches = broadcasts.send_in_batches
    monkeypatch.setattr(broadcasts, "make", crashing)
    monkeypatch.setattr(
        broadcasts, "send_in_batches", lambda *a, **k: real_batches(*a, **{**k, "seconds": 0.0})
    )
    with pytest.raises(KeyboardInterrupt):
        bulk.queue_pending(program, now)
    monkeypatch.setattr(broadcasts, "make", real_make)
    assert bulk.queue_pending(program, now) == 3  # the five queued before are not again
    assert bulk.queue_pending(program, now) == 0  # done
    running.stop()
    with sqlite3.connect(matched / "mailflow.db") as db:
        keys = [
            k
            for (k,) in db.execute(
                "SELECT idempotency_key FROM outbox WHERE template = 'broadcast'"
            )
        ]
        assert len(keys) == len(set(keys)) == 8
        assert db.execute("SELECT done_at IS NOT NULL FROM broadcasts").fetchone()[0] == 1


def test_a_round_is_carried_out_in_batches_and_a_crash_midway_leaves_the_rest_to_match(
    home, tmp_path, monkeypatch
):
    from mailflow.matching import matchmaker

    assert command(home, "import", str(roster(tmp_path))).startswith("8 added")
    running = quiet(home)
    program = running.program
    now = parse_time("2026-03-02T09:00:00Z")
    made, real_make = [], matchmaker.make

    def crashing(*args, **kwargs):
        if len(made) == 5:
            raise KeyboardInterrupt("the process stops here")
        made.append(kwargs["to"])
        return real_make(*args, **kwargs)

    real_batches = matchmaker.send_in_batches
    batches = []

    def in_batches(*args, **kwargs):
        batches.append(real_batches(*args, **{**kwargs, "seconds": 0.0}))  # a pair a batch
        return batches[-1]

    monkeypatch.setattr(matchmaker, "send_in_batches", in_batches)
    monkeypatch.setattr(matchmaker, "make", crashing)
    with pytest.raises(KeyboardInterrupt):
        matchmaker.carry_out(program, matchmaker.plan(program, now), now)

    db = program.db
    # Two pairs were stored with their introductions, a batch each; the third never was.
    assert db.execute("SELECT count(*) FROM partnerships").fetchone()[0] == 2
    intros = "SELECT recipient FROM outbox WHERE template = 'match-intro'"
    assert len(db.execute(intros).fetchall()) == 4
    assert db.execute("SELECT state FROM rounds ORDER BY id").fetchall()[0] == ("open",)

    monkeypatch.setattr(matchmaker, "make", real_make)
    again = matchmaker.plan(program, now)
    assert len(again.result.pairs) == 2, "those paired before the crash are not eligible"
    assert "matched: 2 partnerships, 0 waiting" in matchmaker.carry_out(program, again, now)
    running.stop()
    assert batches[-2].transactions == 2  # the second run: two pairs, two transactions
    with sqlite3.connect(home / "mailflow.db") as db:
        recipients = [r for (r,) in db.execute(intros)]
        assert len(recipients) == len(set(recipients)) == 8, "each introduced once"
        members = db.execute("SELECT member_a, member_b FROM partnerships").fetchall()
        assert len({m for pair in members for m in pair}) == 8
        assert db.execute("SELECT state FROM rounds ORDER BY id").fetchall() == [
            ("matched",),
            ("open",),
        ]


def test_an_address_whose_data_was_deleted_gets_nothing_from_a_big_send(matched):
    """A big send's mail is made without looking at erasure one address at a time; its
    batch looks for all of them before it is queued, and leaves that one out."""
    from mailflow.model import participants
    from tests.people import ANN

    running = quiet(matched)
    program = running.program
    now = parse_time("2026-03-16T09:00:00Z")
    with sending.transaction(program.db):
        participants.mark_erased(program.db, ANN, now)
    sent = scheduler.tick(program, now)
    running.stop()
    assert sent["checkin"] == 8  # due to all eight; one of them not mailed
    with sqlite3.connect(matched / "mailflow.db") as db:
        to = [r for (r,) in db.execute("SELECT recipient FROM outbox WHERE template = 'checkin'")]
        assert len(to) == 7 and ANN not in to
        assert db.execute(
            "SELECT count(*) FROM tokens WHERE address = ? AND purpose = 'checkin'", [ANN]
        ).fetchone() == (0,)


def test_a_rounds_introductions_made_by_helper_processes_are_those_made_here(
    home, tmp_path, monkeypatch
):
    """The same round carried out in two copies of a store, its introductions made here
    and by helper processes (as a big round's are): the same mail, byte for byte but for
    the tokens, stored with the same tokens."""
    from mailflow.matching import matchmaker

    assert command(home, "import", str(roster(tmp_path))).startswith("8 added")
    now = parse_time("2026-03-02T09:00:00Z")
    found = []
    for helped_from in (10**9, 1):  # never; and from one pair on
        monkeypatch.setattr(makers, "HELPED_FROM", helped_from)
        copy = tmp_path / f"helped-from-{helped_from}"
        shutil.copytree(home, copy)
        running = quiet(copy)
        program = running.program
        said = matchmaker.carry_out(program, matchmaker.plan(program, now), now)
        rows = program.db.execute(
            "SELECT idempotency_key, recipient, raw FROM outbox WHERE template = 'match-intro'"
        ).fetchall()
        tokens = program.db.execute("SELECT token, purpose, address FROM tokens").fetchall()
        found.append(
            (
                said,
                {key: (to, _without(raw, [t for t, _, _ in tokens])) for key, to, raw in rows},
                sorted((purpose, address) for _, purpose, address in tokens),
            )
        )
        running.stop()
    here, helped = found
    assert "matched: 4 partnerships" in here[0] and here[0] == helped[0]
    assert len(here[1]) == 8 and here[1] == helped[1]
    assert here[2] == helped[2] and len(here[2]) == 8  # an unsubscribe token each
