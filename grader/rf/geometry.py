"""The receptive-field record of every layer class, looked up per layer call.

`RECORDS` maps every layer class the grader supports (plus a few Keras aliases) to a `Geometry`
record (`grader.rf.effects`): how a call of that class moves positions and channels. A layer
the records do not know is refused with a `ReceptiveFieldError` naming it: refusing beats a
silently wrong number.
"""

from __future__ import annotations

from grader.errors import ReceptiveFieldError
from grader.graph import Node, Shape
from grader.rf.effects import (
    _POINTWISE,
    FLATTEN,
    GLOBAL,
    MERGE,
    Channels,
    Effect,
    Geometry,
    _axis_channels,
    _axis_dependent,
    _center_crop,
    _concatenate_channels,
    _constant,
    _conv,
    _conv_channels,
    _embedding,
    _every_spatial_axis,
    _group_channels,
    _keep,
    _mix,
    _pad_or_crop,
    _permute,
    _pool,
    _random_crop,
    _reshape,
    _resizing,
    _transpose,
    _upsampling,
    describe,
)

CONV_CLASSES = {
    f"{prefix}{rank}D": rank
    for prefix in ("Conv", "SeparableConv", "DepthwiseConv", "Convolution", "SeparableConvolution")
    for rank in (1, 2, 3)
}
POOL_CLASSES = {
    f"{name}{rank}D": rank
    for name in ("MaxPooling", "AveragePooling", "MaxPool", "AvgPool")
    for rank in (1, 2, 3)
}
ZERO_PADDING_CLASSES = {f"ZeroPadding{rank}D": rank for rank in (1, 2, 3)}
CROPPING_CLASSES = {f"Cropping{rank}D": rank for rank in (1, 2, 3)}
GLOBAL_POOL_CLASSES = {
    f"Global{name}{rank}D"
    for name in ("AveragePooling", "MaxPooling", "AvgPool", "MaxPool")
    for rank in (1, 2, 3)
}
UPSAMPLING_CLASSES = {f"UpSampling{rank}D": rank for rank in (1, 2, 3)}
TRANSPOSE_CLASSES = {
    **{f"Conv{rank}DTranspose": rank for rank in (1, 2, 3)},
    **{f"Convolution{rank}DTranspose": rank for rank in (2, 3)},
}
MERGE_CLASSES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"}

# The identity at inference: a grader measures `model(x, training=False)`. Random augmentation
# only moves or recolours pixels while training (Keras returns its input unchanged otherwise),
# noise and dropout are off, batch normalisation uses its moving statistics.
INFERENCE_IDENTITY_CLASSES = {
    "AlphaDropout", "AugMix", "BatchNormalization", "Dropout", "GaussianDropout",
    "GaussianNoise", "RandAugment", "RandomBrightness", "RandomColorDegeneration",
    "RandomColorJitter", "RandomContrast", "RandomElasticTransform", "RandomErasing",
    "RandomFlip", "RandomGaussianBlur", "RandomGrayscale", "RandomHeight", "RandomHue",
    "RandomInvert", "RandomPerspective", "RandomPosterization", "RandomRotation",
    "RandomSaturation", "RandomSharpness", "RandomShear", "RandomTranslation", "RandomWidth",
    "RandomZoom", "Solarization", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
}  # fmt: skip
# Element-wise functions of one value (or with constants per element).
ELEMENTWISE_CLASSES = {
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU",
    "ActivityRegularization", "Rescaling", "Normalization", "Identity",
}  # fmt: skip
# Normalise (or soft-max) over `axis`: local when only the channel axis, else a reduction.
AXIS_DEPENDENT_CLASSES = {"Softmax", "LayerNormalization", "UnitNormalization", "RMSNormalization"}

RECORDS: dict[str, Geometry] = {
    **{
        name: Geometry(_POINTWISE, _keep, "the identity at inference")
        for name in INFERENCE_IDENTITY_CLASSES
    },
    **{
        name: Geometry(_POINTWISE, _keep, "a function of each value alone")
        for name in ELEMENTWISE_CLASSES
    },
    "Dense": Geometry(_POINTWISE, _mix, "mixes the channels of each position"),
    "Masking": Geometry(_POINTWISE, _mix, "masks a position from all its channels"),
    "RandomCrop": Geometry(_random_crop, _keep, "the identity at inference"),
    "CenterCrop": Geometry(_center_crop, _keep, "crops (n - size) // 2 positions first"),
    **{
        name: Geometry(_axis_dependent, _axis_channels, "normalises over its `axis`")
        for name in AXIS_DEPENDENT_CLASSES
    },
    "GroupNormalization": Geometry(
        _every_spatial_axis, _group_channels, "normalises over positions and channel groups"
    ),
    "AutoContrast": Geometry(
        _every_spatial_axis, _keep, "rescales each channel by its minimum and maximum"
    ),
    **{
        name: Geometry(_conv(rank), _conv_channels, "a sliding window")
        for name, rank in CONV_CLASSES.items()
    },
    **{
        name: Geometry(_pool(rank), _keep, "a sliding window per channel")
        for name, rank in POOL_CLASSES.items()
    },
    **{
        name: Geometry(_pad_or_crop(rank, 1), _keep, "pads zeros: a window of one")
        for name, rank in ZERO_PADDING_CLASSES.items()
    },
    **{
        name: Geometry(_pad_or_crop(rank, -1), _keep, "drops edge positions: a window of one")
        for name, rank in CROPPING_CLASSES.items()
    },
    **{
        name: Geometry(_upsampling(rank), _keep, "repeats or interpolates positions")
        for name, rank in UPSAMPLING_CLASSES.items()
    },
    **{
        name: Geometry(_transpose(rank), _conv_channels, "spreads each position over a window")
        for name, rank in TRANSPOSE_CLASSES.items()
    },
    "Resizing": Geometry(_resizing, _keep, "resamples positions"),
    **{
        name: Geometry(_constant(GLOBAL), _keep, "pools every position")
        for name in GLOBAL_POOL_CLASSES
    },
    "Flatten": Geometry(_constant(FLATTEN), _keep, "folds positions into features"),
    # Only reached after a global or flattened tensor: every output repeats all of it.
    "RepeatVector": Geometry(_constant(GLOBAL), _keep, "repeats a feature vector"),
    **{
        name: Geometry(_constant(MERGE), _concatenate_channels, "the union of its inputs")
        for name in MERGE_CLASSES
    },
    "Reshape": Geometry(_reshape, _keep, "moves values between positions and channels"),
    "Permute": Geometry(_permute, _keep, "moves values between axes"),
    "Embedding": Geometry(_embedding, _mix, "reads integer ids, not image features"),
}


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
    name = node.layer.class_name
    return name in INFERENCE_IDENTITY_CLASSES or name in ELEMENTWISE_CLASSES or name == "Dense"
