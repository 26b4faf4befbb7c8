"""Shipped presets: complete, valid, consistent with their datasets, passed by the references."""

from __future__ import annotations

import pytest

from grader.analysis import analyze
from grader.datasets import get_source
from grader.errors import RuleSetError
from grader.loading import load_model_config
from grader.presets import list_presets, load_preset, preset_text
from grader.rules import evaluate_rules, load_ruleset
from grader.rules.schema import PRESET_REQUIRED
from grader.training.config import validate_training_config
from tests.support.dataset_key import TEST_DATASET_KEY
from tests.support.fixture_models import expected, model_path

PRESETS = list_presets()


def test_ships_the_course_presets():
    assert {"cifar10-separable", "cifar10-dilated", "smoke"} <= set(PRESETS)


@pytest.mark.parametrize("slug", PRESETS)
def test_preset_carries_every_metadata_key_and_its_own_slug(slug):
    ruleset = load_preset(slug)
    assert set(PRESET_REQUIRED) <= set(ruleset.metadata)
    assert ruleset.slug == slug
    assert ruleset.description.strip()


@pytest.mark.parametrize("slug", PRESETS)
def test_preset_round_trips_through_yaml_and_dict(slug):
    ruleset = load_preset(slug)
    assert load_ruleset(ruleset.to_yaml()) == ruleset
    assert load_ruleset(ruleset.to_dict()) == ruleset
    assert load_ruleset(preset_text(slug)) == ruleset


@pytest.mark.parametrize("slug", PRESETS)
def test_preset_matches_its_dataset(slug):
    ruleset = load_preset(slug)
    source = get_source(ruleset.dataset)
    assert tuple(ruleset.input_shape) == source.input_shape
    assert ruleset.num_classes == source.num_classes


@pytest.mark.parametrize("slug", PRESETS)
def test_preset_default_training_passes_the_training_whitelist(slug):
    ruleset = load_preset(slug)
    config = validate_training_config(ruleset.training, {"max_epochs": ruleset.max_epochs})
    assert config.epochs <= ruleset.max_epochs
    for spec in ruleset.rules:
        if spec.id == "max_epochs":
            assert config.epochs <= spec.params["limit"]


@pytest.mark.parametrize("slug", PRESETS)
def test_preset_is_met_statically_by_its_reference_fixture(slug):
    references = [n for n, e in expected().items() if e["preset"] == slug and not e["breaks"]]
    references = [n for n in references if n != "breaks_lambda"]
    assert references, f"no reference fixture for preset {slug}"
    for name in references:
        results = evaluate_rules(load_preset(slug), analyze(load_model_config(model_path(name))))
        assert [r.passed for r in results if r.passed is not None]
        assert all(r.passed is not False for r in results), [r.message for r in results]


def test_cifar10_separable_has_the_course_limits():
    rules = {spec.id: spec.params for spec in load_preset("cifar10-separable").rules}
    assert rules["max_params"]["limit"] == 100_000
    assert rules["max_dropout"]["limit"] == 0.1
    assert rules["min_receptive_field"] == {"limit": 32, "end_point": None}
    assert rules["only_separable_convs"]["allow_first_layer"] is True
    assert rules["min_val_accuracy"] == {"limit": 0.82, "within_epochs": 50}
    assert rules["max_epochs"]["limit"] == 50


def test_cifar10_dilated_has_the_course_limits():
    rules = {spec.id: spec.params for spec in load_preset("cifar10-dilated").rules}
    assert rules["forbidden_layers"]["layers"] == ["MaxPooling2D"]
    assert rules["global_pooling_used"]["kind"] == "average"
    assert rules["max_params"]["limit"] == 200_000
    assert rules["min_receptive_field"] == {"limit": 32, "end_point": None}  # the whole image
    assert rules["min_val_accuracy"]["limit"] == 0.85
    assert {"dilated_conv_used", "separable_conv_used"} <= set(rules)


def test_smoke_preset_is_small_and_quick():
    ruleset = load_preset("smoke")
    assert ruleset.dataset == "synthetic"
    assert ruleset.max_epochs <= 5
    assert ruleset.time_limit_seconds <= 600


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(RuleSetError, match=r"There is no preset `cifar100`\. Expected one of: "):
        load_preset("cifar100")


def test_load_preset_returns_independent_copies():
    first = load_preset("smoke")
    first.metadata["title"] = "changed"
    assert load_preset("smoke").title != "changed"


@pytest.mark.tf
def test_smoke_preset_accuracy_target_is_reachable_by_its_reference_model(tmp_path):
    """Train the smoke reference with the preset's own training defaults on the real dataset."""
    from grader.datasets import load_split, prepare_dataset
    from grader.rules import TrainingOutcome, overall_passed
    from tests.support.keras_models import keras

    ruleset = load_preset("smoke")
    target = next(s.params["limit"] for s in ruleset.rules if s.id == "min_val_accuracy")
    training = ruleset.training
    x, y = load_split(
        prepare_dataset(ruleset.dataset, tmp_path, key=TEST_DATASET_KEY).train_dir, mmap=False
    )
    keras.backend.clear_session()  # no name scope or layer counter left by earlier tests
    keras.utils.set_random_seed(0)
    model = keras.models.model_from_json(model_path("smoke_separable").read_text())
    model.compile(
        optimizer=keras.optimizers.Adam(training["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    class StopAtTarget(keras.callbacks.Callback):
        # The test asks whether the target is reachable, not how far training goes.
        def on_epoch_end(self, epoch, logs=None):
            if (logs or {}).get("val_accuracy", 0.0) >= target:
                self.model.stop_training = True

    history = model.fit(
        x.astype("float32") / 255.0,
        y,
        batch_size=training["batch_size"],
        epochs=training["epochs"],
        validation_split=0.1,
        callbacks=[StopAtTarget()],
        verbose=0,
    )
    epochs = [
        {"epoch": i + 1, "val_accuracy": v} for i, v in enumerate(history.history["val_accuracy"])
    ]
    results = evaluate_rules(
        ruleset,
        analyze(load_model_config(model_path("smoke_separable"))),
        outcome=TrainingOutcome.from_epochs(epochs),
    )
    assert overall_passed(results) is True, [r.message for r in results]
