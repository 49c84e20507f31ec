"""Replies in the charsets and transfer encodings real clients still send: the new text
above the quote is read the same whether it came as ISO-8859-1, Windows-1252, Shift_JIS,
GB2312, KOI8-R or UTF-8, in base64, quoted-printable or 8 bits, plain or HTML only, and a
form written that way is answered with the name spelled right.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailflow.read.parse import parse
from tests.conftest import ANN_FORM, PROGRAM, form_text, wire

SAMPLES = {
    "iso-8859-1": "Très bien, merci ! Café à la bibliothèque.",
    "windows-1252": "“We talk every week” – thanks, €5 well spent.",
    "shift_jis": "毎週話しています。図書館の仕事は楽しいです。",
    "gb2312": "我们每周都联系。图书馆员的工作很有意思。",
    "koi8-r": "Мы переписываемся каждую неделю. Библиотека работает.",
    "utf-8": "Wir schreiben uns jede Woche. Größe, Äpfel, ß.",
}
QUOTE = "\n\nOn Mon, 16 Mar 2026 at 10:00, Program <program@example.org> wrote:\n> How are you?\n"


def message(text: str, charset: str, cte: str, subtype: str = "plain") -> bytes:
    mail = EmailMessage()
    mail["From"] = "ann@uni.example.edu"
    mail["To"] = PROGRAM
    mail["Subject"] = "Re: Checking in"
    mail["Message-ID"] = "<charset@client.test>"
    mail.set_content(text, subtype=subtype, charset=charset, cte=cte)
    return wire(mail)


@pytest.mark.parametrize("cte", ["base64", "quoted-printable", "8bit"])
@pytest.mark.parametrize("charset", SAMPLES)
def test_the_reply_is_read_in_every_charset_and_encoding(charset: str, cte: str):
    raw = message(SAMPLES[charset] + QUOTE, charset, cte)
    assert charset.encode() in raw.lower() or charset == "utf-8"
    parsed = parse(raw, "ann@uni.example.edu", (PROGRAM,))
    assert parsed.reply == SAMPLES[charset]


def test_iso_2022_jp_in_seven_bits_is_read_as_japanese_not_escape_codes():
    """Japanese mobile and desktop clients still send ISO-2022-JP, 7 bit: mail-parser
    handed such a part back undecoded (ESC $ B ...)."""
    text = "毎週話しています。"
    raw = (
        b"From: ann@uni.example.edu\r\nTo: program@example.org\r\nSubject: Re: Checking in\r\n"
        b"Message-ID: <jis@client.test>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: text/plain; charset="ISO-2022-JP"\r\nContent-Transfer-Encoding: 7bit\r\n'
        b"\r\n"
    ) + (text + QUOTE).replace("\n", "\r\n").encode("iso-2022-jp")
    assert b"\x1b$B" in raw
    assert parse(raw, "ann@uni.example.edu", (PROGRAM,)).reply == text


def test_a_wrong_charset_label_on_utf_8_text_is_read_as_utf_8():
    raw = message(SAMPLES["utf-8"] + QUOTE, "utf-8", "8bit").replace(b"utf-8", b"us-ascii")
    assert b"us-ascii" in raw
    assert parse(raw, "ann@uni.example.edu", (PROGRAM,)).reply == SAMPLES["utf-8"]


@pytest.mark.parametrize("charset", ["iso-8859-1", "koi8-r", "shift_jis"])
def test_html_only_mail_in_a_legacy_charset_is_turned_into_text(charset: str):
    html = (
        f"<html><body><p>{SAMPLES[charset]}</p>"
        '<div class="gmail_quote">On Mon, 16 Mar 2026, Program wrote:'
        "<blockquote>How are you?</blockquote></div></body></html>"
    )
    parsed = parse(message(html, charset, "quoted-printable", "html"), None, (PROGRAM,))
    assert parsed.reply == SAMPLES[charset]


def test_a_form_in_koi8_r_is_answered_with_the_name_spelled_right(program):
    answers = dict(ANN_FORM, Name="Иван Петров", Country="Россия", **{"Time zone": "Moscow"})
    raw = message(form_text(answers), "koi8-r", "8bit")
    program.send(raw, sender="ann@uni.example.edu")
    [answer] = program.mail_for("<charset@client.test>")
    assert answer["X-Mailflow-Template"] == "application-confirm"
    assert "Иван Петров" in answer.get_content()
    assert "Russia" in answer.get_content()
