"""A round's discussion by mail, as its participants live it: the topic names it, a reply
posts, each person chooses how much arrives (every post, a daily or weekly digest, none),
ARCHIVE sends the month so far, and leaving or erasure ends it for them.

Round 1 of the matched home: Ann (Nigeria) with Chen (China), Bo (Sweden) with Dee
(Australia), Eli (Brazil) with Fay (Canada), Gus (Germany) with Hana (Japan). The rules'
default delivery is the weekly digest.
"""

from __future__ import annotations

import email.utils
import shutil
import sqlite3
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import (
    PROGRAM,
    InProcess,
    Person,
    compose,
    free_port,
    start_daemon,
    start_in_process,
    tick,
    until,
    wire,
)
from tests.people import ANN, BO, CHEN, COORDINATOR, DEE, status

ROUND = "program+round-1@example.org"
ELI, FAY, GUS, HANA = (
    "eli@lib.example.br",
    "fay@lib.example.ca",
    "gus@lib.example.de",
    "hana@lib.example.jp",
)
TOPIC_DAY = "2026-04-01T09:00:00Z"  # the first weekday of the month after the introduction
NAMES = {
    ANN: "Ann Okafor",
    BO: "Bo Lind",
    CHEN: "Chen Jing",
    DEE: "Dee Brown",
    ELI: "Eli Costa",
    FAY: "Fay Roy",
    GUS: "Gus Weber",
    HANA: "Hana Sato",
}


def body(message: EmailMessage) -> str:
    return message.get_content().replace("\r\n", "\n")


def at(home: Path, now: str) -> InProcess:
    return start_in_process(home, "--no-scheduler", MAILFLOW_NOW=now)


def people(program: InProcess) -> dict[str, Person]:
    return {address: Person(program, address, name) for address, name in NAMES.items()}


def delivered_to(program: InProcess, address: str, template: str) -> list[EmailMessage]:
    return [
        m
        for m in program.delivered()
        if m["X-Mailflow-Template"] == template and m["To"].addresses[0].addr_spec == address
    ]


def copies(program: InProcess, template: str = "discussion-post") -> dict[str, list]:
    found: dict[str, list] = {}
    for message in program.delivered():
        if message["X-Mailflow-Template"] == template:
            found.setdefault(message["To"].addresses[0].addr_spec, []).append(message)
    return found


def posts(home: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(home / "mailflow.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM discussion_posts ORDER BY id").fetchall()


def choose(person: Person, command: str) -> EmailMessage:
    """A delivery choice, written unproven and confirmed by the YES of the address's owner."""
    return person.say_and_confirm(command, "discussion-choice", confirm="discussion-confirm")


@pytest.fixture
def topical(matched: Path) -> Path:
    """The matched home on the first topic day: everyone has had this month's topic."""
    assert "topic: 8" in tick(matched, TOPIC_DAY)
    return matched


@pytest.fixture
def running(topical: Path):
    program = at(topical, "2026-04-01T10:00:00Z")
    yield program
    program.stop()


def test_the_topic_names_the_discussion_and_a_reply_to_it_posts(topical: Path):
    program = at(topical, "2026-04-01T10:00:00Z")
    try:
        everyone = people(program)
        for address in (BO, DEE, ELI):
            choose(everyone[address], "DISCUSS")
        [topic] = delivered_to(program, ANN, "topic")
        text = body(topic)
        assert ROUND in text
        assert "everyone who has not chosen receives a weekly digest of the posts" in text
        assert "DIGEST DAILY" in text and "QUIET" in text
        assert topic["Reply-To"].startswith("program+")
        everyone[ANN].reply(topic, "Our makerspace lends sewing machines. Does yours?", None)
        sent = copies(program)
        assert sorted(sent) == sorted([BO, DEE, ELI])  # those who take every post, but Ann
        [copy] = sent[BO]
        assert (
            copy["Subject"]
            == "[Round 1] Re: This month's topic: " + topic["Subject"].split(": ", 1)[1]
        )
        sender = copy["From"].addresses[0].display_name
        assert sender == "Ann Okafor (Nigeria) via Librarians Peer Network"
        assert copy["From"].addresses[0].addr_spec == PROGRAM
        assert ANN not in str(copy) and "uni.example.edu" not in str(copy)
        assert body(copy).startswith("Our makerspace lends sewing machines. Does yours?\n")
        assert "On Mon, 2 Mar 2026" not in body(copy)  # the quote stays behind
        assert copy["List-Post"] == f"<mailto:{ROUND}>"
        assert copy["List-Id"].endswith("<round-1.program.example.org>")
        assert copy["List-Unsubscribe"].startswith("<mailto:program+")
        assert copy["Reply-To"] != sent[DEE][0]["Reply-To"]  # each reader's own token
        # Every copy is the one post: one Message-ID, so replies thread for everyone.
        assert len({m["Message-ID"] for m in (copy, sent[DEE][0], sent[ELI][0])}) == 1
        [stored] = posts(topical)
        assert stored["state"] == "published" and stored["author_email"] == ANN
        assert stored["fanned_out_at"] is not None
    finally:
        program.stop()


def test_replies_thread_under_one_subject_and_one_prefix(running: InProcess):
    everyone = people(running)
    for address in (BO, DEE):
        choose(everyone[address], "DISCUSS")
    # Mail to the round's address proves nothing: Ann is asked first.
    confirm = everyone[ANN].say(
        "Who has tried reading circles?", "Reading circles", to=ROUND, expect="discussion-confirm"
    )
    assert "Who has tried reading circles?" in body(confirm)
    assert copies(running) == {}
    everyone[ANN].reply(confirm, "YES", None)
    [first] = copies(running)[BO]
    assert first["Subject"] == "[Round 1] Reading circles"
    answer = everyone[BO].reply(first, "We run one every Thursday.", None)
    assert answer is None
    [_, second] = copies(running)[DEE]
    assert second["Subject"] == "[Round 1] Re: Reading circles"
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"].split() == [first["Message-ID"]]
    third = everyone[DEE].reply(second, "Ours meets online.", None)
    assert third is None
    [_, reply_of_dee] = copies(running)[BO]
    assert reply_of_dee["Subject"] == "[Round 1] Re: Reading circles"
    assert reply_of_dee["References"].split() == [first["Message-ID"], second["Message-ID"]]


def test_a_weekly_digest_gathers_the_week_and_nothing_goes_to_the_quiet(topical: Path):
    program = at(topical, "2026-04-01T10:00:00Z")
    try:
        everyone = people(program)
        choose(everyone[CHEN], "QUIET")
        choose(everyone[DEE], "DIGEST DAILY")
    finally:
        program.stop()
    program = at(topical, "2026-04-01T11:00:00Z")  # the posts come after the choices
    try:
        everyone = people(program)
        [topic] = delivered_to(program, ANN, "topic")
        everyone[ANN].reply(topic, "First post of the month.", None)
        [topic] = delivered_to(program, BO, "topic")
        everyone[BO].reply(topic, "Second post.", None)
        assert copies(program) == {}  # nobody takes every post
    finally:
        program.stop()
    assert "discussion-digest: 1" in tick(topical, "2026-04-02T06:00:00Z")  # Dee's daily
    assert "discussion-digest: 6" in tick(topical, "2026-04-06T06:00:00Z")  # Monday's weekly
    program = at(topical, "2026-04-06T07:00:00Z")
    try:
        digests = copies(program, "discussion-digest")
        assert CHEN not in digests  # quiet
        assert sorted(digests) == sorted([ANN, BO, DEE, ELI, FAY, GUS, HANA])
        [daily] = digests[DEE]
        assert daily["Subject"].startswith("[Round 1] Daily digest, 2 April 2026 (2 posts)")
        [weekly] = digests[ANN]
        assert weekly["Subject"].startswith("[Round 1] Weekly digest, 6 April 2026 (2 posts)")
        text = body(weekly)
        assert "  1. Re: This month's topic" in text and "(Ann Okafor (Nigeria))" in text
        assert "First post of the month." in text and "Second post." in text
        assert text.index("First post") < text.index("Second post")
        assert "Message: 2\nFrom: Bo Lind (Sweden)\n" in text
        assert weekly["List-Post"] == f"<mailto:{ROUND}>"
        assert ANN not in text.replace(weekly["To"].addresses[0].addr_spec, "")
    finally:
        program.stop()
    # Nothing new: no empty digest next week.
    assert "discussion-digest" not in tick(topical, "2026-04-13T06:00:00Z")


def test_days_without_a_post_go_through_nobody_and_a_later_post_still_comes_in_the_digest(
    topical: Path,
):
    """A round with no post since anyone's last digest is skipped whole (100,000 readers
    took 30 s of a tick), none of them marked; the digest after a post still has it."""
    for day in ("2026-04-02T06:00:00Z", "2026-04-06T06:00:00Z"):
        assert "discussion-digest" not in tick(topical, day)
    with sqlite3.connect(topical / "mailflow.db") as db:
        assert db.execute("SELECT count(*) FROM discussion_digests").fetchone()[0] == 0
    program = at(topical, "2026-04-07T10:00:00Z")
    try:
        [topic] = delivered_to(program, ANN, "topic")
        people(program)[ANN].reply(topic, "A post of the second week.", None)
    finally:
        program.stop()
    assert "discussion-digest: 8" in tick(topical, "2026-04-13T06:00:00Z")
    program = at(topical, "2026-04-13T07:00:00Z")
    try:
        digests = copies(program, "discussion-digest")
        assert sorted(digests) == sorted(NAMES)
        [weekly] = digests[GUS]
        assert weekly["Subject"].startswith("[Round 1] Weekly digest, 13 April 2026 (1 post)")
        assert "A post of the second week." in body(weekly)
    finally:
        program.stop()
    with sqlite3.connect(topical / "mailflow.db") as db:
        assert db.execute("SELECT count(*) FROM discussion_digests").fetchone()[0] == 8
    assert "discussion-digest" not in tick(topical, "2026-04-20T06:00:00Z")


def test_archive_sends_this_months_discussion(running: InProcess):
    everyone = people(running)
    [topic] = delivered_to(running, ANN, "topic")
    everyone[ANN].reply(topic, "Archive me, please.", None)
    answer = everyone[GUS].say("ARCHIVE", expect="discussion-archive")
    assert "Archive me, please." in body(answer)
    assert "1. Re: This month's topic" in body(answer)
    assert "Ann Okafor (Nigeria)" in body(answer)
    stranger = Person(running, "who@else.example.net", "Buy Pills")
    lost = stranger.say("ARCHIVE", expect="discussion-archive")
    assert "Archive me" not in body(lost) and "Ann" not in body(lost)
    assert "Pills" not in str(lost)  # a forged display name is not carried back
    stranger.say("ARCHIVE", expect=None)  # to a stranger once a day at most


def test_status_and_help_show_the_choice_and_the_commands(running: InProcess):
    everyone = people(running)
    help_ = everyone[ANN].say("HELP", expect="help")
    for word in ("DISCUSS", "DIGEST DAILY", "DIGEST WEEKLY", "QUIET", "ARCHIVE"):
        assert word in body(help_)


def test_leaving_and_erasure_end_the_discussion_for_them(running: InProcess, topical: Path):
    everyone = people(running)
    for address in (BO, DEE):
        choose(everyone[address], "DISCUSS")
    everyone[BO].say("STOP", expect="optout-confirmed")  # unproven: mail stops at once
    [topic] = delivered_to(running, ANN, "topic")
    everyone[ANN].reply(topic, "Is anyone there?", None)
    assert sorted(copies(running)) == [DEE]
    assert status(topical, BO) != "matched"
    [topic] = delivered_to(running, CHEN, "topic")
    everyone[CHEN].reply(topic, "Chen's words, to be erased.", None)
    assert len(posts(topical)) == 2
    ask = everyone[CHEN].say("DELETE MY DATA", expect="delete-confirm")
    target = email.utils.parseaddr(str(ask["Reply-To"]))[1]
    yes = compose(CHEN, "YES", "Re: x", to=target, in_reply_to=ask["Message-ID"])
    everyone[CHEN].send(yes, to=target)  # the erasure takes this message with it
    until(lambda: running.query("SELECT * FROM erased"), "the erasure")
    assert [p["body"] for p in posts(topical)] == ["Is anyone there?"]
    answer = everyone[GUS].say("ARCHIVE", expect="discussion-archive")
    assert "Chen" not in body(answer) and "Is anyone there?" in body(answer)


def test_what_is_refused_and_why(running: InProcess, topical: Path):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    refused = everyone[ANN].reply(topic, "x" * 9000, "discussion-refused")
    assert "9000 characters" in body(refused) and "at most 8000" in body(refused)
    for number in range(3):
        everyone[ANN].reply(topic, f"Post {number}", None)
    late = everyone[ANN].reply(topic, "Post 4", "discussion-refused")
    assert "3 posts" in body(late)
    stranger = Person(running, "who@else.example.net")
    stranger.say("Hello all", to=ROUND, expect="discussion-refused")
    stranger.say("Hello again", to=ROUND, expect=None)  # once a day at most
    assert [p["body"] for p in posts(topical)] == ["Post 0", "Post 1", "Post 2"]
    assert len(copies(running)[BO]) == 3


def test_a_reply_that_is_only_a_command_is_the_command(running: InProcess):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    everyone[ANN].reply(topic, "Hello!", None)
    [copy] = copies(running)[BO]
    everyone[BO].reply(copy, "QUIET", "discussion-choice")  # the reply address proves Bo
    assert len(copies(running)[BO]) == 1  # nothing posted
    everyone[ANN].reply(topic, "Anyone?", None)
    assert len(copies(running)[BO]) == 1


def test_an_attachment_is_left_out_with_a_note(running: InProcess):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    message = compose(
        ANN,
        "Our reading list is attached.",
        "Re: " + str(topic["Subject"]),
        to=str(topic["Reply-To"]),
        in_reply_to=topic["Message-ID"],
    )
    message.add_attachment(b"%PDF-1.4 ...", "application", "pdf", filename="list.pdf")
    everyone[ANN].send(message, to=str(topic["Reply-To"]))
    [copy] = copies(running)[BO]
    assert "Our reading list is attached." in body(copy)
    assert "[Left out: list.pdf." in body(copy)
    assert not any(part.get_filename() for part in copy.walk())


def test_status_says_how_the_discussion_reaches_them(running: InProcess):
    everyone = people(running)
    answer = everyone[ANN].say("STATUS", expect="status")
    assert "Round discussion: a weekly digest (as for everyone who has not chosen)." in body(answer)
    assert ROUND in body(answer)
    choose(everyone[ANN], "DIGEST DAILY")
    answer = everyone[ANN].say("STATUS", expect="status")
    assert "Round discussion: a daily digest, as you chose." in body(answer)


def test_pausing_stops_the_discussion_and_resuming_brings_it_back(running: InProcess):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    everyone[BO].say_and_confirm("PAUSE", "paused")
    [topic] = delivered_to(running, ANN, "topic")
    everyone[ANN].reply(topic, "While Bo is away.", None)
    assert BO not in copies(running)
    everyone[BO].say_and_confirm("RESUME", "resumed")
    everyone[ANN].reply(topic, "Bo is back.", None)
    assert [body(m).split("\n")[0] for m in copies(running)[BO]] == ["Bo is back."]


def test_a_coordinator_posts_as_the_facilitator(running: InProcess, topical: Path):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    carla = Person(running, "coord@program.example.org", "Carla Coordinator")
    with sqlite3.connect(topical / "mailflow.db") as db:
        db.execute(
            "INSERT INTO coordinators (email, source, added_by, added_at)"
            " VALUES ('coord@program.example.org', 'command', 'test', '2026-03-01')"
        )
    asked = carla.say(
        "Welcome to the discussion!", "Welcome", to=ROUND, expect="discussion-confirm"
    )
    carla.reply(asked, "YES", None)
    [copy] = copies(running)[BO]
    assert copy["From"].addresses[0].display_name.startswith("Carla Coordinator (facilitator)")
    assert "Carla Coordinator (facilitator)" in body(copy)
    assert "coord@program.example.org" not in str(copy)
    [stored] = posts(topical)
    assert stored["facilitator"] == 1 and stored["author_country"] == ""


def test_the_longest_post_arrives_whole_with_no_line_over_998_octets(running: InProcess):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    longest = ("Our library's long paragraph about shared cataloguing. " * 200)[:8000].strip()
    everyone[ANN].reply(topic, longest, None)
    [copy] = copies(running)[BO]
    raw = copy.as_bytes()
    assert max(len(line) for line in raw.split(b"\n")) <= 998
    assert copy["Content-Transfer-Encoding"] == "quoted-printable"
    assert longest in body(copy)
    answer = everyone[GUS].say("ARCHIVE", expect="discussion-archive")
    assert max(len(line) for line in answer.as_bytes().split(b"\n")) <= 998
    assert longest in body(answer)


def test_a_wrapped_format_flowed_post_is_read_whole(running: InProcess):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    target = str(topic["Reply-To"])
    raw = (
        f"From: Ann Okafor <{ANN}>\r\nTo: {target}\r\nSubject: Re: {topic['Subject']}\r\n"
        f"Message-ID: <flowed-1@uni.example.edu>\r\nIn-Reply-To: {topic['Message-ID']}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n"
        "\r\nWe lend sewing machines, 3D printers and a button badge maker, and \r\n"
        "people queue for them on Saturdays.\r\n"
    ).encode()
    running.send(raw, sender=ANN, to=[target])
    [copy] = copies(running)[BO]
    assert body(copy).startswith(
        "We lend sewing machines, 3D printers and a button badge maker, and people queue"
        " for them on Saturdays.\n"
    )


def test_a_dkim_signed_post_to_the_round_goes_out_at_once(topical: Path, dns, keys):
    from mailflow.send import signatures
    from tests.signing import signing_at

    program = start_in_process(
        topical,
        "--no-scheduler",
        MAILFLOW_NOW="2026-04-01T10:00:00Z",
        MAILFLOW_TRUST_DKIM="1",
        MAILFLOW_DKIM_RESOLVER=dns.address,
    )
    try:
        # Bo and Gus chose every post; Ann writes from a domain whose signatures the DNS
        # stub publishes, as a provider that signs its users' mail.
        with sqlite3.connect(topical / "mailflow.db") as db:
            db.execute(
                "INSERT INTO discussion_choices (participant_id, mode, changed_at)"
                " SELECT id, 'every', '2026-04-01' FROM participants WHERE email IN (?, ?)",
                [BO, GUS],
            )
            db.execute(
                "UPDATE participants SET email = 'ann@program.example.org' WHERE email = ?", [ANN]
            )
        message = compose(
            "ann@program.example.org", "Signed, so no question asked.", "Signed", to=ROUND
        )
        with signing_at("2026-04-01T10:00:00Z"):
            raw = signatures.sign(
                wire(message), "sel", "program.example.org", keys["program.example.org"][0]
            )
        program.send(raw, sender="ann@program.example.org", to=[ROUND])
        assert program.mail_for(message["Message-ID"]) == []  # no confirmation asked
        assert sorted(copies(program)) == [BO, GUS]
    finally:
        program.stop()


def test_over_smtp_the_daemon_fans_out_and_one_click_quiets_only_the_discussion(
    topical: Path,
):
    port = free_port()
    with sqlite3.connect(topical / "mailflow.db") as db:
        db.execute(
            "INSERT INTO discussion_choices (participant_id, mode, changed_at)"
            " SELECT id, 'every', '2026-04-01' FROM participants WHERE email IN (?, ?)",
            [BO, DEE],
        )
    daemon = start_daemon(
        topical,
        MAILFLOW_NOW="2026-04-01T10:00:00Z",
        MAILFLOW_PUBLIC_URL="https://mf.example",
        MAILFLOW_HTTP_LISTEN=f"127.0.0.1:{port}",
    )
    try:
        [topic] = [
            m
            for m in daemon.delivered()
            if m["X-Mailflow-Template"] == "topic" and m["To"].addresses[0].addr_spec == ANN
        ]
        Person(daemon, ANN, "Ann Okafor").reply(topic, "Over real SMTP.", None)

        def both():
            found = copies(daemon)
            return found if sorted(found) == [BO, DEE] else None

        found = until(both, "the post's copies in the Maildir")
        copy = found[BO][0]
        assert copy["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = copy["List-Unsubscribe"].split(", ")[1].strip("<>")
        local = url.replace("https://mf.example", f"http://127.0.0.1:{port}")
        with urllib.request.urlopen(local, timeout=10) as page:
            assert b"no more mail from the round's discussion" in page.read()
        request = urllib.request.Request(local, data=b"List-Unsubscribe=One-Click")
        with urllib.request.urlopen(request, timeout=10) as done:
            assert b"No more mail from the round's discussion" in done.read()
        assert status(topical, BO) == "matched"  # still in the program
        Person(daemon, ANN, "Ann Okafor").reply(topic, "Second, over SMTP.", None)
        until(lambda: len(copies(daemon).get(DEE, [])) == 2, "Dee's second copy")
        assert len(copies(daemon)[BO]) == 1
    finally:
        daemon.stop()


def test_a_round_of_discussion_as_it_is_lived(topical: Path, tmp_path: Path):
    """People post and reply, choose a digest or quiet, a first post waits for the
    facilitator, the facilitator writes, someone leaves, someone erases their data, and a
    peer search finds only the listed."""
    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).resolve().parents[1] / "rules", rules)
    text = (rules / "discussion.toml").read_text(encoding="utf-8")
    (rules / "discussion.toml").write_text(text.replace('hold = "none"', 'hold = "first"'))
    program = at(topical, "2026-04-01T09:30:00Z")
    try:
        everyone = people(program)
        for address in (BO, DEE):
            choose(everyone[address], "DISCUSS")
        choose(everyone[ELI], "DIGEST WEEKLY")
        choose(everyone[FAY], "QUIET")
    finally:
        program.stop()
    program = start_in_process(
        topical,
        "--no-scheduler",
        MAILFLOW_NOW="2026-04-01T10:00:00Z",
        MAILFLOW_COORDINATORS=COORDINATOR,
        MAILFLOW_RULES=str(rules),
    )
    try:
        everyone = people(program)
        # Ann's first post waits for the facilitator, who approves it by reply.
        [topic] = delivered_to(program, ANN, "topic")
        everyone[ANN].reply(topic, "What do your readers borrow most?", "discussion-pending")
        assert copies(program) == {}
        [held] = delivered_to(program, COORDINATOR, "discussion-held")
        assert "What do your readers borrow most?" in body(held)
        carla = Person(program, COORDINATOR)
        carla.reply(held, "APPROVE", "discussion-decided")
        assert sorted(copies(program)) == [BO, DEE]
        # Bo answers; his first post waits too, and is approved; it threads under Ann's.
        [first] = copies(program)[BO]
        everyone[BO].reply(first, "Cookbooks, by far.", "discussion-pending")
        [held] = [
            m
            for m in delivered_to(program, COORDINATOR, "discussion-held")
            if "Cookbooks" in body(m)
        ]
        carla.reply(held, "APPROVE", "discussion-decided")
        [_, answer] = copies(program)[DEE]
        assert answer["In-Reply-To"] == first["Message-ID"]
        assert answer["Subject"] == first["Subject"]  # one prefix, one "Re:"
        # Ann's second post goes at once; the facilitator's is never held.
        everyone[ANN].reply(topic, "Ours: travel guides.", None)
        asked = carla.say(
            "Thank you all, keep going!", "Facilitator", to=ROUND, expect="discussion-confirm"
        )
        carla.reply(asked, "YES", None)
        assert len(copies(program)[DEE]) == 4
        assert "(facilitator)" in str(copies(program)[DEE][-1]["From"])
        # Chen leaves; Bo erases his data: his post leaves the archive.
        everyone[CHEN].say_and_confirm("STOP", "optout-confirmed", confirm="optout-confirmed")
        ask = everyone[BO].say("DELETE MY DATA", expect="delete-confirm")
        target = email.utils.parseaddr(str(ask["Reply-To"]))[1]
        everyone[BO].send(
            compose(BO, "YES", "Re: x", to=target, in_reply_to=ask["Message-ID"]), to=target
        )
        until(lambda: program.query("SELECT * FROM erased"), "the erasure")
        archive = everyone[GUS].say("ARCHIVE", expect="discussion-archive")
        assert "Cookbooks" not in body(archive) and "travel guides" in body(archive)
        # A peer search finds only the listed.
        everyone[GUS].say_and_confirm("NETWORK YES", "network-listed")
        everyone[ELI].say_and_confirm("NETWORK YES", "network-listed")
        found = everyone[ELI].say("PEERS law", expect="peers-found")
        assert "Gus Weber" in body(found) and "Hana" not in body(found)
    finally:
        program.stop()
    # Eli's, and those of Ann, Gus and Hana, who take the default weekly digest; not Fay's.
    assert "discussion-digest: 4" in tick(topical, "2026-04-06T06:00:00Z")
    program = at(topical, "2026-04-06T07:00:00Z")
    try:
        [weekly] = copies(program, "discussion-digest")[ELI]
        text = body(weekly)
        assert "What do your readers borrow most?" in text and "travel guides" in text
        assert "Cookbooks" not in text  # erased before the digest was sent
        assert "Thank you all" in text
        assert FAY not in copies(program, "discussion-digest")
        assert not any(to == CHEN for to in copies(program, "discussion-post"))
    finally:
        program.stop()


def test_a_post_too_big_is_refused_and_nothing_goes_out(running: InProcess, topical: Path):
    everyone = people(running)
    choose(everyone[BO], "DISCUSS")
    [topic] = delivered_to(running, ANN, "topic")
    target = str(topic["Reply-To"])
    message = compose(
        ANN,
        "Photos of our new reading room.",
        "Re: photos",
        to=target,
        in_reply_to=topic["Message-ID"],
    )
    message.add_attachment(b"\xff" * 1_200_000, "image", "jpeg", filename="room.jpg")
    everyone[ANN].send(message, to=target)
    [refused] = everyone[ANN].expect(message, ["discussion-refused"])
    assert "at most 1024 KB" in body(refused) and "without the attachment" in body(refused)
    assert posts(topical) == [] and BO not in copies(running)
