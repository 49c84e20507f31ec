"""The peer network by mail, which outlasts the partnership: NETWORK YES lists a participant
(past or present) with their name, country, library type, interests and the address they
choose to share; NETWORK NO takes them out; PEERS finds listed peers by interest.

Listing and unlisting are done in the person's name, so they are done at once only for a
proven message; otherwise a `change-confirm` asks the address first (`ask_first`). PEERS
changes nothing and answers only to the From address, so it needs no proof: a forger's
search reaches the listed person it names, never the forger. Names and addresses go only
to listed people; a stranger is answered in fixed wording, at most once a day, and an
unlisted participant is told how to join. Leaving, bouncing and erasure unlist a person
(`app.membership`, `app.bounces`); completing a term does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailflow.conversation.commands import command
from mailflow.conversation.participant.commands import (
    CONFIRMED_CHANGES,
    ask_first,
    sender_record,
)
from mailflow.conversation.turn import Turn, answer_stranger_once
from mailflow.model import network, participants
from mailflow.read import parse
from mailflow.read.countries import country_name, normalise_country
from mailflow.read.form import MAX_ITEM_LENGTH

LISTED = "network-listed"
UNLISTED = "network-unlisted"
NOT_LISTED = "network-not-listed"
FOUND = "peers-found"
NONE_FOUND = "peers-none"

LONGEST_ADDRESS = 320  # RFC 3696 (as corrected): 64 before the @, 255 after it
LONGEST_SEARCH = 200  # an interest (80 characters at most, as in the form) and a country
COUNTRY_WORDS = 3  # "United States of America" is four, but "United States" reads as well
QUOTES = '"“”„«»'


# --- NETWORK YES / NO --------------------------------------------------------------------


@command("NETWORK YES", usage="NETWORK YES [address to share]")
def network_yes(turn: Turn, arguments: str) -> str:
    me = sender_record(turn)
    if me is None:
        return answer_stranger_once(turn, NOT_LISTED)
    shared = turn.sender
    if arguments.strip():
        shared, problem = _shareable(turn, me, arguments)
        if problem:
            turn.answer(LISTED, {"state": "bad-address", "problem": problem, "written": shared})
            return f"address-{problem}"
    return _list(turn, me, shared, proven=turn.proven)


def _shareable(turn: Turn, me: dict, written: str) -> tuple[str, str | None]:
    """(the address written, what is wrong with sharing it, if anything): it must read as
    one, not be the program's, and not be another participant's or an erased one."""
    written = written.strip()
    if len(written) > LONGEST_ADDRESS:
        return written[:80], "unreadable"
    address = parse.address(written.strip("<>"))
    if address is None:
        return written[:80], "unreadable"
    db = turn.program.db
    if address.rpartition("@")[2] == turn.program.config.domain:
        return address, "ours"
    owner = participants.find(db, address)
    if (owner is not None and owner["id"] != me["id"]) or participants.is_erased(db, address):
        return address, "someone-else"
    return address, None


def _list(turn: Turn, me: dict | None, shared: str, *, proven: bool) -> str:
    if me is None:
        return answer_stranger_once(turn, NOT_LISTED)
    db = turn.program.db
    current = network.listing(db, me["id"])
    if current is not None and current.shared_address == shared:
        turn.answer(LISTED, _listed_context(me, shared, "already"))
        return "already-listed"
    if not proven:
        return ask_first(
            turn,
            "network-yes",
            {"shared": shared, "own": shared == me["email"]},
            {"address": shared},
        )
    network.list_person(db, me["id"], shared, turn.now)
    turn.answer(LISTED, _listed_context(me, shared, "changed" if current else "listed"))
    return "listed"


def _listed_context(me: dict, shared: str, state: str) -> dict:
    return {"state": state, "peer": _as_listed(me, shared), "own": shared == me["email"]}


def _confirmed_yes(turn: Turn, me: dict | None, payload: dict) -> str:
    """The reply YES to a NETWORK YES: the address is checked again, as it may have become
    someone else's since."""
    if me is None:
        return answer_stranger_once(turn, NOT_LISTED)
    shared = payload.get("address") or me["email"]
    if shared != me["email"]:
        shared, problem = _shareable(turn, me, shared)
        if problem:
            turn.answer(LISTED, {"state": "bad-address", "problem": problem, "written": shared})
            return f"address-{problem}"
    return _list(turn, me, shared, proven=True)


@command("NETWORK NO")
def network_no(turn: Turn, arguments: str) -> str:
    me = sender_record(turn)
    if me is None:
        return answer_stranger_once(turn, NOT_LISTED)
    return _unlist(turn, me, proven=turn.proven)


def _unlist(turn: Turn, me: dict | None, *, proven: bool) -> str:
    if me is None:
        return answer_stranger_once(turn, NOT_LISTED)
    db = turn.program.db
    if not network.is_listed(db, me["id"]):
        turn.answer(UNLISTED, {"was_listed": False})
        return "not-listed"
    if not proven:
        return ask_first(turn, "network-no", {}, {})
    network.unlist(db, me["id"])
    turn.answer(UNLISTED, {"was_listed": True})
    return "unlisted"


def _confirmed_no(turn: Turn, me: dict | None, payload: dict) -> str:
    return _unlist(turn, me, proven=True)


CONFIRMED_CHANGES["network-yes"] = _confirmed_yes
CONFIRMED_CHANGES["network-no"] = _confirmed_no


# --- PEERS -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """What PEERS asks for, as written: the interest, and the country's code and the words
    it was read from (None when no country was written, or it could not be read)."""

    interest: str
    country: str | None = None
    country_written: str = ""
    trailing: bool = False  # the country was read from the last words, not set apart


def read_search(text: str) -> Search:
    """`interest [country]`. An interest may be several words, so the country is what its
    last one to three words read as (a name in any language, or an ISO code: "oral history
    Kenya", "open access South Africa", "makerspaces DE"; an "in" before it is dropped),
    as long as a word is left for the interest; the answer names the words read so. Two
    forms set the country apart where that reading would be wrong ("Latin America" is read
    as Latin in the United States): a comma ("library IT, Italy"; no interest holds one, as
    the form splits interests at commas) and quotes around the interest ("library IT")."""
    text = " ".join(text.split())
    if text and text[0] in QUOTES:
        end = next((at for at in range(1, len(text)) if text[at] in QUOTES), None)
        if end is not None:
            return _apart(text[1:end], text[end + 1 :])
    if "," in text:
        interest, _, country = text.rpartition(",")
        return _apart(interest.replace(",", " "), country)
    words = text.split()
    for size in range(min(COUNTRY_WORDS, len(words) - 1), 0, -1):
        written = " ".join(words[-size:])
        code = normalise_country(written)
        if code is not None:
            interest = words[:-size]
            if len(interest) > 1 and interest[-1].lower() == "in":  # "oral history in Kenya"
                interest.pop()
            return Search(" ".join(interest), code, written, trailing=True)
    return Search(text)


def _apart(interest: str, country: str) -> Search:
    country = country.strip(" .")
    return Search(" ".join(interest.split()), normalise_country(country), country)


@command("PEERS", usage="PEERS interest [country]")
def peers(turn: Turn, arguments: str) -> str:
    me = sender_record(turn)
    if me is None:
        return answer_stranger_once(turn, NOT_LISTED)
    db = turn.program.db
    if not network.is_listed(db, me["id"]):
        turn.answer(NOT_LISTED, {"known": True})
        return "not-listed"
    # One bounded search a message, whatever is written: what is longer than an interest
    # and a country is not read (it can be in no one's interests), and the limits on
    # answers bound the messages.
    if len(arguments) <= LONGEST_SEARCH:
        search = read_search(arguments)
    else:
        search = Search(arguments[:LONGEST_SEARCH])
    asked = {
        "interest": search.interest[:MAX_ITEM_LENGTH],
        "country": country_name(search.country) if search.country else None,
        "country_written": search.country_written[:MAX_ITEM_LENGTH],
        "trailing": search.trailing,
    }
    if not search.interest:
        turn.answer(NONE_FOUND, {"state": "no-interest", **asked})
        return "no-interest"
    if search.country_written and search.country is None:
        turn.answer(NONE_FOUND, {"state": "unknown-country", **asked})
        return "unknown-country"
    found = []
    if len(search.interest) <= MAX_ITEM_LENGTH:  # longer, it can be in no one's interests
        found = network.search(
            db, search.interest, asker=me, country=search.country, limit=network.LIMIT + 1
        )
    if not found:
        turn.answer(NONE_FOUND, {"state": "none", **asked})
        return "none-found"
    turn.answer(
        FOUND,
        {
            **asked,
            "peers": [_seen(peer) for peer in found[: network.LIMIT]],
            "limit": network.LIMIT,
            "more": len(found) > network.LIMIT,
        },
    )
    return f"found-{min(len(found), network.LIMIT)}"


def _as_listed(me: dict, shared: str) -> dict:
    """The sender as listed peers see them."""
    return _seen(
        network.Peer(
            me["name"],
            me["country"],
            me["library_type"],
            tuple(participants.split(me["interests"])),
            shared,
        )
    )


def _seen(peer: network.Peer) -> dict:
    """A peer as the template shows them."""
    return {
        "name": peer.name,
        "country": country_name(peer.country),
        "library_type": peer.library_type,
        "interests": list(peer.interests),
        "address": peer.address,
    }
