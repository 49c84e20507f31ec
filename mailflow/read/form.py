"""The application form: reading `Field: value` lines out of a reply, checking every answer,
and writing the form back out with the answers so far.

Everything here is a pure function of its arguments except load_choices, which reads the
coordinators' choice lists from rules/form.toml. It must never raise on what people write:
whatever arrives becomes either a Profile or a list of problems, each naming what is wrong
and how to put it right. It never words them: a Problem is a kind and its data, and
templates/_problems.txt holds the sentence the person reads.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from mailflow.errors import RulesError
from mailflow.read.countries import country_name, fold_name, normalise_country
from mailflow.read.languages import normalise_language
from mailflow.read.timezones import ABBREVIATIONS, normalise_time_zone
from mailflow.rulebook import read_table, wrong


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    required: bool
    hint: str  # a one-line example, shown next to the label in the blank form


FIELDS: tuple[Field, ...] = (
    Field("name", "Name", True, "Your full name, e.g. Amina Njoroge"),
    Field("country", "Country", True, "The country you work in, e.g. Kenya"),
    Field("role", "Role", True, "Your job title, e.g. Reference librarian"),
    Field("library_type", "Library type", True, "One of the library types listed below"),
    Field("career_stage", "Career stage", True, "One of the career stages listed below"),
    Field(
        "interests",
        "Interests",
        True,
        "Topics you would like to talk about, separated by commas,"
        " e.g. cataloguing, outreach, digital preservation",
    ),
    Field("languages", "Languages", True, "Languages you can use, e.g. English, Swahili"),
    Field("time_zone", "Time zone", True, "Your city or your offset from UTC, e.g. Nairobi"),
    Field(
        "contact_methods",
        "Contact methods",
        True,
        "Any of the contact methods listed below, separated by commas",
    ),
    Field("contact_frequency", "Contact frequency", True, "One of the frequencies listed below"),
    Field("about_me", "About me", True, "A few lines about yourself and your work"),
    Field(
        "partner_wishes",
        "Partner wishes",
        False,
        "What you would like in a partner, e.g. someone in a school library in Asia",
    ),
)
_BY_KEY = {entry.key: entry for entry in FIELDS}

# Other ways people write the labels; matched like the labels themselves (any case,
# hyphens and extra spaces forgiven).
LABEL_VARIANTS: dict[str, tuple[str, ...]] = {
    "name": ("full name", "your name"),
    "country": ("country of work", "country of residence"),
    "role": ("job title", "position", "job"),
    "library_type": ("type of library",),
    "career_stage": ("career", "stage"),
    "interests": ("interest", "professional interests", "topics"),
    "languages": ("language", "languages spoken", "spoken languages"),
    "time_zone": ("timezone", "tz"),
    "contact_methods": (
        "contact method",
        "contact preferences",
        "contact preference",
        "preferred contact methods",
        "preferred contact method",
    ),
    "contact_frequency": ("frequency", "how often", "contact frequencies"),
    "about_me": ("about", "about yourself", "about myself", "a few lines about yourself", "bio"),
    "partner_wishes": ("partner wish", "partner preferences", "wishes", "partner"),
}

# Longest accepted answers, in characters.
LIMITS: dict[str, int] = {"name": 100, "role": 200, "about_me": 2000, "partner_wishes": 500}
MAX_ITEMS = 20  # interests, languages, contact methods
MAX_ITEM_LENGTH = 80
# No answer we can use is longer (About me's 2,000 and 20 items of 80 with their commas are
# shorter): a longer one is refused before it is read, so that its checks, each linear,
# are not run over a megabyte.
MAX_ANSWER = 4000
# Optional answers that mean "nothing": stored as "".
_NOTHING = frozenset({"none", "no", "n a", "na", "nil", "no preference", "no preferences"})

# Which Choices list answers which field.
_CHOICE_FIELDS: dict[str, str] = {
    "library_type": "library_types",
    "career_stage": "career_stages",
    "contact_methods": "contact_methods",
    "contact_frequency": "contact_frequencies",
}


@dataclass(frozen=True)
class Problem:
    """An answer that cannot be used. The sentence that tells the person what is wrong and
    how to fix it is templates/_problems.txt's, chosen by `kind` and filled from `data`."""

    key: str
    label: str
    value: str  # the answer as given, on one line and shortened for quoting back
    kind: str  # "missing", "too-long", "unknown-country" ... (one per sentence)
    data: Mapping[str, object] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Profile:
    name: str
    country: str  # ISO 3166-1 alpha-2
    role: str
    library_type: str
    career_stage: str
    interests: tuple[str, ...]
    languages: tuple[str, ...]  # canonical English language names
    time_zone: str  # IANA name or "UTC±HH:MM"
    contact_methods: tuple[str, ...]
    contact_frequency: str
    about_me: str
    partner_wishes: str  # "" when not given

    def as_record(self) -> dict:
        """Flat dict for storage, same keys as the dataclass; lists joined with "; "."""
        return {
            entry.key: "; ".join(value) if isinstance(value, tuple) else value
            for entry in FIELDS
            for value in [getattr(self, entry.key)]
        }


# --- Choices -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Choices:
    """The choice lists of rules/form.toml: canonical value -> accepted synonyms, in order.

    Iterating a list gives the canonical values, as the form shows them.
    """

    library_types: Mapping[str, tuple[str, ...]]
    career_stages: Mapping[str, tuple[str, ...]]
    contact_methods: Mapping[str, tuple[str, ...]]
    contact_frequencies: Mapping[str, tuple[str, ...]]
    ignore_words: tuple[str, ...] = ()
    _lookup: Mapping[str, Mapping[str, str]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _ignored: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        lookup = {}
        for kind in CHOICE_LISTS:
            table: dict[str, str] = {}
            for value, synonyms in getattr(self, kind).items():
                for spelling in (value, *synonyms):
                    key = fold_name(spelling)
                    if not key:
                        continue
                    if key in table and table[key] != value:
                        raise ValueError(
                            f"[{kind}]: {spelling!r} is given for both {table[key]!r} and"
                            f" {value!r}; a synonym may belong to one choice only"
                        )
                    table[key] = value
            lookup[kind] = MappingProxyType(table)
        object.__setattr__(self, "_lookup", MappingProxyType(lookup))
        ignored = sorted({fold_name(words) for words in self.ignore_words} - {""}, key=len)
        if ignored:  # longest first, so that "career stage" goes before "stage"
            alternatives = "|".join(re.escape(words) for words in reversed(ignored))
            pattern = re.compile(rf"(?<!\S)(?:{alternatives})(?!\S)")
            object.__setattr__(self, "_ignored", pattern)

    def find(self, kind: str, text: str) -> str | None:
        """The canonical value of list `kind` that `text` means, or None.

        Tried as written, then without the ignore words ("public library" -> "public"),
        then part by part when every part that is understood agrees ("Academic (university)").
        """
        table = self._lookup[kind]
        found = self._find_whole(table, text)
        if found is not None:
            return found
        parts = {self._find_whole(table, part) for part in _CHOICE_PARTS.split(text)} - {None}
        return parts.pop() if len(parts) == 1 else None

    def _find_whole(self, table: Mapping[str, str], text: str) -> str | None:
        key = fold_name(text)
        if not key:
            return None
        if key in table:
            return table[key]
        if self._ignored is None:
            return None
        return table.get(" ".join(self._ignored.sub(" ", key).split()))


CHOICE_LISTS = ("library_types", "career_stages", "contact_methods", "contact_frequencies")
# A run of spaces is tried once, from its start: "\s+(?:or|and)" alone is tried again from
# every space of a long run, which is quadratic.
_CHOICE_PARTS = re.compile(r"[,;/()&]|(?<!\s)\s+(?:or|and)\s+")


def load_choices(rules_dir: Path) -> Choices:
    """Read rules_dir / "form.toml"; RulesError naming the file, section and key when wrong."""
    path = Path(rules_dir) / "form.toml"
    sections = dict.fromkeys(CHOICE_LISTS)  # the choices' names are the coordinators'
    data = read_table(path, sections, keys_on_top=("ignore_words",))
    lists = {kind: _choice_list(path, kind, data.get(kind)) for kind in CHOICE_LISTS}
    ignore = data.get("ignore_words", [])
    if not isinstance(ignore, list) or not all(isinstance(word, str) for word in ignore):
        raise RulesError(f"{path}: ignore_words must be a list of words in quotes")
    try:
        return Choices(**lists, ignore_words=tuple(ignore))
    except ValueError as error:
        raise RulesError(f"{path}: {error}") from error


def _choice_list(path: Path, kind: str, table: object) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(table, dict) or not table:
        raise RulesError(f"{path}: [{kind}] is missing or has no choices")
    choices: dict[str, tuple[str, ...]] = {}
    for value, synonyms in table.items():
        if not value.strip() or not fold_name(value):
            raise wrong(path, kind, repr(value), "is no name: a choice needs letters or digits")
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            raise wrong(path, kind, repr(value), 'must be a list of synonyms, like ["a", "b"]')
        choices[value.strip()] = tuple(s.strip() for s in synonyms if s.strip())
    return MappingProxyType(choices)


# --- Reading the form out of a reply ------------------------------------------------------

_LABELS: dict[str, str] = {
    fold_name(text): entry.key
    for entry in FIELDS
    for text in (entry.label, *LABEL_VARIANTS.get(entry.key, ()))
}
# A label line: optional bullet or number, optional markdown bold, the label, a colon
# (full-width too), the value. Labels are short and start with a letter. The pattern reads
# only what comes before the line's first colon, and only when that colon is near the
# start: a label is never further in, and a regex given a long line of spaces with no
# colon once took 44 s for 16 KB (it backtracks over the spaces for every label length).
_LABEL_HEAD = 80
_LABEL_LINE = re.compile(
    r"(?:[-*•·‣▪◦]\s*|\d{1,2}[.)]\s+)?(?P<bold>\*\*|__)?"
    r"(?P<label>[^\W\d_][^:：\n]{0,40}?)\s*(?:(?:\*\*|__)\s*)?[:：]"
)
_OPTIONAL = re.compile(r"\((?:optional|required)\)", re.IGNORECASE)
# Closing lines after About me's last paragraph are the sender's, not part of the answer.
_SIGN_OFF = re.compile(
    r"^(?:thanks?( you)?( so much)?|many thanks|regards|best( wishes| regards)?|"
    r"kind regards|warm regards|cheers|sincerely|yours( sincerely| truly)?)\W*$",
    re.IGNORECASE,
)
# A filled form, a greeting and a long About me are far shorter; the lines after these are
# not read (each line costs a few microseconds, and a reply may have a million).
MAX_LINES = 1000
# Characters that have no place in an answer: C0/C1 controls (all but line breaks),
# bidirectional overrides that can disguise text, zero-width spaces and byte-order marks.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)
_SPACES = re.compile(r"[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85]")


def _clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text)
    return _INVISIBLE.sub("", _SPACES.sub(" ", text))


def _label_line(line: str) -> tuple[str, str] | None:
    """(field key, value on the line) when the line starts with a label we know."""
    text = line.lstrip()
    head = text[:_LABEL_HEAD]
    colon = min((at for at in (head.find(":"), head.find("：")) if at >= 0), default=-1)
    if colon < 0:
        return None
    found = _LABEL_LINE.fullmatch(head, 0, colon + 1)
    if found is None:
        return None
    label = fold_name(_OPTIONAL.sub("", found["label"].replace("*", "").replace("_", " ")))
    key = _LABELS.get(label)
    if key is None:
        return None
    value = text[colon + 1 :].strip()
    bold = found["bold"]
    if bold and value.startswith(bold):  # "**Name:** Ann"
        value = value[len(bold) :].strip()
    return key, value


def _is_hint(key: str, value: str) -> bool:
    """Left from the blank form rather than written: "[e.g. Kenya]" or the hint itself."""
    if value.startswith("[") and value.endswith("]"):
        return True
    return " ".join(value.casefold().split()) == " ".join(_BY_KEY[key].hint.casefold().split())


def _unhinted(key: str, value: str) -> str:
    value = value.strip()
    if _is_hint(key, value):
        return ""
    # "[e.g. Kenya] Tanzania": the person typed after the hint instead of over it.
    hinted = re.match(r"^\[(?:e\.?g\.?|for example)[^\]]*\]\s*(?P<rest>.+)$", value, re.I | re.S)
    return hinted["rest"].strip() if hinted else value


def read_answers(text: str) -> dict[str, str]:
    """Field key -> value for each recognised `Label: value` line, in FIELDS order.

    Values continue on following indented lines; About me (and any label left empty on its
    own line) also takes the unindented lines after it. A later non-empty answer for the
    same field wins over an earlier one; hints left from the blank form count as empty.
    """
    if not isinstance(text, str):
        return {}
    lines = _clean_text(text).split("\n", MAX_LINES)[:MAX_LINES]
    found: dict[str, str] = {}
    i = 0
    while i < len(lines):
        parsed = _label_line(lines[i])
        if parsed is None:
            i += 1
            continue
        key, first = parsed
        value, i = _continuation(lines, i + 1, key, [first] if first else [])
        value = _unhinted(key, value)
        if value or key not in found:
            found[key] = value
    return {entry.key: found[entry.key] for entry in FIELDS if entry.key in found}


def _continuation(lines: list[str], i: int, key: str, taken: list[str]) -> tuple[str, int]:
    """The rest of a value starting at line i: (value, index of the first line not taken)."""
    free = key == "about_me" or not taken  # may take unindented lines
    while i < len(lines):
        line = lines[i]
        if _label_line(line) is not None:
            break
        if not line.strip():
            if key != "about_me":
                break
            # A blank line inside About me separates paragraphs, unless what follows is
            # the next label, the end, or a sign-off.
            after = next((j for j in range(i, len(lines)) if lines[j].strip()), None)
            if after is None or _label_line(lines[after]) or _SIGN_OFF.match(lines[after].strip()):
                break
            if taken:
                taken.append("")
            i = after
            continue
        if not (line[0].isspace() or free) or (free and _SIGN_OFF.match(line.strip())):
            break
        taken.append(line.strip())
        i += 1
    return "\n".join(taken).strip(), i


def looks_like_form(text: str) -> bool:
    """At least two labels with answers, or three labels even if empty."""
    answers = read_answers(text)
    return sum(1 for value in answers.values() if value) >= 2 or len(answers) >= 3


def merge_answers(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """Earlier answers, with every non-empty new answer replacing the old one."""
    merged: dict[str, str] = {}
    for entry in FIELDS:
        newer, older = new.get(entry.key), old.get(entry.key)
        if isinstance(newer, str) and newer.strip():
            merged[entry.key] = newer
        elif older is not None:
            merged[entry.key] = older
        elif newer is not None:
            merged[entry.key] = newer
    return merged


def render_answers(answers: dict[str, str]) -> str:
    """The form as `Label: value` lines in FIELDS order, continuation lines indented."""
    out = []
    for entry in FIELDS:
        value = answers.get(entry.key) or ""
        first, *rest = str(value).split("\n")
        out.append(f"{entry.label}: {first}")
        out.extend(f"  {line}" if line.strip() else "" for line in rest)
    return "\n".join(out)


def answers_from_record(record: dict) -> dict[str, str]:
    """Stored details as form answers, for showing them back or checking them again."""
    answers = {}
    for entry in FIELDS:
        value = record.get(entry.key)
        text = "" if value is None else str(value)
        if entry.key == "country" and normalise_country(text) == text.strip().upper():
            text = country_name(text.strip().upper())
        answers[entry.key] = text
    return answers


# --- Checking the answers -----------------------------------------------------------------


class _Wrong(Exception):
    """An answer that cannot be used: the kind of problem and what its sentence names."""

    def __init__(self, kind: str, **data: object) -> None:
        super().__init__(kind)
        self.kind = kind
        self.data = data


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _shown(value: str, limit: int = 60) -> str:
    line = _one_line(value)
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _clean_value(value: object) -> str:
    """Controls removed, lines trimmed, runs of blank lines made one."""
    if value is None:
        return ""
    text = _clean_text(value if isinstance(value, str) else str(value))
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _limited(key: str, value: str) -> str:
    limit = LIMITS[key]
    if len(value) <= limit:
        return value
    raise _Wrong("too-long", length=len(value), limit=limit)


def _items(value: str, separators: str) -> list[str]:
    """Split a list answer, dropping bullets, blanks and repeats (ignoring case)."""
    seen: dict[str, str] = {}
    for part in re.split(separators, value):
        item = _one_line(part.strip().lstrip("-*•·").strip())
        if item and item.casefold() not in seen:
            seen[item.casefold()] = item
    return list(seen.values())


_LIST_SEPARATORS = r"[,;\n]"
_LANGUAGE_SEPARATORS = r"[,;/\n&+]|(?<!\s)\s+and\s+"  # from a run's start, as _CHOICE_PARTS
_METHOD_SEPARATORS = r"[,;/\n&()]|(?<!\s)\s+(?:and|or)\s+"
# "(basic)": a parenthesis with no other inside, so that a "(" never looks past the next
# one for its ")" (with "[^)]*", a long run of "(" is quadratic).
_PARENTHESES = re.compile(r"\([^()]*\)")


def _counted(items: list[str]) -> None:
    if len(items) > MAX_ITEMS:
        raise _Wrong("too-many", count=len(items), limit=MAX_ITEMS)
    for item in items:
        if len(item) > MAX_ITEM_LENGTH:
            raise _Wrong("item-too-long", item=_shown(item, 40), limit=MAX_ITEM_LENGTH)


# A web address: "https://…", "hxxp://…", "www.…", "host.example/path". The partner reads
# Name and Contact methods in their introduction, where a link could pass for one the
# program sent; the quantifiers are bounded, so a long answer costs linear time.
_LINK = re.compile(r"[a-z][a-z0-9+.-]{0,20}://|(?<![\w.])www\d{0,3}\.|\.[a-z]{2,24}/", re.I)


def _no_link(value: str) -> None:
    if _LINK.search(value) is not None:
        raise _Wrong("link")


def _check_name(value: str, _choices: Choices, _seen: dict) -> str:
    name = _limited("name", _one_line(value))
    _no_link(name)
    return name


def _check_country(value: str, _choices: Choices, _seen: dict) -> str:
    code = normalise_country(_one_line(value))
    if code is None:
        raise _Wrong("unknown-country")
    return code


def _check_role(value: str, _choices: Choices, _seen: dict) -> str:
    return _limited("role", _one_line(value))


def _check_choice(key: str) -> Callable[[str, Choices, dict], str]:
    kind = _CHOICE_FIELDS[key]

    def check(value: str, choices: Choices, _seen: dict) -> str:
        found = choices.find(kind, _one_line(value))
        if found is None:
            raise _Wrong("not-a-choice", choices=list(getattr(choices, kind)) or ["?"])
        return found

    return check


def _check_interests(value: str, _choices: Choices, _seen: dict) -> tuple[str, ...]:
    items = _items(value, _LIST_SEPARATORS)
    if not items:
        raise _missing("interests")
    _counted(items)
    return tuple(items)


def _check_languages(value: str, _choices: Choices, _seen: dict) -> tuple[str, ...]:
    # "French (basic, reading)": the parentheses say how well, and hold commas of their own.
    items = _items(_PARENTHESES.sub(" ", value), _LANGUAGE_SEPARATORS)
    _counted(items)
    known = {item: normalise_language(item) for item in items}
    unknown = [_shown(item, 40) for item, name in known.items() if name is None]
    if unknown:
        raise _Wrong("unknown-languages", unknown=unknown)
    if not items:
        raise _missing("languages")
    return tuple(dict.fromkeys(name for name in known.values() if name))


def _check_time_zone(value: str, _choices: Choices, seen: dict) -> str:
    line = _one_line(value)
    zone = normalise_time_zone(line, seen.get("country"))
    if zone is not None:
        return zone
    if None not in ABBREVIATIONS.get(fold_name(line), {None: ""}):
        raise _Wrong("ambiguous-time-zone")
    raise _Wrong("unknown-time-zone")


def _check_contact_methods(value: str, choices: Choices, _seen: dict) -> tuple[str, ...]:
    _no_link(value)
    items = _items(value, _METHOD_SEPARATORS)
    _counted(items)
    # A tool we did not list is kept as written: the partner will know what it is.
    methods = [choices.find("contact_methods", item) or item.lower() for item in items]
    if not methods:
        raise _missing("contact_methods", choices)
    return tuple(dict.fromkeys(methods))


def _check_about_me(value: str, _choices: Choices, _seen: dict) -> str:
    return _limited("about_me", value)


def _check_partner_wishes(value: str, _choices: Choices, _seen: dict) -> str:
    if fold_name(value) in _NOTHING:
        return ""
    return _limited("partner_wishes", value)


_CHECKS: dict[str, Callable[[str, Choices, dict], object]] = {
    "name": _check_name,
    "country": _check_country,
    "role": _check_role,
    "library_type": _check_choice("library_type"),
    "career_stage": _check_choice("career_stage"),
    "interests": _check_interests,
    "languages": _check_languages,
    "time_zone": _check_time_zone,
    "contact_methods": _check_contact_methods,
    "contact_frequency": _check_choice("contact_frequency"),
    "about_me": _check_about_me,
    "partner_wishes": _check_partner_wishes,
}


def _missing(key: str, choices: Choices | None = None) -> _Wrong:
    """An empty answer; a choice field's sentence lists the choices when they are known."""
    if key in _CHOICE_FIELDS and choices is not None:
        return _Wrong("missing", choices=list(getattr(choices, _CHOICE_FIELDS[key])) or ["?"])
    return _Wrong("missing")


def validate(answers: dict[str, str], choices: Choices) -> tuple[Profile | None, list[Problem]]:
    """Check every answer; (Profile, []) when all are usable, else (None, every problem)."""
    if not isinstance(answers, Mapping):
        answers = {}
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for entry in FIELDS:
        raw = _unhinted(entry.key, _clean_value(answers.get(entry.key)))
        if not raw:
            if entry.required:
                missing = _missing(entry.key, choices)
                problems.append(Problem(entry.key, entry.label, "", missing.kind, missing.data))
            values[entry.key] = ""
            continue
        try:
            if len(raw) > MAX_ANSWER:
                raise _Wrong("far-too-long", length=len(raw))
            values[entry.key] = _CHECKS[entry.key](raw, choices, values)
        except _Wrong as wrong:
            problems.append(Problem(entry.key, entry.label, _shown(raw), wrong.kind, wrong.data))
    if problems:
        return None, problems
    return Profile(**values), []  # type: ignore[arg-type]
