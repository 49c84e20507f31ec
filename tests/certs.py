"""A throwaway certificate authority for TLS tests: one self-signed certificate for
127.0.0.1 and localhost, made with the openssl command line (on every Debian machine).

Clients under test trust it through SSL_CERT_FILE, which OpenSSL's default verify paths
read, so the code under test uses `ssl.create_default_context()` exactly as in production.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    cert: Path  # PEM certificate, also the CA file a client trusts
    key: Path  # PEM private key, unencrypted


def make_certificate(folder: Path) -> Certificate:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return Certificate(cert=cert, key=key)
