"""Stand-in for edx-platform ``openedx/core/djangoapps/safe_sessions/middleware.py``.

``SafeSessionMiddleware`` replaces Django's ``SessionMiddleware`` in the LMS.
Imitated behaviour (``ENFORCE_SAFE_SESSIONS`` on, its default):

- The session cookie's value is not a session key but
  ``<version>|<session key>|<salt>|<signature>`` (``SafeCookieData``), the
  signature a ``django.core.signing`` timestamped signature, salted with
  ``<salt>``, of ``sha256("<version>|<session key>|<user id>|")``: the cookie is
  bound to the user. It expires with ``SESSION_COOKIE_AGE``.
- ``process_request``: a cookie that does not parse (a bare Django session
  key, say) or whose signature does not verify for the session's user is
  refused: the cookie is marked for deletion and the request gets a redirect
  to ``/login?next=...`` when it accepts ``text/html``, else a bare 401
  (``_on_user_authentication_failed``). A verified cookie records the user as
  ``request.safe_cookie_verified_user_id``.
- ``process_response``: when the request came with a verified user and
  either ``request.user`` or the session's user is now another (not None)
  user, and ``mark_user_change_as_expected`` was not called in this request,
  the session is flushed, ``request.user`` becomes anonymous and the
  response is *replaced* by the refusal above (``_verify_user_unchanged``).
  Otherwise a session cookie in the response is rewritten to the safe
  format, bound to the session's user.
- Deleting the cookie also deletes the "logged in" cookies
  (``delete_logged_in_cookies``), on ``SESSION_COOKIE_DOMAIN``.

``mark_user_change_as_expected(new_user_id)`` records the expected change in
the request cache (edx-django-utils ``RequestCache("safe-sessions")``, which
``RequestCacheMiddleware`` clears around every request).
"""

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import SESSION_KEY, _get_user_session_key
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.middleware import SessionMiddleware
from django.core import signing
from django.http import HttpResponse
from django.utils.crypto import get_random_string
from edx_django_utils.cache import RequestCache

from openedx.core.djangoapps.user_authn.cookies import delete_logged_in_cookies

log = logging.getLogger(__name__)



def enforce_safe_sessions():
    """The ``ENFORCE_SAFE_SESSIONS`` setting toggle (default on), read per request."""
    return getattr(settings, "ENFORCE_SAFE_SESSIONS", True)


request_cache = RequestCache(namespace="safe-sessions")


class SafeCookieError(Exception):
    def __init__(self, message):
        super().__init__(message)
        log.error(message)


class SafeCookieData:
    """The session cookie's value: version, session key, salt and a user-bound signature."""

    CURRENT_VERSION = "1"
    SEPARATOR = "|"

    def __init__(self, version, session_id, key_salt, signature):
        self.version = version
        self.session_id = session_id
        self.key_salt = key_salt
        self.signature = signature

    @classmethod
    def create(cls, session_id, user_id):
        if not session_id or session_id == str(None):
            raise SafeCookieError(f"SafeCookieData not created due to invalid value for session_id {session_id!r}")
        data = cls(cls.CURRENT_VERSION, session_id, get_random_string(12), None)
        data.sign(user_id)
        return data

    @classmethod
    def parse(cls, cookie_value):
        parts = str(cookie_value).split(cls.SEPARATOR)
        if len(parts) != 4:
            raise SafeCookieError(f"SafeCookieData BWC parse error: {cookie_value!r}.")
        data = cls(*parts)
        if data.version != cls.CURRENT_VERSION:
            raise SafeCookieError(f"SafeCookieData version {data.version!r} is not supported.")
        return data

    def __str__(self):
        return self.SEPARATOR.join([self.version, self.session_id, self.key_salt, self.signature])

    def _digest(self, user_id):
        digest = hashlib.sha256()
        for item in (self.version, self.session_id, user_id):
            digest.update(str(item).encode())
            digest.update(b"|")
        return digest.hexdigest()

    def sign(self, user_id):
        self.signature = signing.dumps(self._digest(user_id), salt=self.key_salt)

    def verify(self, user_id):
        try:
            unsigned = signing.loads(self.signature, salt=self.key_salt, max_age=settings.SESSION_COOKIE_AGE)
        except signing.BadSignature as exc:
            log.error("SafeCookieData signature error: %s", exc)
            return False
        if unsigned == self._digest(user_id):
            return True
        log.error("SafeCookieData is not bound to user %r.", user_id)
        return False


def _mark_cookie_for_deletion(request):
    request.need_to_delete_cookie = True


def _is_cookie_marked_for_deletion(request):
    return getattr(request, "need_to_delete_cookie", False)


def _is_cookie_present(response):
    cookie = response.cookies.get(settings.SESSION_COOKIE_NAME)
    return bool(cookie and cookie.value)


def _delete_cookie(request, response):  # pylint: disable=unused-argument
    response.delete_cookie(settings.SESSION_COOKIE_NAME, path="/", domain=settings.SESSION_COOKIE_DOMAIN)
    delete_logged_in_cookies(response)


class SafeSessionMiddleware(SessionMiddleware):
    """Django's session middleware with user-bound, signed session cookies."""

    @staticmethod
    def get_user_id_from_session(request):
        try:
            return _get_user_session_key(request)
        except (KeyError, AttributeError):
            return None

    @staticmethod
    def set_user_id_in_session(request, user):
        request.session[SESSION_KEY] = user._meta.pk.value_to_string(user)  # pylint: disable=protected-access

    @staticmethod
    def update_with_safe_session_cookie(cookies, user_id):
        safe_cookie_data = SafeCookieData.create(cookies[settings.SESSION_COOKIE_NAME].value, user_id)
        cookies[settings.SESSION_COOKIE_NAME] = str(safe_cookie_data)

    @staticmethod
    def _on_user_authentication_failed(request):
        _mark_cookie_for_deletion(request)
        if "text/html" in request.META.get("HTTP_ACCEPT", ""):
            return redirect_to_login(request.path)
        return HttpResponse(status=401)

    def process_request(self, request):
        cookie_value = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        safe_cookie_data = None
        if cookie_value:
            try:
                safe_cookie_data = SafeCookieData.parse(cookie_value)
            except SafeCookieError:
                return self._on_user_authentication_failed(request)
            request.COOKIES[settings.SESSION_COOKIE_NAME] = safe_cookie_data.session_id
            request.cookie_session_field = safe_cookie_data.session_id
        super().process_request(request)
        user_id = self.get_user_id_from_session(request)
        if safe_cookie_data is not None and user_id is not None:
            if not safe_cookie_data.verify(user_id):
                return self._on_user_authentication_failed(request)
            request.safe_cookie_verified_user_id = user_id
            request.safe_cookie_verified_session_id = request.session.session_key
        return None

    @staticmethod
    def _user_unchanged(request, userid_in_session):
        if request_cache.get_cached_response("expected_user_change").is_found:
            return True
        if not hasattr(request, "safe_cookie_verified_user_id"):
            return True
        user = getattr(request, "user", None)
        if hasattr(user, "real_user"):
            request.user = user = user.real_user
        verified = request.safe_cookie_verified_user_id
        request_user_changed = user is not None and user.id is not None and user.id != verified
        session_user_changed = userid_in_session is not None and userid_in_session != verified
        if request_user_changed or session_user_changed:
            log.warning(
                "SafeCookieData user at initial request %r does not match the user at response time %r "
                "or in the session %r, for %s",
                verified, getattr(user, "id", None), userid_in_session, request.path,
            )
            return False
        return True

    def process_response(self, request, response):
        response = super().process_response(request, response)
        user_id_in_session = self.get_user_id_from_session(request)
        destroy_session = enforce_safe_sessions() and not self._user_unchanged(request, user_id_in_session)
        if not destroy_session and not _is_cookie_marked_for_deletion(request) and _is_cookie_present(response):
            try:
                self.update_with_safe_session_cookie(response.cookies, user_id_in_session)
            except SafeCookieError:
                _mark_cookie_for_deletion(request)
        if destroy_session:
            request.session.flush()
            request.user = AnonymousUser()
            response = self._on_user_authentication_failed(request)
        if _is_cookie_marked_for_deletion(request):
            _delete_cookie(request, response)
        return response


def mark_user_change_as_expected(new_user_id):
    """Tells the middleware that this request changes its user (to ``new_user_id``, maybe None)."""
    request_cache.set("expected_user_change", new_user_id)
