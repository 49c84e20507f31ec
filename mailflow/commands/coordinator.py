"""Coordinators' commands. Those that change data preview first and run after CONFIRM."""

from __future__ import annotations

from mailflow.commands import command, listing
from mailflow.conversation import Turn


@command("HELP", audience="coordinator", summary="this list of coordinators' commands")
def help_(turn: Turn, arguments: str) -> str:
    lines = [f"{entry.usage}: {entry.summary}" for entry in listing("coordinator")]
    return "\n".join(lines)


def _match_preview(turn: Turn, arguments: str) -> str:
    from mailflow import matchmaker  # scipy loads only when a coordinator matches

    try:
        plan = matchmaker.plan(turn.program, turn.now)
    except ValueError as mistake:  # rules/matching.toml or regions.toml written wrongly
        return f"The matching rules need fixing before a round can be matched: {mistake}"
    return matchmaker.preview_text(turn.program, plan)


@command(
    "MATCH",
    audience="coordinator",
    changes=True,
    preview=_match_preview,
    summary="preview the matching of the round; reply CONFIRM to carry it out",
)
def match(turn: Turn, arguments: str) -> str:
    from mailflow import matchmaker

    plan = matchmaker.plan(turn.program, turn.now)
    return matchmaker.carry_out(turn.program, plan, turn.now, made_by=turn.sender)
