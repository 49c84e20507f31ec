"""Rendering outgoing wording from `templates/`.

A template is a text file: header lines (`Subject: ...`), a blank line, then the body, all
jinja2. Wording lives only in templates; code passes data. Rendering is strict: a
template that names a value the code did not pass fails loudly in tests, not in a mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from mailflow.errors import SettingError

# The templates the code sends today; checked at start so a missing file is found at once.
REQUIRED = (
    "help",
    "application-form",
    "application-confirm",
    "application-problems",
    "application-received",
    "application-cancelled",
    "application-waitlisted",
    "status",
    "token-expired",
    "not-understood",
    "rate-limited",
    "command-confirm",
    "command-result",
    "command-refused",
    "match-intro",
    "match-waitlisted",
    "rematch-intro",
    "partner-left",
    "checkin",
    "checkin-reminder",
    "checkin-thanks",
    "checkin-unclear",
    "partner-nudge",
    "partner-silent-alert",
    "participant-unreachable",
    "topic",
    "optout-confirmed",
    "paused",
    "resumed",
    "updated",
    "signup-again",
    "delete-confirm",
    "delete-cancelled",
    "data-deleted",
    "term-ended",
    "survey",
    "survey-thanks",
    "certificate",
    "round-open",
    "partnership-ended",
    "broadcast",
    "network-listed",
    "network-unlisted",
    "network-not-listed",
    "peers-found",
    "peers-none",
    # The lines a coordinator's command answers, a file per command family.
    "results/ask",
    "results/read",
    "results/partnerships",
    "results/rounds",
    "results/broadcast",
    "results/import",
    "results/coordinators",
    "results/stats",
    "results/match",
    "results/proof",
    "certificate-pdf",  # not a mail: the words of the PDF certificate, one a line
    "unsubscribe.html",  # not a mail: the one-click unsubscribe endpoint's pages
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class Renderer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def check(self) -> None:
        missing = [
            name
            for name in REQUIRED
            if not (self.folder / (name if name.endswith(".html") else f"{name}.txt")).exists()
        ]
        if missing:
            raise SettingError(f"templates missing in {self.folder}: {', '.join(missing)}")

    def sentence(self, partial: str, macro: str, *arguments: object) -> str:
        """One macro of a partial (`_problems.txt`'s `sentence`), for wording that is shown
        inside another text rather than mailed on its own: a roster import's report."""
        return str(getattr(self.env.get_template(f"{partial}.txt").module, macro)(*arguments))

    def result(self, family: str, outcome: str, **data: object) -> str:
        """A coordinator's answer line for `outcome`: `results/<family>.txt` rendered with
        `data`, less the newline that ends the file. Code passes data; the English, and how
        the data is written into it, is the template's."""
        template = self.env.get_template(f"results/{family}.txt")
        said = template.render(outcome=outcome, **data).removesuffix("\n")
        if not said:
            raise ValueError(f"templates/results/{family}.txt says nothing for {outcome!r}")
        return said

    def lines(self, name: str, context: dict) -> list[str]:
        """A template that is not a mail, as its lines without blank ones: words that code
        lays out elsewhere (the PDF certificate's)."""
        text = self.env.get_template(f"{name}.txt").render(**context)
        return [line.strip() for line in text.splitlines() if line.strip()]

    def page(self, name: str, **context: object) -> str:
        """A web page, `<name>.html`, its values escaped as HTML."""
        return self.env.get_template(f"{name}.html").render(**context).strip() + "\n"

    def render(self, name: str, context: dict) -> Rendered:
        text = self.env.get_template(f"{name}.txt").render(**context)
        head, _, body = text.partition("\n\n")
        headers = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
        subject = headers.get("Subject", "").strip()
        if not subject:
            raise SettingError(f"template {name} has no 'Subject:' line before its body")
        # "-- " keeps its space: it is the signature delimiter clients trim replies at.
        body = "\n".join(
            line if line == "-- " else line.rstrip() for line in body.strip("\n").splitlines()
        )
        return Rendered(subject=subject, body=body + "\n")
