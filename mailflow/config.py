"""Configuration: environment variables over the settings file over defaults.

Every setting is one row of SETTINGS: its name, its default, what it means and how it is
read. `docs/settings.md`, `mailflow config` and `--help` are all made from that table, so
a setting cannot exist in the code without being documented, nor the other way round.

Read once per process into a frozen value that is passed around; nothing else reads the
environment, so tests can build a Config for each daemon they start. A wrong setting is a
SettingError naming it, never a bare ValueError (that is a bug's). A setting nobody knows
(a typo such as `smtp_rely` or MAILFLOW_SMTP_STARTLS) stops the start: silently ignoring
it is how a volunteer ends up with TLS off and no idea why.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mailflow.errors import SettingError

SOURCE_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILE = "mailflow.toml"  # read from the working directory unless -C or MAILFLOW_CONFIG
CONFIG_VARIABLE = "MAILFLOW_CONFIG"  # names the settings file; not a setting itself
PREFIX = "MAILFLOW_"
MASK = "********"

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class Setting:
    """One setting: `name` in the settings file, MAILFLOW_NAME in the environment."""

    name: str
    default: str  # as an operator would write it; "" is unset
    meaning: str  # one line, for docs/settings.md, `mailflow config` and --help
    kind: str = "text"  # how it is read: see _READERS
    secret: bool = False  # masked wherever settings are shown

    @property
    def variable(self) -> str:
        return PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("home", "./var", "folder for the database, the spool and the outbox", "path"),
    Setting("db", "", "the SQLite file; unset: mailflow.db in the home", "path"),
    Setting(
        "address",
        "program@localhost",
        "the program's address; replies come to local+TOKEN@domain",
        "address",
    ),
    Setting(
        "listen",
        "127.0.0.1:8025",
        "where the daemon takes mail: host:port (SMTP), lmtp:host:port or lmtp:unix:PATH",
        "listen",
    ),
    Setting("max_size", "10485760", "largest message accepted, in bytes", "whole"),
    Setting(
        "outbox", "", "Maildir for outgoing mail when no relay is set; unset: in the home", "path"
    ),
    Setting("smtp_relay", "", "host:port of the relay for outgoing mail; unset: the Maildir"),
    Setting("smtp_user", "", "the relay's login name"),
    Setting("smtp_password", "", "the relay's password", secret=True),
    Setting("smtp_starttls", "false", "STARTTLS to the relay before logging in", "bool"),
    Setting(
        "smtp_tls",
        "",
        "TLS to the relay: starttls, implicit (RFC 8314) or none; unset: implicit on port 465,"
        " else as smtp_starttls says",
        "choice:starttls,implicit,none",
    ),
    Setting(
        "smtp_oauth_command",
        "",
        "a command that prints an OAuth 2 access token: the relay login is XOAUTH2",
    ),
    Setting(
        "coordinators",
        "",
        "program-wide coordinators' addresses, comma-separated; added at every start",
        "addresses",
    ),
    Setting("token_days", "7", "days a token in a reply address stays valid", "whole"),
    Setting(
        "program_name", "Librarians Peer Network", "the program's name, in From and signatures"
    ),
    Setting("relay_attempts", "12", "tries at the relay before a message is given up", "whole"),
    Setting(
        "public_url",
        "",
        "base HTTPS address of the one-click unsubscribe endpoint (RFC 8058); unset: none",
    ),
    Setting(
        "http_listen",
        "127.0.0.1:8026",
        "host:port where `serve` answers one-click unsubscribe requests",
        "host-port",
    ),
    Setting(
        "http_timeout",
        "10",
        "seconds a one-click connection may sit idle before it is closed",
        "seconds",
    ),
    Setting(
        "trust_dkim",
        "false",
        "a coordinator's message with an aligned, passing DKIM signature needs no confirmation",
        "bool",
    ),
    Setting("dkim_resolver", "", "host:port of the nameserver for DKIM keys; unset: the system's"),
    Setting("dkim_key", "", "sign outgoing mail with this private key (PEM file)", "path"),
    Setting("dkim_selector", "", "the DKIM selector that key is published under"),
    Setting(
        "imap_url",
        "",
        "imap[s]://user:password@host:port/INBOX of a hosted mailbox to read",
        "url",
        secret=True,
    ),
    Setting(
        "imap_oauth_command",
        "",
        "a command that prints an OAuth 2 access token: the IMAP login is XOAUTH2",
    ),
    Setting(
        "imap_done",
        "mailflow-handled",
        "the mailbox's folder for handled mail; empty: only mark it read",
    ),
    Setting("imap_poll", "60", "seconds between IMAP passes when IDLE says nothing", "seconds"),
    Setting("tls_cert", "", "the daemon offers STARTTLS with this certificate (PEM)", "path"),
    Setting("tls_key", "", "the private key of that certificate (PEM)", "path"),
    Setting(
        "reply_limit",
        "10",
        "automatic answers to one sender an hour, then one notice and silence",
        "positive",
    ),
    Setting(
        "sender_rate",
        "60",
        "messages a minute the daemon takes from one envelope sender",
        "positive",
    ),
    Setting(
        "handling_budget",
        "5",
        "seconds one message's handling may take before it is set aside",
        "seconds",
    ),
    Setting("templates", "", "a folder of customised templates; unset: the shipped ones", "path"),
    Setting("rules", "", "a folder of customised rules; unset: the shipped ones", "path"),
    Setting("now", "", "an ISO 8601 time every command takes as now (simulations, tests)", "time"),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
DEFAULTS: dict[str, str] = {setting.name: setting.default for setting in SETTINGS}


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
    smtp_tls: str = ""
    smtp_oauth_command: str | None = None
    imap_oauth_command: str | None = None
    coordinators: tuple[str, ...] = ()
    now: datetime | None = None
    token_days: int = 7
    program_name: str = "Librarians Peer Network"
    relay_attempts: int = 12
    public_url: str | None = None
    http_listen: str = "127.0.0.1:8026"
    http_timeout: float = 10.0
    trust_dkim: bool = False
    dkim_resolver: str | None = None
    dkim_key: Path | None = None
    dkim_selector: str | None = None
    imap_url: str | None = None
    imap_done: str = "mailflow-handled"
    imap_poll: float = 60.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    reply_limit: int = 10
    sender_rate: int = 60
    handling_budget: float = 5.0
    # Where each setting came from: "environment", the settings file's path, or "default".
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    file: Path | None = None  # the settings file read, if any

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
    """ISO 8601; no offset means UTC; a date alone is 00:00 UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- where each value comes from ----------------------------------------------------------


@dataclass(frozen=True)
class _Given:
    """A setting's value as written, where it was written, and the folder its paths are
    relative to (the settings file's, or the working directory)."""

    value: object
    source: str
    base: Path
    where: str  # how to name it in an error: MAILFLOW_X, or the file and key


def _nearest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else " (docs/settings.md lists them all)"


def settings_file(environ: Mapping[str, str], cwd: Path, named: str | None = None) -> Path | None:
    """The settings file: `-C FILE`, else MAILFLOW_CONFIG, else mailflow.toml in the working
    directory if there is one. A file named but missing is an error, not a silent default."""
    chosen = named or environ.get(CONFIG_VARIABLE, "").strip()
    if chosen:
        path = (cwd / chosen).resolve()
        if not path.is_file():
            how = "-C" if named else CONFIG_VARIABLE
            raise SettingError(f"{how}: no settings file at {path}")
        return path
    default = cwd / SETTINGS_FILE
    return default.resolve() if default.is_file() else None


def _from_file(path: Path) -> dict[str, _Given]:
    try:
        with path.open("rb") as handle:
            written = tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingError(f"{path}: not valid TOML: {error}") from error
    except OSError as error:
        raise SettingError(f"{path}: cannot be read: {error.strerror}") from error
    given = {}
    for key, value in written.items():
        name = key.lower().removeprefix(PREFIX.lower())
        if name not in BY_NAME:
            raise SettingError(f"{path}: unknown setting {key!r}{_nearest(name, list(BY_NAME))}")
        given[name] = _Given(value, str(path), path.parent, f"{path}: {key}")
    return given


def _from_environment(environ: Mapping[str, str], cwd: Path) -> dict[str, _Given]:
    known = [setting.variable for setting in SETTINGS]
    given = {}
    for variable, value in environ.items():
        if not variable.startswith(PREFIX) or variable == CONFIG_VARIABLE:
            continue
        name = variable.removeprefix(PREFIX).lower()
        if name not in BY_NAME:
            raise SettingError(
                f"unknown setting {variable}{_nearest(variable, [*known, CONFIG_VARIABLE])}"
            )
        given[name] = _Given(value, "environment", cwd, variable)
    return given


# --- reading each kind ---------------------------------------------------------------------


def _text(setting: Setting, given: _Given) -> str:
    if isinstance(given.value, bool) or not isinstance(given.value, str | int | float):
        raise SettingError(f"{given.where} must be text, not {given.value!r}")
    return str(given.value).strip()


def _bool(setting: Setting, given: _Given) -> bool:
    if isinstance(given.value, bool):
        return given.value
    text = str(given.value).strip().lower() if isinstance(given.value, str | int) else None
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise SettingError(
        f"{given.where} must be true or false (1/0, yes/no, on/off), not {given.value!r}"
    )


def _whole(setting: Setting, given: _Given, least: int | None = None) -> int:
    value = given.value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not whole or (least is not None and value < least):
        kind = "a whole number" if least is None else f"a whole number from {least}"
        raise SettingError(f"{given.where} must be {kind}, not {given.value!r}")
    return value


def _seconds(setting: Setting, given: _Given) -> float:
    try:
        if isinstance(given.value, bool):
            raise ValueError
        value = float(given.value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingError(f"{given.where} must be seconds, not {given.value!r}") from None
    if not 0 < value < float("inf"):  # NaN is neither
        raise SettingError(f"{given.where} must be more than 0 seconds")
    return value


def _host_port(setting: Setting, given: _Given) -> str:
    # Checked here, not where the daemon binds: a wrong port is a setting, told in one line.
    text = _text(setting, given)
    _, colon, port = text.rpartition(":")
    if not colon or not port.strip().isdigit():
        raise SettingError(f"{given.where} must be host:port, not {given.value!r}")
    return text


# sockaddr_un's sun_path: 108 bytes on Linux, the last one the terminating NUL.
UNIX_PATH_MOST = 107


def listen_parts(
    text: str, where: str = "MAILFLOW_LISTEN"
) -> tuple[str, str | None, int | None, Path | None]:
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
        f"{where} must be host:port, lmtp:host:port or lmtp:unix:/absolute/path"
        f" (at most {UNIX_PATH_MOST} bytes), not {text!r}"
    )


def _listen(setting: Setting, given: _Given) -> str:
    # Checked here, not where the daemon binds: one line, not a traceback.
    text = _text(setting, given)
    listen_parts(text, given.where)
    return text


def _choice(setting: Setting, given: _Given) -> str:
    choices = setting.kind.removeprefix("choice:").split(",")
    text = _text(setting, given).lower()
    if text and text not in choices:
        raise SettingError(
            f"{given.where} must be {', '.join(choices[:-1])} or {choices[-1]}, not {text!r}"
        )
    return text


def _path(setting: Setting, given: _Given) -> Path | None:
    text = _text(setting, given)
    return (given.base / text).resolve() if text else None


def _address(setting: Setting, given: _Given) -> str:
    text = _text(setting, given)
    if text.count("@") != 1 or not all(text.split("@")):
        raise SettingError(f"{given.where} must look like local@domain, not {text!r}")
    return text.lower()


def _addresses(setting: Setting, given: _Given) -> tuple[str, ...]:
    value = given.value
    parts = value if isinstance(value, list) else _text(setting, given).split(",")
    return tuple(str(a).strip().lower() for a in parts if str(a).strip())


def _time(setting: Setting, given: _Given) -> datetime | None:
    text = _text(setting, given)
    try:
        return parse_time(text) if text else None
    except ValueError:
        raise SettingError(f"{given.where} is not an ISO 8601 time: {text!r}") from None


_READERS = {
    "text": _text,
    "bool": _bool,
    "whole": _whole,
    "positive": lambda setting, given: _whole(setting, given, least=1),
    "seconds": _seconds,
    "host-port": _host_port,
    "listen": _listen,
    "path": _path,
    "address": _address,
    "addresses": _addresses,
    "time": _time,
    "url": _text,
    "choice": _choice,
}


def _values(given: Mapping[str, _Given], cwd: Path) -> dict[str, object]:
    values = {}
    for setting in SETTINGS:
        chosen = given.get(setting.name) or _Given(
            setting.default, "default", cwd, setting.variable
        )
        kind = setting.kind.partition(":")[0]
        values[setting.name] = _READERS[kind](setting, chosen)
    return values


def load(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None, file: str | None = None
) -> Config:
    """Build the Config; raises SettingError with a one-line reason when a setting is wrong.
    `file` is `-C FILE`; else MAILFLOW_CONFIG; else ./mailflow.toml if it exists."""
    environ = dict(os.environ if environ is None else environ)
    cwd = cwd or Path.cwd()
    path = settings_file(environ, cwd, file)
    given = _from_file(path) if path else {}
    given.update(_from_environment(environ, cwd))
    v = _values(given, cwd)
    if bool(v["dkim_key"]) != bool(v["dkim_selector"]):
        raise SettingError("MAILFLOW_DKIM_KEY and MAILFLOW_DKIM_SELECTOR go together: set both")
    if bool(v["tls_cert"]) != bool(v["tls_key"]):
        raise SettingError("MAILFLOW_TLS_CERT and MAILFLOW_TLS_KEY go together: set both")
    if v["smtp_tls"] in ("none", "implicit") and v["smtp_starttls"]:
        raise SettingError(f"MAILFLOW_SMTP_STARTTLS is on but MAILFLOW_SMTP_TLS is {v['smtp_tls']}")
    if v["smtp_oauth_command"] and (v["smtp_password"] or not v["smtp_user"]):
        raise SettingError(
            "MAILFLOW_SMTP_OAUTH_COMMAND needs MAILFLOW_SMTP_USER (whose token it prints)"
            " and no MAILFLOW_SMTP_PASSWORD"
        )
    home = v["home"]
    assert isinstance(home, Path)
    # An empty text where the Config's own default is None (no relay, no public URL) is None.
    unset = {f.name for f in fields(Config) if f.default is None}
    v = {name: None if value == "" and name in unset else value for name, value in v.items()}
    # What an unset path stands for is worked out here, from the home and the source.
    v["db"] = v["db"] or home / "mailflow.db"
    v["outbox"] = v["outbox"] or home / "outbox"
    v["templates"] = v["templates"] or SOURCE_ROOT / "templates"
    v["rules"] = v["rules"] or SOURCE_ROOT / "rules"
    return Config(
        **v,
        migrations=SOURCE_ROOT / "migrations",
        sources={name: given[name].source if name in given else "default" for name in BY_NAME},
        file=path,
    )


# --- showing them ------------------------------------------------------------------------


def _masked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def _shown(setting: Setting, value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, tuple):
        text = ",".join(value)
    else:
        text = str(value)
    if setting.secret and text:
        text = _masked_url(text) if setting.kind == "url" else MASK
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def in_force(config: Config) -> list[str]:
    """`mailflow config`: every setting as a line of TOML, with where it came from;
    passwords masked. What is printed could be a settings file itself."""
    lines = [f"# settings file: {config.file or 'none'}"]
    rows = [(f"{s.name} = {_shown(s, getattr(config, s.name))}", s) for s in SETTINGS]
    width = max(len(text) for text, _ in rows)
    for text, setting in rows:
        source = config.sources.get(setting.name, "default")
        where = setting.variable if source == "environment" else source
        lines.append(
            f"{text:<{width}}  # {'environment: ' + where if source == 'environment' else where}"
        )
    return lines


def reference() -> str:
    """docs/settings.md, made from SETTINGS (`mailflow config --reference`); a test checks
    that the file in the repository is what this returns."""
    lines = [
        "# Settings",
        "",
        "<!-- Made by `mailflow config --reference > docs/settings.md` from the table in",
        "mailflow/config.py; a test fails when the two differ. Edit the table, not this. -->",
        "",
        "Each setting is a key in the settings file or a `MAILFLOW_` variable in the",
        "environment; the environment wins over the file, and the file over the default.",
        f"The settings file is `-C FILE`, else `{CONFIG_VARIABLE}`, else `{SETTINGS_FILE}` in the",
        "working directory if there is one. Relative paths in the file are relative to the",
        "file's folder; in the environment, to the working directory.",
        "",
        "The file is TOML: `smtp_starttls = true`, `max_size = 10485760`. In the environment,",
        "true is `1`, `true`, `yes` or `on` and false is `0`, `false`, `no`, `off` or empty.",
        "A key or a `MAILFLOW_` variable that is not below stops every command with its name",
        "and the nearest known setting. `mailflow config` prints the settings in force and",
        "where each came from, passwords masked.",
        "",
        "| file key | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "unset"
        lines.append(f"| `{setting.name}` | `{setting.variable}` | {default} | {setting.meaning} |")
    return "\n".join(lines) + "\n"
