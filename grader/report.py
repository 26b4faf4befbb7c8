"""The `check_model` report: shapes, parameters, receptive field and rule verdicts of one model.

`check_model(config, ...)` returns one JSON-ready object (the contract in docs/contracts.md)::

    {"file", "model": {"name", "input_shape", "output_shape", "layer_count"},
     "params": {"total", "trainable", "non_trainable"},
     "receptive_field": {"end_point", "size": [h, w], "jump": [h, w], "global", "layers": [...],
                         "footprint": {"min", "max", ...}, "unchanged_after", ...},
     "layers": [{"name", "class_name", "output_shape", "params", "trainable_params", "calls",
                 "trainable", "rf_size", "rf_jump"}, ...],
     "dead_layers": [{"name", "class_name"}, ...],
     "rules": [RuleResult.to_dict(), ...],
     "passed": true | false | null}

``layer_count`` counts layers other than inputs, nested models flattened. ``layers`` is the
network Keras builds from the config; ``dead_layers`` are the layers the config also lists but
that no path joins to the outputs, which Keras leaves out (nothing counts them). A layer's
``trainable`` is False when it or an enclosing nested model is frozen. ``receptive_field`` is
`grader.receptive_field.ReceptiveFieldReport.to_dict()`: the course formula and the image
footprint at the network's last feature map. When that field cannot be computed,
``receptive_field`` holds null values and an ``error`` object naming the layer that prevents it
(never the field of an earlier layer), and the receptive-field rule fails with that reason.
``passed`` is false if any rule failed, null if none failed but some are undecided (training
rules), true otherwise.
`check_model_file` reads a file first and turns any `GraderError` into
``{"file", "error": {"kind", "message"}}``. `format_text` renders either for a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grader.errors import GraderError, ReceptiveFieldError
from grader.terminal import terminal_lines, terminal_safe

_MARKS = {True: "PASS", False: "FAIL", None: "PENDING"}


def _shape(shapes: Sequence[Sequence[int | None]]) -> Any:
    """One shape as a list; several (multi-input or multi-output models) as a list of lists."""
    if len(shapes) == 1:
        return list(shapes[0])
    return [list(s) for s in shapes]


def check_model(
    config: Mapping[str, Any],
    ruleset: Any = None,
    end_point: str | None = None,
    file: str | None = None,
    *,
    training_config: Mapping[str, Any] | None = None,
    dataset: Any = None,
    trains: bool = False,
) -> dict[str, Any]:
    """Analyse a model config and evaluate a rule set on it, statically.

    Args:
        config: the Keras 3 model config (see `grader.loading`).
        ruleset: a `RuleSet`, rule-set text or mapping, or None for no rules.
        end_point: the layer whose receptive field the report shows (default: before global
            pooling). Rules use their own end point, whatever this is.
        file: the file name to report, if any.
        training_config: the student's declared training config, for `max_epochs`.
        dataset: the assignment's dataset (a `grader.datasets.DatasetSource` or its registered
            name): the model must take its images and give one score per class, checked
            before any rule.
        trains: whether the grader trains the model from scratch (the assignment's mode is
            ``train``), so the rules in force without being listed apply too
            (`grader.rules.implied_rules`).

    Returns:
        The report object described in the module docstring.

    Raises:
        GraderError: the config cannot be analysed (`InvalidModelConfig`, `UnsafeLayer`,
            `UnsupportedLayer`; a layer name TensorFlow refuses is an `InvalidModelConfig`),
            the model does not fit `dataset` (`DatasetMismatch`), the receptive field cannot be
            computed at `end_point` (`ReceptiveFieldError`), or the rule set is invalid
            (`RuleSetError`).
    """
    from grader.analysis import analyze
    from grader.fit import check_dataset_fit, check_names
    from grader.receptive_field import compute_receptive_field
    from grader.rules import evaluate_rules, load_ruleset, overall_passed

    rules = load_ruleset(ruleset) if ruleset is not None else None
    analysis = analyze(config)
    check_names(config)
    if dataset is not None:
        if isinstance(dataset, str):
            from grader.datasets import get_source

            dataset = get_source(dataset)
        check_dataset_fit(analysis.input_shapes, analysis.output_shapes, dataset)
    rf: Any = None
    try:
        rf = compute_receptive_field(analysis.graph, end_point=end_point)
        rf_dict = rf.to_dict()
    except ReceptiveFieldError as exc:
        if end_point is not None:
            raise  # the caller asked for this end point: say why it cannot be done
        # Shapes and parameters still stand; the receptive-field rule fails with this reason.
        rf_dict = {
            "end_point": None,
            "size": None,
            "jump": None,
            "global": None,
            "layers": [],
            "footprint": None,
            "unchanged_after": [],
            "error": exc.to_dict(),
        }
    rf_rows = {row["layer"]: row for row in rf_dict["layers"]}

    layers = []
    graph_layers = analysis.graph.layers
    for summary in analysis.layers:
        row = rf_rows.get(summary.name)
        layers.append(
            {
                "name": summary.name,
                "class_name": summary.class_name,
                "output_shape": list(summary.output_shape),
                "params": summary.params.total,
                "trainable_params": summary.params.trainable,
                "calls": summary.calls,
                "trainable": graph_layers[summary.name].trainable,
                "rf_size": row["r_out"] if row else None,
                "rf_jump": row["j_out"] if row else None,
            }
        )
    results = (
        evaluate_rules(rules, analysis, rf, training_config=training_config, trains=trains)
        if rules
        else []
    )
    return {
        "file": file,
        "model": {
            "name": analysis.name,
            "input_shape": _shape(analysis.input_shapes),
            "output_shape": _shape(analysis.output_shapes),
            "layer_count": sum(1 for s in analysis.layers if s.class_name != "InputLayer"),
        },
        "params": {
            "total": analysis.total_params,
            "trainable": analysis.trainable_params,
            "non_trainable": analysis.non_trainable_params,
        },
        "receptive_field": rf_dict,
        "layers": layers,
        "dead_layers": [dead.to_dict() for dead in analysis.dead_layers],
        "rules": [r.to_dict() for r in results],
        "passed": overall_passed(results),
    }


def check_model_file(
    path: str | Path,
    ruleset: Any = None,
    end_point: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    training_config: Mapping[str, Any] | None = None,
    dataset: Any = None,
    trains: bool = False,
) -> dict[str, Any]:
    """`check_model` on a ``.json`` or ``.keras`` file; a `GraderError` becomes an error object.

    Args:
        path: the model file (read safely by `grader.loading`, never through Keras).
        ruleset: as for `check_model`.
        end_point: as for `check_model`.
        config: an already obtained model config (a ``.py`` built in a sandbox); the file is then
            only named, not read.
        training_config: as for `check_model`.
        dataset: as for `check_model`.
        trains: as for `check_model`.

    Returns:
        The `check_model` object, or ``{"file", "error": {"kind", "message"}}`` (also when
        the file cannot be read: kind ``unreadable_file``).
    """
    name = str(path)
    try:
        if config is None:
            from grader.loading import load_model_config

            config = load_model_config(path)
        return check_model(
            config,
            ruleset,
            end_point=end_point,
            file=name,
            training_config=training_config,
            dataset=dataset,
            trains=trains,
        )
    except GraderError as exc:
        return error_report(name, exc)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return error_report(name, UnreadableFile(f"Cannot read `{name}`: {reason}."))


class UnreadableFile(GraderError):
    """The model file does not exist or cannot be read."""

    error_code = "unreadable_file"


def error_report(file: str, error: GraderError) -> dict[str, Any]:
    """The report of a file that could not be analysed."""
    return {"file": file, "error": error.to_dict()}


# --- text ------------------------------------------------------------------------------------


def _fmt_shape(shape: Any) -> str:
    if shape is None:
        return ""
    if shape and isinstance(shape[0], list):
        return ", ".join(_fmt_shape(s) for s in shape)
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _fmt_axes(values: Any) -> str:
    if values is None:
        return ""
    return "x".join("?" if v is None else str(v) for v in values)


def _fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value) and len(value) <= 3:
            return "x".join(str(v) for v in value)
        return ", ".join(_fmt_value(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{terminal_safe(k)}: {_fmt_value(v)}" for k, v in value.items())
    return terminal_safe(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


# How many dead layers the text report names one by one.
_NOTES_LISTED = 10


def _counting_notes(obj: Mapping[str, Any]) -> list[str]:
    """What was counted and why, for models that share layers or list unused ones."""
    notes = [
        f"Shared: layer `{terminal_safe(row['name'])}` ({row['class_name']}) is called "
        f"{row['calls']} times; "
        "its weights are counted once."
        for row in obj["layers"]
        if row.get("calls", 1) > 1
    ]
    dead = list(obj.get("dead_layers") or [])
    notes.extend(
        f"Not counted: layer `{terminal_safe(row['name'])}` ({terminal_safe(row['class_name'])}) "
        "is not connected to the "
        "model's outputs, so Keras leaves it out of the model it builds and trains."
        for row in dead[:_NOTES_LISTED]
    )
    if len(dead) > _NOTES_LISTED:
        notes.append(f"Not counted: {len(dead) - _NOTES_LISTED:,} more unconnected layers.")
    return notes


def _rf_lines(rf: Mapping[str, Any]) -> list[str]:
    """The receptive field: the course formula, then what the units actually see."""
    if rf.get("error"):
        return [f"Receptive field: not computed ({terminal_safe(rf['error']['message'])})"]
    where = f"`{terminal_safe(rf['end_point'])}`"
    after = rf.get("unchanged_after") or []
    if after:
        names = ", ".join(f"`{terminal_safe(name)}`" for name in after)
        where += f" ({names} after it keep its field)"
    if rf["global"]:
        return [f"Receptive field at {where}: the whole input."]
    if rf.get("size") and all(v is not None for v in rf["size"]):
        lines = [
            f"Receptive field at {where}: {_fmt_axes(rf['size'])} "
            f"(jump {_fmt_axes(rf['jump'])}, course formula)."
        ]
    else:
        note = terminal_safe(rf.get("formula_note"))
        lines = [f"Receptive field at {where}: no course formula ({note})"]
    footprint = rf.get("footprint")
    if footprint:
        image = _fmt_axes(rf.get("input_size"))
        if footprint["varies"]:
            lines.append(
                f"Pixels each unit sees: {_fmt_axes(footprint['min'])} to "
                f"{_fmt_axes(footprint['max'])} of the {image} image."
            )
        else:
            lines.append(
                f"Pixels each unit sees: {_fmt_axes(footprint['min'])} of the {image} image."
            )
    elif rf.get("footprint_note"):
        lines.append(f"Pixels each unit sees: not computed ({terminal_safe(rf['footprint_note'])})")
    return lines


def format_text(obj: Mapping[str, Any]) -> str:
    """A readable report of a `check_model` (or error) object, for a terminal.

    A summary table (layer, type, output shape, params, receptive field and jump), the totals
    with thousands separators, the receptive field at the end point, then each rule with its
    mark (PASS, FAIL, PENDING), measured value, limit, message and hint. Every text that comes
    from the model file (its name, layer names, messages quoting them) is `terminal_safe`.
    """
    safe = terminal_safe
    lines = [f"== {safe(obj.get('file') or obj.get('model', {}).get('name', 'model'))}"]
    if "error" in obj:
        error = obj["error"]
        lines.append(f"ERROR ({safe(error['kind'])}): {safe(error['message'])}")
        return "\n".join(lines) + "\n"

    model = obj["model"]
    lines.append(
        f"Model `{safe(model['name'])}`: input {_fmt_shape(model['input_shape'])}, output "
        f"{_fmt_shape(model['output_shape'])}, {model['layer_count']:,} layers."
    )
    lines.append("")
    rows = [
        [
            safe(layer["name"]),
            safe(layer["class_name"]),
            _fmt_shape(layer["output_shape"]),
            f"{layer['params']:,}",
            _fmt_axes(layer["rf_size"]),
            _fmt_axes(layer["rf_jump"]),
        ]
        for layer in obj["layers"]
    ]
    headers = ["Layer", "Type", "Output shape", "Params", "RF", "Jump"]
    lines.extend(_table(headers, rows, right={3}))
    params = obj["params"]
    lines.append("")
    lines.append(f"Total params: {params['total']:,}")
    lines.append(f"Trainable params: {params['trainable']:,}")
    lines.append(f"Non-trainable params: {params['non_trainable']:,}")
    lines.extend(_counting_notes(obj))
    lines.extend(_rf_lines(obj["receptive_field"]))

    if obj["rules"]:
        lines.append("")
        lines.append("Rules:")
        for rule in obj["rules"]:
            mark = _MARKS[rule["passed"]]
            title = (
                rule["name"]
                if rule.get("name", rule["id"]) == rule["id"]
                else (f"{rule['name']} ({rule['id']})")
            )
            points = rule["points"]
            pts = f"{points:g} pt" + ("" if points == 1 else "s")
            lines.append(
                f"  [{mark}] {safe(title)}: measured {_fmt_value(rule['measured'])}, "
                f"limit {_fmt_value(rule['limit'])} ({pts})"
            )
            lines.append(f"      {safe(rule['message'])}")
            if rule.get("hint"):
                first, *rest = terminal_lines(rule["hint"])
                lines.append(f"      hint: {first}")
                lines.extend(f"            {line}" for line in rest)
        verdict = {True: "PASSED", False: "FAILED", None: "PENDING (decided after training)"}
        lines.append("")
        lines.append(f"Result: {verdict[obj['passed']]}")
    return "\n".join(lines) + "\n"
