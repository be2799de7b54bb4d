"""Project-level pages: the landing page and a health check."""

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from workforce.selectors import memberships_of


def home(request: HttpRequest) -> HttpResponse:
    memberships = memberships_of(user=request.user) if request.user.is_authenticated else []
    return render(request, "home.html", {"memberships": memberships})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
