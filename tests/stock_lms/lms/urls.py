"""Stand-in for edx-platform ``lms/urls.py``: the LMS's routes that a gateway meets, with the
real patterns (``openedx/core/constants.py`` ``COURSE_ID_PATTERN``, ``USAGE_ID_PATTERN``,
``USAGE_KEY_PATTERN``), and the plugins' URLs appended by edx-django-utils
(``get_plugin_url_patterns(ProjectType.LMS)``), as the real file ends."""

from django.urls import include, path, re_path
from edx_django_utils.plugins import get_plugin_url_patterns

from common.djangoapps.util import views as util_views
from lms.djangoapps.courseware.block_render import handle_xblock_callback, handle_xblock_callback_noauth
from lms.djangoapps.courseware.views import views as courseware_views
from openedx.core.djangoapps.user_authn.views import login as login_views

COURSE_KEY_PATTERN = r"(?P<course_key_string>[^/+]+(/|\+)[^/+]+(/|\+)[^/?]+)"
COURSE_ID_PATTERN = COURSE_KEY_PATTERN.replace("course_key_string", "course_id")
USAGE_KEY_PATTERN = r"(?P<usage_key_string>(?:i4x://?[^/]+/[^/]+/[^/]+/[^@]+(?:@[^/]+)?)|(?:[^/]+))"
USAGE_ID_PATTERN = r"(?P<usage_id>(?:i4x://?[^/]+/[^/]+/[^/]+/[^@]+(?:@[^/]+)?)|(?:[^/]+))"

RENDER_XBLOCK_NAME = "render_xblock"

urlpatterns = [
    # common/djangoapps/student and user_authn: the login page and its form post.
    path("login", login_views.login, name="signin_user"),
    re_path(r"^dashboard/?$", courseware_views.dashboard, name="dashboard"),
    # Event tracking endpoints
    path("", include("common.djangoapps.track.urls")),
    # Course assets
    path("", include("openedx.core.djangoapps.contentserver.urls")),
    # User API endpoints
    path("api/user/", include("openedx.core.djangoapps.user_api.urls")),
    re_path(
        rf"^courses/{COURSE_ID_PATTERN}/jump_to/(?P<location>.*)$",
        courseware_views.jump_to,
        name="jump_to",
    ),
    re_path(
        rf"^courses/{COURSE_ID_PATTERN}/jump_to_id/(?P<module_id>.*)$",
        courseware_views.jump_to_id,
        name="jump_to_id",
    ),
    # xblock Handler APIs
    re_path(
        rf"^courses/{COURSE_ID_PATTERN}/xblock/{USAGE_ID_PATTERN}/handler/(?P<handler>[^/]*)(?:/(?P<suffix>.*))?$",
        handle_xblock_callback,
        name="xblock_handler",
    ),
    re_path(
        rf"^courses/{COURSE_ID_PATTERN}/xblock/{USAGE_ID_PATTERN}/handler_noauth/(?P<handler>[^/]*)(?:/(?P<suffix>.*))?$",
        handle_xblock_callback_noauth,
        name="xblock_handler_noauth",
    ),
    # xblock Rendering View URL
    re_path(rf"^xblock/{USAGE_KEY_PATTERN}$", courseware_views.render_xblock, name=RENDER_XBLOCK_NAME),
    path("calculate", util_views.calculate),
    re_path(rf"^courses/{COURSE_ID_PATTERN}/about$", courseware_views.course_about, name="about_course"),
]

urlpatterns.extend(get_plugin_url_patterns("lms.djangoapp"))
