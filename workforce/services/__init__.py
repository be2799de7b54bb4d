"""Every write to the workforce registry. Each one validates, writes, and audits.

One module per noun; the services are re-exported here, so callers write
``services.member_create(...)``.
"""

from .annotators import (
    annotator_set_status,
    annotator_skill_set,
    annotator_update,
    validate_profile,
)
from .audit import audit_record, changed_fields, field_values, model_update
from .certifications import (
    certification_check,
    certification_issue,
    certification_renew,
    certification_set_status,
    certifications_expire,
)
from .domains import domain_check, domain_create, domain_delete, domain_update
from .members import (
    invitation_answer,
    invitation_create,
    member_check,
    member_create,
    member_join,
    member_login,
    member_role_change,
)
from .organizations import organization_create

__all__ = [
    "annotator_set_status",
    "annotator_skill_set",
    "annotator_update",
    "audit_record",
    "certification_check",
    "certification_issue",
    "certification_renew",
    "certification_set_status",
    "certifications_expire",
    "changed_fields",
    "domain_check",
    "domain_create",
    "domain_delete",
    "domain_update",
    "field_values",
    "invitation_answer",
    "invitation_create",
    "member_check",
    "member_create",
    "member_join",
    "member_login",
    "member_role_change",
    "model_update",
    "organization_create",
    "validate_profile",
]
