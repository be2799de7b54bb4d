"""Output shapes of workforce objects, one per resource."""

from rest_framework import serializers

from .models import Annotator, AnnotatorSkill, AuditEvent, Certification, Domain, Member


class MemberOut(serializers.ModelSerializer):
    username = serializers.CharField(help_text="The name in this organization, as given.")
    login = serializers.CharField(source="user.username", help_text="What the person logs in as.")
    email = serializers.CharField(source="user.email")
    name = serializers.CharField(source="user.get_full_name")
    organization = serializers.CharField(source="organization.slug")

    class Meta:
        model = Member
        fields = ["id", "username", "login", "email", "name", "organization", "role", "is_active"]


class SkillOut(serializers.ModelSerializer):
    class Meta:
        model = AnnotatorSkill
        fields = ["skill", "level", "source", "set_at"]


class CertificationOut(serializers.ModelSerializer):
    annotator = serializers.IntegerField(source="annotator_id")
    annotator_username = serializers.CharField(source="annotator.member.user.username")
    domain = serializers.CharField(source="domain.slug")
    status = serializers.SerializerMethodField(help_text="Status now, counting expiry.")
    issued_by = serializers.CharField(
        source="issued_by.username", default=None, allow_null=True, help_text="None: by the system."
    )

    class Meta:
        model = Certification
        fields = [
            "id",
            "annotator",
            "annotator_username",
            "domain",
            "status",
            "issued_at",
            "expires_at",
            "issued_by",
            "evidence",
        ]

    def get_status(self, obj: Certification) -> str:
        return obj.state


class AnnotatorCertificationOut(serializers.ModelSerializer):
    domain = serializers.CharField(source="domain.slug")
    status = serializers.SerializerMethodField()

    class Meta:
        model = Certification
        fields = ["id", "domain", "status", "issued_at", "expires_at"]

    def get_status(self, obj: Certification) -> str:
        return obj.state


class AnnotatorOut(serializers.ModelSerializer):
    member = serializers.IntegerField(source="member_id")
    username = serializers.CharField(source="member.user.username")
    name = serializers.CharField(source="member.user.get_full_name")
    email = serializers.CharField(source="member.user.email")
    skills = SkillOut(many=True)
    certifications = AnnotatorCertificationOut(many=True)

    class Meta:
        model = Annotator
        fields = [
            "id",
            "member",
            "username",
            "name",
            "email",
            "status",
            "languages",
            "timezone",
            "weekly_capacity_hours",
            "max_concurrent_tasks",
            "skills",
            "certifications",
        ]


class DomainOut(serializers.ModelSerializer):
    class Meta:
        model = Domain
        fields = ["id", "slug", "name", "description"]


class AuditEventOut(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor.username", default="system", help_text="Username, or system."
    )
    annotator = serializers.IntegerField(source="annotator_id", allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "verb",
            "target_type",
            "target_id",
            "target_repr",
            "annotator",
            "before",
            "after",
            "reason",
        ]
