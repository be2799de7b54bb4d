"""Workforce REST API: thin views that parse, check the role, call a service, serialize."""

from collections.abc import Mapping

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import AuthenticationFailed, Throttled, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import validated
from config.errors import FieldErrors, ValidationFailed
from config.openapi import error_response
from config.serializers import KnownFieldsOnly

from . import selectors, services, throttles
from .api_base import ORGANIZATION_PARAMETER, OrganizationApi
from .filters import AnnotatorFilter, AuditEventFilter, CertificationFilter
from .models import MAX_SKILL_LEVEL, Role, Skill, SkillSource
from .serializers import (
    AnnotatorOut,
    AuditEventOut,
    CertificationOut,
    DomainOut,
    MemberOut,
    SkillOut,
)
from .services.annotators import LANGUAGE_RE
from .tenancy import ANYONE, MANAGER, QA_LEAD, STAFF


class TokenCreateApi(APIView):
    """Exchange a login and password for an API token.

    A wrong login or password answers 401; a missing one, 400 naming it. Wrong passwords are
    throttled per address and per account (``workforce.throttles``): past the budget the answer
    is 429 with ``Retry-After``, and no password is checked.
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            401: error_response("The login or password is wrong (`authentication_failed`)."),
            429: error_response(
                "Too many failed attempts from this address or for this login (`throttled`); "
                "retry after `Retry-After`. No password was checked."
            ),
        },
        examples=[OpenApiExample("Login", value={"username": "qa@acme", "password": "secret"})],
        tags=["auth"],
    )
    def post(self, request):
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        fields = request.data if isinstance(request.data, Mapping) else {}
        username, password = fields.get("username"), fields.get("password")
        if not (username and password):
            # No password to check: the serializer names what is missing, at no cost.
            serializer.is_valid(raise_exception=True)
        try:
            with throttles.password_check(request, str(username)) as attempt:
                if serializer.is_valid():
                    attempt.succeeded()
        except throttles.TooManyAttempts as exc:
            raise Throttled(wait=exc.wait, detail="Too many failed attempts.") from None
        if _credentials_refused(serializer.errors):
            raise AuthenticationFailed("Unable to log in with the login and password given.")
        if serializer.errors:
            raise ValidationError(serializer.errors)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})

    def get_authenticate_header(self, request) -> str:
        # A 401 must carry a challenge (RFC 9110); the token this endpoint hands out is the
        # scheme the rest of the API reads.
        return TokenAuthentication.keyword


def _credentials_refused(errors) -> bool:
    """Tell whether ``AuthTokenSerializer`` refused the login and password themselves, as
    opposed to a field it could not read."""
    return any(
        getattr(detail, "code", None) == "authorization"
        for detail in errors.get("non_field_errors", ())
    )


class ProfileFields(serializers.Serializer):
    """An annotator's working profile, with the rules services.validate_profile applies."""

    languages = serializers.ListField(
        child=serializers.RegexField(
            LANGUAGE_RE.pattern,
            help_text="e.g. en, pt-BR",
            error_messages={"invalid": "Not a language code such as 'en' or 'pt-BR'."},
        ),
        required=False,
    )
    # Not an enum of the IANA names: Etc/GMT+0, Etc/GMT-0 and GMT0 are one identifier to a
    # generated client, which then fails to build.
    timezone = serializers.CharField(
        required=False, max_length=64, help_text="An IANA time zone such as Europe/Berlin."
    )
    weekly_capacity_hours = serializers.IntegerField(required=False, min_value=0, max_value=168)
    max_concurrent_tasks = serializers.IntegerField(required=False, min_value=1, max_value=1000)


class MeApi(APIView):
    """The current user and every organization they belong to."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "id": serializers.IntegerField(),
                "username": serializers.CharField(),
                "memberships": MemberOut(many=True),
            },
        ),
        tags=["auth"],
    )
    def get(self, request):
        memberships = selectors.memberships_of(user=request.user)
        return Response(
            {
                "id": request.user.pk,
                "username": request.user.get_username(),
                "memberships": MemberOut(memberships, many=True).data,
            }
        )


@extend_schema_view(
    get=extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["people"]),
    post=extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["people"]),
)
class MemberListApi(OrganizationApi):
    roles = {"GET": ANYONE, "POST": MANAGER}

    class MemberCreateInput(ProfileFields):
        username = serializers.RegexField(
            r"^[\w.+-]+$",
            max_length=150,
            help_text="Logs in as <username>@<organization slug>; letters, digits, . + - _.",
        )
        role = serializers.ChoiceField(choices=Role.choices)
        # No default: the schema would offer "", which is no email (member_create's default).
        email = serializers.EmailField(required=False)
        password = serializers.CharField(required=False, write_only=True, min_length=8)
        first_name = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=150
        )
        last_name = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=150
        )

    @extend_schema(responses=MemberOut(many=True))
    def get(self, request):
        return self.paginated(selectors.member_list(member=self.member), MemberOut)

    @extend_schema(
        request=MemberCreateInput,
        responses={
            201: MemberOut,
            409: error_response("The username is a member already (`already_member`)."),
        },
        examples=[
            OpenApiExample(
                "New annotator",
                value={
                    "username": "ana",
                    "role": "annotator",
                    "email": "ana@example.com",
                    "languages": ["en", "pt-BR"],
                    "timezone": "America/Sao_Paulo",
                    "weekly_capacity_hours": 30,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        organization = self.member.organization
        profile_keys = ("languages", "timezone", "weekly_capacity_hours", "max_concurrent_tasks")
        fields = validated(
            self.MemberCreateInput(data=request.data),
            lambda passed: services.member_check(
                organization=organization,
                role=passed.get("role"),
                username=passed.get("username"),
                profile={key: passed[key] for key in profile_keys if key in passed},
            ),
        )
        profile = {key: fields.pop(key) for key in profile_keys if key in fields}
        member = services.member_create(
            organization=organization, actor=request.user, profile=profile, **fields
        )
        return Response(MemberOut(member).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["people"])
class MemberDetailApi(OrganizationApi):
    """A member of the organization. ``PATCH`` changes their role, audited.

    Leases they hold in a role they leave end at once. The last active manager keeps the role
    (409). Becoming an annotator gives them a working profile if they had none.
    """

    roles = {"GET": ANYONE, "PATCH": MANAGER}

    class MemberUpdateInput(KnownFieldsOnly):
        # Optional as in any PATCH: without it nothing changes.
        role = serializers.ChoiceField(choices=Role.choices, required=False)
        reason = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=2000
        )

    @extend_schema(responses=MemberOut)
    def get(self, request, pk: int):
        member = get_object_or_404(selectors.member_list(member=self.member), pk=pk)
        return Response(MemberOut(member).data)

    @extend_schema(
        request=MemberUpdateInput,
        responses={
            200: MemberOut,
            409: error_response(
                "The organization's last manager keeps the role (`invalid_status`)."
            ),
        },
        examples=[OpenApiExample("Promote", value={"role": "qa_lead", "reason": "New QA lead"})],
    )
    def patch(self, request, pk: int):
        member = get_object_or_404(selectors.member_list(member=self.member), pk=pk)
        data = self.MemberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        if "role" in data.validated_data:
            services.member_role_change(member=member, actor=request.user, **data.validated_data)
        member = get_object_or_404(selectors.member_list(member=self.member), pk=pk)
        return Response(MemberOut(member).data)


class InvitationOut(serializers.Serializer):
    id = serializers.IntegerField()
    organization = serializers.CharField(source="organization.slug")
    login = serializers.CharField()
    role = serializers.CharField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["people"])
class InvitationListApi(OrganizationApi):
    """Invite the holder of a login into the organization; they accept or decline it.

    The answer is the same whether the login exists or not: nothing outside the organization is
    looked up.
    """

    roles = {"GET": MANAGER, "POST": MANAGER}

    class InvitationCreateInput(serializers.Serializer):
        login = serializers.RegexField(
            r"^[\w.@+-]+$", max_length=150, help_text="The login, e.g. alice@globex."
        )
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(responses=InvitationOut(many=True))
    def get(self, request):
        return self.paginated(selectors.invitation_list(member=self.member), InvitationOut)

    @extend_schema(
        request=InvitationCreateInput,
        responses={
            201: InvitationOut,
            409: error_response("The login has an open invitation or is a member already."),
        },
        examples=[OpenApiExample("Invite", value={"login": "ana@globex", "role": "annotator"})],
    )
    def post(self, request):
        data = self.InvitationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            organization=self.member.organization, actor=request.user, **data.validated_data
        )
        return Response(InvitationOut(invitation).data, status=status.HTTP_201_CREATED)


class MyInvitationListApi(APIView):
    """The open invitations addressed to the current user's login."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=InvitationOut(many=True), tags=["people"])
    def get(self, request):
        invitations = selectors.invitations_for(user=request.user)
        return Response(InvitationOut(invitations, many=True).data)


def invitation_answer_api(accept: bool) -> type[APIView]:
    """Build the view that accepts or declines one of the current user's invitations."""

    @extend_schema(
        request=None,
        responses={
            # Accepting answers the new membership; declining answers nothing.
            **({200: MemberOut} if accept else {204: None}),
            409: error_response(
                "The invitation is not open any more (`invalid_status`), or you are a member "
                "already (`already_member`)."
            ),
        },
        tags=["people"],
        summary="Accept an invitation" if accept else "Decline an invitation",
    )
    def post(self, request, pk: int):
        invitation = get_object_or_404(selectors.invitations_for(user=request.user), pk=pk)
        member = services.invitation_answer(invitation=invitation, user=request.user, accept=accept)
        if member is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(MemberOut(member).data)

    name = "InvitationAcceptApi" if accept else "InvitationDeclineApi"
    return type(name, (APIView,), {"permission_classes": [IsAuthenticated], "post": post})


InvitationAcceptApi = invitation_answer_api(accept=True)
InvitationDeclineApi = invitation_answer_api(accept=False)


class SkillListApi(OrganizationApi):
    """The skills an annotator can hold: one per annotation kind."""

    roles = {"GET": ANYONE}
    pagination_class = None  # one per kind: the whole list at once

    @extend_schema(
        parameters=[ORGANIZATION_PARAMETER],
        responses=inline_serializer(
            "Skill",
            {
                "key": serializers.CharField(),
                "name": serializers.CharField(),
                "levels": serializers.ListField(child=serializers.IntegerField()),
            },
            many=True,
        ),
        tags=["skills"],
    )
    def get(self, request):
        return Response(
            [
                {"key": key, "name": label, "levels": list(range(MAX_SKILL_LEVEL + 1))}
                for key, label in Skill.choices
            ]
        )


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["annotators"])
class AnnotatorListApi(OrganizationApi):
    """Annotators, filterable by skill and level, active certification, status and language.

    Annotators and reviewers see only themselves.
    """

    roles = {"GET": ANYONE}
    filterset_class = AnnotatorFilter

    @extend_schema(responses=AnnotatorOut(many=True), filters=True)
    def get(self, request):
        qs = self.filtered(selectors.annotator_list(member=self.member))
        return self.paginated(qs, AnnotatorOut)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["annotators"])
class AnnotatorDetailApi(OrganizationApi):
    roles = {"GET": ANYONE, "PATCH": MANAGER}

    class AnnotatorUpdateInput(KnownFieldsOnly, ProfileFields):
        reason = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(responses=AnnotatorOut)
    def get(self, request, pk: int):
        annotator = selectors.annotator_get(member=self.member, annotator_id=pk)
        return Response(AnnotatorOut(annotator).data)

    @extend_schema(request=AnnotatorUpdateInput, responses=AnnotatorOut)
    def patch(self, request, pk: int):
        annotator = selectors.annotator_get(member=self.member, annotator_id=pk)
        fields = validated(
            self.AnnotatorUpdateInput(data=request.data, partial=True),
            services.validate_profile,
        )
        services.annotator_update(annotator=annotator, actor=request.user, **fields)
        return Response(
            AnnotatorOut(selectors.annotator_get(member=self.member, annotator_id=pk)).data
        )


# Some character that is not white space, by Python's reckoning (what the services strip) and by
# JSON Schema's (ECMA-262), which differ: the class names both sets, so both read it alike.
VISIBLE = r"[^\s\x1c-\x1f\x85\ufeff]"


class ReasonInput(serializers.Serializer):
    reason = serializers.RegexField(
        VISIBLE, max_length=2000, help_text="Why; the audit log keeps it. Not only white space."
    )


def annotator_status_api(action: str, allowed: tuple[str, ...]) -> type[OrganizationApi]:
    """Build the view for one annotator status action (suspend, reinstate, offboard)."""

    @extend_schema(
        parameters=[ORGANIZATION_PARAMETER],
        request=ReasonInput,
        responses={
            200: AnnotatorOut,
            409: error_response(
                f"The annotator's status does not allow {action} (`invalid_status`)."
            ),
        },
        tags=["annotators"],
        summary=f"{action.capitalize()} an annotator",
        examples=[OpenApiExample("Reason", value={"reason": "Gold accuracy 0.62 over 20 tasks"})],
    )
    def post(self, request, pk: int):
        annotator = selectors.annotator_get(member=self.member, annotator_id=pk)
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.annotator_set_status(
            annotator=annotator, action=action, actor=request.user, **data.validated_data
        )
        return Response(
            AnnotatorOut(selectors.annotator_get(member=self.member, annotator_id=pk)).data
        )

    name = f"Annotator{action.capitalize()}Api"
    return type(name, (OrganizationApi,), {"roles": {"POST": allowed}, "post": post})


AnnotatorSuspendApi = annotator_status_api("suspend", STAFF)
AnnotatorReinstateApi = annotator_status_api("reinstate", STAFF)
AnnotatorOffboardApi = annotator_status_api("offboard", MANAGER)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["annotators"])
class AnnotatorSkillApi(OrganizationApi):
    """Set one skill level of an annotator (manual source unless said otherwise)."""

    roles = {"PUT": STAFF}

    class AnnotatorSkillInput(serializers.Serializer):
        level = serializers.IntegerField(min_value=0, max_value=MAX_SKILL_LEVEL)
        source = serializers.ChoiceField(choices=SkillSource.choices, default=SkillSource.MANUAL)
        reason = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(
        request=AnnotatorSkillInput,
        responses=SkillOut,
        examples=[OpenApiExample("Promote", value={"level": 3, "reason": "Passed bbox exam"})],
    )
    def put(self, request, pk: int, skill: str):
        annotator = selectors.annotator_get(member=self.member, annotator_id=pk)
        data = self.AnnotatorSkillInput(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.annotator_skill_set(
            annotator=annotator, skill=skill, actor=request.user, **data.validated_data
        )
        return Response(SkillOut(row).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["domains"])
class DomainListApi(OrganizationApi):
    roles = {"GET": ANYONE, "POST": MANAGER}

    class DomainCreateInput(serializers.Serializer):
        slug = serializers.SlugField(max_length=64)
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(responses=DomainOut(many=True))
    def get(self, request):
        return self.paginated(selectors.domain_list(member=self.member), DomainOut)

    @extend_schema(
        request=DomainCreateInput,
        responses={201: DomainOut},
        examples=[OpenApiExample("Domain", value={"slug": "medical-imaging", "name": "Medical"})],
    )
    def post(self, request):
        organization = self.member.organization
        fields = validated(
            self.DomainCreateInput(data=request.data),
            lambda passed: services.domain_check(
                organization=organization, slug=passed.get("slug")
            ),
        )
        domain = services.domain_create(organization=organization, actor=request.user, **fields)
        return Response(DomainOut(domain).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["domains"])
class DomainDetailApi(OrganizationApi):
    roles = {"GET": ANYONE, "PATCH": MANAGER, "DELETE": MANAGER}

    class DomainUpdateInput(KnownFieldsOnly):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(responses=DomainOut)
    def get(self, request, pk: int):
        return Response(DomainOut(selectors.domain_get(member=self.member, domain_id=pk)).data)

    @extend_schema(request=DomainUpdateInput, responses=DomainOut)
    def patch(self, request, pk: int):
        domain = selectors.domain_get(member=self.member, domain_id=pk)
        data = self.DomainUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        domain = services.domain_update(domain=domain, actor=request.user, **data.validated_data)
        return Response(DomainOut(domain).data)

    @extend_schema(
        responses={
            204: None,
            409: error_response(
                "Someone was certified in the domain, or a project requires it (`in_use`)."
            ),
        }
    )
    def delete(self, request, pk: int):
        domain = selectors.domain_get(member=self.member, domain_id=pk)
        services.domain_delete(domain=domain, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["certifications"])
class CertificationListApi(OrganizationApi):
    """Certifications; ``status`` is as it stands now, so a lapsed one reads ``expired``."""

    roles = {"GET": ANYONE, "POST": QA_LEAD}
    filterset_class = CertificationFilter

    class CertificationIssueInput(serializers.Serializer):
        annotator = serializers.IntegerField()
        domain = serializers.SlugField(help_text="Domain slug.")
        evidence = serializers.CharField(max_length=5000)
        expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        reason = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(responses=CertificationOut(many=True))
    def get(self, request):
        qs = self.filtered(selectors.certification_list(member=self.member))
        return self.paginated(qs, CertificationOut)

    @extend_schema(
        request=CertificationIssueInput,
        responses={
            201: CertificationOut,
            409: error_response(
                "The annotator holds a certification in force or suspended in the domain "
                "(`already_certified`)."
            ),
        },
        examples=[
            OpenApiExample(
                "Issue",
                value={
                    "annotator": 12,
                    "domain": "medical-imaging",
                    "evidence": "Exam MI-3 passed with 0.94",
                    "expires_at": "2027-06-30T00:00:00Z",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        found: dict = {}

        def check(fields: dict) -> None:
            # The annotator and domain are looked up here; the rest is the service's to judge.
            problems = FieldErrors()
            if "annotator" in fields:
                with problems.collect():
                    found["annotator"] = _field_lookup(
                        "annotator",
                        lambda: selectors.annotator_get(
                            member=self.member, annotator_id=fields["annotator"]
                        ),
                    )
            if "domain" in fields:
                with problems.collect():
                    found["domain"] = _field_lookup(
                        "domain",
                        lambda: selectors.domain_list(member=self.member).get(
                            slug=fields["domain"]
                        ),
                    )
            with problems.collect():
                services.certification_check(
                    evidence=fields.get("evidence"), expires_at=fields.get("expires_at")
                )
            problems.raise_if_any("Invalid certification.")

        fields = validated(self.CertificationIssueInput(data=request.data), check)
        check(fields)
        certification = services.certification_issue(
            annotator=found["annotator"],
            domain=found["domain"],
            issued_by=request.user,
            evidence=fields["evidence"],
            expires_at=fields["expires_at"],
            reason=fields["reason"],
        )
        return Response(
            CertificationOut(
                selectors.certification_get(member=self.member, certification_id=certification.pk)
            ).data,
            status=status.HTTP_201_CREATED,
        )


def _field_lookup(field: str, lookup):
    """Resolve an id or slug given in the body; an unknown one is a 400 naming the field."""
    try:
        return lookup()
    except (ObjectDoesNotExist, Http404) as exc:
        raise ValidationFailed(f"Unknown {field}.", fields={field: ["Not found."]}) from exc


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["certifications"])
class CertificationDetailApi(OrganizationApi):
    roles = {"GET": ANYONE}

    @extend_schema(responses=CertificationOut)
    def get(self, request, pk: int):
        certification = selectors.certification_get(member=self.member, certification_id=pk)
        return Response(CertificationOut(certification).data)


def certification_status_api(action: str) -> type[OrganizationApi]:
    """Build the view for one certification status action (suspend, reinstate, revoke)."""

    @extend_schema(
        parameters=[ORGANIZATION_PARAMETER],
        request=ReasonInput,
        responses={
            200: CertificationOut,
            409: error_response(
                f"The certification's status does not allow {action} (`invalid_status`), or it "
                "expired and needs renewing (`certification_expired`)."
            ),
        },
        tags=["certifications"],
        summary=f"{action.capitalize()} a certification",
    )
    def post(self, request, pk: int):
        certification = selectors.certification_get(member=self.member, certification_id=pk)
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.certification_set_status(
            certification=certification, action=action, actor=request.user, **data.validated_data
        )
        certification = selectors.certification_get(member=self.member, certification_id=pk)
        return Response(CertificationOut(certification).data)

    name = f"Certification{action.capitalize()}Api"
    return type(name, (OrganizationApi,), {"roles": {"POST": QA_LEAD}, "post": post})


CertificationSuspendApi = certification_status_api("suspend")
CertificationReinstateApi = certification_status_api("reinstate")
CertificationRevokeApi = certification_status_api("revoke")


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["certifications"])
class CertificationRenewApi(OrganizationApi):
    roles = {"POST": QA_LEAD}

    class CertificationRenewInput(serializers.Serializer):
        expires_at = serializers.DateTimeField(allow_null=True)
        evidence = serializers.CharField(required=False, default="", allow_blank=True)
        reason = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(
        request=CertificationRenewInput,
        responses={
            200: CertificationOut,
            409: error_response(
                "A revoked certification cannot be renewed (`certification_revoked`)."
            ),
        },
        examples=[OpenApiExample("Renew", value={"expires_at": "2027-12-31T00:00:00Z"})],
    )
    def post(self, request, pk: int):
        certification = selectors.certification_get(member=self.member, certification_id=pk)
        data = self.CertificationRenewInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.certification_renew(
            certification=certification, actor=request.user, **data.validated_data
        )
        certification = selectors.certification_get(member=self.member, certification_id=pk)
        return Response(CertificationOut(certification).data)


@extend_schema(parameters=[ORGANIZATION_PARAMETER], tags=["audit"])
class AuditEventListApi(OrganizationApi):
    """The audit log, newest first. Append-only: there is no endpoint that changes it."""

    roles = {"GET": STAFF}
    filterset_class = AuditEventFilter

    @extend_schema(responses=AuditEventOut(many=True))
    def get(self, request):
        qs = self.filtered(selectors.audit_event_list(member=self.member))
        return self.paginated(qs, AuditEventOut)
