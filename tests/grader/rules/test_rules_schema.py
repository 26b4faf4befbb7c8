"""Rule-set validation: each mistake is refused saying where, what was expected and received."""

from __future__ import annotations

import json

import pytest
import yaml

from grader.errors import RuleSetError
from grader.rules import RULES, InvalidRule, RuleSet, describe_rules, load_ruleset

VALID = """
rules:
  - id: max_params
    limit: 100000
  - id: min_receptive_field
    name: rf_early
    limit: [16, 24]
    end_point: block2
  - id: min_receptive_field
    name: rf_late
    limit: 32
    points: 2.5
  - id: forbidden_layers
    layers: [MaxPooling2D, Lambda]
    points: 0
"""


def test_loads_valid_rule_set_with_defaults_filled_in():
    ruleset = load_ruleset(VALID)
    assert [r.name for r in ruleset.rules] == [
        "max_params",
        "rf_early",
        "rf_late",
        "forbidden_layers",
    ]
    max_params = ruleset.rule("max_params")
    assert max_params.params == {"limit": 100000, "count": "total"}
    assert max_params.points == 1.0
    assert ruleset.rule("rf_early").params == {"limit": [16, 24], "end_point": "block2"}
    assert ruleset.rule("rf_late").params == {"limit": 32, "end_point": None}
    assert ruleset.rule("rf_late").points == 2.5
    assert ruleset.total_points == 1 + 1 + 2.5 + 0
    assert ruleset.metadata == {}


@pytest.mark.parametrize("form", ["yaml", "json", "dict"])
def test_round_trips_through_yaml_json_and_dict(form):
    ruleset = load_ruleset(VALID)
    source = {
        "yaml": ruleset.to_yaml(),
        "json": ruleset.to_json(),
        "dict": ruleset.to_dict(),
    }[form]
    again = load_ruleset(source)
    assert again == ruleset
    assert again.to_dict() == ruleset.to_dict()


def test_to_dict_is_plain_json_and_keeps_names_only_where_given():
    data = load_ruleset(VALID).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert "name" not in data["rules"][0]
    assert data["rules"][1]["name"] == "rf_early"


def test_json_text_is_accepted():
    text = json.dumps({"rules": [{"id": "max_dropout", "limit": 0.1}]})
    assert load_ruleset(text).rules[0].params == {"limit": 0.1}


def test_integral_float_limit_from_json_form_becomes_int():
    ruleset = load_ruleset({"rules": [{"id": "max_params", "limit": 100000.0}]})
    limit = ruleset.rules[0].params["limit"]
    assert limit == 100000 and isinstance(limit, int)


# (rule set, fragments the message must contain: where, parameter, expected, received)
BAD_RULES = [
    (
        {"rules": [{"id": "max_params", "limit": 5}, {"id": "max_param", "limit": 5}]},
        ["rules[1]", "unknown id `max_param`", "Did you mean `max_params`?"],
    ),
    (
        {"rules": [{"id": "max_params", "limit": "100k"}]},
        ["rules[0] (`max_params`)", "`limit`", "'100k' (str)", "Expected an integer >= 1"],
    ),
    (
        {"rules": [{"id": "max_params", "limit": True}]},
        ["rules[0] (`max_params`)", "`limit`", "True (bool)", "Expected an integer"],
    ),
    (
        {"rules": [{"id": "max_params", "limit": 0}]},
        ["`limit`", "0 (int)", "Expected an integer >= 1"],
    ),
    (
        {"rules": [{"id": "max_params", "limit": 10, "count": "all"}]},
        ["`count`", "'all' (str)", "Expected one of 'total', 'trainable'"],
    ),
    (
        {"rules": [{"id": "max_params"}]},
        ["rules[0] (`max_params`)", "missing the required parameter `limit`", "an integer"],
    ),
    (
        {"rules": [{"id": "max_params", "limt": 10}]},
        ["rules[0] (`max_params`)", "unknown parameter `limt`", "Did you mean `limit`?"],
    ),
    (
        {"rules": [{"id": "max_dropout", "limit": 1.5}]},
        ["rules[0] (`max_dropout`)", "1.5 (float)", "between 0 and 1"],
    ),
    (
        {"rules": [{"id": "only_separable_convs", "allow_first_layer": "yes"}]},
        ["`allow_first_layer`", "'yes' (str)", "Expected true or false"],
    ),
    (
        {"rules": [{"id": "forbidden_layers", "layers": "MaxPooling2D"}]},
        ["`layers`", "'MaxPooling2D' (str)", "list of Keras layer class names"],
    ),
    (
        {"rules": [{"id": "forbidden_layers", "layers": []}]},
        ["`layers`", "[] (list)", "non-empty list"],
    ),
    (
        {"rules": [{"id": "forbidden_layers", "layers": ["Max Pooling"]}]},
        ["`layers`", "class names"],
    ),
    (
        {"rules": [{"id": "forbidden_layers", "layers": ["Maxpooling2D"]}]},
        ["`layers`", "`Maxpooling2D` is not a Keras layer class", "did you mean `MaxPooling2D`?"],
    ),
    (
        {"rules": [{"id": "required_layers", "layers": ["BatchNorm"]}]},
        ["`layers`", "`BatchNorm` is not a Keras layer class"],
    ),
    (
        {"rules": [{"id": "min_receptive_field", "limit": [32, 32, 3]}]},
        ["`limit`", "[32, 32, 3] (list)", "[height, width] pair"],
    ),
    (
        {"rules": [{"id": "min_receptive_field", "limit": 32, "end_point": "two words"}]},
        ["`end_point`", "a layer name"],
    ),
    (
        {"rules": [{"id": "max_params", "limit": 5, "points": -1}]},
        ["`points`", "-1 (int)", "a number >= 0"],
    ),
    (
        {"rules": [{"id": "global_pooling_used", "kind": "mean"}]},
        ["`kind`", "'mean' (str)", "'average', 'max', 'any'"],
    ),
    (
        {"rules": [{"limit": 5}]},
        ["rules[0] has no `id`"],
    ),
    (
        {"rules": ["max_params"]},
        ["rules[0] must be a mapping", "'max_params' (str)"],
    ),
]


@pytest.mark.parametrize(("data", "fragments"), BAD_RULES)
def test_rejects_invalid_rule_naming_rule_parameter_expected_and_received(data, fragments):
    with pytest.raises(RuleSetError) as info:
        load_ruleset(data)
    for fragment in fragments:
        assert fragment in info.value.message
    assert info.value.error_code == "invalid_rules"


def test_invalid_rule_carries_index_id_and_parameter_for_editors():
    with pytest.raises(InvalidRule) as info:
        load_ruleset({"rules": [{"id": "max_dropout", "limit": 0.1}, {"id": "max_params"}]})
    assert (info.value.index, info.value.rule_id, info.value.parameter) == (
        1,
        "max_params",
        "limit",
    )


def test_rejects_repeated_id_without_distinct_names():
    with pytest.raises(
        InvalidRule, match=r"rules\[1\] \(`max_params`\) repeats the id of rules\[0\]"
    ):
        load_ruleset(
            {"rules": [{"id": "max_params", "limit": 1}, {"id": "max_params", "limit": 2}]}
        )


def test_rejects_repeated_name():
    data = {
        "rules": [
            {"id": "max_params", "limit": 1, "name": "size"},
            {"id": "max_params", "limit": 2, "name": "size"},
        ]
    }
    with pytest.raises(InvalidRule, match="repeats the name `size` of rules\\[0\\]"):
        load_ruleset(data)


def test_rejects_duplicate_yaml_key_instead_of_keeping_the_last():
    text = "rules:\n  - id: max_params\n    limit: 100000\n    limit: 900000\n"
    assert yaml.safe_load(text)["rules"][0]["limit"] == 900000  # what PyYAML alone would do
    with pytest.raises(RuleSetError, match="repeats the key `limit` \\(line 4, column 5\\)"):
        load_ruleset(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules: [}", "not valid YAML or JSON at line 1"),
        ("- id: max_params", "must be a mapping with a `rules` list"),
        ("title: x", "has no `rules` key"),
        ("rules: max_params", "`rules` must be a list"),
        ("rule: []", "unknown key `rule`. Did you mean `rules`?"),
        ("rules: []\nnum_classes: 1", "`num_classes` is 1 (int). Expected an integer >= 2"),
        ("rules: []\nmode: fit", "`mode` is 'fit' (str). Expected one of 'train', 'evaluate'"),
        ("rules: []\ninput_shape: [32, 32, 0]", "`input_shape`"),
        ("rules: []\nslug: CIFAR 10", "`slug`"),
    ],
)
def test_rejects_malformed_rule_set_files(text, fragment):
    with pytest.raises(RuleSetError) as info:
        load_ruleset(text)
    assert fragment in info.value.message


def test_rejects_default_training_longer_than_max_epochs_rule():
    data = {
        "training": {"epochs": 60},
        "rules": [{"id": "max_epochs", "limit": 50}],
    }
    with pytest.raises(InvalidRule, match="trains 60 epochs but rules\\[0\\] \\(`max_epochs`\\)"):
        load_ruleset(data)


def test_metadata_is_validated_and_exposed_as_attributes():
    ruleset = load_ruleset(
        {
            "slug": "demo",
            "input_shape": [16, 16, 3],
            "num_classes": 4,
            "mode": "train",
            "rules": [],
        }
    )
    assert isinstance(ruleset, RuleSet)
    assert ruleset.slug == "demo"
    assert ruleset.input_shape == [16, 16, 3]
    assert ruleset.title is None
    with pytest.raises(AttributeError):
        _ = ruleset.not_a_key


def test_every_registered_rule_is_documented_and_loads_with_its_required_parameters():
    samples = {"limit": None}
    for entry in describe_rules():
        assert entry["summary"]
        assert entry["phase"] in {"static", "training"}
        rule = {"id": entry["id"]}
        for name, param in entry["params"].items():
            assert param["doc"], f"{entry['id']}.{name} has no doc"
            if param["required"]:
                rule[name] = {
                    "limit": 0.5 if "accuracy" in entry["id"] or "dropout" in entry["id"] else 3,
                    "layers": ["Dense"],
                }.get(name, samples.get(name))
        loaded = load_ruleset({"rules": [rule]})
        assert loaded.rules[0].id == entry["id"]
    assert set(RULES) >= {
        "separable_conv_used",
        "only_separable_convs",
        "max_params",
        "max_dropout",
        "min_receptive_field",
        "forbidden_layers",
        "required_layers",
        "dilated_conv_used",
        "global_pooling_used",
        "max_epochs",
        "min_val_accuracy",
    }


def test_rejects_a_default_training_batch_below_the_rule_sets_min_batch_size():
    data = {"min_batch_size": 32, "training": {"batch_size": 8}, "rules": []}
    with pytest.raises(InvalidRule, match=r"of 8\. Expected at least `min_batch_size` = 32"):
        load_ruleset(data)
    assert load_ruleset({**data, "training": {"batch_size": 32}}).min_batch_size == 32
