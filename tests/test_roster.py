"""`mailflow import` and `mailflow export`: bulk applicants in, participants out, as CSV."""

from __future__ import annotations

import csv
import io

from tests.conftest import command, run_cli

HEADER = (
    "email,name,country,role,library_type,career_stage,interests,languages,time_zone,"
    "contact_methods,contact_frequency,about_me,partner_wishes"
)
GOOD = (
    "ann@uni.example.edu,Ann Okafor,USA,Reference librarian,academic,early career,"
    '"open access; research data",English,New York,email,fortnightly,Research help desk.,'
)
BAD_COUNTRY = (
    "li@lib.example.cn,Li Wei,Atlantis,Cataloguer,public,mid career,cataloguing,"
    "Chinese,Shanghai,email,monthly,I catalogue.,"
)
NO_EMAIL = ",Nobody,Kenya,Librarian,public,student,reading,English,Nairobi,email,weekly,Hi.,"


def test_import_reports_every_bad_row_and_saves_the_good_ones(home, tmp_path):
    path = tmp_path / "applicants.csv"
    path.write_text("\n".join([HEADER, GOOD, BAD_COUNTRY, NO_EMAIL]) + "\n", encoding="utf-8")
    result = run_cli(home, "import", str(path))
    out = result.stdout.decode()
    assert result.returncode == 1, result.stderr
    assert "1 added, 0 updated, 2 rows with problems (round: Round 1)" in out
    assert 'row 3 (li@lib.example.cn): Country: "Atlantis" is not a country' in out
    assert "row 4 (no email): the email address is missing or invalid" in out
    exported = list(csv.DictReader(io.StringIO(run_cli(home, "export").stdout.decode())))
    assert [(r["email"], r["country"], r["time_zone"], r["status"]) for r in exported] == [
        ("ann@uni.example.edu", "United States", "America/New_York", "applied")
    ]
    assert not (home / "outbox" / "new").exists()  # the operator's data: no mail


def test_import_updates_never_duplicates_and_columns_may_come_in_any_order(home, tmp_path):
    first = tmp_path / "first.csv"
    first.write_text(HEADER + "\n" + GOOD + "\n", encoding="utf-8")
    command(home, "import", str(first))
    second = tmp_path / "second.csv"
    second.write_text(
        "name,email,country,role,library_type,career_stage,interests,languages,time_zone,"
        "contact_methods,contact_frequency,about_me\n"
        "Ann O.,ANN@uni.example.edu,Nigeria,Archivist,academic,senior,archives,English,"
        "Lagos,phone,monthly,Archives now.\n",
        encoding="utf-8",
    )
    result = command(home, "import", str(second))
    assert "0 added, 1 updated, 0 rows with problems" in result
    exported = list(csv.DictReader(io.StringIO(command(home, "export"))))
    assert [(r["email"], r["name"], r["country"]) for r in exported] == [
        ("ann@uni.example.edu", "Ann O.", "Nigeria")
    ]


def test_import_without_a_header_uses_the_contract_order(home, tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text(GOOD + "\n", encoding="utf-8")
    command(home, "import", str(path))
    command(home, "export", "-o", str(tmp_path / "out.csv"))
    rows = list(csv.reader((tmp_path / "out.csv").open(encoding="utf-8")))
    assert rows[0][-2:] == ["status", "partner_email"]
    assert rows[1][0] == "ann@uni.example.edu"
