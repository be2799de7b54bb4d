"""Every model has an admin page that loads; the audit log cannot be changed there."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from tasks.services.claims import claim_next
from tests.helpers import image_rows, import_rows, make_project, staff
from workforce.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_every_model_of_ours_is_registered_and_its_pages_load(client, org):
    project = make_project(org)
    import_rows(project, image_rows(2))
    staff(project, org.annotator)
    claim_next(annotator=org.annotator)
    superuser = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456")
    client.force_login(superuser)
    ours = [m for m in admin.site._registry if m._meta.app_label in ("workforce", "tasks")]
    expected = [
        m
        for app in ("workforce", "tasks")
        for m in apps.get_app_config(app).get_models()
        if not m._meta.auto_created
    ]
    assert set(expected) <= set(ours)
    for model in ours:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert client.get(url).status_code == 200, url
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            assert client.get(change).status_code == 200, change


def test_audit_log_is_read_only_in_the_admin(client, org):
    superuser = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456")
    client.force_login(superuser)
    event = AuditEvent.objects.first()
    change = reverse("admin:workforce_auditevent_change", args=[event.pk])
    response = client.post(change, {"reason": "rewritten"})
    assert response.status_code == 403
    delete = reverse("admin:workforce_auditevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.reason == ""
