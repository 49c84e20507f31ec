"""DKIM verification and signing: real dkimpy signatures, real DNS over UDP to a stub
nameserver on 127.0.0.1, no mocks."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailflow.send import signatures
from mailflow.send.signatures import key_lookup, sign
from tests.dns_stub import DnsStub, make_key

KEY_NAME = "sel._domainkey.example.org"
PROGRAM = "program@example.org"
BODY = b"MATCH ann@example.net bob@example.com\r\n\r\nThanks,\r\nCoordinator\r\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    return make_key(directory), make_key(directory)


@pytest.fixture(scope="module")
def private_key(keys) -> bytes:
    return keys[0][0]


@pytest.fixture(scope="module")
def stub(keys):
    (_, public), _ = keys
    with DnsStub({KEY_NAME: f"v=DKIM1; k=rsa; p={public}"}) as stub:
        yield stub


@pytest.fixture
def dnsfunc(stub):
    return key_lookup(stub.address, timeout=2.0)


def verified_domain(raw: bytes, from_domain: str, dnsfunc, *, to: str = PROGRAM, now=None):
    """The check as the program makes it: for its own address, at this moment."""
    return signatures.verified_domain(
        raw, from_domain, dnsfunc, program_address=to, now=now or datetime.now(UTC)
    )


def message(
    sender: str = "coordinator@example.org", body: bytes = BODY, to: str = PROGRAM
) -> bytes:
    return (
        f"From: Carla Coordinator <{sender}>\r\n"
        f"To: {to}\r\n"
        "Subject: match\r\n"
        "Date: Mon, 02 Mar 2026 09:00:00 +0000\r\n"
        "Message-ID: <c1@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
    ).encode() + body


def signed(
    private_key: bytes,
    raw: bytes | None = None,
    domain: str = "example.org",
    headers: tuple[bytes, ...] = (b"from", b"to", b"subject", b"date", b"message-id"),
    at: datetime | None = None,
    **options,
):
    """`raw` signed as a provider signs it; `at`: the moment written in t= (dkimpy reads
    the clock itself)."""
    raw = message() if raw is None else raw
    moment = (at or datetime.now(UTC)).timestamp()
    with mock.patch.object(dkim.time, "time", return_value=moment):
        header = dkim.DKIM(raw).sign(
            b"sel",
            domain.encode(),
            private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(headers),
            **options,
        )
    return header + raw


# -- verification --------------------------------------------------------------------------


def test_a_signed_message_verifies_for_its_domain(private_key, dnsfunc):
    assert verified_domain(signed(private_key), "example.org", dnsfunc) == "example.org"


def test_from_domain_is_compared_case_insensitively(private_key, dnsfunc):
    assert verified_domain(signed(private_key), "Example.ORG", dnsfunc) == "example.org"


def test_a_subdomain_from_aligns_with_the_parent_signature(private_key, dnsfunc):
    raw = signed(private_key, message("carla@mail.example.org"))
    assert verified_domain(raw, "mail.example.org", dnsfunc) == "example.org"


def test_a_signature_for_another_domain_does_not_vouch_for_the_sender(private_key, dnsfunc):
    raw = signed(private_key, message("carla@evil.example"))
    assert verified_domain(raw, "evil.example", dnsfunc) is None


def test_a_lookalike_domain_does_not_align(private_key, dnsfunc):
    raw = signed(private_key, message("carla@notexample.org"))
    assert verified_domain(raw, "notexample.org", dnsfunc) is None


def test_a_top_level_domain_signature_never_aligns(keys, private_key, stub):
    (_, public), _ = keys
    stub.records["sel._domainkey.org"] = f"v=DKIM1; k=rsa; p={public}"
    try:
        raw = signed(private_key, domain="org")
        assert dkim.verify(raw, dnsfunc=key_lookup(stub.address))  # valid, just not aligned
        assert verified_domain(raw, "example.org", key_lookup(stub.address)) is None
    finally:
        del stub.records["sel._domainkey.org"]


def test_a_changed_body_does_not_verify(private_key, dnsfunc):
    raw = signed(private_key).replace(b"bob@example.com", b"eve@example.com")
    assert verified_domain(raw, "example.org", dnsfunc) is None


def test_a_changed_from_does_not_verify(private_key, dnsfunc):
    raw = signed(private_key).replace(b"Carla Coordinator", b"Someone Else")
    assert verified_domain(raw, "example.org", dnsfunc) is None


def test_a_second_from_header_does_not_verify(private_key, dnsfunc):
    raw = signed(private_key).replace(b"To:", b"From: boss@example.org\r\nTo:", 1)
    assert verified_domain(raw, "example.org", dnsfunc) is None


def test_a_key_missing_from_dns_does_not_verify(private_key, dnsfunc):
    raw = signed(private_key).replace(b"s=sel;", b"s=gone;")
    assert b"s=gone;" in raw
    assert verified_domain(raw, "example.org", dnsfunc) is None


def test_a_signature_by_another_key_does_not_verify(keys, dnsfunc):
    _, (other_private, _) = keys
    assert verified_domain(signed(other_private), "example.org", dnsfunc) is None


def test_an_unsigned_message_does_not_verify(dnsfunc):
    assert verified_domain(message(), "example.org", dnsfunc) is None


def test_text_appended_below_a_body_length_signature_does_not_count(private_key, dnsfunc):
    raw = signed(private_key, length=True)
    assert b" l=" in raw or b";l=" in raw
    assert verified_domain(raw, "example.org", dnsfunc) == "example.org"
    forged = raw + b"\r\nSTOP ann@example.net\r\n"
    assert dkim.verify(forged, dnsfunc=dnsfunc)  # dkimpy alone accepts it
    assert verified_domain(forged, "example.org", dnsfunc) is None


def test_a_broken_signature_does_not_hide_a_good_one(private_key, dnsfunc):
    raw = b"DKIM-Signature: v=1; d=example.org; garbage\r\n" + signed(private_key)
    assert verified_domain(raw, "example.org", dnsfunc) == "example.org"


def test_an_unaligned_good_signature_does_not_hide_an_aligned_one(keys, private_key, stub):
    raw = signed(private_key)
    on_top = dkim.DKIM(raw).sign(
        b"sel",
        b"org",
        private_key,
        include_headers=[b"from"],
        canonicalize=(b"relaxed", b"relaxed"),
    )
    assert verified_domain(on_top + raw, "example.org", key_lookup(stub.address)) == "example.org"


# -- M9: a signature proves a message to this program, made lately -------------------------


def test_a_signed_mail_to_another_installation_proves_nothing_here(private_key, dnsfunc):
    raw = signed(private_key, message(to="program@other-network.example"))
    assert dkim.verify(raw, dnsfunc=dnsfunc)  # genuine, just not written to us
    assert verified_domain(raw, "example.org", dnsfunc) is None
    assert verified_domain(raw, "example.org", dnsfunc, to="program@other-network.example")


def test_a_signature_that_leaves_to_unsigned_proves_nothing(private_key, dnsfunc):
    raw = signed(private_key, headers=(b"from", b"subject", b"date", b"message-id"))
    assert dkim.verify(raw, dnsfunc=dnsfunc)
    assert verified_domain(raw, "example.org", dnsfunc) is None


def test_a_to_added_above_a_signed_one_proves_nothing(private_key, dnsfunc):
    raw = signed(private_key, message(to="program@other-network.example"))
    forged = raw.replace(b"From:", f"To: {PROGRAM}\r\nFrom:".encode(), 1)
    assert dkim.verify(forged, dnsfunc=dnsfunc)  # dkimpy checks the bottom-most To only
    assert verified_domain(forged, "example.org", dnsfunc) is None


def test_an_unsigned_cc_naming_the_program_proves_nothing(private_key, dnsfunc):
    raw = signed(private_key, message(to="program@other-network.example"))
    forged = raw.replace(b"Subject:", f"Cc: {PROGRAM}\r\nSubject:".encode(), 1)
    assert verified_domain(forged, "example.org", dnsfunc) is None


def test_the_programs_address_in_a_display_name_is_not_the_address(private_key, dnsfunc):
    raw = signed(private_key, message(to=f'"{PROGRAM}" <program@other-network.example>'))
    assert verified_domain(raw, "example.org", dnsfunc) is None


@pytest.mark.parametrize(
    "to",
    [
        "Mentoring <Program@Example.org>",
        "program+abcdefghijklmnop@example.org",
        "someone@example.net, program@example.org",
    ],
)
def test_a_signed_to_naming_the_program_or_a_token_address_proves(to, private_key, dnsfunc):
    raw = signed(private_key, message(to=to))
    assert verified_domain(raw, "example.org", dnsfunc) == "example.org"


def test_a_signed_cc_naming_the_program_proves(private_key, dnsfunc):
    raw = message(to="someone@example.net").replace(
        b"Subject:", f"Cc: {PROGRAM}\r\nSubject:".encode(), 1
    )
    raw = signed(private_key, raw, headers=(b"from", b"to", b"cc", b"subject", b"message-id"))
    assert verified_domain(raw, "example.org", dnsfunc) == "example.org"


@pytest.mark.parametrize(
    "age, proves",
    [
        (timedelta(0), True),
        (timedelta(days=6), True),
        (timedelta(days=8), False),  # a genuine command kept for later
        (timedelta(minutes=-5), True),  # the signer's clock a little ahead
        (timedelta(hours=-2), False),  # signed "in the future"
    ],
)
def test_only_a_recent_signature_proves(age, proves, private_key, dnsfunc):
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    raw = signed(private_key, at=now - age)
    found = verified_domain(raw, "example.org", dnsfunc, now=now)
    assert found == ("example.org" if proves else None)


HOSTILE = [
    b"",
    b";;;;",
    b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=!!!!; b=????",
    b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; l=",
    b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; l=" + b"9" * 76,
    b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; i=example.org",
    b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; c=weird/strange",
    b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; t=" + b"9" * 400,
    b"v=1; a=rsa-sha256; d=\xff\xfe.org; s=sel; h=from; bh=AAAA; b=AAAA",
    b"v=1; a=rsa-sha256; d=example.org; s=" + b"a" * 300 + b"; h=from; bh=AAAA; b=AAAA",
    b"v=1; a=rsa-sha256; d=example.org; s=..; h=from; bh=AAAA; b=AAAA",
    b"v=1; a=rsa-sha256; d=example.org; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA",
    b"v=1; a=ed25519-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA",
    b"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=" + b"A" * 4000,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_signature_headers_give_none(value, dnsfunc):
    raw = b"DKIM-Signature: " + value + b"\r\n" + message()
    assert verified_domain(raw, "example.org", dnsfunc) is None


def test_a_wrong_body_hash_with_a_real_key_gives_none(private_key, dnsfunc):
    raw = signed(private_key)
    raw = re.sub(rb"bh=[^;]+;", b"bh=AAAA;", raw)
    assert verified_domain(raw, "example.org", dnsfunc) is None


def test_a_broken_message_gives_none(dnsfunc):
    assert verified_domain(b"\x00\xff not a message", "example.org", dnsfunc) is None
    assert verified_domain(b"DKIM-Signature:\r\n\x00\r\n", "example.org", dnsfunc) is None


def test_many_signatures_are_not_all_checked(private_key, dnsfunc):
    raw = b"DKIM-Signature: v=1; d=example.org\r\n" * 50 + signed(private_key)
    assert verified_domain(raw, "example.org", dnsfunc) is None


TAGS = ["v", "a", "b", "bh", "c", "d", "h", "i", "l", "q", "s", "t", "x", "z"]
tag_values = st.one_of(
    st.sampled_from(["1", "rsa-sha256", "example.org", "sel", "from", "relaxed/relaxed", "0"]),
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=40),
)
signature_values = st.one_of(
    st.lists(st.tuples(st.sampled_from(TAGS), tag_values), max_size=12).map(
        lambda pairs: "; ".join(f"{tag}={value}" for tag, value in pairs)
    ),
    st.text(max_size=200),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=signature_values)
def test_generated_signature_headers_never_raise(value, stub):
    raw = b"DKIM-Signature: " + value.encode("utf-8", "surrogatepass") + b"\r\n" + message()
    assert verified_domain(raw, "example.org", key_lookup(stub.address, timeout=0.5)) is None


REQUIRED_SIGNED = [
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"reply-to",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"auto-submitted",
    b"mime-version",
    b"content-type",
]


# -- signing -------------------------------------------------------------------------------


def test_signed_output_verifies_and_keeps_the_original_bytes(private_key, dnsfunc):
    raw = message() + b"In-Reply-To: nothing, this is the body\r\n"
    out = sign(raw, "sel", "example.org", private_key)
    assert out.startswith(b"DKIM-Signature: ")
    assert out.endswith(raw)
    assert dkim.verify(out, dnsfunc=dnsfunc)
    assert verified_domain(out, "example.org", dnsfunc) == "example.org"
    tags = dkim.util.parse_tag_value(out[: -len(raw)].split(b":", 1)[1])
    assert tags[b"a"] == b"rsa-sha256"
    assert tags[b"c"] == b"relaxed/relaxed"
    assert b"l" not in tags
    signed_headers = {name.strip() for name in tags[b"h"].split(b":")}
    for name in REQUIRED_SIGNED:
        assert name in signed_headers


def test_signing_prevents_adding_a_second_subject(private_key, dnsfunc):
    out = sign(message(), "sel", "example.org", private_key)
    forged = out.replace(b"Subject: match\r\n", b"Subject: match\r\nSubject: STOP\r\n")
    assert verified_domain(forged, "example.org", dnsfunc) is None


def test_signing_keeps_bare_lf_line_ends(private_key, dnsfunc):
    raw = message().replace(b"\r\n", b"\n")
    out = sign(raw, "sel", "example.org", private_key)
    assert out.endswith(raw)
    assert b"\r" not in out
    assert verified_domain(out, "example.org", dnsfunc) == "example.org"


# -- key lookup ----------------------------------------------------------------------------


def test_key_lookup_returns_the_published_record(keys, stub):
    (_, public), _ = keys
    record = key_lookup(stub.address)(KEY_NAME.encode() + b".", timeout=5)
    assert record == f"v=DKIM1; k=rsa; p={public}".encode()  # several TXT strings, joined


def test_key_lookup_returns_empty_for_an_unknown_name(stub):
    assert key_lookup(stub.address)(b"nobody._domainkey.example.org.", timeout=5) == b""


def test_key_lookup_falls_back_to_tcp_for_a_large_record(stub):
    stub.records["big._domainkey.example.org"] = "x" * 3000
    try:
        assert key_lookup(stub.address)(b"big._domainkey.example.org.") == b"x" * 3000
    finally:
        del stub.records["big._domainkey.example.org"]


def test_key_lookup_sees_records_changed_while_running(stub):
    lookup = key_lookup(stub.address)
    stub.records["new._domainkey.example.org"] = "v=DKIM1; p="
    try:
        assert lookup(b"new._domainkey.example.org.") == b"v=DKIM1; p="
    finally:
        del stub.records["new._domainkey.example.org"]
    assert lookup(b"new._domainkey.example.org.") == b""


@pytest.mark.parametrize(
    "name", [b"\xff\xfe._domainkey.example.org.", b"a" * 300 + b".org.", b".."]
)
def test_key_lookup_returns_empty_for_impossible_names(name, stub):
    assert key_lookup(stub.address, timeout=0.5)(name) == b""


def test_key_lookup_returns_empty_when_nothing_listens():
    with DnsStub() as gone:
        address = gone.address
    started = time.monotonic()
    assert key_lookup(address, timeout=0.5)(KEY_NAME.encode() + b".", timeout=5) == b""
    assert time.monotonic() - started < 2
