"""Assignment settings the grading pipeline would fail on, or silently ignore, are refused when
the instructor saves them: on the form's field, or naming the YAML key on import, with nothing
saved. One judge (`assignments.services.assignment_settings`) serves every entry point; the API
only reads assignments, so the pages, the import and the services are the ways in.
"""

from __future__ import annotations

import pytest
import yaml
from django.test import Client
from django.urls import reverse

from assignments.management.commands.load_demo import read_preset
from assignments.models import Assignment, AuditEntry
from assignments.services import courses
from assignments.services.assignment_settings import (
    MIN_MEMORY_LIMIT_MB,
    AssignmentInvalid,
    assignment_problems,
    time_limit_range,
)
from grader.datasets import DATASETS
from grader.errors import TrainingConfigError
from grader.grading.plan import GradingPlan
from grader.grading.static_check import validated_training_config
from grader.training.config import POLICY_MAX_EPOCHS, validate_training_config
from tests.support.page_forms import form_values
from workers.sandbox.base import Limits

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

VISIBILITY = {"visibility_timeout": 3600}


@pytest.fixture
def smoke(course, instructor) -> Assignment:
    """The demo's `smoke` assignment, created the way `load_demo` creates it."""
    preset = read_preset("smoke")
    return courses.create_assignment(
        course=course,
        actor=instructor,
        slug="smoke",
        rules_yaml=preset.rules_yaml,
        **preset.settings,
    )


def snapshot(assignment: Assignment) -> dict:
    fresh = Assignment.objects.get(pk=assignment.pk)
    return {name: getattr(fresh, name) for name in courses.EDITABLE_FIELDS} | {
        "rules_version": fresh.rules_version
    }


def save_page(client: Client, instructor, assignment: Assignment, **changes: str):
    """Post the edit page as shown, with `changes` typed in, and Save pressed."""
    client.force_login(instructor)
    url = reverse("assignment_edit", args=[assignment.slug])
    values = form_values(client.get(url).content)
    values.update(changes)
    return client.post(url, {**values, "action": "save"})


def import_text(client: Client, instructor, course, text: str):
    client.force_login(instructor)
    return client.post(reverse("assignment_import", args=[course.slug]), {"text": text})


def exported(assignment: Assignment, **changes) -> str:
    """The assignment's YAML export as a mapping, changed, as text (`rules` changes as `rules`)."""
    data = yaml.safe_load(courses.export_assignment_yaml(assignment))
    rules = changes.pop("rules", {})
    data.update(changes)
    data["rules"].update(rules)
    return yaml.safe_dump(data, sort_keys=False)


def field_errors(response, name: str) -> list[str]:
    assert response.status_code == 200, "the page should come back with errors, not redirect"
    return list(response.context["form"].errors.get(name, []))


def metadata_errors(response) -> list[str]:
    assert response.status_code == 200
    return list(response.context["editor"].tools.errors.get("metadata", []))


def import_errors(response) -> str:
    assert response.status_code == 200, "the import should be refused"
    return " ".join(response.context["form"].non_field_errors())


# --- 1. the training time limit ----------------------------------------------------------------


@pytest.mark.parametrize("seconds", ["0", "-5"])
def test_form_refuses_a_time_limit_below_one_second(client, instructor, smoke, seconds):
    before = snapshot(smoke)
    response = save_page(client, instructor, smoke, time_limit_seconds=seconds)
    (message,) = field_errors(response, "time_limit_seconds")
    assert message.startswith(f"Time limit is {int(seconds):,} seconds. Expected an integer from 1")
    assert snapshot(smoke) == before
    assert not AuditEntry.objects.filter(action="assignment.updated").exists()
    # The input is kept for the instructor to correct.
    assert form_values(response.content)["time_limit_seconds"] == seconds


@pytest.mark.parametrize("seconds", [0, -5])
def test_import_refuses_a_time_limit_below_one_second(client, instructor, course, smoke, seconds):
    text = exported(smoke, slug="smoke-copy", time_limit_seconds=seconds)
    message = import_errors(import_text(client, instructor, course, text))
    assert f"`time_limit_seconds`: Time limit is {seconds:,} seconds. Expected" in message
    assert not Assignment.objects.filter(slug="smoke-copy").exists()


def test_time_limit_must_end_before_the_broker_redelivers_the_task(
    client, instructor, smoke, settings
):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = VISIBILITY
    settings.GRADER_SANDBOX_GRACE_SECONDS = 60
    low, high = time_limit_range()
    assert (low, high) == (1, 3600 - 120 - 1)
    # The highest accepted limit nests inside the visibility timeout; one more second does not.
    from assignments.services.grading import stage_limits

    smoke.time_limit_seconds = high
    assert stage_limits(stage="training", assignment=smoke).time_limit < 3600
    smoke.time_limit_seconds = high + 1
    assert stage_limits(stage="training", assignment=smoke).time_limit >= 3600

    before = snapshot(smoke)
    response = save_page(client, instructor, smoke, time_limit_seconds=str(high + 1))
    (message,) = field_errors(response, "time_limit_seconds")
    assert f"Expected an integer from 1 to {high:,} seconds." in message
    assert "visibility timeout" in message
    assert snapshot(smoke) == before
    assert save_page(client, instructor, smoke, time_limit_seconds=str(high)).status_code == 302
    assert Assignment.objects.get(pk=smoke.pk).time_limit_seconds == high


def test_the_time_limit_range_is_what_the_sandbox_accepts(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = VISIBILITY
    low, _ = time_limit_range()
    Limits(wall_seconds=low)
    with pytest.raises(ValueError, match=r"Limits\.wall_seconds is 0\. Expected a positive number"):
        Limits(wall_seconds=low - 1)
    assert assignment_problems(values={"time_limit_seconds": low}) == {}
    assert "time_limit_seconds" in assignment_problems(values={"time_limit_seconds": low - 1})


# --- 2. the epoch limit ------------------------------------------------------------------------


def test_form_refuses_zero_max_epochs(client, instructor, assignment):
    before = snapshot(assignment)
    response = save_page(client, instructor, assignment, max_epochs="0")
    assert field_errors(response, "max_epochs") == [
        f"Epochs at most is 0. Expected an integer from 1 to {POLICY_MAX_EPOCHS:,}."
    ]
    assert snapshot(assignment) == before


def test_import_refuses_zero_max_epochs(client, instructor, course, smoke):
    text = exported(smoke, slug="smoke-copy", max_epochs=0)
    message = import_errors(import_text(client, instructor, course, text))
    assert "`max_epochs`: Epochs at most is 0. Expected an integer from 1 to 1,000,000." in message
    assert not Assignment.objects.filter(slug="smoke-copy").exists()


def test_the_epoch_limit_range_is_what_the_trainer_accepts():
    validate_training_config(None, {"max_epochs": POLICY_MAX_EPOCHS})
    with pytest.raises(TrainingConfigError, match=r"policy\.max_epochs"):
        validate_training_config(None, {"max_epochs": POLICY_MAX_EPOCHS + 1})
    assert assignment_problems(values={"max_epochs": POLICY_MAX_EPOCHS}) == {}
    assert "max_epochs" in assignment_problems(values={"max_epochs": POLICY_MAX_EPOCHS + 1})


# --- 3. the default training config against the assignment's epoch limit ---------------------


def test_import_refuses_default_epochs_above_the_assignments_max_epochs(
    client, instructor, course, smoke
):
    text = exported(smoke, slug="smoke-copy", max_epochs=3)  # rules.training.epochs stays 5
    message = import_errors(import_text(client, instructor, course, text))
    assert (
        "`rules.training.epochs`: Rules `training.epochs` is 5. Expected at most 3, the "
        "assignment's `max_epochs`" in message
    )
    assert not Assignment.objects.filter(slug="smoke-copy").exists()


def test_form_refuses_lowering_max_epochs_below_the_default_epochs(client, instructor, smoke):
    before = snapshot(smoke)
    response = save_page(client, instructor, smoke, max_epochs="3")
    (message,) = metadata_errors(response)
    assert message.startswith("Rules `training.epochs` is 5. Expected at most 3")
    assert snapshot(smoke) == before
    assert form_values(response.content)["max_epochs"] == "3"


def test_form_refuses_default_training_settings_the_trainer_refuses(client, instructor, smoke):
    client.force_login(instructor)
    values = form_values(client.get(reverse("assignment_edit", args=[smoke.slug])).content)
    metadata = values["ruleset-metadata"].replace("optimizer: adam", "optimizer: adagrad")
    assert metadata != values["ruleset-metadata"]
    before = snapshot(smoke)
    response = save_page(client, instructor, smoke, **{"ruleset-metadata": metadata})
    (message,) = metadata_errors(response)
    assert message.startswith("Rules `training` (the default training config) is refused")
    assert "Training config `optimizer` is 'adagrad'." in message
    assert snapshot(smoke) == before


def test_a_saved_assignment_passes_the_check_stages_training_policy(smoke, instructor):
    # What the save accepted, the check stage accepts before every training.
    assert validated_training_config(None, GradingPlan.from_assignment(smoke)) is not None
    courses.update_assignment(assignment=smoke, actor=instructor, max_epochs=7)
    smoke.refresh_from_db()
    assert validated_training_config(None, GradingPlan.from_assignment(smoke))["epochs"] == 5


# --- 4. the late penalty and the other column checks ------------------------------------------


def test_form_refuses_a_late_penalty_above_one_with_a_field_message(client, instructor, smoke):
    before = snapshot(smoke)
    response = save_page(client, instructor, smoke, late_policy="penalty", late_penalty="1.5")
    (message,) = field_errors(response, "late_penalty")
    assert message.startswith("Late penalty is 1.5. Expected a fraction between 0 and 1")
    html = response.content.decode()
    assert "late_penalty_is_a_fraction" not in html and "is violated" not in html
    assert not response.context["form"].non_field_errors()
    assert snapshot(smoke) == before


@pytest.mark.parametrize("penalty", [1.5, -0.1, ".nan"])
def test_import_refuses_a_late_penalty_outside_zero_to_one(
    client, instructor, course, smoke, penalty
):
    text = exported(smoke, slug="smoke-copy").replace(
        "late_penalty: 0.0", f"late_penalty: {penalty}"
    )
    message = import_errors(import_text(client, instructor, course, text))
    assert "`late_penalty`: Late penalty is" in message
    assert "Expected a fraction between 0 and 1" in message and "violated" not in message
    assert not Assignment.objects.filter(slug="smoke-copy").exists()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("memory_limit_mb", "0", f"Memory limit is 0 MB. Expected an integer from "
         f"{MIN_MEMORY_LIMIT_MB}"),
        ("memory_limit_mb", "-1", "Memory limit is -1 MB. Expected an integer from"),
        ("daily_quota", "-1", "Submissions per student per day is -1. Expected an integer from 0"),
    ],
)  # fmt: skip
def test_form_refuses_other_values_the_columns_or_sandboxes_refuse(
    client, instructor, smoke, name, value, expected
):
    before = snapshot(smoke)
    response = save_page(client, instructor, smoke, **{name: value})
    (message,) = field_errors(response, name)
    assert message.startswith(expected)
    assert snapshot(smoke) == before


def test_import_names_every_invalid_key_at_once(client, instructor, course, smoke):
    text = exported(smoke, slug="smoke-copy", memory_limit_mb=0, daily_quota=-1, max_epochs="5")
    message = import_errors(import_text(client, instructor, course, text))
    assert "`memory_limit_mb`: Memory limit is 0 MB." in message
    assert "`daily_quota`: Submissions per student per day is -1." in message
    assert "`max_epochs`: Epochs at most is '5'. Expected an integer" in message
    assert not Assignment.objects.filter(slug="smoke-copy").exists()


# --- 5. the rules' input shape and classes against the dataset --------------------------------


def test_import_refuses_num_classes_that_contradict_the_dataset(client, instructor, course, smoke):
    text = exported(smoke, slug="smoke-copy", rules={"num_classes": 7})
    message = import_errors(import_text(client, instructor, course, text))
    assert (
        "`rules.num_classes`: Rules `num_classes` is 7. Expected 4: dataset `synthetic` has "
        "16x16x3 images in 4 classes" in message
    )
    assert not Assignment.objects.filter(slug="smoke-copy").exists()


def test_import_refuses_an_input_shape_or_dataset_that_contradict_the_dataset(
    client, instructor, course, smoke
):
    text = exported(smoke, slug="smoke-copy", rules={"input_shape": [32, 32, 3]})
    message = import_errors(import_text(client, instructor, course, text))
    assert (
        "`rules.input_shape`: Rules `input_shape` is [32, 32, 3]. Expected [16, 16, 3]" in message
    )
    text = exported(smoke, slug="smoke-copy", rules={"dataset": "cifar10"})
    message = import_errors(import_text(client, instructor, course, text))
    assert "`rules.dataset`: Rules `dataset` is 'cifar10'. Expected 'synthetic'" in message
    assert not Assignment.objects.filter(slug="smoke-copy").exists()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("max_epochs", 50, "epochs at most"),
        ("time_limit_seconds", 60, "time limit (seconds)"),
        ("mode", "evaluate", "mode"),
    ],
)
def test_import_refuses_rules_keys_that_contradict_the_assignments_settings(
    client, instructor, course, smoke, key, value, words
):
    # The grader reads the assignment's settings, never these keys: a rule set saying
    # otherwise would be ignored without a word.
    setting = getattr(smoke, key)
    assert setting != value
    text = exported(smoke, slug="smoke-copy", rules={key: value})
    message = import_errors(import_text(client, instructor, course, text))
    assert (
        f"`rules.{key}`: Rules `{key}` is {value!r}. Expected {setting!r}, the assignment's "
        f"{words}, which the grader uses." in message
    )
    assert not Assignment.objects.filter(slug="smoke-copy").exists()

    # The same value as the setting is only redundant: saved.
    text = exported(smoke, slug="smoke-copy", rules={key: setting})
    assert import_text(client, instructor, course, text).status_code == 302
    assert Assignment.objects.filter(slug="smoke-copy").exists()


def test_a_created_assignment_takes_the_settings_its_rules_state_unless_given(course, instructor):
    from grader.presets import load_preset, preset_text

    stated = load_preset("cifar10-separable").metadata
    created = courses.create_assignment(
        course=course, actor=instructor, slug="sep", title="Sep",
        rules_yaml=preset_text("cifar10-separable"),
    )  # fmt: skip
    for key in ("dataset", "mode", "max_epochs", "time_limit_seconds"):
        assert getattr(created, key) == stated[key], key
    assert GradingPlan.from_assignment(created).time_limit_seconds == stated["time_limit_seconds"]

    with pytest.raises(courses.AssignmentInvalid, match="Rules `max_epochs` is"):
        courses.create_assignment(
            course=course, actor=instructor, slug="sep2", title="Sep",
            rules_yaml=preset_text("cifar10-separable"), max_epochs=stated["max_epochs"] + 1,
        )  # fmt: skip


def test_form_refuses_an_epoch_limit_in_the_rules_that_the_setting_contradicts(
    client, instructor, smoke
):
    before = snapshot(smoke)
    url = reverse("assignment_edit", args=[smoke.slug])
    client.force_login(instructor)
    shown = form_values(client.get(url).content)
    typed = f"{shown['ruleset-metadata'].rstrip()}\nmax_epochs: {smoke.max_epochs + 1}\n"
    response = client.post(url, {**shown, "ruleset-metadata": typed, "action": "save"})
    assert metadata_errors(response) == [
        f"Rules `max_epochs` is {smoke.max_epochs + 1}. Expected {smoke.max_epochs}, the "
        "assignment's epochs at most, which the grader uses. Change it, or remove `max_epochs` "
        "from the rules: the assignment's setting decides."
    ]
    assert snapshot(smoke) == before


def test_updating_by_import_refuses_a_contradiction_and_keeps_the_assignment(
    client, instructor, course, smoke
):
    before = snapshot(smoke)
    text = exported(smoke, title="Changed", rules={"num_classes": 7})
    assert "Rules `num_classes` is 7" in import_errors(
        import_text(client, instructor, course, text)
    )
    assert snapshot(smoke) == before


def test_form_refuses_switching_the_dataset_under_rules_for_another_one(client, instructor, smoke):
    before = snapshot(smoke)
    digits = DATASETS["digits"]
    response = save_page(client, instructor, smoke, dataset="digits")
    messages = metadata_errors(response)
    assert messages == [
        "Rules `input_shape` is [16, 16, 3]. Expected [8, 8, 1]: dataset `digits` has 8x8x1 "
        "images in 10 classes, and models are built for that. Change it, or remove "
        "`input_shape` from the rules: the dataset decides it.",
        "Rules `num_classes` is 4. Expected 10: dataset `digits` has 8x8x1 images in 10 "
        "classes, and models are built for that. Change it, or remove `num_classes` from the "
        "rules: the dataset decides it.",
    ]
    assert list(digits.input_shape) == [8, 8, 1] and digits.num_classes == 10
    assert snapshot(smoke) == before
    shown = form_values(response.content)
    assert shown["dataset"] == "digits" and "num_classes: 4" in shown["ruleset-metadata"]

    # Stating the dataset's values (or removing the keys) saves.
    fixed = shown["ruleset-metadata"].replace("[16, 16, 3]", "[8, 8, 1]")
    fixed = fixed.replace("num_classes: 4", "num_classes: 10")
    response = client.post(
        reverse("assignment_edit", args=[smoke.slug]),
        {**shown, "ruleset-metadata": fixed, "action": "save"},
    )
    assert response.status_code == 302
    saved = Assignment.objects.get(pk=smoke.pk)
    assert saved.dataset == "digits" and saved.rules_version == before["rules_version"] + 1


def test_rules_without_input_shape_or_classes_follow_any_dataset(assignment, instructor):
    for name in DATASETS:
        courses.update_assignment(assignment=assignment, actor=instructor, dataset=name)
    assert Assignment.objects.get(pk=assignment.pk).dataset == name


@pytest.mark.parametrize("slug", ["smoke", "cifar10-separable", "cifar10-dilated"])
def test_every_shipped_preset_agrees_with_its_own_dataset(course, instructor, slug):
    preset = read_preset(slug)
    created = courses.create_assignment(
        course=course, actor=instructor, slug=slug, rules_yaml=preset.rules_yaml, **preset.settings
    )
    assert created.pk is not None


# --- the service is the judge, whoever calls it -----------------------------------------------


def test_the_service_refuses_what_the_form_refuses(smoke, instructor):
    before = snapshot(smoke)
    with pytest.raises(AssignmentInvalid) as caught:
        courses.update_assignment(
            assignment=smoke, actor=instructor, max_epochs=0, late_penalty=2.0, dataset="digits"
        )
    assert set(caught.value.errors) == {
        "max_epochs",
        "late_penalty",
        "rules.input_shape",
        "rules.num_classes",
    }
    assert snapshot(smoke) == before
    assert not AuditEntry.objects.filter(action="assignment.updated").exists()


def test_the_admin_refuses_what_the_form_refuses(client, smoke):
    from tests.support.site_fixtures import make_user

    client.force_login(make_user("root", superuser=True))
    url = reverse("admin:assignments_assignment_change", args=[smoke.pk])
    values = form_values(client.get(url).content, form_id="assignment_form")
    before = snapshot(smoke)
    values.update(
        max_epochs="0",
        late_penalty="1.5",
        rules_yaml=values["rules_yaml"].replace("num_classes: 4", "num_classes: 7"),
    )
    response = client.post(url, values)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["max_epochs"] == ["Epochs at most is 0. Expected an integer from 1 to 1,000,000."]
    assert errors["late_penalty"][0].startswith("Late penalty is 1.5. Expected a fraction")
    assert errors["rules_yaml"][0].startswith("Rules `num_classes` is 7. Expected 4")
    assert snapshot(smoke) == before


# --- evaluate-only assignments train nothing: no rule decided by training ---------------------

EVALUATE_REFUSAL = (
    "Rule `min_val_accuracy` is decided by training. Expected no training rules in an "
    "evaluate-only assignment;"
)


def test_the_service_refuses_training_rules_in_an_evaluate_only_assignment(smoke, instructor):
    before = snapshot(smoke)
    with pytest.raises(AssignmentInvalid) as caught:
        courses.update_assignment(assignment=smoke, actor=instructor, mode="evaluate")
    assert set(caught.value.errors) == {"rules.max_epochs", "rules.min_val_accuracy"}
    assert caught.value.errors["rules.min_val_accuracy"][0].startswith(EVALUATE_REFUSAL)
    assert "Rule `max_epochs` is decided by training." in caught.value.message
    assert snapshot(smoke) == before


def test_import_refuses_training_rules_in_an_evaluate_only_assignment(
    client, instructor, course, smoke
):
    text = exported(smoke, slug="smoke-eval", mode="evaluate")
    message = import_errors(import_text(client, instructor, course, text))
    assert f"`rules.min_val_accuracy`: {EVALUATE_REFUSAL}" in message
    assert not Assignment.objects.filter(slug="smoke-eval").exists()


def test_form_refuses_switching_to_evaluate_under_training_rules(client, instructor, smoke):
    before = snapshot(smoke)
    response = save_page(client, instructor, smoke, mode="evaluate")
    assert response.status_code == 200
    assert EVALUATE_REFUSAL in response.content.decode().replace("&#x27;", "'")
    assert snapshot(smoke) == before


def test_the_admin_refuses_training_rules_in_an_evaluate_only_assignment(client, smoke):
    from tests.support.site_fixtures import make_user

    client.force_login(make_user("root", superuser=True))
    url = reverse("admin:assignments_assignment_change", args=[smoke.pk])
    values = form_values(client.get(url).content, form_id="assignment_form")
    before = snapshot(smoke)
    response = client.post(url, {**values, "mode": "evaluate"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(message.startswith(EVALUATE_REFUSAL) for message in errors["rules_yaml"])
    assert snapshot(smoke) == before


def test_static_rules_are_fine_in_an_evaluate_only_assignment(smoke, instructor):
    from grader.rules import RULES

    static = yaml.safe_load(smoke.rules_yaml)
    static["rules"] = [r for r in static["rules"] if RULES[r["id"]].phase == "static"]
    courses.update_assignment(
        assignment=smoke, actor=instructor, mode="evaluate", rules_yaml=yaml.safe_dump(static)
    )
    assert Assignment.objects.get(pk=smoke.pk).mode == "evaluate"
