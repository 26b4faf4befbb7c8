"""Shipped rule-set presets: rules plus the assignment metadata needed to seed an assignment.

Each ``<slug>.yaml`` in this folder is a preset; it must validate with `grader.rules.load_ruleset`
and carry every metadata key (`grader.rules.schema.PRESET_REQUIRED`).
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from grader.errors import RuleSetError

if TYPE_CHECKING:
    from grader.rules.schema import RuleSet


def list_presets() -> list[str]:
    """Slugs of the shipped presets, sorted."""
    folder = resources.files(__package__)
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def preset_text(slug: str) -> str:
    """The YAML text of preset `slug`, as shipped (comments and layout kept).

    Raises:
        RuleSetError: no preset has that slug.
    """
    available = list_presets()
    if slug not in available:
        raise RuleSetError(f"There is no preset `{slug}`. Expected one of: {', '.join(available)}.")
    return resources.files(__package__).joinpath(f"{slug}.yaml").read_text(encoding="utf-8")


def load_preset(slug: str) -> RuleSet:
    """The validated `RuleSet` of preset `slug`, metadata included.

    Raises:
        RuleSetError: no preset has that slug, or the preset is invalid or incomplete.
    """
    from grader.rules.schema import PRESET_REQUIRED, load_ruleset

    ruleset = load_ruleset(preset_text(slug))
    missing = [key for key in PRESET_REQUIRED if key not in ruleset.metadata]
    if missing:
        raise RuleSetError(
            f"Preset `{slug}` lacks {', '.join(missing)}. Expected every one of: "
            f"{', '.join(PRESET_REQUIRED)}."
        )
    if ruleset.metadata["slug"] != slug:
        raise RuleSetError(
            f"Preset file `{slug}.yaml` declares slug `{ruleset.metadata['slug']}`. Expected "
            f"`{slug}`."
        )
    return ruleset
