"""Functions and classes Keras 1/2 code calls that Keras 3 renamed or removed, with examples."""

from __future__ import annotations

from grader.keras_renames.records import NameRename

NAMES: tuple[NameRename, ...] = tuple(
    NameRename(old, new, rename_type, example_old, example_new)
    for old, new, rename_type, example_old, example_new in (
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
