"""The graph builder reads a config by Keras' own rules (`grader.keras_config`), pure Python.

Every config here is one Keras would read (``deserialize_keras_object``, safe mode); each test
states what Keras does with it, from ``keras/src/models/sequential.py``,
``keras/src/models/functional.py`` and ``keras/src/saving/serialization_lib.py``, and the
numbers are counted by hand (a Dense layer from n to m features holds n*m + m parameters).
`tests/grader/test_graph_differential.py` checks the same rules against Keras itself.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from grader.analysis import analyze
from grader.errors import InvalidModelConfig, UnsupportedLayer
from grader.graph_builder import build_graph

Config = dict[str, Any]


def tensor(ref: tuple[str, int, int], shape: list[int | None]) -> Config:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, *shape], "dtype": "float32", "keras_history": list(ref)},
    }


def call(*tensors: Config, kwargs: Config | None = None, as_list: bool = False) -> Config:
    args = [list(tensors)] if as_list else list(tensors)
    return {"args": args, "kwargs": kwargs if kwargs is not None else {}}


def layer(class_name: str, name: str, *calls: Config, **config: Any) -> Config:
    """A layer entry as model.to_json() writes it (with calls: as in a Functional model)."""
    entry: Config = {
        "module": "keras.layers",
        "class_name": class_name,
        "config": {"name": name, "trainable": True, **config},
        "registered_name": None,
    }
    if calls:
        entry.update(name=name, inbound_nodes=list(calls))
    return entry


def input_layer(name: str, shape: list[int | None], *, functional: bool = True) -> Config:
    entry = layer("InputLayer", name, batch_shape=[None, *shape])
    del entry["config"]["trainable"]
    if functional:
        entry.update(name=name, inbound_nodes=[])
    return entry


def dense(name: str, units: int, ref: tuple[str, int, int], width: int, **config: Any) -> Config:
    return layer("Dense", name, call(tensor(ref, [width])), units=units, **config)


def functional(name: str, *entries: Config, inputs: Any, outputs: Any) -> Config:
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": name,
            "trainable": True,
            "layers": list(entries),
            "input_layers": inputs,
            "output_layers": outputs,
        },
        "registered_name": "Functional",
    }


def sequential(name: str, *entries: Config, **config: Any) -> Config:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": name, "trainable": True, "layers": list(entries), **config},
        "registered_name": None,
    }


def chain() -> Config:
    """x (4) -> d1 (3) -> d2 (2): 15 + 8 = 23 parameters."""
    return functional(
        "chain",
        input_layer("x", [4]),
        dense("d1", 3, ("x", 0, 0), 4),
        dense("d2", 2, ("d1", 0, 0), 3),
        inputs=[["x", 0, 0]],
        outputs=[["d2", 0, 0]],
    )


def params(config: Config) -> dict[str, tuple[int, int]]:
    """(total, trainable) per layer, inputs left out."""
    return {
        s.name: (s.params.total, s.params.trainable)
        for s in analyze(config).layers
        if s.class_name != "InputLayer"
    }


# -- which entries are one layer, and what it is called -------------------------------------------


def test_a_sequential_entry_listed_under_an_earlier_name_is_refused() -> None:
    # Keras: `big` is a new Dense(4 -> 100) layer (500 parameters); a second call of `d1`
    # would add none.
    config = sequential(
        "s",
        input_layer("x", [4], functional=False),
        layer("Dense", "d1", units=4),
        {**layer("Dense", "big", units=100), "name": "d1"},
    )
    message = (
        r"Layer `big` \(Dense\) of model `s` is listed "
        r"under the top-level name 'd1': Keras ignores the top-level name"
    )
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


def test_a_sequential_entry_whose_top_level_name_is_its_own_is_read() -> None:
    config = sequential(
        "s", input_layer("x", [4], functional=False), {**layer("Dense", "d", units=3), "name": "d"}
    )
    assert params(config) == {"d": (15, 15)}


def test_two_sequential_layers_with_one_name_are_refused() -> None:
    # Keras refuses them ("All layers added to a Sequential model should have unique names").
    config = sequential(
        "s",
        input_layer("x", [4], functional=False),
        layer("Dense", "d", units=4),
        layer("Dense", "d", units=4),
    )
    with pytest.raises(InvalidModelConfig, match="Model `s` has two layers named `d`"):
        build_graph(config)


def test_a_functional_entry_must_carry_its_config_name_at_the_top() -> None:
    config = chain()
    del config["config"]["layers"][1]["name"]
    message = (
        r"Layer `d1` \(Dense\) of Functional model "
        r"`chain` has no top-level `name`"
    )
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


def test_an_entry_without_config_name_is_refused() -> None:
    config = chain()
    del config["config"]["layers"][2]["config"]["name"]
    message = (
        r"Layer #3 \(Dense\) of model `chain` has no "
        r"`config.name`"
    )
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


def test_a_name_with_a_slash_is_refused() -> None:
    # Keras refuses it; the grader names nested layers `outer/inner`.
    config = sequential(
        "s", input_layer("x", [4], functional=False), layer("Dense", "m/d", units=3)
    )
    with pytest.raises(InvalidModelConfig, match="Expected a name without `/`"):
        build_graph(config)


@pytest.mark.parametrize("taken", [["input"], ["input_layer"], ["input", "input_layer"]])
def test_the_input_added_to_a_sequential_model_takes_a_name_no_layer_has(taken) -> None:
    units = [3, 2]
    entries = [layer("Dense", name, units=u) for name, u in zip(taken, units, strict=False)]
    config = sequential("s", *entries, build_input_shape=[None, 4])
    analysis = analyze(config)
    [added] = [s.name for s in analysis.layers if s.class_name == "InputLayer"]
    assert added not in taken and added.startswith("input_layer")
    assert [s.class_name for s in analysis.layers] == ["InputLayer"] + ["Dense"] * len(taken)
    assert analysis.layer(taken[0]).params.total == 4 * 3 + 3


# -- only what reaches the outputs ----------------------------------------------------------------


def with_dead_branch() -> Config:
    config = chain()
    config["config"]["layers"] += [
        dense("left", 50, ("x", 0, 0), 4),
        dense("left_2", 7, ("left", 0, 0), 50),
    ]
    return config


def test_layers_no_output_uses_are_left_out_and_listed() -> None:
    analysis = analyze(with_dead_branch())
    assert analysis.total_params == 15 + 8  # not 4*50 + 50 + 50*7 + 7 more
    assert [s.name for s in analysis.layers] == ["x", "d1", "d2"]
    assert [(d.name, d.class_name) for d in analysis.dead_layers] == [
        ("left", "Dense"),
        ("left_2", "Dense"),
    ]
    assert [n.layer.name for n in analysis.graph.nodes] == ["x", "d1", "d2"]
    assert analysis.to_dict()["dead_layers"][0] == {"name": "left", "class_name": "Dense"}


def test_an_unused_call_of_a_used_layer_is_not_counted() -> None:
    config = chain()
    d1 = config["config"]["layers"][1]
    d1["inbound_nodes"].append(copy.deepcopy(d1["inbound_nodes"][0]))
    analysis = analyze(config)
    assert analysis.layer("d1").calls == 1
    assert analysis.dead_layers == ()


def test_an_input_layer_that_is_not_a_model_input_cannot_feed_the_outputs() -> None:
    config = chain()
    config["config"]["layers"].insert(1, input_layer("y", [4]))
    config["config"]["layers"][2]["inbound_nodes"] = [call(tensor(("y", 0, 0), [4]))]
    message = (
        r"computes its outputs from InputLayer `y`, "
        r"which is not one of its inputs"
    )
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


def test_an_input_layer_that_feeds_only_dead_layers_is_dead_too() -> None:
    config = chain()
    config["config"]["layers"] += [input_layer("y", [5]), dense("side", 2, ("y", 0, 0), 5)]
    analysis = analyze(config)
    assert [d.name for d in analysis.dead_layers] == ["y", "side"]
    assert analysis.total_params == 23


def nested_classifier(output_node: int) -> Config:
    """x -> inner (a Functional model: i -> d, Dense 4 -> 3); the output is inner's call."""
    inner = functional(
        "inner",
        input_layer("i", [4]),
        dense("d", 3, ("i", 0, 0), 4),
        inputs=[["i", 0, 0]],
        outputs=[["d", 0, 0]],
    )
    inner.update(name="inner", inbound_nodes=[call(tensor(("x", 0, 0), [4]),
                                                   kwargs={"mask": None})])  # fmt: skip
    return functional(
        "outer", input_layer("x", [4]), inner, inputs=[["x", 0, 0]],
        outputs=[["inner", output_node, 0]],
    )  # fmt: skip


def test_an_output_of_a_nested_functional_model_counts_its_construction_node() -> None:
    # Keras writes [name, k + 1, 0] for call k of a nested Functional model (`get_config`'s
    # node_reindexing_map) and reads it back with `node_index -= 1`.
    analysis = analyze(nested_classifier(1))
    assert analysis.output_shapes == ((3,),)
    assert analysis.layer("inner/d").params.total == 15


def test_output_node_zero_of_a_nested_functional_model_is_refused() -> None:
    with pytest.raises(InvalidModelConfig, match="Keras reads node 0 as its last call"):
        build_graph(nested_classifier(0))


# -- build_config and input shapes ----------------------------------------------------------------


def test_a_build_config_for_another_input_is_refused() -> None:
    config = chain()
    config["config"]["layers"][1]["build_config"] = {"input_shape": [None, 7]}
    message = (
        r"Layer `d1` \(Dense\) has build_config "
        r"input_shape \(None, 7\), so Keras builds its weights for that shape"
    )
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


@pytest.mark.parametrize("build_config", [{"input_shape": [None, 4]}, {}, None])
def test_a_build_config_matching_the_call_is_accepted(build_config) -> None:
    config = chain()
    config["config"]["layers"][1]["build_config"] = build_config
    assert analyze(config).total_params == 23


@pytest.mark.parametrize(
    "build_config",
    [{"input_shape": [None, 4], "extra": 1}, {"shapes_dict": {}}, ["input_shape"], "x"],
    ids=["extra_key", "shapes_dict", "list", "text"],
)
def test_a_build_config_keras_would_mark_built_without_weights_is_refused(build_config) -> None:
    config = chain()
    config["config"]["layers"][1]["build_config"] = build_config
    with pytest.raises(InvalidModelConfig, match=r"Layer `d1` \(Dense\) has build_config"):
        build_graph(config)


def test_the_first_layers_input_shape_wins_over_build_input_shape() -> None:
    # `Sequential.add` adds an InputLayer for the first layer's `input_shape`; the model is then
    # built, and `from_config` ignores `build_input_shape`.
    config = sequential(
        "s", layer("Dense", "d", units=3, input_shape=[6]), build_input_shape=[None, 4]
    )
    analysis = analyze(config)
    assert analysis.input_shapes == ((6,),)
    assert analysis.total_params == 6 * 3 + 3


def test_input_dim_declares_a_one_axis_input() -> None:
    config = sequential("s", layer("Dense", "d", units=3, input_dim=5))
    assert analyze(config).input_shapes == ((5,),)


def test_input_dim_beside_input_shape_is_refused() -> None:
    # `Layer.__init__` takes `input_dim` and leaves `input_shape` over: Keras fails.
    config = sequential("s", layer("Dense", "d", units=3, input_shape=[6], input_dim=5))
    with pytest.raises(InvalidModelConfig, match="has `input_shape`, `input_dim`, which Keras"):
        build_graph(config)


def test_input_shape_anywhere_else_is_refused() -> None:
    config = sequential(
        "s",
        input_layer("x", [4], functional=False),
        layer("Dense", "d", units=3, input_shape=[9]),
    )
    message = (
        r"Layer `d` has `input_shape`, which Keras "
        r"ignores or refuses here"
    )
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


def test_a_nested_model_first_in_a_sequential_model_gives_its_input_shape() -> None:
    # `_maybe_rebuild`: a first layer with an `input_shape` (a built model) builds the
    # Sequential model with it, whatever `build_input_shape` says.
    inner = sequential("inner", input_layer("i", [4], functional=False),
                       layer("Dense", "a", units=3))  # fmt: skip
    config = sequential("s", inner, layer("Dense", "b", units=2), build_input_shape=[None, 9])
    analysis = analyze(config)
    assert analysis.input_shapes == ((4,),)
    assert analysis.total_params == 15 + 8


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"shape": [4]}, None),
        ({"batch_shape": [None, 4], "input_shape": [5]}, "gives `batch_shape` and `input_shape`"),
        ({"shape": [4], "batch_input_shape": [None, 5]}, "gives `shape` and `batch_input_shape`"),
        ({"batch_shape": [None, 4], "sparse": True}, r"has sparse=True. Expected a dense"),
        ({"batch_shape": [None, 4], "batch_size": 8}, "gives both `batch_shape` and `batch_size`"),
    ],
)
def test_input_layer_shape_keys_are_read_as_keras_reads_them(keys, message) -> None:
    config = chain()
    config["config"]["layers"][0]["config"] = {"name": "x", **keys}
    if message is None:
        assert analyze(config).input_shapes == ((4,),)
    else:
        with pytest.raises(InvalidModelConfig, match=message):
            build_graph(config)


# -- what is trained ------------------------------------------------------------------------------


def test_a_sequential_models_own_trainable_flag_changes_nothing() -> None:
    # `Sequential.from_config` builds `cls(name=name)`: the flag is dropped.
    config = sequential(
        "s", input_layer("x", [4], functional=False), layer("Dense", "d", units=3),
        trainable=False,
    )  # fmt: skip
    assert params(config) == {"d": (15, 15)}


def test_a_nested_functional_models_own_trainable_flag_changes_nothing() -> None:
    # Keras weighs each variable's own flag; the nested model's flag is set before it tracks
    # its layers, so it freezes none of them.
    config = nested_classifier(1)
    config["config"]["layers"][1]["config"]["trainable"] = False
    assert params(config) == {"inner/d": (15, 15)}


def test_a_frozen_outermost_functional_model_trains_nothing() -> None:
    config = chain()
    config["config"]["trainable"] = False
    assert params(config) == {"d1": (15, 0), "d2": (8, 0)}


def test_a_frozen_layer_stays_frozen() -> None:
    config = chain()
    config["config"]["layers"][1]["config"]["trainable"] = False
    assert params(config) == {"d1": (15, 0), "d2": (8, 8)}


# -- keys and calls Keras honours -----------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Any:
    def edit(config: Config) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _delete(path: list[Any]) -> Any:
    def edit(config: Config) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


D1 = ["config", "layers", 1]
D1_CALL = [*D1, "inbound_nodes", 0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_delete(["module"]), r"Model `chain` \(Functional\) has no `module` key"),
        (_delete([*D1, "module"]), r"Layer `d1` \(Dense\) has no `module` key"),
        (_set([*D1, "shared_object_id"], 7), r"Layer `d1` \(Dense\) has `shared_object_id`"),
        (_set([*D1, "compile_config"], {"loss": "mse"}), "Keras compiles models only"),
        (_set([*D1_CALL, "kwargs"], {"mask": None}), r"`d1` is called with mask=None"),
        (_set([*D1_CALL, "kwargs"], {"scale": 2}), r"`d1` is called with scale=2"),
        (_delete([*D1_CALL, "kwargs"]), "Expected an object with `args` and `kwargs`"),
        (_set([*D1_CALL, "args"], [tensor(("x", 0, 0), [4])] * 2),
         "is called with positional arguments"),
        (_set([*D1_CALL, "args"], [[tensor(("x", 0, 0), [4])]]),
         r"Layer `d1` \(Dense\) is called on a list of 1. Expected one tensor"),
        (_set([*D1, "inbound_nodes"], [[["x", 0, 0, {}, "extra"]]]),
         r"Expected \[layer_name, node_index, tensor_index\] in a call of `d1`"),
        (_set([*D1, "inbound_nodes"], [[["x", 0, 0, {"training": 1}]]]),
         r"`d1` is called with training=1"),
        (_set([*D1_CALL, "args", 0, "config", "keras_history"], ["x", True, 0]),
         r"Expected \[layer_name, node_index, tensor_index\]"),
        (_delete([*D1_CALL, "args", 0, "config", "dtype"]), "Expected `shape`, `dtype`"),
        (_set(["config", "inputs"], []), "has a `inputs` key"),
        (_set([*D1, "config", "trainable"], "no"), r"has trainable='no'. Expected true or false"),
        (_delete(["config", "name"]), "has no `config.name`"),
    ],
    ids=[
        "model_without_module",
        "entry_without_module",
        "shared_object_id",
        "leaf_compile_config",
        "mask_on_a_dense_call",
        "unknown_call_keyword",
        "call_without_kwargs",
        "two_positional_arguments",
        "list_for_a_single_input_layer",
        "legacy_node_of_five",
        "legacy_node_keyword",
        "boolean_node_index",
        "tensor_without_dtype",
        "inputs_key_beside_input_layers",
        "non_boolean_trainable",
        "model_without_name",
    ],
)  # fmt: skip
def test_keys_and_calls_keras_honours_are_refused_when_the_grader_cannot_follow(edit, message):
    config = chain()
    edit(config)
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


def test_recorded_call_keywords_keras_overrides_are_accepted() -> None:
    config = chain()
    config["config"]["layers"][1]["inbound_nodes"][0]["kwargs"] = {"training": False}
    config["config"]["layers"][2]["inbound_nodes"][0]["kwargs"] = {"training": None}
    assert analyze(config).total_params == 23


def test_a_merge_layer_called_on_one_tensor_is_refused() -> None:
    config = chain()
    config["config"]["layers"].append(layer("Add", "add", call(tensor(("d2", 0, 0), [2]))))
    config["config"]["output_layers"] = [["add", 0, 0]]
    message = (
        r"Layer `add` \(Add\) is called on one tensor. "
        r"Expected a list of tensors"
    )
    with pytest.raises(InvalidModelConfig, match=message):
        build_graph(config)


def residual(module: str) -> Config:
    """x (4) -> d1 (4); x + d1, as `x + y` writes it (an operation) or under another module."""
    add = {
        "module": module, "class_name": "Add", "registered_name": None, "name": "add",
        "config": {"name": "add"},
        "inbound_nodes": [call(tensor(("x", 0, 0), [4]), tensor(("d1", 0, 0), [4]))],
    }  # fmt: skip
    return functional(
        "res", input_layer("x", [4]), dense("d1", 4, ("x", 0, 0), 4), add,
        inputs=[["x", 0, 0]], outputs=[["add", 0, 0]],
    )  # fmt: skip


def test_an_operation_takes_its_tensors_as_separate_arguments() -> None:
    analysis = analyze(residual("keras.src.ops.numpy"))
    assert analysis.layer("add").calls == 1
    assert analysis.output_shapes == ((4,),)
    assert analysis.total_params == 4 * 4 + 4


def test_a_layer_called_with_separate_tensors_is_refused() -> None:
    # `keras.layers.Add` takes one list; Keras fails on Add()(x, y).
    with pytest.raises(InvalidModelConfig, match="`add` is called with positional arguments"):
        build_graph(residual("keras.layers"))


def test_inbound_nodes_in_a_sequential_model_are_refused() -> None:
    entry = layer("Dense", "d", units=3)
    entry["inbound_nodes"] = [call(tensor(("x", 0, 0), [4]))]
    config = sequential("s", input_layer("x", [4], functional=False), entry)
    with pytest.raises(InvalidModelConfig, match="lists `inbound_nodes`, which Keras ignores"):
        build_graph(config)


def test_keys_keras_ignores_are_ignored() -> None:
    config = chain()
    config["config"]["layers"][1]["note"] = "from an experiment"
    config["config"]["layers"][1]["compile_config"] = {}
    config["config"]["dtype"] = "float32"
    assert analyze(config).total_params == 23


def test_a_tensor_as_call_keyword_is_unsupported() -> None:
    config = chain()
    config["config"]["layers"][1]["inbound_nodes"][0]["kwargs"] = {"mask": tensor(("x", 0, 0), [4])}
    with pytest.raises(UnsupportedLayer, match="called with a tensor as keyword argument `mask`"):
        build_graph(config)
