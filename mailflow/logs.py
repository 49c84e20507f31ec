"""The journal: one format for every process of mailflow, on standard error."""

from __future__ import annotations

import logging
import sys


def configure() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # mail-parser logs every MIME part it does not render; that is routine, not news.
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    # aiosmtpd logs every SMTP verb; the pipeline's one line per message is what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
