"""The datasets the grader knows: their shapes, class names, readers and download locations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.datasets import keras_formats, synthetic
from grader.datasets.keys import derive_seed
from grader.errors import DatasetUnavailable

Arrays = keras_formats.Arrays

SYNTHETIC_TRAIN_EXAMPLES = 2048
SYNTHETIC_TEST_EXAMPLES = 512
DIGITS_TEST_FRACTION = 0.2

KERAS_DATASETS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


@dataclass(frozen=True)
class Download:
    """One upstream file, as Keras fetches it.

    Attributes:
        url: where to download it from.
        filename: where it goes, relative to the data directory (Keras' cache layout).
        sha256: expected digest, when Keras publishes one.
        extract_to: for a ``.tar.gz``, the directory to unpack into, relative to the data dir.
    """

    url: str
    filename: str
    sha256: str | None = None
    extract_to: str | None = None


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset.

    Attributes:
        name: registry key, e.g. ``"cifar10"``.
        description: one line for people.
        input_shape: image shape (height, width, channels).
        class_names: label names, index = label.
        read: reads ``(x_train, y_train, x_test, y_test)`` given the data directory and the
            dataset key; a dataset whose split is ours to choose (``synthetic``, ``digits``)
            chooses it with the key, so no code in a sandbox can compute the test examples.
        downloads: what ``fetch_dataset`` downloads; empty for offline datasets.
    """

    name: str
    description: str
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    read: Callable[[Path, str], Arrays] = field(repr=False)
    downloads: tuple[Download, ...] = ()

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def _read_synthetic(_data_dir: Path, key: str) -> Arrays:
    # Two independent keyed streams: train and test come from the same distribution yet never
    # share an image, and neither can be generated without the key.
    x_train, y_train = synthetic.make_keyed_synthetic(
        SYNTHETIC_TRAIN_EXAMPLES, key=key, split="train"
    )
    x_test, y_test = synthetic.make_keyed_synthetic(SYNTHETIC_TEST_EXAMPLES, key=key, split="test")
    return x_train, y_train, x_test, y_test


def _read_digits(_data_dir: Path, key: str) -> Arrays:
    """scikit-learn's bundled 8x8 digits (1,797 images), split 80/20, stratified, keyed."""
    from sklearn.datasets import load_digits  # imported here: slow, and only digits needs it

    bunch = load_digits()
    # Pixel values are 0..16; scale to the 0..255 range every other dataset uses.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    rng = np.random.Generator(np.random.PCG64(derive_seed(key, "digits", "test")))
    test_mask = np.zeros(labels.shape[0], dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen = rng.permutation(members)[: round(members.size * DIGITS_TEST_FRACTION)]
        test_mask[chosen] = True
    return images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask]


def _keyless(reader: Callable[[Path], Arrays]) -> Callable[[Path, str], Arrays]:
    """A reader of a dataset whose split is fixed upstream (the key chooses nothing there)."""

    def read(data_dir: Path, _key: str) -> Arrays:
        return reader(data_dir)

    return read


CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

DATASETS: dict[str, DatasetSource] = {
    source.name: source
    for source in (
        DatasetSource(
            name="synthetic",
            description="Seeded 16x16 RGB stripes, blobs and checkerboards (offline, 4 classes).",
            input_shape=(16, 16, 3),
            class_names=synthetic.CLASS_NAMES,
            read=_read_synthetic,
        ),
        DatasetSource(
            name="digits",
            description="scikit-learn's 8x8 handwritten digits (offline, 10 classes).",
            input_shape=(8, 8, 1),
            class_names=tuple(str(d) for d in range(10)),
            read=_read_digits,
        ),
        DatasetSource(
            name="cifar10",
            description="CIFAR-10: 50,000 + 10,000 32x32 RGB images, 10 classes.",
            input_shape=(32, 32, 3),
            class_names=CIFAR10_CLASSES,
            read=_keyless(keras_formats.read_cifar10),
            downloads=(
                Download(
                    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    filename="cifar-10-python.tar.gz",
                    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                    extract_to=".",
                ),
            ),
        ),
        DatasetSource(
            name="mnist",
            description="MNIST: 60,000 + 10,000 28x28 grey handwritten digits.",
            input_shape=(28, 28, 1),
            class_names=tuple(str(d) for d in range(10)),
            read=_keyless(
                lambda data_dir: keras_formats.read_mnist_npz(
                    data_dir / keras_formats.MNIST_FILENAME
                )
            ),
            downloads=(
                Download(
                    url=KERAS_DATASETS_URL + keras_formats.MNIST_FILENAME,
                    filename=keras_formats.MNIST_FILENAME,
                    sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
                ),
            ),
        ),
        DatasetSource(
            name="fashion_mnist",
            description="Fashion-MNIST: 60,000 + 10,000 28x28 grey clothing images.",
            input_shape=(28, 28, 1),
            class_names=FASHION_MNIST_CLASSES,
            read=_keyless(keras_formats.read_fashion_mnist),
            downloads=tuple(
                Download(
                    url=KERAS_DATASETS_URL + name,
                    filename=f"{keras_formats.FASHION_MNIST_DIRNAME}/{name}",
                )
                for name in keras_formats.FASHION_MNIST_FILES.values()
            ),
        ),
    )
}


def get_source(name: str) -> DatasetSource:
    """The registered dataset called `name`.

    Raises:
        DatasetUnavailable: no dataset of that name is registered.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetUnavailable(
            f"Unknown dataset `{name}`. Expected one of: {', '.join(sorted(DATASETS))}."
        ) from None
