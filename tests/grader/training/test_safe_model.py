"""Safe model building: code-carrying and custom layers refused before Keras sees them."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grader.errors import InvalidModelConfig, UnsafeLayer
from grader.training.safe_model import (
    MAX_CONFIG_BYTES,
    build_model,
    check_io_shapes,
    check_model_config,
    parse_model_json,
)

MODELS = Path(__file__).resolve().parents[2] / "fixtures" / "models"
EXPECTED = json.loads((MODELS / "expected.json").read_text())
SAFE_FIXTURES = sorted(
    name for name, facts in EXPECTED.items() if not name.startswith("_") and name != "breaks_lambda"
)


def _config(name: str) -> dict[str, Any]:
    return json.loads((MODELS / f"{name}.json").read_text())


def _with_layer(config: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    changed["config"]["layers"][index].update(changes)
    return changed


def test_lambda_is_refused_without_importing_keras() -> None:
    code = (
        "import json, sys\n"
        "from grader.errors import UnsafeLayer\n"
        "from grader.training.safe_model import check_model_config\n"
        f"config = json.load(open({str(MODELS / 'breaks_lambda.json')!r}))\n"
        "try:\n"
        "    check_model_config(config)\n"
        "except UnsafeLayer as exc:\n"
        "    print(exc.message)\n"
        "print('keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    message, keras_imported = out.stdout.strip().splitlines()
    assert message.startswith("Layer `scale` (Lambda) carries Python code.")
    assert keras_imported == "False"


@pytest.mark.tf
def test_a_custom_class_is_refused() -> None:
    config = _with_layer(
        _config("smoke_separable"),
        1,
        class_name="MyConv",
        module="student.layers",
        registered_name="Custom>MyConv",
    )
    with pytest.raises(UnsafeLayer, match=r"\(MyConv\) is not a built-in Keras layer"):
        check_model_config(config)


@pytest.mark.tf
def test_a_builtin_name_registered_from_another_module_is_refused() -> None:
    layer = _config("smoke_separable")["config"]["layers"][1]
    config = _with_layer(
        _config("smoke_separable"),
        1,
        module="student.layers",
        registered_name=f"Custom>{layer['class_name']}",
    )
    with pytest.raises(UnsafeLayer, match="is registered as `Custom>SeparableConv2D` from module"):
        check_model_config(config)


@pytest.mark.tf
def test_a_serialized_function_inside_a_layer_is_refused() -> None:
    config = _config("smoke_separable")
    dense = config["config"]["layers"][-1]["config"]
    dense["activation"] = {
        "module": "builtins",
        "class_name": "function",
        "config": "my_activation",
        "registered_name": "function",
    }
    with pytest.raises(
        UnsafeLayer, match=r"Layer `dense` \(Dense\) has `activation` set to custom code"
    ):
        check_model_config(config)


def _nested_functional() -> dict[str, Any]:
    """``Sequential([Input((8,)), base])``, `base` a Functional model, as Keras 3.15 writes it."""
    dense = {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "name": "dense", "config": {"name": "dense", "units": 2},
             "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {
                 "shape": [None, 8], "dtype": "float32", "keras_history": ["x", 0, 0]}}],
                 "kwargs": {}}]}  # fmt: skip
    inner_input = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                   "name": "x", "config": {"batch_shape": [None, 8], "name": "x"},
                   "inbound_nodes": []}  # fmt: skip
    base = {"module": "keras.src.models.functional", "class_name": "Functional",
            "registered_name": "Functional",
            "config": {"name": "base", "trainable": True, "layers": [inner_input, dense],
                       "input_layers": [["x", 0, 0]],
                       "output_layers": [["dense", 0, 0]]}}  # fmt: skip
    outer_input = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                   "config": {"batch_shape": [None, 8], "name": "outer_input"}}  # fmt: skip
    outer = {"name": "outer", "trainable": True, "layers": [outer_input, base]}
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": outer}  # fmt: skip


@pytest.mark.tf
def test_a_nested_functional_model_from_the_module_keras_writes_builds() -> None:
    model = build_model(_nested_functional())
    assert model.count_params() == 8 * 2 + 2


@pytest.mark.tf
@pytest.mark.parametrize(
    ("where", "module", "registered"),
    [
        ("nested", "keras.src.models.sequential", "Functional"),  # not Functional's module
        ("nested", "keras.src.models.functional", "Custom>Functional"),
        ("outermost", "student.models", None),
    ],
)
def test_a_model_class_from_another_module_is_refused(
    where: str, module: str, registered: str | None
) -> None:
    config = _nested_functional()
    target = config["config"]["layers"][1] if where == "nested" else config
    target.update(module=module, registered_name=registered)
    with pytest.raises(UnsafeLayer, match=r"(Functional|Sequential)\) (is|comes)"):
        check_model_config(config)


def test_not_a_model_config_is_invalid() -> None:
    with pytest.raises(InvalidModelConfig, match="Model config has class `Dense`"):
        check_model_config({"class_name": "Dense", "config": {}})


def test_oversized_json_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidModelConfig, match="Expected at most 2,097,152 bytes"):
        parse_model_json(" " * (MAX_CONFIG_BYTES + 1))


@pytest.mark.tf
@pytest.mark.parametrize("name", SAFE_FIXTURES)
def test_course_models_build_with_keras_parameter_counts(name: str) -> None:
    # expected.json holds the counts Keras reported when the fixtures were made.
    model = build_model(_config(name))
    assert model.count_params() == sum(EXPECTED[name]["layer_params"].values())


@pytest.mark.tf
def test_weights_are_fresh_not_the_uploads() -> None:
    import keras

    uploaded = keras.saving.load_model(MODELS / "smoke_separable.keras", compile=False)
    rebuilt = build_model(json.loads(uploaded.to_json()))
    assert any(
        (a != b).any() for a, b in zip(uploaded.get_weights(), rebuilt.get_weights(), strict=True)
    )


@pytest.mark.tf
def test_io_shapes_are_checked_against_the_dataset() -> None:
    model = build_model(_config("smoke_separable"))
    check_io_shapes(model, (16, 16, 3), 4)
    with pytest.raises(
        InvalidModelConfig, match=r"has output shape \(None, 4\)\. Expected \(None, 10\)"
    ):
        check_io_shapes(model, (16, 16, 3), 10)
    with pytest.raises(InvalidModelConfig, match=r"takes inputs of shape \(None, 16, 16, 3\)"):
        check_io_shapes(model, (32, 32, 3), 4)
