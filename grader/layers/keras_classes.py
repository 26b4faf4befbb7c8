"""Keras' own layer classes by name: those it exports, and those that carry code.

The supported classes come from their records (`grader.layers`); only the built-in classes
without a record and the code-carrying ones are listed here.

The config safety screen (`grader.config_safety`) and the allow-list of nested objects
(`grader.layer_arguments`) read these names; nothing here imports Keras.
"""

from __future__ import annotations

from grader.layers import REGISTRY

# Keras 3 built-in layer classes (keras.layers) that have no record: a model using one is
# refused as unsupported, not as someone's own code. `InputLayer` is among them: the graph
# builder reads it itself.
UNSUPPORTED_BUILTIN_LAYERS = frozenset(
    [
        "AdaptiveAveragePooling1D",
        "AdaptiveAveragePooling2D",
        "AdaptiveAveragePooling3D",
        "AdaptiveMaxPooling1D",
        "AdaptiveMaxPooling2D",
        "AdaptiveMaxPooling3D",
        "AdditiveAttention",
        "Attention",
        "Bidirectional",
        "CategoryEncoding",
        "ContrastLimitedAdaptiveHistogramEqualization",
        "ConvLSTM1D",
        "ConvLSTM2D",
        "ConvLSTM3D",
        "CutMix",
        "Discretization",
        "Dot",
        "EinsumDense",
        "Equalization",
        "GRU",
        "GRUCell",
        "GroupedQueryAttention",
        "HashedCrossing",
        "Hashing",
        "InputLayer",
        "IntegerLookup",
        "LSTM",
        "LSTMCell",
        "MaxNumBoundingBoxes",
        "MelSpectrogram",
        "MixUp",
        "MultiHeadAttention",
        "Pipeline",
        "RNN",
        "ReversibleEmbedding",
        "STFTSpectrogram",
        "SimpleRNN",
        "SimpleRNNCell",
        "SpectralNormalization",
        "StackedRNNCells",
        "StringLookup",
        "TextVectorization",
        "TimeDistributed",
        "Wrapper",
    ]
)

# Every Keras 3 built-in layer class (keras.layers, canonical names): the supported ones, from
# their records' safety, and the unsupported ones. A class outside this set is someone's own
# code. `tests/grader/layers/test_layer_records.py` checks it against the installed Keras.
KERAS_BUILTIN_LAYERS = UNSUPPORTED_BUILTIN_LAYERS | frozenset(
    name for name, spec in REGISTRY.items() if spec.safety is not None and spec.safety.builtin
)

#: Keras classes that run code or load foreign programs (e.g. a SavedModel) when rebuilt.
CODE_CARRYING_CLASSES = frozenset(
    {
        "Lambda",
        "TFOpLambda",
        "SlicingOpLambda",
        "TFSMLayer",
        "JaxLayer",
        "FlaxLayer",
        "TorchModuleWrapper",
        "Layer",
    }
)
