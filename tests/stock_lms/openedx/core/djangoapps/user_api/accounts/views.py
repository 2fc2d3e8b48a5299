"""Stand-in for edx-platform ``openedx/core/djangoapps/user_api/accounts/views.py``
``AccountViewSet.get`` (``GET /api/user/v1/me``).

The real view is a DRF ``ViewSet`` with ``JwtAuthentication``,
``BearerAuthenticationAllowInactiveUser`` and
``SessionAuthenticationAllowInactiveUser``, and ``IsAuthenticated``: a session
user (active or not) gets ``{"username": ...}``; a request without
credentials gets **401** (the first authenticator, JWT, supplies the
``WWW-Authenticate`` header) with DRF's ``detail`` message. Only session
authentication is imitated.
"""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET


@csrf_exempt  # DRF views are csrf_exempt; SessionAuthentication checks CSRF on unsafe methods only.
@require_GET
def me(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        response = JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
        response["WWW-Authenticate"] = 'JWT realm="api"'
        return response
    return JsonResponse({"username": user.username})
