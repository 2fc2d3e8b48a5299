"""Stand-in for edx-platform ``lms/djangoapps/courseware/exceptions.py``."""


class Redirect(Exception):
    def __init__(self, url):
        super().__init__()
        self.url = url


class CourseAccessRedirect(Redirect):
    """Raised by ``check_course_access_with_redirect`` when the learner must go elsewhere
    (the course about page when not enrolled); ``render_xblock`` turns it into Http404."""

    def __init__(self, url, access_error=None):
        super().__init__(url)
        self.access_error = access_error
