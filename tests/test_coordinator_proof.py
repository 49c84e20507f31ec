"""How a coordinator's command is proven, end to end: the program in process on a real
store, real DKIM signatures checked against a DNS stub on 127.0.0.1, and the audit of it all.

The From header proves nothing: a command that changes data runs at once only when the
operator trusts DKIM and the signature verifies for the From domain; otherwise it waits
for the coordinator's own reply to a single-use token. Every test checks the store and
what was *not* sent, not only the answer.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

import dkim
import pytest

from mailflow.send import signatures
from mailflow.send.compose import new_message_id
from tests.conftest import (
    NOW,
    PROGRAM,
    Person,
    body,
    command,
    compose,
    run_cli,
    start_in_process,
    until,
    wire,
)
from tests.people import ANN, CHEN, COORDINATOR, PEOPLE
from tests.signing import DOMAIN, EVIL, SELECTOR, signed, signing_at

OTHER_COORDINATOR = "second@program.example.org"
STRANGER = "stranger@elsewhere.example"


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def serve(matched):
    """Start the program in process (with COORDINATOR configured) with extra settings on a
    copy of the matched home; stopped after."""
    started = []

    def start(**settings: str):
        settings.setdefault("MAILFLOW_COORDINATORS", COORDINATOR)
        program = start_in_process(matched, **settings)
        started.append(program)
        return program

    yield start
    for program in started:
        program.stop()


# -- helpers -------------------------------------------------------------------------------


def partnership_states(daemon, address: str) -> list[str]:
    rows = daemon.query(
        "SELECT p.state FROM partnerships p JOIN participants m"
        " ON m.id IN (p.member_a, p.member_b, p.member_c) WHERE m.email = ? ORDER BY p.id",
        address,
    )
    return [row["state"] for row in rows]


def status(daemon, address: str) -> str:
    return daemon.query("SELECT status FROM participants WHERE email = ?", address)[0]["status"]


def queued(daemon, template: str) -> list[str]:
    rows = daemon.query("SELECT recipient FROM outbox WHERE template = ? ORDER BY id", template)
    return [row["recipient"] for row in rows]


def audit(daemon) -> list[tuple[str, str, str, int]]:
    rows = daemon.query("SELECT sender, command, proof, changed FROM audit ORDER BY id")
    return [(r["sender"], r["command"], r["proof"], r["changed"]) for r in rows]


def recipient(mail) -> str:
    return mail["To"].addresses[0].addr_spec


def confirm_token_used(daemon) -> bool:
    rows = daemon.query("SELECT used_at FROM tokens WHERE purpose = 'coordinator-confirm'")
    assert len(rows) == 1
    return rows[0]["used_at"] is not None


def assert_untouched(daemon) -> None:
    """Ann's partnership with Chen stands and nobody was told otherwise."""
    assert partnership_states(daemon, ANN) == ["active"]
    assert partnership_states(daemon, CHEN) == ["active"]
    assert status(daemon, ANN) == status(daemon, CHEN) == "matched"
    assert queued(daemon, "partnership-ended") == []
    assert not any(changed for *_, changed in audit(daemon))


def assert_ended(daemon) -> None:
    """Ann's partnership is dissolved, both wait, and each got one `partnership-ended`."""
    assert partnership_states(daemon, ANN) == ["dissolved"]
    assert status(daemon, ANN) == status(daemon, CHEN) == "waiting"
    assert sorted(queued(daemon, "partnership-ended")) == sorted([ANN, CHEN])

    def both_delivered():
        mails = [m for m in daemon.delivered() if m["X-Mailflow-Template"] == "partnership-ended"]
        return mails if len(mails) == 2 else None

    mails = until(both_delivered, "both partnership-ended mails in the Maildir")
    assert sorted(recipient(m) for m in mails) == sorted([ANN, CHEN])
    assert all("has ended your partnership" in body(m) for m in mails)


# -- 1. a valid DKIM signature is proof ----------------------------------------------------


def test_a_dkim_signed_command_runs_at_once(serve, dns, keys):
    program = serve(MAILFLOW_TRUST_DKIM="1", MAILFLOW_DKIM_RESOLVER=dns.address)
    message_id, raw = signed(f"END {ANN}", keys[DOMAIN][0])
    program.send(raw, sender=COORDINATOR, to=[PROGRAM])

    mails = program.mail_for(message_id)
    assert [m["X-Mailflow-Template"] for m in mails] == ["command-result"]
    result = mails[0]
    assert recipient(result) == COORDINATOR
    assert result["In-Reply-To"] == message_id
    text = body(result)
    assert f"DKIM signature ({DOMAIN}) proved it came from you" in text
    assert "Ended the partnership of Ann Okafor" in text and "Chen Jing" in text
    assert queued(program, "command-confirm") == []
    assert program.query("SELECT * FROM tokens WHERE purpose = 'coordinator-confirm'") == []
    assert_ended(program)
    assert audit(program) == [(COORDINATOR, f"END {ANN}", f"dkim:{DOMAIN}", 1)]

    # The same signed bytes again (a replay) are a duplicate: nothing runs twice.
    program.send(raw, sender=COORDINATOR, to=[PROGRAM])
    until(
        lambda: len(program.query("SELECT * FROM messages WHERE duplicate_of IS NOT NULL")) == 1,
        "the replay to be stored as a duplicate",
    )
    assert len(queued(program, "partnership-ended")) == 2
    assert len(queued(program, "command-result")) == 1
    assert len(audit(program)) == 1

    # A replay under a fresh Message-ID put on top: signatures.sign() signs Message-ID once
    # more than it occurs, so the added header breaks the signature and nothing is proven.
    replay = b"Message-ID: <replay-1@attacker.example>\r\n" + raw
    program.send(replay, sender="mallory@evil.example", to=[PROGRAM])
    mails = program.mail_for("<replay-1@attacker.example>")
    assert [m["X-Mailflow-Template"] for m in mails] == ["command-result"]
    assert "DKIM" not in body(mails[0]) and "not in a partnership" in body(mails[0])
    assert len(queued(program, "partnership-ended")) == 2
    assert [row[2] for row in audit(program)] == [f"dkim:{DOMAIN}", "own address"]
    assert [row[3] for row in audit(program)] == [1, 0]


def test_a_captured_signed_command_cannot_be_replayed_under_a_new_message_id(serve, dns, keys):
    program = serve(MAILFLOW_TRUST_DKIM="1", MAILFLOW_DKIM_RESOLVER=dns.address)
    message = compose(COORDINATOR, "BROADCAST Meetup\nThe meetup is on Friday.", "News")
    raw = wire(message)
    # Signed as most providers sign (Gmail among them): each header once, none oversigned.
    with signing_at():
        header = dkim.DKIM(raw).sign(
            SELECTOR.encode(),
            DOMAIN.encode(),
            keys[DOMAIN][0],
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"mime-version"],
        )
    raw = header + raw
    program.send(raw, sender=COORDINATOR, to=[PROGRAM])
    assert [m["X-Mailflow-Template"] for m in program.mail_for(message["Message-ID"])] == [
        "command-result"
    ]
    assert len(queued(program, "broadcast")) == 8

    # Anyone holding a copy (a Bcc, a forwarded message, a mail log) replays it later.
    replay = b"Message-ID: <replay-2@attacker.example>\r\n" + raw
    program.send(replay, sender="mallory@evil.example", to=[PROGRAM])
    # The signature does not cover the new Message-ID: no proof, so the coordinator is
    # asked to confirm, and nothing is sent twice.
    [asked] = program.mail_for("<replay-2@attacker.example>")
    assert asked["X-Mailflow-Template"] == "command-confirm"
    assert asked["To"].addresses[0].addr_spec == COORDINATOR
    assert len(queued(program, "broadcast")) == 8
    assert [row[3] for row in audit(program)] == [1, 0]


# -- 2. a signature that proves nothing falls back to a confirmation -----------------------


def tampered(keys) -> tuple[str, bytes]:
    """Signed for END Ann, then the body changed to END Bo on the way."""
    message_id, raw = signed(f"END {ANN}", keys[DOMAIN][0])
    changed = raw.replace(f"END {ANN}".encode(), b"END bo@lib.example.se")
    assert changed != raw
    return message_id, changed


def foreign(keys) -> tuple[str, bytes]:
    """From the coordinator, validly signed, but by another domain (its key is published)."""
    return signed(f"END {ANN}", keys[EVIL][0], domain=EVIL)


def unpublished(keys) -> tuple[str, bytes]:
    """Signed by the coordinator's domain with a selector that has no key in DNS."""
    return signed(f"END {ANN}", keys[DOMAIN][0], selector="gone")


def wrong_key(keys) -> tuple[str, bytes]:
    """d= the coordinator's domain, but signed with a key that is not the published one."""
    return signed(f"END {ANN}", keys[EVIL][0], domain=DOMAIN)


def test_a_signature_that_proves_nothing_asks_for_confirmation(serve, dns, keys):
    program = serve(MAILFLOW_TRUST_DKIM="1", MAILFLOW_DKIM_RESOLVER=dns.address)
    for forge in (tampered, foreign, unpublished, wrong_key):
        message_id, raw = forge(keys)
        program.send(raw, sender=COORDINATOR, to=[PROGRAM])

        mails = program.mail_for(message_id)
        assert [m["X-Mailflow-Template"] for m in mails] == ["command-confirm"], forge.__name__
        confirm = mails[0]
        assert recipient(confirm) == COORDINATOR
        reply_to = confirm["Reply-To"].addresses[0].addr_spec
        assert re.fullmatch(r"program\+[a-z2-7]{16}@example\.org", reply_to)
        assert "Nothing has changed yet" in body(confirm)
        assert "DKIM" not in body(confirm)
        assert_untouched(program)
        assert queued(program, "command-result") == [], forge.__name__
    assert [proof for _, _, proof, _ in audit(program)] == ["awaiting confirmation"] * 4
    assert "bo@lib.example.se" in audit(program)[0][1]  # the tampered body is what was asked


def test_a_valid_signature_is_not_trusted_unless_the_operator_says_so(serve, dns, keys):
    program = serve(MAILFLOW_DKIM_RESOLVER=dns.address)  # MAILFLOW_TRUST_DKIM unset
    message_id, raw = signed(f"END {ANN}", keys[DOMAIN][0])
    lookup = signatures.key_lookup(dns.address)
    moment = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    assert (
        signatures.verified_domain(raw, DOMAIN, lookup, program_address=PROGRAM, now=moment)
        == DOMAIN
    )
    program.send(raw, sender=COORDINATOR, to=[PROGRAM])

    mails = program.mail_for(message_id)
    assert [m["X-Mailflow-Template"] for m in mails] == ["command-confirm"]
    assert recipient(mails[0]) == COORDINATOR
    assert_untouched(program)
    assert audit(program) == [(COORDINATOR, f"END {ANN}", "awaiting confirmation", 0)]

    # The coordinator still can: their reply to the token carries it out.
    result = Person(program, COORDINATOR).reply(mails[0], "CONFIRM", expect="command-result")
    assert "DKIM" not in body(result)
    assert "Ended the partnership of Ann Okafor" in body(result)
    assert_ended(program)
    assert audit(program)[-1] == (COORDINATOR, f"END {ANN}", "confirmed by reply", 1)


# -- 3. a forged From without a signature ------------------------------------------------


def test_a_forged_from_changes_nothing_until_the_real_coordinator_confirms(serve, dns, keys):
    # Trust in DKIM is on and the coordinator's key is published: an unsigned message
    # still proves nothing.
    program = serve(MAILFLOW_TRUST_DKIM="1", MAILFLOW_DKIM_RESOLVER=dns.address)
    forged = compose(COORDINATOR, f"END {ANN}", "admin")
    program.send(forged, sender="mallory@evil.example", to=[PROGRAM])
    mails = program.mail_for(forged["Message-ID"])
    assert [m["X-Mailflow-Template"] for m in mails] == ["command-confirm"]
    confirm = mails[0]
    assert recipient(confirm) == COORDINATOR  # not the envelope sender, not a Reply-To
    assert "someone may have written in your name" in body(confirm)
    assert_untouched(program)

    # A guessed token address: token-expired, to the address the forger wrote as From.
    guess = compose(COORDINATOR, "CONFIRM", "Re: admin", to="program+abcdefghijklmnop@example.org")
    program.send(guess, sender="mallory@evil.example", to=["program+abcdefghijklmnop@example.org"])
    mails = program.mail_for(guess["Message-ID"])
    assert [m["X-Mailflow-Template"] for m in mails] == ["token-expired"]
    assert recipient(mails[0]) == COORDINATOR
    assert_untouched(program)

    # Guessed Message-IDs in In-Reply-To: one random, one keyed as the program keys its
    # own but without its secret. Neither ties the reply to the conversation.
    row = program.handled(forged["Message-ID"])["id"]
    guesses = [
        f"<{secrets.token_hex(16)}.mailflow@example.org>",
        new_message_id("example.org", f"answer:{row}:0:command-confirm"),
    ]
    assert confirm["Message-ID"] not in guesses
    for guessed in guesses:
        reply = compose(COORDINATOR, "CONFIRM", "Re: admin", in_reply_to=guessed)
        program.send(reply, sender="mallory@evil.example", to=[PROGRAM])
        mails = program.mail_for(reply["Message-ID"])
        assert [m["X-Mailflow-Template"] for m in mails] == ["command-result"]
        assert recipient(mails[0]) == COORDINATOR
        assert "Not understood" in body(mails[0])
        assert "Ended" not in body(mails[0])
    assert_untouched(program)
    assert not confirm_token_used(program)

    # Only the coordinator's own reply to the confirm's Reply-To carries it out.
    result = Person(program, COORDINATOR).reply(confirm, "CONFIRM", expect="command-result")
    assert "Ended the partnership of Ann Okafor" in body(result)
    assert_ended(program)
    proofs = [proof for _, _, proof, _ in audit(program)]
    assert proofs == ["awaiting confirmation", "own address", "own address", "confirmed by reply"]


# -- 4. strangers learn nothing ------------------------------------------------------------


SECRETS = [value for person in PEOPLE for value in (person[0], person[1], *person[1].split())]


def test_a_stranger_asking_a_coordinators_command_is_refused_and_told_nothing(serve):
    program = serve()
    stranger = Person(program, STRANGER)
    lines = ["STATS", "FIND ann", "EXPORT", "MATCH"]
    for line in lines:
        refused = stranger.say(line, expect="command-refused")
        text = body(refused)
        assert "nothing was done" in text
        assert not refused.is_multipart() and list(refused.iter_attachments()) == []
        for value in SECRETS:
            assert not re.search(rf"\b{re.escape(value)}\b", text, re.IGNORECASE), (line, value)
        assert not re.search(r"\d", text), text  # no figure of any kind
    assert audit(program) == [(STRANGER, line, "refused: not a coordinator", 0) for line in lines]
    assert queued(program, "command-result") == queued(program, "command-confirm") == []
    assert_untouched(program)
    assert len(program.query("SELECT * FROM partnerships")) == 4


# -- 5. the operator's CLI -----------------------------------------------------------------


def test_the_cli_adds_lists_and_removes_coordinators(home):
    # What succeeds runs by its function (`command`, which checks it succeeded); what must
    # fail runs the real process, whose exit status and one line on stderr are checked.
    def cli(*args: str) -> str:
        return command(home, "coordinator", *args)

    def refused(*args: str) -> str:
        done = run_cli(home, "coordinator", *args)
        assert done.returncode != 0, args
        return done.stderr.decode()

    command(home, "migrate")  # later stderr holds only the reason
    out = cli("add", "KC@example.org", "--countries", "Sweden,DE")
    assert "kc@example.org coordinates Germany, Sweden" in out
    out = cli("list")
    assert [line.split() for line in out.splitlines()] == [
        ["kc@example.org", "Germany,", "Sweden", "(cli)"]
    ]

    bad_input = [
        ("add",),
        ("add", "not-an-address"),
        ("add", "x@example.org", "--countries", "Narnia,SE"),
        ("remove", "nobody@example.org"),
        ("remove",),
    ]
    for bad in bad_input:
        err = refused(*bad)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("mailflow coordinator: "), (bad, err)
        assert "Narnia" in err or "Narnia,SE" not in bad
    assert cli("list").split() == ["kc@example.org", "Germany,", "Sweden", "(cli)"]

    assert "removed kc@example.org" in cli("remove", "kc@example.org")
    assert cli("list") == ""
    refused("remove", "kc@example.org")


def test_audit_lists_who_how_and_what_in_order(serve):
    program = serve()
    coordinator = Person(program, COORDINATOR)
    coordinator.say("STATS", expect="command-result")
    confirm = coordinator.say(f"END {ANN}", expect="command-confirm")
    Person(program, STRANGER).say("MATCH", expect="command-refused")
    coordinator.reply(confirm, "CONFIRM", expect="command-result")

    done = run_cli(program.home, "audit")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[-1] == "4 command(s) shown"
    expected = [
        (COORDINATOR, "own address", "-", "STATS"),
        (COORDINATOR, "awaiting confirmation", "-", f"END {ANN}"),
        (STRANGER, "refused: not a coordinator", "-", "MATCH"),
        (COORDINATOR, "confirmed by reply", "changed", f"END {ANN}"),
    ]
    assert len(lines) == len(expected) + 1
    for line, (sender, proof, mark, asked) in zip(lines, expected, strict=False):
        who, how, what = (re.escape(value) for value in (sender, proof, asked))
        assert re.match(rf"^\S+  {who}  \[{how}\]  {mark}  {what}  => ", line), line
    assert "Ended the partnership of Ann Okafor" in lines[3]


# -- 6. a confirmation token is single-use and the coordinator's own -----------------------


def test_a_confirm_token_works_once_and_only_for_its_coordinator(serve):
    program = serve(MAILFLOW_COORDINATORS=f"{COORDINATOR},{OTHER_COORDINATOR}")
    coordinator = Person(program, COORDINATOR)
    other = Person(program, OTHER_COORDINATOR)
    confirm = coordinator.say(f"END {ANN}", expect="command-confirm")

    # Another coordinator (trusted, but not the one asked) can't use this token.
    other.reply(confirm, "CONFIRM", expect="token-expired")
    assert_untouched(program)
    assert not confirm_token_used(program)

    first = compose(
        COORDINATOR,
        "CONFIRM",
        "Re: confirm",
        to=confirm["Reply-To"].addresses[0].addr_spec,
        in_reply_to=confirm["Message-ID"],
    )
    coordinator.send(first)
    assert [m["X-Mailflow-Template"] for m in program.mail_for(first["Message-ID"])] == [
        "command-result"
    ]
    assert_ended(program)

    # The very same message again is a duplicate; a second CONFIRM finds the token used.
    coordinator.send(first)
    until(
        lambda: program.query("SELECT * FROM messages WHERE duplicate_of IS NOT NULL"),
        "the resent CONFIRM to be stored as a duplicate",
    )
    coordinator.reply(confirm, "CONFIRM", expect="token-expired")
    other.reply(confirm, "CONFIRM", expect="token-expired")

    assert confirm_token_used(program)
    assert partnership_states(program, ANN) == ["dissolved"]
    assert len(queued(program, "partnership-ended")) == 2
    assert queued(program, "command-result") == [COORDINATOR]
    assert [row for row in audit(program) if row[3]] == [
        (COORDINATOR, f"END {ANN}", "confirmed by reply", 1)
    ]


def test_taking_a_coordinator_out_of_the_configuration_takes_their_rights(home):
    both = "coord@program.example.org,old@program.example.org"
    command(home, "migrate", MAILFLOW_COORDINATORS=both)
    command(home, "coordinator", "add", "kc@example.org", "--countries", "KE")
    listed = command(home, "coordinator", "list", MAILFLOW_COORDINATORS=COORDINATOR)
    emails = [line.split()[0] for line in listed.splitlines()]
    assert emails == ["coord@program.example.org", "kc@example.org"]
