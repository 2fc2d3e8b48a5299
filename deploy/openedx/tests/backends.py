"""Authentication backends shaped like the LMS's."""

from django.contrib.auth.backends import AllowAllUsersModelBackend, BaseBackend


class NoUsersBackend(BaseBackend):
    """A permissions-only backend, like rules' ObjectPermissionBackend."""


class LmsLikeModelBackend(AllowAllUsersModelBackend):
    """Stands in for EdxRateLimitedAllowAllUsersModelBackend."""
