"""A message of one text part is written directly, not through the email package's message
object and generator: the bytes must be the email package's own, for any name, subject,
header and body. A name beyond ASCII is written as B encoded words of whole characters,
which every reader decodes to the same name and address."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.headerregistry import Address

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailflow.read.parse import clean
from mailflow.send.compose import by_the_email_package, compose, transfer_encoding, written

NOW = datetime(2026, 3, 16, 9, tzinfo=UTC)
ADDRESS = "member18027@lib82.example.org"

# Text as people write it: any letters, marks and symbols, the odd control character,
# line breaks of every kind, long words.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from('\r\n\t =?"<>@,;:.()é陈😀'),
    max_size=300,
)
LINES = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.just("x" * 1200),
    max_size=8,
).map("\n".join)


def _headers(name: str, subject: str, extra: list[tuple[str, str]]) -> list:
    local, _, domain = ADDRESS.partition("@")
    return [
        ("From", Address("Librarians Peer Network", "program", "example.org")),
        ("To", Address(clean(name, 200), local, domain)),
        ("Subject", clean(subject, 250)),
        ("Date", "Mon, 16 Mar 2026 09:00:00 +0000"),
        ("Message-ID", "<7b457021e0f3f203bf12b41e0aec5f6d.mailflow@example.org>"),
        ("Reply-To", "program+da237wl4cnm7hfzm@example.org"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Mailflow-Template", "checkin"),
        *extra,
    ]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    name=TEXT,
    subject=TEXT,
    body=TEXT | LINES,
    extra=st.lists(
        st.tuples(st.sampled_from(["List-Id", "X-Extra", "Subject", "MIME-Version"]), TEXT),
        max_size=2,
    ),
)
def test_a_message_written_directly_is_the_email_packages_byte_for_byte(name, subject, body, extra):
    headers = _headers(name, subject, [(n, clean(v, 900)) for n, v in extra])
    cte = transfer_encoding(body)
    ours = written(headers, body, cte)
    if ours is not None:
        assert ours == by_the_email_package(headers, body, cte)
    else:  # only what the email package must judge itself (it may refuse it) goes to it
        names = [n.lower() for n, _ in headers]
        assert len(set(names)) < len(names) or "mime-version" in names


def test_a_check_in_is_written_directly():
    """The common case takes the direct way: plain and encoded names, 7bit and
    quoted-printable bodies."""
    for name, body in [
        ("Wanjiru Otieno", "Hello Wanjiru,\n\nHow is it going?\n"),
        ("Chloé Ahmed", "Bonjour Chloé,\n\n" + "long " * 300 + "\n"),
    ]:
        headers = _headers(name, "How is your partnership going?", [])
        raw = written(headers, body, transfer_encoding(body))
        assert raw is not None
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["To"].addresses[0].display_name == name
        assert parsed.get_content().replace("\r\n", "\n") == body


def _to(name: str) -> bytes:
    """A check-in composed to ADDRESS under `name`."""
    return compose(
        template="checkin",
        subject="Check-in",
        body="Hello\n",
        sender_name="Librarians Peer Network",
        sender="program@example.org",
        recipient=ADDRESS,
        recipient_name=name,
        message_id="<abc.mailflow@example.org>",
        now=NOW,
    ).raw


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200))
def test_a_name_beyond_ascii_reads_back_whole_within_the_line_limit(name):
    name = clean(name, 200)
    assume(not name.isascii() and name.isprintable())  # the others: the email package's
    raw = _to(name)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert head.isascii()
    # Decoded as RFC 2047 6.2 says, the space between encoded words dropped (the email
    # package's own address parser keeps it, for its own encoding too).
    to = head.split(b"\r\nTo: ", 1)[1].split(b"\r\nSubject: ", 1)[0].replace(b"\r\n ", b" ")
    words, _, address = to.decode().rpartition(" ")
    assert address == f"<{ADDRESS}>"
    assert str(email.header.make_header(email.header.decode_header(words))) == name


def test_encoded_words_hold_whole_characters():
    """ "陈" is three octets: fifteen of them fill an encoded word, the sixteenth starts
    the next, so no word ends inside a character."""
    name = "陈" * 16
    raw = _to(name)
    to = raw.split(b"To: ", 1)[1].split(b"\r\nSubject", 1)[0]
    words = to.replace(b"\r\n ", b" ").split(b" ")
    assert len(words) == 3  # two encoded words and the address
    decoded = [email.header.decode_header(w.decode())[0][0] for w in words[:2]]
    assert [d.decode("utf-8") for d in decoded] == ["陈" * 15, "陈"]
