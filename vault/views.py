"""Vault web UI pages.

The pages are shells: their data comes from the public API (``/api/v1/``),
fetched by the ES modules under ``vault/static/vault/js/app/`` with the
session cookie and the CSRF token, so every screen shows exactly what an API
client with the same rights would see. Keys are enrolled, unlocked and used
only in the browser; the server never sees the vault passphrase.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from vault import key_selectors
from vault.choices import Protocol, RecordType


def _next_url(request: HttpRequest, default: str = "/") -> str:
    """Where to go after enrolling or unlocking: a local ``?next=`` or ``default``."""
    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


def _needs_enrolment(request: HttpRequest) -> HttpResponse | None:
    """A redirect to the enrol page if the caller has no key yet (saves a page flash)."""
    if key_selectors.user_key_of(request.user) is None:
        return redirect(f"{reverse('vault:enrol')}?{urlencode({'next': request.get_full_path()})}")
    return None


def _vault_context(request: HttpRequest, **extra) -> dict:
    return {"user_id": str(request.user.pk), **extra}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The records the caller can access, with search and filters."""
    if (response := _needs_enrolment(request)) is not None:
        return response
    return render(request, "vault/records.html", _vault_context(
        request, record_types=RecordType.choices, protocols=Protocol.choices))


@login_required
def session_activity(request: HttpRequest, record_id: int) -> HttpResponse:
    """One record's sessions: who, when, how long, and play / download."""
    if (response := _needs_enrolment(request)) is not None:
        return response
    return render(request, "vault/session_activity.html",
                  _vault_context(request, record_id=record_id))


@login_required
def enrol(request: HttpRequest) -> HttpResponse:
    """Choose a vault passphrase; the key pair is made and protected in the browser."""
    if key_selectors.user_key_of(request.user) is not None:
        return redirect(f"{reverse('vault:unlock')}?{urlencode({'next': _next_url(request)})}")
    return render(request, "vault/enrol.html", _vault_context(request, next=_next_url(request)))


@login_required
def unlock(request: HttpRequest) -> HttpResponse:
    """Unlock the caller's key with the vault passphrase (in the browser)."""
    if key_selectors.user_key_of(request.user) is None:
        return redirect(f"{reverse('vault:enrol')}?{urlencode({'next': _next_url(request)})}")
    return render(request, "vault/unlock.html", _vault_context(request, next=_next_url(request)))
