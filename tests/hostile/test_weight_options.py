"""Attack: layer options that add weights the parameter count does not see.

A student under a parameter budget writes options that make Keras create more weights than a
naive count of kernels and biases: ``lora_rank`` on a convolution (two more factors per kernel),
a quantized dtype policy written as a string (integer kernels plus scales), or an argument Keras
does not know (which Keras refuses, so the verdict would be about a model that cannot train). The
grader must count such weights exactly, as Keras' ``count_params()`` does, or refuse the layer,
never pass the model on a smaller number.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from grader.errors import InvalidModelConfig, UnsupportedLayer
from grader.presets import load_preset
from grader.report import check_model

# The smoke preset's budget (grader/presets/smoke.yaml).
BUDGET = 20_000


def _layer(class_name: str, **config: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": class_name, "config": config}


def lora_model(lora_rank: int | None) -> dict[str, Any]:
    """A Sequential config a student could write for the smoke assignment (16x16x3, 4 classes).

    Kernels and biases alone: 91 + 688 + 18,496 + 260 = 19,535 parameters, under the budget.
    """
    conv: dict[str, Any] = {"name": "conv", "filters": 64, "kernel_size": 3, "padding": "same"}
    if lora_rank is not None:
        conv["lora_rank"] = lora_rank
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "lora_attack",
            "layers": [
                _layer("InputLayer", name="image", batch_shape=[None, 16, 16, 3]),
                _layer(
                    "SeparableConv2D",
                    name="sep1",
                    filters=16,
                    kernel_size=3,
                    padding="same",
                    depth_multiplier=1,
                ),
                _layer(
                    "SeparableConv2D",
                    name="sep2",
                    filters=32,
                    kernel_size=3,
                    padding="same",
                    depth_multiplier=1,
                ),
                _layer("Conv2D", **conv),
                _layer("GlobalAveragePooling2D", name="gap"),
                _layer("Dense", name="head", units=4, activation="softmax"),
            ],
        },
    }


def _by_hand(lora_rank: int) -> tuple[int, int]:
    """(total, trainable) of `lora_model(lora_rank)`, counted by hand from Keras' enable_lora."""
    sep1 = 3 * 3 * 3 + 3 * 16 + 16
    sep2 = 3 * 3 * 16 + 16 * 32 + 32
    kernel, bias = 3 * 3 * 32 * 64, 64
    lora_a, lora_b = 3 * 3 * 32 * lora_rank, lora_rank * 64  # kernel.shape[:-1] + (r,), (r, 64)
    head = 64 * 4 + 4
    total = sep1 + sep2 + kernel + bias + lora_a + lora_b + head
    return total, total - kernel  # LoRA freezes the convolution's kernel


def _rule(report: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["id"] == rule_id)


def test_model_without_lora_is_under_the_budget() -> None:
    report = check_model(lora_model(None), load_preset("smoke"))
    assert report["params"]["total"] == 19_535
    assert _rule(report, "max_params")["passed"] is True


def test_lora_on_a_convolution_is_counted_and_fails_the_budget() -> None:
    report = check_model(lora_model(64), load_preset("smoke"))
    total, trainable = _by_hand(64)
    assert total > BUDGET
    assert report["params"] == {
        "total": total,
        "trainable": trainable,
        "non_trainable": total - trainable,
    }
    conv = next(row for row in report["layers"] if row["name"] == "conv")
    assert conv["params"] == 3 * 3 * 32 * 64 + 64 + 3 * 3 * 32 * 64 + 64 * 64
    verdict = _rule(report, "max_params")
    assert verdict["passed"] is False
    assert verdict["measured"] == total


def test_quantized_dtype_written_as_a_string_is_refused() -> None:
    config = lora_model(None)
    config["config"]["layers"][-1]["config"]["dtype"] = "int8_from_float32"
    refusal = r"Layer `head` \(Dense\) is quantized: `dtype` is 'int8_from_float32'"
    with pytest.raises(UnsupportedLayer, match=refusal):
        check_model(config, load_preset("smoke"))


@pytest.mark.parametrize(
    ("layer", "key"),
    [
        # Not a SeparableConv2D argument: Keras refuses the model.
        pytest.param(1, "lora_rank", id="lora_on_separable"),
        pytest.param(3, "kernel_sizes", id="misspelt_argument"),
    ],
)
def test_an_argument_keras_does_not_accept_is_refused(layer: int, key: str) -> None:
    config = lora_model(None)
    config["config"]["layers"][layer]["config"][key] = 2
    with pytest.raises(InvalidModelConfig, match=rf"has no argument `{key}`"):
        check_model(config, load_preset("smoke"))


@pytest.mark.tf
@pytest.mark.parametrize("lora_rank", [1, 64])
def test_count_equals_keras(lora_rank: int) -> None:
    from tests.support.keras_models import keras

    config = lora_model(lora_rank)
    model = keras.saving.deserialize_keras_object(copy.deepcopy(config), safe_mode=True)
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    report = check_model(config, load_preset("smoke"))
    assert (report["params"]["total"], report["params"]["trainable"]) == (
        model.count_params(),
        trainable,
    )
    assert (report["params"]["total"], report["params"]["trainable"]) == _by_hand(lora_rank)
