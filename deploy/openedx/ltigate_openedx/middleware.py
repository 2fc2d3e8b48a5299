"""Logs the learner named by ltigate's assertion header into the LMS."""

import hashlib
import json
import logging

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponseForbidden
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string

from . import assertion, conf, csrf, enrollment, gateway_session, platform, users

log = logging.getLogger(__name__)

# Session key of a digest of the claims the session's user was last updated from.
CLAIMS_DIGEST_KEY = "ltigate_claims_digest"
# Session key of the id of the LMS user those claims resolved to. The gateway
# username (sub) is in the digest; it is not always the LMS username.
USER_ID_KEY = "ltigate_user_id"

IDENTITY_CLAIMS = ("sub", "email", "name", "given_name", "family_name")


def claims_digest(claims):
    identity = {name: claims.get(name) for name in IDENTITY_CLAIMS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def auth_backend():
    """The backend path recorded in the session at login.

    It must be in AUTHENTICATION_BACKENDS, or the next request's user is
    anonymous. The LMS lists no plain ModelBackend but a subclass of it
    (EdxRateLimitedAllowAllUsersModelBackend), which is what the default picks.
    """
    configured = conf.get("LTIGATE_AUTH_BACKEND")
    if configured:
        return configured
    for path in settings.AUTHENTICATION_BACKENDS:
        try:
            backend = import_string(path)
        except ImportError:
            continue
        if isinstance(backend, type) and issubclass(backend, ModelBackend):
            return path
    raise ImproperlyConfigured(
        "no ModelBackend in AUTHENTICATION_BACKENDS: set LTIGATE_AUTH_BACKEND"
    )


def _view_marked(request, mark):
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return getattr(match.func, mark, False)


def is_service_view(request):
    """Whether the path is a server-to-server endpoint (no login, no session)."""
    return _view_marked(request, "ltigate_service_view")


def is_logout_view(request):
    """Whether the path is the gateway's logout view (views.logout)."""
    return _view_marked(request, "ltigate_logout_view")


class LtigateAssertionMiddleware:
    """Verifies ``X-Ltigate-Assertion`` and logs its user in.

    - No header: the request is untouched, unless its session is one this
      middleware logged in, which is logged out first (``gateway_session``).
    - A header that fails verification: 403, never an anonymous pass-through.
    - A valid header: ``request.ltigate_claims`` holds the claims, the
      gateway's ``Origin``/``Referer`` are mapped for Django's CSRF check
      (``csrf``), and the learner named by ``sub`` is fetched, adopted from
      the seed plugin or created (``users``), updated and logged in (unless
      the session already holds that user with the same claims), and enrolled
      in the assertion's course once per session (``enrollment``).
      Server-to-server views (the composite score) only get the claims.

    Place it after the authentication middleware; the plugin settings do.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = request.META.get(conf.meta_key())
        if token is None:
            # A session the gateway logged in is not usable without it.
            gateway_session.end_if_marked(request)
            return self.get_response(request)
        try:
            claims = assertion.verify(token)
        except assertion.AssertionInvalid as exc:
            log.warning("ltigate assertion refused on %s: %s", request.path_info, exc)
            return HttpResponseForbidden(
                "Invalid gateway assertion.", content_type="text/plain; charset=utf-8"
            )
        if claims.get("ltigate_logout") and not is_logout_view(request):
            # The gateway sends a logout assertion to the logout view only;
            # anywhere else it must neither log in nor pass for a request.
            log.warning("ltigate logout assertion refused on %s", request.path_info)
            return HttpResponseForbidden(
                "Invalid gateway assertion.", content_type="text/plain; charset=utf-8"
            )
        request.ltigate_claims = claims
        if not is_service_view(request):
            refused = self._log_in(request, claims)
            if refused is not None:
                return refused
            # Once the session's user is the assertion's, and before any view
            # (so before CsrfViewMiddleware.process_view). Service views are
            # server-to-server GETs: nothing to trust there.
            csrf.trust_gateway_origin(request)
            enrollment.on_login(request, request.user, claims)
        return self.get_response(request)

    def _log_in(self, request, claims):
        digest = claims_digest(claims)
        current = getattr(request, "user", None)
        if (
            current is not None
            and current.is_authenticated
            and current.is_active
            and request.session.get(USER_ID_KEY) == current.pk
            and request.session.get(CLAIMS_DIGEST_KEY) == digest
        ):
            return None
        try:
            user = users.get_or_create_user(claims)
        except users.UserRefused as exc:
            log.warning("ltigate user %s refused: %s", claims["sub"], exc)
            return HttpResponseForbidden(
                "This account cannot be used through the gateway.",
                content_type="text/plain; charset=utf-8",
            )
        if not (current is not None and current.is_authenticated and current.pk == user.pk):
            login(request, user, backend=auth_backend())
            # Open edX's safe-sessions middleware flushes a session whose user
            # changes unexpectedly during a request.
            platform.get().mark_user_change_as_expected(user.pk)
            gateway_session.mark(request)
        request.session[USER_ID_KEY] = user.pk
        request.session[CLAIMS_DIGEST_KEY] = digest
        return None
