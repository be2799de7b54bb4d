"""Throttling of authentication: wrong passwords and unknown tokens.

A password check costs a full PBKDF2 (about 0.35 s of a core), whether the password is right,
wrong, or the account does not exist (Django hashes anyway, so that timing tells nothing). So a
check is paid for before it runs: each one spends one unit of three budgets, and a success gives
its units back. Wrong passwords are thereby bounded, per fixed window, to

- ``PASSWORD_ADDRESS_RATE`` checks per client address (IPv6 counted per /64, which one host
  usually holds whole),
- ``PASSWORD_ACCOUNT_RATE`` checks per account name, from addresses the account has not logged
  in from,
- ``PASSWORD_GLOBAL_RATE`` checks in all, from such addresses (about a third of one core),

and an attempt over a budget answers 429 with ``Retry-After`` without checking anything. A fixed
window may let twice its budget through across its boundary, never more.

The balance between a user who mistyped and an attacker who wants to lock them out: every window
is short (a lockout lasts five minutes at most), and an address the account logged in from in the
last 30 days is *known*: the per-account and global budgets do not apply to it, only its own
address budget. An attacker elsewhere can exhaust the victim's account budget, which then stops
guesses from everywhere but the victim's own known addresses, where the victim still logs in.

Unknown tokens (``Authorization: Token <random>``) are counted per address after the lookup
fails; past ``TOKEN_FAILURE_RATE`` the failure answers 429 instead of 401. A valid token is never
refused, and costs no cache call, from any address.

Counters live in the Django cache (Redis in production, shared by every process) and are
incremented atomically, one key per window, so concurrent attempts cannot overspend a budget.
When the cache fails (a hung Redis times out after half a second), the counting falls back to
this process's memory for ``CACHE_RETRY_SECONDS``: authentication still answers in about a
second, and wrong passwords stay bounded (per process rather than per deployment). Failing open
would hand an attacker who can slow Redis an unbounded CPU burn; failing closed would lock every
user out while Redis is down.

The client address is ``REMOTE_ADDR``: ``X-Forwarded-For`` is read only when DRF's
``NUM_PROXIES`` says how many trusted proxies append to it, since any client can send one.
"""

import contextlib
import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.dispatch import receiver
from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

# Each can be overridden by name in settings.AUTH_THROTTLE_RATES, e.g. {"password_address":
# "20/5m"}. A rate is "<count>/<period>", the period a unit (s, m, h, d) with an optional factor.
PASSWORD_ADDRESS_RATE = "10/5m"  # a user who mistyped ten times waits at most five minutes
# Twice an address's budget: one address alone cannot lock an account out.
PASSWORD_ACCOUNT_RATE = "20/5m"
PASSWORD_GLOBAL_RATE = "60/1m"  # 60 x 0.35 s = 21 s of CPU a minute, a third of one core
TOKEN_FAILURE_RATE = "30/1m"
# How long an address an account logged in from stays known to it.
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600
# How long the counting stays in process memory after the cache failed, before trying it again.
CACHE_RETRY_SECONDS = 10.0

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CACHE_ERRORS = (redis.exceptions.RedisError, OSError)
_local = LocMemCache("assay-auth-throttles", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
_cache_down_until = 0.0


class TooManyAttempts(Exception):
    """An authentication attempt over its budget; retry after ``wait`` seconds."""

    def __init__(self, wait: float):
        super().__init__(f"Too many failed attempts; retry in {math.ceil(wait)} s.")
        self.wait = math.ceil(wait)


def _store():
    """The cache, or this process's memory while the cache is failing."""
    return _local if time.monotonic() < _cache_down_until else cache


def _call(method: str, *args):
    """Call ``method`` on the store; a failing cache switches the counting to process memory."""
    global _cache_down_until
    store = _store()
    try:
        return getattr(store, method)(*args)
    except _CACHE_ERRORS as exc:
        if store is _local:
            raise
        logger.error(
            "Authentication throttling counts in process memory for %s s: the cache failed (%s).",
            CACHE_RETRY_SECONDS,
            exc,
        )
        _cache_down_until = time.monotonic() + CACHE_RETRY_SECONDS
        return getattr(_local, method)(*args)


def client_address(request: HttpRequest) -> str:
    """The address a request comes from, IPv6 reduced to its /64."""
    ident = AuthThrottle().get_ident(request)
    try:
        address = ipaddress.ip_address(ident)
    except ValueError:
        return ident
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class AuthThrottle(SimpleRateThrottle):
    """A fixed-window budget of authentication attempts for one scope and one identity.

    DRF's rate syntax, client address and cache key format; the count itself is one atomic
    increment per attempt instead of DRF's list of timestamps, which concurrent requests
    overwrite (letting an attacker with parallel connections spend more than the budget).
    """

    scope = "auth"
    default_rate = "10/5m"

    def __init__(self, ident: str = ""):
        self.rate = getattr(settings, "AUTH_THROTTLE_RATES", {}).get(self.scope, self.default_rate)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.ident = ident

    def parse_rate(self, rate: str) -> tuple[int, int]:
        """Read ``"10/5m"``: DRF's rates, with a factor on the period's unit."""
        count, period = rate.split("/")
        match = re.fullmatch(r"(\d*)([smhd])\w*", period)
        if match is None:
            raise ValueError(f"Invalid rate {rate!r}.")
        return int(count), int(match[1] or 1) * _UNITS[match[2]]

    def get_ident(self, request) -> str:
        """``REMOTE_ADDR``, or DRF's reading of ``X-Forwarded-For`` behind trusted proxies."""
        if api_settings.NUM_PROXIES:
            return super().get_ident(request)
        return request.META.get("REMOTE_ADDR", "")

    def get_cache_key(self, request=None, view=None) -> str:
        window = int(self.timer() // self.duration)
        digest = hashlib.sha256(self.ident.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return self.cache_format % {"scope": self.scope, "ident": f"{digest}:{window}"}

    def spend(self) -> bool:
        """Count one attempt; say whether it is within the budget."""
        key = self.get_cache_key()
        # The key outlives its window, so it never expires while it is still counted.
        _call("add", key, 0, self.duration * 2)
        try:
            self.count = _call("incr", key)
        except ValueError:  # the store lost the key between the two calls (evicted, restarted)
            _call("set", key, 1, self.duration * 2)
            self.count = 1
        return self.count <= self.num_requests

    def refund(self) -> None:
        """Give back the unit an attempt spent (it succeeded)."""
        # A key gone means the window ended, and its count with it.
        with contextlib.suppress(ValueError):
            _call("decr", self.get_cache_key())

    def wait(self) -> float:
        return self.duration - self.timer() % self.duration


class PasswordAddressThrottle(AuthThrottle):
    scope = "password_address"
    default_rate = PASSWORD_ADDRESS_RATE


class PasswordAccountThrottle(AuthThrottle):
    scope = "password_account"
    default_rate = PASSWORD_ACCOUNT_RATE


class PasswordGlobalThrottle(AuthThrottle):
    scope = "password_global"
    default_rate = PASSWORD_GLOBAL_RATE


class TokenFailureThrottle(AuthThrottle):
    scope = "token_failure"
    default_rate = TOKEN_FAILURE_RATE


def _known_key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username}\0{address}".encode("utf-8", "surrogatepass"))
    return f"auth_known_{digest.hexdigest()[:32]}"


class PasswordAttempt:
    """One password check in progress; call ``succeeded()`` when the password was right."""

    def __init__(self, username: str, address: str, spent: list[AuthThrottle]):
        self.username, self.address, self.spent = username, address, spent
        self.success = False

    def succeeded(self) -> None:
        self.success = True


@contextmanager
def password_check(request: HttpRequest, username: str) -> Iterator[PasswordAttempt]:
    """Pay for one password check of ``username``, or raise ``TooManyAttempts`` before it.

    The body checks the password and calls ``attempt.succeeded()`` if it was right; a success
    gives back what it spent and makes the address known to the account.
    """
    address = client_address(request)
    spent: list[AuthThrottle] = []
    known = None
    for throttle in (
        PasswordAddressThrottle(address),
        PasswordAccountThrottle(username),
        PasswordGlobalThrottle("all"),
    ):
        within = throttle.spend()
        spent.append(throttle)
        if within:
            continue
        if not isinstance(throttle, PasswordAddressThrottle):
            if known is None:
                known = bool(_call("get", _known_key(username, address)))
            if known:
                continue
        raise TooManyAttempts(throttle.wait())
    attempt = PasswordAttempt(username, address, spent)
    yield attempt
    if attempt.success:
        for throttle in spent:
            throttle.refund()
        _call("set", _known_key(username, address), 1, KNOWN_ADDRESS_SECONDS)


def token_failed(request: HttpRequest) -> None:
    """Count an unknown or malformed token; raise ``TooManyAttempts`` past the budget."""
    throttle = TokenFailureThrottle(client_address(request))
    if not throttle.spend():
        raise TooManyAttempts(throttle.wait())


@receiver(user_logged_in, dispatch_uid="workforce.throttles.mark_logged_in")
def _mark_logged_in(sender, request, user, **kwargs) -> None:
    """Tell ``throttled_login`` that the form it wraps logged someone in."""
    if request is not None:
        request.assay_logged_in = True
