"""The people the tests write as: round 1's eight librarians, the two Kenyans round 2 leaves
waiting, the coordinators, and what the store says of them.

A support module, not a test module: test modules import from here, never from each other.
It reads the store with a connection of its own and never writes to it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

HEADER = (
    "email,name,country,role,library_type,career_stage,interests,languages,time_zone,"
    "contact_methods,contact_frequency,about_me,partner_wishes"
)
PEOPLE = [
    (
        "ann@uni.example.edu",
        "Ann Okafor",
        "Nigeria",
        "academic",
        "palaeography; open access",
        "Lagos",
    ),
    ("bo@lib.example.se", "Bo Lind", "Sweden", "public", "makerspaces; open access", "Stockholm"),
    ("chen@lib.example.cn", "Chen Jing", "China", "academic", "palaeography; metadata", "Shanghai"),
    ("dee@lib.example.au", "Dee Brown", "Australia", "public", "makerspaces; outreach", "Sydney"),
    ("eli@lib.example.br", "Eli Costa", "Brazil", "school", "reading; outreach", "Sao Paulo"),
    ("fay@lib.example.ca", "Fay Roy", "Canada", "school", "reading; metadata", "Toronto"),
    ("gus@lib.example.de", "Gus Weber", "Germany", "special", "law; archives", "Berlin"),
    ("hana@lib.example.jp", "Hana Sato", "Japan", "special", "law; archives", "Tokyo"),
]
ANN, CHEN = "ann@uni.example.edu", "chen@lib.example.cn"
BO, DEE = "bo@lib.example.se", "dee@lib.example.au"
COORDINATOR = "coord@program.example.org"
KENYA = "kc@program.example.org"  # coordinates Kenya and Sweden in the prepared program
IVO = "ivo@lib.example.ke"
# Round 2: two people from one country, who cannot be paired with each other and wait.
WAITING = [
    ("ivo@lib.example.ke", "Ivo Mwangi", "Kenya", "academic", "palaeography; archives", "Nairobi"),
    ("jo@lib.example.ke", "Jo Otieno", "Kenya", "public", "makerspaces", "Nairobi"),
]


def roster(folder: Path, people=PEOPLE) -> Path:
    """`people` as the CSV `mailflow import` reads, written to `folder`/round.csv."""
    path = folder / "round.csv"
    rows = [HEADER] + [
        f'{email},{name},{country},Librarian,{kind},early career,"{interests}",English,{zone},'
        f"email,monthly,I work in a library.,"
        for email, name, country, kind, interests, zone in people
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def status(home: Path, address: str) -> str | None:
    with sqlite3.connect(home / "mailflow.db") as db:
        row = db.execute("SELECT status FROM participants WHERE email = ?", [address]).fetchone()
    return row[0] if row else None


def partnerships(home: Path) -> list[tuple[str, str, str]]:
    """(state, first member's email, second member's email) of every partnership."""
    with sqlite3.connect(home / "mailflow.db") as db:
        return db.execute(
            "SELECT p.state, a.email, b.email FROM partnerships p"
            " LEFT JOIN participants a ON a.id = p.member_a"
            " LEFT JOIN participants b ON b.id = p.member_b ORDER BY p.id"
        ).fetchall()


def audit(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "mailflow.db") as db:
        return db.execute(
            "SELECT sender, command, proof, changed FROM audit ORDER BY id"
        ).fetchall()
