"""The HTML login forms (Assay's and the admin's), throttled like the token endpoint."""

import functools
from collections.abc import Callable

from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from . import throttles


def throttled_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a login view so that each password it checks is paid for first.

    Past a budget the form answers 429 with ``Retry-After`` and checks nothing. A login
    succeeded when the view logged someone in (``user_logged_in``), not when it answered a
    redirect: a logged-in user posting someone else's wrong password is still counted.
    """

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        username, password = request.POST.get("username"), request.POST.get("password")
        if request.method != "POST" or not (username and password):
            return view(request, *args, **kwargs)
        try:
            with throttles.password_check(request, username) as attempt:
                response = view(request, *args, **kwargs)
                if getattr(request, "assay_logged_in", False):
                    attempt.succeeded()
        except throttles.TooManyAttempts as exc:
            return _too_many_attempts(request, username, exc.wait)
        return response

    return wrapped


def _too_many_attempts(request: HttpRequest, username: str, wait: int) -> HttpResponse:
    form = AuthenticationForm(request, initial={"username": username})
    minutes = max(1, -(-wait // 60))
    response = render(
        request,
        "registration/login.html",
        {
            "form": form,
            "next": request.POST.get("next", ""),
            "throttled": f"Too many failed logins. Try again in {minutes} minute"
            + ("s." if minutes > 1 else "."),
        },
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response
