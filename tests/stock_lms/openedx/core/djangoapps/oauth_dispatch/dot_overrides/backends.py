"""Stand-in for ``openedx/core/djangoapps/oauth_dispatch/dot_overrides/backends.py``
(the LMS's password backend in the Tutor v21 releases)."""

from django.contrib.auth.backends import AllowAllUsersModelBackend


class EdxRateLimitedAllowAllUsersModelBackend(AllowAllUsersModelBackend):
    """``RateLimitMixin`` + ``AllowAllUsersModelBackend``: a ``ModelBackend`` subclass that
    authenticates inactive users too (the login view refuses them). The rate limiting of
    login attempts is not imitated."""
