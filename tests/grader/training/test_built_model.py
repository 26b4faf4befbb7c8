"""What Keras built, described by `grader.training.built_model`, against `grader.analysis`.

For each model, the report of the network Keras rebuilds from the config must agree with the
pure-Python analysis of that same config (`compare_with_analysis` finds nothing), and its counts
must equal what Keras itself says (`count_params()`, the trainable weights, the independent
walker of tests/support/keras_models.py). Then one field at a time is made to differ, and the
difference names the layer.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from grader.build_check import BuiltModelReport, compare_with_analysis
from grader.errors import GraderError
from grader.report import check_model
from tests.support.dataset_key import TEST_DATASET_KEY

pytestmark = pytest.mark.tf

keras_models = pytest.importorskip("tests.support.keras_models")
keras = keras_models.keras
layers = keras_models.layers


def _sequential() -> Any:
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Conv2D(4, 3, name="conv"),
            layers.BatchNormalization(name="bn"),
            layers.Dropout(0.2, name="drop"),
            layers.Flatten(name="flat"),
            layers.Dense(2, name="head"),
        ],
        name="plain",
    )


def _sequential_without_input_layer() -> Any:
    model = keras.Sequential(
        [layers.Conv2D(4, 3, name="conv"), layers.Flatten(name="flat"), layers.Dense(2)],
        name="built_later",
    )
    model.build((None, 8, 8, 3))
    return model


def _functional_with_a_shared_layer() -> Any:
    inputs = keras.Input((8, 8, 3))
    shared = layers.Conv2D(3, 3, padding="same", name="shared")
    x = shared(shared(inputs))  # called twice, its weights counted once
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(2, name="head")(x), name="shared_twice")


def _nested_models() -> Any:
    block = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.SeparableConv2D(3, 3, padding="same", name="sep"),
            layers.BatchNormalization(name="bn"),
        ],
        name="block",
    )
    frozen = keras.Sequential(
        [keras.Input((8, 8, 3)), layers.Conv2D(3, 3, padding="same", name="conv")],
        name="frozen",
    )
    frozen.trainable = False
    inner_in = keras.Input((8, 8, 3))
    functional = keras.Model(
        inner_in, layers.DepthwiseConv2D(3, padding="same", name="dw")(inner_in), name="fblock"
    )
    inputs = keras.Input((8, 8, 3))
    x = block(inputs)
    x = block(x)  # a nested model called twice: its layers count two calls
    x = frozen(x)
    x = functional(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(2, name="head")(x), name="nested")


def _frozen_layers() -> Any:
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv", trainable=False)(inputs)
    x = layers.BatchNormalization(name="bn", trainable=False)(x)  # inference mode, all frozen
    x = layers.BatchNormalization(name="bn_live")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(2, name="head")(x), name="frozen_parts")


CASES: dict[str, Callable[[], Any]] = {
    "sequential": _sequential,
    "sequential_without_input_layer": _sequential_without_input_layer,
    "shared_layer_called_twice": _functional_with_a_shared_layer,
    "nested_models": _nested_models,
    "frozen_layers": _frozen_layers,
}
RANDOM_SEEDS = range(10)


def _rebuilt(config: dict[str, Any]) -> Any:
    """What the trainer builds from `config`: Keras' safe-mode deserialization of the JSON.

    (Through `keras.saving` rather than `safe_model.build_model`, whose gate runs the analysis
    first: some tests need the network Keras builds from a config the analysis refuses.)
    """
    return keras.saving.deserialize_keras_object(
        json.loads(json.dumps(config)), custom_objects=None, safe_mode=True
    )


def _describe(config: dict[str, Any]) -> tuple[BuiltModelReport, Any]:
    from grader.training.built_model import describe_built_model

    model = _rebuilt(config)
    return describe_built_model(model), model


def _sizes(weights: list[Any]) -> int:
    return sum(int(keras.ops.size(w)) for w in weights)


def _assert_agrees(config: dict[str, Any]) -> BuiltModelReport:
    report, model = _describe(config)
    assert compare_with_analysis(check_model(config), report) == []
    # Keras' own numbers, read independently of the describer.
    assert report.total_params == model.count_params()
    assert report.trainable_params == _sizes(model.trainable_weights)
    assert report.non_trainable_params == _sizes(model.non_trainable_weights)
    truth = keras_models.keras_truth(model)
    for layer in report.layers:
        assert (layer.params, layer.trainable_params) == (
            truth.layers[layer.name].total,
            truth.layers[layer.name].trainable,
        ), layer.name
    return report


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_network_keras_builds_agrees_with_the_analysis(case):
    report = _assert_agrees(json.loads(CASES[case]().to_json()))
    assert report.layers  # the case is not vacuous


def test_the_cases_hold_what_their_names_promise():
    by_name = {
        case: {
            layer.name: layer for layer in _describe(json.loads(CASES[case]().to_json()))[0].layers
        }
        for case in CASES
    }
    assert by_name["shared_layer_called_twice"]["shared"].calls == 2
    nested = by_name["nested_models"]
    assert nested["block/sep"].calls == nested["block/bn"].calls == 2
    assert nested["frozen/conv"].trainable is False and nested["frozen/conv"].params == 84
    assert nested["fblock/dw"].trainable_params == 30
    frozen = by_name["frozen_layers"]
    assert (frozen["bn"].params, frozen["bn"].trainable_params) == (16, 0)
    assert (frozen["bn_live"].params, frozen["bn_live"].trainable_params) == (16, 8)
    assert frozen["conv"].trainable is False


def _blocks_with_frozen_flags() -> dict[str, dict[str, Any]]:
    """Functional blocks frozen in each way a config can say it, and what Keras then trains."""

    def block() -> Any:
        inner_in = keras.Input((8, 8, 3))
        x = layers.Conv2D(3, 3, padding="same", name="inner")(inner_in)
        return keras.Model(inner_in, layers.Conv2D(3, 1, name="inner2")(x), name="block")

    def around(nested: Any) -> dict[str, Any]:
        inputs = keras.Input((8, 8, 3))
        x = layers.GlobalAveragePooling2D(name="gap")(nested(inputs))
        return json.loads(keras.Model(inputs, layers.Dense(2, name="head")(x)).to_json())

    reenabled = block()
    reenabled.trainable = False
    reenabled.get_layer("inner2").trainable = True
    flag_alone = around(block())
    flag_alone["config"]["layers"][1]["config"]["trainable"] = False
    return {"frozen_with_a_layer_reenabled": around(reenabled), "flag_alone": flag_alone}


@pytest.mark.parametrize("case", ["frozen_with_a_layer_reenabled", "flag_alone"])
def test_a_nested_models_own_flag_is_reported_as_keras_trains_it(case):
    # Keras rebuilds a nested Functional model with its own `trainable` flag, yet the optimizer
    # updates the outer model's trainable weights, which hold every variable its own layer
    # lets train: the report follows the optimizer, as the analysis does.
    config = _blocks_with_frozen_flags()[case]
    report = _assert_agrees(config)
    rows = {layer.name: layer for layer in report.layers}
    assert rows["block/inner2"].trainable is True
    assert rows["block/inner2"].trainable_params == 3 * 3 + 3
    assert rows["block/inner"].trainable is (case == "flag_alone")


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_cnns_built_by_keras_agree_with_the_analysis(seed):
    _assert_agrees(keras_models.to_config(keras_models.random_cnn(seed)))


def test_the_trainers_model_is_described_as_analysed(tmp_path):
    """`build_training_model` (what the runner describes) on a real split, mixed precision too."""
    from grader.datasets import prepare_dataset
    from grader.training.built_model import describe_built_model
    from grader.training.trainer import build_training_model
    from tests.workers.conftest import FIXTURE_MODELS

    config = json.loads((FIXTURE_MODELS / "smoke_separable.json").read_text())
    split = prepare_dataset("synthetic", tmp_path, key=TEST_DATASET_KEY).train_part_dir
    for policy in (None, "mixed_bfloat16"):
        model = build_training_model(config, train_dir=split, seed=0, mixed_precision=policy)
        assert compare_with_analysis(check_model(config), describe_built_model(model)) == []


FIELD_CHANGES: dict[str, Callable[[Any], Any]] = {
    "class_name": lambda layer: dataclasses.replace(layer, class_name="DepthwiseConv2D"),
    "calls": lambda layer: dataclasses.replace(layer, calls=layer.calls + 1),
    "params": lambda layer: dataclasses.replace(layer, params=layer.params + 1),
    "trainable_params": lambda layer: dataclasses.replace(layer, trainable_params=0),
    "trainable": lambda layer: dataclasses.replace(layer, trainable=False),
}


@pytest.mark.parametrize("field", sorted(FIELD_CHANGES))
def test_a_built_layer_differing_in_one_field_is_named(field):
    config = json.loads(_functional_with_a_shared_layer().to_json())
    report, _ = _describe(config)
    layers_ = [
        FIELD_CHANGES[field](layer) if layer.name == "shared" else layer for layer in report.layers
    ]
    changed = dataclasses.replace(report, layers=tuple(layers_))

    differences = compare_with_analysis(check_model(config), changed)

    assert [d.layer for d in differences] == ["shared"]
    assert differences[0].message.startswith("Layer `shared`")


def test_totals_that_differ_are_named():
    config = json.loads(_sequential().to_json())
    report, _ = _describe(config)
    changed = dataclasses.replace(report, total_params=report.total_params + 5)

    [difference] = compare_with_analysis(check_model(config), changed)

    assert difference.layer is None
    assert "parameters in total" in difference.message


def _alias_config() -> dict[str, Any]:
    """Entry 2 says `"name": "c1"` at the top while its config names it `c2`."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            layers.Conv2D(4, 3, padding="same", name="c1"),
            layers.Conv2D(4, 3, padding="same", name="c2"),
            layers.Flatten(name="flat"),
            layers.Dense(2, name="head"),
        ],
        name="alias",
    )
    config = json.loads(model.to_json())
    config = copy.deepcopy(config)
    config["config"]["layers"][2]["name"] = "c1"
    return config


def test_a_name_alias_is_refused_by_the_analysis_or_caught_by_the_build_check():
    """Keras builds a second layer `c2`; a reader taking the top-level name sees `c1` twice."""
    config = _alias_config()
    report, model = _describe(config)
    assert [layer.name for layer in model.layers] == ["c1", "c2", "flat", "head"]
    try:
        checks = check_model(config)
    except GraderError:
        return  # the analysis refuses the file: no number is graded either
    differences = compare_with_analysis(checks, report)
    assert {d.layer for d in differences} >= {"c2"}, differences


def test_a_stride_keras_reads_otherwise_is_caught_by_the_output_shape():
    # No count tells a strided convolution from an unstrided one: the map it produces does.
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            layers.Conv2D(4, 3, name="conv"),
            layers.GlobalAveragePooling2D(name="pool"),
            layers.Dense(2, name="head"),
        ]
    )
    config = json.loads(model.to_json())
    analysed = check_model(config)
    strided = copy.deepcopy(config)
    conv = next(e for e in strided["config"]["layers"] if e["class_name"] == "Conv2D")
    conv["config"]["strides"] = [2, 2]
    report, _ = _describe(strided)

    differences = compare_with_analysis(analysed, report)

    assert [d.message for d in differences] == [
        "Layer `conv` (Conv2D): the analysis infers output shape (6, 6, 4), Keras built (3, 3, 4)."
    ]
