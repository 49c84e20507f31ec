"""Languages as people write them (English names, ISO 639 codes, native names such as
"Español" or "中文"), turned into one plain English name each ("Spanish", "Chinese").

Canonical names come from pycountry, made short and plain; it must never guess, so what
it does not know gives None and the person is asked.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pycountry

from mailflow.read.countries import fold_name

# Plainer English names than ISO's for the languages people will write most
# ("Modern Greek (1453-)", "Panjabi", "Pushto"), keyed by ISO 639-3 code.
PLAIN_NAMES: dict[str, str] = {
    "ell": "Greek",
    "pan": "Punjabi",
    "pus": "Pashto",
    "kir": "Kyrgyz",
    "uig": "Uyghur",
    "div": "Dhivehi",
    "ori": "Odia",
    "hat": "Haitian Creole",
    "kal": "Greenlandic",
    "tgl": "Filipino",
    "nya": "Chichewa",
    "sot": "Sesotho",
    "ton": "Tongan",
    "ina": "Interlingua",
}

# Individual languages that belong under a macrolanguage for matching purposes: someone
# writing "Mandarin" and someone writing "Chinese" share a language.
SAME_AS: dict[str, str] = {
    "cmn": "zho",
    "yue": "zho",
    "arb": "ara",
    "swh": "swa",
    "zsm": "msa",
    "pes": "fas",
    "npi": "nep",
    "lvs": "lav",
    "ekk": "est",
    "uzn": "uzb",
    "khk": "mon",
    "azj": "aze",
    "ory": "ori",
    "plt": "mlg",
    "als": "sqi",
    "fil": "tgl",
    "nob": "nor",
    "nno": "nor",
}

# Names pycountry does not carry: native names of the most spoken languages and common
# English variants, keyed by ISO 639-3 code. Both spellings where two are common.
OTHER_NAMES: dict[str, tuple[str, ...]] = {
    "eng": ("English", "Inglés", "Anglais", "Englisch", "British English", "American English"),
    "spa": ("Español", "Castellano", "Castilian"),
    "fra": ("Français", "Francais"),
    "deu": ("Deutsch",),
    "por": ("Português", "Brazilian Portuguese", "Português do Brasil"),
    "ita": ("Italiano",),
    "nld": ("Nederlands", "Flemish", "Vlaams"),
    "rus": ("Русский", "Русский язык", "Russkiy"),
    "ukr": ("Українська",),
    "pol": ("Polski",),
    "ces": ("Čeština", "Czech"),
    "slk": ("Slovenčina",),
    "hun": ("Magyar",),
    "ron": ("Română", "Romanian", "Moldovan"),
    "bul": ("Български",),
    "hrv": ("Hrvatski",),
    "srp": ("Српски", "Srpski"),
    "slv": ("Slovenščina",),
    "ell": ("Ελληνικά", "Greek"),
    "tur": ("Türkçe",),
    "swe": ("Svenska",),
    "nor": ("Norsk", "Bokmål", "Nynorsk"),
    "dan": ("Dansk",),
    "fin": ("Suomi",),
    "isl": ("Íslenska",),
    "est": ("Eesti",),
    "lav": ("Latviešu",),
    "lit": ("Lietuvių",),
    "cat": ("Català", "Valencian"),
    "eus": ("Euskara",),
    "glg": ("Galego",),
    "gle": ("Gaeilge", "Irish Gaelic"),
    "cym": ("Cymraeg",),
    "zho": (
        "中文",
        "汉语",
        "漢語",
        "普通话",
        "普通話",
        "国语",
        "廣東話",
        "广东话",
        "粤语",
        "Mandarin",
        "Cantonese",
        "Putonghua",
        "Zhongwen",
    ),
    "jpn": ("日本語", "Nihongo"),
    "kor": ("한국어", "조선말"),
    "ara": ("العربية", "عربي", "Arabiya"),
    "heb": ("עברית", "Ivrit"),
    "fas": ("فارسی", "Farsi", "Dari"),
    "urd": ("اردو",),
    "hin": ("हिन्दी", "हिंदी"),
    "ben": ("বাংলা", "Bangla"),
    "pan": ("ਪੰਜਾਬੀ", "Panjabi"),
    "guj": ("ગુજરાતી",),
    "mar": ("मराठी",),
    "tam": ("தமிழ்",),
    "tel": ("తెలుగు",),
    "kan": ("ಕನ್ನಡ",),
    "mal": ("മലയാളം",),
    "sin": ("සිංහල", "Sinhalese"),
    "nep": ("नेपाली",),
    "tha": ("ไทย", "ภาษาไทย"),
    "vie": ("Tiếng Việt",),
    "ind": ("Bahasa Indonesia",),
    "msa": ("Bahasa Melayu", "Bahasa Malaysia", "Melayu"),
    "tgl": ("Tagalog", "Wikang Filipino", "Pilipino"),
    "swa": ("Kiswahili",),
    "amh": ("አማርኛ",),
    "hau": ("Hausa",),
    "yor": ("Yorùbá",),
    "ibo": ("Igbo", "Asụsụ Igbo"),
    "zul": ("isiZulu",),
    "xho": ("isiXhosa",),
    "afr": ("Afrikaans",),
    "som": ("Soomaali",),
    "mya": ("မြန်မာ", "Myanmar"),
    "khm": ("ខ្មែរ",),
    "kat": ("ქართული",),
    "hye": ("Հայերեն",),
    "aze": ("Azərbaycan",),
    "kaz": ("Қазақ",),
    "mri": ("Te Reo Māori", "Te Reo", "Maori"),
    "ase": ("ASL",),
    "bfi": ("BSL",),
    "asf": ("Australian Sign Language",),
}

_WELL_KNOWN = frozenset(SAME_AS) | frozenset(OTHER_NAMES)

# Words around a language that say how well, not which ("fluent English", "French (basic)").
_LEVELS = re.compile(
    r"\b(?:native|mother tongue|first language|fluent|fluently|basic|beginner|intermediate|"
    r"advanced|conversational|some|a little|working|good|reading|written|spoken|only|"
    r"proficient|professional)\b|\([^)]*\)|\blanguage\b"
)


def _plain(language: Any) -> str:
    """A short English name: "Malay (macrolanguage)" -> "Malay", "Dutch; Flemish" -> "Dutch"."""
    code = language.alpha_3
    if code in PLAIN_NAMES:
        return PLAIN_NAMES[code]
    name = language.name.split(";")[0]
    if hasattr(language, "alpha_2"):
        name = re.sub(r"\s*\([^)]*\)", "", name)
    return name.replace(" (macrolanguage)", "").strip()


@cache
def _index() -> dict[str, str]:
    """Folded name or code -> canonical English name, built once."""
    by_code = {language.alpha_3: language for language in pycountry.languages}
    canonical: dict[str, str] = {}

    def target(code: str) -> str:
        return _plain(by_code[SAME_AS.get(code, code)])

    index: dict[str, str] = {}
    # The languages with a two-letter code first: they are the ones people mean, and win
    # any name shared with an obscure one.
    major = [lang for lang in pycountry.languages if hasattr(lang, "alpha_2")]
    minor = [lang for lang in pycountry.languages if not hasattr(lang, "alpha_2")]
    for language in [*major, *minor]:
        if getattr(language, "scope", "") == "S":  # "Undetermined", "Multiple languages"
            continue
        name = target(language.alpha_3)
        canonical[language.alpha_3] = name
        spellings = [
            language.name,
            *language.name.split(";"),
            re.sub(r"\s*\([^)]*\)", "", language.name),
            getattr(language, "common_name", ""),
            getattr(language, "inverted_name", ""),
        ]
        if hasattr(language, "alpha_2") or language.alpha_3 in _WELL_KNOWN:
            # Three-letter codes only for the languages above: ISO 639-3 also has "the",
            # "and" and "for" as codes of small languages nobody will mean.
            spellings += [
                getattr(language, "alpha_2", ""),
                language.alpha_3,
                getattr(language, "bibliographic", ""),
            ]
        for spelling in spellings:
            key = fold_name(spelling or "")
            if key:
                index.setdefault(key, name)
    for code, names in OTHER_NAMES.items():
        for spelling in names:
            index[fold_name(spelling)] = target(code)
    for name in set(canonical.values()):  # every canonical name reads back as itself
        index.setdefault(fold_name(name), name)
    return index


def known_names() -> dict[str, str]:
    """Every folded language name and code we read -> plain English name."""
    return _index()


def normalise_language(text: str) -> str | None:
    """Plain English name of the language someone wrote, or None."""
    if not isinstance(text, str) or len(text) > 100:
        return None
    index = _index()
    key = fold_name(text)
    if key in index:
        return index[key]
    bare = fold_name(_LEVELS.sub(" ", text.casefold()))
    return index.get(bare) if bare else None
