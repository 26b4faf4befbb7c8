"""The 'Supported layers' page: the grader's layer classes and the dataset's shapes."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from grader.layers import supported_classes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def test_the_assignment_page_links_the_supported_layers_page(client, student, assignment):
    client.force_login(student)
    page = client.get(reverse("assignment_detail", args=[assignment.slug])).content.decode()
    url = reverse("supported_layers", args=[assignment.slug])
    assert f'href="{url}" id="supported-layers-link">Supported layers<' in page


def test_the_page_lists_every_supported_class_and_the_dataset_shapes(client, student, assignment):
    client.force_login(student)
    response = client.get(reverse("supported_layers", args=[assignment.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    listed = re.findall(r"<li><code>([^<]+)</code></li>", html)
    assert listed == supported_classes()
    assert "<code>(16, 16, 3)</code>" in html  # the synthetic dataset's images
    assert "<code>4</code> units" in html


def test_the_page_is_for_the_assignment_s_users_only(client, student, other_course):
    from assignments.models import Assignment

    Assignment.objects.create(course=other_course, slug="secret", title="S", rules_yaml="rules: []")
    url = reverse("supported_layers", args=["secret"])
    assert client.get(url).status_code == 302  # login first
    client.force_login(student)
    assert client.get(url).status_code == 404


def test_the_page_says_what_layer_arguments_may_hold(client, student, assignment):
    from grader.layer_arguments import accepted_objects

    client.force_login(student)
    html = client.get(reverse("supported_layers", args=[assignment.slug])).content.decode()
    rows = re.findall(r"<tr><td><code>([^<]+)</code></td><td>([^<]+)</td></tr>", html)
    assert [argument for argument, _ in rows] == [a for a, _ in accepted_objects()]
    assert "Constant(0.1), never an array" in html
    assert "LeakyReLU" in dict(rows)["activation"]


def test_the_page_says_whether_frozen_layers_are_allowed(client, student, assignment):
    client.force_login(student)
    url = reverse("supported_layers", args=[assignment.slug])
    assert "Every layer trains: a layer or nested model with" in client.get(url).content.decode()

    assignment.rules_yaml = "allow_frozen_layers: true\n" + assignment.rules_yaml
    assignment.save()
    html = client.get(url).content.decode()
    assert "Frozen layers (<code>trainable=False</code>) are allowed" in html
