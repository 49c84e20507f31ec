"""DKIM: which domain vouches for a message, and signing our own outgoing mail.

`verified_domain` reads mail anyone can write, so it must never raise and never trust a
signature that leaves part of the message unsigned: whatever goes wrong (broken headers,
bad base64, unreachable DNS) means "not verified", logged at INFO with the reason. A
signature proves a message to this program only when it also signs the To/Cc naming this
program's address, and is recent: a genuine signed mail to another installation, or an
old one, resent here proves nothing.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dkim
import dkim.canonicalization
import dkim.util
import dns.exception
import dns.name
import dns.resolver

from mailflow.errors import SettingError

log = logging.getLogger(__name__)

# Each signature can cost a DNS lookup; a legitimate message carries one or two (the
# author's domain, perhaps its mail provider's), so a pile of them is an attack.
MAX_SIGNATURES = 5

# Signed once more than they are present, so nobody downstream can add a second copy
# (a second From, To or Subject) without breaking the signature (RFC 6376 §8.15).
SIGNED_HEADERS = (
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Reply-To",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
)

# Large enough for a 4096-bit key in one UDP answer, small enough to avoid fragmentation
# (the 2020 DNS flag day value); anything larger is retried over TCP.
EDNS_PAYLOAD = 1232


def key_lookup(resolver: str | None, timeout: float = 5.0) -> Callable[..., bytes]:
    """A `dnsfunc` for dkimpy: `dnsfunc(name, timeout=...)` -> the TXT record, b"" if none.

    `resolver` is "host:port" of the nameserver to ask, or None for the system's resolver.
    A malformed `resolver` raises here, at configuration time, not per message.
    """
    nameserver: tuple[str, int] | None = None
    if resolver is not None:
        host, port = resolver.rsplit(":", 1)
        nameserver = (host.strip("[]"), int(port))
    limit = timeout

    def lookup(name: bytes | str, timeout: float | None = None) -> bytes:
        # dkimpy always passes its own default (5 s); the operator's shorter limit wins.
        lifetime = limit if timeout is None else min(timeout, limit)
        try:
            if isinstance(name, bytes):
                name = name.decode("utf-8")
            if nameserver is None:
                client = dns.resolver.Resolver()
            else:
                client = dns.resolver.Resolver(configure=False)
                client.nameservers = [nameserver[0]]
                client.port = nameserver[1]
            client.use_edns(0, 0, EDNS_PAYLOAD)
            client.timeout = lifetime
            # The resolver retries over TCP when the UDP answer is truncated and follows
            # CNAMEs (providers publish keys as selector._domainkey CNAME their-key).
            qname = dns.name.from_text(name)
            answer = client.resolve(qname, "TXT", lifetime=lifetime, search=False)
            # A record longer than 255 bytes arrives as several strings (RFC 6376 §3.6.2.2).
            return b"".join(answer.rrset[0].strings)
        except (dns.exception.DNSException, OSError, UnicodeError, ValueError) as error:
            # The name comes from a hostile s=/d= pair: whatever fails means "no key".
            log.info("no DKIM key at %.200s: %.200s", name, error or type(error).__name__)
            return b""

    return lookup


def verified_domain(
    raw: bytes,
    from_domain: str,
    dnsfunc: Callable[..., bytes],
    *,
    program_address: str,
    now: datetime,
) -> str | None:
    """The d= domain of the first DKIM signature that verifies, is aligned with
    `from_domain` (DMARC relaxed alignment), signs a To or Cc naming `program_address`
    (or its local+TOKEN form) and was made recently before `now`; else None. Never raises."""
    try:
        message = dkim.DKIM(raw)
    except Exception as error:  # dkimpy raises whatever its parser trips on
        log.info("DKIM: message unreadable: %.200s", error)
        return None
    # The same selection dkimpy's verify(idx) makes, so the indexes line up.
    signatures = [value for name, value in message.headers if name.lower() == b"dkim-signature"]
    if len(signatures) > MAX_SIGNATURES:
        log.info("DKIM: %d signatures, checking only the first %d", len(signatures), MAX_SIGNATURES)
    for index, value in enumerate(signatures[:MAX_SIGNATURES]):
        try:
            domain = _candidate(message, value, from_domain, program_address, now)
            # Checked before verify() so that misaligned signatures cost no DNS query to a
            # domain the sender chose.
            if domain is None:
                continue
            if not message.verify(idx=index, dnsfunc=dnsfunc):
                log.info("DKIM signature %d (d=%.200s) does not verify", index, domain)
                continue
            if message.domain.decode("ascii").lower().rstrip(".") != domain:
                continue  # cannot happen: dkimpy parsed the same header; cheap insurance
            return domain
        except Exception as error:  # hostile tags make dkimpy raise anything, even ValueError
            log.info(
                "DKIM signature %d not verified: %s: %.200s", index, type(error).__name__, error
            )
    return None


# Headers the program acts on in a coordinator's message: From identifies them, the
# Subject may hold the command and Message-ID makes a copy a duplicate.
# To and Cc say whom the signer wrote to: signed as often as present, so that none can be
# added on top, they must name this program.
SIGNED_AS_OFTEN_AS_PRESENT = (b"from", b"subject", b"message-id", b"to", b"cc")
MUST_BE_PRESENT = (b"from", b"message-id")
ONE_AT_MOST = (b"content-type", b"content-transfer-encoding", b"mime-version")
# A signature older than this proves nothing: a genuine command mail kept for later is
# not the coordinator asking now. Clocks differ a little, so t= may be slightly ahead.
SIGNATURE_AGE = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=15)
# Only so much of a To or Cc is read for our address; a real one names a few people.
RECIPIENT_CHARACTERS = 4000
_QUOTED = re.compile(r'"[^"]*"')
_BETWEEN_ADDRESSES = re.compile(r"[\s,;:<>()]+")


def _candidate(
    message: dkim.DKIM, value: bytes, from_domain: str, program_address: str, now: datetime
) -> str | None:
    """The signature's d= if it could vouch for the From domain, else None (reason logged)."""
    tags = dkim.util.parse_tag_value(value)
    domain = tags[b"d"].decode("ascii").lower().rstrip(".")
    if not _aligned(domain, from_domain):
        log.info(
            "DKIM signature d=%.200s is not aligned with From domain %.200s", domain, from_domain
        )
        return None
    if not _recent(tags.get(b"t"), now):
        log.info("DKIM signature d=%.200s is not recent: t=%.40s", domain, tags.get(b"t"))
        return None
    signed = Counter(name.strip().lower() for name in tags[b"h"].split(b":"))
    present = Counter(name.lower() for name, _ in message.headers)
    # dkimpy verifies the bottom-most instance of each signed header, and a signature
    # whose h= leaves a header out; we read the top-most. A header we act on must be
    # signed as often as it appears, or a copy of a genuine signed command could get a
    # new Message-ID (a replay the duplicate check misses) or a new Subject on top.
    for name in SIGNED_AS_OFTEN_AS_PRESENT:
        if (name in MUST_BE_PRESENT and not present[name]) or signed[name] < present[name]:
            log.info("DKIM signature d=%.200s does not sign every %s header", domain, name.decode())
            return None
    if not (signed[b"to"] or signed[b"cc"]) or not _names(message, program_address):
        log.info("DKIM signature d=%.200s: its To and Cc do not name this program", domain)
        return None
    # Many signers leave the content headers out of h=; a second one on top would change
    # how the signed body is read, and no client writes two.
    for name in ONE_AT_MOST:
        if present[name] > 1:
            log.info("DKIM: %d %s headers", present[name], name.decode())
            return None
    if b"l" in tags:
        # dkimpy verifies only the first l= bytes of the canonical body and accepts
        # whatever follows, e.g. commands appended below a genuine signed message.
        policy = dkim.canonicalization.CanonicalizationPolicy.from_c_value(
            tags.get(b"c", b"simple/simple")
        )
        length = len(policy.canonicalize_body(message.body))
        if int(tags[b"l"]) < length:
            log.info(
                "DKIM signature d=%.200s signs only %s of %d body bytes",
                domain,
                int(tags[b"l"]),
                length,
            )
            return None
    return domain


def _recent(timestamp: bytes | None, now: datetime) -> bool:
    """No t= (it is optional), or a t= within SIGNATURE_AGE before `now`."""
    if timestamp is None:
        return True
    if not timestamp.strip().isdigit() or len(timestamp.strip()) > 12:
        return False
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    made = datetime.fromtimestamp(int(timestamp), tz=UTC)
    return now - SIGNATURE_AGE <= made <= now + CLOCK_SKEW


def _names(message: dkim.DKIM, program_address: str) -> bool:
    """A To or Cc of the message names `program_address` or its local+TOKEN form."""
    local, _, domain = program_address.lower().rpartition("@")
    for name, value in message.headers:
        if name.lower() not in (b"to", b"cc"):
            continue
        text = value.decode("utf-8", "replace")[:RECIPIENT_CHARACTERS].lower()
        # A quoted display name is words, not an address, whatever it looks like.
        for word in _BETWEEN_ADDRESSES.split(_QUOTED.sub(" ", text)):
            written_local, at, written_domain = word.rpartition("@")
            if not at or written_domain != domain:
                continue
            if written_local == local or written_local.startswith(local + "+"):
                return True
    return False


def _aligned(signing_domain: str, from_domain: str) -> bool:
    """DMARC relaxed alignment: the From domain is d= or under it. A d= with a single label
    (a TLD) never aligns: it would vouch for every domain beneath it."""
    from_domain = from_domain.lower().rstrip(".")
    labels = signing_domain.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    return from_domain == signing_domain or from_domain.endswith("." + signing_domain)


def sign(raw: bytes, selector: str, domain: str, private_key_pem: bytes) -> bytes:
    """`raw` with a DKIM-Signature header prepended (rsa-sha256, relaxed/relaxed).

    `private_key_pem` must be PKCS#1 ("BEGIN RSA PRIVATE KEY"): dkimpy reads no other form.
    """
    linesep = b"\r\n" if b"\r\n" in raw else b"\n"
    # dkimpy finds the PEM body with a regex that expects bare LF line ends.
    private_key_pem = private_key_pem.replace(b"\r\n", b"\n")
    signer = dkim.DKIM(raw, linesep=linesep)
    present = [name.lower() for name, _ in signer.headers]
    headers = [
        name
        for name in (header.lower().encode("ascii") for header in SIGNED_HEADERS)
        for _ in range(present.count(name) + 1)
    ]
    header = signer.sign(
        selector.encode("ascii"),
        domain.encode("ascii"),
        private_key_pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=headers,
    )
    return header + raw


def check_key(private_key_pem: bytes, source: object) -> None:
    """ValueError naming `source` unless the key can sign (checked once, at start)."""
    try:
        sign(
            b"From: a@example.org\r\nSubject: test\r\n\r\ntest\r\n",
            "s",
            "example.org",
            private_key_pem,
        )
    except Exception as error:
        raise SettingError(
            f"{source}: not an RSA private key dkimpy can sign with ({error}); it needs the"
            " PKCS#1 PEM form: openssl rsa -in KEY -traditional -out KEY.pem"
        ) from None
