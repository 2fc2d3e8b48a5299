"""Stand-in for edx-platform ``common/djangoapps/track/views/__init__.py`` ``user_track``."""

import json
import logging

from django.http import HttpResponse

log = logging.getLogger("tracking")


def _get_request_value(request, value_name, default=""):
    if request.method == "GET":
        return request.GET.get(value_name, default)
    if request.method == "POST":
        return request.POST.get(value_name, default)
    return default


def user_track(request):
    """``/event``: logs a browser tracking event and answers ``success``.

    Not ``csrf_exempt``: a POST passes ``CsrfViewMiddleware`` (token *and*
    Origin) like any form. Anonymous users may send events.
    """
    try:
        username = request.user.username
    except AttributeError:
        username = "anonymous"
    name = _get_request_value(request, "event_type")
    data = _get_request_value(request, "event", {})
    page = _get_request_value(request, "page")
    if isinstance(data, str) and data:
        try:
            data = json.loads(data)
        except ValueError:
            pass
    log.info("event %s from %r on %s: %s", name, username, page, data)
    return HttpResponse("success")
