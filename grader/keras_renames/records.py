"""The record types of the rename tables and the layer groups their entries apply to."""

from __future__ import annotations

from dataclasses import dataclass

# Callables a keyword rename applies to, by the name the call uses (`Conv2D`, `layers.Conv2D`,
# `keras.layers.Conv2D`: the last part). Keras 3 keeps `Convolution2D` and friends as aliases.
CONV_LAYERS = frozenset(
    {
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Convolution1D",
        "Convolution2D",
        "Convolution3D",
        "SeparableConv1D",
        "SeparableConv2D",
        "SeparableConvolution1D",
        "SeparableConvolution2D",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "Convolution2DTranspose",
        "Convolution3DTranspose",
        "AtrousConvolution1D",
        "AtrousConvolution2D",
        "Deconvolution2D",
    }
)
POOLING_LAYERS = frozenset(
    {
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "MaxPool1D",
        "MaxPool2D",
        "MaxPool3D",
        "AvgPool1D",
        "AvgPool2D",
        "AvgPool3D",
    }
)
KERNEL_LAYERS = CONV_LAYERS | {"Dense", "Embedding", "LSTM", "GRU", "SimpleRNN"}
DROPOUT_LAYERS = frozenset(
    {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout"}
)
OPTIMIZERS = frozenset(
    {
        "SGD",
        "Adam",
        "AdamW",
        "RMSprop",
        "Adagrad",
        "Adadelta",
        "Adamax",
        "Nadam",
        "Ftrl",
        "Lion",
        # Keras 2.0-2.2 spellings, themselves renamed below.
        "sgd",
        "adam",
        "rmsprop",
        "adagrad",
        "adadelta",
        "adamax",
        "nadam",
    }
)
FIT_METHODS = frozenset({"fit", "fit_generator", "evaluate", "evaluate_generator"})
# Convolutions whose third positional argument is `strides` in Keras 3 (filters, kernel_size,
# strides), and depthwise ones whose second is (kernel_size, strides).
STRIDES_POSITION = {name: 2 for name in CONV_LAYERS} | {
    "DepthwiseConv1D": 1,
    "DepthwiseConv2D": 1,
}


@dataclass(frozen=True)
class KeywordRename:
    """A keyword argument Keras 1/2 took that Keras 3 spells differently (or dropped).

    Attributes:
        old: the old keyword (``border_mode``).
        new: what to write in Keras 3 (``padding=``), as the message shows it.
        applies_to: the callables (last name of the call) it is flagged on; None: any call,
            for keywords no other library uses.
        note: one more sentence when the meaning changed too (empty if only the name did).
        example_old: a Keras 1/2 call using it, which Keras 3 refuses or ignores.
        example_new: the same call in Keras 3, which works (both run by the tests, with
            ``keras`` and ``layers`` in scope).
    """

    old: str
    new: str
    applies_to: frozenset[str] | None
    note: str
    example_old: str
    example_new: str


@dataclass(frozen=True)
class ModuleRename:
    """A module path Keras 1/2 had and Keras 3 does not.

    Attributes:
        old: the dotted module (``keras.layers.convolutional``); submodules match too.
        new: where its contents live in Keras 3 (``keras.layers``), or a sentence when nothing
            replaces it.
        example_old: an import that fails in Keras 3.
        example_new: the import to write instead (empty when nothing replaces it).
    """

    old: str
    new: str
    example_old: str
    example_new: str


@dataclass(frozen=True)
class NameRename:
    """A class, function or method Keras 1/2 had under another name (or that is gone).

    Attributes:
        old: the name as written (``Convolution2D``, ``fit_generator``).
        new: what to write in Keras 3.
        rename_type: ``removed`` (Keras 3 has no such name: it fails), ``alias`` (Keras 3
            still accepts the old name), ``method`` (a method of a model:
            ``model.fit_generator``).
        example_old: code using it that fails in Keras 3 (for ``alias``: that works).
        example_new: the Keras 3 code.
    """

    old: str
    new: str
    rename_type: str
    example_old: str
    example_new: str
