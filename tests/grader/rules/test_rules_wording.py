"""Rule messages students found cryptic, now worded to say which layers and what is allowed."""

from __future__ import annotations

import pytest

from tests.support.keras_models import keras, layers, to_config

pytestmark = pytest.mark.tf


def _max_dropout(rates: list[float], limit: float = 0.1):
    from grader.analysis import analyze
    from grader.rules import evaluate_rules, load_ruleset

    inputs = keras.Input((8, 8, 3))
    x = layers.SeparableConv2D(4, 3)(inputs)
    for index, rate in enumerate(rates):
        x = layers.Dropout(rate, name=f"drop_{index}")(x)
    x = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    analysis = analyze(to_config(keras.Model(inputs, x)))
    ruleset = load_ruleset({"rules": [{"id": "max_dropout", "limit": limit}]})
    (result,) = evaluate_rules(ruleset, analysis)
    return result


def test_max_dropout_names_the_other_layers_above_the_limit():
    result = _max_dropout([0.2, 0.5, 0.05, 0.3])
    assert result.message == (
        "Layer `drop_1` (Dropout) has rate 0.50 (also above the limit: `drop_3` 0.30, "
        "`drop_0` 0.20). Expected at most 0.10."
    )


def test_max_dropout_counts_the_layers_past_five():
    result = _max_dropout([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert "(also above the limit: `drop_1` 0.80, `drop_2` 0.70, `drop_3` 0.60, " in (
        result.message
    )
    assert "`drop_5` 0.40, and 2 other layers)" in result.message
    assert "more above the limit" not in result.message
