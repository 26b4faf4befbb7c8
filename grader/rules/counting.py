"""Counting layer calls for rules, and saying what was counted and why.

Rules that ask for something (``separable_conv_used``, ``required_layers``, ...) count calls that
provably influence the output; rules that forbid something count every call that may. Calls
left out are reported with their reason, grouped, so a student reads what the grader saw:
"Not counted: `sep_a`, `sep_b` (SeparableConv2D): 1x1, no depthwise spatial filter."
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grader.graph_effect import Effect

from .context import CallFacts


@dataclass(frozen=True)
class Exclusion:
    """A call a rule does not count, and why (a phrase: "1x1, no depthwise spatial filter")."""

    call: CallFacts
    reason: str


def by_layer(calls: Sequence[CallFacts]) -> str:
    """``"`sep` (4 calls), `sep_2`"``: the layers of `calls` in order, with their call counts.

    A layer appears with the number of its calls among `calls`; "(call 2)" when only one of
    several calls is listed.
    """
    counts: dict[str, list[CallFacts]] = {}
    for call in calls:
        counts.setdefault(call.name, []).append(call)
    parts = []
    for name, listed in counts.items():
        if len(listed) > 1:
            parts.append(f"`{name}` ({len(listed)} calls)")
        elif listed[0].calls > 1:
            parts.append(f"`{name}` (call {listed[0].index} of {listed[0].calls})")
        else:
            parts.append(f"`{name}`")
    return ", ".join(parts)


def counted_phrase(calls: Sequence[CallFacts], limit: int = 5) -> str:
    """The counted calls as a message lists them, naming at most `limit` layers.

    ``"`sep` called 4 times"`` makes the counting by call visible.
    """
    names: dict[str, int] = {}
    for call in calls:
        names[call.name] = names.get(call.name, 0) + 1
    parts = [
        f"`{name}`" if times == 1 else f"`{name}` called {times} times"
        for name, times in list(names.items())[:limit]
    ]
    more = len(names) - limit
    if more > 0:
        parts.append(f"{more} more")
    return ", ".join(parts)


def effect_exclusion(call: CallFacts) -> Exclusion | None:
    """Why a call that is not proven to influence the output is not counted; None if it is."""
    if call.effect is Effect.YES:
        return None
    if call.effect is Effect.NO:
        return Exclusion(call, f"cannot change the output: {call.why}")
    return Exclusion(call, f"the grader cannot tell whether it changes the output: {call.why}")


def describe_exclusions(exclusions: Sequence[Exclusion]) -> str:
    """``" Not counted: `a`, `b` (SeparableConv2D): 1x1, ...; `c` (Conv2D): ..."``, or ``""``.

    Calls sharing a reason and a class are listed together.
    """
    if not exclusions:
        return ""
    groups: dict[tuple[str, str], list[CallFacts]] = {}
    for exclusion in exclusions:
        groups.setdefault((exclusion.call.class_name, exclusion.reason), []).append(exclusion.call)
    parts = [f"{by_layer(calls)} ({cls}): {reason}" for (cls, reason), calls in groups.items()]
    return " Not counted: " + "; ".join(parts) + "."


def undecided(exclusions: Sequence[Exclusion]) -> list[CallFacts]:
    """The excluded calls whose effect the grader cannot tell (``MAYBE``)."""
    return [e.call for e in exclusions if e.call.effect is Effect.MAYBE]


UNDECIDED_HINT = (
    "The grader counts only layers that provably change the output. Remove what makes a path "
    "constant (a zero constraint, a frozen zero-initialized layer, a multiplication by a "
    "constant), or the branch behind it, and build the required layers on the main path."
)
DEAD_HINT = (
    "Layers behind a path that cannot change the output (multiplied by zero, scaled by 0, not "
    "connected to the output) are not counted: remove that path or connect the layers to the "
    "main path."
)


def exclusion_hint(exclusions: Sequence[Exclusion]) -> str | None:
    """A hint about calls left out for their effect on the output, if any were."""
    if undecided(exclusions):
        return UNDECIDED_HINT
    if any(e.call.effect is Effect.NO for e in exclusions):
        return DEAD_HINT
    return None
