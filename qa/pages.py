"""The pages the three roles work in: the annotator's queue, the QA lead's live dashboard and
drill-down, and the manager's staffing board.

Each view checks who may open it and renders a shell; the shell's ES module
(``qa/static/qa/``) reads and writes through the REST API with the browser's session, and
listens to the live socket. No figure is worked out here: the pages show what the API and the
socket say, so that a page and an API client never disagree.

A page is for the roles listed with it: someone logged out is sent to the login form, a member
of another role answers 403, and a project or annotator of another organization 404, as the
API does.
"""

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from config.errors import NotFound, ValidationFailed
from tasks.selectors import project_get, project_list
from workforce.models import Member, Role
from workforce.selectors import annotator_get, memberships_of
from workforce.tenancy import ANNOTATOR, QA_LEAD, SESSION_KEY, STAFF, request_member

MANAGER_ONLY = (Role.MANAGER,)


def page_member(request: HttpRequest) -> Member | None:
    """The member a page acts as, or None when the user must first choose an organization
    (several memberships and none chosen) or has none."""
    try:
        return request_member(request)
    except NotFound:
        # The organization chosen earlier is no longer theirs: forget it, and fall back to
        # their one membership if that is all they have.
        if request.session.pop(SESSION_KEY, None) is not None:
            return page_member(request)
        return None
    except ValidationFailed:
        return None


# The pages each role works in, by URL name, as the header links them.
ROLE_PAGES = {
    Role.ANNOTATOR: [("Work", "page-work")],
    Role.QA_LEAD: [("Quality", "page-quality")],
    Role.MANAGER: [("Staffing", "page-staffing"), ("Quality", "page-quality")],
}


def navigation(request: HttpRequest) -> list[dict]:
    """The pages the request's member may open (``title``, ``path``, ``current``)."""
    member = page_member(request) if request.user.is_authenticated else None
    if member is None:
        return []
    links = [(title, reverse(name)) for title, name in ROLE_PAGES.get(member.role, [])]
    return [
        {"title": title, "path": path, "current": request.path.startswith(path)}
        for title, path in links
    ]


def _page(roles: tuple[str, ...]) -> Callable:
    """Let only ``roles`` open the page; the view receives the member it acts as."""

    def decorate(view):
        @login_required
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            member = page_member(request)
            if member is None:
                # Which organization to act in is chosen on the home page.
                return redirect("home")
            if member.role not in roles:
                raise PermissionDenied("Your role does not use this page.")
            return view(request, member, *args, **kwargs)

        wrapped.__name__ = view.__name__
        wrapped.__doc__ = view.__doc__
        return wrapped

    return decorate


def _shell(request: HttpRequest, member: Member, template: str, **context) -> HttpResponse:
    """Render a page's shell with what its module needs to call the API and open the socket."""
    config = {
        "organization": member.organization.slug,
        "role": member.role,
        "member": member.pk,
        "socket": f"/ws/orgs/{member.organization.slug}/",
    } | context.pop("config", {})
    return render(request, template, {"member": member, "config": config, **context})


@_page(ANNOTATOR)
def work(request: HttpRequest, member: Member) -> HttpResponse:
    """The annotator's queue: claim, read the instructions, submit; their throughput today,
    live, and their own accuracy, certifications and exams."""
    return _shell(request, member, "pages/work.html")


@_page(STAFF)
def quality(request: HttpRequest, member: Member) -> HttpResponse:
    """The projects whose dashboards a QA lead or manager opens."""
    projects = project_list(member=member).order_by("-priority", "name")
    return _shell(request, member, "pages/quality.html", projects=projects)


@_page(STAFF)
def project_dashboard(request: HttpRequest, member: Member, pk: int) -> HttpResponse:
    """A project's live leaderboard and alerts."""
    project = project_get(member=member, project_id=pk)
    return _shell(
        request,
        member,
        "pages/project.html",
        project=project,
        config={
            "project": project.pk,
            "accuracy_target": project.accuracy_target,
            # The project's socket: its snapshot is the leaderboard and the hour's stats.
            "socket": f"/ws/orgs/{member.organization.slug}/?project={project.pk}",
        },
    )


@_page(STAFF)
def annotator_drilldown(
    request: HttpRequest, member: Member, pk: int, annotator_id: int
) -> HttpResponse:
    """One annotator in one project: accuracy, gold results, quality actions, audit events."""
    project = project_get(member=member, project_id=pk)
    annotator = annotator_get(member=member, annotator_id=annotator_id)
    return _shell(
        request,
        member,
        "pages/annotator.html",
        project=project,
        annotator=annotator,
        config={
            "project": project.pk,
            "socket": f"/ws/orgs/{member.organization.slug}/?project={project.pk}",
            "annotator": annotator.pk,
            "accuracy_target": project.accuracy_target,
            # Undoing a quality action is the QA lead's (qa.rules_api).
            "can_undo": member.role in QA_LEAD,
        },
    )


@_page(MANAGER_ONLY)
def staffing(request: HttpRequest, member: Member) -> HttpResponse:
    """The staffing board: progress against deadlines, who qualifies, members in and out."""
    return _shell(request, member, "pages/staffing.html")


@require_POST
@login_required
def organization_choose(request: HttpRequest) -> HttpResponse:
    """Choose the organization the pages act in, for a person who belongs to several.

    Kept in the session, where ``request_member`` reads it when no header names one.
    """
    slug = request.POST.get("organization", "")
    if not memberships_of(user=request.user).filter(organization__slug=slug).exists():
        raise PermissionDenied("Not a member of that organization.")
    request.session[SESSION_KEY] = slug
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse("home")
    return HttpResponseRedirect(target)
