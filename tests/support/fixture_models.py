"""The committed Keras fixtures of tests/fixtures/models and what Keras said about them.

No Keras import: the fixtures were written by ``tests/fixtures/make_models.py`` with Keras, and
``expected.json`` holds Keras' own parameter counts, shapes and the designed receptive fields.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "models"


@cache
def expected() -> dict[str, dict[str, Any]]:
    """Fixture name -> what Keras reported when the fixture was written."""
    data = json.loads((MODELS_DIR / "expected.json").read_text())
    return {name: entry for name, entry in data.items() if not name.startswith("_")}


def model_path(name: str, suffix: str = ".json") -> Path:
    return MODELS_DIR / f"{name}{suffix}"


def analysable() -> list[str]:
    """Fixtures the analysis accepts (every one but the Lambda model)."""
    return [name for name in expected() if name != "breaks_lambda"]
