"""The end-of-term survey answer, read from the reply text above the quote: a rating from 1 to
5, whether they would sign up again, and a comment.

The survey asks for labelled lines ("Rating: 4", "Again: yes", "Comment: …"); labels are
read case-insensitively with their common variants ("Score", "Would sign up again",
"Anything else"), and a comment runs on over the following lines until another label.
People also answer without labels ("5, yes", "5 - definitely, loved it", "4" then "yes" on
the next line): the first line is read positionally, a rating then a yes or no (or the
other way round), and the rest is the comment. The survey's own hints, kept by someone
who typed after them ("Rating: (1 to 5, 5 is best) 4"), are passed over.

What is not read stays in the comment, so no word a participant wrote is lost: "Rating: 10"
(not 1-5) or "Again: it depends on my new job" keep their line. A number is a rating only
when nothing but punctuation or a yes/no follows it, so "2 weeks ago we met" is a comment.

This module is pure: a function of the text, no I/O, and it never raises on any str.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_TEXT = 20_000  # far more than anyone writes under a survey; the rest is not read


@dataclass(frozen=True)
class SurveyAnswer:
    rating: int | None  # 1-5
    again: bool | None  # would sign up again
    comment: str  # free text, '' when none


LABELS = {
    "rating": ("rating", "score", "stars", "star rating", "overall rating", "your rating"),
    "again": (
        "again",
        "sign up again",
        "signup again",
        "would sign up again",
        "would you sign up again",
        "join again",
        "would join again",
        "would you join again",
        "take part again",
        "would you take part again",
    ),
    "comment": (
        "comment",
        "comments",
        "any comments",
        "other comments",
        "anything else",
        "remarks",
        "feedback",
    ),
}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
STARS = "*★⭐"
# Answers to "would you sign up again?"; undecided ones are read, as None, so they do not
# stay behind in the comment. "no problems" and "no complaints" are not a no.
AGAIN_WORDS: dict[bool | None, tuple[str, ...]] = {
    None: (
        "not sure",
        "i'm not sure",
        "i am not sure",
        "unsure",
        "undecided",
        "maybe",
        "perhaps",
        "possibly",
        "don't know",
        "i don't know",
        "dont know",
        "no idea",
        "it depends",
    ),
    True: (
        "yes",
        "yeah",
        "yep",
        "yup",
        "y",
        "sure",
        "definitely",
        "absolutely",
        "certainly",
        "of course",
        "gladly",
        "no doubt",
        "oui",
        "si",
        "sí",
        "sì",
        "ja",
        "sim",
    ),
    False: (
        "no",
        "no thanks",
        "no thank you",
        "n",
        "nope",
        "nah",
        "non",
        "nein",
        "não",
        "nao",
        "not really",
        "never",
        "never again",
    ),
}
NOT_A_NO = ("problem", "problems", "complaint", "complaints", "regret", "regrets", "issues")


def _phrases(words: tuple[str, ...]) -> str:
    """A regex alternative of phrases, longest first, any spaces between words, either
    apostrophe."""
    ordered = sorted(words, key=len, reverse=True)
    return "|".join(re.escape(word).replace(r"\ ", r"\s+").replace("'", "['’]") for word in ordered)


_PUNCTUATION = ",;:.!?)-–—"
_BOUNDARY = rf"(?=$|[\s{re.escape(_PUNCTUATION)}])"
_AGAIN = re.compile(
    rf"(?:(?P<undecided>{_phrases(AGAIN_WORDS[None])})"
    rf"|(?P<yes>{_phrases(AGAIN_WORDS[True])})"
    rf"|(?P<no>{_phrases(AGAIN_WORDS[False])})(?!\s+(?:{_phrases(NOT_A_NO)})\b))" + _BOUNDARY,
    re.IGNORECASE,
)
_NUMBER = rf"(?:\d{{1,3}}(?!\d|[.,]\d)|(?:{'|'.join(NUMBER_WORDS)})\b)"
_RATING = re.compile(
    rf"(?P<number>{_NUMBER})(?:\s*(?:/|out\s+of|of)\s*(?P<scale>{_NUMBER}))?(?:\s*stars?\b)?"
    rf"|(?P<stars>[{STARS}]\ufe0f?(?:[ ]?[{STARS}]\ufe0f?)*)[☆✩]*",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"[\s•*-]*(?:"
    + "|".join(rf"(?P<{kind}>{_phrases(words)})" for kind, words in LABELS.items()).replace(
        r"\s+", r"[\s-]+"
    )
    + r")\b\s*(?:\([^)]*\)\s*)?(?P<separator>[:=?]+|[-–—]+(?=\s)|)\s*(?P<value>.*)",
    re.IGNORECASE,
)
_GREETING = re.compile(
    r"(?:hi|hello|hey|dear|hallo|hola|greetings|good\s+(?:morning|afternoon|evening))\b"
    r"(?:\s+[^\W\d_]+(?:-[^\W\d_]+)*){0,3}\s*[,!.]?",
    re.IGNORECASE,
)
_HINT = re.compile(r"^\([^)]*\)\s*")
_LEADING_PUNCTUATION = re.compile(rf"[\s{re.escape(_PUNCTUATION)}]*")


def read_survey(text: str) -> SurveyAnswer:
    """The rating, the yes or no to signing up again, and the comment, from a survey reply."""
    reading = _Reading()
    first = True  # the first line that is not a greeting may answer without labels
    for line in text[:MAX_TEXT].splitlines():
        line = line.strip()
        if not line:
            reading.comment.append("")
            continue
        if first and _GREETING.fullmatch(line):
            continue
        label = _label(line)
        expected = reading.expecting
        reading.expecting = None
        if label is not None:
            first = False
            kind, value = label
            if kind == "comment":
                reading.add(value)
            elif not value:
                reading.expecting = (kind, False)
            elif not reading.has(kind) and (read := _read(kind, value)) is not None:
                reading.take(kind, *read)
            else:
                reading.add(line)
        elif first:
            first = False
            reading.first_line(line)
        elif (
            expected
            and not reading.has(expected[0])
            and (read := _read(expected[0], line, alone=expected[1])) is not None
        ):
            reading.take(expected[0], *read)
        else:
            reading.add(line)
    comment = re.sub(r"\n{3,}", "\n\n", "\n".join(reading.comment)).strip()
    return SurveyAnswer(reading.rating, reading.again, comment)


@dataclass
class _Reading:
    """What has been read so far, line by line."""

    rating: int | None = None
    again: bool | None = None
    has_rating: bool = False
    has_again: bool = False  # again may be read as None: "not sure"
    comment: list[str] = field(default_factory=list)
    # A label whose answer may stand on the next line, and whether only punctuation may
    # follow it there: "Rating:" then "4"; "4" then "yes".
    expecting: tuple[str, bool] | None = None

    def has(self, kind: str) -> bool:
        return self.has_rating if kind == "rating" else self.has_again

    def take(self, kind: str, answer: int | bool | None, rest: str) -> None:
        if kind == "rating":
            self.rating, self.has_rating = answer, True
        else:
            self.again, self.has_again = answer, True
        if kind == "rating" and not rest and not self.has_again:
            self.expecting = ("again", True)
        self.add(rest)

    def first_line(self, line: str) -> None:
        found = _read_first_line(line)
        if found is None:
            self.add(line)
            return
        rating, again, rest = found
        if again is not None:
            self.take("again", again[0], "")
        if rating is not None:
            self.take("rating", rating, rest)
        else:
            self.add(rest)

    def add(self, text: str) -> None:
        if text:
            self.comment.append(text)


def _read(kind: str, text: str, *, alone: bool = False) -> tuple[int | bool | None, str] | None:
    """The answer a labelled line (or the line after its label) gives, and the rest."""
    if kind == "rating":
        return _read_rating(text, labelled=True)
    return _read_again(text, alone=alone)


def _label(line: str) -> tuple[str, str] | None:
    """The kind of a labelled line and its value; a line like "Comments are welcome" or
    "Stars all round" is not labelled, since no separator follows and no answer reads."""
    match = _LABEL.match(line)
    if match is None:
        return None
    kind = next(kind for kind in LABELS if match[kind])
    value = match["value"].strip()
    if kind != "comment":
        # The survey's own hint, kept by someone who typed after it: "Rating: (1 to 5) 4".
        value = _HINT.sub("", value, count=1)
    if match["separator"] or not value:
        return kind, value
    if kind == "rating" and _read_rating(value, labelled=False) is not None:
        return kind, value
    if kind == "again" and _read_again(value) is not None:
        return kind, value
    return None


def _read_first_line(line: str) -> tuple[int | None, tuple[bool | None] | None, str] | None:
    """A rating, a yes/no (wrapped, since None is an answer: "not sure") and the rest, read
    positionally from an unlabelled first line: "5, yes", "5 - definitely, loved it",
    "yes, 4 stars"; None if it starts with neither."""
    rating = _read_rating(line, labelled=False)
    if rating is not None:
        value, rest = rating
        again = _read_again(rest, alone=False)
        if again is None:
            return value, None, rest
        return value, (again[0],), again[1]
    again = _read_again(line, alone=True)
    if again is None:
        return None
    value, rest = again
    rating = _read_rating(rest, labelled=False)
    if rating is None:
        return None, (value,), rest
    return rating[0], (value,), rating[1]


def _read_rating(text: str, *, labelled: bool) -> tuple[int, str] | None:
    """A rating 1-5 at the start of `text` ("4", "4/5", "4 out of 5", "****", "five stars")
    and the text after it. Unlabelled, only punctuation or a yes/no may follow it, so that
    "2 weeks ago" or "3 of us met" is no rating."""
    match = _RATING.match(text)
    if match is None:
        return None
    if match["stars"]:
        value = sum(char in STARS for char in match["stars"])
    else:
        value = _number(match["number"])
        if match["scale"] and _number(match["scale"]) != 5:
            return None
    if not 1 <= value <= 5:
        return None
    rest = text[match.end() :]
    if labelled:
        if rest[:1].isalnum():
            return None  # "4th", "4ish"
    else:
        answer = _read_again(_tidy(rest))
        if rest.lstrip()[:1] in (".", ")") and _tidy(rest) and answer is None:
            return None  # "1. The matching was quick", a numbered list
        if not _ends_in_punctuation(rest) and not (rest[:1].isspace() and answer is not None):
            return None
    return value, _tidy(rest)


def _read_again(text: str, *, alone: bool = False) -> tuple[bool | None, str] | None:
    """A yes, a no or an undecided answer at the start of `text`, agreeing ones run together
    ("yes, definitely!"), and the text after them. `alone`: only punctuation may follow it,
    so that "Yes it was great" on its own is not read as an answer to signing up again."""
    match = _AGAIN.match(text)
    if match is None:
        return None
    value = _again_value(match)
    end = match.end()
    while (more := _AGAIN.match(text, _LEADING_PUNCTUATION.match(text, end).end())) and (
        _again_value(more) is value and _ends_in_punctuation(text[more.end() :])
    ):
        end = more.end()
    rest = text[end:]
    if alone and not _ends_in_punctuation(rest):
        return None
    if value is None and _tidy(rest):
        return None, text.strip()  # "maybe, if I still work in a library": all of it counts
    return value, _tidy(rest)


def _again_value(match: re.Match[str]) -> bool | None:
    return True if match["yes"] else False if match["no"] else None


def _ends_in_punctuation(rest: str) -> bool:
    rest = rest.lstrip()
    return not rest or rest[0] in _PUNCTUATION


def _number(text: str) -> int:
    return NUMBER_WORDS.get(text.lower()) or int(text)


def _tidy(rest: str) -> str:
    """What follows an answer, without the separators between them: "5 - loved it"."""
    return rest[_LEADING_PUNCTUATION.match(rest).end() :].strip()
