"""The graph builder: structure of the flattened graph, and what it refuses.

Structure tests build real Keras models (``tf``); refusal tests edit configs by hand the way a
hostile or broken upload would, so they need no TensorFlow.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from grader.errors import InvalidModelConfig, UnsafeLayer, UnsupportedLayer
from grader.graph import ModelGraph
from grader.graph_builder import build_graph


def _tensor(ref: tuple[str, int, int], shape: list[int | None]) -> dict[str, Any]:
    """An input tensor as Keras 3 records it: the producer's call, the shape and the dtype."""
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, *shape], "dtype": "float32", "keras_history": list(ref)},
    }


def _dense_layer(name: str, units: int, ref: tuple[str, int, int], width: int) -> dict[str, Any]:
    """A Dense layer entry called once, on `ref`, a tensor of `width` features."""
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": name, "trainable": True, "units": units, "use_bias": True},
        "registered_name": None,
        "name": name,
        "inbound_nodes": [{"args": [_tensor(ref, [width])], "kwargs": {}}],
    }


def _input_layer(name: str, shape: list[int | None]) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {"batch_shape": [None, *shape], "name": name},
        "registered_name": None,
        "name": name,
        "inbound_nodes": [],
    }


def functional(*layer_cfgs: dict[str, Any], inputs: Any, outputs: Any) -> dict[str, Any]:
    """A hand-written Keras 3 Functional config."""
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": "hand",
            "trainable": True,
            "layers": list(layer_cfgs),
            "input_layers": inputs,
            "output_layers": outputs,
        },
        "registered_name": "Functional",
    }


def small_functional() -> dict[str, Any]:
    return functional(
        _input_layer("x", [4]),
        _dense_layer("d1", 3, ("x", 0, 0), 4),
        _dense_layer("d2", 2, ("d1", 0, 0), 3),
        inputs=["x", 0, 0],
        outputs=[["d2", 0, 0]],
    )


def assert_topologically_sorted(graph: ModelGraph) -> None:
    for node in graph.nodes:
        assert all(i < node.id for i in node.inputs), node
        assert node.input_shapes == tuple(graph.nodes[i].output_shape for i in node.inputs)


# --- structure (pure Python) -------------------------------------------------------------------


def test_hand_written_functional_config_is_built() -> None:
    graph = build_graph(small_functional())
    assert [n.layer.name for n in graph.nodes] == ["x", "d1", "d2"]
    assert [n.output_shape for n in graph.nodes] == [(4,), (3,), (2,)]
    assert graph.inputs == (0,) and graph.outputs == (2,)
    assert graph.consumers(1)[0].layer.name == "d2"
    assert_topologically_sorted(graph)


def test_layers_listed_out_of_order_are_resolved() -> None:
    config = small_functional()
    config["config"]["layers"].reverse()
    graph = build_graph(config)
    assert [n.layer.name for n in graph.nodes] == ["x", "d1", "d2"]
    assert_topologically_sorted(graph)


def test_keras2_style_inbound_nodes_are_read() -> None:
    config = small_functional()
    for layer in config["config"]["layers"][1:]:
        history = layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
        layer["inbound_nodes"] = [[[*history, {}]]]
    assert build_graph(config).nodes[-1].output_shape == (2,)


# --- refusals (pure Python) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            lambda c: c["config"]["layers"][1].update(class_name="Lambda"),
            r"Layer `d1` \(Lambda\) carries Python code",
            id="lambda",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][1].update(class_name="TFOpLambda"),
            r"Layer `d1` \(TFOpLambda\) carries Python code",
            id="tfoplambda",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][1].update(module="my_project.layers"),
            r"Layer `d1` \(Dense\) comes from module `my_project.layers`",
            id="foreign_module",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][1].update(
                class_name="MyDense", module=None, registered_name="course>MyDense"
            ),
            r"Layer `d1` \(MyDense\) is a custom registered class",
            id="registered_custom_class",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][1].update(class_name="MyDense", module=None),
            r"Layer `d1` \(MyDense\) is not a built-in Keras layer",
            id="unknown_class_without_module",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][1]["config"].update(
                activation={
                    "module": "builtins",
                    "class_name": "function",
                    "config": "my_activation",
                    "registered_name": "function",
                }
            ),
            r"Layer `d1` \(Dense\) has `activation` set to custom code \(my_activation",
            id="custom_activation_function",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][2]["config"].update(
                kernel_initializer={"class_name": "__lambda__", "config": {"code": "AAAA"}}
            ),
            r"Layer `d2` \(Dense\) has `kernel_initializer` set to custom code \(a Python lambda",
            id="lambda_inside_config",
        ),
    ],
)
def test_code_carrying_layers_are_refused_by_name(edit, message) -> None:
    config = small_functional()
    edit(config)
    with pytest.raises(UnsafeLayer, match=message) as info:
        build_graph(config)
    assert info.value.to_dict()["kind"] == "unsafe_layer"


def test_unknown_keras_builtin_is_unsupported_not_unsafe() -> None:
    config = small_functional()
    config["config"]["layers"][1]["class_name"] = "LSTM"
    with pytest.raises(UnsupportedLayer, match=r"Layer `d1` \(LSTM\) is not supported") as info:
        build_graph(config)
    assert (info.value.layer_name, info.value.class_name) == ("d1", "LSTM")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            lambda cfg: cfg.update(dtype={"class_name": "QuantizedDTypePolicy", "config": {}}),
            r"Layer `d1` \(Dense\) is quantized",
            id="quantized_dtype",
        ),
        pytest.param(
            lambda cfg: cfg.update(quantization_config={"mode": "int8"}),
            r"Layer `d1` \(Dense\): `quantization_config` is \{'mode': 'int8'\}\. Expected null",
            id="quantization_config",
        ),
    ],
)
def test_options_that_change_weights_unpredictably_are_refused(edit, message) -> None:
    config = small_functional()
    edit(config["config"]["layers"][1]["config"])
    with pytest.raises(UnsupportedLayer, match=message):
        build_graph(config)


def _set_ref(config: dict[str, Any], layer: int, ref: list[Any]) -> None:
    args = config["config"]["layers"][layer]["inbound_nodes"][0]["args"]
    args[0]["config"]["keras_history"] = ref


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            lambda c: c.update(class_name="Dense", module="keras.layers", registered_name=None),
            "Expected a Sequential or Functional model config. Received class_name 'Dense'",
            id="not_a_model",
        ),
        pytest.param(lambda c: c["config"].pop("layers"), "no `config.layers`", id="no_layers"),
        pytest.param(
            lambda c: _set_ref(c, 2, ["nowhere", 0, 0]),
            "output of `nowhere`, which is not a layer",
            id="dangling_reference",
        ),
        pytest.param(lambda c: _set_ref(c, 1, ["d2", 0, 0]), "never become available", id="cycle"),
        pytest.param(lambda c: _set_ref(c, 2, ["d1", 3, 0]), "call 3", id="missing_call"),
        pytest.param(
            lambda c: _set_ref(c, 2, ["d1", 0, 2]), "output 2 is referenced", id="tensor_index"
        ),
        pytest.param(
            lambda c: (
                c["config"]["layers"][2].update(name="d1"),
                c["config"]["layers"][2]["config"].update(name="d1"),
            ),
            "two layers named `d1`",
            id="duplicate_names",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][2].update(name="d1"),
            r"Layer `d2` \(Dense\) of model `hand` is listed under the top-level name 'd1'",
            id="two_names_for_one_layer",
        ),
        pytest.param(
            lambda c: c["config"].update(input_layers=[["d1", 0, 0]]),
            r"lists \['d1', 0, 0\] as input #1. Expected \[name, 0, 0\] naming one of its",
            id="input_not_an_input_layer",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, "4"]),
            "list of non-negative ints",
            id="bad_shape",
        ),
        pytest.param(
            lambda c: c["config"]["layers"][1]["config"].update(units=0),
            r"Layer `d1` \(Dense\) called on input shape \(None, 4\): Expected `units`",
            id="bad_units",
        ),
    ],
)
def test_malformed_configs_are_refused_with_specific_messages(edit, message) -> None:
    config = copy.deepcopy(small_functional())
    edit(config)
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


def test_models_nested_too_deeply_are_refused() -> None:
    config: dict[str, Any] = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "m0", "layers": [_input_layer("i", [4])]},
    }
    for level in range(1, 20):
        config = {
            "module": "keras",
            "class_name": "Sequential",
            "config": {"name": f"m{level}", "layers": [_input_layer("i", [4]), config]},
        }
    with pytest.raises(InvalidModelConfig, match="nested more than 16 levels"):
        build_graph(config)


def test_calling_an_empty_nested_model_too_often_is_refused() -> None:
    """Nested models add no nodes; their calls still count, so repetition cannot spin."""
    identity = functional(_input_layer("i", [4]), inputs=["i", 0, 0], outputs=["i", 0, 0])
    tensor = _tensor(("x", 0, 0), [4])
    identity.update(name="same", inbound_nodes=[{"args": [tensor], "kwargs": {}}] * 30_000)
    identity["config"]["name"] = "same"
    config = functional(
        _input_layer("x", [4]), identity, inputs=["x", 0, 0], outputs=["same", 0, 0]
    )
    with pytest.raises(InvalidModelConfig, match="more than 20,000 layer and model calls"):
        build_graph(config)


def test_sequential_without_input_shape_is_refused() -> None:
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "seq", "layers": [_layer("Dense", "d", units=2)]},
    }
    with pytest.raises(InvalidModelConfig, match="Sequential model `seq` has no input shape"):
        build_graph(config)


def test_non_object_config_is_refused() -> None:
    with pytest.raises(InvalidModelConfig, match="Received list"):
        build_graph([])  # type: ignore[arg-type]


# --- structure of real Keras models --------------------------------------------------------------


@pytest.fixture(scope="module")
def k():
    from tests.support import keras_models

    return keras_models


@pytest.mark.tf
def test_nested_functional_called_twice_shares_its_layers(k) -> None:
    keras, layers = k.keras, k.layers
    i = keras.Input((4,), name="ii")
    h = layers.Dense(3, name="d1")(i)
    inner = keras.Model(i, [h, layers.Dense(2, name="d2")(h)], name="inner")
    x = keras.Input((4,), name="x")
    a, b = inner(x)
    c, d = inner(layers.Dense(4, name="pre")(x))
    out = layers.Concatenate(name="cat")([a, b, c, d])
    graph = build_graph(k.to_config(keras.Model(x, out)))

    names = [n.layer.name for n in graph.nodes]
    assert names.count("inner/d1") == 2 and names.count("inner/d2") == 2
    assert "inner/ii" not in names  # the nested input layer is wired through
    assert len(graph.layers) == 5  # x, inner/d1, inner/d2, pre, cat
    d1_calls = graph.nodes_of("inner/d1")
    assert d1_calls[0].layer is d1_calls[1].layer
    assert graph.nodes[d1_calls[0].inputs[0]].layer.name == "x"
    assert graph.nodes[d1_calls[1].inputs[0]].layer.name == "pre"
    cat = graph.nodes_of("cat")[0]
    assert [graph.nodes[i].layer.name for i in cat.inputs] == [
        "inner/d1",
        "inner/d2",
        "inner/d1",
        "inner/d2",
    ]
    assert cat.output_shape == (10,)
    assert_topologically_sorted(graph)


@pytest.mark.tf
def test_models_nested_two_levels_get_qualified_names(k) -> None:
    keras, layers = k.keras, k.layers
    core = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="c")], name="core")
    block = keras.Sequential([keras.Input((8, 8, 3)), core, layers.ReLU(name="r")], name="block")
    x = keras.Input((8, 8, 3), name="x")
    graph = build_graph(k.to_config(keras.Model(x, block(x))))
    assert [n.layer.name for n in graph.nodes] == ["x", "block/core/c", "block/r"]
    assert graph.nodes[-1].output_shape == (6, 6, 4)


@pytest.mark.tf
def test_multiple_inputs_and_outputs_keep_their_order(k) -> None:
    keras, layers = k.keras, k.layers
    image = keras.Input((8, 8, 1), name="image")
    meta = keras.Input((3,), name="meta")
    features = layers.GlobalAveragePooling2D(name="gap")(layers.Conv2D(2, 3, name="conv")(image))
    joined = layers.Concatenate(name="join")([features, meta])
    model = keras.Model([meta, image], [layers.Dense(1, name="aux")(meta), layers.Dense(4)(joined)])
    graph = build_graph(k.to_config(model))
    assert [graph.nodes[i].layer.name for i in graph.inputs] == ["meta", "image"]
    assert [graph.nodes[i].output_shape for i in graph.outputs] == [(1,), (4,)]
    assert_topologically_sorted(graph)


@pytest.mark.tf
def test_shapes_disagreeing_with_what_keras_recorded_are_refused(k) -> None:
    keras, layers = k.keras, k.layers
    x = keras.Input((8, 8, 3), name="x")
    model = keras.Model(x, layers.Dense(2, name="head")(layers.Conv2D(4, 3, name="conv")(x)))
    config = k.to_config(model)
    config["config"]["layers"][1]["config"]["kernel_size"] = [5, 5]  # edited after saving
    with pytest.raises(InvalidModelConfig, match=r"Layer `head` is called on the output of `conv`"):
        build_graph(config)


@pytest.mark.tf
def test_lambda_from_keras_is_refused_naming_the_layer(k) -> None:
    keras, layers = k.keras, k.layers
    x = keras.Input((4,))
    model = keras.Model(x, layers.Lambda(lambda t: t * 2, name="double")(x))
    with pytest.raises(UnsafeLayer, match=r"Layer `double` \(Lambda\)"):
        build_graph(k.to_config(model))


@pytest.mark.tf
def test_layer_inside_nested_model_is_refused_with_its_qualified_name(k) -> None:
    keras, layers = k.keras, k.layers
    inner = keras.Sequential([keras.Input((3, 4)), layers.LSTM(2, name="rnn")], name="inner")
    x = keras.Input((3, 4))
    with pytest.raises(UnsupportedLayer, match=r"Layer `inner/rnn` \(LSTM\)"):
        build_graph(k.to_config(keras.Model(x, inner(x))))


def test_graph_indexes_agree_with_a_full_scan() -> None:
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures/models/cifar10_dilated_reference.json"
    graph = build_graph(json.loads(fixture.read_text()))
    for node in graph.nodes:
        assert graph.consumers(node.id) == [n for n in graph.nodes if node.id in n.inputs]
        assert graph.nodes_of(node.layer.name) == [
            n for n in graph.nodes if n.layer.name == node.layer.name
        ]
    assert list(graph.layers) == list(dict.fromkeys(n.layer.name for n in graph.nodes))
    graph.nodes_of(graph.nodes[0].layer.name).clear()  # callers get copies, not the index
    assert graph.nodes_of(graph.nodes[0].layer.name)


# --- fuzzing: untrusted configs only ever fail as GraderError -----------------------------------

FUZZ_VALUES = [None, 0, -1, 1, 2.5, True, "x", "same", [], [1], [None], [1, 2], [[1, 2]], {},
               {"a": 1}, 10**12, "channels_first", [-1, 3]]  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        found.append((*prefix, key))
        if isinstance(child, (dict, list)):
            found.extend(_paths(child, (*prefix, key)))
    return found


@pytest.mark.parametrize("seed", range(4))
def test_mutated_configs_fail_only_with_grader_errors(seed: int) -> None:
    """Random edits of real configs (deleted keys, wrong types, absurd values) are either
    analysed or refused with a GraderError: never a TypeError or KeyError from deep inside."""
    from pathlib import Path

    from grader.analysis import analyze
    from grader.errors import GraderError

    fixtures = sorted((Path(__file__).resolve().parents[1] / "fixtures/models").glob("*.json"))
    configs = [json.loads(f.read_text()) for f in fixtures if f.name != "expected.json"]
    paths = [_paths(c) for c in configs]
    rng = random.Random(seed)
    refused = 0
    for _ in range(400):
        which = rng.randrange(len(configs))
        config = copy.deepcopy(configs[which])
        for _ in range(rng.randint(1, 3)):
            *parents, last = rng.choice(paths[which])
            target: Any = config
            try:
                for key in parents:
                    target = target[key]
                if isinstance(target, dict) and rng.random() < 0.3:
                    del target[last]
                else:
                    target[last] = copy.deepcopy(rng.choice(FUZZ_VALUES))
            except (KeyError, IndexError, TypeError):
                pass  # an earlier edit removed or replaced this path
        try:
            analyze(config)
        except GraderError:
            refused += 1
    assert refused > 50  # the edits really produce broken configs


def test_non_boolean_flag_is_refused() -> None:
    config = small_functional()
    config["config"]["layers"][1]["config"]["use_bias"] = "yes"
    with pytest.raises(InvalidModelConfig, match=r"Expected `use_bias` to be true or false"):
        build_graph(config)


# --- values and sizes built to break the analysis ------------------------------------------------
# Python's integers never overflow, so absurd sizes come out exact, but then fail elsewhere: a
# count past 2**63 overflows the database's bigint, one past 4,300 digits cannot even be printed
# (ValueError), and JavaScript readers of the JSON round anything past 2**53.


def _sequential(shape: list[int | None], *layer_cfgs: dict[str, Any]) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "hostile",
            "layers": [_input_layer("x", shape), *layer_cfgs],
        },
    }


def _layer(class_name: str, name: str, **config: Any) -> dict[str, Any]:
    return {"module": "keras.layers", "class_name": class_name, "config": {"name": name, **config}}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=str)
def test_non_finite_numbers_are_refused(value: float) -> None:
    # A `.py` submission's config comes back from its sandbox, not through grader.loading.
    config = _sequential([4], _layer("Dropout", "drop", rate=value))
    with pytest.raises(InvalidModelConfig, match=r"`drop`.*Expected finite numbers"):
        build_graph(config)


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**5000], ids=["2**53", "-2**53", "10**5000"])
def test_integers_past_the_size_limit_are_refused(value: int) -> None:
    config = _sequential([4], _layer("Dense", "dense", units=value))
    with pytest.raises(InvalidModelConfig, match=r"`dense`.*9,007,199,254,740,991") as info:
        build_graph(config)
    assert len(info.value.message) < 1000


@pytest.mark.parametrize("name", ["a\x00b", "a\ud800b"], ids=["nul", "lone surrogate"])
def test_text_the_database_cannot_store_is_refused(name: str) -> None:
    # PostgreSQL refuses NUL in text and jsonb, and UTF-8 has no lone surrogates: a message
    # quoting such a name could not be saved, and the grading would end as `infrastructure`.
    config = _sequential([4], _layer("Dense", name, units=2))
    with pytest.raises(InvalidModelConfig, match="Expected text without") as info:
        build_graph(config)
    assert "\x00" not in info.value.message
    info.value.message.encode("utf-8")


@pytest.mark.parametrize(
    ("shape", "layer_cfgs", "message"),
    [
        # 10**9 x 10**9 x 3 x 4 kernel: 1.2e19 parameters, past 2**63.
        ([16, 16, 3], [_layer("Conv2D", "c", filters=4, kernel_size=10**9, padding="same")],
         r"Layer `c` \(Conv2D\) has a weight `kernel` of more than 9,007,199,254,740,991"),
        # One kernel of about 2**265 scalars (80 digits; 10**1000-sized values reach 5,000).
        ([4, 4, 4, 3], [_layer("Conv3D", "c", filters=2**52, kernel_size=2**52, padding="same")],
         r"weight `kernel` of more than"),
        # Three Dense layers of 2**52 parameters each: each fits, the model does not.
        ([2**26], [_layer("Dense", f"d{i}", units=2**26) for i in range(3)],
         r"Layer `d1` \(Dense\) brings the model past 9,007,199,254,740,991 parameters"),
        # 16 + 2**52 positions fit; 16 + 2**53 do not.
        ([16, 1], [_layer("ZeroPadding1D", f"z{i}", padding=2**51) for i in range(3)],
         r"Layer `z1` \(ZeroPadding1D\) outputs .*more than 9,007,199,254,740,991 values"),
        ([2**20, 2**20, 2**20], [_layer("Dropout", "drop", rate=0.5)],
         r"Layer `x` \(InputLayer\) outputs .*more than"),
        ([4], [_layer("Reshape", "r", target_shape=[2**53 - 1] * 300)],
         r"Layer `r` \(Reshape\).*more than 9,007,199,254,740,991 values"),
    ],
    ids=["kernel", "conv3d", "total", "axis", "input", "reshape-target"],
)  # fmt: skip
def test_sizes_past_the_limit_are_refused_not_reported(shape, layer_cfgs, message) -> None:
    with pytest.raises(InvalidModelConfig, match=message) as info:
        build_graph(_sequential(shape, *layer_cfgs))
    assert len(info.value.message) < 1000


def test_sizes_up_to_the_limit_are_counted_exactly() -> None:
    from grader.analysis import analyze

    # Dense on 2**26 features: kernel 2**52, bias 2**26; by hand, not from the code.
    analysis = analyze(_sequential([2**26], _layer("Dense", "d", units=2**26)))
    assert analysis.total_params == 2**52 + 2**26


@pytest.mark.parametrize(
    ("class_name", "shape", "key", "value"),
    [
        ("Cropping2D", [8, 8, 3], "cropping", -1),  # Keras: "`cropping` cannot be negative"
        ("Cropping1D", [8, 3], "cropping", [-1, 0]),
        ("Cropping3D", [8, 8, 8, 3], "cropping", [[0, 0], [-1, 1], [0, 0]]),
        ("ZeroPadding1D", [8, 3], "padding", -1),  # Keras: "must satisfy value >= 0"
        # Keras builds these, as a crop in disguise; the grader refuses it like the rest.
        ("ZeroPadding2D", [8, 8, 3], "padding", -1),
        ("ZeroPadding2D", [8, 8, 3], "padding", [1, -1]),
    ],
)
def test_negative_padding_or_cropping_is_refused_in_every_form(class_name, shape, key, value):
    config = _sequential(shape, _layer(class_name, "p", **{key: value}))
    with pytest.raises(InvalidModelConfig, match=f"Expected `{key}` to be .* non-negative ints"):
        build_graph(config)
