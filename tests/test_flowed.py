"""format=flowed (RFC 3676) replies, read whole: Thunderbird (DelSp=no) and Apple Mail
(DelSp=yes) wrap long lines with a trailing space, and a form field, a check-in answer or a
command that wraps must reach the program as the person typed it.

The messages are built as those clients build them (`thunderbird`, `apple_mail`): the
headers they write, lines wrapped at their width with the soft-break space, space-stuffing
of lines that begin with a space, ">" or "From ", the quoted original below or above the
reply wrapped too, each piece with its ">" marks. Apple Mail's DelSp=yes message in the
shared corpus is read as well.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import quopri
import re
import signal
import sqlite3
import time
import uuid
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.read.flowed import unflow
from mailflow.read.parse import parse
from tests.conftest import CORPORA, PROGRAM, Person, program_at, tick
from tests.mailbox import inbox, text
from tests.people import ANN, CHEN, COORDINATOR, DEE

THUNDERBIRD_WIDTH = 72  # mailnews.wraplength
APPLE_WIDTH = 76


# --- the clients ---------------------------------------------------------------------------


def flowed(typed: str, width: int, delsp: bool) -> str:
    """`typed` as a format=flowed client sends it. A line's leading ">" marks are its quote
    depth; a quoted line is written ">>> text" (the space is the stuffing RFC 3676 wants),
    an unquoted one that begins with a space, ">" or "From " gets a space in front. Trailing
    spaces are taken off (they would mean "flowed"), except on the signature separator.
    Lines wider than `width` are broken after a space, the space kept at the end; with
    DelSp=yes a space is added after it, and a word too long for a line is broken inside."""
    out: list[str] = []
    for line in typed.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:].lstrip(" ") if depth else line
        prefix = ">" * depth + (" " if content else "") if depth else ""
        if content != "-- ":
            content = content.rstrip(" ")
        room = width - len(prefix) - 2
        pieces = []
        while len(content) > room:
            cut = content.rfind(" ", 0, room) + 1
            if cut == 0 and not delsp:
                cut = content.find(" ", room) + 1  # Thunderbird leaves a long word whole
                if cut == 0:
                    break
            if cut == 0:
                cut = room  # Apple Mail breaks it, the added space says where
            pieces.append(content[:cut] + (" " if delsp else ""))
            content = content[cut:]
        pieces.append(content)
        for piece in pieces:
            stuffed = not depth and piece.startswith((" ", ">", "From "))
            out.append(prefix + (" " if stuffed else "") + piece)
    return "\r\n".join(out)


def _head(sender: str, name: str, to: str, subject: str, in_reply_to: str | None) -> list[str]:
    host = sender.split("@")[1]
    head = [
        f"Message-ID: <{uuid.uuid4()}@{host}>",
        "Date: " + email.utils.formatdate(localtime=False),
        f"From: {email.utils.formataddr((name, sender)) if name else sender}",
        f"To: {to}",
        f"Subject: {subject}",
    ]
    if in_reply_to:
        head += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    return head


def thunderbird(
    sender: str, typed: str, subject: str = "", to: str = PROGRAM, name: str = "", reply_to=None
) -> bytes:
    """As Thunderbird 128 sends plain text: UTF-8 in 8 bits, format=flowed, DelSp=no."""
    head = [
        *_head(sender, name, to, subject, reply_to),
        "MIME-Version: 1.0",
        "User-Agent: Mozilla Thunderbird",
        "Content-Language: en-GB",
        "Content-Type: text/plain; charset=UTF-8; format=flowed",
        "Content-Transfer-Encoding: " + ("7bit" if typed.isascii() else "8bit"),
    ]
    body = flowed(typed, THUNDERBIRD_WIDTH, delsp=False)
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


def apple_mail(
    sender: str, typed: str, subject: str = "", to: str = PROGRAM, name: str = "", reply_to=None
) -> bytes:
    """As Apple Mail sends plain text: DelSp=yes, quoted-printable when not ASCII (so a
    soft break's trailing spaces come as "=20"), its parameters each on a folded line."""
    ascii_only = typed.isascii()
    head = [
        *_head(sender, name, to, subject, reply_to),
        "Content-Type: text/plain;",
        "\tcharset=" + ("us-ascii" if ascii_only else "utf-8") + ";",
        "\tdelsp=yes;",
        "\tformat=flowed",
        "Content-Transfer-Encoding: " + ("7bit" if ascii_only else "quoted-printable"),
        "Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))",
        "X-Mailer: Apple Mail (2.3774.600.62)",
    ]
    body = flowed(typed, APPLE_WIDTH, delsp=True)
    if not ascii_only:
        lines = quopri.encodestring(body.replace("\r\n", "\n").encode()).decode()
        body = lines.replace("\n", "\r\n")
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


CLIENTS = {"thunderbird": thunderbird, "apple-mail": apple_mail}


def quoted(original: EmailMessage, client: str) -> str:
    """The original below a reply, as each client quotes it."""
    author = email.utils.parseaddr(str(original["From"]))
    lines = "\n".join("> " + line if line else ">" for line in text(original).splitlines())
    if client == "thunderbird":
        return f"On 02/03/2026 10:00, {author[0]} wrote:\n{lines}"
    return f"> On 2 Mar 2026, at 10:00, {author[0]} <{author[1]}> wrote:\n>\n{lines}"


def send(person: Person, raw: bytes, expect: str | list[str] | None, to: str = PROGRAM):
    """`raw` sent as it is, and the answers checked as `Person.say` checks them."""
    person.program.send(raw, sender=person.address, to=[to])
    return person.expect(email.message_from_bytes(raw, policy=email.policy.default), expect)


def reply(person: Person, client: str, original: EmailMessage, typed: str, expect, below=False):
    """A reply written above the quoted original (or `below` it, Thunderbird's default),
    sent by `client`."""
    target = email.utils.parseaddr(str(original["Reply-To"] or original["From"]))[1]
    quote = quoted(original, client)
    body = f"{quote}\n\n{typed}" if below else f"{typed}\n\n{quote}"
    raw = CLIENTS[client](
        person.address,
        body,
        "Re: " + " ".join(str(original["Subject"]).split()),
        to=target,
        name=person.name,
        reply_to=original["Message-ID"],
    )
    return send(person, raw, expect, to=target)


def soft_breaks(raw: bytes) -> int:
    """Lines of the body that end in the soft-break space (as sent, before any decoding)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    body = message.get_payload(decode=True).decode()
    return sum(1 for line in body.split("\r\n") if line.endswith(" ") and line != "-- ")


# --- reading a message ---------------------------------------------------------------------


TYPED = (
    "Dear coordinators,\n"
    "\n"
    "Thank you for the introduction to Chen. We have written to each other three times"
    " already and we plan a video call on Thursday, after which I will write again.\n"
    " This line I indented on purpose, and it is long enough to be wrapped by the client.\n"
    "From the first message on, the conversation has been easy; we share an interest in"
    " palaeography and open access.\n"
    "See https://example.org/" + "a-very-long-path-" * 6 + "end for the paper we read.\n"
    "\n"
    "Best wishes,\n"
    "Ann"
)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_wrapped_message_is_read_as_it_was_typed(client):
    raw = CLIENTS[client](ANN, TYPED, "Hello")
    assert soft_breaks(raw) >= 5
    if client == "thunderbird":
        assert b"\r\n From the first message" in raw  # space-stuffed
        assert b"\r\n  This line I indented" in raw
    else:
        assert (
            b"\r\n From the first message on, the conversation has been easy; we share an  \r\n"
            in raw
        )
        assert re.search(rb"a-very-long-pa?t?h?-[a-z-]* \r\n[a-z]", raw)  # broken in a word
    parsed = parse(raw, ANN, (PROGRAM,))
    assert parsed.text == TYPED + "\n"
    assert parsed.reply == TYPED


@pytest.mark.parametrize("client", CLIENTS)
def test_a_quoted_flowed_original_keeps_its_marks_and_is_trimmed(client):
    original = (
        "Your partner is Chen Jing, a librarian in Shanghai who works on palaeography and"
        " metadata, and who would like to talk every fortnight."
    )
    typed = (
        "That sounds wonderful, thank you. I have written to Chen already and we talk on Friday."
    )
    body = (
        typed
        + "\n\n"
        + "> On 2 Mar 2026, at 10:00, Program <program@example.org> wrote:\n>\n> "
        + original
        + "\n>> An older line quoted twice, long enough that the client has to wrap it too."
        + "\n> Back at one level."
    )
    raw = CLIENTS[client](ANN, body, "Re: Your partner")
    assert raw.count(b"\r\n> ") >= 4  # the quoted paragraph went out in pieces
    parsed = parse(raw, ANN, (PROGRAM,))
    assert "\n> " + original + "\n" in parsed.text
    assert (
        "\n>> An older line quoted twice, long enough that the client has to wrap it too.\n"
        "> Back at one level.\n"
    ) in parsed.text
    assert parsed.reply == typed


def test_the_signature_separator_is_a_hard_break():
    typed = (
        "Regular contact: we meet on Zoom every week and write in between, it works well.\n"
        "-- \n"
        "Ann Okafor, Reference Librarian, Research Help Desk, University Library, Lagos"
    )
    raw = thunderbird(ANN, typed, "Re: check-in")
    assert b"\r\n-- \r\n" in raw
    parsed = parse(raw, ANN, (PROGRAM,))
    assert parsed.text == typed + "\n"
    assert parsed.reply == typed.split("\n")[0]


@pytest.mark.parametrize("delsp", [False, True])
def test_a_flowed_line_before_the_signature_separator_is_not_joined_to_it(delsp):
    assert unflow("Thanks \r\n-- \r\nAnn \r\nOkafor", delsp) == (
        ("Thanks\n" if delsp else "Thanks \n") + "-- \nAnn" + ("" if delsp else " ") + "Okafor"
    )
    assert unflow("> quoted \r\n> -- \r\n> sig", delsp).split("\n")[1] == "> -- "


def test_lines_of_different_quote_depth_are_never_joined():
    assert unflow("> one \r\n>> two \r\n> three \r\nfour") == ("> one \n>> two \n> three \nfour")
    assert unflow(">one \r\n>two\r\n>>three") == ">one two\n>>three"


@pytest.mark.parametrize("delsp", [False, True])
def test_space_stuffing_is_undone_only_outside_quotes(delsp):
    assert unflow(" From here\r\n >not a quote\r\n  two spaces\r\n> kept", delsp) == (
        "From here\n>not a quote\n two spaces\n> kept"
    )


def test_apple_mails_forwarded_delsp_yes_message_from_the_corpus():
    """A real Apple Mail message (DelSp=yes, ISO-2022-JP): the quoted line it broke with two
    spaces is one line again, and the deeper quote inside it stays apart."""
    path = CORPORA / "sisimai-bounces" / "bsd" / "lhost-sendmail-14.eml"
    if not path.exists():
        pytest.skip("the shared corpus is not here")
    raw = path.read_bytes()
    assert b"23:45:01  \n> +0900 (JST)" in raw
    parsed = parse(raw, None, (PROGRAM,))
    lines = parsed.text.splitlines()
    assert "> The original message was received at Thu, 29 Apr 2009 23:45:01 +0900 (JST)" in lines
    assert "> from [192.0.2.31]" in lines
    assert ">>>> DATA" in lines
    assert parsed.reply == "Forward the message."


def test_a_thunderbird_message_with_an_attachment_and_an_html_alternative_is_unflowed():
    """Thunderbird's multipart mail: the flowed text part is read by mail-parser, not the
    one-part shortcut, and must be unflowed there as well."""
    typed = (
        "Interests: cataloguing, outreach, digital preservation, metadata, open access,"
        " research data management"
    )
    body = flowed(typed, THUNDERBIRD_WIDTH, delsp=False)
    assert "metadata, \r\nopen access" in body
    raw = (
        f"From: {ANN}\r\nTo: {PROGRAM}\r\nSubject: form\r\nMessage-ID: <multi@uni.example.edu>\r\n"
        "MIME-Version: 1.0\r\nUser-Agent: Mozilla Thunderbird\r\n"
        'Content-Type: multipart/mixed; boundary="------------mixed"\r\n\r\n'
        "This is a multi-part message in MIME format.\r\n--------------mixed\r\n"
        'Content-Type: multipart/alternative; boundary="------------alt"\r\n\r\n'
        "--------------alt\r\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n" + body + "\r\n\r\n"
        "--------------alt\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n"
        f"<html><body><p>{typed}</p></body></html>\r\n--------------alt--\r\n\r\n"
        '--------------mixed\r\nContent-Type: text/plain; charset=UTF-8; name="cv.txt"\r\n'
        'Content-Disposition: attachment; filename="cv.txt"\r\n\r\n'
        "An attachment, wrapped \r\nbut not read.\r\n--------------mixed--\r\n"
    )
    parsed = parse(raw.encode(), ANN, (PROGRAM,))
    assert parsed.text.splitlines()[0] == typed


def test_text_that_is_not_flowed_keeps_its_trailing_spaces_and_line_breaks():
    raw = (
        f"From: {ANN}\r\nTo: {PROGRAM}\r\nSubject: hi\r\nMessage-ID: <fixed@uni.example.edu>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nInterests: open \r\naccess\r\n"
    ).encode()
    assert parse(raw, ANN, (PROGRAM,)).text == "Interests: open \naccess\n"


# The words a person types, by the shapes that flowing must keep: long words, runs of
# spaces, "From " and "-" at the start of a line, non-ASCII.
WORD = st.sampled_from(["a", "word", "From", "été", "-", "", "x" * 30, "longer-word"])
LINE = st.builds(
    lambda first, rest: " ".join([first, *rest]),
    st.sampled_from(["Name:", "From", "", " ", "a", "été"]),
    st.lists(WORD, max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(LINE, max_size=8), width=st.integers(20, 80), delsp=st.booleans())
def test_whatever_is_typed_comes_back_after_flowing(lines, width, delsp):
    typed = "\n".join(lines)
    expected = "\n".join(line.rstrip(" ") for line in lines)
    assert unflow(flowed(typed, width, delsp), delsp) == expected


# --- answered by the program -------------------------------------------------------------

# Every answer longer than a line, as people write them when they have something to say.
WRAPPING_FORM = {
    "Name": "Ann Adaeze Chiamaka Okafor-Abernathy, known to my colleagues simply as Ann Ọkafọ",
    "Country": "I work in the South-West zone, in Lagos State, Federal Republic of Nigeria",
    "Role": "Reference and research support librarian, responsible for the research help desk",
    "Library type": "The main library of a large research university in Lagos (academic)",
    "Career stage": "Twelve years in libraries so far, with a small team to lead (mid career)",
    "Interests": "cataloguing, outreach, digital preservation, metadata, open access,"
    " research data management",
    "Languages": "English, Yoruba, Igbo, Hausa, Nigerian Pidgin, French (basic, reading), Spanish",
    "Time zone": "the clocks never change here, it is the same all year round: Lagos, Nigeria",
    "Contact methods": "email, Zoom, WhatsApp, Microsoft Teams, Google Meet, Signal and phone"
    " calls",
    "Contact frequency": "twice a month would suit me best, or whatever suits my partner"
    " (fortnightly)",
    "About me": "I run the research help desk at a university library in Lagos, where I teach"
    " doctoral students to find, manage and cite sources, and I look after our repository.",
    "Partner wishes": "Someone in a university library in Asia or Latin America who also works"
    " with research data and open access",
}
STORED = {
    "name": WRAPPING_FORM["Name"],
    "country": "NG",
    "role": WRAPPING_FORM["Role"],
    "library_type": "academic",
    "career_stage": "mid career",
    "interests": "cataloguing; outreach; digital preservation; metadata; open access;"
    " research data management",
    "languages": "English; Yoruba; Igbo; Hausa; Nigerian Pidgin; French; Spanish",
    "time_zone": "Africa/Lagos",
    "contact_methods": "email; video call; chat; phone calls",
    "contact_frequency": "fortnightly",
    "about_me": WRAPPING_FORM["About me"],
    "partner_wishes": WRAPPING_FORM["Partner wishes"],
}


SIGNATURE = (
    "Ann Okafor | Reference and Research Support Librarian | University Library, Lagos, Nigeria"
)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_form_whose_every_field_wraps_is_stored_whole(program, client):
    ann = Person(program, ANN, "Ann Okafor")
    form = ann.say("APPLY", expect="application-form")
    typed = "\n".join(f"{label}: {value}" for label, value in WRAPPING_FORM.items())
    typed += "\n\nThank you,\nAnn\n-- \n" + SIGNATURE
    received = reply(ann, client, form, typed, expect="application-received")
    [saved] = program.query("SELECT * FROM participants")
    assert {key: saved[key] for key in STORED} == STORED
    assert "Time zone: Africa/Lagos" in text(received)
    assert "Okafor-Abernathy, known" in text(received)
    assert "University Library, Lagos" not in repr(dict(saved))
    # Every field did go out over two lines or more, and so did the quoted form below.
    sent = CLIENTS[client](ANN, typed)
    assert soft_breaks(sent) >= len(WRAPPING_FORM)


def checkin_for(home, address: str) -> EmailMessage:
    [checkin] = inbox(home, address, "checkin")
    return checkin


@pytest.mark.parametrize(
    ("client", "below"), [("thunderbird", False), ("thunderbird", True), ("apple-mail", False)]
)
def test_a_check_in_answer_that_wraps_is_read_whole(matched, client, below):
    """The words that say how it goes come after the wrap: read up to it, the answer was
    unclear and Ann was asked again. Above the quoted check-in, or below it as Thunderbird
    places a reply unless told otherwise."""
    tick(matched, "2026-03-16T09:00:00Z")
    program = program_at(matched, "2026-03-17T09:00:00Z")
    try:
        ann = Person(program, ANN, "Ann Okafor")
        typed = (
            "Thanks for checking in! Chen and I have met twice on Zoom and we write now and"
            " then, so I would call it some contact."
        )
        checkin = checkin_for(matched, ANN)
        thanks = reply(ann, client, checkin, typed, expect="checkin-thanks", below=below)
        assert "We have recorded your answer: 2" in text(thanks)
    finally:
        program.stop()
    with sqlite3.connect(matched / "mailflow.db") as db:
        stored = db.execute(
            "SELECT q.email, a.number, a.answer FROM checkin_answers a"
            " JOIN participants q ON q.id = a.participant_id"
        ).fetchall()
    assert stored == [(ANN, 1, 2)]
    assert inbox(matched, CHEN, "partner-nudge") == []


def confirmed(coordinator: Person, client: str, typed: str) -> tuple[EmailMessage, EmailMessage]:
    """Commands sent by `client`, and the CONFIRM to their preview: (preview, result)."""
    raw = CLIENTS[client](coordinator.address, typed, "Commands")
    assert soft_breaks(raw) >= 1
    preview = send(coordinator, raw, expect="command-confirm")
    return preview, reply(coordinator, client, preview, "CONFIRM", expect="command-result")


@pytest.mark.parametrize("client", CLIENTS)
def test_a_round_line_that_wraps_keeps_its_end_date(coordinated, client):
    """The project's own example of ROUND is 85 characters: Thunderbird sends its END date
    on a line of its own."""
    line = "ROUND Spring 2027 OPEN 1 Feb 2027 CLOSE 28 Feb 2027 START 1 Mar 2027 END 1 Jul 2027"
    preview, result = confirmed(Person(coordinated, COORDINATOR), client, line)
    assert "Schedules Round 3 as Spring 2027" in text(preview)
    assert "term from 2027-03-01 to 2027-07-01" in text(result)
    with sqlite3.connect(coordinated.home / "mailflow.db") as db:
        rows = db.execute("SELECT name, term_end FROM rounds WHERE state = 'open'").fetchall()
    assert rows == [("Spring 2027", "2027-07-01T00:00:00+00:00")]


BROADCAST_SUBJECT = "Webinar on 20 March: mentoring conversations across time zones and languages"
BROADCAST_PARAGRAPH = (
    "Join us on 20 March at 14:00 UTC for an hour with three pairs from last year's round,"
    " who will tell how they kept talking across eight time zones and three languages."
)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_broadcast_whose_subject_and_paragraphs_wrap_goes_out_as_written(coordinated, client):
    typed = f"BROADCAST {BROADCAST_SUBJECT}\nDear all,\n\n{BROADCAST_PARAGRAPH}\n\nThe coordinators"
    _, result = confirmed(Person(coordinated, COORDINATOR), client, typed)
    assert f"Sent '{BROADCAST_SUBJECT}' to " in text(result)
    sent = [m for m in coordinated.delivered() if m["X-Mailflow-Template"] == "broadcast"]
    assert {m["To"].addresses[0].addr_spec for m in sent} >= {ANN, CHEN, DEE}
    for message in sent:
        # (read unfolded: the program folds a long Subject right after the colon)
        assert " ".join(message["Subject"].split()) == BROADCAST_SUBJECT
        assert f"Dear all,\n\n{BROADCAST_PARAGRAPH}\n\nThe coordinators\n" in text(message).replace(
            "\r\n", "\n"
        )


# --- linear time ---------------------------------------------------------------------------

SIZE = 1_000_000
# What flowing could make slow: one line of a megabyte (flowed or not, in one word or many),
# a megabyte of flowed lines that join into one, quote marks, lines whose depth keeps
# changing, lines that are all stuffing.
SHAPES = {
    "one-line": "a" * SIZE,
    "one-flowed-line": "word " * (SIZE // 5),
    "flowed-lines": "a \r\n" * (SIZE // 4),
    "quote-marks": ">" * SIZE + " \r\nx",
    "depth-changes": "> a \r\n>> b \r\n" * (SIZE // 14),
    "stuffed-lines": " \r\n" * (SIZE // 3),
    "signatures": "-- \r\n" * (SIZE // 5),
}


class Stuck(Exception):
    pass


def cpu_seconds(work) -> float:
    """CPU time of `work`, stopped after five seconds of wall time if it never ends."""

    def expired(signum, frame):
        raise Stuck("still running after 5 s: not linear")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, 5)
    try:
        started = time.process_time()
        work()
        return time.process_time() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("delsp", ["yes", "no"])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_megabyte_of_flowed_text_is_parsed_in_well_under_a_second(shape, delsp):
    raw = (
        f"From: {ANN}\r\nTo: {PROGRAM}\r\nSubject: hi\r\nMessage-ID: <mb@uni.example.edu>\r\n"
        f"Content-Type: text/plain; charset=utf-8; format=flowed; delsp={delsp}\r\n\r\n"
    ).encode() + SHAPES[shape].encode()
    parse(raw, ANN, (PROGRAM,))  # warm: the first call imports and compiles
    spent = cpu_seconds(lambda: parse(raw, ANN, (PROGRAM,)))
    assert spent < 0.5, f"{shape} took {spent:.2f} s of CPU"
    if shape == "flowed-lines":
        joined = "a" if delsp == "yes" else "a "
        assert parse(raw, ANN, (PROGRAM,)).text == joined * (SIZE // 4)


@pytest.mark.parametrize("shape", ["one-flowed-line", "flowed-lines", "depth-changes"])
def test_handling_a_megabyte_flowed_form_takes_under_a_second(program, shape):
    """The joined text goes on to the form reader, the trimmer and the command finder: one
    line of a megabyte, as test_linear_time feeds them, and the whole handling stays linear."""
    program.send(thunderbird(ANN, "hello", "warm"), sender=ANN)  # templates and tables
    body = "Name: Ann\r\nCountry: Kenya\r\nAbout me: " + SHAPES[shape]
    raw = (
        f"From: {ANN}\r\nTo: {PROGRAM}\r\nSubject: my form\r\nMessage-ID: <big@uni.example.edu>\r\n"
        "Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
    ).encode() + body.encode()
    spent = cpu_seconds(lambda: program.send(raw, sender=ANN))
    assert spent < 1.0, f"handling {shape} took {spent:.2f} s of CPU"
    [row] = program.query("SELECT state FROM messages WHERE message_id = '<big@uni.example.edu>'")
    assert row["state"] in ("handled", "ignored")
