"""The operator's mistakes, as exceptions of their own, so that a bug is never taken for one.

`cli.main` turns a `MailflowError` into one line on stderr and exit status 2; anything else
(a ValueError or KeyError from code) is a bug and keeps its traceback. People's mistakes
in mail are not here: they are values (problems, refusals, outcomes), never exceptions.
This module imports nothing of mailflow, so every layer may raise these.
"""

from __future__ import annotations


class MailflowError(Exception):
    """Something the operator must put right (a setting, a rules file, a command's
    argument, a damaged store), told in one line that says what and where."""


class SettingError(MailflowError, ValueError):
    """A setting is wrong: the environment, `mailflow.toml`, a file a setting names (TLS,
    DKIM, templates), or an argument on the command line."""


class RulesError(MailflowError, ValueError):
    """A file of `rules/` is missing or written wrongly; the message names the file, the
    section and the key, the way a coordinator would fix it."""
