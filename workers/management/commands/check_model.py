"""``python manage.py check_model PATH [PATH ...]``: analyse model files against a rule set.

Thin: parse the arguments, resolve the rule set, call `grader.report`, print. With
`--assignment` (or a rule set naming a `dataset`), a model must also fit that dataset's image
shape and classes, as in the grading's check stage. Exit status: 2 if any file could not be
analysed (or does not fit the dataset), 1 if any rule failed, 0 otherwise.
`check_model --list-layers` prints the layer classes the analysis supports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from grader.errors import GraderError

EXIT_RULE_FAILED = 1
EXIT_NOT_ANALYSED = 2


class Command(BaseCommand):
    """Print the `check_model` report of each PATH; the exit status sums up the worst one."""

    help = (
        "Check Keras models (.json, .keras, or .py built in the sandbox) statically: shapes, "
        "parameters, receptive field and an assignment's rules. Exit status 2 if a file could "
        "not be analysed, 1 if a rule failed, else 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="*", metavar="PATH", help="model files to check")
        parser.add_argument(
            "--list-layers",
            action="store_true",
            help="print the Keras layer classes the model analysis supports, then exit",
        )
        rules = parser.add_mutually_exclusive_group()
        rules.add_argument(
            "--assignment",
            metavar="SLUG",
            help="the rules of this assignment (from the database), else of the shipped preset",
        )
        rules.add_argument("--rules", metavar="FILE", help="a rule-set file (YAML or JSON)")
        parser.add_argument(
            "--end-point", metavar="LAYER", help="the layer whose receptive field is reported"
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--input-shape",
            metavar="H,W,C",
            help="input shape for building .py files when the rule set declares none",
        )
        parser.add_argument(
            "--num-classes",
            type=int,
            metavar="N",
            help="classes for building .py files when the rule set declares none",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Check every path, print each report, exit with 2, 1 or 0 (see the module docstring)."""
        from grader.report import check_model_file, error_report, format_text

        if options["list_layers"]:
            self._list_layers(options["format"])
            return
        if not options["paths"]:
            raise CommandError(
                "No model file given. Expected one or more PATH arguments, or --list-layers.",
                returncode=EXIT_NOT_ANALYSED,
            )
        self._dataset: str | None = None
        # Whether the assignment trains (its mode); None: the rule set's own `mode` decides.
        self._trains: bool | None = None
        ruleset = self._ruleset(options)
        trains = self._trains
        if trains is None and ruleset is not None:
            from grader.rules import trains_from_scratch

            trains = trains_from_scratch(ruleset)
        dataset = self._dataset_source(ruleset)
        input_shape = _input_shape(options["input_shape"]) or (
            ruleset.metadata.get("input_shape") if ruleset else None
        )
        num_classes = options["num_classes"] or (
            ruleset.metadata.get("num_classes") if ruleset else None
        )
        status = 0
        for raw in options["paths"]:
            path = Path(raw)
            if path.suffix.lower() in {".py", ".ipynb"}:
                try:
                    config = _build(path, input_shape, num_classes)
                    report = check_model_file(
                        path,
                        ruleset,
                        options["end_point"],
                        config=config,
                        dataset=dataset,
                        trains=bool(trains),
                    )
                except GraderError as exc:
                    report = error_report(str(path), exc)
            else:
                report = check_model_file(
                    path, ruleset, options["end_point"], dataset=dataset, trains=bool(trains)
                )
            if options["format"] == "json":
                self.stdout.write(json.dumps(report))
            else:
                self.stdout.write(format_text(report))
            if "error" in report:
                status = max(status, EXIT_NOT_ANALYSED)
            elif report["passed"] is False:
                status = max(status, EXIT_RULE_FAILED)
        if status:
            raise SystemExit(status)

    def _list_layers(self, fmt: str) -> None:
        from grader.layers import supported_classes

        classes = supported_classes()
        if fmt == "json":
            self.stdout.write(json.dumps({"supported_layers": classes}))
            return
        self.stdout.write(f"The model analysis supports {len(classes)} Keras layer classes:")
        for name in classes:
            self.stdout.write(f"  {name}")

    def _dataset_source(self, ruleset: Any) -> Any:
        """The dataset models must fit: the assignment's, else the rule set's `dataset`, if any."""
        from grader.datasets import get_source

        name = self._dataset or (ruleset.metadata.get("dataset") if ruleset else None)
        if not name:
            return None
        try:
            return get_source(str(name))
        except GraderError as exc:
            raise CommandError(exc.message, returncode=EXIT_NOT_ANALYSED) from None

    def _ruleset(self, options: dict[str, Any]) -> Any:
        from grader.rules import load_ruleset

        try:
            if options["rules"]:
                try:
                    text = Path(options["rules"]).read_text(encoding="utf-8")
                except OSError as exc:
                    raise CommandError(
                        f"Cannot read the rule set `{options['rules']}`: {exc.strerror}.",
                        returncode=EXIT_NOT_ANALYSED,
                    ) from None
                return load_ruleset(text)
            if options["assignment"]:
                return load_ruleset(self._assignment_rules(options["assignment"]))
        except GraderError as exc:
            raise CommandError(exc.message, returncode=EXIT_NOT_ANALYSED) from None
        return None

    def _assignment_rules(self, slug: str) -> Any:
        """The rule set of the assignment `slug` in the database, else the preset of that name."""
        from django.db import DatabaseError

        from assignments.models import Assignment
        from grader.presets import list_presets, load_preset

        try:
            row = (
                Assignment.objects.filter(slug=slug)
                .values_list("rules_yaml", "dataset", "mode")
                .first()
            )
        except DatabaseError as exc:
            # No database here (a fresh checkout, a CI step): the shipped preset still answers,
            # but say so, since a course may have changed its copy of the rules.
            if slug not in list_presets():
                raise CommandError(
                    f"Cannot read assignment `{slug}` from the database ({exc}) and there is no "
                    f"preset of that name. Expected one of: {', '.join(list_presets())}.",
                    returncode=EXIT_NOT_ANALYSED,
                ) from None
            self.stderr.write(
                f"Database unavailable ({str(exc).strip()}); using the shipped preset `{slug}`."
            )
            return load_preset(slug)
        if row is not None:
            rules_yaml, dataset, mode = row
            self._dataset = dataset
            self._trains = mode != "evaluate"
            return _with_dataset_shape(rules_yaml, dataset)
        if slug in list_presets():
            return load_preset(slug)
        raise CommandError(
            f"There is no assignment or preset `{slug}`. Expected an assignment slug or one of "
            f"the presets: {', '.join(list_presets())}.",
            returncode=EXIT_NOT_ANALYSED,
        )


def _with_dataset_shape(rules_yaml: str, dataset: str) -> Any:
    """The assignment's rule set, with its dataset's input shape and classes when it has none.

    A `.py` submission is built for the assignment's dataset; the stored rule set need not repeat
    the shape.
    """
    from grader.datasets import get_source
    from grader.rules import load_ruleset

    ruleset = load_ruleset(rules_yaml)
    if "input_shape" in ruleset.metadata and "num_classes" in ruleset.metadata:
        return ruleset
    try:
        source = get_source(dataset)
    except GraderError:
        return ruleset
    data = ruleset.to_dict()
    data.setdefault("input_shape", list(source.input_shape))
    data.setdefault("num_classes", source.num_classes)
    return load_ruleset(data)


def _input_shape(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        raise CommandError(
            f"--input-shape is {text!r}. Expected positive integers like 32,32,3.",
            returncode=EXIT_NOT_ANALYSED,
        ) from None
    if not shape or any(d < 1 for d in shape):
        raise CommandError(
            f"--input-shape is {text!r}. Expected positive integers like 32,32,3.",
            returncode=EXIT_NOT_ANALYSED,
        )
    return shape


class BuildUnavailable(GraderError):
    """The sandboxed build of `.py` submissions is not available in this installation."""

    error_code = "build_unavailable"


class SandboxUnavailable(GraderError):
    """The sandbox could not run the build (an infrastructure problem, not the submission's)."""

    error_code = "sandbox_unavailable"


class BuildInputMissing(GraderError):
    """Building a `.py` needs an input shape and a number of classes."""

    error_code = "build_input_missing"


def _build(path: Path, input_shape: Any, num_classes: Any) -> dict[str, Any]:
    """Build a `.py` submission in the sandbox (workers.pipeline.build) into a model config."""
    try:
        from workers.pipeline.build import build_model_config
    except ImportError as exc:
        raise BuildUnavailable(
            f"`{path.name}` is a Python module, which must be built in the sandbox, and the "
            f"sandboxed build is not available here ({exc}). Expected a .json or .keras file."
        ) from None
    if not input_shape or not num_classes:
        raise BuildInputMissing(
            f"Building `{path.name}` needs an input shape and a number of classes. Expected "
            "--assignment or --rules with `input_shape` and `num_classes`, or --input-shape and "
            "--num-classes."
        )
    from workers.pipeline.errors import InfrastructureError

    try:
        config: dict[str, Any] = build_model_config(path, list(input_shape), int(num_classes))
    except InfrastructureError as exc:
        log = exc.log.strip().splitlines()[-1:] if exc.log else []
        detail = f" ({log[0]})" if log else ""
        raise SandboxUnavailable(
            f"Building `{path.name}` failed in the grading machinery, not in the submission: "
            f"{exc.message}{detail}"
        ) from None
    return config
