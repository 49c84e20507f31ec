"""No line over 998 octets in anything mailflow sends (RFC 5322 2.1.1), whatever people
write: a long line goes quoted-printable, whose soft line breaks every client joins again;
short mail stays 7bit. A relay folds a longer line (Postfix's smtp_line_length_limit puts
CRLF and a space into it), which breaks the body hash of our DKIM signature, and Exim 4.95+
refuses it: so a signed introduction and a signed broadcast are sent through a real Postfix
and their signatures checked where Postfix delivers them.

Small for slow connections: a term of mail (every template but a few of fixed wording)
with realistic answers stays under 4 KB of text each, plain text only, the STATS chart the
one image; with every field at its limit, only the mail that shows people's answers back
to them grows past it, the partner's introduction first.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest

from mailflow.app.membership import Traces, redacted_mail
from mailflow.read.form import LIMITS, MAX_ITEM_LENGTH, MAX_ITEMS
from mailflow.send.compose import compose as compose_outgoing
from mailflow.send.render import REQUIRED
from mailflow.send.signatures import key_lookup
from tests.conftest import (
    PROGRAM,
    command,
    compose,
    free_port,
    start_in_process,
    until,
)
from tests.dns_stub import DnsStub, make_key
from tests.people import ANN, CHEN, COORDINATOR, HEADER
from tests.postfix import Postfix, executable
from tests.relay_sink import Received, RelaySink

RFC_LIMIT = 998  # octets a line may have, CRLF not counted
SELECTOR = "wrap2026"
PROGRAM_DOMAIN = PROGRAM.split("@")[1]

# The longest each field of the form allows (mailflow/read/form.py), written as people
# write them: the About me as one paragraph, on one line, as Outlook and Gmail send it.
ABOUT_ME = (
    "I run the research help desk of a university library, where I teach first-year"
    " students to find, judge and cite sources, and I look after our institutional"
    " repository, open access fund and research data service. "
)
LANGUAGES = (
    "English, Spanish, French, German, Portuguese, Italian, Dutch, Swedish, Norwegian,"
    " Danish, Finnish, Polish, Czech, Russian, Arabic, Chinese, Japanese, Korean, Hindi,"
    " Swahili"
)


def longest(limit: int, seed: str) -> str:
    """`seed` repeated to exactly `limit` characters, ending on a letter."""
    value = (seed * (limit // len(seed) + 1))[:limit].rstrip()
    return value + "s" * (limit - len(value))


def interests() -> str:
    items = [longest(MAX_ITEM_LENGTH, f"{n} digital preservation and metadata ") for n in range(20)]
    assert len(items) == MAX_ITEMS
    return "; ".join(items)


REALISTIC = {
    "name": "{name} Okafor",
    "role": "Reference and research data librarian",
    "interests": "open access; research data management; information literacy; outreach",
    "languages": "English, French",
    "about_me": (
        "I run the research help desk of a university library, where I teach first-year"
        " students to find and cite sources. I look after our repository and open access"
        " fund, and I would like to learn how other libraries support research data.\n"
        "Outside work I sing in a choir and grow tomatoes."
    ),
    "partner_wishes": "Someone who works with archives or special collections.",
}
LONGEST = {
    "name": "{name} " + "Okafor-Adebayo " * 7,  # cut to the limit by `named`
    "role": longest(LIMITS["role"], "Reference and research data librarian "),
    "interests": interests(),
    "languages": LANGUAGES,
    "about_me": longest(LIMITS["about_me"], ABOUT_ME),
    "partner_wishes": longest(LIMITS["partner_wishes"], "Someone who works with archives "),
}
NEWCOMER, SECOND, THIRD = "ivo@lib.example.ke", "jo@lib.example.ke", "kim@lib.example.ke"
TERM_DAYS = [
    f"2026-{month:02}-{day:02}T09:00:00Z" for month in range(3, 8) for day in (1, 7, 13, 19, 25)
]


def named(fields: dict[str, str], name: str) -> str:
    """The person's name in `fields`, at most as long as the form allows."""
    full = fields["name"].format(name=name)[: LIMITS["name"]]
    return full.rstrip() + "s" * (len(full) - len(full.rstrip()))


def roster_of(folder: Path, fields: dict[str, str]) -> Path:
    rows = [HEADER]
    for address, name, country, zone in (
        (ANN, "Ann", "Nigeria", "Lagos"),
        (CHEN, "Chen", "China", "Shanghai"),
    ):
        cells = [
            address,
            named(fields, name),
            country,
            fields["role"],
            "academic",
            "early career",
            fields["interests"],
            fields["languages"],
            zone,
            "email",
            "monthly",
            fields["about_me"],
            fields["partner_wishes"],
        ]
        rows.append(",".join('"' + cell.replace('"', '""') + '"' for cell in cells))
    path = folder / "round.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def form_of(fields: dict[str, str]) -> str:
    return "\n".join(
        [
            f"Name: {named(fields, 'Ivo')}",
            "Country: Kenya",
            f"Role: {fields['role']}",
            "Library type: Academic",
            "Career stage: Early career",
            f"Interests: {fields['interests']}",
            f"Languages: {fields['languages']}",
            "Time zone: Nairobi",
            "Contact methods: email, Zoom",
            "Contact frequency: fortnightly",
            f"About me: {fields['about_me']}",
            f"Partner wishes: {fields['partner_wishes']}",
        ]
    )


LONG_SUBJECT = longest(250, "Autumn webinar on open research data, and what comes after ")


def broadcast_text() -> str:
    """A coordinator's BROADCAST: paragraphs of several thousand characters, one line each."""
    paragraph = (
        "Our autumn webinar on open research data brings together librarians from every"
        " region of the network; bring a question, a project or a problem you would like"
        " to talk through with colleagues. "
    )
    return "Dear all,\n\n" + "\n\n".join([longest(4000, paragraph)] * 3) + "\n\nThe coordinators"


def longest_line(raw: bytes) -> int:
    return max(len(line) for line in raw.split(b"\r\n"))


def as_read(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def body_text(raw: bytes) -> str:
    """The plain text as a client shows it, with the wire's CRLF read as line ends."""
    return as_read(raw).get_body(("plain",)).get_content().replace("\r\n", "\n")


# -- compose alone ----------------------------------------------------------------------


def composed(body: str, subject: str = "News") -> bytes:
    return compose_outgoing(
        template="broadcast",
        subject=subject,
        body=body,
        sender_name="Librarians Peer Network",
        sender=PROGRAM,
        recipient="ann@uni.example.edu",
        message_id="<line.mailflow@example.org>",
        now=datetime(2026, 3, 2, 9, tzinfo=UTC),
    ).raw


def test_short_mail_stays_7bit_and_readable_as_it_is():
    body = "Hello Ann,\n\n" + "A sentence our templates write on one line. " * 8 + "\n"
    raw = composed(body)
    assert as_read(raw)["Content-Transfer-Encoding"] == "7bit"
    assert body.replace("\n", "\r\n").encode() in raw  # not encoded at all
    assert body_text(raw) == body


@pytest.mark.parametrize(
    "body",
    [
        "a" * 2000 + "\n",  # one word, no space to break at
        "Hello,\n\n" + longest(2000, ABOUT_ME) + "\n",
        "x = y " * 400 + "\nends with spaces   \n.\nFrom the start\n",  # = . From trailing
        "Grüße aus München. " * 120 + "\n",  # non-ASCII was quoted-printable before too
    ],
    ids=["one-word", "about-me", "qp-specials", "non-ascii"],
)
def test_a_long_line_goes_quoted_printable_and_reads_back_exactly(body):
    raw = composed(body)
    assert longest_line(raw) <= 78
    assert as_read(raw)["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(raw) == body


def test_a_line_of_990_octets_is_the_longest_sent_as_7bit():
    at_limit = composed("y" * 990 + "\n")
    assert as_read(at_limit)["Content-Transfer-Encoding"] == "7bit"
    assert longest_line(at_limit) == 990
    over = composed("y" * 991 + "\n")
    assert as_read(over)["Content-Transfer-Encoding"] == "quoted-printable"
    assert body_text(over) == "y" * 991 + "\n"


@pytest.mark.parametrize(
    "subject",
    [
        " ".join(["Webinar"] * 40),  # the 250 characters a subject keeps, in words
        "W" * 300,  # one word: cut to 250, still far from 998
        "Réunion des bibliothécaires " * 12,
    ],
)
def test_a_long_subject_is_folded(subject):
    raw = composed("Hello\n", subject=subject)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert longest_line(head) <= RFC_LIMIT
    if " " in subject:
        assert longest_line(head) <= 78
    assert as_read(raw)["Subject"] == " ".join(subject.split())[:250].strip()


def test_the_redacted_copy_of_a_mail_keeps_its_lines_short_too():
    """The other place a message is built: what an erased person's partner keeps of a mail,
    their traces replaced (mailflow/app/membership.py), is built anew from the text."""
    about = LONGEST["about_me"]
    raw = composed("Hello,\n\n    > " + about + "\n\nAnn Okafor wrote that.\n")
    redacted = redacted_mail(raw, Traces(("Ann Okafor",)))
    assert longest_line(redacted) <= 78
    assert body_text(redacted).endswith(f"    > {about}\n\n[erased] wrote that.\n")


# -- through a real Postfix, signed -----------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("dkim")
    private, public = make_key(folder)
    path = folder / "dkim.pem"
    path.write_bytes(private)
    return path, public


@pytest.fixture(scope="module")
def published(dkim_key):
    _, public = dkim_key
    with DnsStub({f"{SELECTOR}._domainkey.{PROGRAM_DOMAIN}": f"v=DKIM1; k=rsa; p={public}"}) as s:
        yield s


@pytest.fixture(scope="module")
def sink():
    with RelaySink() as relay:
        yield relay


@pytest.fixture(scope="module")
def postfix(sink: RelaySink):
    """The tests' Postfix (tests/postfix.py, from the guide's snippets), relaying everything
    not for a program to the sink; the one program route leads nowhere: only mail out."""
    if os.geteuid() != 0:
        pytest.skip("a private Postfix runs only as root (its master, its chroot)")
    if not executable():
        pytest.fail("postfix is not installed (make test installs it as root)")
    folder = Path(tempfile.mkdtemp(prefix="mailflow-wrap-"))
    routes = {"program@nowhere.test": f"lmtp:inet:127.0.0.1:{free_port()}"}
    server = Postfix(routes, sink.port, folder)
    server.start()
    yield server
    server.remove()
    shutil.rmtree(folder, ignore_errors=True)


def arrived(sink: RelaySink, postfix: Postfix, count: int = 1, **wanted: str) -> list[Received]:
    """The `count` mails the sink got whose headers say `wanted` (X_Mailflow_Template=...)."""

    def found() -> list[Received] | None:
        items = [
            item
            for item in sink.received
            if all(item.message[name.replace("_", "-")] == value for name, value in wanted.items())
        ]
        return items if len(items) >= count else None

    try:
        return until(found, f"mail with {wanted} at the sink")
    except AssertionError:
        raise AssertionError(f"nothing relayed; postfix's log:\n{postfix.log()}") from None


def assert_verifies_whole(item: Received, published: DnsStub) -> None:
    assert longest_line(item.content) <= RFC_LIMIT
    assert item.content.startswith(b"Received: ")  # Postfix's: it did pass through it
    assert dkim.verify(item.content, dnsfunc=key_lookup(published.address, timeout=2.0))


def test_a_signed_introduction_and_broadcast_verify_after_a_real_postfix(
    postfix: Postfix, sink: RelaySink, published: DnsStub, dkim_key, home: Path, tmp_path: Path
):
    signing = {
        "MAILFLOW_DKIM_KEY": str(dkim_key[0]),
        "MAILFLOW_DKIM_SELECTOR": SELECTOR,
        "MAILFLOW_SMTP_RELAY": f"127.0.0.1:{postfix.port}",
        "MAILFLOW_COORDINATORS": COORDINATOR,
    }
    command(home, "import", str(roster_of(tmp_path, LONGEST)), **signing)
    command(home, "match", **signing)  # the introductions go out at once

    intros = arrived(sink, postfix, 2, X_Mailflow_Template="match-intro")
    assert len(intros) == 2
    for intro in intros:
        assert_verifies_whole(intro, published)
        assert intro.message["Content-Transfer-Encoding"] == "quoted-printable"
        # The partner's About me reaches the reader whole, on one line, as they wrote it.
        assert f"    > {LONGEST['about_me']}\n" in body_text(intro.content)

    running = start_in_process(home, "--no-scheduler", **signing)
    try:
        text = broadcast_text()
        asked = compose(COORDINATOR, "BROADCAST Autumn webinar\n" + text, "News")
        running.send(asked, sender=COORDINATOR)
        (preview,) = arrived(sink, postfix, In_Reply_To=asked["Message-ID"])
        assert preview.message["X-Mailflow-Template"] == "command-confirm"
        token_address = str(preview.message["Reply-To"])
        confirm = compose(
            COORDINATOR, "CONFIRM", "Re: News", to=token_address, in_reply_to=preview.message_id
        )
        running.send(confirm, sender=COORDINATOR, to=[token_address])
    finally:
        running.stop()
    sent = arrived(sink, postfix, 2, X_Mailflow_Template="broadcast")
    assert sorted(item.recipients for item in sent) == [(ANN,), (CHEN,)]
    for item in sent:
        assert_verifies_whole(item, published)
        assert item.message["Subject"] == "Autumn webinar"
        assert f"\n{text}\n" in body_text(item.content)


# -- every template, through the program, with the longest and with realistic content ------


def answer(running, sender: str, body: str, subject: str = "", **options) -> list[EmailMessage]:
    message = compose(sender, body, subject, **options)
    running.send(message, sender=sender, to=[options.get("to", PROGRAM)])
    return running.mail_for(message["Message-ID"])


def reply(running, sender: str, to: EmailMessage, body: str) -> list[EmailMessage]:
    return answer(
        running,
        sender,
        body,
        "Re: " + str(to["Subject"]),
        to=str(to["Reply-To"]),
        in_reply_to=to["Message-ID"],
    )


def converse(running, sender: str, body: str, *replies: str, to: str = PROGRAM) -> None:
    """Say `body`, then each of `replies` in turn to the one answer the last one got."""
    answers = answer(running, sender, body, "Hello", to=to)
    for text in replies:
        (last,) = answers
        answers = reply(running, sender, last, text)


def the_mail(running, template: str, to: str) -> EmailMessage:
    return next(
        m
        for m in reversed(running.delivered())
        if m["X-Mailflow-Template"] == template and m["To"].addresses[0].addr_spec == to
    )


def a_term(
    home: Path, folder: Path, fields: dict[str, str], broadcast: str, subject: str
) -> dict[str, list[bytes]]:
    """Two people introduced, newcomers applying, a coordinator's STATS, FIND and BROADCAST,
    a term of check-ins answered or not, reminders, topics, the survey and the certificate,
    a pause, an update, a change of mind, the peer network joined, searched and left: every
    mail sent, as stored in the outbox (the bytes that go on the wire), by template."""
    settings = {"MAILFLOW_COORDINATORS": COORDINATOR}
    command(home, "import", str(roster_of(folder, fields)), **settings)
    command(home, "match", **settings)
    stored: dict[int, tuple[str, bytes]] = {}

    def keep() -> None:
        with sqlite3.connect(home / "mailflow.db") as db:
            stored.update(
                (i, (t, raw)) for i, t, raw in db.execute("SELECT id, template, raw FROM outbox")
            )

    def at(now: str, *ticks: str):
        for day in ticks:
            keep()  # a row may go once sent: a leaver's, or one past its keeping
            command(home, "tick", "--now", day, **settings)
        keep()
        return start_in_process(home, "--no-scheduler", MAILFLOW_NOW=now, **settings)

    running = at("2026-03-03T09:00:00Z")
    try:
        for word in ("HELP", "STATUS", "what is this?", "BROADCAST Hello everyone"):
            answer(running, ANN, word)
        (blank,) = answer(running, NEWCOMER, "APPLY")
        wrong = form_of(fields).replace("Country: Kenya", "Country: Atlantis " + fields["role"])
        (problems,) = reply(running, NEWCOMER, blank, wrong)
        reply(running, NEWCOMER, problems, form_of(fields))
        converse(running, SECOND, form_of(fields), "yes")
        converse(running, SECOND, "AGAIN")
        converse(running, SECOND, "DELETE MY DATA", "no thanks")
        converse(running, THIRD, form_of(fields), "CANCEL")
        converse(running, CHEN, f"UPDATE\nRole: {fields['role'][:-1]}.", "YES")
        converse(running, ANN, "PAUSE", "YES")
        converse(running, ANN, "RESUME", "YES")
        interest = fields["interests"].split(";")[0].split()[1]
        converse(running, ANN, "NETWORK YES", "YES")
        converse(running, CHEN, "NETWORK YES", "YES")
        answer(running, ANN, f"PEERS {interest}")
        answer(running, ANN, "PEERS nothing of the kind")
        answer(running, NEWCOMER, f"PEERS {interest}")
        converse(running, ANN, "NETWORK NO", "YES")  # so that the survey invites her back
        converse(running, "who@else.example.net", "hello", to="program+expired@example.org")
        answer(running, COORDINATOR, f"STATS\nFIND {ANN}\nEXPORT")
        (preview,) = answer(running, COORDINATOR, f"BROADCAST {subject}\n" + broadcast, "News")
        reply(running, COORDINATOR, preview, "CONFIRM")
        converse(running, COORDINATOR, "MATCH", "CONFIRM")  # the two from Kenya wait
    finally:
        running.stop()
    running = at("2026-03-20T09:00:00Z", *(day for day in TERM_DAYS if day < "2026-03-20"))
    try:
        reply(running, ANN, the_mail(running, "checkin", ANN), "3")
        reply(running, CHEN, the_mail(running, "checkin", CHEN), fields["about_me"])
        converse(running, CHEN, "STOP", "YES")  # Ann is introduced to one who waits
    finally:
        running.stop()
    running = at(
        "2026-07-08T09:00:00Z", *(day for day in TERM_DAYS if "2026-03-20" < day < "2026-07-08")
    )
    try:
        reply(running, ANN, the_mail(running, "survey", ANN), "5\n" + fields["about_me"])
    finally:
        running.stop()
    at("2026-07-30T09:00:00Z", *(day for day in TERM_DAYS if day > "2026-07-08")).stop()
    sent: dict[str, list[bytes]] = {}
    for _, (template, raw) in sorted(stored.items()):
        sent.setdefault(template, []).append(raw)
    return sent


@pytest.fixture(scope="module")
def longest_term(tmp_path_factory) -> dict[str, list[bytes]]:
    folder = tmp_path_factory.mktemp("longest")
    return a_term(folder / "var", folder, LONGEST, broadcast_text(), LONG_SUBJECT)


NOT_MAIL = ("certificate-pdf", "unsubscribe.html")
REQUIRED_MAIL = {name for name in REQUIRED if "/" not in name and name not in NOT_MAIL}
# The mail a term above does not send, each of fixed wording and a name or a date: the
# farewell after DELETE MY DATA (forgotten once sent), bounces, floods, a late form.
NOT_IN_A_TERM = {
    "data-deleted",
    "participant-unreachable",
    "rate-limited",
    "application-waitlisted",
    "partnership-ended",
}
A_TERM = REQUIRED_MAIL - NOT_IN_A_TERM


def parts(raw: bytes) -> list[EmailMessage]:
    return [part for part in as_read(raw).walk() if not part.is_multipart()]


def test_every_mail_with_the_longest_content_has_no_line_over_998_octets(longest_term):
    assert set(longest_term) >= A_TERM
    for template, raws in longest_term.items():
        for raw in raws:
            assert longest_line(raw) <= RFC_LIMIT, template
            for part in parts(raw):
                if part.get_filename():  # the certificate, the STATS chart, EXPORT's files
                    assert part["Content-Transfer-Encoding"] == "base64", template
                elif part.get_content_maintype() == "text":
                    assert "\ufffd" not in part.get_content(), template
    # What people wrote arrives whole, on the line they wrote it on.
    for raw in longest_term["match-intro"] + longest_term["rematch-intro"]:
        assert f"    > {LONGEST['about_me']}\n" in body_text(raw)
        assert f"Interests: {LONGEST['interests'].replace('; ', ', ')}\n" in body_text(raw)
    for raw in longest_term["broadcast"]:
        assert f"\n{broadcast_text()}\n" in body_text(raw)
        assert as_read(raw)["Subject"] == LONG_SUBJECT  # folded on the wire, whole when read


def test_short_mail_of_a_term_stays_7bit(longest_term):
    for template in ("help", "not-understood", "checkin", "topic", "round-open"):
        for raw in longest_term[template]:
            assert as_read(raw)["Content-Transfer-Encoding"] == "7bit", template
    for raw in longest_term["match-intro"]:
        assert as_read(raw)["Content-Transfer-Encoding"] == "quoted-printable"


# -- small for slow connections -----------------------------------------------------------

SMALL = 4096  # bytes of text a mail may carry with realistic content
REALISTIC_BROADCAST = (
    "Dear all,\n\nOur autumn webinar on open research data is on Friday 20 March at 13:00"
    " UTC. Bring a question or a project you would like to talk through with colleagues"
    " from other regions of the network.\n\nThe link will come a day before.\n\n"
    "The coordinators"
)


@pytest.fixture(scope="module")
def realistic_term(tmp_path_factory) -> dict[str, list[bytes]]:
    folder = tmp_path_factory.mktemp("realistic")
    return a_term(folder / "var", folder, REALISTIC, REALISTIC_BROADCAST, "Autumn webinar")


def text_size(raw: bytes) -> int:
    """Bytes of text a reader downloads: every text part, decoded, in UTF-8."""
    return sum(
        len(part.get_content().encode())
        for part in parts(raw)
        if part.get_content_maintype() == "text" and not part.get_filename()
    )


def test_every_mail_with_realistic_content_is_under_4_kb_of_plain_text(realistic_term):
    assert set(realistic_term) >= A_TERM
    for template, raws in realistic_term.items():
        for raw in raws:
            assert text_size(raw) < SMALL, f"{template}: {text_size(raw)} bytes of text"
            kinds = [part.get_content_type() for part in parts(raw)]
            assert "text/html" not in kinds, template
            images = [kind for kind in kinds if kind.startswith("image/")]
            # The one image: the chart of a coordinator's STATS.
            assert images == [] or (template, images) == ("command-result", ["image/png"])
    charts = [raw for raw in realistic_term["command-result"] if b"stats.png" in raw]
    assert len(charts) == 1


# With every field at its limit, what shows a person's answers grows with them: the
# partner's in the introductions, one's own in the status, the application's answers and
# an update, the coordinator's text in a broadcast.
ECHOES = {
    "match-intro",
    "status",
    "application-confirm",
    "application-problems",
    "application-received",
    "broadcast",
    "rematch-intro",
    "signup-again",
    "updated",
}


def test_the_introduction_with_the_longest_about_me_is_the_exception_to_4_kb(
    longest_term, realistic_term
):
    """The exception, by design: the partner's About me (up to 2,000 characters) and their
    other answers are what an introduction is for. With realistic answers it is under 4 KB
    like every other mail (the test above); with the longest, it and the mails that echo
    answers back are over, and nothing else is."""
    for raw in longest_term["match-intro"]:
        assert SMALL < text_size(raw) < SMALL + 3 * LIMITS["about_me"]
    for raw in realistic_term["match-intro"]:
        assert text_size(raw) < SMALL
    over = {t for t, raws in longest_term.items() if any(text_size(r) >= SMALL for r in raws)}
    assert over == ECHOES
