"""Stand-in for edx-platform ``openedx/features/course_experience/url_helpers.py``."""

from django.conf import settings

from xmodule.modulestore.django import modulestore
from xmodule.modulestore.search import path_to_location


def get_courseware_url(usage_key, request=None, is_staff=False):
    """The Learning MFE URL of a block: ``{LEARNING_MICROFRONTEND_URL}/course/<course>[/<sequence>[/<unit>]]``.

    Raises ItemNotFoundError / NoPathToItem like ``path_to_location``.
    """
    course_key = usage_key.course_key.replace(version_guid=None, branch=None)
    preview = request.GET.get("preview") if request is not None and request.GET else False
    path = path_to_location(modulestore(), usage_key, request, full_path=True)
    if len(path) <= 1:
        sequence_key, unit_key = None, None
    elif len(path) == 2:
        sequence_key, unit_key = path[1], None
    elif len(path) == 3:
        sequence_key, unit_key = path[2], None
    else:
        sequence_key, unit_key = path[2], path[3]
    return make_learning_mfe_courseware_url(
        course_key, sequence_key, unit_key, params=request.GET if request is not None and request.GET else None,
        preview=preview and is_staff,
    )


def make_learning_mfe_courseware_url(course_key, sequence_key=None, unit_key=None, params=None, preview=None):
    base = settings.LEARNING_MICROFRONTEND_URL
    link = f"{base}/{'preview/' if preview and (unit_key or sequence_key) else ''}course/{course_key}"
    if sequence_key:
        link += f"/{sequence_key}"
        if unit_key:
            link += f"/{unit_key}"
    if params:
        link += f"?{params.urlencode()}"
    return link
