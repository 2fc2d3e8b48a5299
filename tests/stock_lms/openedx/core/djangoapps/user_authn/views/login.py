"""Stand-in for edx-platform ``openedx/core/djangoapps/user_authn/views/login.py``.

``GET /login`` shows a username/password form (the LMS sends browsers to the
authn MFE, whose form posts to the login API). ``POST /login`` imitates
``login_user``: it is *not* csrf_exempt (``CsrfViewMiddleware`` checks the
token and the Origin), it authenticates through ``AUTHENTICATION_BACKENDS``,
refuses wrong credentials and inactive accounts with a 400, and on success
calls ``django.contrib.auth.login``, sets the session to four weeks
(``request.session.set_expiry(604800 * 4)``), sets the logged-in cookies
(``set_logged_in_cookies``) and calls ``mark_user_change_as_expected(user.id)``.
The real view answers ``{"success": true, "redirect_url": ...}``; this one
redirects to ``/api/user/v1/me`` so a plain form post lands on a page.
"""

from django.contrib.auth import authenticate
from django.contrib.auth import login as django_login
from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect
from django.utils.html import escape
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from openedx.core.djangoapps.safe_sessions.middleware import mark_user_change_as_expected
from openedx.core.djangoapps.user_authn.cookies import set_logged_in_cookies

LOGIN_FORM = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in | Stock LMS</title></head>
<body><h1>Sign in</h1>
<form id="login-form" method="post" action="/login">
<input type="hidden" name="csrfmiddlewaretoken" value="{token}">
<label>Username <input type="text" id="login-username" name="username" autocomplete="username"></label>
<label>Password <input type="password" id="login-password" name="password" autocomplete="current-password"></label>
<button type="submit" id="login-submit">Sign in</button>
</form></body></html>
"""


@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def login(request):
    if request.method == "GET":
        return HttpResponse(LOGIN_FORM.format(token=escape(get_token(request))))
    user = authenticate(request, username=request.POST.get("username", ""), password=request.POST.get("password", ""))
    if user is None or not user.is_active:
        return JsonResponse({"success": False, "value": "Email or password is incorrect."}, status=400)
    django_login(request, user)
    request.session.set_expiry(604800 * 4)
    response = redirect("/api/user/v1/me")
    set_logged_in_cookies(request, response, user)
    mark_user_change_as_expected(user.id)
    return response
