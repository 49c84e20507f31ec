"""Configuration: environment variables over `mailflow.toml` over defaults (CONTRACT.md).

Read once per process into a frozen value that is passed around; nothing else reads the
environment, so tests can build a Config for each daemon they start. A wrong setting is a
SettingError naming the variable, never a bare ValueError (that is a bug's).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mailflow.errors import SettingError

SOURCE_ROOT = Path(__file__).resolve().parents[1]

DEFAULTS: dict[str, str] = {
    "home": "./var",
    "address": "program@localhost",
    "listen": "127.0.0.1:8025",
    "max_size": "10485760",
    "smtp_starttls": "",
    "coordinators": "",
    "token_days": "7",
    "program_name": "Librarians Peer Network",
    "relay_attempts": "12",
    "http_listen": "127.0.0.1:8026",
    "http_timeout": "10",
    "trust_dkim": "",
    "dkim_resolver": "",
    "dkim_key": "",
    "dkim_selector": "",
    "imap_url": "",
    "imap_done": "mailflow-handled",
    "imap_poll": "60",
    "tls_cert": "",
    "tls_key": "",
    "reply_limit": "10",
    "sender_rate": "60",
    "handling_budget": "5",
}


@dataclass(frozen=True)
class Config:
    home: Path
    db: Path
    address: str
    listen: str
    max_size: int
    outbox: Path
    templates: Path
    rules: Path
    migrations: Path
    smtp_relay: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    coordinators: tuple[str, ...] = ()
    now: datetime | None = None
    token_days: int = 7
    program_name: str = "Librarians Peer Network"
    relay_attempts: int = 12
    public_url: str | None = None  # one-click unsubscribe (RFC 8058) is offered under it
    http_listen: str = "127.0.0.1:8026"  # where `serve` answers those one-click POSTs
    http_timeout: float = 10.0  # seconds a one-click connection may sit idle before it is closed
    trust_dkim: bool = False  # a coordinator's DKIM-signed message needs no confirmation
    dkim_resolver: str | None = None  # host:port of the nameserver for DKIM keys; else the system's
    dkim_key: Path | None = None  # sign outgoing mail with this private key (PEM)
    dkim_selector: str | None = None
    imap_url: str | None = None  # the hosted mailbox `poll-imap` reads
    imap_done: str = "mailflow-handled"  # its folder for handled mail; empty: mark \Seen only
    imap_poll: float = 60.0  # seconds between passes when IDLE says nothing
    tls_cert: Path | None = None  # the daemon offers STARTTLS with this certificate (PEM)
    tls_key: Path | None = None
    reply_limit: int = 10  # automatic answers to one sender an hour, then one notice
    sender_rate: int = 60  # messages a minute the daemon takes from one envelope sender
    handling_budget: float = 5.0  # seconds one message's handling may take; then set aside
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def spool(self) -> Path:
        """Where the SMTP daemon keeps each message until the handling process takes it."""
        return self.home / "spool"

    @property
    def local_part(self) -> str:
        return self.address.rsplit("@", 1)[0].lower()

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1].lower()

    @property
    def listen_protocol(self) -> str:
        """The protocol MAILFLOW_LISTEN names: smtp, or lmtp (RFC 2033)."""
        return listen_parts(self.listen)[0]

    @property
    def listen_host(self) -> str | None:
        """The address the daemon binds, or None for a unix socket."""
        return listen_parts(self.listen)[1]

    @property
    def listen_port(self) -> int | None:
        return listen_parts(self.listen)[2]

    @property
    def listen_socket(self) -> Path | None:
        """The unix socket of `lmtp:unix:/path`, else None."""
        return listen_parts(self.listen)[3]

    def token_address(self, token: str) -> str:
        return f"{self.local_part}+{token}@{self.domain}"

    def clock(self) -> datetime:
        """ "Now": frozen by MAILFLOW_NOW for simulations and tests, else the real clock."""
        return self.now or datetime.now(UTC)


def parse_time(text: str) -> datetime:
    """ISO 8601; no offset means UTC; a date alone is 00:00 UTC (CONTRACT.md)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _settings(environ: dict[str, str], cwd: Path) -> dict[str, str]:
    settings = dict(DEFAULTS)
    toml_file = cwd / "mailflow.toml"
    if toml_file.exists():
        try:
            with toml_file.open("rb") as handle:
                written = tomllib.load(handle)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise SettingError(f"{toml_file}: not valid TOML: {error}") from error
        for key, value in written.items():
            settings[key.lower()] = str(value)
    for key, value in environ.items():
        if key.startswith("MAILFLOW_"):
            settings[key.removeprefix("MAILFLOW_").lower()] = value
    return settings


def _at_least_one(settings: dict[str, str], key: str) -> int:
    text = settings[key].strip()
    if not text.isdigit() or int(text) < 1:
        name = "MAILFLOW_" + key.upper()
        raise SettingError(f"{name} must be a whole number from 1, not {settings[key]!r}")
    return int(text)


def _whole(settings: dict[str, str], key: str) -> int:
    try:
        return int(settings[key])
    except ValueError:
        name = "MAILFLOW_" + key.upper()
        raise SettingError(f"{name} must be a whole number, not {settings[key]!r}") from None


def _host_port(settings: dict[str, str], key: str) -> str:
    # Checked here, not where the daemon binds: a wrong port is a setting, told in one line.
    _, colon, port = settings[key].rpartition(":")
    if not colon or not port.strip().isdigit():
        name = "MAILFLOW_" + key.upper()
        raise SettingError(f"{name} must be host:port, not {settings[key]!r}")
    return settings[key]


# sockaddr_un's sun_path: 108 bytes on Linux, the last one the terminating NUL.
UNIX_PATH_MOST = 107


def listen_parts(text: str) -> tuple[str, str | None, int | None, Path | None]:
    """MAILFLOW_LISTEN as (protocol, host, port, unix socket): `host:port` is SMTP,
    `lmtp:host:port` and `lmtp:unix:/absolute/path` are LMTP (RFC 2033), the ways
    Postfix's `lmtp:inet:` and `lmtp:unix:` reach it. Anything else is a SettingError."""
    protocol, rest = ("lmtp", text[5:]) if text.startswith("lmtp:") else ("smtp", text)
    if protocol == "lmtp" and rest.startswith("unix:"):
        path = rest.removeprefix("unix:")
        if path.startswith("/") and len(os.fsencode(path)) <= UNIX_PATH_MOST:
            return protocol, None, None, Path(path)
    else:
        host, colon, port = rest.rpartition(":")
        if colon and host and port.isdigit() and 0 < int(port) < 65536:
            return protocol, host.strip("[]"), int(port), None
    raise SettingError(
        "MAILFLOW_LISTEN must be host:port, lmtp:host:port or lmtp:unix:/absolute/path"
        f" (at most {UNIX_PATH_MOST} bytes), not {text!r}"
    )


def _seconds(settings: dict[str, str], key: str) -> float:
    name = "MAILFLOW_" + key.upper()
    try:
        value = float(settings[key])
    except ValueError:
        raise SettingError(f"{name} must be seconds, not {settings[key]!r}") from None
    if not 0 < value < float("inf"):  # NaN is neither
        raise SettingError(f"{name} must be more than 0 seconds")
    return value


def load(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Config:
    """Build the Config; raises SettingError with a one-line reason when a setting is wrong."""
    environ = dict(os.environ if environ is None else environ)
    cwd = cwd or Path.cwd()
    s = _settings(environ, cwd)
    home = (cwd / s["home"]).resolve()
    address = s["address"].strip()
    if address.count("@") != 1 or not all(address.split("@")):
        raise SettingError(f"MAILFLOW_ADDRESS must look like local@domain, not {address!r}")
    try:
        now = parse_time(s["now"]) if s.get("now") else None
    except ValueError as error:
        raise SettingError(f"MAILFLOW_NOW is not an ISO 8601 time: {s['now']!r}") from error
    if bool(s.get("dkim_key")) != bool(s.get("dkim_selector")):
        raise SettingError("MAILFLOW_DKIM_KEY and MAILFLOW_DKIM_SELECTOR go together: set both")
    if bool(s["tls_cert"]) != bool(s["tls_key"]):
        raise SettingError("MAILFLOW_TLS_CERT and MAILFLOW_TLS_KEY go together: set both")
    try:
        imap_poll = float(s["imap_poll"])
    except ValueError:
        raise SettingError(f"MAILFLOW_IMAP_POLL must be seconds, not {s['imap_poll']!r}") from None
    if imap_poll <= 0:
        raise SettingError("MAILFLOW_IMAP_POLL must be more than 0 seconds")
    listen = s["listen"].strip()
    listen_parts(listen)  # checked here, not where the daemon binds: one line, not a traceback
    return Config(
        home=home,
        db=(cwd / s["db"]).resolve() if s.get("db") else home / "mailflow.db",
        address=address.lower(),
        listen=listen,
        max_size=_whole(s, "max_size"),
        outbox=(cwd / s["outbox"]).resolve() if s.get("outbox") else home / "outbox",
        templates=Path(s["templates"]).resolve()
        if s.get("templates")
        else SOURCE_ROOT / "templates",
        rules=Path(s["rules"]).resolve() if s.get("rules") else SOURCE_ROOT / "rules",
        migrations=SOURCE_ROOT / "migrations",
        smtp_relay=s.get("smtp_relay") or None,
        smtp_user=s.get("smtp_user") or None,
        smtp_password=s.get("smtp_password") or None,
        smtp_starttls=s["smtp_starttls"] == "1",
        coordinators=tuple(a.strip().lower() for a in s["coordinators"].split(",") if a.strip()),
        now=now,
        token_days=_whole(s, "token_days"),
        program_name=s["program_name"],
        relay_attempts=_whole(s, "relay_attempts"),
        public_url=s.get("public_url") or None,
        http_listen=_host_port(s, "http_listen"),
        http_timeout=_seconds(s, "http_timeout"),
        trust_dkim=s.get("trust_dkim", "") == "1",
        dkim_resolver=s.get("dkim_resolver") or None,
        dkim_key=(cwd / s["dkim_key"]).resolve() if s.get("dkim_key") else None,
        dkim_selector=s.get("dkim_selector") or None,
        imap_url=s["imap_url"] or None,
        imap_done=s["imap_done"].strip(),
        imap_poll=imap_poll,
        tls_cert=(cwd / s["tls_cert"]).resolve() if s["tls_cert"] else None,
        tls_key=(cwd / s["tls_key"]).resolve() if s["tls_key"] else None,
        reply_limit=_at_least_one(s, "reply_limit"),
        sender_rate=_at_least_one(s, "sender_rate"),
        handling_budget=_seconds(s, "handling_budget"),
        extra={k: v for k, v in s.items() if k not in DEFAULTS},
    )
