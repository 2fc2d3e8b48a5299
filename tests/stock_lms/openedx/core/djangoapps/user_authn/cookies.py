"""Stand-in for edx-platform ``openedx/core/djangoapps/user_authn/cookies.py``."""

import json

from django.conf import settings

LOGGED_IN_COOKIE_NAMES = ("edxloggedin", "edx-user-info", "edx-jwt-cookie-header-payload", "edx-jwt-cookie-signature")


def _cookie_settings(request):
    return {
        "domain": settings.SESSION_COOKIE_DOMAIN,
        "path": "/",
        "secure": request.is_secure(),
        "samesite": settings.SESSION_COOKIE_SAMESITE,
    }


def set_logged_in_cookies(request, response, user):
    """The cookies that tell other apps on ``SESSION_COOKIE_DOMAIN`` a user is logged in
    (``edxloggedin`` and ``edx-user-info``; the JWT cookies are not imitated)."""
    options = _cookie_settings(request)
    response.set_cookie("edxloggedin", "true", **options)
    user_info = json.dumps({"version": 1, "username": user.username, "email": user.email})
    response.set_cookie("edx-user-info", user_info, **options)
    return response


def delete_logged_in_cookies(response):
    for name in LOGGED_IN_COOKIE_NAMES:
        response.delete_cookie(name, path="/", domain=settings.SESSION_COOKIE_DOMAIN)
    return response
