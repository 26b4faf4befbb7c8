"""Whether a model fits a dataset and whether TensorFlow accepts its names, read from its config.

Both are decided statically, before any rule, so a model that cannot be trained on the
assignment's dataset (or at all) is refused up front with a message that says why, instead of
earning rule points and then failing in a sandbox.

Names: Keras refuses a `/` in any name, and TensorFlow opens a name scope per layer while it
traces `fit`/`predict`. A layer's scope is nested in the model's and must match
``^[A-Za-z0-9_.\\\\/>-]*$``; the model's own scope is a root scope and must also start with a
letter, digit or `.`. TensorFlow then refuses a backslash in the node names made from those
scopes. An `InputLayer` opens no scope: any name Keras takes is fine. Checked against Keras
3.15 / TensorFlow 2.21 (`tests/grader/test_fit.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from grader.errors import DatasetMismatch, InvalidModelConfig

#: A layer (or nested model) name TensorFlow accepts as a nested name scope.
LAYER_NAME = re.compile(r"[A-Za-z0-9_.>-]+")
#: The top-level model's name: a root scope, which must start with a letter, digit or `.`.
MODEL_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.>-]*")

_ALLOWED = "letters A-Z and a-z, digits, `_`, `.`, `-` and `>`"


class DatasetShape(Protocol):
    """What the fit check reads of a dataset (`grader.datasets.DatasetSource` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def num_classes(self) -> int: ...


def format_dims(shape: Sequence[int | None]) -> str:
    """A shape without its batch axis, as Python writes a tuple: ``(16, 16, 3)``, ``(4,)``."""
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check_dataset_fit(
    input_shapes: Sequence[Sequence[int | None]],
    output_shapes: Sequence[Sequence[int | None]],
    dataset: DatasetShape,
) -> None:
    """Check that a model takes the dataset's images and gives one score per class.

    The same rule as the training sandbox applies to the built Keras model: one input whose
    known sizes equal the image shape (a size left unknown, `None`, fits any), one output of
    exactly `num_classes` units.

    Args:
        input_shapes: The model's input shapes, batch axis excluded (`ModelAnalysis`).
        output_shapes: The model's output shapes, batch axis excluded.
        dataset: The assignment's dataset (name, image shape, number of classes).

    Raises:
        DatasetMismatch: naming the shape received and the shape the dataset needs.
    """
    image = tuple(int(d) for d in dataset.input_shape)
    images = f"the images of dataset `{dataset.name}`"
    if len(input_shapes) != 1:
        raise DatasetMismatch(
            f"Model has {len(input_shapes)} inputs. Expected one input of shape "
            f"{format_dims(image)}, {images}."
        )
    got = tuple(input_shapes[0])
    fits = len(got) == len(image) and all(
        g is None or g == e for g, e in zip(got, image, strict=True)
    )
    if not fits:
        raise DatasetMismatch(
            f"Model input shape is {format_dims(got)}. Expected {format_dims(image)}, {images}."
        )
    classes = int(dataset.num_classes)
    scores = f"one score for each of the {classes} classes of dataset `{dataset.name}`"
    if len(output_shapes) != 1:
        raise DatasetMismatch(
            f"Model has {len(output_shapes)} outputs. Expected one output of shape "
            f"{format_dims((classes,))}, {scores}."
        )
    out = tuple(output_shapes[0])
    if out != (classes,):
        raise DatasetMismatch(
            f"Model output shape is {format_dims(out)}. Expected {format_dims((classes,))}, "
            f"{scores}.{_spatial_output_hint(out, classes)}"
        )


def _spatial_output_hint(out: tuple[int | None, ...], classes: int) -> str:
    """What to write when the output still has positions (Dense on a feature map, no head).

    Keras applies Dense to the last axis only, so `Conv2D -> Dense(10)` without `Flatten`
    scores every position of the feature map; an image-to-image model ends the same way.
    """
    if len(out) < 2:
        return ""
    rank = min(len(out) - 1, 3)
    return (
        f" The output keeps the spatial axes {format_dims(out[:-1])}: its last layers score "
        f"every position. End the model with `GlobalAveragePooling{rank}D()` or `Flatten()` "
        f"before `Dense({classes})`."
    )


def invalid_name_message(name: str, *, what: str, root: bool = False) -> str | None:
    """Why TensorFlow would refuse `name` for a layer (or, `root`, for the model), or None.

    Args:
        name: The name as the config has it.
        what: Who has it, e.g. "Layer `conv<1>` (Conv2D)".
        root: The top-level model's name (a root scope), not a layer's.
    """
    pattern = MODEL_NAME if root else LAYER_NAME
    if pattern.fullmatch(name):
        return None
    bad = sorted({c for c in name if not LAYER_NAME.fullmatch(c)})
    if not name:
        received = "it is empty"
    elif bad:
        received = "it contains " + ", ".join(f"`{c}`" if c.strip() else repr(c) for c in bad)
    else:
        received = f"it starts with `{name[0]}`"
    expected = (
        f"a model name of {_ALLOWED} that starts with a letter, a digit or `.`"
        if root
        else f"a layer name of {_ALLOWED} only"
    )
    return f"{what} has a name TensorFlow refuses as a name scope: {received}. Expected {expected}."


def check_names(config: Mapping[str, Any]) -> None:
    """Check the model's name and every layer name (nested models included) for TensorFlow.

    Raises:
        InvalidModelConfig: naming the first layer (or the model) whose name TensorFlow refuses.
    """
    inner = config.get("config")
    model_name = inner.get("name") if isinstance(inner, Mapping) else None
    if isinstance(model_name, str):
        problem = invalid_name_message(model_name, what=f"Model `{model_name}`", root=True)
        if problem:
            raise InvalidModelConfig(problem)
    for layer_cfg, parent in _layers(config, None):
        name = layer_cfg.get("name")
        layer_inner = layer_cfg.get("config")
        if name is None and isinstance(layer_inner, Mapping):
            name = layer_inner.get("name")
        if not isinstance(name, str) or layer_cfg.get("class_name") == "InputLayer":
            # A missing name is the graph builder's to report; TensorFlow opens no scope for
            # an input, so any name Keras takes is fine there.
            continue
        where = f" in nested model `{parent}`" if parent is not None else ""
        what = f"Layer `{name}` ({layer_cfg.get('class_name')}){where}"
        problem = invalid_name_message(name, what=what)
        if problem:
            raise InvalidModelConfig(problem)


def _layers(
    config: Mapping[str, Any], parent: str | None
) -> Iterable[tuple[Mapping[str, Any], str | None]]:
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, Mapping) else None
    if not isinstance(layers, list):
        return
    for layer_cfg in layers:
        if not isinstance(layer_cfg, Mapping):
            continue
        yield layer_cfg, parent
        nested = layer_cfg.get("config")
        if isinstance(nested, Mapping) and isinstance(nested.get("layers"), list):
            name = nested.get("name") or layer_cfg.get("name")
            yield from _layers(layer_cfg, str(name))
