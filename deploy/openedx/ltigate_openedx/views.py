"""The display view, the composite score endpoint and the gateway's logout."""

import logging

from django.contrib.auth import logout as django_logout
from django.db import transaction
from django.http import HttpResponseForbidden, JsonResponse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import platform
from .models import LtigateUser

log = logging.getLogger(__name__)


def service_view(view):
    """Marks a server-to-server view: the middleware verifies the assertion
    but neither creates a user nor logs anyone in."""
    view.ltigate_service_view = True
    return view


def logout_view(view):
    """Marks the one view that takes a logout assertion (the middleware
    refuses one anywhere else)."""
    view.ltigate_logout_view = True
    return view


@xframe_options_exempt
@transaction.non_atomic_requests
@require_GET
def display(request, usage_key):
    """Renders one block, as the Open edX LTI plugin did: ``render_xblock``
    with the enrollment check off.

    Only for requests that came through ltigate with a grant for exactly this
    block: the assertion's ``usage_key`` must be the one in the path.
    """
    claims = getattr(request, "ltigate_claims", None)
    if claims is None or not request.user.is_authenticated:
        return HttpResponseForbidden(
            "Open this content from your course.", content_type="text/plain; charset=utf-8"
        )
    if claims.get("usage_key") != usage_key:
        log.warning("ltigate display: %s is not the asserted content", usage_key)
        return HttpResponseForbidden(
            "This content was not launched.", content_type="text/plain; charset=utf-8"
        )
    return platform.get().render_xblock(request, usage_key)


def _error(status, message, field=None):
    body = {"error": message}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


@service_view
@require_GET
def composite_score(request):
    """``GET /ltigate/score?user=<gateway username>&usage_key=<key>``:
    ``{"earned": x, "possible": y}`` for a unit, subsection, course or problem.

    Authenticated by ltigate's assertion alone: its ``sub`` must be ``user``
    and its ``usage_key`` the requested key.
    """
    claims = getattr(request, "ltigate_claims", None)
    if claims is None:
        return _error(401, "an ltigate assertion is required")
    username = request.GET.get("user", "")
    usage_key = request.GET.get("usage_key", "")
    if not username:
        return _error(400, "required", "user")
    if not usage_key:
        return _error(400, "required", "usage_key")
    if claims["sub"] != username:
        return _error(403, "the assertion names another user", "user")
    if claims.get("usage_key") != usage_key:
        return _error(403, "the assertion names other content", "usage_key")
    # ``user`` is the gateway username, not necessarily the LMS one.
    account = LtigateUser.objects.filter(username=username).select_related("user").first()
    if account is None:
        return _error(404, "no such user", "user")
    user = account.user
    try:
        earned, possible = platform.get().score_for_block(user, usage_key)
    except platform.InvalidKey:
        return _error(400, "not a usage key", "usage_key")
    except platform.NotFound:
        return _error(404, "no such content", "usage_key")
    return JsonResponse({"earned": earned, "possible": possible})


@csrf_exempt
@logout_view
@service_view
@require_POST
def logout(request):
    """``POST /ltigate/logout``: the gateway's logout of a learner ends the
    LMS session that the browser's gateway cookies name.

    The gateway sends it, through its proxy, with the browser's LMS cookies
    and an assertion that carries ``ltigate_logout: true`` (no other
    assertion does, and the middleware refuses that one on any other view).
    Exempt from Django's CSRF check: nothing but a valid logout assertion,
    which only the gateway can sign, makes it act, and a gateway session
    that no longer exists has no CSRF token to send. A service view, so the
    middleware does not log the learner in first.

    What it does is what Open edX's own ``LogoutView.dispatch``
    (openedx/openedx-platform, openedx/core/djangoapps/user_authn/views/logout.py)
    does for the session: ``logout(request)`` (Django flushes the session:
    its row is deleted and the response expires the cookie), the LMS's
    logged-in cookies deleted, and ``mark_user_change_as_expected(None)``
    for safe-sessions. It skips that view's redirects and its OAuth
    client logouts, which a learner who only ever came through the gateway
    has none of.
    """
    claims = getattr(request, "ltigate_claims", None)
    if claims is None:
        return _error(401, "an ltigate assertion is required")
    if claims.get("ltigate_logout") is not True:
        return _error(403, "not a logout assertion")
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    django_logout(request)
    response = JsonResponse({"logged_out": user_id is not None})
    seam = platform.get()
    seam.delete_logged_in_cookies(response)
    seam.mark_user_change_as_expected(None)
    log.info("ltigate: logout of user %s (gateway user %s)", user_id, claims["sub"])
    return response
