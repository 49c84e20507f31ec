"""Talking to the outgoing relay (MAILFLOW_SMTP_RELAY): one connection for a delivery pass,
TLS (STARTTLS, or implicit TLS on port 465 as RFC 8314 prefers for submission) and a login
(a password, or an OAuth 2 access token over XOAUTH2) when configured, and a DATA split
around its final ".".

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

from mailflow import oauth
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
SMTPS_PORT = 465  # RFC 8314 3.3: submission over implicit TLS


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


def tls_mode(config: Config) -> str:
    """starttls, implicit or none: MAILFLOW_SMTP_TLS when set; else a relay on port 465
    speaks TLS from the first byte (RFC 8314), and elsewhere MAILFLOW_SMTP_STARTTLS says."""
    if config.smtp_tls:
        return config.smtp_tls
    if _host_port(config)[1] == SMTPS_PORT:
        return "implicit"
    return "starttls" if config.smtp_starttls else "none"


def _host_port(config: Config) -> tuple[str, int]:
    host, colon, port = (config.smtp_relay or "").rpartition(":")
    return (host, int(port)) if colon else (port, 25)


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial response (Google's and Microsoft's SASL mechanism), before base64."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def reply(code: int, answer: bytes) -> str:
    """A relay's answer as its log shows it: "250 2.0.0 Ok: queued as 4Xyz"."""
    return f"{code} {answer.decode('utf-8', 'replace')}".replace("\n", " ").strip()


def refusal(error: Exception) -> str:
    """The relay's answer inside a failed delivery, or what went wrong without one."""
    if isinstance(error, smtplib.SMTPRecipientsRefused) and error.recipients:
        return reply(*next(iter(error.recipients.values())))
    if isinstance(error, smtplib.SMTPResponseException):
        return reply(error.smtp_code, error.smtp_error)
    return str(error) or type(error).__name__


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

    @property
    def target(self) -> str:
        host, port = _host_port(self.config)
        return f"{host}:{port}"

    def _open(self) -> smtplib.SMTP:
        config, target = self.config, self.target
        host, port = _host_port(config)
        mode = tls_mode(config)
        # Before connecting: without a token there is no point in a connection.
        token = self._token() if config.smtp_oauth_command else None
        try:
            if mode == "implicit":
                # Verified as STARTTLS is: the system's CAs and the relay's host name.
                context = ssl.create_default_context()
                smtp = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=context)
            else:
                smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
        except (OSError, smtplib.SMTPException) as error:
            over = " over implicit TLS" if mode == "implicit" else ""
            raise Unavailable(f"cannot connect to {target}{over}: {error}") from error
        try:
            smtp.ehlo(config.domain)
            if mode == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo(config.domain)
            if token is not None:
                self._xoauth2(smtp, token)
            elif config.smtp_user:
                smtp.login(config.smtp_user, config.smtp_password or "")
        except smtplib.SMTPAuthenticationError as error:
            smtp.close()
            refused = f"{target} refused the login of {config.smtp_user}: {error}"
            raise Unavailable(refused) from error
        except (OSError, smtplib.SMTPException, ssl.SSLError) as error:
            smtp.close()
            raise Unavailable(f"{target}: {error}") from error
        return smtp

    def _token(self) -> str:
        try:
            return oauth.access_token(self.config.smtp_oauth_command, "MAILFLOW_SMTP_OAUTH_COMMAND")
        except oauth.TokenError as error:
            raise Unavailable(f"no access token for {self.target}: {error}") from None

    def _xoauth2(self, smtp: smtplib.SMTP, token: str) -> None:
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        if "XOAUTH2" not in offered:
            raise smtplib.SMTPNotSupportedError(
                f"the relay does not offer AUTH XOAUTH2 (it offers {' '.join(offered) or 'none'})"
            )
        initial = xoauth2(self.config.smtp_user or "", token)

        def answer(challenge: bytes | None = None) -> str:
            # A refused token comes back as a 334 with an error in JSON; an empty line
            # asks for the final 535 (Google's and Microsoft's XOAUTH2 protocol).
            return initial if challenge is None else ""

        smtp.auth("XOAUTH2", answer)

    def send(self, sender: str, recipient: str, raw: bytes, handed: Callable[[], None]) -> str:
        """Send one message and return the relay's final answer ("250 2.0.0 Ok: queued as
        ..."); SMTPException or OSError when it was not taken (retry or give up),
        Unavailable when no message could be, Unconfirmed when it may have been."""
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
        return reply(code, answer)

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
