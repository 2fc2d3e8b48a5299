"""``manage.py stock_lms_setup``: the direct LMS account, idempotently.

Creates (or resets) ``direct_learner`` / ``direct-password``, an ordinary
account like one made by registration (with its ``UserProfile``), enrolled in
the fixture course in ``audit`` mode so that it can open the stock
``/xblock/<unit>`` view directly.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from common.djangoapps.student.models import CourseEnrollment, UserProfile
from stock_lms.fixture_course import COURSE_KEY

USERNAME = "direct_learner"
PASSWORD = "direct-password"


class Command(BaseCommand):
    help = "Create the direct LMS user direct_learner / direct-password (idempotent)."

    def handle(self, *args, **options):
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(
                username=USERNAME, defaults={"email": f"{USERNAME}@example.com", "is_active": True}
            )
            user.set_password(PASSWORD)
            user.is_active = True
            user.save()
            UserProfile.objects.get_or_create(user=user, defaults={"name": "Direct Learner"})
            if not CourseEnrollment.is_enrolled(user, COURSE_KEY):
                CourseEnrollment.enroll(user, COURSE_KEY, mode="audit")
        self.stdout.write(f"{'created' if created else 'updated'} {USERNAME}, enrolled in {COURSE_KEY}")
