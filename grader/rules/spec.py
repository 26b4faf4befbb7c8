"""The validated form of one rule of a rule set (`RuleSpec`), apart from the parsing in `schema`.

Its own module so that the registry (whose rule functions take a `RuleSpec`) and the schema
(which builds them) both depend on it, not on each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .registry import RULES

#: Points a rule is worth when its rule set gives none.
DEFAULT_POINTS = 1.0


@dataclass(frozen=True)
class RuleSpec:
    """One validated rule of a rule set.

    Attributes:
        id: the rule id (a key of the registry).
        params: the rule's parameters, validated, defaults filled in.
        points: points the rule is worth.
        name: the rule's name; the id unless the rule set gave one.
        index: position in the rule set's ``rules`` list.
    """

    id: str
    params: Mapping[str, Any]
    points: float = DEFAULT_POINTS
    name: str = ""
    index: int = 0
    named: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)

    @property
    def phase(self) -> str:
        """``"static"`` or ``"training"``: when the rule can be decided."""
        return RULES[self.id].phase

    def to_dict(self) -> dict[str, Any]:
        """The rule as written in a rule set: id, name when given, parameters, points."""
        data: dict[str, Any] = {"id": self.id}
        if self.named:
            data["name"] = self.name
        data.update(self.params)
        data["points"] = int(self.points) if float(self.points).is_integer() else self.points
        return data
