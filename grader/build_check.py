"""Does the network Keras built agree with the one the static analysis read?

The grader decides parameter counts and rules from a pure-Python reading of the model config
(`grader.analysis`), while the trainer and the evaluator build the network with Keras from the
same config. Two readers of one file can disagree (an alias, a field one reads and the other
ignores); a disagreement would grade one network and train another. So the train and evaluate
sandboxes describe what Keras built (`BuiltModelReport`, written by trusted code before any
student code runs: `grader.training.built_model`), and the host compares it with the stored
analysis (`compare_with_analysis`) before the first epoch counts. Any difference refuses the
grading: a refusal instead of a wrong score.

Both sides are compared layer by layer under the analysis' names (layers of nested models
qualified ``outer/inner``): class, number of calls, parameters, trainable parameters, the
trainable flag and, for a layer called once, the shape of its output, then the whole-model
totals. The output shape catches what no count shows: strides, padding, pooling sizes,
cropping or upsampling read differently by the two readers change the map a layer produces.
Input layers are left out on both sides: they hold no weights and the analysis wires a nested
model's inputs through to its callers.

Pure Python: no Keras, no Django.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from grader.keras_config import compatible
from grader.limits import MAX_SIZE

#: At most this many differences are listed; the rest are counted.
MAX_DIFFERENCES = 50
#: A report of more layers than this is malformed (the analysis refuses far smaller models).
MAX_REPORT_LAYERS = 100_000
INPUT_CLASS = "InputLayer"


class MalformedBuildReport(ValueError):
    """A built-model report that does not follow the contract: the runner's fault, not a verdict."""


@dataclass(frozen=True)
class BuiltLayer:
    """One layer of the network Keras built (nested models flattened, input layers left out).

    Attributes:
        name: qualified name, ``outer/inner`` for a layer of a nested model.
        class_name: the Keras class Keras instantiated (``type(layer).__name__``).
        calls: how many times the built network calls it (a nested model's layer counts once
            per call of that model).
        params: its weights' scalar count (``layer.count_params()``).
        trainable_params: the scalars the optimizer updates: its weights among the outermost
            model's ``trainable_weights`` (0 when it, or the outermost model, is frozen; a
            nested model's own flag takes nothing out of them).
        trainable: its own ``trainable`` flag, False too when the outermost model is frozen.
        output_shape: the shape of its first call's output, batch axis excluded (None for an
            unknown size); None when it has several outputs or Keras cannot tell.
    """

    name: str
    class_name: str
    calls: int
    params: int
    trainable_params: int
    trainable: bool
    output_shape: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class BuiltModelReport:
    """What Keras built: every layer, and the whole model's parameter counts."""

    layers: tuple[BuiltLayer, ...]
    total_params: int
    trainable_params: int
    non_trainable_params: int

    def to_dict(self) -> dict[str, Any]:
        """The wire form: ``{"layers": [{...}], "params": {"total", "trainable", ...}}``."""
        return {
            "layers": [
                {
                    **asdict(layer),
                    "output_shape": None
                    if layer.output_shape is None
                    else list(layer.output_shape),
                }
                for layer in self.layers
            ],
            "params": {
                "total": self.total_params,
                "trainable": self.trainable_params,
                "non_trainable": self.non_trainable_params,
            },
        }

    @classmethod
    def from_dict(cls, data: Any) -> BuiltModelReport:
        """Read the wire form back.

        Raises:
            MalformedBuildReport: a key is missing or a value has the wrong type or range.
        """
        if not isinstance(data, Mapping):
            raise MalformedBuildReport(f"The report is a {type(data).__name__}, not an object.")
        rows = data.get("layers")
        params = data.get("params")
        if not isinstance(rows, list) or len(rows) > MAX_REPORT_LAYERS:
            raise MalformedBuildReport("The report has no `layers` list of a sensible length.")
        if not isinstance(params, Mapping):
            raise MalformedBuildReport("The report has no `params` object.")
        layers = []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise MalformedBuildReport(f"Report layer {index} is not an object.")
            name, class_name, trainable = (
                row.get("name"),
                row.get("class_name"),
                row.get("trainable"),
            )
            if not isinstance(name, str) or not isinstance(class_name, str):
                raise MalformedBuildReport(f"Report layer {index} lacks a name or a class.")
            if not isinstance(trainable, bool):
                raise MalformedBuildReport(f"Report layer `{name}` lacks its trainable flag.")
            layers.append(
                BuiltLayer(
                    name=name,
                    class_name=class_name,
                    calls=_count(row, "calls", f"layer `{name}`"),
                    params=_count(row, "params", f"layer `{name}`"),
                    trainable_params=_count(row, "trainable_params", f"layer `{name}`"),
                    trainable=trainable,
                    output_shape=_shape(row.get("output_shape"), f"layer `{name}`"),
                )
            )
        return cls(
            layers=tuple(layers),
            total_params=_count(params, "total", "model"),
            trainable_params=_count(params, "trainable", "model"),
            non_trainable_params=_count(params, "non_trainable", "model"),
        )


def _count(row: Mapping[str, Any], key: str, where: str) -> int:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise MalformedBuildReport(f"Report {where} has `{key}` {value!r}; expected a count.")
    return value


def _shape(value: Any, where: str) -> tuple[int | None, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > 64
        or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_SIZE)
            for d in value
        )
    ):
        raise MalformedBuildReport(
            f"Report {where} has `output_shape` {value!r}; expected a shape."
        )
    return tuple(value)


def _shapes_agree(analysed: Any, built: tuple[int | None, ...]) -> bool:
    """Whether an analysed shape (a list, None for unknown sizes) agrees with a built one."""
    return isinstance(analysed, list) and compatible(analysed, built)


def _format_shape(shape: Any) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({dims}{',' if len(shape) == 1 else ''})"


def _plural(count: Any, word: str) -> str:
    if isinstance(count, bool) or not isinstance(count, int):
        return f"no recorded count of {word}s"  # an analysis stored without this field
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _frozen(trainable: bool) -> str:
    return "trainable" if trainable else "frozen (trainable=False)"


@dataclass(frozen=True)
class Difference:
    """One way the built network differs from the analysed one.

    Attributes:
        layer: the layer's qualified name; None for a whole-model total.
        message: the difference in a sentence, for an instructor.
    """

    layer: str | None
    message: str


def _compare_layer(analysed: Mapping[str, Any], built: BuiltLayer) -> list[str]:
    name = built.name
    if analysed.get("class_name") != built.class_name:
        return [
            f"Layer `{name}`: the analysis reads class {analysed.get('class_name')}, Keras "
            f"built {built.class_name}."
        ]
    where = f"Layer `{name}` ({built.class_name})"
    found = []
    calls = analysed.get("calls")
    if calls != built.calls:
        found.append(
            f"{where}: the analysis counts {_plural(calls, 'call')}, Keras built "
            f"{_plural(built.calls, 'call')}."
        )
    params = analysed.get("params")
    if params != built.params:
        found.append(
            f"{where}: the analysis counts {_plural(params, 'parameter')}, Keras built "
            f"{_plural(built.params, 'parameter')}."
        )
    trainable_params = analysed.get("trainable_params")
    if trainable_params != built.trainable_params:
        found.append(
            f"{where}: the analysis counts {_plural(trainable_params, 'trainable parameter')}"
            f", Keras built {_plural(built.trainable_params, 'trainable parameter')}."
        )
    flag = analysed.get("trainable")
    # Analyses stored before the flag was recorded lack it; their counts still speak.
    if isinstance(flag, bool) and flag != built.trainable:
        found.append(
            f"{where}: the analysis has it {_frozen(flag)}, Keras built it "
            f"{_frozen(built.trainable)}."
        )
    shape = analysed.get("output_shape")
    # Only a layer called once on both sides: the analysis records its first call's output in
    # graph order, Keras its first call in construction order, and these may differ for a
    # layer shared across inputs of different sizes.
    if (
        built.output_shape is not None
        and built.calls == 1
        and calls == 1
        and isinstance(shape, list)
        and not _shapes_agree(shape, built.output_shape)
    ):
        found.append(
            f"{where}: the analysis infers output shape {_format_shape(shape)}, Keras built "
            f"{_format_shape(built.output_shape)}."
        )
    return found


def compare_with_analysis(checks: Mapping[str, Any], built: BuiltModelReport) -> list[Difference]:
    """Every difference between the stored static analysis and the network Keras built.

    Args:
        checks: the `grader.report.check_model` object stored by the check stage: its
            ``layers`` rows (``name``, ``class_name``, ``params``, ``trainable_params``,
            ``calls`` and, when recorded, ``trainable``) and its ``params`` totals.
        built: what Keras built from the same config.

    Returns:
        The differences, layers first (in the analysis' order, then layers only Keras built),
        then the totals; each with a sentence for an instructor: "Layer `c2` (Conv2D): built by
        Keras with 148 parameters (1 call), absent from the analysis." Empty when both agree.
    """
    rows: Sequence[Any] = checks.get("layers") or []
    analysed = {
        str(row.get("name")): row
        for row in rows
        if isinstance(row, Mapping) and row.get("class_name") != INPUT_CLASS
    }
    keras_layers = {layer.name: layer for layer in built.layers if layer.class_name != INPUT_CLASS}
    found: list[Difference] = []
    named: dict[str, int] = {}
    for each in built.layers:
        named[each.name] = named.get(each.name, 0) + 1
    for name, count in named.items():
        # Keras keeps names unique within a model: two layers under one name would be compared
        # as one, so the name itself is the difference.
        if count > 1:
            found.append(
                Difference(name, f"Layer `{name}`: Keras built {count:,} layers of this name.")
            )
    for name, row in analysed.items():
        match = keras_layers.get(name)
        if match is None:
            found.append(
                Difference(
                    name,
                    f"Layer `{name}` ({row.get('class_name')}): in the analysis "
                    f"({_plural(row.get('params'), 'parameter')}, "
                    f"{_plural(row.get('calls'), 'call')}), absent from the network Keras "
                    "built.",
                )
            )
        else:
            found.extend(Difference(name, message) for message in _compare_layer(row, match))
    for name, layer in keras_layers.items():
        if name not in analysed:
            found.append(
                Difference(
                    name,
                    f"Layer `{name}` ({layer.class_name}): built by Keras with "
                    f"{_plural(layer.params, 'parameter')} ({_plural(layer.calls, 'call')}), "
                    "absent from the analysis.",
                )
            )
    totals = checks.get("params")
    totals = totals if isinstance(totals, Mapping) else {}
    for key, words, value in (
        ("total", "parameters in total", built.total_params),
        ("trainable", "trainable parameters", built.trainable_params),
        ("non_trainable", "non-trainable parameters", built.non_trainable_params),
    ):
        if totals.get(key) != value:
            found.append(
                Difference(
                    None,
                    f"Model: the analysis counts {_total(totals.get(key))} {words}, Keras built "
                    f"{value:,}.",
                )
            )
    return found


def _total(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "no"


def describe_differences(differences: Sequence[Difference]) -> list[str]:
    """The sentences of `differences`, at most `MAX_DIFFERENCES`, then one counting the rest."""
    sentences = [difference.message for difference in differences[:MAX_DIFFERENCES]]
    if len(differences) > MAX_DIFFERENCES:
        sentences.append(f"... and {len(differences) - MAX_DIFFERENCES:,} more differences.")
    return sentences
