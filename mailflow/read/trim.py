"""Keep only the new text of an email reply: what the person wrote above the quoted original
and above their signature.

People answer mailflow from every common mail client, in many languages, and each client
marks the original differently: `>` quotes, an "On … wrote:" line, an Outlook header block
(`From:`/`Sent:`/`To:`/`Subject:`) with the original below it unquoted, separator lines,
"Sent from my iPhone". Every line is classified, then the body is cut at the first point
where only such material follows (the approach of Discourse's email_reply_trimmer).

The person's own `Field: value` lines (the application form) are ordinary text: only a
block of header lines with a From-like line and a date or subject line counts as a header.

This module must never raise on any str, never do I/O, and never take more than linear
time: a regex sees at most `MAX_LINE` characters of one line (or a few joined lines), each
distinct line is looked at once, and most lines are settled by a few string tests.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import NamedTuple

MAX_LINE = 1000  # no marker or header is longer; regexes never see more of a line
JOIN_LINES = 6  # clients wrap an "On … wrote:" line onto at most this many lines
JOIN_CHARS = 400  # and a wrapped one is never longer than this
SIGNATURE_TAIL = 7  # fewer text lines than this below a quote are a signature, not a reply
PASSES = 3  # at most this many looks at a reply (see split_reply)
SHORT_LINE = 120  # a mobile signature is never longer; a longer line is a sentence
FORWARD_LINE_MAX = 60  # "Anfang der weitergeleiteten Nachricht:" and its kin are shorter

# What each line is.
EMPTY = "empty"
TEXT = "text"
QUOTE = "quote"
ATTRIBUTION = "attribution"  # "On … wrote:" and its kin, possibly over several lines
DELIMITER = "delimiter"  # a line after which the original follows
SIGNATURE = "signature"  # "-- " and mobile signatures: the new text ends here
HEADER = "header"  # one line of an embedded From:/Sent:/To:/Subject: block
RULE = "rule"  # "-----", "=====": a delimiter above quoted material, text otherwise


def _phrases(words: Iterable[str]) -> str:
    """A regex alternative of phrases, longest first, any run of spaces between words."""
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len)[::-1])


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


# --- quotes and separator lines ---------------------------------------------------------------

# "Richard> " and "C> ": Emacs supercite quotes with the author's name or initials.
SUPERCITE = re.compile(r"[A-Za-z]{1,15}>(?:\s|$)")
QUOTE_PREFIX = re.compile(r"[\s>]+")

SIGNATURE_MARKER = "--"  # "-- " (RFC 3676); many clients strip the space

# The words between dashes: "-----Original Message-----" (Outlook), "---------- Forwarded
# message ---------" (Gmail), "----- Original Message -----" (Yahoo), translated.
DASHED_PHRASES = (
    "original message", "forwarded message", "reply message", "ursprüngliche nachricht",
    "original-nachricht", "weitergeleitete nachricht", "message d'origine", "message d’origine",
    "message original", "message transféré", "mensaje original", "mensaje reenviado",
    "mensagem original", "mensagem encaminhada", "mensagem reencaminhada",
    "messaggio originale", "messaggio inoltrato", "oorspronkelijk bericht",
    "origineel bericht", "doorgestuurd bericht", "oprindelig meddelelse",
    "videresendt meddelelse", "videresendt besked", "opprinnelig melding",
    "videresendt melding", "ursprungligt meddelande", "originalmeddelande",
    "vidarebefordrat meddelande", "wiadomość oryginalna", "oryginalna wiadomość",
    "przekazana wiadomość", "wiadomość przekazana dalej", "исходное сообщение",
    "пересылаемое сообщение", "пересланное сообщение", "оригінальне повідомлення",
    "переслане повідомлення", "原始邮件", "原始郵件", "转发邮件", "轉寄郵件", "元のメッセージ",
    "転送メッセージ", "원본 메시지", "전달된 메시지", "alkuperäinen viesti", "välitetty viesti",
    "eredeti üzenet", "továbbított üzenet", "původní zpráva", "přeposlaná zpráva",
    "orijinal mesaj", "iletilen ileti", "mesaj original", "αρχικό μήνυμα",
)  # fmt: skip
DASHED_DELIMITER = re.compile(
    rf"[*_]?\s*-{{2,}}\s*(?:{_phrases(DASHED_PHRASES)})\s*-{{2,}}\s*[*_]?", re.I
)
# Outlook web and Outlook mobile put a line of underscores above the original.
UNDERSCORES = re.compile(r"\*?_{5,}\*?")
# The invisible mark a Gmail tracking extension (Streak) leaves below the reply.
TRACKING_MARK = "\u1427"
RULE_LINE = re.compile(r"([-=~*+#_])\1{2,}")
MARK_CHARS = frozenset("-=~*+#_")

# Apple Mail and others forward under one line without dashes.
FORWARD_LINES = frozenset(
    _normal(line)
    for line in (
        "Begin forwarded message", "Début du message réexpédié", "Début du message transféré",
        "Anfang der weitergeleiteten Nachricht", "Anfang der weitergeleiteten E-Mail",
        "Inicio del mensaje reenviado", "Início da mensagem reencaminhada",
        "Início da mensagem encaminhada", "Begin doorgestuurd bericht", "Messaggio inoltrato",
        "Vidarebefordrat brev", "Videresendt besked", "Videresendt e-mail",
        "Начало переадресованного сообщения", "转发的邮件", "以下為轉寄郵件",
        "転送されたメッセージ",
    )
)  # fmt: skip

# --- mobile signatures ------------------------------------------------------------------------

# Signatures that clients add below the new text, by their first word (case-folded) and a
# pattern for the rest of the line.
MOBILE_SIGNATURES: dict[str, re.Pattern[str]] = {
    first: re.compile(rest, re.I)
    for first, rest in {
        # "Sent from my iPhone", "Sent from Yahoo Mail on Android", "Sent from Mail for
        # Windows", "Sent with Airmail", "<<sent by galaxy>>"
        "sent": r"(?:from|via|with|using|by) (?:my|a|an|the|mail|yahoo|outlook|windows"
        r"|mailbox|gmail|aol|samsung|proton|blackberry|airmail|spark|bluemail|mobile|galaxy"
        r"|\[|(?-i:[A-Z]))",
        "from": r"my (?:iphone|ipad|ipod|android|mobile|phone|cell|smartphone|samsung"
        r"|galaxy|blackberry|huawei|pixel)",
        "get": r"\[?outlook for ",  # Outlook for iOS and Android
        "envoyé": r"(?:de|depuis|avec|à partir de|du) ",
        "obtenir": r"outlook pour ",
        "télécharger": r"outlook pour ",
        "von": r"meine[mr] .{1,60}gesendet",  # "Von meinem iPhone gesendet"
        "gesendet": r"(?:von|mit|vom) ",
        "diese": r"nachricht wurde von meinem .{1,80}gesendet",  # K-9 Mail
        "enviado": r"(?:desde|de|do|com|con|a partir de|via|por) ",
        "obtener": r"outlook para ",
        "obtenga": r"outlook para ",
        "obter": r"(?:o )?outlook para ",
        "inviato": r"da ",
        "scarica": r"outlook per ",
        "verzonden": r"(?:met|vanaf|van|via) ",
        "verstuurd": r"(?:met|vanaf|van|via) ",
        "outlook": r"voor .{1,20} downloaden",
        "sendt": r"(?:fra|med|via) ",
        "skickat": r"(?:från|med|via) ",
        "skickades": r"(?:från|med|via) ",
        "lähetetty": r"\S+ ",
        "hent": r"outlook til ",
        "hämta": r"outlook för ",
        "få": r"outlook (?:for|til|för) ",
        "wysłane": r"(?:z|ze|przy|za pomocą) ",
        "wysłano": r"(?:z|ze|przy|za pomocą) ",
        "отправлено": r"(?:с|из|со) ",
        "надіслано": r"(?:з|із|зі) ",
    }.items()
}
# Chinese and Japanese ones have no spaces: "发自我的iPhone", "iPhoneから送信".
CJK_SIGNATURE = re.compile(r"(?:发自|發自|来自|來自|從|从)\s*我的|\S{0,20}\s*から送信")

# --- "On … wrote:" ----------------------------------------------------------------------------

# The verb of an attribution line, per language.
WORDS_VERB = re.compile(
    r"(?<!\w)(?:wrote|writes|a écrit|écrit|ecrit|escribió|escribio|escreveu|schrieb|schreef"
    r"|geschreven|ha scritto|scrisse|skrev|skrifaði|napisał\(a\)|napisała|napisał|napisal"
    r"|pisze|napsal\(a\)|napsal|napísal|написал\(а\)|написала|написал|пишет|пише|написав"
    r"|kirjoitti|írta|yazdı|a scris|έγραψε|כתב|كتب|menulis|viết)(?!\w)",
    re.I,
)
CJK_VERB = re.compile(r"写道|寫道|님이 작성|のメッセージ|のメール")
# First words of attribution lines: "On", "Le", "Am", "El", "Em", "Op", "Il", "Den",
# "W dniu", a weekday; or the line starts with a date.
OPENER_WORDS = frozenset(
    (
        "on", "le", "am", "el", "em", "op", "il", "den", "på", "dne", "dnia", "w", "at", "v",
        "в",
        # weekdays, some abbreviated as Gmail does
        "mon", "monday", "tue", "tues", "tuesday", "wed", "wednesday", "thu", "thur",
        "thurs", "thursday", "fri", "friday", "sat", "saturday", "sun", "sunday",
        "lun", "mer", "jeu", "ven", "sam", "dim",
        "понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье",
        "пн", "вт", "ср", "чт", "пт", "сб", "вс",
        "понеділок", "вівторок", "середа", "четвер", "пʼятниця", "п'ятниця", "субота",
        "неділя",
        "poniedziałek", "wtorek", "środa", "czwartek", "piątek", "sobota", "niedziela",
        "pon", "wt", "śr", "czw", "pt", "sob", "niedz",
    )
)  # fmt: skip
CJK_OPENERS = "在于"
# Words that only ever begin an attribution line, never continue a wrapped one (capitalised:
# a wrapped one may go on with "am 3. März" or "at 10:00").
LINE_OPENER = re.compile(r"(?:On|Le|Am|El|Em|Op|Il|Den|Dnia|W dniu|Dne)\s|在")
DATE_TOKEN = re.compile(
    r"\d{1,4}[./-]\s?\d{1,2}|(?<!\d)(?:19|20)\d{2}(?!\d)|\d{1,2}[:.h]\d{2}|\d\s*[年月日]"
)
EMAIL = re.compile(r"[^\s@<>:;,\"']{1,64}@[^\s@<>:;,\"']{1,255}\.[^\s@<>:;,\"']{2,}")
# Gmail's old form: "2016-03-03 17:21 GMT+01:00 Ann <ann@x.org>:", and Gmail in Japanese.
DATE_FIRST = re.compile(r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}")
GMT_OFFSET = re.compile(r"GMT[+-]\d")
# Gmail in Russian and others has no verb: "пн, 3 мар. 2025 г. в 10:00, Ann <a@x.org>:".
ENDS_WITH_ADDRESS = re.compile(r"@[^\s@<>]{1,255}\s*>+\s*[:：]$")
SENTENCE_BREAK = re.compile(r"[.!?]\s+\w")
# How far the verb may follow the address: "<a@x.org> het volgende geschreven:".
VERB_DISTANCE = 40
# A person's own "Label: value" line (the application form) is never part of an attribution.
FIELD_LINE = re.compile(r"[^\W\d_][\w '’()/-]{0,40}[:：]\s+\S")


def _dash_wrapped(text: str) -> str | None:
    """The words inside Zoho's "---- On … wrote ----", None when `text` is not so wrapped.
    No regex: the one this replaces took cubic time on a line of dashes and spaces."""
    if len(text) < 4 or not (text.startswith("--") and text.endswith("--")):
        return None
    return text.lstrip("-").lstrip().rstrip("-").rstrip()


def _opens_attribution(text: str) -> bool:
    head = text.lstrip(" \t*_-")
    if not head:
        return False
    if head[0].isdigit() or head[0] in CJK_OPENERS:
        return True
    words = head.split(None, 1)
    return bool(words) and words[0].casefold().rstrip(".,") in OPENER_WORDS


def _is_attribution(candidate: str) -> bool:
    """Whether one line, or several wrapped lines joined by spaces, is an "On … wrote:"."""
    text = candidate.strip().strip("*_").strip()
    if not text or len(text) > JOIN_CHARS:
        return False
    date_first = DATE_FIRST.match(text) is not None
    if text[-1] not in ":：-" and not date_first:
        return False
    emails = [match.end() for match in EMAIL.finditer(text)] if "@" in text else []
    if date_first and (emails or GMT_OFFSET.search(text)):
        return True
    wrapped = _dash_wrapped(text)
    if wrapped is not None:
        text = wrapped
    elif text[-1] not in ":：":
        return False
    has_date = DATE_TOKEN.search(text) is not None
    ends_with_address = ENDS_WITH_ADDRESS.search(text) is not None
    if has_date and ends_with_address:
        return True
    verbs = [match.start() for match in WORDS_VERB.finditer(text)]
    verbs += [match.start() for match in CJK_VERB.finditer(text)]
    if not verbs:
        return False
    # "Ann <a@x.org> wrote:" and "Am … schrieb Ann <a@x.org>:", not "I wrote to a@x.org.
    # He wrote:".
    if emails and (ends_with_address or _close_behind(text, max(emails), max(verbs))):
        return True
    return has_date and _opens_attribution(text)


def _close_behind(text: str, start: int, stop: int) -> bool:
    """Whether `stop` follows `start` closely, in the same sentence."""
    between = text[start:stop]
    return start <= stop <= start + VERB_DISTANCE and SENTENCE_BREAK.search(between) is None


def _may_start_attribution(line: str) -> bool:
    head = line[:MAX_LINE].strip()
    if "@" in head or head.endswith("<"):
        return True
    # One that starts with a number starts with a date.
    return _opens_attribution(head) and not (head[:1].isdigit() and not DATE_TOKEN.search(head))


def _may_end_attribution(line: str) -> bool:
    """Whether a line ends as an attribution must (or Zoho's "---- … wrote ----")."""
    return line[-MAX_LINE:].rstrip().rstrip("*_")[-1:] in (":", "：", "-")


def _attribution_end(
    lines: Sequence[str], kinds: Sequence[str], start: int, nested: bool = False
) -> int | None:
    """The last line of an attribution that begins at `start`, None if none does.

    The caller has checked that the line at `start` may begin one (`_may_start_attribution`).
    """
    parts: list[str] = []
    size = 0
    openers: list[int] = []
    date_first = False
    for index in range(start, min(len(lines), start + JOIN_LINES)):
        kind = kinds[index]
        line = lines[index][:MAX_LINE].strip()
        if index == start:
            date_first = DATE_FIRST.match(line.lstrip("*_")) is not None
        else:
            if kind not in (TEXT, EMPTY, QUOTE, RULE):
                return None
            # Gmail wraps "… <ann@x.org\n> wrote:" so the last piece may look quoted.
            if kind == QUOTE and len(line) > 40:
                return None
            if LINE_OPENER.match(line):
                openers.append(index)
        if kind == EMPTY:
            continue
        if FIELD_LINE.match(line):
            return None
        parts.append(line)
        size += len(line) + 1
        if size > JOIN_CHARS:
            return None
        if (date_first or _may_end_attribution(line)) and _is_attribution(" ".join(parts)):
            # "Thanks, Ann <ann@x.org>" above "On … wrote:" is not part of it.
            if not nested and any(
                _may_start_attribution(lines[later])
                and _attribution_end(lines, kinds, later, nested=True) is not None
                for later in openers
            ):
                return None
            return index
        if kind == QUOTE and index > start:
            return None
    return None


def _quoted_attribution(lines: Sequence[str], kinds: Sequence[str], start: int) -> bool:
    """Whether the quote block at `start` opens with a quoted "On … wrote:" (iPhone)."""
    contents: list[str] = []
    for index in range(start, min(len(lines), start + JOIN_LINES)):
        if kinds[index] != QUOTE:
            break
        contents.append(QUOTE_PREFIX.sub("", lines[index][:MAX_LINE], count=1))
    plain = [TEXT if content.strip() else EMPTY for content in contents]
    return (
        bool(contents)
        and _may_start_attribution(contents[0])
        and _attribution_end(contents, plain, 0) is not None
    )


# --- embedded header blocks -------------------------------------------------------------------

# Header names as Outlook, Apple Mail, Gmail and Thunderbird write them in each language.
HEADER_NAMES = {
    "from": (
        "From", "Von", "De", "Fra", "Från", "Van", "Da", "Od", "От", "Від", "Kimden",
        "Lähettäjä", "Feladó", "发件人", "發件人", "寄件者", "差出人", "보낸 사람", "Mittente",
        "Remetente", "Absender", "Expéditeur", "Remitente", "Avsändare", "Nadawca",
        "Отправитель", "De la", "Από", "Odesílatel", "Afsender", "Frá",
    ),
    "date": (
        "Sent", "Date", "Datum", "Gesendet", "Envoyé", "Enviado", "Enviada", "Sendt",
        "Skickat", "Verzonden", "Verstuurd", "Inviato", "Data", "Wysłano", "Wysłane",
        "Отправлено", "Дата", "Надіслано", "发送时间", "發送時間", "日期", "送信日時", "日付",
        "날짜", "보낸 날짜", "Gönderildi", "Tarih", "Lähetetty", "Päivämäärä", "Elküldve",
        "Dátum", "Odesláno", "Trimis", "Fecha", "Date d'envoi", "Sent at", "Dato",
    ),
    "subject": (
        "Subject", "Betreff", "Objet", "Asunto", "Assunto", "Emne", "Ämne", "Onderwerp",
        "Oggetto", "Temat", "Тема", "主题", "主旨", "件名", "제목", "Konu", "Aihe", "Tárgy",
        "Předmět", "Subiect", "Θέμα", "Sujet", "Efni",
    ),
    "other": (
        "To", "Cc", "Bcc", "Reply-To", "An", "Kopie", "À", "A", "Para", "Til", "Till",
        "Aan", "Do", "Кому", "Копия", "Копія", "收件人", "抄送", "宛先", "받는 사람", "참조",
        "Kime", "Vastaanottaja", "Kopio", "Címzett", "Másolat", "Komu", "Către", "Risposta",
        "Antwort an", "Répondre à", "Responder a", "Kopia", "DW", "Bilgi", "Προς",
        "Svara till", "Svar til", "Antwoord aan", "Organization", "Organisation",
    ),
}  # fmt: skip
HEADER_ROLE = {_normal(name): role for role, names in HEADER_NAMES.items() for name in names}
HEADER_NAME_MAX = 40


def _header_role(line: str) -> str | None:
    """The role of a `Name: value` header line: "from", "date", "subject" or "other"."""
    head = line[: HEADER_NAME_MAX + 2]
    colons = [at for at in (head.find(":"), head.find("：")) if at > 0]
    if not colons:
        return None
    # Outlook's HTML turned to text makes "*From:*"; French puts a space before the colon.
    return HEADER_ROLE.get(_normal(head[: min(colons)].strip().strip("*_")))


def _mark_header_blocks(kinds: list[str], roles: dict[int, str]) -> None:
    """Mark runs of header lines with a From-like line and a date or subject line.

    One `Subject: …` among a person's own lines stays text, as do `Field: value` lines.
    `roles` holds the header role of each text line that has one.
    """
    done = -1
    for index in sorted(roles):
        if index <= done or kinds[index] != TEXT:
            continue
        found = {roles[index]}
        last = scan = index
        while True:
            scan += 1
            if scan in roles and kinds[scan] == TEXT:
                found.add(roles[scan])
                last = scan
            # Outlook wraps a long Subject or To onto the next line, and some converters
            # of HTML mail leave a blank line between header lines.
            elif not (
                scan == last + 1
                and scan + 1 in roles
                and kinds[scan] in (TEXT, EMPTY)
                and kinds[scan + 1] == TEXT
            ):
                break
        if "from" in found and found & {"date", "subject"}:
            kinds[index : last + 1] = [HEADER] * (last + 1 - index)
        done = last


# --- classifying lines ------------------------------------------------------------------------


class _Facts(NamedTuple):
    """What can be known of a line on its own, before looking at its neighbours."""

    kind: str
    may_start: bool = False  # may begin an "On … wrote:"
    may_end: bool = False  # may end one
    role: str | None = None  # "from", "date", "subject" or "other" for a header line


NO_FACTS = _Facts(EMPTY)


def _is_mobile_signature(stripped: str) -> bool:
    words = stripped.lstrip("(<[*_ ").split(None, 1)
    if len(words) == 2:
        rest = MOBILE_SIGNATURES.get(words[0].casefold())
        if rest is not None and rest.match(words[1]):
            return True
    return not stripped.isascii() and CJK_SIGNATURE.match(stripped) is not None


def _line_kind(stripped: str) -> str:
    """The kind of a non-blank line (given without surrounding whitespace) on its own."""
    first = stripped[0]
    if first == ">":
        return QUOTE
    if first in MARK_CHARS:
        if stripped == SIGNATURE_MARKER:
            return SIGNATURE
        if DASHED_DELIMITER.fullmatch(stripped) or UNDERSCORES.fullmatch(stripped):
            return DELIMITER
        if RULE_LINE.fullmatch(stripped):
            return RULE
    if stripped == TRACKING_MARK:
        return DELIMITER
    if ">" in stripped[:16] and SUPERCITE.match(stripped):
        return QUOTE
    if len(stripped) <= SHORT_LINE and _is_mobile_signature(stripped):
        return SIGNATURE
    if (
        len(stripped) <= FORWARD_LINE_MAX
        and stripped.rstrip("*_ ")[-1:] in (":", "：")
        and _normal(stripped.strip("*_:： ")) in FORWARD_LINES
    ):
        return DELIMITER
    return TEXT


PLAIN_FACTS = _Facts(TEXT)
# First words after which a line may be more than text (attribution or mobile signature).
SPECIAL_WORDS = OPENER_WORDS | MOBILE_SIGNATURES.keys()
# Last characters of lines that may end an attribution or have an address wrapped below.
SPECIAL_ENDS = frozenset(":-<*_")


def _is_plain(stripped: str) -> bool:
    """A quick, safe answer for most lines: ordinary text that nothing else can apply to."""
    first = stripped[0]
    return (
        stripped.isascii()
        and stripped[-1] not in SPECIAL_ENDS
        and "@" not in stripped
        and ":" not in stripped[: HEADER_NAME_MAX + 2]
        and ">" not in stripped[:16]
        and (
            (
                first.isalpha()
                and stripped.split(None, 1)[0].lower().rstrip(".,") not in SPECIAL_WORDS
            )
            or (first.isdigit() and not DATE_TOKEN.search(stripped))
        )
    )


def _line_facts(line: str) -> _Facts:
    stripped = line.strip()[:MAX_LINE]
    if not stripped:
        return NO_FACTS
    if _is_plain(stripped):
        return PLAIN_FACTS
    kind = _line_kind(stripped)
    may_end = _may_end_attribution(stripped)
    if kind != TEXT:
        return _Facts(kind, may_end=may_end)
    return _Facts(kind, _may_start_attribution(stripped), may_end, _header_role(stripped))


def _mark_attributions(
    lines: Sequence[str], kinds: list[str], starts: list[int], ends: list[int]
) -> None:
    """Mark "On … wrote:" lines, each perhaps wrapped over several lines."""
    done = -1
    for index in starts:
        if index <= done or kinds[index] != TEXT:
            continue
        position = bisect_left(ends, index)
        near_end = position < len(ends) and ends[position] < index + JOIN_LINES
        if not near_end and not DATE_FIRST.match(lines[index][:MAX_LINE].strip().lstrip("*_")):
            continue  # no line nearby can end one
        end = _attribution_end(lines, kinds, index)
        if end is not None:
            kinds[index : end + 1] = [ATTRIBUTION] * (end + 1 - index)
            done = end


def _classify(lines: Sequence[str]) -> list[str]:
    # Long bodies repeat lines (blank lines, quoted footers): look at each distinct one once.
    table = {line: _line_facts(line) for line in set(lines)}
    kinds = [table[line].kind for line in lines]
    starting = {line for line, facts in table.items() if facts.may_start}
    if starting:
        _mark_attributions(
            lines,
            kinds,
            [index for index, line in enumerate(lines) if line in starting],
            [index for index, line in enumerate(lines) if table[line].may_end],
        )
    roles = {line: facts.role for line, facts in table.items() if facts.role}
    if roles:
        _mark_header_blocks(
            kinds, {index: roles[line] for index, line in enumerate(lines) if line in roles}
        )
    if RULE in kinds:
        # A rule line ("-----") above headers, quotes or nothing separates off the
        # original; above the person's own text it is part of that text.
        following = None
        for index in range(len(kinds) - 1, -1, -1):
            if kinds[index] == RULE:
                kinds[index] = TEXT if following == TEXT else DELIMITER
            if kinds[index] != EMPTY:
                following = kinds[index]
    return kinds


# --- cutting ----------------------------------------------------------------------------------


class _Body:
    """The lines of a reply, classified, with quick access to the non-empty ones."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = lines
        self.kinds = _classify(lines)
        self.filled = [index for index, kind in enumerate(self.kinds) if kind != EMPTY]

    def next_filled(self, index: int, stop: int) -> int:
        """The first non-empty line at or after `index`; `stop` when none is before it."""
        position = bisect_left(self.filled, index)
        if position < len(self.filled) and self.filled[position] < stop:
            return self.filled[position]
        return stop

    def last_filled(self, start: int, stop: int, skipping: tuple[str, ...]) -> int:
        """The last non-empty line before `stop` not of a skipped kind; `start - 1` if none."""
        position = bisect_left(self.filled, stop) - 1
        while position >= 0 and self.filled[position] >= start:
            if self.kinds[self.filled[position]] not in skipping:
                return self.filled[position]
            position -= 1
        return start - 1

    def find(self, kind: str, start: int) -> int:
        """The first line of this kind at or after `start`; the line count when none is."""
        try:
            return self.kinds.index(kind, start)
        except ValueError:
            return len(self.kinds)

    def text(self, keep: list[bool], wanted: bool) -> str:
        """The lines whose `keep` is `wanted`, without blank lines at either end."""
        filled = [index for index in self.filled if keep[index] == wanted]
        if not filled:
            return ""
        return "\n".join(
            self.lines[index] for index in range(filled[0], filled[-1] + 1) if keep[index] == wanted
        )


ORIGINAL = (ATTRIBUTION, DELIMITER, HEADER, QUOTE, EMPTY)


def _leading_original(body: _Body) -> int:
    """Where the text starts when the reply opens with the original (bottom-posting)."""
    kinds = body.kinds
    start = 0
    while True:
        first = body.next_filled(start, len(kinds))
        if first == len(kinds):
            return start
        opens = kinds[first] in (ATTRIBUTION, DELIMITER, HEADER) or (
            kinds[first] == QUOTE and _quoted_attribution(body.lines, kinds, first)
        )
        if not opens:
            return start
        start = first
        while start < len(kinds) and kinds[start] in ORIGINAL:
            start += 1


def _replies_below(kinds: Sequence[str], start: int, stop: int) -> bool:
    """Whether the person answers below the quote an attribution introduces."""
    text_after_quote = 0
    for index in range(start, stop):
        kind = kinds[index]
        if kind == QUOTE and text_after_quote:
            return True  # text between two quotes: an inline reply
        if kind == TEXT:
            text_after_quote += 1
    return text_after_quote >= SIGNATURE_TAIL


def _keep_mask(body: _Body) -> tuple[list[bool], bool]:
    """Which lines are the new text, and whether any line was taken from between two kept."""
    kinds = body.kinds
    count = len(kinds)
    keep = [True] * count
    start = _leading_original(body)
    keep[:start] = [False] * start
    stop = min(body.find(kind, start) for kind in (DELIMITER, SIGNATURE, HEADER))
    inside = False
    index = body.find(ATTRIBUTION, start)
    while index < stop:
        end = index
        while end + 1 < stop and kinds[end + 1] == ATTRIBUTION:
            end += 1
        after = body.next_filled(end + 1, stop)
        if not (after < stop and kinds[after] == QUOTE and _replies_below(kinds, after, stop)):
            stop = index  # the original follows, quoted or not
            break
        # An inline or bottom-posted answer: keep the quotes it answers.
        keep[index : end + 1] = [False] * (end + 1 - index)
        inside = True
        index = body.find(ATTRIBUTION, end + 1)
    keep[stop:] = [False] * (count - stop)
    last = body.last_filled(start, stop, skipping=(QUOTE, ATTRIBUTION))
    if TEXT in kinds[start : last + 1]:
        # The new text sits above a quote that no attribution line introduces.
        keep[last + 1 : stop] = [False] * (stop - last - 1)
    return keep, inside


def split_reply(text: str) -> tuple[str, str]:
    """(kept, elided): trim_reply's result and what was cut."""
    body = _Body(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    keep, again = _keep_mask(body)
    for _ in range(PASSES - 1):
        if not again:
            break
        # Taking an attribution from between two quotes brings its neighbours together, and
        # they may make a wrapped attribution of their own: look at the result again.
        kept = [index for index, wanted in enumerate(keep) if wanted]
        inner, again = _keep_mask(_Body([body.lines[index] for index in kept]))
        for index, wanted in zip(kept, inner, strict=True):
            keep[index] = wanted
    return body.text(keep, True), body.text(keep, False)


def trim_reply(text: str) -> str:
    r"""The new text of a reply: what the person wrote above the quoted original and signature.
    Input is the decoded plain-text body (str, may contain \r\n). Output uses \n, has trailing
    whitespace of each line kept as is except that leading/trailing blank lines are removed."""
    return split_reply(text)[0]
