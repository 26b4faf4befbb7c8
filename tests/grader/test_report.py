"""The check_model report: exact keys, Keras' numbers, readable text, errors as objects."""

from __future__ import annotations

import json

import pytest

from grader.errors import ReceptiveFieldError
from grader.loading import load_model_config
from grader.presets import load_preset
from grader.report import check_model, check_model_file, format_text
from tests.support.fixture_models import analysable, expected, model_path

TOP_KEYS = {
    "file",
    "model",
    "params",
    "receptive_field",
    "layers",
    "dead_layers",
    "rules",
    "passed",
}


@pytest.mark.parametrize("name", analysable())
def test_report_has_exactly_the_contract_keys_and_keras_numbers(name):
    keras = expected()[name]
    report = check_model_file(model_path(name), load_preset(keras["preset"]))
    assert set(report) == TOP_KEYS
    assert report["dead_layers"] == []  # Keras writes only the layers its model holds
    assert report["file"] == str(model_path(name))
    assert set(report["model"]) == {"name", "input_shape", "output_shape", "layer_count"}
    assert report["model"]["name"] == name
    assert report["model"]["input_shape"] == keras["input_shape"]
    assert report["model"]["output_shape"] == keras["output_shape"]
    assert report["params"] == {
        "total": keras["params_total"],
        "trainable": keras["params_trainable"],
        "non_trainable": keras["params_non_trainable"],
    }
    assert {"end_point", "size", "jump", "global", "layers"} <= set(report["receptive_field"])
    assert json.loads(json.dumps(report)) == report


@pytest.mark.parametrize("name", analysable())
def test_layer_rows_carry_keras_per_layer_params(name):
    keras = expected()[name]["layer_params"]
    report = check_model_file(model_path(name))
    rows = {row["name"]: row for row in report["layers"]}
    for layer, count in keras.items():
        assert rows[layer]["params"] == count
    assert report["model"]["layer_count"] == sum(
        1 for row in report["layers"] if row["class_name"] != "InputLayer"
    )


def test_layer_rows_carry_the_receptive_field_columns():
    report = check_model_file(model_path("smoke_separable"))
    rf = {row["name"]: (row["rf_size"], row["rf_jump"]) for row in report["layers"]}
    # Hand-worked in make_models.py: sep 3/1, sep 5/1, pool 6/2, sep 10/2, sep 14/2.
    assert rf["separable_conv2d"] == ([3, 3], [1, 1])
    assert rf["max_pooling2d"] == ([6, 6], [2, 2])
    assert rf["separable_conv2d_3"] == ([14, 14], [2, 2])
    assert rf["dense"] == (None, None)  # after the end point


@pytest.mark.parametrize(
    ("name", "passed"),
    [
        ("cifar10_separable_reference", None),  # training rules pending
        ("breaks_dropout_025", False),
    ],
)
def test_passed_is_false_on_failure_and_null_while_pending(name, passed):
    report = check_model_file(model_path(name), load_preset("cifar10-separable"))
    assert report["passed"] is passed


def test_passed_is_true_when_every_rule_passed_and_without_rules():
    config = load_model_config(model_path("smoke_separable"))
    ruleset = {"rules": [{"id": "max_params", "limit": 10_000}]}
    assert check_model(config, ruleset)["passed"] is True
    report = check_model(config)
    assert report["rules"] == [] and report["passed"] is True


def test_keras_archive_reports_like_its_json():
    from_json = check_model_file(model_path("cifar10_separable_reference"))
    from_archive = check_model_file(model_path("cifar10_separable_reference", ".keras"))
    for key in ("model", "params", "receptive_field", "layers"):
        assert from_archive[key] == from_json[key]


def test_end_point_changes_the_report_not_the_rules():
    config = load_model_config(model_path("cifar10_separable_reference"))
    report = check_model(config, load_preset("cifar10-separable"), end_point="re_lu_3")
    assert report["receptive_field"]["end_point"] == "re_lu_3"
    assert report["receptive_field"]["size"] == [14, 14]
    rf_rule = next(r for r in report["rules"] if r["id"] == "min_receptive_field")
    assert rf_rule["measured"] == 32 and rf_rule["passed"] is True


def test_unknown_end_point_raises_from_check_model_and_is_an_error_object_from_file():
    config = load_model_config(model_path("smoke_separable"))
    with pytest.raises(ReceptiveFieldError):
        check_model(config, end_point="nope")
    report = check_model_file(model_path("smoke_separable"), end_point="nope")
    assert set(report) == {"file", "error"}
    assert report["error"]["kind"] == "receptive_field"


def test_lambda_model_is_an_error_object_not_an_exception():
    report = check_model_file(model_path("breaks_lambda"), load_preset("smoke"))
    assert report == {
        "file": str(model_path("breaks_lambda")),
        "error": {"kind": "unsafe_layer", "message": report["error"]["message"]},
    }
    assert "`scale` (Lambda)" in report["error"]["message"]


def test_missing_file_is_an_error_object(tmp_path):
    report = check_model_file(tmp_path / "absent.json")
    assert set(report) == {"file", "error"}
    assert report["error"]["kind"] == "unreadable_file"
    assert "No such file or directory" in report["error"]["message"]


def test_text_report_shows_table_totals_and_rules():
    report = check_model_file(
        model_path("breaks_too_many_params"), load_preset("cifar10-separable")
    )
    text = format_text(report)
    total = expected()["breaks_too_many_params"]["params_total"]
    assert f"Total params: {total:,}" in text
    header = next(line for line in text.splitlines() if line.startswith("Layer"))
    assert header.split() == ["Layer", "Type", "Output", "shape", "Params", "RF", "Jump"]
    assert "separable_conv2d_6" in text and "48x48" in text
    assert f"[FAIL] max_params: measured {total:,}, limit 100,000 (2 pts)" in text
    assert "[PENDING] min_val_accuracy" in text
    assert "[PASS] max_dropout" in text
    assert "hint: " in text
    assert text.rstrip().endswith("Result: FAILED")


def test_text_report_of_an_error():
    text = format_text(check_model_file(model_path("breaks_lambda")))
    assert "ERROR (unsafe_layer):" in text
