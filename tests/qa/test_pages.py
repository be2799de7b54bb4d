"""Who may open the role pages (``qa/pages.py``), and what the shells carry; the pages' own
behaviour is driven in Chromium in ``tests/browser/test_role_pages.py``."""

import json

import pytest
from django.test import Client

from tests.helpers import Org, make_project
from workforce import services
from workforce.models import Member, Role
from workforce.tenancy import SESSION_KEY

pytestmark = pytest.mark.django_db

ROLES = (Role.MANAGER, Role.QA_LEAD, Role.REVIEWER, Role.ANNOTATOR)


def client_for(org: Org, role: str) -> Client:
    client = Client()
    client.force_login(org.member(role).user)
    return client


def paths(project, annotator) -> dict[str, set[str]]:
    """Each page, and the roles that may open it."""
    return {
        "/work/": {Role.ANNOTATOR},
        "/qa/": {Role.MANAGER, Role.QA_LEAD},
        f"/qa/projects/{project.pk}/": {Role.MANAGER, Role.QA_LEAD},
        f"/qa/projects/{project.pk}/annotators/{annotator.pk}/": {Role.MANAGER, Role.QA_LEAD},
        "/staffing/": {Role.MANAGER},
    }


def test_each_page_opens_for_its_roles_answers_403_to_the_others_and_sends_strangers_to_log_in(
    org,
):
    project = make_project(org)
    for path, allowed in paths(project, org.annotator).items():
        for role in ROLES:
            status = client_for(org, role).get(path).status_code
            assert status == (200 if role in allowed else 403), (path, role)
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"


def test_another_organizations_project_or_annotator_is_not_found(org, other_org):
    mine, theirs = make_project(org), make_project(other_org)
    lead = client_for(org, Role.QA_LEAD)
    assert lead.get(f"/qa/projects/{theirs.pk}/").status_code == 404
    assert lead.get(f"/qa/projects/{theirs.pk}/annotators/{org.annotator.pk}/").status_code == 404
    path = f"/qa/projects/{mine.pk}/annotators/{other_org.annotator.pk}/"
    assert lead.get(path).status_code == 404


def test_the_shell_carries_its_configuration_as_data_and_names_as_escaped_text(org):
    project = make_project(org, name='</script><script>alert("x")</script>')
    response = client_for(org, Role.QA_LEAD).get(
        f"/qa/projects/{project.pk}/annotators/{org.annotator.pk}/"
    )
    html = response.content.decode()
    assert '<script>alert("x")' not in html
    start = html.index('<script id="page-config" type="application/json">') + len(
        '<script id="page-config" type="application/json">'
    )
    config = json.loads(html[start : html.index("</script>", start)])
    assert config == {
        "organization": "acme",
        "role": "qa_lead",
        "member": org.qa_lead.pk,
        "socket": f"/ws/orgs/acme/?project={project.pk}",
        "project": project.pk,
        "annotator": org.annotator.pk,
        "accuracy_target": project.accuracy_target,
        "can_undo": True,
    }
    manager = client_for(org, Role.MANAGER).get(
        f"/qa/projects/{project.pk}/annotators/{org.annotator.pk}/"
    )
    assert '"can_undo": false' in manager.content.decode()


def test_the_header_links_the_pages_of_the_members_role(org):
    def links(role):
        html = client_for(org, role).get("/").content.decode()
        nav = html[html.index('<nav aria-label="Pages">') : html.index("</nav>")]
        return [part.split('"')[0] for part in nav.split('href="')[1:]]

    assert links(Role.ANNOTATOR) == ["/work/", "/api/docs/"]
    assert links(Role.QA_LEAD) == ["/qa/", "/api/docs/"]
    assert links(Role.MANAGER) == ["/staffing/", "/qa/", "/api/docs/"]
    assert links(Role.REVIEWER) == ["/api/docs/"]


def test_a_person_in_two_organizations_chooses_where_the_pages_act(org, other_org):
    user = org.qa_lead.user
    services.member_join(
        organization=other_org.organization, user=user, role=Role.ANNOTATOR, actor=None
    )
    client = Client()
    client.force_login(user)
    # Until they choose, a page sends them to the start page, where they can.
    assert client.get("/work/")["Location"] == "/"

    assert client.post("/orgs/choose", {"organization": "globex"}).status_code == 302
    assert client.session[SESSION_KEY] == "globex"
    assert client.get("/work/").status_code == 200
    assert client.get("/qa/").status_code == 403
    # An organization they are not in is refused, and the choice stays.
    Org("initech")
    assert client.post("/orgs/choose", {"organization": "initech"}).status_code == 403
    assert client.session[SESSION_KEY] == "globex"
    # Only a local address is followed after the choice.
    response = client.post(
        "/orgs/choose", {"organization": "acme", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"
    assert client.get("/qa/").status_code == 200
    # Once the chosen membership ends, the pages act in the one left.
    Member.objects.filter(pk=org.qa_lead.pk).update(is_active=False)  # as the admin would
    assert client.get("/work/").status_code == 200
    assert SESSION_KEY not in client.session
