"""`all_layers_trainable`: every layer of a model trained from scratch trains, unless allowed.

The rule is in force for every assignment that trains, listed or not (`implied_rules`, worth no
points), and off where the rule set says ``allow_frozen_layers: true`` or the assignment only
evaluates uploaded models. Which layers count as frozen is checked against Keras itself.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from grader.analysis import analyze
from grader.errors import RuleSetError
from grader.loading import load_model_config
from grader.rules import evaluate_rules, implied_rules, load_preset, load_ruleset, score
from grader.rules.trainability import frozen_layers
from tests.support.fixture_models import model_path


def _smoke(*frozen: str) -> dict[str, Any]:
    config = load_model_config(model_path("smoke_separable"))
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] in frozen:
            layer["config"]["trainable"] = False
    return config


def _by_id(results: list[Any]) -> dict[str, Any]:
    return {r.id: r for r in results}


def test_a_frozen_layer_fails_the_rule_in_force_without_changing_the_score() -> None:
    ruleset = load_preset("smoke")
    frozen = evaluate_rules(ruleset, analyze(_smoke("separable_conv2d_1")), trains=True)
    clean = evaluate_rules(ruleset, analyze(_smoke()), trains=True)

    rule = _by_id(frozen)["all_layers_trainable"]
    assert rule.to_dict() == {
        "id": "all_layers_trainable",
        "name": "all_layers_trainable",
        "passed": False,
        "measured": ["separable_conv2d_1"],
        "limit": [],
        "message": "1 layer is frozen (trainable=False): `separable_conv2d_1`. Expected every "
        "layer to train.",
        "hint": rule.hint,
        "points": 0.0,
    }
    assert "Remove `trainable=False`" in rule.hint
    assert _by_id(clean)["all_layers_trainable"].passed is True
    # Worth no points: the listed rules score as before; the grading fails on the rule.
    assert [r.id for r in frozen][-1] == "all_layers_trainable"
    assert score(frozen) == score(clean) == score(evaluate_rules(ruleset, analyze(_smoke())))


def test_several_frozen_layers_are_named_in_call_order() -> None:
    names = [f"l{i}" for i in range(7)]
    config = _sequential(*[_dense(name, 4, trainable=False) for name in names])
    [rule] = evaluate_rules({"rules": []}, analyze(config), trains=True)
    assert rule.measured == names
    assert rule.message.startswith(
        "7 layers are frozen (trainable=False): `l0`, `l1`, `l2`, `l3`, `l4` and 2 more."
    )


def test_frozen_layers_pass_when_the_assignment_allows_them() -> None:
    rules = [{"id": "max_params", "limit": 10**6}]
    ruleset = load_ruleset({"allow_frozen_layers": True, "rules": rules})
    results = evaluate_rules(ruleset, analyze(_smoke("separable_conv2d_1")), trains=True)
    assert [r.id for r in results] == ["max_params"]
    assert implied_rules(ruleset, trains=True) == ()


def test_an_evaluate_only_assignment_does_not_imply_the_rule() -> None:
    ruleset = load_preset("smoke")
    results = evaluate_rules(ruleset, analyze(_smoke("dense")), trains=False)
    assert "all_layers_trainable" not in _by_id(results)


def test_listing_the_rule_gives_it_points_and_does_not_repeat_it() -> None:
    ruleset = load_ruleset({"rules": [{"id": "all_layers_trainable", "points": 2}]})
    [rule] = evaluate_rules(ruleset, analyze(_smoke("dense")), trains=True)
    assert (rule.passed, rule.points, rule.measured) == (False, 2.0, ["dense"])


def test_a_rule_set_cannot_both_allow_frozen_layers_and_list_the_rule() -> None:
    with pytest.raises(RuleSetError, match=r"allows frozen layers .* rules\[0\]"):
        load_ruleset({"allow_frozen_layers": True, "rules": [{"id": "all_layers_trainable"}]})
    with pytest.raises(RuleSetError, match=r"`allow_frozen_layers` is 'yes' \(str\)\. Expected"):
        load_ruleset({"allow_frozen_layers": "yes", "rules": []})


def test_every_preset_says_whether_frozen_layers_are_allowed() -> None:
    from grader.presets import list_presets

    for slug in list_presets():
        assert load_preset(slug).metadata["allow_frozen_layers"] is False, slug


# --- what counts as frozen ---------------------------------------------------------------------


def _object(module: str, class_name: str, config: Any) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _dense(name: str, units: int, **changes: Any) -> dict[str, Any]:
    return _object("keras.layers", "Dense", {"name": name, "units": units, **changes})


def _sequential(*layers: dict[str, Any], name: str = "m", **changes: Any) -> dict[str, Any]:
    first = _object("keras.layers", "InputLayer", {"batch_shape": [None, 4], "name": f"{name}_in"})
    config = {"name": name, "trainable": True, "layers": [first, *layers], **changes}
    return {"module": "keras", "class_name": "Sequential", "config": config,
            "registered_name": None}  # fmt: skip


def test_layers_of_a_frozen_nested_model_are_frozen() -> None:
    # `block.trainable = False` in Python freezes each of its layers, and Keras writes each
    # layer's own flag: those flags are what freeze them when Keras rebuilds the config.
    block = _sequential(_dense("inner", 4, trainable=False),
                        _object("keras.layers", "ReLU", {"name": "act", "trainable": False}),
                        name="block", trainable=False)  # fmt: skip
    config = _sequential(_dense("first", 4), block, _dense("out", 2))
    assert frozen_layers(analyze(config)) == ["block/inner"]


def test_a_nested_models_own_flag_alone_freezes_nothing() -> None:
    # Keras drops a nested model's own `trainable` when it rebuilds a config, and its layers'
    # weights reach the optimizer: they train (checked against Keras below).
    block = _sequential(_dense("inner", 4), name="block", trainable=False)
    config = _sequential(_dense("first", 4), block, _dense("out", 2))
    assert frozen_layers(analyze(config)) == []


def test_statistics_and_weight_free_layers_do_not_make_a_layer_frozen() -> None:
    batch_norm = _object("keras.layers", "BatchNormalization", {"name": "bn"})
    dropout = _object("keras.layers", "Dropout", {"name": "drop", "rate": 0.1, "trainable": False})
    stats = _object("keras.layers", "Normalization", {"name": "norm", "trainable": False})
    config = _sequential(stats, _dense("d", 4), batch_norm, dropout, _dense("out", 2))
    analysis = analyze(config)
    assert analysis.non_trainable_params > 0  # the moving statistics and Normalization's
    assert frozen_layers(analysis) == []


@pytest.mark.tf
def test_frozen_layers_are_the_ones_keras_keeps_from_training() -> None:
    import keras

    def build(frozen: bool) -> Any:
        layers = keras.layers
        block = keras.Sequential([layers.Dense(4, name="inner"), layers.ReLU(name="act")],
                                 name="block")  # fmt: skip
        model = keras.Sequential(
            [
                keras.Input((8,)),
                layers.Normalization(mean=0.0, variance=1.0, name="norm"),
                layers.Dense(8, name="d1"),
                layers.BatchNormalization(name="bn1"),
                layers.BatchNormalization(name="bn2"),
                layers.Dropout(0.1, name="drop"),
                block,
                layers.Dense(2, name="out"),
            ]
        )
        if frozen:
            for name in ("d1", "bn2", "drop", "block", "norm"):
                model.get_layer(name).trainable = False
        return model

    frozen_model, twin = build(True), build(False)

    def flat(model: Any, prefix: str = "") -> dict[str, Any]:
        found = {}
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                found.update(flat(layer, f"{prefix}{layer.name}/"))
            else:
                found[prefix + layer.name] = layer
        return found

    trains_in_twin = {name for name, layer in flat(twin).items() if layer.trainable_weights}
    expected = [
        name
        for name, layer in flat(frozen_model).items()
        if not layer.trainable_weights and name in trains_in_twin
    ]
    analysis = analyze(json.loads(frozen_model.to_json()))
    assert frozen_layers(analysis) == expected == ["d1", "bn2", "block/inner"]


def _keras_frozen(keras: Any, config: dict[str, Any]) -> list[str]:
    """The layers with weights whose weights the optimizer of the model Keras rebuilds from
    `config` leaves alone, though they would train with every flag set: flattened, qualified."""

    def rebuilt(cfg: dict[str, Any]) -> Any:
        return keras.saving.deserialize_keras_object(copy.deepcopy(cfg), safe_mode=True)

    def thaw(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: True if k == "trainable" else thaw(v) for k, v in value.items()}
        return [thaw(v) for v in value] if isinstance(value, list) else value

    def leaves(model: Any, prefix: str = "") -> dict[str, Any]:
        found = {}
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                found.update(leaves(layer, f"{prefix}{layer.name}/"))
            else:
                found[prefix + layer.name] = layer
        return found

    model, twin = rebuilt(config), rebuilt(thaw(config))
    trained = {id(w) for w in model.trainable_weights}
    could = {name for name, layer in leaves(twin).items() if layer.trainable_weights}
    return [
        name
        for name, layer in leaves(model).items()
        if name in could and not any(id(w) in trained for w in layer.weights)
    ]


def _functional_with_block(keras: Any, block: Any) -> dict[str, Any]:
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8, name="first")(inputs)
    return json.loads(keras.Model(inputs, keras.layers.Dense(2, name="out")(block(x))).to_json())


def _frozen_block_cases(keras: Any) -> dict[str, dict[str, Any]]:
    layers = keras.layers

    def sequential_block() -> Any:
        return keras.Sequential([layers.Dense(4, name="inner"), layers.Dense(4, name="inner2")],
                                name="block")  # fmt: skip

    def functional_block() -> Any:
        inputs = keras.Input((8,))
        x = layers.Dense(4, name="inner")(inputs)
        return keras.Model(inputs, layers.Dense(4, name="inner2")(x), name="block")

    cases = {}
    for kind, make in (("sequential", sequential_block), ("functional", functional_block)):
        block = make()
        block.trainable = False  # freezes each of its layers, and says so in their configs
        cases[f"{kind}_frozen_in_python"] = _functional_with_block(keras, block)
        block = make()
        block.trainable = False
        block.get_layer("inner2").trainable = True  # one layer re-enabled
        cases[f"{kind}_frozen_with_a_layer_reenabled"] = _functional_with_block(keras, block)
        config = _functional_with_block(keras, make())
        config["config"]["layers"][2]["config"]["trainable"] = False  # only the block's own flag
        cases[f"{kind}_flag_alone"] = config
    outer = _functional_with_block(keras, sequential_block())
    outer["config"]["trainable"] = False  # the outermost Functional model frozen
    cases["outer_functional_frozen"] = outer
    return cases


_FROZEN_BLOCK_CASES = [
    f"{kind}_{how}"
    for kind in ("sequential", "functional")
    for how in ("frozen_in_python", "frozen_with_a_layer_reenabled", "flag_alone")
] + ["outer_functional_frozen"]


@pytest.mark.tf
@pytest.mark.parametrize("case", _FROZEN_BLOCK_CASES)
def test_frozen_layers_are_what_keras_rebuilding_the_config_leaves_untrained(case: str) -> None:
    import keras

    config = _frozen_block_cases(keras)[case]
    expected = _keras_frozen(keras, config)
    assert frozen_layers(analyze(config)) == expected
    # Each case freezes what its name promises (the truth itself is not vacuous).
    assert expected == {
        "frozen_in_python": ["block/inner", "block/inner2"],
        "frozen_with_a_layer_reenabled": ["block/inner"],
        "flag_alone": [],
    }.get(case.split("_", 1)[1], ["first", "block/inner", "block/inner2", "out"])
