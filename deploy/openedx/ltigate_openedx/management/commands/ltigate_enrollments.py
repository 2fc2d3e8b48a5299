"""``./manage.py lms ltigate_enrollments``: the course enrollments ltigate made.

- ``list [--course KEY]``: one line per enrollment ltigate created or
  re-activated (never one the learner already had);
- ``remove --course KEY [--user USERNAME]``: unenrolls those learners through
  the platform seam (``CourseEnrollment.unenroll``) and deletes the records.
  ``USERNAME`` is the gateway username or the LMS username.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from ltigate_openedx import enrollment
from ltigate_openedx.models import LtigateEnrollment


def _records(course=None, user=None):
    records = LtigateEnrollment.objects.select_related("user", "user__ltigate_account")
    if course:
        records = records.filter(course_key=course)
    if user:
        records = records.filter(Q(user__username=user) | Q(user__ltigate_account__username=user))
    return records.order_by("course_key", "user__username")


class Command(BaseCommand):
    help = "Lists or removes the course enrollments ltigate made for its learners."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="list ltigate's enrollments")
        listing.add_argument("--course", help="only this course key")
        removing = actions.add_parser("remove", help="unenroll and forget ltigate's enrollments")
        removing.add_argument("--course", required=True, help="the course key")
        removing.add_argument("--user", help="only this learner (gateway or LMS username)")

    def handle(self, *args, **options):
        if options["action"] == "list":
            self._list(options.get("course"))
        else:
            self._remove(options["course"], options.get("user"))

    def _list(self, course):
        records = list(_records(course))
        for record in records:
            self.stdout.write(
                "\t".join(
                    [
                        record.course_key,
                        enrollment.gateway_username(record.user),
                        record.user.get_username(),
                        record.mode,
                        record.created.isoformat(timespec="seconds"),
                    ]
                )
            )
        self.stdout.write(f"{len(records)} enrollment(s) made by ltigate")

    def _remove(self, course, user):
        records = list(_records(course, user))
        if not records:
            self.stdout.write("no enrollment made by ltigate matches")
            return
        results = enrollment.remove(records)
        for _, line in results:
            self.stdout.write(line)
        if not all(ok for ok, _ in results):
            raise CommandError("some enrollments could not be removed (see above)")
