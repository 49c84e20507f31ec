"""The application form: reading a reply, checking every answer, writing the form back."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.read import form
from mailflow.read.form import FIELDS, Problem, Profile
from mailflow.send.render import Renderer

RULES = Path(__file__).resolve().parents[1] / "rules"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
KEYS = [entry.key for entry in FIELDS]
# The sentence a person reads for a problem, as templates/_problems.txt words it.
said = Renderer(TEMPLATES).sentence


@pytest.fixture(scope="module")
def choices() -> form.Choices:
    return form.load_choices(RULES)


GOOD = {
    "name": "Amina Njoroge",
    "country": "Kenya",
    "role": "Reference librarian",
    "library_type": "academic",
    "career_stage": "mid career",
    "interests": "cataloguing, outreach",
    "languages": "English, Swahili",
    "time_zone": "Nairobi",
    "contact_methods": "email, video call",
    "contact_frequency": "monthly",
    "about_me": "I run the reference desk of a university library in Mombasa.",
}

REPLY = """\
Hello, here is my form.

- **Name:** Amina  Njoroge
* Country : [e.g. Kenya]
* Country : Kenya
• Role: Senior librarian,
    special collections
Library Type: University library
Career stage: mid-career
Interests: cataloguing; outreach, Digital preservation,
  open access, OUTREACH
Language: English, Kiswahili and French (basic)
Timezone: [e.g. Nairobi]
Time-zone: Nairobi
Contact preferences: email, Zoom or WhatsApp, carrier pigeon
Contact frequency： every two weeks
About me: I look after the special collections
at a university library in Mombasa.

I have worked there for eight years.
Partner wishes (optional): [e.g. someone in a school library in Asia]

Thanks,
Amina
"""


# --- the form's shape and the choices file -------------------------------------------------


def test_fields_in_order_with_labels() -> None:
    assert KEYS == [
        "name", "country", "role", "library_type", "career_stage", "interests", "languages",
        "time_zone", "contact_methods", "contact_frequency", "about_me", "partner_wishes",
    ]  # fmt: skip
    assert [entry.label for entry in FIELDS] == [
        "Name", "Country", "Role", "Library type", "Career stage", "Interests", "Languages",
        "Time zone", "Contact methods", "Contact frequency", "About me", "Partner wishes",
    ]  # fmt: skip
    assert [entry.key for entry in FIELDS if not entry.required] == ["partner_wishes"]
    assert all(entry.hint and "\n" not in entry.hint for entry in FIELDS)


def test_choices_file_has_the_required_choices(choices: form.Choices) -> None:
    assert {
        "academic", "public", "school", "special", "national", "government", "health", "law",
        "corporate", "museum or archive", "other",
    } <= set(choices.library_types)  # fmt: skip
    assert list(choices.career_stages) == ["student", "early career", "mid career", "senior"]
    assert list(choices.contact_methods) == ["email", "video call", "phone", "chat"]
    assert list(choices.contact_frequencies) == ["weekly", "fortnightly", "monthly", "as needed"]


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("library_types", "University", "academic"),
        ("library_types", "ACADEMIC", "academic"),
        ("library_types", "academic library", "academic"),
        ("library_types", "Academic (university)", "academic"),
        ("library_types", "Public library", "public"),
        ("library_types", "hospital", "health"),
        ("library_types", "Archives", "museum or archive"),
        ("library_types", "Museum", "museum or archive"),
        ("career_stages", "early career", "early career"),
        ("career_stages", "Early-career", "early career"),
        ("career_stages", "new professional", "early career"),
        ("career_stages", "0-5 years", "early career"),
        ("career_stages", "Student", "student"),
        ("career_stages", "MLIS student", "student"),
        ("career_stages", "mid-career", "mid career"),
        ("career_stages", "Senior", "senior"),
        ("contact_methods", "Skype", "video call"),
        ("contact_methods", "zoom", "video call"),
        ("contact_methods", "MS Teams", "video call"),
        ("contact_methods", "WhatsApp", "chat"),
        ("contact_methods", "Signal", "chat"),
        ("contact_methods", "Telegram", "chat"),
        ("contact_methods", "E-mail", "email"),
        ("contact_methods", "telephone", "phone"),
        ("contact_frequencies", "every two weeks", "fortnightly"),
        ("contact_frequencies", "biweekly", "fortnightly"),
        ("contact_frequencies", "Bi-weekly", "fortnightly"),
        ("contact_frequencies", "Fortnightly", "fortnightly"),
        ("contact_frequencies", "once a month", "monthly"),
        ("contact_frequencies", "weekly", "weekly"),
        ("contact_frequencies", "when needed", "as needed"),
    ],
)
def test_choice_synonyms(choices: form.Choices, kind: str, text: str, value: str) -> None:
    assert choices.find(kind, text) == value


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("library_types", "bookshop"),
        ("library_types", "public / school"),  # two different choices: ask which
        ("career_stages", "retired astronaut"),
        ("contact_frequencies", "daily"),
        ("contact_frequencies", ""),
    ],
)
def test_unknown_choices(choices: form.Choices, kind: str, text: str) -> None:
    assert choices.find(kind, text) is None


@pytest.mark.parametrize(
    ("content", "mentions"),
    [
        ("library_types = [", "not valid TOML"),
        ("[career_stages]\nstudent = []\n", "library_types"),
        (
            "[library_types]\nacademic = 'university'\n[career_stages]\na = []\n"
            "[contact_methods]\na = []\n[contact_frequencies]\na = []\n",
            "'academic'",
        ),
        (
            "[library_types]\nacademic = ['university']\npublic = ['University']\n"
            "[career_stages]\na = []\n[contact_methods]\na = []\n[contact_frequencies]\na = []\n",
            "University",
        ),
        (
            "[library_type]\nacademic = []\n[library_types]\na = []\n[career_stages]\na = []\n"
            "[contact_methods]\na = []\n[contact_frequencies]\na = []\n",
            "library_type",
        ),
        ("", "library_types"),
    ],
)
def test_malformed_choices_file_is_explained(tmp_path: Path, content: str, mentions: str) -> None:
    (tmp_path / "form.toml").write_text(content, "utf-8")
    with pytest.raises(ValueError) as raised:
        form.load_choices(tmp_path)
    assert "form.toml" in str(raised.value)
    assert mentions in str(raised.value)


def test_missing_choices_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"form\.toml"):
        form.load_choices(tmp_path)


# --- reading a reply ----------------------------------------------------------------------


def test_realistic_reply_is_read() -> None:
    answers = form.read_answers(REPLY)
    assert answers == {
        "name": "Amina  Njoroge",
        "country": "Kenya",
        "role": "Senior librarian,\nspecial collections",
        "library_type": "University library",
        "career_stage": "mid-career",
        "interests": "cataloguing; outreach, Digital preservation,\nopen access, OUTREACH",
        "languages": "English, Kiswahili and French (basic)",
        "time_zone": "Nairobi",
        "contact_methods": "email, Zoom or WhatsApp, carrier pigeon",
        "contact_frequency": "every two weeks",
        "about_me": "I look after the special collections\nat a university library in Mombasa."
        "\n\nI have worked there for eight years.",
        "partner_wishes": "",
    }


def test_realistic_reply_validates(choices: form.Choices) -> None:
    profile, problems = form.validate(form.read_answers(REPLY), choices)
    assert problems == []
    assert profile == Profile(
        name="Amina Njoroge",
        country="KE",
        role="Senior librarian, special collections",
        library_type="academic",
        career_stage="mid career",
        interests=("cataloguing", "outreach", "Digital preservation", "open access"),
        languages=("English", "Swahili", "French"),
        time_zone="Africa/Nairobi",
        contact_methods=("email", "video call", "chat", "carrier pigeon"),
        contact_frequency="fortnightly",
        about_me="I look after the special collections\nat a university library in Mombasa."
        "\n\nI have worked there for eight years.",
        partner_wishes="",
    )


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("Name: Ann Lee", "name", "Ann Lee"),
        ("name:Ann Lee", "name", "Ann Lee"),
        ("  NAME  :   Ann Lee  ", "name", "Ann Lee"),
        ("- Name: Ann Lee", "name", "Ann Lee"),
        ("* Name: Ann Lee", "name", "Ann Lee"),
        ("• Name: Ann Lee", "name", "Ann Lee"),
        ("1. Name: Ann Lee", "name", "Ann Lee"),
        ("Name： Ann Lee", "name", "Ann Lee"),
        ("**Name:** Ann Lee", "name", "Ann Lee"),
        ("**Name**: Ann Lee", "name", "Ann Lee"),
        ("Timezone: Nairobi", "time_zone", "Nairobi"),
        ("Time-zone: Nairobi", "time_zone", "Nairobi"),
        ("TIME ZONE: Nairobi", "time_zone", "Nairobi"),
        ("Library Type: public", "library_type", "public"),
        ("Contact method: email", "contact_methods", "email"),
        ("Contact preferences: email", "contact_methods", "email"),
        ("About: I catalogue", "about_me", "I catalogue"),
        ("About yourself: I catalogue", "about_me", "I catalogue"),
        ("Language: English", "languages", "English"),
        ("Partner wishes (optional): a school librarian", "partner_wishes", "a school librarian"),
        ("About me: Note: I also teach", "about_me", "Note: I also teach"),
    ],
)
def test_label_variants(line: str, key: str, value: str) -> None:
    assert form.read_answers(line) == {key: value}


@pytest.mark.parametrize(
    "text",
    [
        "Dear team, I would like to apply: please send the form",
        "Nickname: Ann",
        "https://example.org/form",
        "Library type, one of: academic, public",
        "",
    ],
)
def test_other_lines_are_ignored(text: str) -> None:
    assert form.read_answers(text) == {}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Country: [e.g. Kenya]", ""),
        ("Country: [Kenya]", ""),
        ("Country: The country you work in, e.g. Kenya", ""),
        ("Country: [e.g. Kenya] Tanzania", "Tanzania"),
        ("Country: Kenya", "Kenya"),
    ],
)
def test_hints_left_from_the_blank_form_are_not_answers(text: str, value: str) -> None:
    assert form.read_answers(text) == {"country": value}


def test_a_later_hint_does_not_undo_an_answer() -> None:
    text = "Country: Kenya\n\nHow to answer:\n- Country: The country you work in, e.g. Kenya"
    assert form.read_answers(text) == {"country": "Kenya"}


def test_continuation_lines() -> None:
    text = (
        "Interests:\n  - cataloguing\n  - outreach\nLanguages: English\n"
        "Role: Archivist\nnot part of the role\n"
        "About me:\nFirst line\n  second line\n\nSecond paragraph\nCountry: Kenya\n"
    )
    assert form.read_answers(text) == {
        "role": "Archivist",
        "interests": "- cataloguing\n- outreach",
        "languages": "English",
        "country": "Kenya",
        "about_me": "First line\nsecond line\n\nSecond paragraph",
    }


def test_answers_on_the_line_after_an_empty_label() -> None:
    text = "Name:\nAmina Njoroge\nCountry:\nKenya\n\nsee you"
    assert form.read_answers(text) == {"name": "Amina Njoroge", "country": "Kenya"}


def test_about_me_stops_before_a_sign_off() -> None:
    text = "About me: I catalogue maps.\nThanks,\nAnn"
    assert form.read_answers(text) == {"about_me": "I catalogue maps."}


def test_control_characters_are_removed_when_reading() -> None:
    answers = form.read_answers("Name: Ann\x00 Lee\u202e\r\nCountry:\tKenya\r\n")
    assert answers == {"name": "Ann Lee", "country": "Kenya"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Name: Ann\nCountry: Kenya", True),
        ("Name:\nCountry:\nRole:", True),
        (form.render_answers({}), True),
        ("Name: Ann", False),
        ("Name:\nCountry:", False),
        ("APPLY", False),
        ("Hi! Can I join? My name: Ann", False),
    ],
)
def test_looks_like_form(text: str, expected: bool) -> None:
    assert form.looks_like_form(text) is expected


# --- checking the answers -----------------------------------------------------------------


def test_good_answers_make_a_profile(choices: form.Choices) -> None:
    profile, problems = form.validate(GOOD, choices)
    assert problems == []
    assert profile is not None
    assert profile.country == "KE"
    assert profile.time_zone == "Africa/Nairobi"
    assert profile.partner_wishes == ""


def test_every_problem_at_once_in_form_order(choices: form.Choices) -> None:
    answers = {
        "name": "",
        "country": "Atlantis",
        "role": "Archivist",
        "library_type": "bookshop",
        "interests": "",
        "languages": "English, Elvish, Dothraki",
        "time_zone": "IST",
        "contact_methods": "email",
        "contact_frequency": "daily",
        "about_me": "x" * 2001,
    }
    profile, problems = form.validate(answers, choices)
    assert profile is None
    assert [problem.key for problem in problems] == [
        "name", "country", "library_type", "career_stage", "interests", "languages",
        "time_zone", "contact_frequency", "about_me",
    ]  # fmt: skip
    by_key = {problem.key: problem for problem in problems}
    assert by_key["country"] == Problem("country", "Country", "Atlantis", "unknown-country")
    message = {key: said("_problems", "sentence", problem) for key, problem in by_key.items()}
    assert message["country"] == (
        '"Atlantis" is not a country we know: write its English name or two-letter code,'
        ' for example "Kenya" or "KE".'
    )
    assert '"Elvish" or "Dothraki"' in message["languages"]
    assert "English" not in message["languages"].split(":")[0]
    assert "academic, public" in message["library_type"]
    assert "weekly, fortnightly, monthly, as needed" in message["contact_frequency"]
    assert "2001" in message["about_me"]
    assert by_key["name"].value == ""
    assert len(by_key["about_me"].value) <= 60
    for sentence in message.values():
        # One friendly sentence, with what is wrong, how to fix it and an example.
        assert sentence.endswith(".")
        assert "for example" in sentence
        assert "\n" not in sentence


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"name": "A" * 101}, "name", "101 characters"),
        ({"role": "R" * 201}, "role", "201 characters"),
        ({"partner_wishes": "P" * 501}, "partner_wishes", "501 characters"),
        ({"interests": ", ".join(f"topic {n}" for n in range(21))}, "interests", "21 interests"),
        ({"interests": "x" * 81}, "interests", "too long"),
        ({"interests": " , ; "}, "interests", "missing"),
        ({"contact_methods": " , "}, "contact_methods", "missing"),
        ({"career_stage": "astronaut"}, "career_stage", "student, early career"),
        ({"time_zone": "Mars"}, "time_zone", "UTC"),
        ({"country": "   "}, "country", "missing"),
        ({"country": "[e.g. Kenya]"}, "country", "missing"),
    ],
)
def test_single_problems(choices: form.Choices, changes: dict, key: str, fragment: str) -> None:
    profile, problems = form.validate({**GOOD, **changes}, choices)
    assert profile is None
    assert [problem.key for problem in problems] == [key]
    assert fragment in said("_problems", "sentence", problems[0])


# Review L1: a partner reads Name and Contact methods in their introduction, where a link
# would pass for one the program sent.
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "Coordinator Team (Verify at https://evil.example/verify)"),
        ("name", "Ann www.evil.example"),
        ("name", "Ann (see evil.example/verify)"),
        ("name", "HTTP://EVIL.EXAMPLE"),
        ("contact_methods", "verify your account at https://evil.example/login"),
        ("contact_methods", "email, hxxps://evil.example"),
        ("contact_methods", "email, www.evil.example"),
        ("contact_methods", "Zoom (evil.example/join)"),
    ],
)
def test_a_web_address_in_name_or_contact_methods_is_a_problem(
    choices: form.Choices, key: str, value: str
) -> None:
    profile, problems = form.validate({**GOOD, key: value}, choices)
    assert profile is None
    assert [problem.key for problem in problems] == [key]
    message = said("_problems", "sentence", problems[0])
    assert "web address" in message
    assert "we do not pass links on to your partner" in message
    assert "for example" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "Dr. J. R. R. Smith"),
        ("name", "Ann O'Neil-Smith Jr."),
        ("contact_methods", "email, Zoom or WhatsApp"),
        ("contact_methods", "e-mail/phone (evenings)"),
    ],
)
def test_names_and_methods_without_links_are_kept(
    choices: form.Choices, key: str, value: str
) -> None:
    profile, problems = form.validate({**GOOD, key: value}, choices)
    assert problems == []
    assert profile is not None


@pytest.mark.parametrize(
    ("changes", "attribute", "value"),
    [
        ({"languages": "Tagalog/Filipino"}, "languages", ("Filipino",)),
        ({"languages": "English; Spanish and French"}, "languages",
         ("English", "Spanish", "French")),
        ({"languages": "English (fluent), French (basic, reading)"}, "languages",
         ("English", "French")),
        ({"languages": "english, ENGLISH, en"}, "languages", ("English",)),
        ({"interests": "Outreach; outreach, OUTREACH ,  maps "}, "interests", ("Outreach", "maps")),
        ({"contact_methods": "Zoom or Skype, email"}, "contact_methods", ("video call", "email")),
        ({"contact_methods": "  Carrier  PIGEON "}, "contact_methods", ("carrier pigeon",)),
        ({"partner_wishes": "none"}, "partner_wishes", ""),
        ({"partner_wishes": "Someone in Asia"}, "partner_wishes", "Someone in Asia"),
        ({"name": "Ann\x00 Lee\u202e"}, "name", "Ann Lee"),
        ({"name": "  Ann\n  Lee "}, "name", "Ann Lee"),
        ({"time_zone": "Perth", "country": "UK"}, "time_zone", "Europe/London"),
        ({"time_zone": "Perth", "country": "Australia"}, "time_zone", "Australia/Perth"),
        ({"time_zone": "IST", "country": "India"}, "time_zone", "Asia/Kolkata"),
        ({"time_zone": "utc+3"}, "time_zone", "UTC+03:00"),
        ({"country": "Deutschland"}, "country", "DE"),
        ({"library_type": "University"}, "library_type", "academic"),
        ({"career_stage": "new professional"}, "career_stage", "early career"),
        ({"contact_frequency": "every two weeks"}, "contact_frequency", "fortnightly"),
    ],
)  # fmt: skip
def test_answers_are_normalised(
    choices: form.Choices, changes: dict, attribute: str, value: object
) -> None:
    profile, problems = form.validate({**GOOD, **changes}, choices)
    assert problems == []
    assert getattr(profile, attribute) == value


def test_merge_fixes_only_the_wrong_lines(choices: form.Choices) -> None:
    first = form.read_answers(REPLY.replace("Country : Kenya", "Country : Atlantis"))
    first["time_zone"] = "IST"
    _, problems = form.validate(first, choices)
    assert [problem.key for problem in problems] == ["country", "time_zone"]
    fixed = form.merge_answers(first, form.read_answers("Country: Kenya\nTime zone: Nairobi\n"))
    profile, problems = form.validate(fixed, choices)
    assert problems == []
    assert profile is not None
    assert (profile.country, profile.time_zone) == ("KE", "Africa/Nairobi")
    assert profile.about_me.startswith("I look after")


def test_merge_keeps_old_answers_over_empty_new_ones() -> None:
    old = {"name": "Ann", "country": "Kenya"}
    assert form.merge_answers(old, {"name": "", "country": "Uganda", "role": ""}) == {
        "name": "Ann",
        "country": "Uganda",
        "role": "",
    }


def test_record_round_trip(choices: form.Choices) -> None:
    profile, _ = form.validate(form.read_answers(REPLY), choices)
    assert profile is not None
    record = profile.as_record()
    assert list(record) == KEYS
    assert record["interests"] == "cataloguing; outreach; Digital preservation; open access"
    assert record["country"] == "KE"
    answers = form.answers_from_record(record)
    assert answers["country"] == "Kenya"
    assert form.validate(answers, choices) == (profile, [])


def test_answers_from_record_tolerates_gaps() -> None:
    answers = form.answers_from_record({"name": "Ann", "country": None, "interests": 3})
    assert answers["name"] == "Ann"
    assert answers["country"] == ""
    assert answers["interests"] == "3"
    assert set(answers) == set(KEYS)


def test_render_blank_form() -> None:
    assert form.render_answers({}).split("\n") == [f"{entry.label}: " for entry in FIELDS]


def test_render_multi_line_values() -> None:
    text = form.render_answers({"name": "Ann", "about_me": "One\ntwo\n\nThree"})
    assert "Name: Ann\n" in text
    assert "About me: One\n  two\n\n  Three\nPartner wishes: " in text


# --- properties ---------------------------------------------------------------------------

_WORD_CHARACTERS = st.characters(
    categories=("L", "N"), exclude_characters="\u0345"
) | st.sampled_from(list(" ,.;!?'-()/&"))


def _line(min_size: int = 1) -> st.SearchStrategy[str]:
    return (
        st.text(_WORD_CHARACTERS, min_size=min_size, max_size=30)
        .map(lambda text: unicodedata.normalize("NFC", " ".join(text.split())))
        .filter(lambda text: len(text) >= min_size)
    )


_ABOUT = st.lists(st.tuples(_line(), st.sampled_from(["\n", "\n\n"])), min_size=1, max_size=5).map(
    lambda parts: "".join(line + gap for line, gap in parts).strip()
)
_NORMALISED = st.fixed_dictionaries(
    {},
    optional={
        **{key: st.one_of(st.just(""), _line()) for key in KEYS if key != "about_me"},
        "about_me": st.one_of(st.just(""), _ABOUT),
        "role": st.lists(_line(), min_size=1, max_size=3).map("\n".join),
    },
)


@given(_NORMALISED)
def test_render_then_read_gives_the_answers_back(answers: dict[str, str]) -> None:
    rendered = form.render_answers(answers)
    assert form.read_answers(rendered) == {key: answers.get(key, "") for key in KEYS}


@given(st.dictionaries(st.sampled_from(KEYS), st.text(max_size=200)))
def test_render_then_read_is_stable_for_any_text(answers: dict[str, str]) -> None:
    once = form.read_answers(form.render_answers(answers))
    assert form.read_answers(form.render_answers(once)) == once


# No deadline: the first answers build the country, language and city tables.
@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(KEYS), st.text(max_size=10)),
        st.one_of(st.text(max_size=300), st.sampled_from(list(GOOD.values()))),
    )
)
def test_validate_never_raises(answers: dict[str, str]) -> None:
    choices = form.load_choices(RULES)
    profile, problems = form.validate(answers, choices)
    assert (profile is None) == bool(problems)
    assert [p.key for p in problems] == [key for key in KEYS if key in {p.key for p in problems}]
    if profile is not None:
        for value in profile.as_record().values():
            assert not any(unicodedata.category(ch) == "Cc" and ch != "\n" for ch in value)


@given(st.text(max_size=500))
def test_reading_never_raises(text: str) -> None:
    answers = form.read_answers(text)
    assert set(answers) <= set(KEYS)
    form.looks_like_form(text)
