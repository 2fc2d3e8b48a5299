"""Enrolling ltigate's learners in the courses they launch, and undoing it.

The stock LMS wants learners enrolled: locked assets, course-wide regrades
and the stock ``/xblock`` view check enrollment. On a request whose valid
assertion logs a learner in, the middleware calls ``on_login``: the first
time a Django session sees an assertion's ``course_key``, the learner is
enrolled in that course in ``LTIGATE_ENROLLMENT_MODE`` (``"none"``: never),
through the platform seam. The session remembers the courses it has handled,
whatever the outcome, so later requests cost no database work; a refusal is
tried again in the learner's next LMS session.

Only enrollments ltigate made (created, or re-activated from inactive) are
recorded in ``LtigateEnrollment``. An enrollment the learner already had is
never recorded, so ``remove`` (the ``ltigate_enrollments`` command and the
admin) never touches it.
"""

import logging

from django.db import transaction

from . import conf, platform
from .models import LtigateEnrollment

log = logging.getLogger(__name__)

# Session key: {"user": <user pk>, "courses": [course keys handled]}.
SESSION_KEY = "ltigate_enrollment_handled"
# The most courses one session remembers (the oldest are forgotten).
REMEMBERED = 100


def enrollment_mode():
    """The configured mode, or None when enrollment is off."""
    mode = conf.get("LTIGATE_ENROLLMENT_MODE")
    if not mode or mode == "none":
        return None
    return mode


def on_login(request, user, claims):
    """Enrolls ``user`` in the assertion's course, once per Django session."""
    mode = enrollment_mode()
    course_key = claims.get("course_key")
    if mode is None or not isinstance(course_key, str) or not course_key:
        return
    handled = request.session.get(SESSION_KEY)
    if not (
        isinstance(handled, dict)
        and handled.get("user") == user.pk
        and isinstance(handled.get("courses"), list)
    ):
        handled = {"user": user.pk, "courses": []}
    if course_key in handled["courses"]:
        return
    ensure_enrolled(user, course_key, mode)
    handled["courses"] = (handled["courses"] + [course_key])[-REMEMBERED:]
    request.session[SESSION_KEY] = handled


def ensure_enrolled(user, course_key, mode):
    """Enrolls ``user`` through the seam and records what ltigate made.

    Returns True when ltigate created or re-activated the enrollment. Never
    raises: a course that does not exist, a refusal or any other error is
    logged, and the request goes on.
    """
    try:
        with transaction.atomic():
            made = platform.get().enroll(user, course_key, mode)
            if made:
                LtigateEnrollment.objects.update_or_create(
                    user=user, course_key=course_key, defaults={"mode": mode}
                )
    except platform.NotFound:
        log.warning("ltigate: not enrolling user %s in %s: no such course", user.pk, course_key)
        return False
    except (platform.EnrollmentRefused, platform.InvalidKey) as exc:
        log.warning("ltigate: not enrolling user %s in %s: %s", user.pk, course_key, exc)
        return False
    except Exception:  # pylint: disable=broad-except
        log.exception("ltigate: enrolling user %s in %s failed", user.pk, course_key)
        return False
    if made:
        log.info("ltigate: enrolled user %s in %s (%s)", user.pk, course_key, mode)
    return made


def gateway_username(user):
    account = getattr(user, "ltigate_account", None)
    return account.username if account is not None else "-"


def remove(records):
    """Unenrolls each record's learner through the seam, then deletes it.

    Returns one (ok, line) per record saying what happened. A record whose
    unenrollment fails is kept.
    """
    results = []
    for record in records:
        who = f"{gateway_username(record.user)} ({record.user.get_username()})"
        try:
            with transaction.atomic():
                was_active = platform.get().unenroll(record.user, record.course_key)
                record.delete()
        except Exception as exc:  # pylint: disable=broad-except
            log.warning("ltigate: unenrolling %s from %s failed: %s", who, record.course_key, exc)
            results.append((False, f"could not unenroll {who} from {record.course_key}: {exc}; record kept"))
            continue
        if was_active:
            results.append((True, f"unenrolled {who} from {record.course_key}; record deleted"))
        else:
            results.append((True, f"{who} was not enrolled in {record.course_key} any more; record deleted"))
    return results
