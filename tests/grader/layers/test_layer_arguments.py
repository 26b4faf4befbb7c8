"""The allow-list of serialized objects in layer arguments (`grader.layer_arguments`).

Accepted forms are the ones Keras 3 itself writes (the ``tf`` tests serialize real layers and
check the tables against the installed Keras); refused forms are written by hand, the way a
hostile or broken upload would hold them, so most tests need no TensorFlow.
"""

from __future__ import annotations

import copy
import inspect
import json
from typing import Any

import numpy as np
import pytest

from grader.errors import GraderError, InvalidModelConfig, UnsafeLayer, UnsupportedLayer
from grader.keras_objects import (
    ACTIVATION_LAYERS,
    ACTIVATIONS,
    CONSTRAINTS,
    INITIALIZERS,
    REGULARIZERS,
)
from grader.layer_arguments import check_layer_arguments


def _object(module: str | None, class_name: str, config: Any) -> dict[str, Any]:
    """A serialized Keras object, as Keras 3 writes it."""
    data: dict[str, Any] = {"class_name": class_name, "config": config, "registered_name": None}
    if module is not None:
        data["module"] = module
    return data


FLOAT32 = _object("keras", "DTypePolicy", {"name": "float32"})


def _dense(**changes: Any) -> dict[str, Any]:
    """A Dense layer entry of a Keras 3 Sequential config, with `changes` to its arguments."""
    config = {
        "name": "dense",
        "trainable": True,
        "dtype": copy.deepcopy(FLOAT32),
        "units": 8,
        "activation": "relu",
        "use_bias": True,
        "kernel_initializer": _object(
            "keras.initializers",
            "GlorotUniform",
            {"seed": None, "input_axes": None, "output_axes": None},
        ),
        "bias_initializer": _object("keras.initializers", "Zeros", {}),
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
        "quantization_config": None,
    }
    config.update(changes)
    return _object("keras.layers", "Dense", config)


def _sequential_dense() -> dict[str, Any]:
    """``keras.Sequential([Input((8,)), Dense(8)])`` as Keras 3 writes it."""
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "trainable": True,
            "dtype": copy.deepcopy(FLOAT32),
            "layers": [
                _object(
                    "keras.layers",
                    "InputLayer",
                    {"batch_shape": [None, 8], "dtype": "float32", "name": "input_layer"},
                ),
                _dense(activation="linear"),
            ],
            "build_input_shape": [None, 8],
        },
        "registered_name": None,
        "build_config": {"input_shape": [None, 8]},
    }


def _check(layer: dict[str, Any]) -> None:
    check_layer_arguments(layer, "dense")


# --- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"activation": "swish"}, id="activation_by_name"),
        pytest.param({"activation": None}, id="activation_null"),
        pytest.param(
            {"activation": _object("builtins", "function", "relu") | {"registered_name": "relu"}},
            id="activation_function_builtins",
        ),
        pytest.param(
            {"activation": _object("keras.activations", "function", "tanh")},
            id="activation_function_keras_activations",
        ),
        pytest.param(
            {
                "activation": _object(
                    "keras.layers",
                    "LeakyReLU",
                    {"name": "leaky_re_lu", "trainable": True, "dtype": FLOAT32,
                     "negative_slope": 0.1},
                )
            },
            id="leaky_relu_layer_as_activation",
        ),
        pytest.param(
            {"activation": _object("keras.layers", "ReLU", {"max_value": 6.0, "threshold": 0.0})},
            id="relu_layer_as_activation",
        ),
        pytest.param({"kernel_initializer": "he_normal"}, id="initializer_by_name"),
        pytest.param(
            {"kernel_initializer": _object("keras.initializers", "Constant", {"value": 0.1})},
            id="constant_scalar",
        ),
        pytest.param(
            {
                "kernel_initializer": _object(
                    "keras.initializers",
                    "VarianceScaling",
                    {"seed": 3, "scale": 2.0, "mode": "fan_out",
                     "distribution": "truncated_normal", "input_axes": [0], "output_axes": None},
                )
            },
            id="variance_scaling",
        ),
        pytest.param(
            {"kernel_initializer": {"class_name": "RandomNormal", "config": {"stddev": 0.01}}},
            id="initializer_without_module",
        ),
        pytest.param(
            {
                "kernel_regularizer": _object("keras.regularizers", "L1L2", {"l1": 0.1, "l2": 0.2}),
                "bias_regularizer": "l2",
                "activity_regularizer": _object(
                    "keras.regularizers", "OrthogonalRegularizer", {"factor": 0.01, "mode": "rows"}
                ),
            },
            id="regularizers",
        ),
        pytest.param(
            {
                "kernel_constraint": _object(
                    "keras.constraints", "MaxNorm", {"max_value": 2, "axis": [0, 1]}
                ),
                "bias_constraint": _object("keras.constraints", "NonNeg", {}),
            },
            id="constraints",
        ),
        pytest.param(
            {"dtype": _object("keras", "DTypePolicy", {"name": "mixed_float16"})},
            id="mixed_precision_policy",
        ),
        pytest.param({"dtype": "bfloat16"}, id="dtype_by_name"),
    ],
)  # fmt: skip
def test_built_in_objects_in_their_positions_are_accepted(changes: dict[str, Any]) -> None:
    _check(_dense(**changes))


def test_a_one_dimensional_rescaling_array_is_accepted() -> None:
    scale = {"class_name": "__numpy__", "config": {"value": [1.0, 2.0, 3.0], "dtype": "float64"}}
    layer = _object("keras.layers", "Rescaling", {"name": "rescaling", "scale": scale, "offset": 0})
    check_layer_arguments(layer, "rescaling")


def test_the_outermost_compile_config_is_left_to_the_trainer() -> None:
    # Never given to Keras: `safe_model.build_model` drops it, `.keras` files load compile=False.
    model = _sequential_dense()
    model["compile_config"] = {"optimizer": _sequential_dense(), "loss": "mse"}
    check_layer_arguments(model, "sequential", outermost=True)


def test_an_empty_compile_config_of_a_nested_model_is_accepted() -> None:
    nested = _sequential_dense() | {"compile_config": {}}  # what Keras writes when uncompiled
    check_layer_arguments(nested, "block")


# --- refused -----------------------------------------------------------------------------------


HUGE = [0.5] * 100_000


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        pytest.param(
            {"activation": _sequential_dense()},
            InvalidModelConfig,
            r"Layer `dense` \(Dense\) has `activation` set to a serialized `Sequential` model "
            r"from `keras`\. Expected a built-in activation by name, e.g\. activation='relu'",
            id="model_as_activation",
        ),
        pytest.param(
            {"activation": _object("keras.layers", "PReLU", {"name": "p_re_lu"})},
            InvalidModelConfig,
            r"`activation` set to a serialized `PReLU` from `keras.layers`.*add it after this "
            "layer instead",
            id="layer_with_weights_as_activation",
        ),
        pytest.param(
            {"activation": _object("keras.layers", "LeakyReLU", {"negative_slope": HUGE})},
            InvalidModelConfig,
            r"`activation` set to LeakyReLU with `negative_slope` = a list of 100,000 values",
            id="activation_layer_with_data",
        ),
        pytest.param(
            {"activation": _object("keras.layers", "ReLU", {}) | {"shared_object_id": 7}},
            InvalidModelConfig,
            r"`activation` set to a serialized `ReLU`",
            id="activation_layer_shared_with_another_object",
        ),
        pytest.param(
            {"activation": "glu"},
            UnsupportedLayer,
            r"`activation` set to 'glu', which halves the last axis",
            id="glu",
        ),
        pytest.param(
            {"activation": "threshold"},
            InvalidModelConfig,
            r"`activation` set to 'threshold', which needs a threshold",
            id="threshold",
        ),
        pytest.param(
            {"activation": 5},
            InvalidModelConfig,
            r"`activation` set to 5\. Expected a built-in activation by name",
            id="number_as_activation",
        ),
        pytest.param(
            {"kernel_initializer": True},
            InvalidModelConfig,
            r"`kernel_initializer` set to True\. Expected a built-in initializer",
            id="boolean_as_initializer",
        ),
        pytest.param(
            {"activation": "relu7"},
            InvalidModelConfig,
            r"`activation` set to 'relu7', which is not a built-in activation\. Expected one of",
            id="unknown_activation",
        ),
        pytest.param(
            {"activation": _object("builtins", "function", "my_activation")},
            UnsafeLayer,
            r"`activation` set to custom code \(my_activation from module `builtins`",
            id="custom_function",
        ),
        pytest.param(
            {"kernel_constraint": _dense()},
            InvalidModelConfig,
            r"`kernel_constraint` set to a serialized `Dense` from `keras.layers`\. Expected a "
            "built-in constraint",
            id="layer_as_constraint",
        ),
        pytest.param(
            {"kernel_regularizer": _object("keras.layers", "TFSMLayer", {"filepath": "/x"})},
            UnsafeLayer,
            r"`kernel_regularizer` set to custom code \(a `TFSMLayer` layer, which runs or loads",
            id="savedmodel_loader_as_regularizer",
        ),
        pytest.param(
            {
                "kernel_initializer": _object(
                    "keras.initializers",
                    "Constant",
                    {"value": {"class_name": "__numpy__",
                               "config": {"value": [[1.0, 2.0]] * 4, "dtype": "float32"}}},
                )
            },
            InvalidModelConfig,
            r"`kernel_initializer` Constant with `value` = an array of 8 values: data, not a "
            r"hyperparameter\. Expected .*Constant\(0\.1\); the grader trains every model from "
            "fresh weights",
            id="constant_of_an_array",
        ),
        pytest.param(
            {"kernel_initializer": _object("keras.initializers", "Constant", {"value": [1, 2]})},
            InvalidModelConfig,
            r"Constant with `value` = a list of 2 values: data, not a hyperparameter",
            id="constant_of_a_list",
        ),
        pytest.param(
            {"bias_initializer": _object("keras.initializers", "RandomNormal", {"mean": HUGE})},
            InvalidModelConfig,
            r"RandomNormal with `mean` = a list of 100,000 values: data",
            id="huge_list_as_initializer_argument",
        ),
        pytest.param(
            {
                "kernel_initializer": _object(
                    "keras.initializers",
                    "GlorotUniform",
                    {"seed": _object("keras.random", "SeedGenerator", {"seed": 1})},
                )
            },
            InvalidModelConfig,
            r"GlorotUniform with `seed` = a serialized `SeedGenerator`",
            id="object_as_seed",
        ),
        pytest.param(
            {"kernel_initializer": _object("keras.initializers", "STFT", {})},
            InvalidModelConfig,
            r"`kernel_initializer` set to a serialized `STFT`",
            id="initializer_of_fixed_values",
        ),
        pytest.param(
            {"kernel_initializer": {"class_name": "VarianceScaling", "config": {"mode": "rows"}}},
            InvalidModelConfig,
            r"VarianceScaling with `mode` = 'rows'",
            id="keyword_keras_refuses",
        ),
        pytest.param(
            {"kernel_initializer": _object("keras.initializers", "HeNormal", {"gain": 2.0})},
            InvalidModelConfig,
            r"HeNormal with `gain` = 2\.0",
            id="argument_the_class_does_not_take",
        ),
        pytest.param(
            {"kernel_regularizer": _object("keras.regularizers", "L2", {"l2": -1.0})},
            InvalidModelConfig,
            r"L2 with `l2` = -1\.0",
            id="negative_penalty",
        ),
        pytest.param(
            {"bias_initializer": "my_init"},
            InvalidModelConfig,
            r"`bias_initializer` set to 'my_init', which is not a built-in initializer",
            id="unknown_initializer_name",
        ),
        pytest.param(
            {"kernel_initializer": _object("student.init", "GlorotUniform", {})},
            UnsafeLayer,
            r"`kernel_initializer` set to custom code \(GlorotUniform from module `student.init`",
            id="foreign_module",
        ),
        pytest.param(
            {"kernel_initializer": {"class_name": "Evil", "config": {}}},
            UnsafeLayer,
            r"`kernel_initializer` set to custom code \(`Evil`, not a Keras class",
            id="unknown_class",
        ),
        pytest.param(
            {"dtype": "int8_from_float32"},
            UnsupportedLayer,
            r"Layer `dense` \(Dense\) is quantized: `dtype` is 'int8_from_float32'",
            id="quantized_dtype_by_name",
        ),
        pytest.param(
            {"dtype": _object("keras", "DTypePolicyMap", {"default_policy": None})},
            InvalidModelConfig,
            r"`dtype` set to a serialized `DTypePolicyMap`",
            id="policy_map",
        ),
        pytest.param(
            {"dtype": _object("keras", "DTypePolicy", {"name": "int32"})},
            InvalidModelConfig,
            r"`dtype` set to a serialized `DTypePolicy`",
            id="integer_policy_on_a_layer_with_weights",
        ),
        pytest.param(
            {"quantization_config": _object("keras.quantizers", "Int8QuantizationConfig", {})},
            UnsupportedLayer,
            r"Layer `dense` \(Dense\) is quantized: `quantization_config` is a serialized "
            r"`Int8QuantizationConfig` from `keras.quantizers`",
            id="quantization_config_object",
        ),
        pytest.param(
            {"weights": [[0.0] * 8] * 8},
            InvalidModelConfig,
            r"has `weights` set to a list of 64 values: initial weights",
            id="initial_weights",
        ),
        pytest.param(
            {"renorm_clipping": {"rmax": _sequential_dense()}},
            InvalidModelConfig,
            r"`renorm_clipping` set to a serialized `Sequential` model .* no object belongs there",
            id="object_in_a_plain_argument",
        ),
    ],
)  # fmt: skip
def test_objects_out_of_place_are_refused_naming_layer_and_argument(
    changes: dict[str, Any], error: type[GraderError], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        _check(_dense(**changes))
    assert type(info.value) is error
    if isinstance(info.value, UnsafeLayer | UnsupportedLayer):
        assert (info.value.layer_name, info.value.class_name) == ("dense", "Dense")


def test_code_anywhere_inside_a_misplaced_object_is_unsafe() -> None:
    activation = _sequential_dense()
    activation["config"]["layers"][1]["config"]["kernel_initializer"] = {
        "class_name": "__lambda__",
        "config": {"code": "AAAA"},
    }
    with pytest.raises(UnsafeLayer, match=r"`activation` set to custom code \(a Python lambda"):
        _check(_dense(activation=activation))


def test_objects_in_call_arguments_are_refused_but_input_tensors_are_read() -> None:
    tensor = {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, 8], "dtype": "float32", "keras_history": ["x", 0, 0]},
    }
    layer = _dense() | {"inbound_nodes": [{"args": [tensor], "kwargs": {}}]}
    _check(layer)
    layer["inbound_nodes"][0]["kwargs"]["training"] = _sequential_dense()
    with pytest.raises(InvalidModelConfig, match=r"`inbound_nodes` set to a serialized `Sequent"):
        _check(layer)


def test_a_nested_model_may_not_carry_a_compile_config() -> None:
    nested = _sequential_dense() | {"compile_config": {"optimizer": "adam", "loss": "mse"}}
    with pytest.raises(InvalidModelConfig, match=r"Layer `block` \(Sequential\) is a nested mod"):
        check_layer_arguments(nested, "block")


def test_a_nested_models_own_arguments_are_checked_not_its_layers() -> None:
    nested = _sequential_dense()
    # Its layers are checked one by one by the caller, each under its own qualified name.
    nested["config"]["layers"][1]["config"]["activation"] = "relu7"
    check_layer_arguments(nested, "block")
    nested["config"]["dtype"] = _object("keras", "DTypePolicy", {"name": "nonsense"})
    with pytest.raises(InvalidModelConfig, match=r"Layer `block` \(Sequential\) has `dtype`"):
        check_layer_arguments(nested, "block")


def test_a_two_dimensional_rescaling_array_is_refused() -> None:
    scale = {"class_name": "__numpy__", "config": {"value": [[1.0], [2.0]], "dtype": "float64"}}
    layer = _object("keras.layers", "Rescaling", {"name": "rescaling", "scale": scale})
    with pytest.raises(InvalidModelConfig, match=r"`scale` set to an array of 2 values"):
        check_layer_arguments(layer, "rescaling")


def test_an_unsupported_layer_is_only_checked_for_code() -> None:
    # The analysis then says the class is unsupported: a clearer verdict than "out of place".
    wrapper = _object("keras.layers", "TimeDistributed", {"layer": _dense()})
    check_layer_arguments(wrapper, "td")
    wrapper["config"]["layer"]["config"]["activation"] = _object("student", "function", "f")
    with pytest.raises(UnsafeLayer, match=r"Layer `td` \(TimeDistributed\) has `layer` set to"):
        check_layer_arguments(wrapper, "td")


def test_the_analysis_refuses_before_counting() -> None:
    from grader.analysis import analyze

    model = _sequential_dense()
    model["config"]["layers"][1]["config"]["activation"] = _sequential_dense()
    with pytest.raises(InvalidModelConfig, match=r"Layer `dense` \(Dense\) has `activation`"):
        analyze(model)


def test_input_layers_are_checked_too_nested_ones_included() -> None:
    from grader.analysis import analyze

    model = _sequential_dense()
    model["config"]["layers"][0]["config"]["dtype"] = _sequential_dense()
    with pytest.raises(InvalidModelConfig, match=r"Layer `input_layer` \(InputLayer\) has `dty"):
        analyze(model)

    # The InputLayer of a nested Functional model, wired to the outer model's tensor.
    tensor = {"class_name": "__keras_tensor__",
              "config": {"shape": [None, 8], "dtype": "float32",
                         "keras_history": ["x", 0, 0]}}  # fmt: skip
    inner_input = _object("keras.layers", "InputLayer", {"batch_shape": [None, 8], "name": "i"})
    inner_input.update(name="i", inbound_nodes=[])
    inner_dense = _dense(activation="linear") | {"name": "dense", "inbound_nodes": [
        {"args": [tensor | {"config": tensor["config"] | {"keras_history": ["i", 0, 0]}}],
         "kwargs": {}}]}  # fmt: skip
    block = _object("keras.src.models.functional", "Functional", {
        "name": "block", "layers": [inner_input, inner_dense],
        "input_layers": [["i", 0, 0]], "output_layers": [["dense", 0, 0]]})  # fmt: skip
    block.update(name="block", inbound_nodes=[{"args": [tensor], "kwargs": {}}])
    outer_input = _object("keras.layers", "InputLayer", {"batch_shape": [None, 8], "name": "x"})
    outer_input.update(name="x", inbound_nodes=[])
    outer = _object("keras.src.models.functional", "Functional", {
        "name": "outer", "layers": [outer_input, block],
        "input_layers": [["x", 0, 0]], "output_layers": [["block", 1, 0]]})  # fmt: skip
    assert analyze(outer).total_params == 8 * 8 + 8
    inner_input["config"]["dtype"] = _sequential_dense()
    with pytest.raises(InvalidModelConfig, match=r"Layer `block/i` \(InputLayer\) has `dtype`"):
        analyze(outer)


# --- the tables against Keras ------------------------------------------------------------------


def _params(cls: type) -> set[str]:
    return {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


@pytest.mark.tf
def test_activation_names_are_exactly_keras_activations() -> None:
    from keras.src import activations

    assert set(activations.ALL_OBJECTS_DICT) == ACTIVATIONS


@pytest.mark.tf
@pytest.mark.parametrize(
    ("module", "table"),
    [("initializers", INITIALIZERS), ("regularizers", REGULARIZERS), ("constraints", CONSTRAINTS)],
)
def test_allowed_objects_take_exactly_the_arguments_keras_gives_them(module, table) -> None:
    import keras

    for class_name, args in table.items():
        cls = getattr(getattr(keras, module), class_name)
        assert _params(cls) == set(args), class_name
        # Every key Keras writes for a default instance is an argument the table allows.
        config = keras.saving.serialize_keras_object(cls())["config"] or {}
        assert set(config) <= set(args), class_name


@pytest.mark.tf
def test_activation_layers_are_weight_free_and_take_these_arguments() -> None:
    import keras

    for class_name, args in ACTIVATION_LAYERS.items():
        cls = getattr(keras.layers, class_name)
        assert set(args) <= _params(cls), class_name
        layer = cls()
        assert layer(np.ones((2, 5), "float32")).shape == (2, 5)
        assert layer.weights == []


@pytest.mark.tf
@pytest.mark.parametrize("module", ["builtins", "keras.activations"])
def test_an_accepted_function_form_rebuilds_the_activation_itself(module: str) -> None:
    import keras

    for name in sorted(ACTIVATIONS - {"glu", "threshold", "swish", "hard_swish"}):
        form = {"module": module, "class_name": "function", "config": name,
                "registered_name": "function"}  # fmt: skip
        _check(_dense(activation=form))
        assert keras.activations.get(form) is keras.activations.get(name), name
    for alias in ("swish", "hard_swish"):  # names, not functions: Keras cannot rebuild these
        form = {"module": module, "class_name": "function", "config": alias}
        with pytest.raises(InvalidModelConfig):
            _check(_dense(activation=form))


@pytest.mark.tf
def test_glu_really_changes_the_shape_keras_builds() -> None:
    import keras

    # Why `glu` is refused: the analysis would say 8 units where Keras outputs 4.
    assert keras.layers.Dense(8, activation="glu")(np.ones((2, 3), "float32")).shape == (2, 4)


def _rich_model() -> Any:
    import keras

    layers, init, reg, con = keras.layers, keras.initializers, keras.regularizers, keras.constraints
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            layers.Rescaling(np.array([1 / 255, 1 / 128, 1 / 64])),
            layers.Conv2D(
                8, 3, activation=layers.LeakyReLU(0.1),
                kernel_initializer=init.VarianceScaling(2.0, "fan_out", "uniform", seed=1),
                bias_initializer=init.Constant(0.1),
                kernel_regularizer=reg.L1L2(1e-4, 1e-3), activity_regularizer=reg.L1(1e-5),
                kernel_constraint=con.MaxNorm(3, axis=[0, 1, 2]), bias_constraint=con.NonNeg(),
            ),
            layers.BatchNormalization(gamma_constraint=con.UnitNorm(), beta_regularizer="l2"),
            layers.SeparableConv2D(
                8, 3, activation=layers.ReLU(max_value=6.0),
                depthwise_initializer=init.HeNormal(seed=2),
                pointwise_initializer=init.Orthogonal(gain=1.0, seed=3),
                depthwise_constraint=con.MinMaxNorm(0.0, 2.0),
                pointwise_regularizer=reg.OrthogonalRegularizer(0.01, "columns"),
            ),
            layers.DepthwiseConv2D(3, activation=layers.ELU(), dtype="mixed_float16"),
            layers.PReLU(alpha_initializer=init.RandomUniform(-0.1, 0.1, seed=4)),
            layers.GlobalAveragePooling2D(),
            layers.Dense(
                4, activation="softmax", kernel_initializer=init.TruncatedNormal(0.0, 0.02),
                bias_initializer="zeros",
            ),
        ]
    )  # fmt: skip


@pytest.mark.tf
def test_models_keras_writes_with_every_allowed_kind_of_object_are_accepted_and_counted() -> None:
    from grader.analysis import analyze
    from grader.training.safe_model import build_model, check_model_config

    model = _rich_model()
    config = json.loads(model.to_json())
    check_model_config(config)
    analysis = analyze(config)
    assert analysis.total_params == model.count_params()
    assert analysis.trainable_params == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert build_model(config).count_params() == model.count_params()


@pytest.mark.tf
def test_every_supported_layer_as_keras_writes_it_is_accepted() -> None:
    import keras

    from grader.layers import supported_classes

    needed = {
        "units": 2, "filters": 2, "kernel_size": 3, "output_dim": 2, "input_dim": 3, "n": 2,
        "target_shape": (4,), "dims": (1,), "height": 4, "width": 4, "factor": 0.1, "rate": 0.1,
        "stddev": 0.1, "scale": 0.5, "size": 2, "cropping": 1, "padding": 1,
        "value_range": (0, 1), "height_factor": 0.1, "width_factor": 0.1,
        "activation": "relu", "pool_size": 2,
    }  # fmt: skip
    special = {"RandomPosterization": {"factor": 4}}
    for class_name in supported_classes():
        cls = getattr(keras.layers, class_name)
        required = {
            name: needed[name]
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and name != "self"
        }  # fmt: skip
        required.update(special.get(class_name, {}))
        layer_config = keras.saving.serialize_keras_object(cls(**required))
        check_layer_arguments(layer_config, "layer")
