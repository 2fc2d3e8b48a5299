"""Stand-in for edx-platform ``openedx/core/djangoapps/cache_toolbox/middleware.py``.

``CacheBackedAuthenticationMiddleware`` replaces Django's
``AuthenticationMiddleware`` in the LMS. Unlike Django's, it sets
``request.user`` *eagerly* (from a cache, falling back to the database), and
when the session's auth hash no longer matches the user's (a password
change) it flushes the session, makes the user anonymous and marks the
session cookie for deletion by ``SafeSessionMiddleware``. The user cache is
not imitated: the user is read from the database.
"""

from django.contrib.auth import get_user
from django.contrib.auth.middleware import AuthenticationMiddleware

from openedx.core.djangoapps.safe_sessions.middleware import SafeSessionMiddleware, _mark_cookie_for_deletion


class CacheBackedAuthenticationMiddleware(AuthenticationMiddleware):
    def process_request(self, request):
        session_user_id = SafeSessionMiddleware.get_user_id_from_session(request)
        request.user = get_user(request)
        if session_user_id is not None and not request.user.is_authenticated and request.session.session_key is None:
            # django.contrib.auth.get_user flushed the session: the auth hash did not verify.
            _mark_cookie_for_deletion(request)
