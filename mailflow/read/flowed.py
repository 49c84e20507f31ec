"""format=flowed (RFC 3676): the soft line breaks of a plain-text part undone, so that a line
a client wrapped is read whole.

Thunderbird, and Apple Mail for plain text, wrap long lines (Thunderbird at 72 characters)
and end each piece but the last with a space; the reader is to join them. Read without
this, a form field, a check-in answer or a command that wraps is cut at the wrap. This
module only joins lines: it never reads what they say, never raises on any str, and takes
time linear in the text (one pass, pieces joined once).
"""

from __future__ import annotations

import email.message
import email.utils

SIGNATURE = "-- "  # RFC 3676 4.3: ends in a space, yet is never flowed


def unflow(text: str, delsp: bool = False) -> str:
    """`text` with each run of flowed lines of one quote depth joined into one line.

    A quoted line keeps its own `>` marks (and the space after them), so that a quote is
    still a quote to the reply trimmer; an unquoted line loses its stuffed space (" From",
    " >"). With DelSp=yes the space that marks a soft break was added by the client and is
    taken out (Apple Mail breaks between words with two spaces; DelSp=yes also lets a
    client break where there is no space, inside a long word or in Japanese).
    """
    lines: list[str] = []
    pieces: list[str] = []  # the paragraph being joined: its prefix, then its pieces
    depth_open = -1  # quote depth of that paragraph, -1 when none is open
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        depth = len(line) - len(line.lstrip(">"))
        stuffed = depth + (line[depth : depth + 1] == " ")
        content = line[stuffed:]
        signature = content == SIGNATURE
        # 4.5: lines of different quote depth are never joined; a signature starts afresh.
        if pieces and (depth != depth_open or signature):
            lines.append("".join(pieces))
            pieces = []
        if not pieces:
            pieces.append(line[:stuffed] if depth else "")
            depth_open = depth
        if content.endswith(" ") and not signature:
            pieces.append(content[:-1] if delsp else content)
            continue
        pieces.append(content)
        lines.append("".join(pieces))
        pieces = []
    if pieces:  # the text ended on a flowed line
        lines.append("".join(pieces))
    return "\n".join(lines)


def _param(part: email.message.Message, name: str) -> str:
    value = part.get_param(name, "")
    return str(email.utils.collapse_rfc2231_value(value)).strip().lower()


def part_text(part: email.message.Message, text: str) -> str:
    """`text`, the decoded body of `part`, unflowed when the part is text/plain and says
    format=flowed; any other part's text as it is."""
    try:
        if part.get_content_type() != "text/plain" or _param(part, "format") != "flowed":
            return text
        delsp = _param(part, "delsp") == "yes"
    except Exception:  # a Content-Type too broken to read says nothing of flowing
        return text
    return unflow(text, delsp)
