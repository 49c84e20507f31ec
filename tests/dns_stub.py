"""A tiny authoritative DNS server for tests, and a DKIM test key made with the openssl CLI.

    with DnsStub({"sel._domainkey.example.org": "v=DKIM1; k=rsa; p=..."}) as stub:
        stub.address  # "127.0.0.1:PORT", for MAILFLOW_DKIM_RESOLVER
        stub.records["other._domainkey.example.org"] = "..."  # takes effect at once

It answers TXT queries for the names in `records` and NXDOMAIN for every other name, over
UDP and, for answers too large for the asker's UDP size, over TCP on the same port, as a
real nameserver does. It never forwards a query anywhere.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

POLL = 0.05  # how often the server threads look at the stop flag


class DnsStub:
    def __init__(self, records: dict[str, str] | None = None) -> None:
        self.records: dict[str, str] = dict(records or {})
        self.address = ""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> DnsStub:
        self._udp, self._tcp = _bind_pair()
        self.address = f"127.0.0.1:{self._udp.getsockname()[1]}"
        for serve in (self._serve_udp, self._serve_tcp):
            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._udp.close()
        self._tcp.close()

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        records = {key.rstrip(".").lower(): value for key, value in self.records.items()}
        if name not in records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            value = records[name].encode()
            # One TXT string holds at most 255 bytes; longer records are split (RFC 1035 3.3).
            strings = [value[i : i + 255] for i in range(0, len(value), 255)] or [b""]
            rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
            rrset = response.find_rrset(
                response.answer, question.name, dns.rdataclass.IN, dns.rdatatype.TXT, create=True
            )
            rrset.add(rdata, ttl=60)
        return response

    def _serve_udp(self) -> None:
        self._udp.settimeout(POLL)
        while not self._stop.is_set():
            try:
                wire, peer = self._udp.recvfrom(65535)
                query = dns.message.from_wire(wire)
            except (TimeoutError, dns.exception.DNSException):
                continue
            response = self.answer(query)
            size = max(512, query.payload) if query.edns >= 0 else 512
            try:
                data = response.to_wire(max_size=size)
            except dns.exception.TooBig:
                # What a real server does: an empty answer with TC set, so the asker retries
                # over TCP.
                response = dns.message.make_response(query)
                response.flags |= dns.flags.AA | dns.flags.TC
                data = response.to_wire()
            self._udp.sendto(data, peer)

    def _serve_tcp(self) -> None:
        self._tcp.settimeout(POLL)
        while not self._stop.is_set():
            try:
                connection, _ = self._tcp.accept()
            except TimeoutError:
                continue
            with connection:
                try:
                    # A client that connects and says nothing must not hold the thread.
                    deadline = time.time() + 1.0
                    query, _ = dns.query.receive_tcp(connection, expiration=deadline)
                    # make_response caps the wire size at the asker's EDNS UDP size;
                    # over TCP the limit is the 16-bit length prefix.
                    dns.query.send_tcp(connection, self.answer(query).to_wire(max_size=65535))
                except (OSError, EOFError, dns.exception.DNSException):
                    pass


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same free port of 127.0.0.1."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:  # the TCP port of that number is taken: try another
            udp.close()
            tcp.close()
            continue
        tcp.listen(8)
        return udp, tcp
    raise OSError("no free port for both UDP and TCP on 127.0.0.1")


def make_key(tmp_path: Path, bits: int = 2048) -> tuple[bytes, str]:
    """A fresh RSA key pair: (private key PEM for dkimpy, the p= value for the TXT record).

    dkimpy reads only PKCS#1 ("BEGIN RSA PRIVATE KEY"); OpenSSL 3 writes PKCS#8 unless
    asked for the traditional form.
    """
    private = tmp_path / f"dkim-{len(list(tmp_path.glob('dkim-*.pem')))}.pem"
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(private), str(bits)],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private.read_bytes(), base64.b64encode(public).decode("ascii")
