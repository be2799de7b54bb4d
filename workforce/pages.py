"""The landing page: who you are and the organizations you work in."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .selectors import memberships_of


def home(request: HttpRequest) -> HttpResponse:
    memberships = memberships_of(user=request.user) if request.user.is_authenticated else []
    return render(request, "home.html", {"memberships": memberships})
