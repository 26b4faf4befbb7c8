"""Property test: for random configs of every supported layer class, the grader counts like Keras.

For each class in `grader.layers.REGISTRY`, seeded random layers (`tests/support/layer_configs.py`)
vary every argument the Keras class accepts. They are built with Keras' own constructors, many
per model, serialized with ``model.to_json()`` (what a student uploads), then edited the way a
hand-written config could be: arguments Keras does not serialize (``autocast``, ``input_shape``,
LeakyReLU's ``alpha``...) are written in, and some keys left at their default are removed. The
truth is Keras' own model built from that edited JSON, as the trainer builds it; each layer's
``count_params()``, trainable and non-trainable weights and output shape must equal the
grader's, and so must the model totals.

The grader may refuse a layer only for the argument values it chose not to model (a quantized
dtype, ``quantization_config``, Embedding's initial ``weights``), which this test lists on its
own, so a blanket refusal fails it. Draws Keras itself refuses are skipped.

Completeness: every supported class is compared at least once; every config key the grader's
table (`LayerSpec.arguments`) lists is varied in layers Keras built; and every argument name found
in the Keras class's constructors that the table leaves out is refused by Keras itself. A Keras
upgrade that adds an argument, or a new supported class, fails here until it is handled.
"""

from __future__ import annotations

import inspect
import json
import random
import re
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from grader.analysis import analyze
from grader.errors import GraderError, InvalidModelConfig, UnsupportedLayer
from grader.layers import REGISTRY
from tests.support.keras_models import keras
from tests.support.layer_configs import (
    FAMILIES,
    INT8_QUANTIZATION,
    QUANTIZED_DTYPE,
    Case,
    draw_case,
)

pytestmark = pytest.mark.tf

FIXED_SEED = 20_251_107
# Layers per Keras model: building one model of many layers amortises Keras' per-model costs.
BATCH = 80
# Classes whose weights depend on their arguments get more draws than weightless ones.
WEIGHTED = {
    "Conv1D": 12,
    "Conv2D": 14,
    "Conv3D": 8,
    "Conv1DTranspose": 6,
    "Conv2DTranspose": 8,
    "Conv3DTranspose": 5,
    "DepthwiseConv1D": 6,
    "DepthwiseConv2D": 8,
    "SeparableConv1D": 6,
    "SeparableConv2D": 8,
    "Dense": 14,
    "Embedding": 10,
    "BatchNormalization": 12,
    "LayerNormalization": 10,
    "GroupNormalization": 8,
    "RMSNormalization": 6,
    "PReLU": 6,
    "Normalization": 8,
    # Keras cannot read a Rescaling config without `offset`: draws that drop it are lost.
    "Rescaling": 8,
}
DEFAULT_DRAWS = 5
ABSENT = "<absent>"
# Keras writes the default dtype policy out in full; leaving it out means the same.
FLOAT32_POLICY = {
    "module": "keras",
    "class_name": "DTypePolicy",
    "config": {"name": "float32"},
    "registered_name": None,
}


# ---------------------------------------------------------------------------------------------
# What the grader is expected to refuse: listed here, independently of grader/layers.


def expected_refusal(case: Case) -> str | None:
    """The argument the grader must refuse this layer for, or None if it must count it."""
    kwargs = case.kwargs
    if kwargs.get("dtype") == QUANTIZED_DTYPE:
        return "dtype"
    if case.class_name in ("Dense", "Embedding") and kwargs.get("quantization_config"):
        return "quantization_config"
    if case.class_name == "Embedding" and kwargs.get("weights") is not None:
        return "weights"
    return None


# ---------------------------------------------------------------------------------------------
# Keras' side.


def _keras_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if out.get("quantization_config") == INT8_QUANTIZATION:
        out["quantization_config"] = keras.quantizers.Int8QuantizationConfig()
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _size(weights: list[Any]) -> int:
    total = 0
    for w in weights:
        n = 1
        for dim in w.shape:
            n *= int(dim)
        total += n
    return total


@dataclass
class Built:
    """A case Keras constructed and called, with the names of its layer and inputs."""

    case: Case
    name: str
    inputs: list[str]


@dataclass(frozen=True)
class Truth:
    total: int
    trainable: int
    non_trainable: int
    output_shape: tuple[int | None, ...]


def _truth(layer: Any) -> Truth:
    return Truth(
        layer.count_params(),
        _size(layer.trainable_weights),
        _size(layer.non_trainable_weights),
        tuple(layer.output.shape[1:]),
    )


def build_batch(cases: list[tuple[str, Case]]) -> tuple[list[Built], dict[str, Any] | None]:
    """Build every case Keras accepts into one multi-input, multi-output model; its config."""
    built: list[Built] = []
    inputs: list[Any] = []
    outputs: list[Any] = []
    for name, case in cases:
        tensors = [
            keras.Input(shape, dtype=case.input_dtype, name=f"{name}_in{i}")
            for i, shape in enumerate(case.input_shapes)
        ]
        try:
            layer = getattr(keras.layers, case.class_name)(**_keras_kwargs(case.kwargs))
            out = layer(tensors if REGISTRY[case.class_name].multi_input else tensors[0])
        except Exception:  # Keras refuses this draw: so would the trainer
            continue
        built.append(Built(case, name, [t.name for t in tensors]))
        inputs += tensors
        outputs.append(out)
    if not built:
        return [], None
    model = keras.Model(inputs, outputs, name="batch")
    return built, json.loads(model.to_json())


def _signature_defaults(class_name: str) -> dict[str, Any]:
    cls = getattr(keras.layers, class_name)
    defaults = {}
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or not klass.__module__.startswith("keras"):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.default is not inspect.Parameter.empty:
                defaults.setdefault(p.name, _jsonable(p.default))
    return defaults


def edit_config(config: dict[str, Any], built: list[Built]) -> None:
    """Write in arguments Keras does not serialize; drop some keys left at their default.

    Which keys are dropped alternates with the draw index, so that every argument of a class is
    both written and left out across its draws.
    """
    entries = {e["name"]: e for e in config["config"]["layers"]}
    for b in built:
        inner = entries[b.name]["config"]
        for key, value in b.case.kwargs.items():
            if key not in inner:
                inner[key] = _jsonable(value)
        defaults = {**_signature_defaults(b.case.class_name), "dtype": FLOAT32_POLICY}
        for key in list(inner):
            at_default = key != "name" and key in defaults and inner[key] == defaults[key]
            if at_default and (b.case.index + zlib.crc32(key.encode())) % 2:
                del inner[key]


def sub_config(config: dict[str, Any], built: list[Built]) -> dict[str, Any]:
    """The config of a model of only these layers (each with its own inputs)."""
    keep = {n for b in built for n in (b.name, *b.inputs)}
    inner = config["config"]
    return {
        **config,
        "config": {
            **inner,
            "layers": [e for e in inner["layers"] if e["name"] in keep],
            "input_layers": [[n, 0, 0] for b in built for n in b.inputs],
            "output_layers": [[b.name, 0, 0] for b in built],
        },
    }


def keras_truths(config: dict[str, Any], built: list[Built]) -> dict[str, Truth]:
    """Per-layer truth from Keras' model built from `config`, the way the trainer builds it.

    A layer Keras cannot build from its (edited) config is left out.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = keras.models.model_from_json(json.dumps(config))
            return {b.name: _truth(model.get_layer(b.name)) for b in built}
        except Exception:
            truths = {}
            for b in built:
                try:
                    model = keras.models.model_from_json(json.dumps(sub_config(config, [b])))
                except Exception:
                    continue
                truths[b.name] = _truth(model.get_layer(b.name))
            return truths


# ---------------------------------------------------------------------------------------------
# The run: every class, every draw, compared once per module.


@dataclass
class Outcome:
    """What happened to one draw."""

    built: Built
    config: dict[str, Any]  # the layer's final config, as the grader saw it
    model_config: dict[str, Any]  # a model of this layer alone, as the grader analysed it
    truth: Truth | None  # None: Keras refused the edited config
    error: GraderError | None
    analysed: Any  # the grader's LayerSummary when it did not refuse


@dataclass
class Run:
    outcomes: list[Outcome]
    keras_refused: int
    totals: list[tuple[Any, int, int, int]]  # (analysis, keras total, trainable, non-trainable)


def _cases(rng: random.Random) -> Iterator[tuple[str, Case]]:
    missing = sorted(set(REGISTRY) - set(FAMILIES))
    assert not missing, (
        f"No random configs for {missing}: add them to tests/support/layer_configs.py"
    )
    for class_name in sorted(REGISTRY):
        spec = REGISTRY[class_name]
        for i in range(WEIGHTED.get(class_name, DEFAULT_DRAWS)):
            name = f"{class_name.lower()}_{i}"
            yield name, draw_case(class_name, rng, i, name, spec.arguments)


@pytest.fixture(scope="module")
def run() -> Run:
    rng = random.Random(FIXED_SEED)
    cases = list(_cases(rng))
    outcomes: list[Outcome] = []
    totals = []
    keras_refused = 0
    for start in range(0, len(cases), BATCH):
        batch = cases[start : start + BATCH]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built, config = build_batch(batch)
        keras_refused += len(batch) - len(built)
        if config is None:
            continue
        edit_config(config, built)
        truths = keras_truths(config, built)
        keras_refused += len(built) - len(truths)
        entries = {e["name"]: e for e in config["config"]["layers"]}
        counted: list[Built] = []
        for b in built:
            if b.name not in truths:
                continue
            error, analysed = None, None
            alone = sub_config(config, [b])
            try:
                analysed = analyze(alone).layer(b.name)
                counted.append(b)
            except GraderError as exc:
                error = exc
            outcomes.append(
                Outcome(b, entries[b.name]["config"], alone, truths[b.name], error, analysed)
            )
        if counted:
            whole = analyze(sub_config(config, counted))
            expected = [truths[b.name] for b in counted]
            totals.append(
                (
                    whole,
                    sum(t.total for t in expected),
                    sum(t.trainable for t in expected),
                    sum(t.non_trainable for t in expected),
                )
            )
    return Run(outcomes, keras_refused, totals)


def _describe(outcome: Outcome) -> str:
    return f"{outcome.built.name} ({outcome.built.case.class_name}) config={outcome.config}"


def test_counts_equal_keras_for_random_configs_of_every_class(run: Run) -> None:
    compared = 0
    for outcome in run.outcomes:
        if outcome.error is not None:
            continue
        truth, got = outcome.truth, outcome.analysed
        assert truth is not None
        assert (got.params.total, got.params.trainable, got.params.non_trainable) == (
            truth.total,
            truth.trainable,
            truth.non_trainable,
        ), _describe(outcome)
        assert got.output_shape == truth.output_shape, _describe(outcome)
        compared += 1
    # A budget check, not a timing: most draws must be valid, or the test proves little.
    assert compared >= 300, (compared, run.keras_refused)


def test_model_totals_equal_keras(run: Run) -> None:
    assert run.totals
    for analysis, total, trainable, non_trainable in run.totals:
        assert (
            analysis.total_params,
            analysis.trainable_params,
            analysis.non_trainable_params,
        ) == (total, trainable, non_trainable)


def test_refuses_only_the_options_it_does_not_model(run: Run) -> None:
    refused: dict[str, int] = defaultdict(int)
    for outcome in run.outcomes:
        expected = expected_refusal(outcome.built.case)
        if expected is None:
            assert outcome.error is None, f"{_describe(outcome)}: {outcome.error}"
            continue
        assert isinstance(outcome.error, UnsupportedLayer), _describe(outcome)
        message = outcome.error.message
        assert f"`{outcome.built.name}` ({outcome.built.case.class_name})" in message
        # The allow-list (grader.layer_arguments) refuses quantized options before the layer
        # spec sees them ("is quantized: `dtype` is ..."); either refusal names the option.
        assert f"`{expected}`" in message and "Expected" in message, message
        refused[expected] += 1
    # Each refusal was actually exercised (on layers Keras itself builds).
    assert set(refused) == {"dtype", "quantization_config"}, dict(refused)


def test_every_supported_class_is_compared(run: Run) -> None:
    compared = {o.built.case.class_name for o in run.outcomes if o.error is None}
    assert set(REGISTRY) - compared == set()


def test_every_argument_of_every_class_is_varied(run: Run) -> None:
    """Each key of the grader's argument table takes two states (values, or absent) in configs
    Keras built: so the key is one Keras accepts, and the grader was checked on it."""
    states: dict[tuple[str, str], set[str]] = defaultdict(set)
    for outcome in run.outcomes:
        class_name = outcome.built.case.class_name
        for key in REGISTRY[class_name].arguments:
            value = outcome.config.get(key, ABSENT)
            states[class_name, key].add(json.dumps(value, sort_keys=True, default=str))
    unvaried = sorted(
        f"{class_name}.{key}"
        for class_name, spec in REGISTRY.items()
        for key in spec.arguments
        if len(states[class_name, key]) < 2
    )
    assert unvaried == []


# ---------------------------------------------------------------------------------------------
# The argument table against Keras' constructors.

_REFUSED_BY_KERAS = ("Unrecognized keyword", "multiple values", "unexpected keyword")


def constructor_argument_names(cls: type) -> set[str]:
    """Every argument name Keras' constructors of `cls` mention: named parameters of each
    ``__init__`` in its class hierarchy and keys they take out of ``**kwargs``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or not klass.__module__.startswith("keras"):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
        source = inspect.getsource(klass.__init__)
        names |= set(re.findall(r"kwargs\.(?:pop|get)\(\s*[\"'](\w+)[\"']", source))
        names |= set(re.findall(r"[\"'](\w+)[\"']\s+in\s+kwargs", source))
    return names


def _a_config(run: Run, class_name: str) -> dict[str, Any]:
    for outcome in run.outcomes:
        if outcome.built.case.class_name == class_name and outcome.error is None:
            return dict(outcome.config)
    raise AssertionError(f"No config of {class_name} was built.")


def test_arguments_left_out_of_the_table_are_refused_by_keras(run: Run) -> None:
    """The table misses no argument Keras accepts: every other name is refused by Keras."""
    wrongly_left_out = []
    for class_name, spec in sorted(REGISTRY.items()):
        cls = getattr(keras.layers, class_name)
        base = _a_config(run, class_name)
        for key in sorted(constructor_argument_names(cls) - spec.arguments):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    cls.from_config({**base, key: None})
                except Exception as exc:
                    if any(marker in str(exc) for marker in _REFUSED_BY_KERAS):
                        continue
                wrongly_left_out.append(f"{class_name}.{key}")
    assert wrongly_left_out == []


def test_a_key_keras_does_not_accept_is_refused(run: Run) -> None:
    for class_name in sorted(REGISTRY):
        outcome = next(
            o for o in run.outcomes if o.built.case.class_name == class_name and o.error is None
        )
        config = json.loads(json.dumps(outcome.model_config))
        entry = next(e for e in config["config"]["layers"] if e["name"] == outcome.built.name)
        entry["config"]["kernel_sizes"] = 3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(Exception, match=r"Unrecognized keyword|unexpected keyword"):
                getattr(keras.layers, class_name).from_config(entry["config"])
        with pytest.raises(InvalidModelConfig, match=r"has no argument `kernel_sizes`"):
            analyze(config)


def test_a_missing_argument_means_keras_default(run: Run) -> None:
    """Leaving an argument out of a config reads as Keras' default: the analysis of a config
    with the argument set to that default and without it must be the same (for each argument
    with a default, on one config of each class)."""
    mismatches = []
    seen: set[str] = set()
    for outcome in run.outcomes:
        class_name = outcome.built.case.class_name
        if outcome.error is not None or class_name in seen:
            continue
        seen.add(class_name)
        defaults = _signature_defaults(class_name)
        for key in sorted(set(defaults) & REGISTRY[class_name].arguments - {"name"}):
            results = []
            for present in (True, False):
                config = json.loads(json.dumps(outcome.model_config))
                entry = next(
                    e for e in config["config"]["layers"] if e["name"] == outcome.built.name
                )
                entry["config"].pop(key, None)
                if present:
                    entry["config"][key] = defaults[key]
                try:
                    summary = analyze(config).layer(outcome.built.name)
                    results.append((summary.params, summary.output_shape))
                except GraderError as exc:
                    results.append(type(exc).__name__)
            if results[0] != results[1]:
                mismatches.append(f"{class_name}.{key}={defaults[key]!r}: {results}")
    assert mismatches == [], "\n".join(mismatches)
