"""The grader on a corpus of real course models, against what Keras and TensorFlow measured.

``tests/fixtures/real/`` holds CNNs that students and learners published (EIP/EVA course
assignments, MNIST and CIFAR-10 exercises, Keras 1, 2 and 3 styles, Sequential and functional),
each restated as a submission (``build_model(input_shape, num_classes)``), its Keras 3 config
(``model.json``, what the build stage hands over) and ``expected.json``, written by
``tests/fixtures/real/measure.py`` from Keras' weight lists and from the support of input
gradients (never from the grader). ``SOURCE.md`` in each folder says where the model comes from
and what was changed to fit the submission contract.

Without TensorFlow, every case goes through `grader.report.check_model`: the parameter counts
(total, trainable, non-trainable, per layer) must be exact; the receptive field at the default
end point must be the measured one (end point, size, jump, and the interval of the centre and
corner units), or be refused with an explicit error; never a field at another layer. The
``tf`` test checks that the committed configs are still what the submissions build.

A comparison that fails today because of a known grader defect is marked ``xfail(strict=True)``
in `KNOWN_DEFECTS`, naming the defect: once it is fixed the test fails until the mark goes.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from grader.errors import GraderError
from grader.report import check_model

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "real"
CASES: dict[str, dict[str, Any]] = json.loads((CORPUS / "corpus.json").read_text())
FILES = ("submission.py", "SOURCE.md", "model.json", "expected.json")
RF_RULE = {"rules": [{"id": "min_receptive_field", "limit": 32}]}

# (slug, comparison) -> the defect that makes the comparison fail today.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


def cases_for(comparison: str) -> list[Any]:
    """Every slug, those with a known defect in ``comparison`` marked strict xfail."""
    params = []
    for slug in CASES:
        reason = KNOWN_DEFECTS.get((slug, comparison))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(slug, id=slug, marks=marks))
    return params


@cache
def expected(slug: str) -> dict[str, Any]:
    return json.loads((CORPUS / slug / "expected.json").read_text())


@cache
def report(slug: str) -> dict[str, Any]:
    """`check_model` on the committed config, with only the receptive-field rule."""
    config = json.loads((CORPUS / slug / "model.json").read_text())
    return check_model(config, RF_RULE, file=f"{slug}/model.json")


def test_corpus_lists_every_case_with_its_files():
    folders = sorted(
        p.name for p in CORPUS.iterdir() if p.is_dir() and p.name not in {"__pycache__", "repro"}
    )
    assert folders == sorted(CASES), "corpus.json and the case folders disagree"
    assert len(CASES) >= 30
    for slug in CASES:
        missing = [name for name in FILES if not (CORPUS / slug / name).is_file()]
        assert not missing, f"{slug}: missing {missing}"
        source = (CORPUS / slug / "SOURCE.md").read_text()
        for heading in ("Repository", "License", "Edits"):
            assert heading in source, f"{slug}/SOURCE.md names no {heading}"
        assert expected(slug)["slug"] == slug


@pytest.mark.parametrize("slug", cases_for("params"))
def test_parameter_counts_match_keras(slug):
    got, want = report(slug), expected(slug)
    assert got["params"] == want["params"]
    layers = {row["name"]: row for row in got["layers"]}
    for row in want["layers"]:
        if row["class_name"] == "InputLayer":
            continue  # a nested model's input is wired through, not listed
        assert row["name"] in layers, f"layer {row['name']} is missing from the report"
        mine = layers[row["name"]]
        assert (mine["params"], mine["trainable_params"]) == (row["total"], row["trainable"]), row[
            "name"
        ]


@pytest.mark.parametrize("slug", cases_for("shape"))
def test_output_shape_matches_keras(slug):
    assert report(slug)["model"]["output_shape"] == expected(slug)["output_shape"]


def interval(field: dict[str, Any], unit: list[int]) -> list[tuple[int, int]]:
    """The input interval the report gives a unit: start + u * jump, size positions."""
    return [
        (start + u * jump, start + u * jump + size - 1)
        for start, jump, size, u in zip(
            field["start"], field["jump"], field["size"], unit, strict=True
        )
    ]


def assert_unit_matches(field: dict[str, Any], measured: dict[str, Any]) -> None:
    """The report's interval of a unit against its gradient support (as the empirical test).

    Inside the image the bounding box is exact; where the field hangs over the border,
    dilation holes and strides may leave the first image positions unread, so only bound it.
    """
    unit, support = measured["unit"], measured["support"]
    expected_box = interval(field, unit)
    sizes = field["input_size"]
    if support is None:
        assert any(lo < 0 or hi >= n for (lo, hi), n in zip(expected_box, sizes, strict=True)), (
            f"unit {unit} sees only padding, the report says {expected_box}"
        )
        return
    for axis, ((m_lo, m_hi), (lo, hi), n) in enumerate(
        zip(support, expected_box, sizes, strict=True)
    ):
        where = f"unit {unit}, axis {axis}: measured {(m_lo, m_hi)}, report {(lo, hi)}"
        assert m_lo == lo if lo >= 0 else m_lo >= 0, where
        assert m_hi == hi if hi <= n - 1 else m_hi <= n - 1, where


def same_map(field: dict[str, Any], measured: dict[str, Any]) -> bool:
    """Whether the report's end point is the map Keras was measured at.

    The measurement takes the last layer with a spatial output; the report names the last
    layer that changes the field and lists those after it that keep every position's field
    (batch normalisation, activations, dropout) in ``unchanged_after``: one map, one field.
    """
    names = [field["end_point"], *field.get("unchanged_after", [])]
    return measured["end_point"] == names[-1]


def assert_footprint_matches(field: dict[str, Any], measured: dict[str, Any]) -> None:
    """The report's smallest and largest unit extents against the gradient support's."""
    footprint = field["footprint"]
    assert footprint is not None, field["footprint_note"]
    assert (footprint["min"], footprint["max"]) == (
        measured["extent"]["min"],
        measured["extent"]["max"],
    )


@pytest.mark.parametrize("slug", cases_for("receptive_field"))
def test_receptive_field_matches_gradient_support_or_is_refused(slug):
    field, measured = report(slug)["receptive_field"], expected(slug)["receptive_field"]
    if field.get("error") is not None:
        # A refusal is honest when it says why; it must not come with numbers.
        assert field["error"]["kind"] and field["error"]["message"]
        assert field["size"] is None and field["end_point"] is None
        return
    assert same_map(field, measured), (
        f"the report gives the field at {field['end_point']} (then "
        f"{field.get('unchanged_after')}), not at the last spatial feature map "
        f"{measured['end_point']}"
    )
    assert not field["global"]
    assert field["output_size"] == measured["output_size"]
    assert_footprint_matches(field, measured)
    if not measured["uniform"]:
        # Units see windows of different sizes: no course formula exists, and none is given.
        assert field["size"] == field["jump"] == [None] * len(measured["input_size"])
        assert field["formula_note"]
        return
    assert (field["size"], field["jump"]) == (measured["size"], measured["jump"])
    for unit in measured["units"]:
        assert_unit_matches(field, unit)


@pytest.mark.parametrize("slug", cases_for("rule"))
def test_min_receptive_field_rule_judges_the_measured_field(slug):
    # The rule judges the smallest footprint over the units (what the least-seeing unit sees
    # of the image, measured by gradient support), against the limit capped at the image.
    field, measured = report(slug)["receptive_field"], expected(slug)["receptive_field"]
    (rule,) = report(slug)["rules"]
    if field.get("error") is not None:
        assert rule["passed"] is False
        assert rule["measured"] is None
        assert "could not be computed" in rule["message"]
        return
    smallest = measured["extent"]["min"]
    assert rule["measured"] == (smallest[0] if len(set(smallest)) == 1 else smallest)
    required = [min(32, n) for n in measured["input_size"]]
    assert rule["passed"] is all(s >= r for s, r in zip(smallest, required, strict=True))


def test_check_model_analyses_every_case():
    # Shapes and parameters stand even where the receptive field is refused.
    failures = {}
    for slug in CASES:
        try:
            report(slug)
        except GraderError as exc:
            failures[slug] = exc.to_dict()
    assert failures == {}


# --- the smallest reproductions of the defects (tests/fixtures/real/repro) ----------------------


def repro(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = CORPUS / "repro"
    config = json.loads((folder / f"{name}.json").read_text())
    measured = json.loads((folder / f"{name}.expected.json").read_text())
    return check_model(config, RF_RULE), measured


def test_field_behind_upsampling_is_the_last_maps_footprint_not_an_earlier_layers():
    # Found by the corpus: the field was once given at the last layer before UpSampling2D.
    # UpSampling2D repeats positions, so no course formula exists at `after`: the report says
    # so, and the footprint (traced per position) is what Keras' gradients measure.
    got, measured = repro("rf-end-point-behind-upsampling")
    field, keras_field = got["receptive_field"], measured["receptive_field"]
    assert not keras_field["uniform"]  # Keras: no exact formula field at `after`
    assert field["end_point"] == keras_field["end_point"] == "after"
    assert field["size"] == [None, None] and "UpSampling2D" in field["formula_note"]
    assert_footprint_matches(field, keras_field)


def test_layer_trainable_again_inside_a_frozen_nested_model_counts_as_trainable():
    # Found by the corpus: a frozen nested model whose layer is set trainable again trains
    # that layer (Keras honours each layer's own flag once it rebuilds the config).
    got, measured = repro("params-frozen-nested-model-with-trainable-layer")
    assert got["params"] == measured["params"]
    assert measured["params"]["trainable"] > 0  # the case re-enables something


@pytest.mark.tf
@pytest.mark.parametrize(
    "path",
    [
        "repro/build-nested-functional-model",
        "cifar-ist5-densenet121-partly-frozen/model",
    ],
)
def test_build_stage_accepts_a_nested_functional_model(path):
    # Found by the corpus: Keras writes a nested Functional model from module
    # `keras.src.models.functional`, which the sandboxes' class gate once refused.
    pytest.importorskip("keras")
    from grader.build_check import compare_with_analysis
    from grader.training.built_model import describe_built_model
    from grader.training.safe_model import build_model

    config = json.loads((CORPUS / f"{path}.json").read_text())
    truth = f"{path}.expected.json" if path.startswith("repro/") else f"{path[:-6]}/expected.json"
    measured = json.loads((CORPUS / truth).read_text())
    model = build_model(config)  # the gate, then Keras
    assert model.count_params() == measured["params"]["total"]
    # The network the train stage builds is the one the check stage analysed.
    assert compare_with_analysis(check_model(config), describe_built_model(model)) == []


# --- with TensorFlow: the committed configs are what the submissions build --------------------


def _measure_module() -> Any:
    spec = importlib.util.spec_from_file_location("corpus_measure", CORPUS / "measure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.tf
def test_committed_configs_are_what_the_submissions_build():
    pytest.importorskip("tensorflow")
    measure = _measure_module()
    stale = []
    for slug, case in CASES.items():
        model = measure.build(slug, case)
        config = json.loads(model.to_json())
        committed = json.loads((CORPUS / slug / "model.json").read_text())
        counts = measure.parameters(model)
        if config != committed or counts["params"] != expected(slug)["params"]:
            stale.append(slug)
    assert stale == [], "rerun tests/fixtures/real/measure.py for these cases"
