"""Gateway-only LMS sessions: a session the assertion middleware logged in is
usable only through the gateway.

When the middleware logs a learner in from an assertion, it marks the Django
session (``MARK_KEY``). A later request *without* an assertion header whose
session carries the mark is not a gateway request: its cookie reached the LMS
some other way (copied, or sent to the LMS's own host). ``end_if_marked``
logs that session out before the view runs (``django.contrib.auth.logout``,
which flushes it: the row is deleted and the response drops the cookie), and
the request goes on as anonymous. A session logged in any other way (the
LMS's own login page, SSO, ``login_as``...) carries no mark and is never
touched, even after it made requests through the gateway as the same user.

Open edX's safe-sessions middleware
(openedx/core/djangoapps/safe_sessions/middleware.py) pins a session to the
user it started the request with and, at response time, flushes the session
and refuses the response when ``request.user`` or the session's user changed
to another *non-None* id, unless ``mark_user_change_as_expected(new_user_id)``
was called during the request (it stores the id in a request cache, and the
check only asks whether it was set). A logout ends with both ids None, which
that check does not count as a change; we still call
``mark_user_change_as_expected(None)``, exactly as the LMS's own
``LogoutView.dispatch`` (openedx/core/djangoapps/user_authn/views/logout.py)
does after ``logout(request)``.
"""

import logging

from django.conf import settings
from django.contrib.auth import logout

from . import platform

log = logging.getLogger(__name__)

MARK_KEY = "ltigate_gateway_login"


def mark(request):
    """Marks the session as logged in by the gateway's assertion."""
    request.session[MARK_KEY] = True


def end_if_marked(request):
    """Logs out a gateway session met without an assertion; True if it did."""
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        # No session to end, and no reason to load one.
        return False
    session = getattr(request, "session", None)
    if session is None or not session.get(MARK_KEY):
        return False
    user = getattr(request, "user", None)
    user_id = getattr(user, "pk", None)
    logout(request)
    platform.get().mark_user_change_as_expected(None)
    log.info("ltigate: ended the gateway session of user %s on a request without an assertion", user_id)
    return True
