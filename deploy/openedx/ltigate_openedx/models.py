"""The one table this app adds: which LMS accounts ltigate created."""

from django.conf import settings
from django.db import models


class LtigateUser(models.Model):
    """Marks an account created through ltigate's assertion.

    Only these accounts are logged in by the middleware and reported to
    ltigate's score API; an account of the same name made any other way is
    never taken over.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="ltigate_account",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ltigate user"

    def __str__(self):
        return f"ltigate user {self.user_id}"
