"""The monthly topics in rules/topics.toml: the shipped list, and clear errors when a
coordinator's edit breaks it."""

from pathlib import Path

import pytest

from mailflow.rulebook.topics import Topic, load_topics, topic_for_month

RULES = Path(__file__).resolve().parents[1] / "rules"


def test_the_shipped_topics_load_and_come_from_what_participants_talked_about():
    topics = load_topics(RULES)
    assert len(topics) >= 8
    titles = " / ".join(topic.title for topic in topics).casefold()
    for subject in ("spaces you love", "print or electronic", "advocacy", "funding"):
        assert subject in titles
    assert "ebook access and copyright" in titles and "career paths" in titles
    assert all(topic.text and "\n" not in topic.title for topic in topics)


def test_topics_follow_the_months_and_start_again_when_the_list_runs_out():
    topics = (Topic("One", "a"), Topic("Two", "b"), Topic("Three", "c"))
    assert [topic_for_month(topics, m).title for m in range(1, 8)] == [
        "One",
        "Two",
        "Three",
        "One",
        "Two",
        "Three",
        "One",
    ]
    with pytest.raises(ValueError, match="from 1"):
        topic_for_month(topics, 0)


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "topics.toml").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "needs at least one [[topic]]"),
        ("[[topic]]\ntitle = 'A'\ntext = 'b'\n[extra]\n", "unknown section 'extra'"),
        ("[[topic]]\ntitle = 'A'\n", "topic 1: text must be some text, not None"),
        ("[[topic]]\ntitle = '  '\ntext = 'b'\n", "topic 1: title must be some text"),
        ("[[topic]]\ntitle = 'A'\ntext = 3\n", "topic 1: text must be some text, not 3"),
        ("[[topic]]\ntitle = 'A'\ntext = 'b'\ncolour = 'red'\n", "unknown key 'colour'"),
        ("[[topic]]\ntitle = '''A\nB'''\ntext = 'b'\n", "title must be one line"),
        (
            "[[topic]]\ntitle = 'Spaces'\ntext = 'b'\n[[topic]]\ntitle = 'spaces'\ntext = 'c'\n",
            "topic 2: the title 'spaces' is used twice",
        ),
        ("[[topic]\n", "not valid TOML"),
    ],
)
def test_a_broken_topics_file_names_the_topic_and_the_key(tmp_path, text, problem):
    rules = write(tmp_path, text)
    with pytest.raises(ValueError) as error:
        load_topics(rules)
    assert problem in str(error.value)
    assert str(rules / "topics.toml") in str(error.value)


def test_a_missing_topics_file_says_so(tmp_path):
    with pytest.raises(ValueError, match=r"topics\.toml: cannot be read"):
        load_topics(tmp_path)


def test_titles_and_texts_are_kept_without_surrounding_blank_lines(tmp_path):
    rules = write(tmp_path, '[[topic]]\ntitle = " Spaces "\ntext = """\nWhich one?\n"""\n')
    assert load_topics(rules) == (Topic("Spaces", "Which one?"),)
