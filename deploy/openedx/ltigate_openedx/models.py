"""This app's table: which LMS accounts are ltigate's learners."""

from django.conf import settings
from django.db import models


class LtigateUser(models.Model):
    """Links an LMS account to the gateway username that logs it in.

    Only these accounts are logged in by the middleware and reported to
    ltigate's score API; an account of the same name made any other way is
    never taken over. ``username`` is the assertion's ``sub``. It equals the
    account's own username for accounts ltigate created, and differs for the
    seed plugin's learners that ltigate adopted (their LMS usernames are
    random).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="ltigate_account",
    )
    username = models.CharField(
        max_length=150,
        unique=True,
        help_text="The gateway's username for this learner (the assertion's sub).",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ltigate user"

    def __str__(self):
        return self.username

