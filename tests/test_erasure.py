"""DELETE MY DATA erases (issue 16, finding M6), and what the program keeps on disk is for
its owner's eyes only (L5): one person's whole life in the program, then her erasure, then
every file under MAILFLOW_HOME read for any trace of her."""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import os
import quopri
import sqlite3
import stat
from pathlib import Path

from tests.conftest import (
    PROGRAM,
    Daemon,
    Person,
    body,
    command,
    compose,
    form_text,
    start_daemon,
    until,
    wire,
)

ZELDA = "zelda.quist@lib.example.ke"
NAME = "Zelda Quist"
PHRASE = "hypothetical zeppelin cartography"
ABOUT = (
    "I catalogue old aerial maps in Mombasa.\n"
    f"My passion is {PHRASE} of the coast, from the 1920s on."
)
PAT = "pat.rivera@library.example.org"
COORDINATOR = "coord@program.example.org"


def apply(person: Person, form: str) -> None:
    asked = person.say("APPLY", expect="application-form")
    person.reply(asked, form, expect="application-received")


def confirmed(person: Person, answer: email.message.EmailMessage, word: str = "CONFIRM"):
    """A coordinator's command answered at once, or once confirmed by reply."""
    if answer["X-Mailflow-Template"] == "command-confirm":
        return person.reply(answer, word, expect="command-result")
    return answer


def mail_text(raw: bytes) -> str:
    """A mail as its reader sees it: headers decoded, every part decoded."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    pieces = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if not part.is_multipart():
            pieces.append((part.get_payload(decode=True) or b"").decode("utf-8", "replace"))
    return "\n".join(pieces)


def readings(data: bytes) -> list[str]:
    """Every way a file or a stored value can be read: as it is, as mail, as quoted-printable."""
    texts = [data.decode("utf-8", "replace"), quopri.decodestring(data).decode("utf-8", "replace")]
    if b"\n" in data and b":" in data:
        texts.append(mail_text(data))
    return [text.casefold() for text in texts]


def traces(data: bytes) -> set[str]:
    wanted = (ZELDA, NAME, PHRASE)
    return {needle for needle in wanted for text in readings(data) if needle.casefold() in text}


def traces_on_disk(home: Path) -> dict[str, set[str]]:
    found = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and (hits := traces(path.read_bytes())):
            found[str(path.relative_to(home))] = hits
    with sqlite3.connect(home / "mailflow.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                for value in row:
                    data = value if isinstance(value, bytes) else str(value).encode()
                    if hits := traces(data):
                        found.setdefault(f"table {table}", set()).update(hits)
    return found


def test_after_delete_my_data_no_file_names_or_quotes_her(home):
    daemon = start_daemon(home, MAILFLOW_COORDINATORS=COORDINATOR)
    try:
        zelda = Person(daemon, ZELDA, NAME)
        pat = Person(daemon, PAT, "Pat Rivera")
        about = "\n  ".join(ABOUT.splitlines())
        apply(zelda, form_text(Name=NAME, Country="Kenya", Time_zone="Nairobi", About_me=about))
        apply(pat, form_text(Name="Pat Rivera"))
        command(home, "match", MAILFLOW_COORDINATORS=COORDINATOR)
        intro = until(lambda: [m for m in mails(daemon) if is_to(m, PAT)], "Pat's introduction")
        assert PHRASE in body(intro[-1])
        # She writes once with a display name long enough to hide her address from the
        # parsed sender.
        long_name = NAME + " " + "of the aerial map collection " * 40
        zelda.send(compose(ZELDA, "STATUS", name=long_name.strip()))
        # Her partner mentions her, a coordinator looks her up, a delivery report names her.
        pat.say(f"HELP\n\nIs {NAME} <{ZELDA}> still taking part?", expect="help")
        for encoding in ("base64", "quoted-printable"):  # as mail clients write non-ASCII
            told = compose(PAT, "", f"Über {NAME}")
            # A long line, so that quoted-printable breaks it inside her name.
            line = "Déjà vu: " + "x" * 52 + f" {NAME} wrote about {PHRASE}."
            told.set_content(f"HELP\n\n{line}\n", cte=encoding)
            assert NAME.encode() not in wire(told).split(b"\r\n\r\n", 1)[1]
            pat.expect(pat.send(told), "help")
        coordinator = Person(daemon, COORDINATOR)
        asked = coordinator.send(compose(COORDINATOR, "FIND zelda"))
        [answer] = daemon.mail_for(asked["Message-ID"])
        found = confirmed(coordinator, answer)
        assert ZELDA in body(found) and NAME in body(found)
        verp = daemon.query(
            "SELECT envelope_from FROM outbox WHERE recipient = ? ORDER BY id DESC", ZELDA
        )[0]["envelope_from"]
        with daemon.smtp() as client:
            client.sendmail("", [verp], delivery_report(verp, ZELDA))
        daemon.idle()
        # She asks, and confirms.
        ask = zelda.say("DELETE MY DATA", expect="delete-confirm")
        target = email.utils.parseaddr(str(ask["Reply-To"]))[1]
        yes = compose(ZELDA, "YES", "Re: x", to=target, in_reply_to=ask["Message-ID"])
        zelda.send(yes, to=target)
        farewell = until(lambda: farewell_file(daemon), "the data-deleted answer")
        assert "this is the last message you will get from us" in mail_text(farewell.read_bytes())
        farewell.unlink()  # her mail client took it: the Maildir is her mailbox here
        assert [m for m in mails(daemon) if m["X-Mailflow-Template"] == "partner-left"]
        until(
            lambda: not daemon.query("SELECT 1 FROM settings WHERE key = 'erasure_scrub'"),
            "the erasure's delivery pass",
        )
        # While the daemon runs: the database, its WAL, the spool, the Maildir.
        assert traces_on_disk(home) == {}
    finally:
        daemon.stop()
    assert traces_on_disk(home) == {}
    # What others received stays readable, without her.
    pats = [m for m in mails(daemon) if is_to(m, PAT)]
    assert any(m["X-Mailflow-Template"] == "match-intro" for m in pats)
    assert any("[erased]" in mail_text(m.as_bytes()) for m in pats)


def is_to(message: email.message.EmailMessage, address: str) -> bool:
    return address in str(message["To"])


def mails(daemon: Daemon) -> list[email.message.EmailMessage]:
    folder = daemon.maildir / "new"
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(folder.iterdir())
    ]


def farewell_file(daemon: Daemon) -> Path | None:
    for path in (daemon.maildir / "new").iterdir():
        try:
            if b"X-Mailflow-Template: data-deleted" in path.read_bytes():
                return path
        except FileNotFoundError:  # a copy the erasure removed as it was listed
            continue
    return None


def delivery_report(verp: str, failed: str) -> bytes:
    """A delivery status notification (RFC 3464) as Postfix writes one."""
    return (
        "From: MAILER-DAEMON@mx.lib.example.ke (Mail Delivery System)\r\n"
        f"To: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <report-1@mx.lib.example.ke>\r\nMIME-Version: 1.0\r\n"
        "Auto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message to {NAME} <{failed}> could not be delivered: mailbox full.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.lib.example.ke\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: delayed\r\nStatus: 4.2.2\r\n"
        f"Diagnostic-Code: smtp; 452 4.2.2 <{failed}>: Mailbox full\r\n\r\n--B--\r\n"
    ).encode()


# --- L5: for the owner's eyes only --------------------------------------------------------


def test_the_store_the_spool_and_the_maildir_are_the_owners_alone(daemon):
    ann = Person(daemon, "ann@uni.example.edu", "Ann Okafor")  # over SMTP: the spool is used
    ann.say("APPLY", expect="application-form")
    daemon.idle()
    home = daemon.home
    created = [home / "mailflow.db", home / "mailflow.db-wal", home / "spool"]
    created += [*(home / "spool").iterdir(), home / "outbox"]
    created += list((home / "outbox").rglob("*"))
    assert len(list((home / "outbox" / "new").iterdir())) == 1
    for path in created:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path.relative_to(home)} is {oct(mode)}"


def test_the_erasure_mark_is_keyed_with_the_installations_secret(program):
    person = Person(program, ZELDA, NAME)
    ask = person.say("DELETE MY DATA", expect="delete-confirm")
    target = email.utils.parseaddr(str(ask["Reply-To"]))[1]
    person.send(compose(ZELDA, "YES", "Re: x", to=target, in_reply_to=ask["Message-ID"]), to=target)
    until(lambda: program.query("SELECT * FROM erased"), "the erasure")
    [(mark,)] = [tuple(row) for row in program.query("SELECT address_hash FROM erased")]
    assert mark != hashlib.sha256(ZELDA.encode()).hexdigest()
    assert ZELDA not in mark and len(mark) == 64
    # Still never written to again.
    message = person.send(compose(ZELDA, "STATUS"))
    assert program.handled(message["Message-ID"])["outcome"] == "ignored:erased"


def test_a_spool_file_is_the_owners_alone_whatever_the_umask(tmp_path):
    from datetime import UTC, datetime

    from mailflow.receive.spool import Spool

    was = os.umask(0o022)  # a process not started by the command line
    try:
        spool = Spool(tmp_path / "spool")
        name = spool.write(b"Subject: x\r\n\r\nhi\r\n", "a@b.example", [PROGRAM], datetime.now(UTC))
    finally:
        os.umask(was)
    for path in (spool.new, spool.tmp, spool.bad, spool.new / name):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_an_erasure_leaves_an_address_that_merely_contains_hers(home):
    def ingest(message, to=None):
        extra = ("--recipient", to) if to else ()
        command(home, "ingest", *extra, stdin=wire(message))

    ingest(compose("val@lib.example.org", "HELP", "help"))
    ingest(compose("al@lib.example.org", "DELETE MY DATA"))
    with sqlite3.connect(home / "mailflow.db") as db:
        [(raw,)] = db.execute(
            "SELECT raw FROM outbox WHERE recipient = 'al@lib.example.org'"
        ).fetchall()
    ask = email.message_from_bytes(raw, policy=email.policy.default)
    target = email.utils.parseaddr(str(ask["Reply-To"]))[1]
    ingest(compose("al@lib.example.org", "YES", "Re: x", in_reply_to=ask["Message-ID"]), target)
    with sqlite3.connect(home / "mailflow.db") as db:
        senders = [row[0] for row in db.execute("SELECT sender FROM messages ORDER BY id")]
        assert senders[0] == "val@lib.example.org"
        [(kept,)] = db.execute("SELECT raw FROM messages WHERE id = 1").fetchall()
        assert b"From: val@lib.example.org" in kept
        answer = db.execute("SELECT raw FROM outbox WHERE recipient = 'val@lib.example.org'")
        assert b"val@lib.example.org" in answer.fetchone()[0]
    assert any(b"val@lib.example.org" in p.read_bytes() for p in (home / "outbox/new").iterdir())
    for path in (home / "outbox/new").iterdir():  # her mail client takes the farewell
        if b"X-Mailflow-Template: data-deleted" in path.read_bytes():
            path.unlink()
    assert traces_of(home, "al@lib.example.org") == []


def traces_of(home: Path, address: str) -> list[str]:
    found = []
    for path in home.rglob("*"):
        if path.is_file() and address.encode() in path.read_bytes().lower():
            data = path.read_bytes().lower()
            at = data.find(address.encode())
            if at == 0 or data[at - 1 : at] not in b"abcdefghijklmnopqrstuvwxyz0123456789.":
                found.append(str(path.relative_to(home)))
    return found
