"""A one-page PDF certificate of completion for one partnership term, made with fpdf2.

Participants come from 120 countries, so the text is set in DejaVu Sans when the system has
it (Latin, Greek, Cyrillic, Armenian, Georgian, …) with a CJK font as fpdf2's fallback for
Chinese, Japanese and Korean names when one is installed. Without DejaVu it is Helvetica,
one of the PDF core fonts, which draws Latin-1 only: the text is then reduced to what
Latin-1 can say ("Dvořák" becomes "Dvorák"). In both cases a character that no font can
draw is left out rather than shown as an empty box, and a name with nothing left becomes
"Participant". Arabic and Hebrew names are drawn but not shaped: that needs uharfbuzz,
which is not a dependency, so their letters stand unjoined and left to right.

The words are templates/certificate-pdf.txt's, rendered by the `words` function the caller
passes; this module lays them out. It must never raise on any name, never write a file, and
never put the time of making into the PDF: the same inputs give the same bytes, dated by the
end of the term.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time
from pathlib import Path

from fpdf import FPDF

log = logging.getLogger(__name__)

# Debian and Ubuntu (fonts-dejavu-core), Fedora, Arch.
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/TTF"),
)
SANS = "DejaVuSans.ttf"
SANS_BOLD = "DejaVuSans-Bold.ttf"
# (file, face in the collection). TrueType outlines first: Noto's are CFF, which fpdf2 embeds
# under a two-byte CMap that pypdf reads as one-byte codes ("\x00陈\x00静" when extracting
# text). Droid Sans Fallback has no Hangul, so it is last.
CJK_FONTS = (
    (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0),  # fonts-wqy-microhei
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),  # fonts-noto-cjk, SC
    (Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"), 0),  # fonts-droid-fallback
)

PLACEHOLDER = "Participant"  # for a name of which no character can be drawn
MAX_NAME = 120  # characters; the form allows 100, and the widest 120 still fit in four lines
# Zero-width (non-)joiners are format characters that spell Persian and Indic names.
JOINERS = frozenset("\u200c\u200d")
# Their compatibility decomposition is a row of jamo that only a shaping engine joins again.
HANGUL_SYLLABLES = ("\uac00", "\ud7a3")
# The certificate's template, rendered with its context to its lines: the heading, the line
# above the name, the sentence below it and the document's title (Renderer.lines).
Words = Callable[[dict], list[str]]

# A4 landscape, in millimetres and points.
PAGE_WIDTH, PAGE_HEIGHT = 297, 210
MARGIN = 32  # left and right of the text, inside the border
TOP = 42
FOOTER = 160  # where the program's name stands, below even a four-line name
INK = (40, 40, 40)
NAME_PT = 32
NAME_MIN_PT = 16
TEXT_PT = 14
LINE = 1.3 * 25.4 / 72  # line height in mm per point of font size


def certificate_pdf(
    *,
    name: str,
    program: str,
    round_name: str,
    partner_countries: list[str],
    term_start: str,
    term_end: str,
    words: Words,
) -> bytes:
    """The certificate that NAME completed a term of PROGRAM's partnership, as PDF bytes.

    term_start and term_end are ISO dates ("2026-03-02"); the template words the dates.
    """
    start, end = date.fromisoformat(term_start), date.fromisoformat(term_end)
    # Helvetica is built in and takes 3 ms; loading TrueType fonts takes 100. A round's end
    # makes a certificate for everyone, so the fonts are loaded only when text needs them.
    texts = (name, program, round_name, *partner_countries)
    latin = all(_latin1(char) for text in texts for char in text)
    pdf, family, drawable = _document(unicode_fonts=not latin)

    def printable(text: str) -> str:
        return _printable(text, drawable)

    drawn = printable(name)
    shown_name = drawn[:MAX_NAME].strip() or PLACEHOLDER
    if drawn != _one_line(name):
        log.warning(
            "no installed font draws all of the name %r: shown as %r", name[:MAX_NAME], shown_name
        )
    countries = [country for country in map(printable, partner_countries) if country]
    heading, opening, sentence, title = words(
        {
            "program": printable(program),
            "round": printable(round_name),
            "partners": len(countries),
            "countries": list(dict.fromkeys(countries)),
            "start": start,
            "end": end,
            "title_name": _one_line(name)[:MAX_NAME] or PLACEHOLDER,
        }
    )

    pdf.set_title(title)
    pdf.set_author(_one_line(program))
    pdf.set_subject(f"{_one_line(program)}, {_one_line(round_name)}")
    pdf.set_creator("mailflow")
    pdf.set_lang("en")
    pdf.set_creation_date(datetime.combine(end, time(), UTC))

    pdf.set_auto_page_break(False)  # an overlong text runs off the page, never onto a second
    pdf.set_margins(MARGIN, TOP, MARGIN)
    pdf.add_page()
    pdf.set_draw_color(*INK)
    pdf.set_text_color(*INK)
    pdf.set_line_width(0.8)
    pdf.rect(12, 12, PAGE_WIDTH - 24, PAGE_HEIGHT - 24)
    pdf.set_line_width(0.25)
    pdf.rect(15, 15, PAGE_WIDTH - 30, PAGE_HEIGHT - 30)

    pdf.set_y(TOP)
    pdf.set_font(family, "B", 22)
    pdf.set_char_spacing(2)
    _centred(pdf, heading, 22)
    pdf.set_char_spacing(0)

    pdf.ln(14)
    pdf.set_font(family, "", TEXT_PT)
    _centred(pdf, opening, TEXT_PT)

    pdf.ln(5)
    size = NAME_PT
    pdf.set_font(family, "B", size)
    width = PAGE_WIDTH - 2 * MARGIN
    while size > NAME_MIN_PT and pdf.get_string_width(shown_name) > width:
        size -= 2
        pdf.set_font_size(size)
    _centred(pdf, shown_name, size)  # wraps when even the smallest size is too wide
    pdf.ln(2)
    pdf.line(PAGE_WIDTH / 2 - 70, pdf.get_y(), PAGE_WIDTH / 2 + 70, pdf.get_y())

    pdf.ln(7)
    pdf.set_font(family, "", TEXT_PT)
    _centred(pdf, sentence, TEXT_PT)

    pdf.set_y(FOOTER)
    pdf.set_font(family, "B", 12)
    _centred(pdf, printable(program), 12)
    return bytes(pdf.output())


def _centred(pdf: FPDF, text: str, points: float) -> None:
    pdf.multi_cell(0, points * LINE, text, align="C", new_x="LMARGIN", new_y="NEXT")


def _document(*, unicode_fonts: bool) -> tuple[FPDF, str, Callable[[str], bool]]:
    """An A4 landscape document, with the best fonts this system has when `unicode_fonts`:
    the family to set the text in, and which characters its fonts can draw."""
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    regular = _first_file(folder / SANS for folder in FONT_DIRS) if unicode_fonts else None
    if regular is None:
        return pdf, "Helvetica", _latin1
    bold = _first_file(folder / SANS_BOLD for folder in FONT_DIRS) or regular
    pdf.add_font("sans", "", regular)
    pdf.add_font("sans", "B", bold)
    families = ["sans"]
    cjk = next(((path, face) for path, face in CJK_FONTS if path.is_file()), None)
    if cjk is not None:
        pdf.add_font("cjk", "", cjk[0], collection_font_number=cjk[1])
        families.append("cjk")
    # Without exact_match=False fpdf2 never takes a regular fallback for bold text, and the
    # name is bold while CJK fonts come in regular only. "sans" itself is listed so that a
    # character missing from DejaVu Sans Bold alone is drawn from DejaVu Sans.
    pdf.set_fallback_fonts(families, exact_match=False)
    cmaps = [font.cmap for font in pdf.fonts.values()]
    return pdf, "sans", lambda char: any(ord(char) in cmap for cmap in cmaps)


def _first_file(paths: Iterable[Path]) -> Path | None:
    return next((path for path in paths if path.is_file()), None)


def _latin1(char: str) -> bool:
    return ord(char) < 0x100


def _one_line(text: str) -> str:
    """The text on one line: runs of white space made one space, and control, format,
    private-use, unassigned and lone surrogate characters dropped."""
    spaced = " ".join(unicodedata.normalize("NFC", text).split())
    kept = "".join(
        char for char in spaced if not unicodedata.category(char).startswith("C") or char in JOINERS
    )
    return " ".join(kept.split())


def _printable(text: str, drawable: Callable[[str], bool]) -> str:
    """The text on one line with only characters the fonts can draw; a character they
    cannot draw is replaced by the parts of its compatibility decomposition they can
    ("ř" -> "r" for Latin-1, "ﬁ" -> "fi"), or else left out."""
    kept = "".join(_drawable_part(char, drawable) for char in _one_line(text))
    return " ".join(kept.split())


def _drawable_part(char: str, drawable: Callable[[str], bool]) -> str:
    if drawable(char):
        return char
    first, last = HANGUL_SYLLABLES
    if first <= char <= last:
        return ""
    return "".join(filter(drawable, unicodedata.normalize("NFKD", char)))
