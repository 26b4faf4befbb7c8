"""Describe the network Keras built, for the host to compare with the static analysis.

`describe_built_model(model)` walks a built `keras.Model` the way `grader.analysis` flattens a
config: a nested model's layers are named ``outer/inner`` and counted once per call of that
model; input layers are left out (they hold no weights). Everything is read through Keras' own
public API: ``layers``, ``get_config()`` (a Functional model's calls of each layer: its
``inbound_nodes``), ``count_params()``, ``trainable``, ``trainable_weights``, ``output``. Runs
inside the train and evaluate sandboxes, before any student code is imported there.

TensorFlow and Keras are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from grader.build_check import BuiltLayer, BuiltModelReport


def _size(weights: Iterable[Any]) -> int:
    return sum(math.prod(int(d) for d in weight.shape) for weight in weights)


def _calls_by_name(model: Any) -> dict[str, int]:
    """How many times `model` itself calls each of its direct layers."""
    import keras

    if isinstance(model, keras.Sequential):
        calls: dict[str, int] = {}
        for layer in model.layers:  # a Sequential calls each listed layer once, in order
            calls[layer.name] = calls.get(layer.name, 0) + 1
        return calls
    # A Functional model's config lists, per layer, the calls that belong to this model's
    # graph (Keras leaves out the calls made while building nested models).
    return {
        str(entry["name"]): len(entry.get("inbound_nodes") or [])
        for entry in model.get_config()["layers"]
    }


def _first_output_shape(layer: Any) -> tuple[int | None, ...] | None:
    """The shape of `layer`'s first call's output, batch axis excluded, if it has one output."""
    try:
        output = layer.output  # Keras: the tensor(s) of the layer's first call
    except (AttributeError, ValueError):
        return None
    shape = getattr(output, "shape", None)
    if shape is None:  # several outputs: a list or a dict of tensors
        return None
    return tuple(None if d is None else int(d) for d in tuple(shape)[1:])


def _walk(
    model: Any,
    prefix: str,
    multiplier: int,
    trains: frozenset[int],
    outer_trainable: bool,
    into: list[BuiltLayer],
) -> None:
    import keras

    calls = _calls_by_name(model)
    for layer in model.layers:
        name = prefix + layer.name
        count = calls.get(layer.name, 0) * multiplier
        if isinstance(layer, keras.Model):
            # A nested model's own `trainable` flag gates nothing here: the optimizer updates
            # the outermost model's `trainable_weights`, which collect every variable still
            # marked trainable, whatever flag the models between them carry.
            _walk(layer, f"{name}/", count, trains, outer_trainable, into)
            continue
        if isinstance(layer, keras.layers.InputLayer):
            continue
        trained = [weight for weight in layer.weights if id(weight) in trains]
        into.append(
            BuiltLayer(
                name=name,
                class_name=type(layer).__name__,
                calls=count,
                params=int(layer.count_params()),
                trainable_params=_size(trained),
                trainable=outer_trainable and bool(layer.trainable),
                output_shape=_first_output_shape(layer) if count == 1 else None,
            )
        )


def describe_built_model(model: Any) -> BuiltModelReport:
    """What Keras built: each layer (nested models flattened) and the whole model's counts.

    Args:
        model: a built `keras.Model` (Sequential or Functional, possibly nesting others).

    Returns:
        The report the host compares with the analysis (`grader.build_check`).
    """
    layers: list[BuiltLayer] = []
    trains = frozenset(id(weight) for weight in model.trainable_weights)
    _walk(model, "", 1, trains, bool(model.trainable), layers)
    trainable = _size(model.trainable_weights)
    non_trainable = _size(model.non_trainable_weights)
    return BuiltModelReport(
        layers=tuple(layers),
        total_params=trainable + non_trainable,
        trainable_params=trainable,
        non_trainable_params=non_trainable,
    )
