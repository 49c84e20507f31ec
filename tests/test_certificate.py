"""certificate_pdf: what the certificate says, read back from the PDF with pypdf, with the
system's DejaVu Sans and with the Latin-1 fallback (Helvetica) it uses when there is none.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from mailflow.schedule import certificate
from mailflow.schedule.certificate import certificate_pdf
from mailflow.send.render import Renderer

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
# The certificate's words, from the template the program renders them with.
WORDS = partial(Renderer(TEMPLATES).lines, "certificate-pdf")

TERM = {
    "program": "Open Mentors",
    "round_name": "Round 3",
    "partner_countries": ["Kenya"],
    "term_start": "2026-03-02",
    "term_end": "2026-07-01",
}
HAS_DEJAVU = any((folder / certificate.SANS).is_file() for folder in certificate.FONT_DIRS)
HOSTILE = [
    "",
    "   \t\n ",
    "x" * 10_000,
    "W" * 300,
    "Zo\x00ë\x07\u202e\r\nÑúñez\x85",
    "\ud800lone surrogate",
    "陈静",
    "Chen Jing 陈静",
    "김민준",
    "Ольга",
    "أحمد",
    "Z̴̡̛a̷̢l̸g̶o̵" * 20,
    "🙂🙂🙂",
    "\ue000 private use",
    "Søren Ødegård " * 40,
]


@pytest.fixture(params=["system fonts", "latin-1"])
def fonts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test once with the fonts this system has, once as if it had none."""
    if request.param == "latin-1":
        monkeypatch.setattr(certificate, "FONT_DIRS", ())
        monkeypatch.setattr(certificate, "CJK_FONTS", ())
    return request.param


def make(**changes: object) -> bytes:
    return certificate_pdf(**{"name": "Amina Njoroge", **TERM, "words": WORDS, **changes})


def read(pdf: bytes) -> PdfReader:
    assert pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(pdf), strict=True)
    assert len(reader.pages) == 1
    return reader


def text(pdf: bytes) -> str:
    """The words on the page, lines joined: the sentence wraps where the layout likes."""
    return " ".join(read(pdf).pages[0].extract_text().split())


def test_says_who_completed_what_with_whom_and_when(fonts: str) -> None:
    said = text(make())
    assert "CERTIFICATE OF COMPLETION" in said
    assert "This certifies that Amina Njoroge completed a term of the Open Mentors" in said
    assert "peer-mentoring partnership, Round 3, with a partner in Kenya," in said
    assert "from 2 March 2026 to 1 July 2026." in said


def test_two_partners_are_named_together(fonts: str) -> None:
    said = text(make(partner_countries=["Kenya", "Chile"]))
    assert "with partners in Kenya and Chile," in said


def test_two_partners_from_one_country_name_it_once(fonts: str) -> None:
    said = text(make(partner_countries=["Kenya", "Kenya"]))
    assert "with partners in Kenya," in said


def test_no_partner_country_leaves_the_country_out(fonts: str) -> None:
    said = text(make(partner_countries=[]))
    assert "Round 3, with a partner, from 2 March 2026" in said


@pytest.mark.parametrize("name", ["Zoë Ñúñez", "Søren Ødegård", "Chen Jing"])
def test_latin1_names_round_trip_exactly(fonts: str, name: str) -> None:
    assert f"This certifies that {name} completed" in text(make(name=name))


def test_control_characters_and_line_breaks_are_dropped_from_a_name(fonts: str) -> None:
    said = text(make(name="\x00Zo\x07ë\r\n\tÑúñez\x1b"))
    assert "This certifies that Zoë Ñúñez completed" in said


def test_cyrillic_name_round_trips_with_dejavu() -> None:
    if not HAS_DEJAVU:
        pytest.skip(f"{certificate.SANS} is missing: names are reduced to Latin-1")
    assert "This certifies that Ольга Петрова completed" in text(make(name="Ольга Петрова"))


def test_cjk_name_round_trips_with_a_cjk_font() -> None:
    if not HAS_DEJAVU or not any(path.is_file() for path, _ in certificate.CJK_FONTS):
        pytest.skip("no CJK font installed: such names are left out")
    # pypdf reads Noto CJK's two-byte codes as one-byte ones, with a NUL before each character.
    said = text(make(name="Chen Jing 陈静", partner_countries=["中国"])).replace("\x00", "")
    assert "This certifies that Chen Jing 陈静 completed" in said
    assert "with a partner in 中国," in said


def test_without_fonts_a_name_keeps_what_latin1_can_say(fonts: str) -> None:
    if fonts != "latin-1":
        pytest.skip("the Latin-1 fallback only")
    assert "that Antonín Dvorák completed" in text(make(name="Antonín Dvořák"))
    assert "that fiona Ahmed completed" in text(make(name="ﬁona 𝐀𝐡𝐦𝐞𝐝"))


def test_without_fonts_a_name_with_nothing_latin1_becomes_participant(fonts: str) -> None:
    if fonts != "latin-1":
        pytest.skip("the Latin-1 fallback only")
    said = text(make(name="Ольга"))
    assert "This certifies that Participant completed" in said
    assert "Ольга" not in said


def test_an_empty_name_becomes_participant(fonts: str) -> None:
    assert "This certifies that Participant completed" in text(make(name=" \t\x00"))


def test_characters_no_font_draws_are_left_out_not_boxed(
    fonts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(certificate, "CJK_FONTS", ())
    assert "This certifies that Chen Jing completed" in text(make(name="Chen Jing 陈静"))
    assert "This certifies that Participant completed" in text(make(name="陈静"))


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_any_name_gives_a_small_one_page_pdf(fonts: str, name: str) -> None:
    pdf = make(name=name, partner_countries=[name, "Kenya"])
    read(pdf)
    assert len(pdf) < 100_000


def test_a_long_name_is_shrunk_and_wrapped_not_cut_short(fonts: str) -> None:
    name = "María de los Ángeles Fernández-Castañeda y Rodríguez de la Fuente Villanueva"
    said = text(make(name=name))
    assert f"This certifies that {name} completed" in said
    assert "from 2 March 2026 to 1 July 2026." in said


def test_a_typical_certificate_is_a_few_tens_of_kilobytes(fonts: str) -> None:
    assert 1_000 < len(make()) < 40_000


def test_metadata_comes_from_the_inputs(fonts: str) -> None:
    meta = read(make(name="Ольга")).metadata
    assert meta is not None
    assert meta.title == "Certificate of completion: Ольга"
    assert meta.author == "Open Mentors"
    assert meta.subject == "Open Mentors, Round 3"
    assert meta.creation_date == datetime(2026, 7, 1, tzinfo=UTC)


def test_the_same_inputs_give_the_same_bytes(fonts: str) -> None:
    assert make(name="Ольга Zoë") == make(name="Ольга Zoë")
    assert make(term_end="2026-07-02") != make()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=200))
def test_no_name_makes_it_raise(name: str) -> None:
    read(make(name=name))
