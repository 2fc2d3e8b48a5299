"""This app's tables: which LMS accounts are ltigate's learners, and which
enrollments ltigate made for them."""

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


class LtigateEnrollment(models.Model):
    """A course enrollment ltigate made (created or re-activated).

    Enrollments the learner already had are never recorded, so removing
    ltigate's enrollments (the ``ltigate_enrollments`` command, or the admin
    action) never touches them.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ltigate_enrollments",
    )
    course_key = models.CharField(max_length=255, db_index=True)
    # As long as CourseEnrollment.mode.
    mode = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ltigate enrollment"
        constraints = [
            models.UniqueConstraint(fields=["user", "course_key"], name="ltigate_enrollment_user_course"),
        ]

    def __str__(self):
        return f"{self.user_id} in {self.course_key} ({self.mode})"
