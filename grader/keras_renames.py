"""Keras 1 and 2 spellings and what Keras 3 calls them: one table, read by the source hints.

Students copy code from notebooks and tutorials written for Keras 1 (2015-2017) and Keras 2
(2017-2023). Keras 3 refuses most of the old spellings with a message that says what broke
("Unrecognized keyword arguments passed to Conv2D: {'border_mode': 'same'}") but not what to
write instead; a few it accepts and silently reads differently. Each entry here names the old
spelling, the Keras 3 one, and a worked example of both, which the tests run through Keras 3
(the old one must fail or be ignored, the new one must work), so the table cannot go stale.

Pure data: no Keras import.
"""

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
        kind: ``removed`` (Keras 3 has no such name: it fails), ``alias`` (Keras 3 still accepts
            the old name), ``method`` (a method of a model: ``model.fit_generator``).
        example_old: code using it that fails in Keras 3 (for ``alias``: that works).
        example_new: the Keras 3 code.
    """

    old: str
    new: str
    kind: str
    example_old: str
    example_new: str


_CONV = CONV_LAYERS
KEYWORDS: tuple[KeywordRename, ...] = (
    KeywordRename(
        "border_mode",
        "padding=",
        None,
        "",
        "layers.Conv2D(8, 3, border_mode='same')",
        "layers.Conv2D(8, 3, padding='same')",
    ),
    KeywordRename(
        "subsample",
        "strides=",
        None,
        "",
        "layers.Conv2D(8, 3, subsample=(2, 2))",
        "layers.Conv2D(8, 3, strides=(2, 2))",
    ),
    KeywordRename(
        "subsample_length",
        "strides=",
        None,
        "",
        "layers.Conv1D(8, 3, subsample_length=2)",
        "layers.Conv1D(8, 3, strides=2)",
    ),
    KeywordRename(
        "nb_filter",
        "filters=",
        None,
        "",
        "layers.Conv2D(nb_filter=8, kernel_size=3)",
        "layers.Conv2D(filters=8, kernel_size=3)",
    ),
    KeywordRename(
        "nb_row",
        "kernel_size=(nb_row, nb_col)",
        None,
        "",
        "layers.Conv2D(8, nb_row=3, nb_col=3)",
        "layers.Conv2D(8, kernel_size=(3, 3))",
    ),
    KeywordRename(
        "nb_col",
        "kernel_size=(nb_row, nb_col)",
        None,
        "",
        "layers.Conv2D(8, nb_row=3, nb_col=3)",
        "layers.Conv2D(8, kernel_size=(3, 3))",
    ),
    KeywordRename(
        "filter_length",
        "kernel_size=",
        None,
        "",
        "layers.Conv1D(8, filter_length=3)",
        "layers.Conv1D(8, kernel_size=3)",
    ),
    KeywordRename(
        "atrous_rate",
        "dilation_rate=",
        None,
        "",
        "layers.Conv2D(8, 3, atrous_rate=(2, 2))",
        "layers.Conv2D(8, 3, dilation_rate=(2, 2))",
    ),
    KeywordRename(
        "dim_ordering",
        'data_format="channels_last"',
        None,
        'Keras 1\'s "tf" is "channels_last", its "th" is "channels_first".',
        "layers.Conv2D(8, 3, dim_ordering='tf')",
        "layers.Conv2D(8, 3, data_format='channels_last')",
    ),
    KeywordRename(
        "init",
        "kernel_initializer=",
        KERNEL_LAYERS,
        "",
        "layers.Dense(8, init='he_normal')",
        "layers.Dense(8, kernel_initializer='he_normal')",
    ),
    KeywordRename(
        "W_regularizer",
        "kernel_regularizer=",
        None,
        "",
        "layers.Dense(8, W_regularizer=keras.regularizers.l2(0.01))",
        "layers.Dense(8, kernel_regularizer=keras.regularizers.l2(0.01))",
    ),
    KeywordRename(
        "b_regularizer",
        "bias_regularizer=",
        None,
        "",
        "layers.Dense(8, b_regularizer=keras.regularizers.l2(0.01))",
        "layers.Dense(8, bias_regularizer=keras.regularizers.l2(0.01))",
    ),
    KeywordRename(
        "W_constraint",
        "kernel_constraint=",
        None,
        "",
        "layers.Dense(8, W_constraint=keras.constraints.MaxNorm(3))",
        "layers.Dense(8, kernel_constraint=keras.constraints.MaxNorm(3))",
    ),
    KeywordRename(
        "b_constraint",
        "bias_constraint=",
        None,
        "",
        "layers.Dense(8, b_constraint=keras.constraints.MaxNorm(3))",
        "layers.Dense(8, bias_constraint=keras.constraints.MaxNorm(3))",
    ),
    KeywordRename(
        "bias",
        "use_bias=",
        KERNEL_LAYERS,
        "",
        "layers.Dense(8, bias=False)",
        "layers.Dense(8, use_bias=False)",
    ),
    KeywordRename(
        "output_dim",
        "units=",
        frozenset({"Dense"}),
        "",
        "layers.Dense(output_dim=8)",
        "layers.Dense(units=8)",
    ),
    KeywordRename(
        "p",
        "rate=",
        DROPOUT_LAYERS,
        "",
        "layers.Dropout(p=0.1)",
        "layers.Dropout(rate=0.1)",
    ),
    KeywordRename(
        "pool_length",
        "pool_size=",
        None,
        "",
        "layers.MaxPooling1D(pool_length=2)",
        "layers.MaxPooling1D(pool_size=2)",
    ),
    KeywordRename(
        "stride",
        "strides=",
        POOLING_LAYERS,
        "",
        "layers.MaxPooling1D(2, stride=2)",
        "layers.MaxPooling1D(2, strides=2)",
    ),
    KeywordRename(
        "beta_init",
        "beta_initializer=",
        None,
        "",
        "layers.BatchNormalization(beta_init='zeros')",
        "layers.BatchNormalization(beta_initializer='zeros')",
    ),
    KeywordRename(
        "gamma_init",
        "gamma_initializer=",
        None,
        "",
        "layers.BatchNormalization(gamma_init='ones')",
        "layers.BatchNormalization(gamma_initializer='ones')",
    ),
    KeywordRename(
        "mode",
        "(nothing: remove it)",
        frozenset({"BatchNormalization"}),
        "Keras 3's BatchNormalization always normalizes per feature (Keras 1's mode 0).",
        "layers.BatchNormalization(mode=0)",
        "layers.BatchNormalization()",
    ),
    KeywordRename(
        "lr",
        "learning_rate=",
        OPTIMIZERS,
        "",
        "keras.optimizers.Adam(lr=0.001)",
        "keras.optimizers.Adam(learning_rate=0.001)",
    ),
    KeywordRename(
        "decay",
        "learning_rate=keras.optimizers.schedules.InverseTimeDecay(LR, decay_steps=1, "
        "decay_rate=DECAY)",
        OPTIMIZERS,
        "Keras 3 ignores `decay=` (with only a warning): the learning rate would stay constant. "
        "The schedule computes LR / (1 + DECAY * step), as Keras 2's `decay` did.",
        "keras.optimizers.SGD(learning_rate=0.01, decay=1e-6)",
        "keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.InverseTimeDecay("
        "0.01, decay_steps=1, decay_rate=1e-6))",
    ),
    KeywordRename(
        "nb_epoch",
        "epochs=",
        None,
        "",
        "model.fit(x, y, nb_epoch=1, verbose=0)",
        "model.fit(x, y, epochs=1, verbose=0)",
    ),
    KeywordRename(
        "samples_per_epoch",
        "steps_per_epoch= (batches, not samples)",
        None,
        "",
        "model.fit(x, y, samples_per_epoch=4, verbose=0)",
        "model.fit(x, y, steps_per_epoch=1, verbose=0)",
    ),
    KeywordRename(
        "nb_val_samples",
        "validation_steps= (batches, not samples)",
        None,
        "",
        "model.fit(x, y, nb_val_samples=4, verbose=0)",
        "model.fit(x, y, validation_steps=1, verbose=0)",
    ),
)

MODULES: tuple[ModuleRename, ...] = tuple(
    ModuleRename(old, new, example_old, example_new)
    for old, new, example_old, example_new in (
        (
            "keras.layers.convolutional",
            "keras.layers",
            "from keras.layers.convolutional import Conv2D",
            "from keras.layers import Conv2D",
        ),
        (
            "keras.layers.normalization",
            "keras.layers",
            "from keras.layers.normalization import BatchNormalization",
            "from keras.layers import BatchNormalization",
        ),
        (
            "keras.layers.core",
            "keras.layers",
            "from keras.layers.core import Dense, Dropout, Flatten, Activation",
            "from keras.layers import Dense, Dropout, Flatten, Activation",
        ),
        (
            "keras.layers.pooling",
            "keras.layers",
            "from keras.layers.pooling import MaxPooling2D",
            "from keras.layers import MaxPooling2D",
        ),
        (
            "keras.layers.merge",
            "keras.layers",
            "from keras.layers.merge import concatenate",
            "from keras.layers import concatenate",
        ),
        (
            "keras.layers.advanced_activations",
            "keras.layers",
            "from keras.layers.advanced_activations import LeakyReLU",
            "from keras.layers import LeakyReLU",
        ),
        (
            "keras.layers.noise",
            "keras.layers",
            "from keras.layers.noise import GaussianNoise",
            "from keras.layers import GaussianNoise",
        ),
        (
            "keras.layers.recurrent",
            "keras.layers",
            "from keras.layers.recurrent import LSTM",
            "from keras.layers import LSTM",
        ),
        (
            "keras.layers.embeddings",
            "keras.layers",
            "from keras.layers.embeddings import Embedding",
            "from keras.layers import Embedding",
        ),
        (
            "keras.layers.wrappers",
            "keras.layers",
            "from keras.layers.wrappers import TimeDistributed",
            "from keras.layers import TimeDistributed",
        ),
        (
            "keras.layers.experimental.preprocessing",
            "keras.layers",
            "from keras.layers.experimental.preprocessing import RandomFlip",
            "from keras.layers import RandomFlip",
        ),
        (
            "keras.utils.np_utils",
            "keras.utils",
            "from keras.utils.np_utils import to_categorical",
            "from keras.utils import to_categorical",
        ),
        (
            "keras.utils.vis_utils",
            "keras.utils",
            "from keras.utils.vis_utils import plot_model",
            "from keras.utils import plot_model",
        ),
        (
            "keras.utils.generic_utils",
            "keras.utils",
            "from keras.utils.generic_utils import Progbar",
            "from keras.utils import Progbar",
        ),
        (
            "keras.engine",
            "keras (Model, Input) and keras.layers (Layer, InputSpec)",
            "from keras.engine.topology import Layer",
            "from keras.layers import Layer",
        ),
        (
            # TensorFlow still ships this private copy of Keras 2: it imports, but its layers
            # are not Keras 3 layers, and a Keras 3 model refuses them.
            "tensorflow.python.keras",
            "keras",
            "from tensorflow.python.keras.layers import Dense\n"
            "keras.Sequential([keras.Input((4,)), Dense(2)])",
            "from keras.layers import Dense",
        ),
        (
            "keras.wrappers.scikit_learn",
            "nothing in Keras 3 (the `scikeras` package replaces it; the grader has no use for "
            "it: remove the import)",
            "from keras.wrappers.scikit_learn import KerasClassifier",
            "",
        ),
        (
            "keras.layers.local",
            "nothing in Keras 3 (LocallyConnected layers were removed: use Conv2D)",
            "from keras.layers.local import LocallyConnected2D",
            "",
        ),
    )
)

NAMES: tuple[NameRename, ...] = tuple(
    NameRename(old, new, kind, example_old, example_new)
    for old, new, kind, example_old, example_new in (
        (
            "np_utils",
            "keras.utils (`keras.utils.to_categorical(y, num_classes)`)",
            "removed",
            "from keras.utils import np_utils",
            "from keras.utils import to_categorical",
        ),
        (
            "AtrousConvolution2D",
            "Conv2D(..., dilation_rate=...)",
            "removed",
            "layers.AtrousConvolution2D(8, 3, 3, atrous_rate=(2, 2))",
            "layers.Conv2D(8, (3, 3), dilation_rate=(2, 2))",
        ),
        (
            "AtrousConvolution1D",
            "Conv1D(..., dilation_rate=...)",
            "removed",
            "layers.AtrousConvolution1D(8, 3, atrous_rate=2)",
            "layers.Conv1D(8, 3, dilation_rate=2)",
        ),
        (
            "Deconvolution2D",
            "Conv2DTranspose",
            "removed",
            "layers.Deconvolution2D(8, 3, 3)",
            "layers.Conv2DTranspose(8, (3, 3))",
        ),
        (
            "Merge",
            "a merge layer: Add(), Concatenate(), Multiply(), Average()",
            "removed",
            "layers.Merge(mode='sum')",
            "layers.Add()",
        ),
        (
            "merge",
            "a merge layer: Add()([a, b]), Concatenate()([a, b]) (or add(...), concatenate(...))",
            "removed",
            "layers.merge([a, b], mode='sum')",
            "layers.Add()([a, b])",
        ),
        (
            "MaxoutDense",
            "Dense (Maxout was removed)",
            "removed",
            "layers.MaxoutDense(8)",
            "layers.Dense(8)",
        ),
        (
            "Highway",
            "Dense (Highway was removed)",
            "removed",
            "layers.Highway()",
            "layers.Dense(8)",
        ),
        (
            "ThresholdedReLU",
            "ReLU(threshold=...)",
            "removed",
            "layers.ThresholdedReLU(theta=1.0)",
            "layers.ReLU(threshold=1.0)",
        ),
        (
            "LocallyConnected2D",
            "Conv2D (LocallyConnected layers were removed)",
            "removed",
            "layers.LocallyConnected2D(8, 3)",
            "layers.Conv2D(8, 3)",
        ),
        ("CuDNNLSTM", "LSTM", "removed", "layers.CuDNNLSTM(8)", "layers.LSTM(8)"),
        ("CuDNNGRU", "GRU", "removed", "layers.CuDNNGRU(8)", "layers.GRU(8)"),
        (
            "Convolution1D",
            "Conv1D",
            "alias",
            "layers.Convolution1D(8, 3)",
            "layers.Conv1D(8, 3)",
        ),
        (
            "Convolution2D",
            "Conv2D",
            "alias",
            "layers.Convolution2D(8, (3, 3))",
            "layers.Conv2D(8, (3, 3))",
        ),
        (
            "Convolution3D",
            "Conv3D",
            "alias",
            "layers.Convolution3D(8, (3, 3, 3))",
            "layers.Conv3D(8, (3, 3, 3))",
        ),
        (
            "SeparableConvolution2D",
            "SeparableConv2D",
            "alias",
            "layers.SeparableConvolution2D(8, (3, 3))",
            "layers.SeparableConv2D(8, (3, 3))",
        ),
        (
            "ImageDataGenerator",
            "augmentation layers (`layers.RandomFlip`, `layers.RandomTranslation`) or the "
            'augmentation of your `training_config()` (e.g. `"augmentation": ["flip", '
            '"translate"]`)',
            "removed",
            "keras.preprocessing.image.ImageDataGenerator(horizontal_flip=True)",
            "layers.RandomFlip('horizontal')",
        ),
        (
            "set_image_dim_ordering",
            'keras.backend.set_image_data_format("channels_last")',
            "removed",
            "keras.backend.set_image_dim_ordering('tf')",
            "keras.backend.set_image_data_format('channels_last')",
        ),
        (
            "image_dim_ordering",
            "keras.backend.image_data_format()",
            "removed",
            "keras.backend.image_dim_ordering()",
            "keras.backend.image_data_format()",
        ),
        (
            "multi_gpu_model",
            "nothing (the grader chooses the device: remove it)",
            "removed",
            "keras.utils.multi_gpu_model(model, gpus=2)",
            "",
        ),
        (
            "fit_generator",
            "model.fit(...) (it takes generators and datasets)",
            "method",
            "model.fit_generator(iter([(x, y)]), steps_per_epoch=1, verbose=0)",
            "model.fit(x, y, verbose=0)",
        ),
        (
            "evaluate_generator",
            "model.evaluate(...)",
            "method",
            "model.evaluate_generator(iter([(x, y)]), steps=1, verbose=0)",
            "model.evaluate(x, y, verbose=0)",
        ),
        (
            "predict_generator",
            "model.predict(...)",
            "method",
            "model.predict_generator(iter([x]), steps=1, verbose=0)",
            "model.predict(x, verbose=0)",
        ),
        (
            "predict_classes",
            "np.argmax(model.predict(x), axis=-1)",
            "method",
            "model.predict_classes(x, verbose=0)",
            "model.predict(x, verbose=0).argmax(axis=-1)",
        ),
        (
            "predict_proba",
            "model.predict(x)",
            "method",
            "model.predict_proba(x, verbose=0)",
            "model.predict(x, verbose=0)",
        ),
    )
) + tuple(
    NameRename(
        old,
        f"keras.optimizers.{new}",
        "removed",
        f"keras.optimizers.{old}(learning_rate=0.01)",
        f"keras.optimizers.{new}(learning_rate=0.01)",
    )
    for old, new in (
        ("sgd", "SGD"),
        ("adam", "Adam"),
        ("rmsprop", "RMSprop"),
        ("adagrad", "Adagrad"),
        ("adadelta", "Adadelta"),
        ("adamax", "Adamax"),
        ("nadam", "Nadam"),
    )
)

KEYWORDS_BY_NAME: dict[str, KeywordRename] = {rename.old: rename for rename in KEYWORDS}
NAMES_BY_NAME: dict[str, NameRename] = {rename.old: rename for rename in NAMES}


def normalize_module(module: str) -> str:
    """``tensorflow.keras.x`` and ``tf.keras.x`` read as ``keras.x`` (TensorFlow 2.16+ re-exports
    Keras 3 there); other names unchanged."""
    for prefix in ("tensorflow.keras", "tf.keras"):
        if module == prefix or module.startswith(prefix + "."):
            return "keras" + module[len(prefix) :]
    return module


def module_rename(module: str) -> ModuleRename | None:
    """The rename for a module (or one of its submodules), or None if Keras 3 has it."""
    if module.startswith("tensorflow.python.keras"):
        return next(r for r in MODULES if r.old == "tensorflow.python.keras")
    normalized = normalize_module(module)
    best: ModuleRename | None = None
    for rename in MODULES:
        matches = normalized == rename.old or normalized.startswith(rename.old + ".")
        # The longest match wins (a module and one of its submodules both listed).
        if matches and (best is None or len(rename.old) > len(best.old)):
            best = rename
    return best


def keyword_rename(keyword: str, callee: str | None) -> KeywordRename | None:
    """The rename for a keyword passed to `callee` (the call's last name), if it applies."""
    rename = KEYWORDS_BY_NAME.get(keyword)
    if rename is None:
        return None
    if rename.applies_to is not None and callee not in rename.applies_to:
        return None
    return rename
