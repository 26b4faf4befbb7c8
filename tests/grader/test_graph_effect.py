"""Which calls can change a model's output (`grader.graph_effect`), checked against Keras.

Independent truth: Keras itself. A call that provably cannot change the output (``NO``) is one
whose weights can be replaced by anything without changing a single output value; a call that
does (``YES``) changes the output when its weights change. ``MAYBE`` (the answer depends on
weights a constraint or a frozen zero initializer sets) is checked for its reason only.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from grader.analysis import analyze
from grader.graph_effect import Effect, output_influence
from tests.support.keras_models import keras, layers, random_cnn, to_config

pytestmark = [
    pytest.mark.tf,
    # Keras warns about a softmax over an axis of size 1 for the very reason it is constant.
    pytest.mark.filterwarnings("ignore:You are using a softmax over axis"),
]


def _states(model):
    graph = analyze(to_config(model)).graph
    influence = output_influence(graph)
    return {
        node.layer.name: (influence.state(node.id), influence.reason(node.id))
        for node in graph.nodes
    }


def _output_moves_with(model, layer_name: str) -> bool:
    """Whether replacing `layer_name`'s weights by other random values changes the output."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=(2, *model.input_shape[1:])).astype("float32")
    before = np.asarray(model(x))
    layer = model.get_layer(layer_name)
    layer.set_weights([w + rng.normal(0.0, 1.0, w.shape) for w in layer.get_weights()])
    after = np.asarray(model(x))
    return not np.array_equal(before, after)


def _main(inputs):
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="main")(inputs)
    probe = layers.SeparableConv2D(4, 3, padding="same", name="probe")(x)
    return x, probe


def _close(x, branch):
    x = layers.Concatenate(name="join")([x, branch])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dense(3, name="out")(x)


def _multiply_by_rescaled_zero(x, probe):
    return layers.Multiply(name="mul")([probe, layers.Rescaling(0.0, name="zero")(x)])


def _relu_max_zero(x, probe):
    return layers.ReLU(max_value=0.0, name="clip")(probe)


def _subtract_itself(x, probe):
    return layers.Subtract(name="sub")([probe, probe])


def _softmax_over_one_channel(x, probe):
    one = layers.Conv2D(1, 1, name="squeeze")(probe)
    return layers.Softmax(axis=-1, name="softmax")(one)


def _dense_softmax_one_unit(x, probe):
    one = layers.Dense(1, activation="softmax", name="unit")(probe)
    return one


def _layer_norm_over_one_channel(x, probe):
    one = layers.Conv2D(1, 1, name="squeeze")(probe)
    return layers.LayerNormalization(name="norm")(one)


def _zero_through_a_bias_free_conv(x, probe):
    zero = layers.Rescaling(0.0, name="zero")(x)
    zero = layers.Conv2D(4, 3, padding="same", use_bias=False, name="still_zero")(zero)
    zero = layers.ReLU(name="relu_zero")(zero)
    return layers.Multiply(name="mul")([probe, zero])


@pytest.mark.parametrize(
    ("branch", "reason"),
    [
        (
            _multiply_by_rescaled_zero,
            "`mul` (Multiply) multiplies it by a constant zero (`zero` (Rescaling) has scale "
            "0.0: it outputs 0.0 whatever its input)",
        ),
        (_relu_max_zero, "`clip` (ReLU) has max_value 0: it outputs 0 whatever its input"),
        (_subtract_itself, "`sub` (Subtract) subtracts a tensor from itself"),
        (
            _softmax_over_one_channel,
            "`softmax` (Softmax) applies softmax over an axis of size 1: it outputs 1",
        ),
        (
            _dense_softmax_one_unit,
            "`unit` (Dense) applies softmax over its last axis, of size 1: it outputs 1",
        ),
        (
            _layer_norm_over_one_channel,
            "`norm` (LayerNormalization) normalizes over axes of size 1: it outputs its `beta`",
        ),
        (
            _zero_through_a_bias_free_conv,
            "`mul` (Multiply) multiplies it by a constant zero (`zero` (Rescaling) has scale "
            "0.0: it outputs 0.0 whatever its input)",
        ),
    ],
    ids=[
        "multiply-by-zero",
        "relu-max-0",
        "subtract-itself",
        "softmax-size-1",
        "dense-softmax-1-unit",
        "layernorm-size-1",
        "zero-through-bias-free-conv",
    ],
)
def test_a_call_behind_a_constant_cannot_change_the_output(branch, reason):
    inputs = keras.Input((8, 8, 3))
    x, probe = _main(inputs)
    model = keras.Model(inputs, _close(x, branch(x, probe)))

    states = _states(model)

    assert states["probe"][0] is Effect.NO
    assert reason in states["probe"][1]
    assert states["main"] == (Effect.YES, None)
    assert _output_moves_with(model, "probe") is False
    assert _output_moves_with(model, "main") is True


@pytest.mark.parametrize(
    "branch",
    [
        # Squeeze-and-excitation: the gate depends on the image, so the product does.
        lambda x, probe: layers.Multiply(name="mul")(
            [
                x,
                layers.Reshape((1, 1, 4))(
                    layers.Dense(4, activation="sigmoid")(layers.GlobalAveragePooling2D()(probe))
                ),
            ]
        ),
        lambda x, probe: layers.Maximum(name="max")([probe, layers.Rescaling(0.0)(x)]),
        lambda x, probe: layers.Multiply(name="square")([probe, probe]),
        lambda x, probe: layers.ReLU(max_value=6.0)(layers.Rescaling(1 / 255)(probe)),
        lambda x, probe: layers.Rescaling([0.0, 1.0, 1.0, 1.0])(probe),
    ],
    ids=["squeeze-excitation", "maximum-with-zero", "square", "relu6", "partly-zero-scale"],
)
def test_a_call_on_a_path_that_lets_it_through_influences_the_output(branch):
    inputs = keras.Input((8, 8, 3))
    x, probe = _main(inputs)
    model = keras.Model(inputs, _close(x, branch(x, probe)))

    states = _states(model)

    assert states["probe"] == (Effect.YES, None)
    assert _output_moves_with(model, "probe") is True


def test_everything_behind_a_zero_scaled_image_cannot_change_the_output():
    inputs = keras.Input((8, 8, 3))
    x = layers.Rescaling(0.0, offset=0.5, name="blank")(inputs)
    x = layers.SeparableConv2D(4, 3, name="sep")(x)
    model = keras.Model(inputs, layers.Dense(2, name="out")(layers.Flatten()(x)))

    states = _states(model)

    assert states["sep"] == (
        Effect.NO,
        "its input does not depend on the image: `blank` (Rescaling) has scale 0.0: it "
        "outputs 0.5 whatever its input",
    )
    assert states["out"][0] is Effect.NO  # the output itself is a constant
    rng = np.random.default_rng(1)
    outputs = np.asarray(model(rng.uniform(size=(4, 8, 8, 3)).astype("float32")))
    assert np.array_equal(outputs, np.broadcast_to(outputs[0], outputs.shape))


@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        (
            lambda: layers.Conv2D(
                4, 1, kernel_constraint=keras.constraints.MaxNorm(0.0), name="gate"
            ),
            "`gate` (Conv2D) has `kernel_constraint` MaxNorm(max_value=0.0): training sets its "
            "kernel weights to zero",
        ),
        (
            lambda: layers.Conv2D(
                4,
                1,
                kernel_constraint=keras.constraints.MinMaxNorm(0.0, 0.0, rate=0.5),
                name="gate",
            ),
            "`gate` (Conv2D) has `kernel_constraint` MinMaxNorm(max_value=0.0, rate=0.5)",
        ),
        (
            lambda: layers.DepthwiseConv2D(
                3, padding="same", depthwise_initializer="zeros", trainable=False, name="gate"
            ),
            "`gate` (DepthwiseConv2D) is frozen (trainable=False) with a zero "
            "`depthwise_initializer`",
        ),
        (
            lambda: layers.BatchNormalization(
                gamma_constraint=keras.constraints.MaxNorm(0.0), name="gate"
            ),
            "`gate` (BatchNormalization) has `gamma_constraint` MaxNorm(max_value=0.0)",
        ),
    ],
    ids=["maxnorm-0", "minmaxnorm-decaying", "frozen-zeros", "bn-gamma-maxnorm-0"],
)
def test_a_weight_the_training_zeroes_makes_the_call_behind_it_undecided(layer, reason):
    inputs = keras.Input((8, 8, 3))
    x, probe = _main(inputs)
    model = keras.Model(inputs, _close(x, layer()(probe)))

    states = _states(model)

    assert states["probe"][0] is Effect.MAYBE
    assert reason in states["probe"][1]
    assert states["main"] == (Effect.YES, None)


def test_a_multiplication_by_a_learnt_constant_is_undecided():
    inputs = keras.Input((8, 8, 3))
    x, probe = _main(inputs)
    constant = layers.BatchNormalization(name="bias")(layers.Rescaling(0.0, name="zero")(x))
    model = keras.Model(inputs, _close(x, layers.Multiply(name="mul")([probe, constant])))

    state, reason = _states(model)["probe"]

    assert state is Effect.MAYBE
    assert reason == (
        "`mul` (Multiply) multiplies it by a constant whose value the grader cannot tell "
        "(`zero` (Rescaling) has scale 0.0: it outputs 0.0 whatever its input)"
    )


def test_a_layer_left_out_of_the_outputs_is_not_in_the_graph():
    # Keras leaves a layer no path joins to the outputs out of the model it rebuilds, and so
    # does the graph reader (grader.graph_builder): it is listed as dead, never analysed.
    inputs = keras.Input((8, 8, 3))
    used = layers.Conv2D(4, 3, name="used")(inputs)
    unused = layers.SeparableConv2D(4, 3, name="unused")(inputs)
    config = to_config(keras.Model(inputs, [used, unused]))
    config["config"]["output_layers"] = config["config"]["output_layers"][:1]  # hand-edited
    rebuilt = keras.Model.from_config(copy.deepcopy(config["config"]))
    graph = analyze(config).graph
    influence = output_influence(graph)

    assert "unused" not in [layer.name for layer in rebuilt.layers]
    assert graph.nodes_of("unused") == []
    assert [dead.name for dead in graph.dead_layers] == ["unused"]
    assert influence.live_nodes() == {node.id for node in graph.nodes}


def test_a_call_with_no_path_to_an_output_is_not_connected():
    # A graph built by hand (not through the reader) may hold a call no output depends on:
    # output_influence still answers NO for it rather than trusting its callers.
    inputs = keras.Input((8, 8, 3))
    used = layers.Conv2D(4, 3, name="used")(inputs)
    unused = layers.SeparableConv2D(4, 3, name="unused")(inputs)
    full = analyze(to_config(keras.Model(inputs, [used, unused]))).graph
    [kept] = full.nodes_of("used")
    graph = dataclasses.replace(full, outputs=(kept.id,))
    influence = output_influence(graph)

    [node] = graph.nodes_of("unused")
    assert influence.state(node.id) is Effect.NO
    assert influence.reason(node.id) == "it is not connected to the model's output"
    assert influence.dead_nodes() == {node.id}


@pytest.mark.parametrize("seed", range(6))
def test_every_call_of_a_random_cnn_influences_its_output(seed):
    # Random CNNs (residual merges by Add/Maximum/Average/Multiply, shared layers, nested and
    # frozen blocks) hold no constant: every call is live.
    graph = analyze(to_config(random_cnn(seed))).graph
    influence = output_influence(graph)

    assert influence.live_nodes() == {node.id for node in graph.nodes}
