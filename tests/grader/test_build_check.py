"""`grader.build_check` without Keras: the report's wire form and the wording of differences.

The comparison against real Keras models lives in tests/grader/training/test_built_model.py;
here the inputs are written out by hand, so each case reads at a glance.
"""

from __future__ import annotations

import dataclasses

import pytest

from grader.build_check import (
    MAX_DIFFERENCES,
    BuiltLayer,
    BuiltModelReport,
    MalformedBuildReport,
    compare_with_analysis,
    describe_differences,
)

CONV = BuiltLayer("conv", "Conv2D", calls=1, params=448, trainable_params=448, trainable=True)
DENSE = BuiltLayer("dense", "Dense", calls=1, params=170, trainable_params=170, trainable=True)
REPORT = BuiltModelReport((CONV, DENSE), 618, 618, 0)


def _row(layer: BuiltLayer, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "name": layer.name,
        "class_name": layer.class_name,
        "output_shape": [8, 8, 16],
        "params": layer.params,
        "trainable_params": layer.trainable_params,
        "calls": layer.calls,
        "trainable": layer.trainable,
        "rf_size": None,
        "rf_jump": None,
    }
    row.update(changes)
    return row


def _checks(*rows: dict[str, object], total: int = 618, trainable: int = 618) -> dict:
    return {
        "layers": [
            {"name": "input_layer", "class_name": "InputLayer", "params": 0, "calls": 1},
            *rows,
        ],
        "params": {"total": total, "trainable": trainable, "non_trainable": total - trainable},
    }


def test_the_wire_form_round_trips():
    assert BuiltModelReport.from_dict(REPORT.to_dict()) == REPORT


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"layers": "conv", "params": {}},
        {"layers": [], "params": None},
        {"layers": [{"name": "conv"}], "params": {"total": 0, "trainable": 0, "non_trainable": 0}},
        {"layers": [], "params": {"total": -1, "trainable": 0, "non_trainable": 0}},
        {"layers": [], "params": {"total": True, "trainable": 0, "non_trainable": 0}},
        {"layers": [], "params": {"total": 2**60, "trainable": 0, "non_trainable": 0}},
        {
            "layers": [{**REPORT.to_dict()["layers"][0], "trainable": "yes"}],
            "params": REPORT.to_dict()["params"],
        },
    ],
)
def test_a_report_off_the_contract_is_malformed(data):
    with pytest.raises(MalformedBuildReport):
        BuiltModelReport.from_dict(data)


def test_the_same_network_has_no_difference_and_input_layers_are_not_compared():
    assert compare_with_analysis(_checks(_row(CONV), _row(DENSE)), REPORT) == []


def test_an_analysis_stored_before_the_trainable_flag_still_compares_its_counts():
    rows = [_row(CONV), _row(DENSE)]
    for row in rows:
        del row["trainable"]
    assert compare_with_analysis(_checks(*rows), REPORT) == []


def test_a_layer_only_keras_built_is_named_with_its_parameters():
    alias = BuiltLayer("c2", "Conv2D", calls=1, params=148, trainable_params=148, trainable=True)
    report = BuiltModelReport((CONV, alias, DENSE), 766, 766, 0)

    [layer, total, trainable] = compare_with_analysis(_checks(_row(CONV), _row(DENSE)), report)

    assert layer.layer == "c2"
    assert layer.message == (
        "Layer `c2` (Conv2D): built by Keras with 148 parameters (1 call), absent from the "
        "analysis."
    )
    assert total.layer is None
    assert total.message == "Model: the analysis counts 618 parameters in total, Keras built 766."
    assert trainable.message.startswith("Model: the analysis counts 618 trainable parameters")


def test_a_layer_keras_did_not_build_is_named():
    [difference, *_totals] = compare_with_analysis(
        _checks(_row(CONV), _row(DENSE), total=618),
        BuiltModelReport((DENSE,), 170, 170, 0),
    )
    assert difference.layer == "conv"
    assert difference.message == (
        "Layer `conv` (Conv2D): in the analysis (448 parameters, 1 call), absent from the "
        "network Keras built."
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"class_name": "DepthwiseConv2D"},
            "the analysis reads class DepthwiseConv2D, Keras built Conv2D",
        ),
        ({"calls": 2}, "the analysis counts 2 calls, Keras built 1 call"),
        ({"params": 1448}, "the analysis counts 1,448 parameters, Keras built 448 parameters"),
        ({"trainable_params": 0}, "counts 0 trainable parameters, Keras built 448 trainable"),
        (
            {"trainable": False},
            "the analysis has it frozen (trainable=False), Keras built it trainable",
        ),
    ],
)
def test_each_field_that_differs_is_a_difference_naming_the_layer(change, words):
    [difference] = compare_with_analysis(_checks(_row(CONV, **change), _row(DENSE)), REPORT)
    assert difference.layer == "conv"
    assert difference.message.startswith("Layer `conv`")
    assert words in difference.message


def test_two_built_layers_under_one_name_are_a_difference():
    twin = BuiltLayer("conv", "Conv2D", calls=1, params=448, trainable_params=448, trainable=True)
    report = BuiltModelReport((twin, CONV, DENSE), 618, 618, 0)

    differences = compare_with_analysis(_checks(_row(CONV), _row(DENSE)), report)

    assert [d.message for d in differences] == ["Layer `conv`: Keras built 2 layers of this name."]


def test_differences_are_listed_up_to_a_cap_then_counted():
    from grader.build_check import Difference

    many = [Difference(f"l{i}", f"Layer `l{i}`: differs.") for i in range(MAX_DIFFERENCES + 7)]
    sentences = describe_differences(many)
    assert len(sentences) == MAX_DIFFERENCES + 1
    assert sentences[-1] == "... and 7 more differences."


def test_an_output_shape_keras_built_otherwise_is_a_difference():
    # Strides or padding read differently change no count, only the map the layer produces.
    strided = dataclasses.replace(CONV, output_shape=(3, 3, 16))
    report = BuiltModelReport((strided, DENSE), 618, 618, 0)

    [difference] = compare_with_analysis(_checks(_row(CONV), _row(DENSE)), report)

    assert difference.layer == "conv"
    assert difference.message == (
        "Layer `conv` (Conv2D): the analysis infers output shape (8, 8, 16), Keras built "
        "(3, 3, 16)."
    )


def test_unknown_sizes_agree_with_any_size_and_shared_layers_are_not_shape_compared():
    unknown = dataclasses.replace(CONV, output_shape=(None, 8, 16))
    shared = dataclasses.replace(DENSE, calls=2, output_shape=(99,))
    report = BuiltModelReport((unknown, shared), 618, 618, 0)

    assert compare_with_analysis(_checks(_row(CONV), _row(DENSE, calls=2)), report) == []


def test_the_output_shape_round_trips_through_json():
    import json

    report = BuiltModelReport((dataclasses.replace(CONV, output_shape=(None, 8, 16)),), 448, 448, 0)

    assert BuiltModelReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
