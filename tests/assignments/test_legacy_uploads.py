"""Uploads students bring from notebooks and Keras 1/2 tutorials, through the API and the pages."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from assignments.models import Submission

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "legacy"


def api(user) -> APIClient:
    client = APIClient()
    token = Token.objects.get_or_create(user=user)[0].key
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def submit(client: APIClient, slug: str, name: str, data: bytes):
    handle = io.BytesIO(data)
    handle.name = name
    return client.post(
        f"/api/v1/assignments/{slug}/submissions/", {"file": handle}, format="multipart"
    )


def page(user, submission: Submission) -> str:
    client = Client()
    client.force_login(user)
    return client.get(reverse("submission_detail", args=[submission.pk])).content.decode()


def test_a_notebook_upload_is_accepted_and_its_page_shows_the_cells_used(student, assignment):
    data = (LEGACY / "notebook_smoke.ipynb").read_bytes()
    response = submit(api(student), assignment.slug, "Assignment 2.ipynb", data)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "ipynb" and body["original_name"] == "Assignment 2.ipynb"
    submission = Submission.objects.get(pk=body["id"])
    assert submission.file.name.endswith(".ipynb")  # the pipeline reads its kind from this
    html = page(student, submission)
    assert 'id="notebook-cells"' in html
    assert (
        "Built from the top-level imports and definitions of cells 3, 6, 7 (8 code cells in "
        "<code>Assignment 2.ipynb</code>" in html
    )
    for used in (3, 6, 7):
        assert f'<tr class="cell-used" data-cell="{used}">' in html
    for unused in (2, 4, 8, 9, 10):
        assert f'<tr class="cell-unused" data-cell="{unused}">' in html
    assert "<code>def build_model</code>" in html
    assert "a `%%bash` cell" not in html and "a <code>%%bash</code> cell (not Python)" in html
    assert "(a top-level call, not run)" in html


def test_a_notebook_without_build_model_is_refused_with_the_words_of_a_py_file(student, assignment):
    client = api(student)
    notebook = submit(
        client,
        assignment.slug,
        "nb.ipynb",
        (LEGACY / "notebook_without_build_model.ipynb").read_bytes(),
    )
    module = submit(client, assignment.slug, "nb.py", b"def make_model():\n    pass\n")

    assert notebook.status_code == module.status_code == 400
    notebook_message = notebook.json()["error"]["message"]
    module_message = module.json()["error"]["message"]
    assert notebook_message.startswith(module_message.replace("nb.py", "nb.ipynb"))
    assert "cell 5: not valid Python: expected ':' at line 1" in notebook_message
    assert not Submission.objects.exists()


def test_a_py_file_with_a_notebook_magic_is_refused_naming_the_line(student, assignment):
    source = b"import keras\n%matplotlib inline\ndef build_model(a, b):\n    pass\n"
    response = submit(api(student), assignment.slug, "export.py", source)

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "is not valid Python" in message
    assert "Line 2 (`%matplotlib inline`) is an IPython magic" in message
    assert "upload the notebook itself (`.ipynb`)" in message


def test_a_keras_2_model_json_is_accepted(student, assignment):
    data = (LEGACY / "keras2_4_smoke_sequential.json").read_bytes()
    response = submit(api(student), assignment.slug, "model.json", data)
    assert response.status_code == 201, response.content


def test_a_keras_1_model_json_is_refused_with_how_to_re_export(student, assignment):
    data = (LEGACY / "keras1_sequential.json").read_bytes()
    response = submit(api(student), assignment.slug, "model.json", data)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "written by Keras 1.2.2" in message and "upload `model.to_json()`" in message


def test_an_h5_model_file_is_refused_with_how_to_re_export(student, assignment):
    response = submit(api(student), assignment.slug, "model.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "has extension `.h5`" in message
    assert "keras.models.load_model('model.h5', compile=False).save('model.keras')" in message


def test_the_page_of_a_keras_1_module_lists_the_notes_on_its_code(student, assignment):
    data = (LEGACY / "keras1_conv_strides.py").read_bytes()
    response = submit(api(student), assignment.slug, "model.py", data)
    assert response.status_code == 201, response.content
    html = page(student, Submission.objects.get(pk=response.json()["id"]))
    assert 'id="source-notes"' in html
    assert "<strong>line 13</strong>" in html and "<strong>line 14</strong>" in html
    assert "the third positional argument is <code>strides</code>" in html
