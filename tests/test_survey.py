"""read_survey: end-of-term survey replies as people write them, labelled or not, and what
must stay in the comment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailflow.read.survey import SurveyAnswer, read_survey


@pytest.mark.parametrize(
    ("text", "rating", "again", "comment"),
    [
        # The form the survey asks for.
        (
            "Rating: 4\nAgain: yes\nComment: It was lovely to talk to a colleague in Kenya.",
            4,
            True,
            "It was lovely to talk to a colleague in Kenya.",
        ),
        # A comment running on over several lines and paragraphs, until another label.
        (
            "Rating: 5\nComment: We met every month.\nShe showed me her library's makerspace."
            "\n\nThank you for organising this!\nAgain: yes",
            5,
            True,
            "We met every month.\nShe showed me her library's makerspace.\n\n"
            "Thank you for organising this!",
        ),
        ("Comment:\nIt was great.\nReally.\nRating: 3", 3, None, "It was great.\nReally."),
        # Other labels, other cases, other separators.
        ("Score: 4/5\nWould sign up again? Yes!\nAnything else: no", 4, True, "no"),
        ("Stars: ****\nJoin again: not sure", 4, None, ""),
        ("rating: 4 out of 5\nagain: Oui", 4, True, ""),
        ("RATING: five\nSIGN UP AGAIN: nope", 5, False, ""),
        ("Rating (1-5): 3\nSign-up again: sí", 3, True, ""),
        ("* Rating: 4\n* Again: y", 4, True, ""),
        ("Rating - 2\nWould you sign up again - no", 2, False, ""),
        ("Rating 5\nAgain yes", 5, True, ""),
        ("Rating: ★★★★☆\nAgain: ja", 4, True, ""),
        ("Rating: * * *\nAgain: nein", 3, False, ""),
        ("Rating: 4\nAgain: sim\nComments: Obrigada!", 4, True, "Obrigada!"),
        ("Rating: 1\nAgain: non", 1, False, ""),
        ("Stars: 5 stars\nAgain: definitely", 5, True, ""),
        # Typed after the survey's hints, or with the hints left alone.
        (
            "Rating: (1 to 5, 5 is best) 4\nAgain: (would you sign up again? yes or no) yes\n"
            "Comment: (anything you would like to tell us) Lovely.",
            4,
            True,
            "(anything you would like to tell us) Lovely.",
        ),
        (
            "Rating: (1 to 5, 5 is best)\n3\nAgain: (would you sign up again? yes or no)",
            3,
            None,
            "",
        ),
        # The answer on the line after its label.
        ("Rating:\n4\nAgain:\nyes", 4, True, ""),
        ("Again:\nYes I would\nRating:\n2", 2, True, "I would"),
        # Text after an answer is comment.
        (
            "Rating: 4 (would be 5 if my partner had replied sooner)\nAgain: yes",
            4,
            True,
            "(would be 5 if my partner had replied sooner)",
        ),
        (
            "Rating: 5\nAgain: yes, with the same partner if possible",
            5,
            True,
            "with the same partner if possible",
        ),
        (
            "Rating: 4\nAgain: maybe, if I still work in a library",
            4,
            None,
            "maybe, if I still work in a library",
        ),
        # Unlabelled replies, read in order: a rating, then a yes or no, then the comment.
        ("5, yes", 5, True, ""),
        ("5 yes, it was great", 5, True, "it was great"),
        ("4\nyes\nThank you so much!", 4, True, "Thank you so much!"),
        ("5 - definitely, loved it", 5, True, "loved it"),
        ("5. Yes", 5, True, ""),
        ("4/5, no", 4, False, ""),
        ("Four, yes", 4, True, ""),
        ("five stars! yes!", 5, True, ""),
        ("⭐⭐⭐⭐⭐ yes", 5, True, ""),
        ("3\nno, I am retiring this year", 3, False, "I am retiring this year"),
        ("Yes, 4 stars, great!", 4, True, "great!"),
        ("yes, definitely, loved it", None, True, "loved it"),
        ("No.", None, False, ""),
        ("5", 5, None, ""),
        ("5\n\nYes", 5, True, ""),
        ("Hi!\n5, yes\nThanks", 5, True, "Thanks"),
        ("Dear mailflow team,\n\n4, yes\nBest wishes", 4, True, "Best wishes"),
        ("Rating: 4\nyes", 4, True, ""),
        # Not a rating, not a yes or no: it all stays in the comment.
        ("10", None, None, "10"),
        ("10, yes", None, None, "10, yes"),
        ("0 - no", None, None, "0 - no"),
        ("4.5", None, None, "4.5"),
        ("8/10, yes", None, None, "8/10, yes"),
        ("2 weeks ago we met in Nairobi", None, None, "2 weeks ago we met in Nairobi"),
        ("3 of us met in Nairobi", None, None, "3 of us met in Nairobi"),
        ("One thing: the matching was slow", None, None, "One thing: the matching was slow"),
        ("1. The matching\n2. The topics", None, None, "1. The matching\n2. The topics"),
        ("Yes it was great", None, None, "Yes it was great"),
        ("No comment", None, None, "No comment"),
        ("No complaints at all", None, None, "No complaints at all"),
        ("5, no problems", 5, None, "no problems"),
        ("4\n\nYes it was great", 4, None, "Yes it was great"),
        ("Comments are welcome, I suppose", None, None, "Comments are welcome, I suppose"),
        ("Again, thanks so much", None, None, "Again, thanks so much"),
        ("Thank you!\n5, yes", None, None, "Thank you!\n5, yes"),
        ("n/a", None, None, "n/a"),
        ("Rating: 10\nAgain: yes", None, True, "Rating: 10"),
        ("Rating: 4.5\nAgain: yes", None, True, "Rating: 4.5"),
        ("Rating: 8/10", None, None, "Rating: 8/10"),
        ("Rating: good\nAgain: n/a", None, None, "Rating: good\nAgain: n/a"),
        ("Again: it depends on my new job", None, None, "it depends on my new job"),
        ("Again: maybe next year", None, None, "maybe next year"),
        ("Again: not sure", None, None, ""),
        # A second answer to the same question does not overwrite the first.
        ("Again: yes\nAgain: no", None, True, "Again: no"),
        ("", None, None, ""),
        ("  \n\n  ", None, None, ""),
    ],
)
def test_survey_replies(text: str, rating: int | None, again: bool | None, comment: str) -> None:
    assert read_survey(text) == SurveyAnswer(rating, again, comment)


@pytest.mark.parametrize(
    ("word", "again"),
    [
        *[(w, True) for w in ("yes", "y", "Yes!", "sure", "definitely", "oui", "sí", "si", "ja")],
        *[(w, True) for w in ("sim", "Of course", "absolutely", "yeah")],
        *[(w, False) for w in ("no", "n", "non", "nein", "nope", "No thanks", "not really")],
        *[(w, None) for w in ("not sure", "Not sure.", "maybe", "I don’t know", "unsure")],
    ],
)
def test_every_way_of_saying_yes_no_or_not_sure(word: str, again: bool | None) -> None:
    assert read_survey(f"Rating: 3\nAgain: {word}") == SurveyAnswer(3, again, "")


@pytest.mark.parametrize(
    ("value", "rating"),
    [
        ("1", 1),
        ("5", 5),
        ("4/5", 4),
        ("4 / 5", 4),
        ("4 out of 5", 4),
        ("4 of 5", 4),
        ("four out of five", 4),
        ("*", 1),
        ("*****", 5),
        ("★★☆☆☆", 2),
        ("three", 3),
        ("Two stars", 2),
        ("0", None),
        ("6", None),
        ("******", None),
        ("4/10", None),
        ("3.5", None),
        ("4th", None),
        ("excellent", None),
        ("99999999999999999999999999", None),
    ],
)
def test_rating_values(value: str, rating: int | None) -> None:
    assert read_survey(f"Rating: {value}").rating == rating


@given(st.text())
def test_any_text_gives_an_answer_and_never_raises(text: str) -> None:
    answer = read_survey(text)
    assert answer.rating is None or 1 <= answer.rating <= 5
    assert answer.again in (True, False, None)
    assert answer.comment == answer.comment.strip()


COMMENT_WORDS = st.sampled_from(
    ["it", "was", "lovely", "to", "talk", "with", "a", "colleague", "in", "Kenya", "our", "library"]
)
COMMENT_LINES = st.lists(
    st.lists(COMMENT_WORDS, min_size=1, max_size=8).map(" ".join), min_size=1, max_size=4
).map("\n".join)


@given(
    st.one_of(st.none(), st.integers(1, 5)),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.just(""), COMMENT_LINES),
    st.sampled_from(["Rating", "rating", "Score", "Stars"]),
    st.sampled_from(["Again", "Sign up again", "Would sign up again?", "Join again"]),
    st.sampled_from(["Comment", "Comments", "Anything else"]),
)
def test_the_labelled_form_reads_back(
    rating: int | None,
    again: bool | None,
    comment: str,
    rating_label: str,
    again_label: str,
    comment_label: str,
) -> None:
    lines = []
    if rating is not None:
        lines.append(f"{rating_label}: {rating}")
    if again is not None:
        lines.append(f"{again_label} {'yes' if again else 'no'}")
    if comment:
        lines.append(f"{comment_label}: {comment}")
    assert read_survey("\n".join(lines)) == SurveyAnswer(rating, again, comment)


@given(st.integers(1, 5), st.booleans(), st.sampled_from([", ", " ", " - ", "\n"]), COMMENT_LINES)
def test_an_unlabelled_reply_reads_in_order(
    rating: int, again: bool, separator: str, comment: str
) -> None:
    text = f"{rating}{separator}{'yes' if again else 'no'}\n{comment}"
    assert read_survey(text) == SurveyAnswer(rating, again, comment)
