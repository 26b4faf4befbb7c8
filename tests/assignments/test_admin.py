"""The Django admin: every model is registered and its pages render; the audit trail is
read-only."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from assignments.models import AuditEntry, EpochMetric
from tests.support.site_fixtures import make_submission, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_dir")]


def test_every_model_is_registered():
    models = apps.get_app_config("assignments").get_models()
    assert {m.__name__ for m in models} <= {m.__name__ for m in admin.site._registry}


def test_changelists_and_change_pages_render(client, assignment, student):
    submission = make_submission(assignment, student, accuracy=0.5, log="<b>log</b>")
    EpochMetric.objects.create(submission=submission, epoch=1, loss=1.0)
    AuditEntry.objects.create(action="score.override", assignment=assignment, details={})
    from django.utils import timezone

    from assignments.services.worker_presence import record_worker

    record_worker(node="cpu@host", queues=["preflight"], sandbox="bwrap", gpus=[],
                  started_at=timezone.now())  # fmt: skip
    client.force_login(make_user("root", superuser=True))
    for model in apps.get_app_config("assignments").get_models():
        opts = model._meta
        assert (
            client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")).status_code
            == 200
        )
        obj = model.objects.first()
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        assert client.get(url).status_code == 200, model


def test_audit_entries_cannot_be_edited_or_deleted(client, assignment):
    entry = AuditEntry.objects.create(action="score.override", assignment=assignment, details={})
    client.force_login(make_user("root", superuser=True))
    url = reverse("admin:assignments_auditentry_delete", args=[entry.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
