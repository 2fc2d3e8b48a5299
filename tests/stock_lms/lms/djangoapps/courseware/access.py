"""Stand-in for edx-platform ``lms/djangoapps/courseware/access.py`` ``has_access`` (two actions)."""

from .access_utils import ACCESS_DENIED, ACCESS_GRANTED, check_start_date


def _is_staff(user):
    # GlobalStaff (user.is_staff); course staff roles are not imitated.
    return bool(user and user.is_authenticated and user.is_staff)


def has_access(user, action, obj, course_key=None):  # pylint: disable=unused-argument
    """``staff``: global staff. ``load`` on a course: started (``check_course_open_for_learner``)
    or staff. ``load`` on a block: granted (no release dates or group access in the fixture)."""
    if action == "staff":
        return ACCESS_GRANTED if _is_staff(user) else ACCESS_DENIED
    if action == "load":
        if _is_staff(user):
            return ACCESS_GRANTED
        start = getattr(obj, "start", None)
        if getattr(obj, "category", None) == "course":
            return check_start_date(user, obj.days_early_for_beta, start, obj.id)
        return ACCESS_GRANTED
    raise ValueError(f"action {action!r} is not imitated")
