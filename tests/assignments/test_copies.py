"""Copied models found for the instructor (issue 13, part 7): groups of students whose counted
submissions are the same network (renamed, reformatted) or nearly, never genuinely different
ones; the side-by-side view of two layer tables."""

from __future__ import annotations

import copy
import json

import pytest
from django.urls import reverse

from assignments.models import Enrollment, Submission
from assignments.selectors.copies import copy_groups
from tests.grader.test_fingerprint import load, renamed
from tests.support.site_fixtures import make_submission, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def enrol(course, username: str, display: str):
    user = make_user(username)
    Enrollment.objects.create(course=course, user=user, display_name=display)
    return user


def hand_in(assignment, student, config, *, accuracy: float = 0.8, name: str = "model.json"):
    submission = make_submission(
        assignment, student, accuracy=accuracy, data=json.dumps(config, indent=2).encode()
    )
    Submission.objects.filter(pk=submission.pk).update(model_config=config, original_name=name)
    return submission


def one_dropout_changed(config):
    changed = copy.deepcopy(config)
    dropout = next(lay for lay in changed["config"]["layers"] if lay["class_name"] == "Dropout")
    dropout["config"]["rate"] = 0.05
    return changed


@pytest.fixture
def class_of_five(course, assignment, student):
    separable = load("cifar10_separable_reference.json")
    bob, carol, dave, erin = (
        enrol(course, name, name.capitalize()) for name in ("bob", "carol", "dave", "erin")
    )
    return {
        "alice": hand_in(assignment, student, separable),
        # Renamed layers and model, reformatted JSON: the same network.
        "bob": hand_in(assignment, bob, json.loads(json.dumps(renamed(separable), indent=1))),
        # One hyperparameter changed: one edit.
        "carol": hand_in(assignment, carol, one_dropout_changed(separable)),
        # Genuinely different networks of the same course.
        "dave": hand_in(assignment, dave, load("cifar10_dilated_reference.json")),
        "erin": hand_in(assignment, erin, load("smoke_separable.json")),
    }


def usernames(group) -> list[str]:
    return [member.username for member in group.members]


def test_renamed_copies_group_and_different_models_do_not(assignment, class_of_five):
    report = copy_groups(assignment)

    assert report.compared == 5 and report.unreadable == []
    assert [(g.match, usernames(g)) for g in report.groups] == [
        ("identical", ["alice", "bob"]),
        ("near", ["alice", "bob", "carol"]),
    ]
    near = report.groups[1]
    assert [p.distance for p in near.pairs] == [1]


def test_the_counted_submission_represents_each_student(assignment, student, class_of_five):
    # A later, weaker upload of another design does not replace alice's best one.
    hand_in(assignment, student, load("cifar10_dilated_reference.json"), accuracy=0.1)
    groups = copy_groups(assignment).groups
    assert usernames(groups[0]) == ["alice", "bob"]


def test_staff_submissions_are_left_out(assignment, instructor, class_of_five):
    hand_in(assignment, instructor, load("cifar10_separable_reference.json"))
    assert usernames(copy_groups(assignment).groups[0]) == ["alice", "bob"]


def test_the_page_lists_the_groups_with_links(client, instructor, assignment, class_of_five):
    client.force_login(instructor)
    html = client.get(reverse("assignment_copies", args=[assignment.slug])).content.decode()
    assert "Identical network: 2 students" in html
    assert "Nearly identical networks: 3 students" in html
    alice, carol = class_of_five["alice"].pk, class_of_five["carol"].pk
    diff = reverse("assignment_copies_diff", args=[assignment.slug, alice, carol])
    assert f'href="{diff}">#{alice:,} and #{carol:,}</a>: 1 edit apart' in html
    assert "dave" not in html and "erin" not in html


def test_the_side_by_side_view_pairs_layers_and_marks_the_change(
    client, instructor, assignment, class_of_five
):
    alice, bob = class_of_five["alice"], class_of_five["bob"]
    client.force_login(instructor)
    url = reverse("assignment_copies_diff", args=[assignment.slug, alice.pk, bob.pk])
    html = client.get(url).content.decode()
    assert "<strong>The same network</strong>" in html
    assert html.count('class="diff-equal"') == 31 and 'class="diff-change"' not in html
    # Each side shows its own file's names: `stem_conv` and its renamed copy.
    assert "<code>stem_conv</code>" in html and "<code>my_vnoc_mets</code>" in html

    carol = class_of_five["carol"]
    url = reverse("assignment_copies_diff", args=[assignment.slug, alice.pk, carol.pk])
    html = client.get(url).content.decode()
    assert "<strong>1 edit</strong>" in html and html.count('class="diff-change"') == 1
    assert "rate 0.1" in html and "rate 0.05" in html


def test_students_cannot_see_similar_models(client, student, assignment, class_of_five):
    client.force_login(student)
    assert client.get(reverse("assignment_copies", args=[assignment.slug])).status_code == 404
    alice, bob = class_of_five["alice"].pk, class_of_five["bob"].pk
    url = reverse("assignment_copies_diff", args=[assignment.slug, alice, bob])
    assert client.get(url).status_code == 404


def test_a_submission_of_another_assignment_is_not_compared(
    client, instructor, course, assignment, class_of_five
):
    from assignments.models import Assignment

    other = Assignment.objects.create(
        course=course, slug="hw2", title="HW 2", rules_yaml="rules: []"
    )
    client.force_login(instructor)
    url = reverse("assignment_copies_diff", args=[other.slug, class_of_five["alice"].pk, 1])
    assert client.get(url).status_code == 404
