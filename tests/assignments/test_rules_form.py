"""The per-rule editor of the assignment page: rows generated from the rule registry, errors that
name the rule and the parameter, YAML import and export, presets, and what ends up stored.

Every post is what a browser without JavaScript sends: the page's own fields (`form_values`),
changed where a person would type, plus the button pressed (`action`).
"""

from __future__ import annotations

import io

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from assignments.models import Assignment, AuditEntry
from assignments.rule_forms import RuleRowForm, displayed, new_row, param_input
from grader.analysis import analyze
from grader.presets import load_preset, preset_text
from grader.rules import RULES, evaluate_rules, load_ruleset
from grader.rules.params import Bool, Choice, Int, Number, Param, ParamTypeError
from tests.support.page_forms import form_values
from tests.support.site_fixtures import RULES_YAML, tiny_model_config

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def edit_url(assignment) -> str:
    return reverse("assignment_edit", args=[assignment.slug])


def login(client: Client, user) -> Client:
    client.force_login(user)
    return client


def page(client: Client, url: str) -> dict[str, str]:
    response = client.get(url)
    assert response.status_code == 200
    return form_values(response.content)


def press(client: Client, url: str, values: dict[str, str], action: str, **files):
    """Post the page's values with the button `action` pressed."""
    return client.post(url, {**values, "action": action, **files})


def row_count(values: dict[str, str]) -> int:
    return int(values["rules-TOTAL_FORMS"])


def rule_ids(values: dict[str, str]) -> list[str]:
    return [values[f"rules-{i}-rule"] for i in range(row_count(values))]


# --- rows generated from the registry ---------------------------------------------------------


def test_edit_page_shows_one_row_per_stored_rule_with_typed_inputs(client, instructor, assignment):
    html = login(client, instructor).get(edit_url(assignment)).content.decode()
    values = form_values(html)
    assert rule_ids(values) == ["max_params", "max_dropout", "min_receptive_field"]
    assert values["rules-0-limit"] == "20000" and values["rules-0-points"] == "2"
    assert values["rules-0-count"] == "total"  # a default, filled in
    assert values["rules-1-limit"] == "0.2"
    assert values["rules-2-limit"] == "3" and values["rules-2-end_point"] == ""
    assert 'type="number" name="rules-0-limit" value="20000" step="1" min="1"' in html
    assert 'name="rules-1-limit" value="0.2" step="any" min="0.0" max="1.0"' in html
    assert '<select name="rules-0-count"' in html
    # Each row says what its rule checks, from the registry's summary.
    assert RULES["max_params"].summary.split("`")[0] in html


@pytest.mark.parametrize("rule_id", list(RULES))
def test_every_registered_rule_gets_an_input_per_parameter(rule_id):
    form = RuleRowForm(initial=new_row(rule_id), index=0)
    assert form.param_names == list(RULES[rule_id].params)
    for name, param in RULES[rule_id].params.items():
        widget = form.fields[name].widget
        expected = {Bool: "checkbox", Int: "number", Number: "number", Choice: "select"}
        widget = next((w for t, w in expected.items() if isinstance(param, t)), "text")
        assert form[name].widget_type == widget, (rule_id, name, type(widget).__name__)


def test_an_unknown_parameter_type_falls_back_to_a_yaml_value():
    class Pair(Param):
        @property
        def expected(self) -> str:
            return "a list of two integers"

        def check(self, value):
            if not (isinstance(value, list) and len(value) == 2):
                raise ParamTypeError(self.expected)
            return value

    spec = param_input(Pair(default=[1, 2]))
    assert displayed(Pair(default=[1, 2]), [1, 2]) == "[1, 2]"
    assert spec.parse("[3, 4]", Pair()) == [3, 4]


# --- validation errors: rule, parameter, expected, received; nothing lost ---------------------

ERROR_CASES = [
    # (row, parameter, typed, message)
    (0, "limit", "abc", "Rule 1 (`max_params`): `limit` must be an integer >= 1, got 'abc'."),
    (0, "limit", "0", "Rule 1 (`max_params`): `limit` must be an integer >= 1, got '0'."),
    (0, "limit", "2.5", "Rule 1 (`max_params`): `limit` must be an integer >= 1, got '2.5'."),
    (0, "limit", "", "Rule 1 (`max_params`): `limit` is required. Expected an integer >= 1."),
    (0, "count", "params", "Rule 1 (`max_params`): `count` must be one of 'total', 'trainable'"),
    (
        1,
        "limit",
        "1.5",
        "Rule 2 (`max_dropout`): `limit` must be a number between 0 and 1, got '1.5'.",
    ),
    (1, "limit", "nan", "Rule 2 (`max_dropout`): `limit` must be a number between 0 and 1"),
    (
        2,
        "limit",
        "3, 3, 3",
        "Rule 3 (`min_receptive_field`): `limit` must be a positive integer or a [height, width] "
        "pair of positive integers, got '3, 3, 3'.",
    ),
    (
        2,
        "end_point",
        "conv 1",
        "Rule 3 (`min_receptive_field`): `end_point` must be a layer name (a non-empty string "
        "without spaces), got 'conv 1'.",
    ),
    (1, "points", "-1", "Rule 2 (`max_dropout`): `points` must be a number >= 0, got '-1'."),
    (1, "points", "lots", "Rule 2 (`max_dropout`): `points` must be a number >= 0, got 'lots'."),
    (0, "rule", "max_parms", "Rule 1: `max_parms` is not a rule id. Expected one of:"),
]


@pytest.mark.parametrize(("row", "param", "typed", "message"), ERROR_CASES)
def test_errors_name_the_rule_and_parameter_and_keep_what_was_typed(
    client, instructor, assignment, row, param, typed, message
):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values[f"rules-{row}-{param}"] = typed
    if param == "rule":
        values[f"rules-{row}-shown_rule"] = typed  # a post that names an unknown rule outright
    values["title"] = "Renamed meanwhile"
    response = press(client, url, values, "save")
    assert response.status_code == 200
    html = response.content.decode()
    errors = response.context["editor"].errors
    assert any(message in e for e in errors), errors
    # The message is in the summary above the rows and next to the input; typed values come back.
    assert html.count(str(escape(message.split(", got")[0]))) >= 2
    again = form_values(html)
    if param not in ("rule", "count"):  # a select shows only its own options
        assert again[f"rules-{row}-{param}"] == typed
    assert again["title"] == "Renamed meanwhile"
    assert row_count(again) == 3
    # Nothing was saved.
    fresh = Assignment.objects.get(pk=assignment.pk)
    assert fresh.rules_yaml == RULES_YAML and fresh.title == assignment.title
    assert fresh.rules_version == 1


def test_a_misspelt_layer_class_is_refused_with_a_suggestion(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["ruleset-add_rule"] = "forbidden_layers"
    values = form_values(press(client, url, values, "add").content)
    values["rules-3-layers"] = "Flatten, MaxPoolin2D"
    errors = press(client, url, values, "save").context["editor"].errors
    assert errors == [
        "Rule 4 (`forbidden_layers`): `layers` must be Keras layer class names; `MaxPoolin2D` is "
        "not a Keras layer class (did you mean `MaxPooling2D`?), got 'Flatten, MaxPoolin2D'."
    ]


def test_a_repeated_rule_needs_a_name(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["ruleset-add_rule"] = "max_params"
    values = form_values(press(client, url, values, "add").content)
    values["rules-3-limit"] = "50000"
    response = press(client, url, values, "save")
    assert response.context["editor"].errors == [
        "Rule 4 (`max_params`) repeats the id of rule 1. Expected a distinct `name` on each rule "
        "that shares an id."
    ]
    assert response.context["editor"].rows.forms[3].errors["name"]
    values["rules-3-name"] = "max_params_loose"
    assert press(client, url, values, "save").status_code == 302
    stored = load_ruleset(Assignment.objects.get(pk=assignment.pk).rules_yaml)
    assert [r.name for r in stored.rules][-1] == "max_params_loose"


def test_the_training_defaults_must_fit_the_epoch_rule(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["ruleset-add_rule"] = "max_epochs"
    values = form_values(press(client, url, values, "add").content)
    values["rules-3-limit"] = "5"
    values["ruleset-metadata"] = "training:\n  epochs: 8\n"
    response = press(client, url, values, "save")
    [error] = response.context["editor"].errors
    assert error.startswith("The default training config trains 8 epochs but rule 4 (`max_epochs`)")
    assert response.context["editor"].rows.forms[3].errors["limit"] == [error]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("input_shape: [32, 32]\nnum_classs: 10\n", "unknown key `num_classs`"),
        ("input_shape: 32\n", "The rule set's `input_shape` is 32 (int)."),
        ("rules: []\n", "contain `rules`"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("training: [1\n", "not valid YAML or JSON"),
    ],
)
def test_bad_model_and_training_defaults_are_refused(
    client, instructor, assignment, metadata, message
):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["ruleset-metadata"] = metadata
    response = press(client, url, values, "save")
    assert response.status_code == 200
    assert any(message in e for e in response.context["editor"].tools.errors["metadata"])
    assert form_values(response.content)["ruleset-metadata"] == metadata
    assert Assignment.objects.get(pk=assignment.pk).rules_version == 1


# --- add, remove, move, change a rule: the page comes back unsaved ----------------------------


def test_add_move_and_remove_rules_without_javascript(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["rules-0-limit"] = "30000"  # typed before pressing a row button: kept
    values["ruleset-add_rule"] = "global_pooling_used"
    response = press(client, url, values, "add")
    assert response.status_code == 200 and not response.context["editor"].errors
    values = form_values(response.content)
    assert rule_ids(values) == [
        "max_params",
        "max_dropout",
        "min_receptive_field",
        "global_pooling_used",
    ]
    assert values["rules-0-limit"] == "30000" and values["rules-3-kind"] == "any"
    assert "Not saved yet" in response.content.decode()

    values = form_values(press(client, url, values, "up-3").content)
    assert rule_ids(values)[2:] == ["global_pooling_used", "min_receptive_field"]
    values = form_values(press(client, url, values, "down-0").content)
    assert rule_ids(values)[:2] == ["max_dropout", "max_params"]
    values = form_values(press(client, url, values, "remove-0").content)
    assert rule_ids(values) == ["max_params", "global_pooling_used", "min_receptive_field"]
    assert values["rules-0-limit"] == "30000"
    # Out-of-range row buttons change nothing.
    assert rule_ids(form_values(press(client, url, values, "up-0").content)) == rule_ids(values)
    assert rule_ids(form_values(press(client, url, values, "remove-9").content)) == rule_ids(values)
    assert Assignment.objects.get(pk=assignment.pk).rules_version == 1  # nothing saved yet

    assert press(client, url, values, "save").status_code == 302
    stored = load_ruleset(Assignment.objects.get(pk=assignment.pk).rules_yaml)
    assert [r.id for r in stored.rules] == [
        "max_params",
        "global_pooling_used",
        "min_receptive_field",
    ]
    assert stored.rules[0].params["limit"] == 30000


def test_changing_a_rows_rule_shows_the_new_parameters_before_saving(
    client, instructor, assignment
):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["rules-1-rule"] = "required_layers"  # was max_dropout
    response = press(client, url, values, "save")  # Save first shows the new inputs
    assert response.status_code == 200
    values = form_values(response.content)
    assert values["rules-1-shown_rule"] == "required_layers"
    assert values["rules-1-layers"] == "" and values["rules-1-min_count"] == "1"
    assert "rules-1-limit" not in values
    assert Assignment.objects.get(pk=assignment.pk).rules_version == 1
    values["rules-1-layers"] = "BatchNormalization"
    assert press(client, url, values, "save").status_code == 302
    stored = load_ruleset(Assignment.objects.get(pk=assignment.pk).rules_yaml)
    assert stored.rules[1].id == "required_layers"
    assert stored.rules[1].params == {"layers": ["BatchNormalization"], "min_count": 1}


# --- what is stored ----------------------------------------------------------------------------


def test_saving_an_unchanged_page_keeps_the_stored_text_and_version(client, instructor, assignment):
    text = "# the instructor's comment\n" + preset_text("smoke")
    assignment.rules_yaml = text
    # The preset also states settings; the assignment's agree with them (else saving refuses).
    for key in ("dataset", "mode", "max_epochs", "time_limit_seconds"):
        setattr(assignment, key, load_ruleset(text).metadata[key])
    assignment.save()
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["title"] = "Renamed"
    assert press(client, url, values, "save").status_code == 302
    fresh = Assignment.objects.get(pk=assignment.pk)
    assert fresh.title == "Renamed"
    assert fresh.rules_yaml == text and fresh.rules_version == 1
    assert not AuditEntry.objects.filter(action="rules.changed").exists()


def test_a_changed_rule_bumps_the_version_and_is_audited(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["rules-0-limit"] = "15000"
    response = press(client, url, values, "save")
    assert response.status_code == 302
    fresh = Assignment.objects.get(pk=assignment.pk)
    assert fresh.rules_version == 2
    assert load_ruleset(fresh.rules_yaml).rules[0].params["limit"] == 15000
    assert AuditEntry.objects.get(action="rules.changed").details["previous"] == RULES_YAML


def test_rules_from_the_form_are_evaluated_by_the_grading_core(client, instructor, course):
    url = reverse("assignment_create", args=[course.slug])
    values = page(login(client, instructor), url)
    values.update({"slug": "hw3", "title": "Homework 3"})
    for rule_id in ("max_params", "forbidden_layers", "min_receptive_field"):
        values["ruleset-add_rule"] = rule_id
        values = form_values(press(client, url, values, "add").content)
    values.update(
        {
            "rules-0-limit": "200",
            "rules-0-points": "2",
            "rules-1-layers": "Flatten MaxPooling2D",
            "rules-2-limit": "3",
            "rules-2-end_point": "conv",
        }
    )
    response = press(client, url, values, "save")
    assert response.status_code == 302, response.context["editor"].errors
    created = Assignment.objects.get(slug="hw3")
    assert created.rules_version == 1
    ruleset = load_ruleset(created.rules_yaml)
    assert ruleset.rules[1].params["layers"] == ["Flatten", "MaxPooling2D"]

    # The tiny model: conv 3x3 (4 filters: 112 parameters), pooling, dense (20): 132 in all.
    results = {r.id: r for r in evaluate_rules(ruleset, analyze(tiny_model_config()))}
    assert results["max_params"].passed and results["max_params"].measured == 132
    assert results["max_params"].points == 2
    assert results["forbidden_layers"].passed
    assert results["min_receptive_field"].passed and results["min_receptive_field"].measured == 3
    bigger = {r.id: r for r in evaluate_rules(ruleset, analyze(tiny_model_config(filters=16)))}
    assert bigger["max_params"].passed is False  # 448 + 68 = 516 parameters


def test_training_defaults_reach_the_grading_plan(client, instructor, course):
    from grader.grading.plan import GradingPlan

    url = reverse("assignment_create", args=[course.slug])
    values = page(login(client, instructor), url)
    values["ruleset-preset"] = "smoke"
    values = form_values(press(client, url, values, "preset").content)
    values["slug"] = "smoke-copy"
    assert press(client, url, values, "save").status_code == 302
    created = Assignment.objects.get(slug="smoke-copy")
    preset = load_preset("smoke")
    stored = load_ruleset(created.rules_yaml)
    assert stored.rules == preset.rules
    plan = GradingPlan.from_assignment(created)
    assert plan.training_defaults == preset.metadata["training"]
    assert stored.metadata["input_shape"] == [16, 16, 3] and stored.metadata["num_classes"] == 4


# --- presets, import, export -------------------------------------------------------------------


def test_a_preset_fills_the_rows_and_the_settings(client, instructor, course):
    url = reverse("assignment_create", args=[course.slug])
    values = page(login(client, instructor), url)
    assert row_count(values) == 0
    values["title"] = "My own title"
    values["ruleset-preset"] = "cifar10-dilated"
    response = press(client, url, values, "preset")
    values = form_values(response.content)
    preset = load_preset("cifar10-dilated")
    assert rule_ids(values) == [r.id for r in preset.rules]
    assert values["rules-3-layers"] == "MaxPooling2D"
    assert values["dataset"] == "cifar10" and values["max_epochs"] == "50"
    assert values["time_limit_seconds"] == "3600"
    assert values["title"] == "My own title"  # never overwritten
    assert values["ruleset-preset"] == ""  # applied: a later Save saves the rows
    assert "training:" in values["ruleset-metadata"] and "title" not in values["ruleset-metadata"]
    assert not Assignment.objects.filter(course=course).exists()


def test_save_with_a_preset_picked_fills_the_rows_first(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["ruleset-preset"] = "smoke"
    response = press(client, url, values, "save")
    assert response.status_code == 200
    assert rule_ids(form_values(response.content)) == [r.id for r in load_preset("smoke").rules]
    assert Assignment.objects.get(pk=assignment.pk).rules_version == 1
    response = press(client, url, form_values(response.content), "save")
    assert response.status_code == 302
    fresh = Assignment.objects.get(pk=assignment.pk)
    assert load_ruleset(fresh.rules_yaml).rules == load_preset("smoke").rules
    assert fresh.rules_version == 2


def test_export_import_round_trip_is_exact(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["rules-2-limit"] = "5, 4"
    values["rules-2-name"] = "rf_before_pooling"
    values["rules-1-points"] = "0.5"
    values["ruleset-metadata"] = "input_shape: [16, 16, 3]\nnum_classes: 4\n"
    response = press(client, url, values, "export")
    assert response.status_code == 200 and response["Content-Type"] == "application/yaml"
    assert response["Content-Disposition"] == 'attachment; filename="hw1-rules.yaml"'
    exported = response.content.decode()
    assert Assignment.objects.get(pk=assignment.pk).rules_version == 1  # export saves nothing

    # Import into a page whose rows are something else: the rows are replaced.
    fresh_values = page(client, url)
    fresh_values["ruleset-import_text"] = exported
    response = press(client, url, fresh_values, "import")
    imported = form_values(response.content)
    assert imported["ruleset-import_text"] == ""
    for key in ("rules-2-limit", "rules-2-name", "rules-1-points", "rules-0-limit"):
        assert imported[key] == values[key], key
    # Export again: the same text; save: the same rule set as the export.
    assert press(client, url, imported, "export").content.decode() == exported
    assert press(client, url, imported, "save").status_code == 302
    stored = Assignment.objects.get(pk=assignment.pk).rules_yaml
    assert load_ruleset(stored) == load_ruleset(exported)
    assert stored == exported


def test_import_from_an_uploaded_file_or_an_assignment_export(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    upload = io.BytesIO(preset_text("cifar10-separable").encode())
    upload.name = "rules.yaml"
    response = press(client, url, values, "import", **{"ruleset-import_file": upload})
    assert rule_ids(form_values(response.content)) == [
        r.id for r in load_preset("cifar10-separable").rules
    ]
    whole = client.get(reverse("assignment_export", args=[assignment.slug])).content.decode()
    values["ruleset-import_text"] = whole
    response = press(client, url, values, "import")
    assert rule_ids(form_values(response.content)) == [
        "max_params",
        "max_dropout",
        "min_receptive_field",
    ]


def test_an_invalid_import_changes_no_row_and_keeps_the_text(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["rules-0-limit"] = "12345"
    bad = "rules:\n  - id: max_params\n  - id: max_dropout\n    limit: high\n"
    values["ruleset-import_text"] = bad
    response = press(client, url, values, "import")
    [error] = response.context["editor"].errors
    assert error.startswith("Nothing imported: Rule 1 (`max_params`) is missing the required")
    again = form_values(response.content)
    assert again["ruleset-import_text"] == bad and again["rules-0-limit"] == "12345"
    # Save with the text still pending imports it first (again refused): never saved unseen.
    response = press(client, url, again, "save")
    assert response.status_code == 200 and response.context["editor"].errors
    assert Assignment.objects.get(pk=assignment.pk).rules_version == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n"
            + "".join(f"  - {{id: max_params, name: r{i}, limit: 5}}\n" for i in range(101)),
            "has 101 rules. Expected at most 100.",
        ),
        ("rules: []\n# " + "x" * 300_000 + "\n", "Expected at most 262,144 bytes."),
        ("", "The YAML is empty."),
    ],
)
def test_an_import_beyond_the_limits_is_refused(client, instructor, assignment, text, message):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    values["ruleset-import_text"] = text
    response = press(client, url, values, "import")
    [error] = response.context["editor"].errors
    assert error.startswith("Nothing imported") or "bytes" in error
    assert message in error
    assert row_count(form_values(response.content)) == 3


def test_a_post_without_the_rule_rows_saves_nothing(client, instructor, assignment):
    url = edit_url(assignment)
    values = page(login(client, instructor), url)
    settings_only = {k: v for k, v in values.items() if not k.startswith("rules-")}
    response = press(client, url, settings_only, "save")
    assert response.status_code == 200 and response.context["editor"].errors
    fresh = Assignment.objects.get(pk=assignment.pk)
    assert fresh.rules_yaml == RULES_YAML and fresh.rules_version == 1


def test_a_stored_rule_set_that_no_longer_loads_is_kept_for_fixing(client, instructor, assignment):
    Assignment.objects.filter(pk=assignment.pk).update(rules_yaml="rules:\n  - id: retired_rule\n")
    url = edit_url(assignment)
    response = login(client, instructor).get(url)
    assert "The stored rule set does not load" in response.content.decode()
    values = form_values(response.content)
    assert values["ruleset-import_text"] == "rules:\n  - id: retired_rule\n"
    assert press(client, url, values, "save").status_code == 200  # refused until fixed
    assert Assignment.objects.get(pk=assignment.pk).rules_yaml.endswith("retired_rule\n")


# --- who may use it ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["save", "export", "add", "import"])
def test_only_the_courses_instructors_may_post_the_form(
    client, instructor, other_instructor, student, assignment, action
):
    url = edit_url(assignment)
    values = page(login(Client(), instructor), url)
    values["rules-0-limit"] = "1"
    for outsider in (other_instructor, student):
        response = press(login(client, outsider), url, values, action)
        assert response.status_code == 404
    client.logout()
    assert press(client, url, values, action).status_code == 302  # to the login page
    fresh = Assignment.objects.get(pk=assignment.pk)
    assert fresh.rules_yaml == RULES_YAML and fresh.rules_version == 1
    create = reverse("assignment_create", args=[assignment.course.slug])
    assert press(login(client, other_instructor), create, values, action).status_code == 404


def test_the_form_needs_its_csrf_token(instructor, assignment):
    url = edit_url(assignment)
    client = Client(enforce_csrf_checks=True)
    client.force_login(instructor)
    response = client.get(url)
    values = form_values(response.content)
    assert values["csrfmiddlewaretoken"]
    token = values.pop("csrfmiddlewaretoken")
    values["rules-0-limit"] = "15000"
    assert press(client, url, values, "save").status_code == 403
    assert Assignment.objects.get(pk=assignment.pk).rules_version == 1
    assert press(client, url, {**values, "csrfmiddlewaretoken": token}, "save").status_code == 302
    assert Assignment.objects.get(pk=assignment.pk).rules_version == 2


def test_the_page_runs_no_inline_script(client, instructor, assignment):
    html = login(client, instructor).get(edit_url(assignment)).content.decode()
    scripts = html.split("<script")[1:]
    assert scripts and all(' src="/static/' in s.split(">")[0] for s in scripts)
    assert " style=" not in html and " onclick=" not in html and " onchange=" not in html
