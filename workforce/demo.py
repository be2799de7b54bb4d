"""A demo organization with people in every role, built through the real services."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from . import services
from .models import Annotator, Certification, Domain, Member, Organization, Role, SkillSource

DEMO_ORG = {"name": "Northwind Annotation", "slug": "northwind"}
DEMO_PASSWORD = "assay-demo-2026"

STAFF = [
    ("maria", Role.MANAGER, "Maria", "Lopez"),
    ("quentin", Role.QA_LEAD, "Quentin", "Adeyemi"),
    ("rhea", Role.REVIEWER, "Rhea", "Kowalski"),
]

DOMAINS = [
    ("medical-imaging", "Medical imaging", "Radiology and pathology images."),
    ("autonomous-driving", "Autonomous driving", "Street scenes, lidar and dash cameras."),
    ("legal", "Legal", "Contracts, filings and case law."),
]

# username, first, last, languages, timezone, skills {kind: level}, certified domains
ANNOTATORS = [
    ("ana", "Ana", "Silva", ["pt-BR", "en"], "America/Sao_Paulo",
     {"bbox": 4, "polygon": 3, "keypoints": 2}, ["autonomous-driving"]),
    ("bo", "Bo", "Chen", ["zh", "en"], "Asia/Shanghai",
     {"bbox": 5, "polygon": 5, "video_tracks": 4}, ["autonomous-driving", "medical-imaging"]),
    ("chidi", "Chidi", "Okafor", ["en", "yo"], "Africa/Lagos",
     {"ner": 4, "relations": 3, "entity_linking": 2, "classification": 5}, ["legal"]),
    ("dana", "Dana", "Weiss", ["de", "en"], "Europe/Berlin",
     {"classification": 3, "multilabel": 3, "ner": 2}, []),
    ("emil", "Emil", "Novak", ["cs", "en"], "Europe/Prague",
     {"bbox": 2, "video_events": 3, "video_tracks": 2}, ["medical-imaging"]),
]  # fmt: skip


@transaction.atomic
def seed_demo() -> tuple[Organization, list[tuple[str, str]]]:
    """Create the demo organization if missing; return it and its logins (login, role).

    A member logs in as ``<username>@northwind`` (``maria@northwind``); the superuser as
    ``admin``.
    """
    organization = Organization.objects.filter(slug=DEMO_ORG["slug"]).first()
    if organization is None:
        organization = services.organization_create(**DEMO_ORG)
    existing = {
        member.username
        for member in Member.objects.filter(organization=organization).select_related(
            "user", "organization"
        )
    }
    for username, role, first, last in STAFF:
        if username not in existing:
            services.member_create(
                organization=organization,
                username=username,
                role=role,
                actor=None,
                email=f"{username}@northwind.example",
                password=DEMO_PASSWORD,
                first_name=first,
                last_name=last,
            )
    qa_lead = Member.objects.get(organization=organization, role=Role.QA_LEAD).user
    domains = {}
    for slug, name, description in DOMAINS:
        domain = Domain.objects.filter(organization=organization, slug=slug).first()
        domains[slug] = domain or services.domain_create(
            organization=organization, slug=slug, name=name, description=description, actor=None
        )
    for username, first, last, languages, tz, skills, certified in ANNOTATORS:
        if username in existing:
            continue
        member = services.member_create(
            organization=organization,
            username=username,
            role=Role.ANNOTATOR,
            actor=None,
            email=f"{username}@northwind.example",
            password=DEMO_PASSWORD,
            first_name=first,
            last_name=last,
            profile={"languages": languages, "timezone": tz, "weekly_capacity_hours": 35},
        )
        annotator = Annotator.objects.get(member=member)
        for kind, level in skills.items():
            services.annotator_skill_set(
                annotator=annotator,
                skill=kind,
                level=level,
                source=SkillSource.EXAM,
                actor=qa_lead,
                reason="Demo placement exam",
            )
        for slug in certified:
            if not Certification.objects.filter(annotator=annotator, domain=domains[slug]).exists():
                services.certification_issue(
                    annotator=annotator,
                    domain=domains[slug],
                    issued_by=qa_lead,
                    evidence="Demo certification exam passed",
                    expires_at=timezone.now() + timedelta(days=365),
                )
    User = get_user_model()
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@northwind.example", DEMO_PASSWORD)
    # What each person types to log in: a member's account carries the organization's slug.
    logins = [
        ("admin", "superuser (Django admin)"),
        *list(
            Member.objects.filter(organization=organization)
            .order_by("id")
            .values_list("user__username", "role")
        ),
    ]
    return organization, logins
