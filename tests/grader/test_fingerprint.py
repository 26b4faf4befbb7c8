"""`grader.fingerprint`: the same network written differently has one fingerprint; different
networks do not, and the edit distance says how far apart they are.

Real models: the committed Keras-written fixtures (renamed and reformatted here), and models
Keras builds from differently written code (`tf` tests).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from grader.fingerprint import (
    alignment,
    edit_distance,
    fingerprint,
    near_duplicate_limit,
    similarity,
    token_difference,
)

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def load(name: str) -> dict[str, Any]:
    return json.loads((MODELS / name).read_text())


def renamed(config: dict[str, Any], prefix: str = "my_") -> dict[str, Any]:
    """Every layer and the model renamed, every reference to them too, as a copier would."""
    text = json.dumps(config)
    names = [layer["config"]["name"] for layer in config["config"]["layers"]]
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(f'"{name}"', f'"{prefix}{name[::-1]}"')
    renamed_config = json.loads(text)
    renamed_config["config"]["name"] = "totally_original_net"
    return renamed_config


@pytest.mark.parametrize(
    "name", ["cifar10_separable_reference.json", "cifar10_dilated_reference.json"]
)
def test_renaming_and_reformatting_change_nothing(name):
    original = load(name)
    copied = json.loads(json.dumps(renamed(original), indent=4, sort_keys=True))
    assert fingerprint(copied).digest == fingerprint(original).digest
    assert fingerprint(copied).tokens == fingerprint(original).tokens


def test_initializers_and_seeds_are_not_the_architecture():
    original = load("cifar10_separable_reference.json")
    copied = copy.deepcopy(original)
    for layer in copied["config"]["layers"]:
        for key in list(layer["config"]):
            if key.endswith("_initializer"):
                layer["config"][key] = {
                    "module": "keras.initializers",
                    "class_name": "HeNormal",
                    "config": {"seed": 7},
                    "registered_name": None,
                }
    assert fingerprint(copied).digest == fingerprint(original).digest


def test_the_two_shipped_reference_models_are_far_apart():
    a = fingerprint(load("cifar10_separable_reference.json"))
    b = fingerprint(load("cifar10_dilated_reference.json"))
    assert a.digest != b.digest
    limit = near_duplicate_limit(max(len(a.tokens), len(b.tokens)))
    assert edit_distance(a.tokens, b.tokens, limit=limit) is None
    assert similarity(a.tokens, b.tokens) < 0.6


def test_one_changed_hyperparameter_is_one_edit():
    original = load("cifar10_separable_reference.json")
    changed = copy.deepcopy(original)
    dropout = next(lay for lay in changed["config"]["layers"] if lay["class_name"] == "Dropout")
    dropout["config"]["rate"] = 0.05
    a, b = fingerprint(original), fingerprint(changed)
    assert a.digest != b.digest
    assert edit_distance(a.tokens, b.tokens) == 1
    assert [op for op, *_ in alignment(a.tokens, b.tokens)].count("change") == 1


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("kitten", "sitting", 3),  # the textbook example
        ("", "abc", 3),
        ("flaw", "lawn", 2),
        ("same", "same", 0),
    ],
)
def test_edit_distance_matches_hand_computed_values(a, b, distance):
    assert edit_distance(list(a), list(b)) == distance
    assert token_difference(list(a), list(b)) <= distance
    assert edit_distance(list(a), list(b), limit=distance) == distance
    if distance:
        assert edit_distance(list(a), list(b), limit=distance - 1) is None


def test_the_alignment_is_a_minimal_edit_script():
    rows = alignment(list("kitten"), list("sitting"))
    assert sum(op != "equal" for op, *_ in rows) == 3
    assert [i for _, i, _ in rows if i is not None] == list(range(6))
    assert [j for *_, j in rows if j is not None] == list(range(7))


# --- models Keras builds from differently written code ----------------------------------------


def _config(model) -> dict[str, Any]:
    return json.loads(model.to_json())


def sequential_style():
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.SeparableConv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.SeparableConv2D(64, (3, 3), padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dropout(0.1),
            layers.Dense(10, activation="softmax"),
        ],
        name="student_a",
    )


def functional_style(extra_dropout: bool = False, widths: tuple[int, int, int] = (16, 32, 64)):
    import keras
    from keras import layers

    image = keras.Input(shape=(32, 32, 3), name="pixels")
    x = layers.Conv2D(widths[0], kernel_size=(3, 3), padding="same", name="c1")(image)
    x = layers.ReLU(name="r1")(x)
    x = layers.SeparableConv2D(widths[1], 3, padding="same", name="s1")(x)
    x = layers.Activation("relu", name="r2")(x)
    x = layers.MaxPooling2D(pool_size=(2, 2), name="p")(x)
    x = layers.SeparableConv2D(widths[2], 3, padding="same", name="s2")(x)
    x = layers.ReLU(name="r3")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if extra_dropout:
        x = layers.Dropout(0.05, name="extra")(x)
    x = layers.Dropout(0.1, name="d")(x)
    out = layers.Dense(10, name="logits")(x)
    out = layers.Softmax(name="probabilities")(out)
    return keras.Model(image, out, name="student_b")


def residual(branch_first: str):
    """Two parallel branches merged by Add, defined in either order."""
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3))
    stem = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)

    def wide(x):
        return layers.SeparableConv2D(16, 5, padding="same", name=f"wide_{branch_first}")(x)

    def narrow(x):
        return layers.Conv2D(16, 1, name=f"narrow_{branch_first}")(x)

    if branch_first == "wide":
        a, b = wide(stem), narrow(stem)
        merged = layers.Add()([a, b])
    else:
        b, a = narrow(stem), wide(stem)
        merged = layers.Add()([b, a])
    x = layers.GlobalAveragePooling2D()(merged)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


@pytest.mark.tf
def test_sequential_and_functional_writing_of_one_network_agree():
    a = fingerprint(_config(sequential_style()))
    b = fingerprint(_config(functional_style()))
    assert a.digest == b.digest
    import keras

    # Keras agrees these are one network: the same parameters, layer for layer.
    assert sequential_style().count_params() == functional_style().count_params()
    assert keras.__version__


@pytest.mark.tf
def test_the_order_branches_are_defined_in_does_not_matter():
    assert (
        fingerprint(_config(residual("wide"))).digest
        == fingerprint(_config(residual("narrow"))).digest
    )


@pytest.mark.tf
def test_an_added_layer_is_a_near_duplicate_and_other_widths_are_not():
    base = fingerprint(_config(functional_style())).tokens
    padded = fingerprint(_config(functional_style(extra_dropout=True))).tokens
    wider = fingerprint(_config(functional_style(widths=(24, 48, 96)))).tokens
    limit = near_duplicate_limit(len(base))
    assert edit_distance(base, padded, limit=limit) == 1
    # Other widths change every call's output shape from the first convolution on.
    assert edit_distance(base, wider, limit=limit) is None
    assert edit_distance(base, wider) >= 8
