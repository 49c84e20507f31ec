"""Talking to the outgoing relay (MAILFLOW_SMTP_RELAY): one connection for a delivery pass,
STARTTLS and login when configured, and a DATA split around its final ".".

RFC 1047: once the final "." is written, the relay may have accepted the message even if
its 250 never comes back. `Connection.send` calls `handed()` just before writing it, so
the outbox can record that moment durably, and raises `Unconfirmed` (not a retryable
error) when the answer is lost. This module never touches the store itself.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable

from mailflow.config import Config

TIMEOUT = 60.0  # seconds for each step; RFC 5321 4.5.3.2 allows the relay 10 minutes for "."
# Answers that mean the relay wants a login we did not give (or refused it): a set-up
# problem that would refuse every message alike, not a verdict on this one.
AUTH_CODES = frozenset({454, 530, 534, 535, 538})
# "554 5.7.1 Relay access denied" (Postfix) and its kin at RCPT: the relay does not know
# us, so it would refuse every recipient alike.
NOT_OURS = re.compile(rb"relay(ing)? (access )?(denied|not permitted)|not permitted to relay", re.I)
LINE_END = re.compile(rb"\r\n|\r|\n")
LEADING_DOT = re.compile(rb"(?m)^\.")


class Unavailable(Exception):
    """The relay can't be reached, or refuses our greeting, TLS or login: nothing was sent."""


class Unconfirmed(Exception):
    """The message was handed over in full, but the relay's answer was lost."""


def permanent(error: Exception) -> bool:
    """A 5xx verdict on this message (sender, recipient or content): trying again won't help."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return True
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def _wire(raw: bytes) -> bytes:
    """CRLF line ends and dot-stuffing (RFC 5321 4.5.2), ending in CRLF, without the "."."""
    body = LEADING_DOT.sub(b"..", LINE_END.sub(b"\r\n", raw))
    return body if body.endswith(b"\r\n") else body + b"\r\n"


class Connection:
    """Opened at the first message, reused for the rest of the pass, reopened after one that
    broke it. Use as a context manager: the connection is closed with QUIT at the end."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.smtp.quit()
            with contextlib.suppress(OSError):
                self.smtp.close()
            self.smtp = None

    def _open(self) -> smtplib.SMTP:
        config = self.config
        host, _, port = (config.smtp_relay or "").rpartition(":")
        target = f"{host or config.smtp_relay}:{port or 25}"
        try:
            smtp = smtplib.SMTP(host or config.smtp_relay, int(port or 25), timeout=TIMEOUT)
        except (OSError, smtplib.SMTPException) as error:
            raise Unavailable(f"cannot connect to {target}: {error}") from error
        try:
            smtp.ehlo(config.domain)
            if config.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo(config.domain)
            if config.smtp_user:
                smtp.login(config.smtp_user, config.smtp_password or "")
        except smtplib.SMTPAuthenticationError as error:
            smtp.close()
            refused = f"{target} refused the login of {config.smtp_user}: {error}"
            raise Unavailable(refused) from error
        except (OSError, smtplib.SMTPException, ssl.SSLError) as error:
            smtp.close()
            raise Unavailable(f"{target}: {error}") from error
        return smtp

    def send(self, sender: str, recipient: str, raw: bytes, handed: Callable[[], None]) -> None:
        """Send one message; SMTPException or OSError when it was not taken (retry or give
        up), Unavailable when no message could be, Unconfirmed when it may have been."""
        if self.smtp is None:
            self.smtp = self._open()
        smtp = self.smtp
        try:
            self._envelope(smtp, sender, recipient, raw)
            code, answer = smtp.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, answer)
            smtp.send(_wire(raw))
        except smtplib.SMTPResponseException as error:
            if error.smtp_code in AUTH_CODES:
                self.close()
                raise Unavailable(f"the relay wants a login: {error}") from error
            self._reset()
            raise
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPNotSupportedError):
            self._reset()
            raise
        except (OSError, smtplib.SMTPException):
            self.close()  # the connection broke before the end: nothing was taken
            raise
        handed()
        try:
            smtp.send(b".\r\n")
            code, answer = smtp.getreply()
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise Unconfirmed(str(error) or type(error).__name__) from error
        if code != 250:
            self._reset()
            raise smtplib.SMTPDataError(code, answer)

    def _envelope(self, smtp: smtplib.SMTP, sender: str, recipient: str, raw: bytes) -> None:
        options = []
        if not (sender + recipient).isascii():
            if not smtp.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError(
                    "the relay does not take internationalised addresses (SMTPUTF8)"
                )
            options.append("SMTPUTF8")
        if not raw.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        code, answer = smtp.mail(sender, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, answer, sender)
        code, answer = smtp.rcpt(recipient)
        if code >= 500 and NOT_OURS.search(answer):
            raise Unavailable(
                f"the relay does not relay for us: {code} {answer.decode(errors='replace')}"
            )
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, answer)})

    def _reset(self) -> None:
        """After a refusal the connection goes on; if even RSET fails, it is closed."""
        if self.smtp is None:
            return
        try:
            self.smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.close()
