"""The peer network by mail: NETWORK YES and NO, proven at once or confirmed by a reply
YES, a shared address other than one's own, PEERS finding only listed peers (by interest,
in a country, ten at most), strangers and unlisted people getting no names, leaving and
erasure taking a person out, and the survey and the certificate inviting people in.
In process, on the matched home: Ann (Nigeria) and Chen (China) share palaeography, Ann
and Bo (Sweden) open access, Chen and Fay (Canada) metadata."""

from __future__ import annotations

import email.utils
import sqlite3
from pathlib import Path

import pytest

from mailflow.conversation.participant.network import Search, read_search
from tests.conftest import Person, command, compose, program_at, tick
from tests.mailbox import inbox, text
from tests.people import ANN, BO, CHEN, roster, status

FAY = "fay@lib.example.ca"
STRANGER = "who@else.example.net"
WEEK_TWO = "2026-03-10T09:00:00Z"


def said(message) -> str:
    """The text of a mail, its lines ended as they were written."""
    return text(message).replace("\r\n", "\n")


def listings(home: Path) -> dict[str, str]:
    """Who is listed (their own address) -> the address they share."""
    with sqlite3.connect(home / "mailflow.db") as db:
        return dict(
            db.execute(
                "SELECT p.email, n.shared_address FROM network n"
                " JOIN participants p ON p.id = n.participant_id"
            ).fetchall()
        )


@pytest.fixture
def program(matched):
    running = program_at(matched, WEEK_TWO)
    yield running
    running.stop()


def person(program, address: str, name: str = "") -> Person:
    return Person(program, address, name)


def join(program, *addresses: str) -> None:
    """Each of them listed, confirmed by a reply YES as the owner of the address does."""
    for address in addresses:
        person(program, address).say_and_confirm("NETWORK YES", expect="network-listed")


# --- Joining and leaving -------------------------------------------------------------------


def test_network_yes_unproven_is_asked_first_and_a_reply_yes_lists(program, matched):
    ann = person(program, ANN, "Ann Okafor")
    asked = ann.say("NETWORK YES", expect="change-confirm")
    text = said(asked)
    assert "list you in the peer network" in text
    assert "name, country, library type, interests and this address" in text
    assert "reply to this message with YES" in text
    assert listings(matched) == {}  # nothing until the owner of the address says so

    listed = ann.reply(asked, "YES", expect="network-listed")
    text = said(listed)
    assert "You are now listed in the peer network" in text
    # What peers will see, exactly.
    assert "  Ann Okafor <ann@uni.example.edu>\n    Country: Nigeria\n" in text
    assert "    Library type: academic\n    Interests: palaeography, open access\n" in text
    assert "NETWORK NO" in text and "PEERS" in text
    assert "You stay listed after your term ends" in text
    assert listings(matched) == {ANN: ANN}

    # Again: nothing to change, so nothing to confirm.
    again = ann.say("network yes", expect="network-listed")
    assert "You were already listed" in said(again)


def test_a_reply_other_than_yes_lists_nobody(program, matched):
    ann = person(program, ANN)
    asked = ann.say("NETWORK YES", expect="change-confirm")
    ann.reply(asked, "What is this?", expect="change-cancelled")
    assert listings(matched) == {}


def test_proven_network_yes_lists_at_once(matched):
    """Written as a reply to our check-in, the message proves the address: no question."""
    tick(matched, "2026-03-16T09:00:00Z")
    [checkin] = inbox(matched, BO, "checkin")
    program = program_at(matched, "2026-03-16T10:00:00Z")
    try:
        listed = person(program, BO).reply(checkin, "NETWORK YES", expect="network-listed")
    finally:
        program.stop()
    assert "You are now listed" in said(listed)
    assert listings(matched) == {BO: BO}


def test_a_different_address_is_shared_once_confirmed(program, matched):
    ann = person(program, ANN, "Ann Okafor")
    asked = ann.say("NETWORK YES Ann.Okafor@Mail.example.com", expect="change-confirm")
    assert "the address ann.okafor@mail.example.com, which you asked us to share" in (said(asked))
    listed = ann.reply(asked, "YES", expect="network-listed")
    text = said(listed)
    assert "  Ann Okafor <ann.okafor@mail.example.com>\n" in text
    assert "They will write to ann.okafor@mail.example.com, the address you chose" in text
    assert f"not to {ANN}" in text
    assert listings(matched) == {ANN: "ann.okafor@mail.example.com"}

    # Back to her own address: a change again, asked first.
    back = ann.say_and_confirm("NETWORK YES", expect="network-listed")
    assert "now shares a new address" in said(back)
    assert listings(matched) == {ANN: ANN}


@pytest.mark.parametrize(
    ("written", "answer"),
    [
        ("not an address", 'We could not read "not an address" as an email address'),
        (CHEN, f"{CHEN} is not an address we can list for you"),  # another participant's
        ("program+abc@example.org", "is an address of this program"),
    ],
)
def test_an_address_that_cannot_be_shared_is_refused_and_nothing_changes(
    program, matched, written, answer
):
    refused = person(program, ANN).say(f"NETWORK YES {written}", expect="network-listed")
    assert answer in said(refused)
    assert "nothing has changed" in said(refused)
    assert listings(matched) == {}


def test_network_no_takes_a_person_out_once_confirmed(program, matched):
    join(program, ANN, BO)
    ann = person(program, ANN)
    asked = ann.say("NETWORK NO", expect="change-confirm")
    assert "take you out of the peer network" in said(asked)
    assert ANN in listings(matched)
    left = ann.reply(asked, "yes", expect="network-unlisted")
    assert "You are no longer listed" in said(left)
    assert listings(matched) == {BO: BO}
    # Not listed: nothing to confirm, and said plainly.
    again = ann.say("NETWORK NO", expect="network-unlisted")
    assert "You were not listed" in said(again)
    assert listings(matched) == {BO: BO}


def test_status_says_whether_one_is_listed(program):
    ann = person(program, ANN)
    assert "Peer network: not listed (NETWORK YES" in said(ann.say("STATUS", expect="status"))
    join(program, ANN)
    listed = said(ann.say("STATUS", expect="status"))
    assert f"Peer network: listed since 2026-03-10, sharing {ANN}" in listed


# --- Finding peers -------------------------------------------------------------------------


def test_peers_finds_only_listed_people_and_never_the_unlisted(program, matched):
    join(program, ANN, BO, CHEN)  # Fay, who shares metadata with Chen, is not listed
    found = person(program, BO).say("PEERS metadata", expect="peers-found")
    text = said(found)
    assert 'This is the one listed peer with an interest in "metadata"' in text
    assert "  Chen Jing <chen@lib.example.cn>\n    Country: China\n" in text
    assert "Fay" not in text and FAY not in text

    # Ann is not shown her own listing; Bo shares open access with her.
    found = said(person(program, ANN).say("PEERS Open Access", expect="peers-found"))
    assert "Bo Lind <bo@lib.example.se>" in found and "Ann Okafor" not in found
    # Whole words: "meta" is in no interest, nor is "access data".
    for search in ("PEERS meta", "PEERS access data"):
        none = said(person(program, BO).say(search, expect="peers-none"))
        assert "No listed peer has an interest in" in none
        assert "Chen" not in none and FAY not in none


def test_peers_in_a_country(program):
    join(program, ANN, BO, CHEN)
    bo = person(program, BO)
    china = said(bo.say("PEERS palaeography China", expect="peers-found"))
    assert 'interest in "palaeography" in China' in china
    assert "Chen Jing" in china and "Ann Okafor" not in china
    assert 'We read "China" as the country' in china
    nigeria = said(bo.say("PEERS palaeography in NG", expect="peers-found"))
    assert "Ann Okafor" in nigeria and "Chen Jing" not in nigeria
    japan = said(bo.say("PEERS palaeography Japan", expect="peers-none"))
    assert 'No listed peer has an interest in "palaeography" in Japan' in japan
    assert "Ann" not in japan and "Chen" not in japan
    unread = said(bo.say("PEERS palaeography, Atlantis", expect="peers-none"))
    assert 'We could not read "Atlantis" as a country' in unread


def test_a_missing_interest_is_answered_with_the_usage(program):
    join(program, ANN)
    usage = said(person(program, ANN).say("PEERS", expect="peers-none"))
    assert "Write PEERS and an interest, and a country if you like" in usage


def test_a_search_longer_than_any_interest_is_not_read(program):
    """Whatever is written, a search costs one bounded query at most: what is longer than
    an interest and a country is answered without one, its words cut in the answer."""
    join(program, ANN, BO)
    huge = "open access " * 20_000
    text = said(person(program, ANN).say(f"PEERS {huge}", expect="peers-none"))
    assert "No listed peer has an interest in" in text
    assert "Bo Lind" not in text and len(text) < 2_000


MORE = [
    (f"p{n:02}@lib.example.org", f"Peer {n:02}", country, "public", "oral history", "London")
    for n, country in enumerate(["Nigeria", "Nigeria"] + ["Kenya"] * 6 + ["Peru"] * 5)
]


def test_at_most_ten_peers_abroad_first_then_the_newest(matched, tmp_path):
    command(matched, "import", str(roster(tmp_path, MORE)), MAILFLOW_NOW=WEEK_TWO)
    for day, people in (("2026-03-11", MORE[:7]), ("2026-03-12", MORE[7:])):
        program = program_at(matched, f"{day}T09:00:00Z")
        try:
            join(program, *(address for address, *_ in people))
        finally:
            program.stop()
    program = program_at(matched, "2026-03-13T09:00:00Z")
    try:
        join(program, ANN)
        found = person(program, ANN).say("PEERS oral history", expect="peers-found")
        narrowed = person(program, ANN).say("PEERS oral history Peru", expect="peers-found")
    finally:
        program.stop()
    text = said(found)
    shown = [
        line.split(" <")[0].strip() for line in text.splitlines() if "<p" in line and "@lib" in line
    ]
    # Thirteen share it; ten are shown: the newest listed abroad first (Peers 07-12 on the
    # 12th, then 02-05 of those on the 11th), the two in Nigeria, as Ann is, not reached.
    assert shown == [f"Peer {n:02}" for n in (7, 8, 9, 10, 11, 12, 2, 3, 4, 5)]
    assert "These are 10 of the listed peers" in text
    assert "More peers share this interest" in text
    peru = said(narrowed)
    assert sum("Country: Peru" in line for line in peru.splitlines()) == 5
    assert "Kenya" not in peru and "More peers" not in peru


# --- Strangers and unlisted people ---------------------------------------------------------


def test_a_stranger_gets_no_names_once_a_day_and_is_never_listed(program, matched):
    join(program, ANN, BO)
    stranger = person(program, STRANGER, "Nosy Parker")
    answer = stranger.say("PEERS open access", expect="network-not-listed")
    text = said(answer)
    assert "we hold no application from who@else.example.net" in text
    assert "Nosy" not in text + str(answer["To"])  # fixed wording, nothing of theirs
    for word in ("Ann", "Bo Lind", ANN, BO, "open access"):
        assert word not in text
    # The same fixed answer at most once a day, whatever they write.
    stranger.say("NETWORK YES", expect=None)
    stranger.say("PEERS open access", expect=None)
    assert listings(matched) == {ANN: ANN, BO: BO}


def test_an_unlisted_participant_is_told_how_to_join_and_sees_no_names(program):
    join(program, ANN, BO)
    text = said(person(program, CHEN).say("PEERS open access", expect="network-not-listed"))
    assert "You are not listed in the peer network" in text
    assert "write NETWORK YES" in text
    assert "Ann" not in text and ANN not in text and BO not in text


def test_a_stranger_writing_network_no_learns_nothing(program):
    answer = person(program, STRANGER).say("NETWORK NO", expect="network-not-listed")
    assert "we hold no application" in said(answer)


# --- Leaving, erasure and the end of a term --------------------------------------------------


def test_stop_takes_a_person_out_of_the_network(program, matched):
    join(program, ANN, BO)
    person(program, ANN).say_and_confirm("STOP", "optout-confirmed", confirm="optout-confirmed")
    assert status(matched, ANN) == "left"
    assert listings(matched) == {BO: BO}
    found = said(person(program, BO).say("PEERS palaeography", expect="peers-none"))
    assert "Ann" not in found


def test_a_past_participant_may_join_again_after_leaving(program, matched):
    person(program, ANN).say_and_confirm("STOP", "optout-confirmed", confirm="optout-confirmed")
    join(program, ANN)
    assert listings(matched) == {ANN: ANN}


def test_deleting_ones_data_takes_a_person_and_their_shared_address_out(program, matched):
    ann = person(program, ANN)
    ann.say_and_confirm("NETWORK YES ann.okafor@mail.example.com", expect="network-listed")
    join(program, BO)
    asked = ann.say("DELETE MY DATA", expect="delete-confirm")
    target = email.utils.parseaddr(str(asked["Reply-To"]))[1]
    ann.send(compose(ANN, "YES", "Re: x", to=target, in_reply_to=asked["Message-ID"]), to=target)
    assert status(matched, ANN) is None  # erased: her row keeps no address
    assert listings(matched) == {BO: BO}
    with sqlite3.connect(matched / "mailflow.db") as db:
        assert db.execute("SELECT count(*) FROM network").fetchone() == (1,)
    found = said(person(program, BO).say("PEERS open access", expect="peers-none"))
    assert "ann.okafor" not in found


def delivery_report(verp: str, failed: str, day: str) -> bytes:
    """A permanent failure (RFC 3464), as Postfix reports one to our return path."""
    return (
        f"From: MAILER-DAEMON@mx.uni.example.edu\r\nTo: {verp}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{day}@mx.example>\r\n"
        "MIME-Version: 1.0\r\nAuto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.uni.example.edu\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n"
    ).encode()


def test_a_person_whose_mail_bounces_is_taken_out(program, matched):
    join(program, ANN, BO)
    program.stop()
    with sqlite3.connect(matched / "mailflow.db") as db:
        [(verp,)] = db.execute(
            "SELECT envelope_from FROM outbox WHERE recipient = ? ORDER BY id DESC LIMIT 1", [ANN]
        ).fetchall()
    for day in ("2026-03-16", "2026-03-19"):  # two permanent failures: unreachable
        raw = delivery_report(verp, ANN, day)
        command(
            matched,
            "ingest",
            "--recipient",
            verp,
            "--sender",
            "",
            stdin=raw,
            MAILFLOW_NOW=f"{day}T10:00:00Z",
        )
    assert status(matched, ANN) == "unreachable"
    assert listings(matched) == {BO: BO}


def test_the_survey_and_certificate_invite_those_not_listed_and_a_term_keeps_the_listed(
    program, matched
):
    join(program, ANN)
    program.stop()
    tick(matched, "2026-07-03T09:00:00Z")
    assert status(matched, ANN) == "completed" and status(matched, BO) == "completed"
    assert listings(matched) == {ANN: ANN}  # completing a term is no reason to leave
    for template in ("survey", "certificate"):
        [bo] = inbox(matched, BO, template)
        assert "NETWORK YES" in said(bo), template
        assert "Only those who ask are listed" in said(bo) or "opt-in" in said(bo)
        [ann] = inbox(matched, ANN, template)
        assert "NETWORK YES" not in said(ann), template


# --- HELP, and reading a search ----------------------------------------------------------------


def test_help_lists_the_network_commands(program):
    text = said(person(program, ANN).say("HELP", expect="help"))
    assert "  NETWORK YES [address to share]\n      be listed in the peer network" in text
    assert "  NETWORK NO\n      leave the peer network" in text
    assert "  PEERS interest [country]\n      up to ten listed peers" in text


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("oral history", Search("oral history")),
        ("oral history Kenya", Search("oral history", "KE", "Kenya", trailing=True)),
        ("oral history in Kenya", Search("oral history", "KE", "Kenya", trailing=True)),
        ("open access South Africa", Search("open access", "ZA", "South Africa", trailing=True)),
        ("makerspaces de", Search("makerspaces", "DE", "de", trailing=True)),
        ("Kenya", Search("Kenya")),  # a word is always left for the interest
        ('"library IT"', Search("library IT")),
        ('"library IT" Italy', Search("library IT", "IT", "Italy")),
        ("library IT, Italia", Search("library IT", "IT", "Italia")),
        ("oral history, Atlantis", Search("oral history", None, "Atlantis")),
        ("", Search("")),
    ],
)
def test_reading_a_search(written, read):
    assert read_search(written) == read
