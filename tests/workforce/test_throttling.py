"""Authentication is throttled: wrong passwords and unknown tokens, per address and per account.

Each test comes from addresses of its own (documentation ranges), so budgets never carry over
between tests; the budgets every test shares are cleared around each one.
"""

import itertools
import secrets
import time

import pytest
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import caches
from django.test import Client, override_settings
from rest_framework.test import APIClient

from tests.faults import private_redis
from workforce import throttles
from workforce.models import Role

pytestmark = pytest.mark.django_db

PASSWORD = "pw-long-enough"  # what tests.helpers.Org gives every member
ADDRESS_BUDGET, _ = throttles.AuthThrottle().parse_rate(throttles.PASSWORD_ADDRESS_RATE)
ACCOUNT_BUDGET, _ = throttles.AuthThrottle().parse_rate(throttles.PASSWORD_ACCOUNT_RATE)
TOKEN_BUDGET, _ = throttles.AuthThrottle().parse_rate(throttles.TOKEN_FAILURE_RATE)
# A private /16 of this session's own: budgets another run left in Redis are not met again.
_prefix = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
_addresses = (f"{_prefix}.{n}" for n in itertools.count(1))
# Every login the tests try, whose account budgets are cleared around each test.
LOGINS = [f"acme-{role}@acme" for role in ("manager", "qa", "reviewer", "annotator")]


def fresh_address() -> str:
    return next(_addresses)


@pytest.fixture(autouse=True)
def shared_budgets():
    """Clear the budgets tests share (global, per account), before and after, and the fallback
    state; per-address budgets are the test's own."""

    def clear():
        throttles._cache_down_until = 0.0
        throttles._local.clear()
        keys = [throttles.PasswordGlobalThrottle("all").get_cache_key()]
        keys += [throttles.PasswordAccountThrottle(login).get_cache_key() for login in LOGINS]
        caches["default"].delete_many(keys)

    clear()
    yield
    clear()


@pytest.fixture
def checks():
    """Count the password checks that ran and failed (Django signals each one)."""
    failed = []

    def count(sender, credentials, request=None, **kwargs):
        failed.append(credentials.get("username"))

    user_login_failed.connect(count)
    yield failed
    user_login_failed.disconnect(count)


def token(login: str, password: str, address: str):
    client = APIClient(REMOTE_ADDR=address)
    return client.post("/api/v1/auth/token/", {"username": login, "password": password})


def assert_throttled(response):
    assert response.status_code == 429, response.content
    assert 0 < int(response["Retry-After"]) <= 300
    assert response.json()["error"]["code"] == "throttled"


def test_the_wrong_password_past_the_budget_answers_429_and_checks_nothing(org, checks):
    victim, address = org.qa_lead.user.username, fresh_address()
    for _ in range(ADDRESS_BUDGET):
        response = token(victim, "wrong-password", address)
        assert response.status_code == 401, response.content
    assert_throttled(token(victim, "wrong-password", address))
    # Over the budget even the right password is not checked from this address.
    assert_throttled(token(victim, PASSWORD, address))
    assert len(checks) == ADDRESS_BUDGET
    # Another account's right password from another address still works.
    assert token(org.manager.user.username, PASSWORD, fresh_address()).status_code == 200


def test_a_forged_forwarded_for_or_another_host_of_the_same_ipv6_64_gives_no_new_budget(org):
    victim, net = org.qa_lead.user.username, f"2001:db8:{secrets.token_hex(2)}"
    for n in range(ADDRESS_BUDGET):
        client = APIClient(REMOTE_ADDR=f"{net}:1::{n + 1}", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
        response = client.post("/api/v1/auth/token/", {"username": victim, "password": "nope"})
        assert response.status_code == 401
    assert_throttled(token(victim, "nope", f"{net}:1:ffff::1"))
    assert token(victim, PASSWORD, f"{net}:2::1").status_code == 200


def test_an_account_under_attack_from_many_addresses_still_logs_in_where_it_did_before(org):
    victim = org.qa_lead.user.username
    home = fresh_address()
    assert token(victim, PASSWORD, home).status_code == 200
    for _ in range(ACCOUNT_BUDGET):
        assert token(victim, "guess", fresh_address()).status_code == 401
    # The account's budget is spent: a new address is refused without a check...
    assert_throttled(token(victim, "guess", fresh_address()))
    assert_throttled(token(victim, PASSWORD, fresh_address()))
    # ...but the victim still logs in from the address they used before, and others are free.
    assert token(victim, PASSWORD, home).status_code == 200
    assert token(org.manager.user.username, PASSWORD, fresh_address()).status_code == 200


def test_a_success_gives_back_its_unit_so_logging_in_often_is_never_throttled(org):
    address = fresh_address()
    for _ in range(ADDRESS_BUDGET + 5):
        assert token(org.manager.user.username, PASSWORD, address).status_code == 200
    for _ in range(ADDRESS_BUDGET - 1):
        assert token(org.manager.user.username, "typo", address).status_code == 401
    assert token(org.manager.user.username, PASSWORD, address).status_code == 200


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_the_login_forms_answer_429_past_the_budget(org, checks, path):
    address = fresh_address()
    client = Client(REMOTE_ADDR=address)
    login = org.qa_lead.user.username
    for _ in range(ADDRESS_BUDGET):
        response = client.post(path, {"username": login, "password": "wrong-password"})
        assert response.status_code == 200
        assert settings.SESSION_COOKIE_NAME not in response.cookies
    response = client.post(path, {"username": login, "password": PASSWORD})
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 300
    assert b"Too many failed logins" in response.content
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert len(checks) == ADDRESS_BUDGET
    # From elsewhere the same person logs in through the form.
    elsewhere = Client(REMOTE_ADDR=fresh_address())
    response = elsewhere.post("/accounts/login/", {"username": login, "password": PASSWORD})
    assert response.status_code == 302


def test_a_logged_in_user_guessing_anothers_password_in_the_form_is_counted(org, checks):
    client = Client(REMOTE_ADDR=fresh_address())
    client.force_login(org.manager.user)
    for _ in range(ADDRESS_BUDGET):
        client.post("/accounts/login/", {"username": "acme-qa@acme", "password": "guess"})
    response = client.post("/accounts/login/", {"username": "acme-qa@acme", "password": "x"})
    assert response.status_code == 429
    assert len(checks) == ADDRESS_BUDGET


def test_random_tokens_are_throttled_and_a_valid_token_still_works(org):
    address = fresh_address()
    client = APIClient(REMOTE_ADDR=address)
    for _ in range(TOKEN_BUDGET):
        client.credentials(HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
        assert client.get("/api/v1/annotators/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Token not a token")
    assert_throttled(client.get("/api/v1/annotators/"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
    assert_throttled(client.get("/api/v1/annotators/"))
    valid = org.client(Role.ANNOTATOR)
    valid.defaults["REMOTE_ADDR"] = address
    assert valid.get("/api/v1/annotators/").status_code == 200


def test_with_redis_hung_authentication_answers_within_a_second_and_stays_bounded(org, checks):
    with (
        private_redis() as own_redis,
        override_settings(
            CACHES={"default": dict(settings.CACHES["default"], LOCATION=own_redis.url(0))}
        ),
    ):
        assert caches["default"].set("probe", 1) is None
        address, login = fresh_address(), org.qa_lead.user.username
        # Warm: the first request of a process loads what every later one reuses, which on a
        # slow machine is most of the time allowed below.
        assert token(login, PASSWORD, fresh_address()).status_code == 200
        own_redis.hang()
        try:
            started = time.monotonic()
            assert token(login, PASSWORD, address).status_code == 200
            assert time.monotonic() - started < 1.2
            # Counting goes on in process memory: wrong passwords stay bounded.
            for _ in range(ADDRESS_BUDGET):
                started = time.monotonic()
                assert token(login, "wrong", address).status_code == 401
                assert time.monotonic() - started < 1.2
            assert_throttled(token(login, "wrong", address))
            assert len(checks) == ADDRESS_BUDGET
            client = APIClient(REMOTE_ADDR=address)
            client.credentials(HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
            started = time.monotonic()
            assert client.get("/api/v1/annotators/").status_code == 401
            assert time.monotonic() - started < 1.2
        finally:
            own_redis.resume()
