"""The peer network: who chose to be found by their peers (NETWORK YES), the address each
shares, and the search behind PEERS.

It stores and reads; it never decides who may join or search (that is the conversation's:
a participant, proven, listed) and never writes to anyone. Leaving, becoming unreachable
and erasure unlist a person through `unlist`; completing a term does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from mailflow.model import participants
from mailflow.model.search import containing
from mailflow.store import iso

LIMIT = 10  # peers in one answer to PEERS


@dataclass(frozen=True)
class Listing:
    shared_address: str
    listed_at: str


@dataclass(frozen=True)
class Peer:
    """A listed person as their peers see them: nothing more than this leaves the store."""

    name: str
    country: str  # ISO 3166-1 alpha-2
    library_type: str
    interests: tuple[str, ...]
    address: str  # the one they chose to share


def list_person(
    db: sqlite_utils.Database, participant_id: int, shared_address: str, now: datetime
) -> None:
    """List them, or change the address they share (their listing keeps its date)."""
    db.execute(
        "INSERT INTO network (participant_id, shared_address, listed_at) VALUES (?, ?, ?)"
        " ON CONFLICT (participant_id) DO UPDATE SET shared_address = excluded.shared_address",
        [participant_id, shared_address, iso(now)],
    )


def unlist(db: sqlite_utils.Database, participant_id: int) -> bool:
    """Take them out of the network; was anyone taken out?"""
    cursor = db.execute("DELETE FROM network WHERE participant_id = ?", [participant_id])
    return cursor.rowcount > 0


def listing(db: sqlite_utils.Database, participant_id: int) -> Listing | None:
    row = db.execute(
        "SELECT shared_address, listed_at FROM network WHERE participant_id = ?",
        [participant_id],
    ).fetchone()
    return Listing(*row) if row else None


def is_listed(db: sqlite_utils.Database, participant_id: int) -> bool:
    return listing(db, participant_id) is not None


def phrase(interest: str) -> re.Pattern:
    """The interest as whole words, in any case, with any spaces between them: "open
    access" is found in "Open  Access" and "open access week", "data" not in "metadata"."""
    words = interest.split()
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", re.IGNORECASE)


def search(
    db: sqlite_utils.Database,
    interest: str,
    *,
    asker: dict,
    country: str | None = None,
    limit: int = LIMIT,
) -> list[Peer]:
    """Up to `limit` listed peers, the asker not among them, one of whose interests holds
    `interest` as whole words (in `country`, when one is given).

    Peers in another country than the asker's come first: a peer abroad is what the
    program is for. Among them, and then among the asker's compatriots, the most recently
    listed come first: a new listing is a recently confirmed address and current interests,
    likelier to be read and answered, and newcomers are found at once rather than always
    behind the first to join, which also spreads the mail a common interest brings.

    SQLite narrows the rows with LIKE (ASCII letters in any case); whole words and other
    letters' case are checked here, reading rows only until `limit` are found."""
    pattern = phrase(interest)
    where = ["network.participant_id != ?", "participants.email NOT LIKE ?"]
    values: list = [asker["id"], f"%@{participants.ERASED_DOMAIN}"]
    for word in interest.split():
        if word.isascii():  # LIKE folds the case of ASCII letters only
            where.append("participants.interests LIKE ? ESCAPE '\\'")
            values.append(containing(word))
    if country:
        where.append("participants.country = ?")
        values.append(country)
    rows = db.execute(
        "SELECT participants.name, participants.country, participants.library_type,"
        " participants.interests, network.shared_address FROM network"
        " JOIN participants ON participants.id = network.participant_id"
        f" WHERE {' AND '.join(where)}"
        " ORDER BY participants.country = ?, network.listed_at DESC, network.participant_id",
        [*values, asker["country"]],
    )
    found: list[Peer] = []
    for name, code, library_type, interests, address in rows:
        items = tuple(participants.split(interests))
        if any(pattern.search(item) for item in items):
            found.append(Peer(name, code, library_type, items, address))
            if len(found) == limit:
                break
    return found
