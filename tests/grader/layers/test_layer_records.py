"""Every supported layer class has one complete record, and every class table is built from it.

A record (`grader.layers.LayerSpec`) holds a class's output shape, weights, receptive-field
geometry, rule families, safety record and zero behaviour (`grader.graph_effect`). The
receptive-field tables (`grader.rf.geometry`), the rule families (`grader.rules.families`), the
built-in class list (`grader.layers.keras_classes`), the activation objects
(`grader.layer_arguments`) and the zero tables of `grader.graph_effect` must say exactly what
the records say.
"""

from __future__ import annotations

import dataclasses

import pytest

from grader.keras_config import CALL_TAKES_MASK
from grader.keras_objects import ACTIVATION_LAYERS
from grader.layers import REGISTRY, LayerSpec, supported_classes
from grader.layers.base import RULE_FAMILIES, Safety, Zeros
from grader.layers.keras_classes import (
    CODE_CARRYING_CLASSES,
    KERAS_BUILTIN_LAYERS,
    UNSUPPORTED_BUILTIN_LAYERS,
)
from grader.rf import geometry
from grader.rf.effects import GEOMETRY_CATEGORIES, Geometry
from grader.rf.readers import CHANNEL_MIX, ELEMENTWISE, GLOBAL_POOLING, INFERENCE_IDENTITY
from grader.rules import families
from tests.support.layer_configs import FAMILIES as RANDOM_CONFIGS


def record_problems(spec: LayerSpec) -> list[str]:
    """What a layer record lacks, in words; empty for a complete record."""
    problems = []
    if not callable(spec.infer_output_shape):
        problems.append("no output-shape inference")
    if not callable(spec.infer_weights):
        problems.append("no weights (use `no_weights` for a class without any)")
    if not isinstance(spec.geometry, Geometry):
        problems.append("no receptive-field geometry")
    elif spec.geometry.category not in GEOMETRY_CATEGORIES or not spec.geometry.why:
        category = spec.geometry.category
        problems.append(f"a geometry of unknown category {category!r} or without `why`")
    if spec.families is None:
        problems.append("no rule families (use NO_FAMILY for none)")
    elif not spec.families <= RULE_FAMILIES:
        problems.append(f"unknown rule families {sorted(spec.families - RULE_FAMILIES)}")
    if not isinstance(spec.safety, Safety):
        problems.append("no safety record")
    elif not spec.safety.builtin or spec.class_name in CODE_CARRYING_CLASSES:
        problems.append("a safety record that is not a code-free built-in Keras class")
    if not isinstance(spec.zeros, Zeros):
        problems.append("no zero behaviour (use NO_ZERO_RULE for none)")
    else:
        # Each data-path weight is named as its config arguments are: `<name>_initializer`.
        unknown = [
            w
            for w in spec.zeros.data_weights
            if f"{w}_initializer" not in spec.arguments or f"{w}_constraint" not in spec.arguments
        ]
        if unknown or (spec.zeros.linear and not spec.zeros.data_weights):
            problems.append(f"a zero behaviour naming weights the class lacks: {unknown}")
    if spec.class_name not in RANDOM_CONFIGS:
        problems.append("no row in tests/support/layer_configs.py (parameter counts vs Keras)")
    return problems


@pytest.mark.parametrize("class_name", supported_classes())
def test_every_supported_class_has_a_complete_record(class_name: str) -> None:
    assert record_problems(REGISTRY[class_name]) == []


@pytest.mark.parametrize(
    ("part", "value", "problem"),
    [
        ("geometry", None, "no receptive-field geometry"),
        ("families", None, "no rule families (use NO_FAMILY for none)"),
        ("families", frozenset({"convolution"}), "unknown rule families ['convolution']"),
        ("safety", None, "no safety record"),
        ("safety", Safety(builtin=False), "a safety record that is not"),
        ("zeros", None, "no zero behaviour"),
        ("zeros", Zeros(data_weights=("gamma",)), "a zero behaviour naming weights"),
    ],
)
def test_a_record_missing_a_part_is_reported(part: str, value: object, problem: str) -> None:
    spec = dataclasses.replace(REGISTRY["Conv2D"], **{part: value})
    assert len(record_problems(spec)) == 1
    assert record_problems(spec)[0].startswith(problem)


@pytest.mark.parametrize(
    ("class_name", "preserves_zero", "data_weights", "linear"),
    [
        # Written out here, not read from the records: what each class computes.
        ("Conv2D", False, ("kernel",), True),
        ("SeparableConv2D", False, ("depthwise", "pointwise"), True),
        ("DepthwiseConv2D", False, ("depthwise",), True),
        ("Dense", False, ("kernel",), True),
        ("BatchNormalization", False, ("gamma",), False),
        ("MaxPooling2D", True, (), False),
        ("Dropout", True, (), False),
        ("Add", True, (), False),
        ("Softmax", False, (), False),  # softmax(0) is uniform, not 0
        ("GaussianNoise", False, (), False),
    ],
)
def test_zero_behaviour_of_some_classes(class_name, preserves_zero, data_weights, linear) -> None:
    zeros = REGISTRY[class_name].zeros
    assert zeros == Zeros(preserves_zero=preserves_zero, data_weights=data_weights, linear=linear)


def _with(predicate) -> frozenset[str]:
    return frozenset(name for name, spec in REGISTRY.items() if predicate(spec))


def test_receptive_field_tables_are_the_records() -> None:
    assert {
        "InputLayer": ELEMENTWISE,
        **{name: spec.geometry for name, spec in REGISTRY.items()},
    } == geometry.RECORDS
    assert _with(lambda s: s.geometry is INFERENCE_IDENTITY) == geometry.INFERENCE_IDENTITY_CLASSES
    assert {"InputLayer"} | _with(
        lambda s: s.geometry is ELEMENTWISE
    ) == geometry.ELEMENTWISE_CLASSES
    assert _with(lambda s: s.geometry is GLOBAL_POOLING) == geometry.GLOBAL_POOL_CLASSES
    assert (
        geometry.INFERENCE_IDENTITY_CLASSES
        | geometry.ELEMENTWISE_CLASSES
        | _with(lambda s: s.geometry is CHANNEL_MIX)
    ) == geometry.POSITION_IDENTITY_CLASSES
    # Spot checks against what the course formula needs, independent of the records.
    assert "Dense" in geometry.POSITION_IDENTITY_CLASSES
    assert "Masking" not in geometry.POSITION_IDENTITY_CLASSES
    assert {
        f"Global{op}Pooling{rank}D" for op in ("Average", "Max") for rank in (1, 2, 3)
    } == geometry.GLOBAL_POOL_CLASSES


@pytest.mark.parametrize(
    ("table", "family"),
    [
        ("PLAIN_CONVS", "plain_conv"),
        ("SEPARABLE_CONVS", "separable_conv"),
        ("DEPTHWISE_CONVS", "depthwise_conv"),
        ("DROPOUTS", "dropout"),
        ("GLOBAL_AVERAGE_POOLING", "global_average_pooling"),
        ("GLOBAL_MAX_POOLING", "global_max_pooling"),
        ("IMAGE_PRESERVING", "image_preserving"),
    ],
)
def test_rule_families_are_the_records(table: str, family: str) -> None:
    assert family in RULE_FAMILIES
    members = getattr(families, table)
    assert members == _with(lambda s: family in s.families)
    assert members, f"no supported class is in family {family}"


def test_every_rule_family_has_members() -> None:
    assert {family for spec in REGISTRY.values() for family in spec.families} == RULE_FAMILIES


def test_built_in_lists_are_the_records() -> None:
    supported = _with(lambda s: s.safety.builtin)
    assert set(REGISTRY) == supported
    assert UNSUPPORTED_BUILTIN_LAYERS | supported == KERAS_BUILTIN_LAYERS
    assert not UNSUPPORTED_BUILTIN_LAYERS & set(REGISTRY)
    assert not KERAS_BUILTIN_LAYERS & CODE_CARRYING_CLASSES
    assert {
        name: spec.safety.activation_arguments
        for name, spec in REGISTRY.items()
        if spec.safety.activation_arguments is not None
    } == ACTIVATION_LAYERS
    assert list(ACTIVATION_LAYERS) == ["ReLU", "LeakyReLU", "ELU"]


def test_call_mask_table_is_the_records() -> None:
    assert _with(lambda s: s.call_takes_mask) == CALL_TAKES_MASK
    assert {"BatchNormalization", "GlobalAveragePooling1D", "Softmax"} == CALL_TAKES_MASK


@pytest.mark.tf
def test_built_in_list_is_no_wider_than_what_keras_exports() -> None:
    """The static list replaces a walk of `keras.layers` in the sandboxes' gate: it may only be
    stricter (canonical names, no aliases), never name a class Keras does not export."""
    import keras

    exported = set()
    for name in dir(keras.layers):
        candidate = getattr(keras.layers, name)
        if isinstance(candidate, type) and issubclass(candidate, keras.layers.Layer):
            exported |= {name, candidate.__name__}
    assert KERAS_BUILTIN_LAYERS - exported == set()
