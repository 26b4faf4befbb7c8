"""What pages show: rules in plain words with their limits, the log's tail, stage rows."""

from __future__ import annotations

import pytest

from assignments.presentation import LOG_DISPLAY_CHARS, describe_assignment_rules, log_tail
from grader.presets import list_presets, preset_text
from grader.rules import implied_rules, load_ruleset


@pytest.mark.parametrize("slug", list_presets())
def test_every_preset_rule_is_described_with_its_limit(slug):
    ruleset = load_ruleset(preset_text(slug))
    described = describe_assignment_rules(preset_text(slug), trains=True)
    in_force = [*ruleset.rules, *implied_rules(ruleset, trains=True)]
    assert [d["name"] for d in described] == [spec.name for spec in in_force]
    for item, spec in zip(described, in_force, strict=True):
        assert "`" not in item["text"], item  # no unfilled `parameter` placeholders
        limit = spec.params.get("limit")
        if isinstance(limit, int) and not isinstance(limit, bool):
            assert f"{limit:,}" in item["text"], item
        elif isinstance(limit, float):
            assert f"{limit:g}" in item["text"] or f"{limit * 100:g} %" in item["text"], item


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("rules:\n  - id: max_params\n    limit: 100000\n", "At most 100,000 parameters"),
        ("rules:\n  - id: min_test_accuracy\n    limit: 0.85\n", "Test accuracy at least 85 %"),
        ("rules:\n  - id: forbidden_layers\n    layers: [Dense, MaxPooling2D]\n",
         "No Dense, MaxPooling2D layers"),
        ("rules:\n  - id: min_receptive_field\n    limit: [32, 24]\n",
         "Every unit sees at least 32 \\u00d7 24 px of the image before global pooling"),
        # The exempt call may have any kernel (5x5, 3x1): not "the first layer", not "3x3".
        ("rules:\n  - id: only_separable_convs\n    allow_first_layer: true\n",
         "Plain convolutions only as 1x1 (pointwise), or as the one call that reads the image"),
    ],
)  # fmt: skip
def test_rules_in_plain_words(rules, expected):
    assert describe_assignment_rules(rules)[0]["text"] == expected.encode().decode("unicode_escape")


def test_the_rule_list_says_every_layer_trains_unless_frozen_layers_are_allowed():
    rules = "rules:\n  - id: max_params\n    limit: 100000\n"
    described = describe_assignment_rules(rules, trains=True)
    assert described[-1] == {
        "id": "all_layers_trainable",
        "name": "all_layers_trainable",
        "text": "Every layer with weights trains: none frozen with trainable=False",
        "points": 0.0,
        "phase": "static",
    }
    assert len(describe_assignment_rules("allow_frozen_layers: true\n" + rules, trains=True)) == 1
    assert len(describe_assignment_rules(rules, trains=False)) == 1  # an evaluate-only assignment


def test_an_unloadable_rule_set_describes_nothing():
    assert describe_assignment_rules("rules:\n  - id: no_such_rule\n") == []


def test_log_tail_keeps_the_end_and_says_what_was_cut():
    log = "".join(f"line {i}\n" for i in range(10_000))
    shown = log_tail(log)
    assert shown.endswith("line 9999\n")
    cut = len(log) - LOG_DISPLAY_CHARS
    assert shown.startswith(f"[… {cut:,} earlier characters not shown …]")
    assert log_tail("short") == "short"


@pytest.mark.parametrize("limit", ["32", "44", "[32, 40]"])
def test_a_field_limit_reaching_the_image_reads_as_the_whole_image(limit):
    # The rule caps a limit larger than the image at the image: the page says what it asks.
    rules = f"input_shape: [32, 32, 3]\nrules:\n  - id: min_receptive_field\n    limit: {limit}\n"
    [described] = describe_assignment_rules(rules)
    assert described["text"] == (
        "Every unit sees the whole 32 \u00d7 32 px image before global pooling"
    )


def test_the_dilated_preset_asks_for_the_whole_image_of_its_dataset():
    from grader.presets import preset_text

    described = {rule["id"]: rule["text"] for rule in describe_assignment_rules(
        preset_text("cifar10-dilated"), trains=True, dataset="cifar10")}  # fmt: skip
    assert described["min_receptive_field"] == (
        "Every unit sees the whole 32 \u00d7 32 px image before global pooling"
    )
    # A limit below the dataset's image stays a number (rule sets without input_shape too).
    [smaller] = describe_assignment_rules("rules:\n  - id: min_receptive_field\n    limit: 8\n",
                               dataset="cifar10")  # fmt: skip
    assert smaller["text"] == "Every unit sees at least 8 px of the image before global pooling"
