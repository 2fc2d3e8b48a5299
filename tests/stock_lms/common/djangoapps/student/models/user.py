"""Stand-in for edx-platform ``common/djangoapps/student/models/user.py`` ``UserProfile``."""

from django.conf import settings
from django.db import models


class UserProfile(models.Model):
    """The profile every LMS account has (table ``auth_userprofile``, ``user.profile``).

    The fields the LMS's own code reads around login and enrollment; the
    rest (demographics, bio, ...) are left out.
    """

    class Meta:
        app_label = "student"
        db_table = "auth_userprofile"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, unique=True, db_index=True, related_name="profile",
                                on_delete=models.CASCADE)
    name = models.CharField(blank=True, max_length=255, db_index=True)
    meta = models.TextField(blank=True)
    courseware = models.CharField(blank=True, max_length=255, default="course.xml")
    language = models.CharField(blank=True, max_length=255, db_index=True)
    location = models.CharField(blank=True, max_length=255, db_index=True)
    year_of_birth = models.IntegerField(blank=True, null=True, db_index=True)
    gender = models.CharField(blank=True, null=True, max_length=6, db_index=True)
    level_of_education = models.CharField(blank=True, null=True, max_length=6, db_index=True)
    mailing_address = models.TextField(blank=True, null=True)
    city = models.TextField(blank=True, null=True)
    country = models.CharField(blank=True, null=True, max_length=2)
    goals = models.TextField(blank=True, null=True)
    bio = models.CharField(blank=True, null=True, max_length=3000, db_index=False)

    def __str__(self):
        return f"profile of {self.user_id}"
