"""The access token for an OAuth 2 login (XOAUTH2), printed by the operator's own command.

No identity provider's library is tied in: as with mutt's `imap_oauth_refresh_command`,
a setting names a command that prints a fresh access token on its first line (a helper
such as mutt's `mutt_oauth2.py` keeps the refresh token and renews the access token).
The command line is split like a shell's (shlex) but run without a shell, so a `|` or a
`$VAR` in it means nothing unless the operator writes `sh -c '...'` themselves. It runs
with no input and a time limit; on the limit its whole process group is killed.

The token is a secret: this module never logs it and never puts it in an exception's
text. A failure says what the command did (its status, the last line of its stderr).
It imports nothing from mailflow: the relay and the IMAP poller, on different layers,
both use it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess

TIMEOUT = 30.0  # seconds the command may take; a refresh is one HTTPS round trip
STDERR_MOST = 300  # characters of the command's stderr quoted in a failure


class TokenError(Exception):
    """The command could not run, failed, timed out or printed no token: a temporary
    failure, tried again like a refused login. The text never holds the token."""


def access_token(command: str, setting: str, timeout: float = TIMEOUT) -> str:
    """Run `command` (the value of the setting named `setting`) and return the first line
    of what it printed, stripped."""
    try:
        argv = shlex.split(command)
    except ValueError as error:  # an unclosed quote
        raise TokenError(f"{setting} is not a command line: {error}") from None
    if not argv:
        raise TokenError(f"{setting} is empty")
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: a timeout ends its children too
        )
    except OSError as error:
        raise TokenError(f"{setting}: cannot run {argv[0]}: {error.strerror}") from None
    with process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise TokenError(
                f"{setting}: {argv[0]} printed no token within {timeout:g} s"
            ) from None
    said = _last_line(err)
    if process.returncode != 0:
        raise TokenError(f"{setting}: {argv[0]} exited with status {process.returncode}{said}")
    lines = out.decode("utf-8", "replace").splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise TokenError(f"{setting}: {argv[0]} printed no token{said}")
    # A token is printable ASCII (RFC 6750's b64token): anything else would break the
    # SASL string, and is more likely an error message than a token.
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise TokenError(f"{setting}: {argv[0]} printed something that is not a token{said}")
    return token


def _last_line(err: bytes) -> str:
    lines = [line.strip() for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    return f": {lines[-1][:STDERR_MOST]}" if lines else ""
