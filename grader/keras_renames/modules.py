"""Modules Keras 1/2 code imports that Keras 3 moved or removed, with worked examples."""

from __future__ import annotations

from grader.keras_renames.records import ModuleRename

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
