from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from qa import pages as qa_pages
from qa.api import LiveSchemaApi
from workforce.auth_views import throttled_login
from workforce.pages import home

from . import api, pages

# Django's own answer to an unhandled exception is an HTML page; the API answers in its envelope.
handler500 = api.server_error

urlpatterns = [
    # The API first, and in it the annotator's and the reviewer's loops (each app lists its hot
    # routes first): Django tries the patterns in order, and the API is nearly every request.
    path("api/v1/", include("tasks.urls")),
    path("api/v1/", include("qa.urls")),
    path("api/v1/", include("workforce.urls")),
    path("", home, name="home"),
    path("healthz", pages.healthz, name="healthz"),
    # The pages of the three roles (qa/pages.py); each reads and writes through /api/v1/.
    path("orgs/choose", qa_pages.organization_choose, name="organization-choose"),
    path("work/", qa_pages.work, name="page-work"),
    path("qa/", qa_pages.quality, name="page-quality"),
    path("qa/projects/<int:pk>/", qa_pages.project_dashboard, name="page-project"),
    path(
        "qa/projects/<int:pk>/annotators/<int:annotator_id>/",
        qa_pages.annotator_drilldown,
        name="page-annotator",
    ),
    path("staffing/", qa_pages.staffing, name="page-staffing"),
    # Both password forms are throttled like the token endpoint (workforce.throttles).
    path("accounts/login/", throttled_login(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/login/", throttled_login(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The live-events WebSocket's messages (qa/live_schema.py).
    path("api/schema/live/", LiveSchemaApi.as_view(), name="live-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
