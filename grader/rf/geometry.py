"""The receptive-field record of every layer class, looked up per layer call.

Each supported class's record in `grader.layers` names its `Geometry` (`grader.rf.effects`): how
a call of that class moves positions and channels. `RECORDS` and the class sets below are built
from those records, never written by hand; ``InputLayer``, which the graph builder handles
itself, is the one addition. A layer the records do not know is refused with a
`ReceptiveFieldError` naming it: refusing beats a silently wrong number.
"""

from __future__ import annotations

from grader.errors import ReceptiveFieldError
from grader.graph import Node, Shape
from grader.layers import REGISTRY
from grader.rf.effects import Channels, Effect, Geometry, describe
from grader.rf.readers import CHANNEL_MIX, ELEMENTWISE, GLOBAL_POOLING, INFERENCE_IDENTITY

RECORDS: dict[str, Geometry] = {
    "InputLayer": ELEMENTWISE,
    # A record without geometry is refused here and reported by
    # tests/grader/layers/test_layer_records.py.
    **{name: spec.geometry for name, spec in REGISTRY.items() if spec.geometry is not None},
}


def classes_with(geometry: Geometry) -> frozenset[str]:
    """The classes whose record names `geometry` (one of the shared `grader.rf.effects` ones)."""
    return frozenset(name for name, found in RECORDS.items() if found is geometry)


# The identity at inference: a grader measures `model(x, training=False)`. Random augmentation
# only moves or recolours pixels while training (Keras returns its input unchanged otherwise),
# noise and dropout are off, batch normalisation uses its moving statistics.
INFERENCE_IDENTITY_CLASSES = classes_with(INFERENCE_IDENTITY)
# Element-wise functions of one value (or with constants per element).
ELEMENTWISE_CLASSES = classes_with(ELEMENTWISE)
GLOBAL_POOL_CLASSES = classes_with(GLOBAL_POOLING)
# Layers past which a report may name an end point: every position's field stays as it was.
POSITION_IDENTITY_CLASSES = (
    INFERENCE_IDENTITY_CLASSES | ELEMENTWISE_CLASSES | classes_with(CHANNEL_MIX)
)


def record(node: Node) -> Geometry:
    """The `Geometry` record of a layer call's class.

    Raises:
        ReceptiveFieldError: the class has no record.
    """
    found = RECORDS.get(node.layer.class_name)
    if found is None:
        raise ReceptiveFieldError(
            f"{describe(node)} is not supported by the receptive-field analysis. Supported: "
            "convolutions, pooling, padding, cropping, up-sampling, resizing, merges, reshapes, "
            "point-wise layers, global pooling and Flatten."
        )
    return found


def classify(node: Node, dims: Shape) -> Effect:
    """The effect of one layer call on positions.

    Args:
        node: the layer call.
        dims: spatial sizes of the node's input (``None`` where unknown); empty when the input
            is not spatial.

    Returns:
        The `Effect`.

    Raises:
        ReceptiveFieldError: the layer is unknown, refused, or its config cannot be read.
    """
    return record(node).effect(node, dims)


def channels(node: Node) -> Channels:
    """The effect of one layer call on channels (see `Channels`)."""
    return record(node).channels(node)


def is_position_identity(node: Node) -> bool:
    """Whether the layer leaves every position's field unchanged, whatever its config.

    True for the inference identities and element-wise functions, batch normalisation and
    ``Dense`` on the channel axis: the layers a report may name an end point past.
    """
    return node.layer.class_name in POSITION_IDENTITY_CLASSES
