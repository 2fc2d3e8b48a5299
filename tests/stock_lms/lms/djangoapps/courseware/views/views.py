"""Stand-in for edx-platform ``lms/djangoapps/courseware/views/views.py``.

``render_xblock(request, usage_key_string, check_if_enrolled=True, disable_staff_debug_info=False)``
(``/xblock/<usage_key_string>``), as the real view:

- decorated ``require_http_methods(["GET", "POST"])``, ``ensure_valid_usage_key``
  (an unparsable key *in the URL kwargs* is Http404; one passed positionally
  is not checked and fails in ``UsageKey.from_string``),
  ``xframe_options_exempt``, ``transaction.non_atomic_requests`` and
  ``ensure_csrf_cookie``;
- ``?view=`` other than ``student_view``/``public_view`` is a 400;
- ``get_course_with_access(user, 'load', course_key, check_if_enrolled=...)``:
  a learner who is not enrolled (anonymous users included) in a non-public
  course raises ``CourseAccessRedirect``, which the view turns into
  **Http404**; global staff pass;
- the block is looked up and bound for the user (Http404 when missing);
- every GET parameter goes into the student view context;
- when the enclosing sequence says ``descendants_are_gated``, the view
  redirects to ``reverse('render_xblock', kwargs={'usage_key_string': <sequence>})``;
- the page is ``courseware/courseware-chromeless.html`` around the block's fragment.

``jump_to_id`` finds the block by id (``get_items(..., qualifiers={'name': id})``,
Http404 when none) and hands over to ``jump_to``, which redirects to the
Learning MFE (``get_courseware_url``), on another host.
"""

import json

from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey, UsageKey

from common.djangoapps.util.views import ensure_valid_course_key, ensure_valid_usage_key
from openedx.features.course_experience.url_helpers import get_courseware_url
from xmodule.modulestore import ModuleStoreEnum
from xmodule.modulestore.django import modulestore
from xmodule.modulestore.exceptions import ItemNotFoundError, NoPathToItem

from ..access import has_access
from ..block_render import get_block_by_usage_id
from ..courses import get_course_with_access
from ..exceptions import CourseAccessRedirect


def enclosing_sequence_for_gating_checks(block):
    """The first ``sequential`` above ``block`` (bound for the user), None for a sequential itself."""
    seq_tags = ["sequential"]
    if block.location.block_type in seq_tags:
        return None
    ancestor = block
    while ancestor and ancestor.location.block_type not in seq_tags:
        ancestor = ancestor.get_parent()
    if ancestor:
        return block.runtime.get_block(ancestor.location)
    return None


# The page script every rendered block page carries: the LMS's pages read the
# csrftoken cookie and send it as X-CSRFToken with every AJAX POST
# (common/static/js/src/ajax_prefix.js, jquery.cookie). Results are written
# as "<status> <body>" for the browser test to read.
PAGE_SCRIPT = """
function stockLmsCsrfToken() {
  var match = document.cookie.match(/(?:^|;\\s*)csrftoken=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : '';
}
function stockLmsPost(url, body, resultId) {
  var out = document.getElementById(resultId);
  fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {
      'X-CSRFToken': stockLmsCsrfToken(),
      'X-Requested-With': 'XMLHttpRequest',
      'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8'
    },
    body: body
  }).then(function (response) {
    return response.text().then(function (text) { out.textContent = response.status + ' ' + text; });
  }).catch(function (error) { out.textContent = 'error ' + error; });
}
"""

EVENT_SCRIPT = """
document.getElementById('event-submit').addEventListener('click', function () {
  stockLmsPost('/event', 'event_type=stock_lms.probe&event=' + encodeURIComponent('{}') +
    '&page=' + encodeURIComponent(window.location.href), 'event-result');
});
"""


def render_chromeless(request, block, fragment, status=200):
    """``courseware/courseware-chromeless.html``: the block with no LMS chrome.

    ``#ltigate-user`` (the requesting user's username) and the tracking-event
    button are this stand-in's probes for the browser test; the real template
    has neither, though its Logger posts to ``/event`` the same way.
    """
    username = request.user.username if request.user.is_authenticated else ""
    html = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(block.display_name_with_default)} | Stock LMS</title>"
        f"<script>{PAGE_SCRIPT}</script></head>"
        '<body class="view-in-course view-courseware courseware">'
        f'<div id="ltigate-user">{escape(username)}</div>'
        f'<main id="content" class="content-wrapper" data-usage-id="{escape(str(block.location))}">'
        f"{fragment.content}</main>"
        '<div class="tracking"><button type="button" id="event-submit">Send an event</button>'
        '<span id="event-result"></span></div>'
        f"<script>{EVENT_SCRIPT}</script>"
        "</body></html>"
    )
    return HttpResponse(html, status=status)


@require_http_methods(["GET", "POST"])
@ensure_valid_usage_key
@xframe_options_exempt
@transaction.non_atomic_requests
@ensure_csrf_cookie
def render_xblock(request, usage_key_string, check_if_enrolled=True, disable_staff_debug_info=False):
    if not disable_staff_debug_info:
        disable_staff_debug_info = request.GET.get("disable_staff_debug_info", "false").lower() in ("1", "true")
    usage_key = UsageKey.from_string(usage_key_string)
    usage_key = usage_key.replace(course_key=modulestore().fill_in_run(usage_key.course_key))
    course_key = usage_key.course_key

    requested_view = request.GET.get("view", "student_view")
    if requested_view not in ("student_view", "public_view"):
        return HttpResponseBadRequest(f"Rendering of the xblock view '{escape(requested_view)}' is not supported.")

    staff_access = bool(has_access(request.user, "staff", course_key))
    is_preview = request.GET.get("preview", "0") == "1"
    store = modulestore()
    branch_type = ModuleStoreEnum.Branch.draft_preferred if is_preview and staff_access \
        else ModuleStoreEnum.Branch.published_only

    with store.bulk_operations(course_key):
        with store.branch_setting(branch_type, course_key):
            try:
                course = get_course_with_access(request.user, "load", course_key, check_if_enrolled=check_if_enrolled)
            except CourseAccessRedirect:
                raise Http404("Course not found.")  # pylint: disable=raise-missing-from

            block, _ = get_block_by_usage_id(
                request, str(course_key), str(usage_key),
                disable_staff_debug_info=disable_staff_debug_info, course=course,
            )

            student_view_context = request.GET.dict()
            student_view_context["show_bookmark_button"] = request.GET.get("show_bookmark_button", "0") == "1"
            student_view_context["show_title"] = request.GET.get("show_title", "1") == "1"

            ancestor_sequence_block = enclosing_sequence_for_gating_checks(block)
            if ancestor_sequence_block:
                context = {"specific_masquerade": False}
                if ancestor_sequence_block.descendants_are_gated(context):
                    return redirect(
                        reverse("render_xblock", kwargs={"usage_key_string": str(ancestor_sequence_block.location)})
                    )

            fragment = block.render(requested_view, context=student_view_context)
            return render_chromeless(request, block, fragment)


@ensure_csrf_cookie
@ensure_valid_course_key
def jump_to_id(request, course_id, module_id):
    course_key = CourseKey.from_string(course_id)
    items = modulestore().get_items(course_key, qualifiers={"name": module_id})
    if not items:
        raise Http404(f"Could not find id: {module_id} in course_id: {course_id}.")
    return jump_to(request, course_id, str(items[0].location))


@ensure_csrf_cookie
def jump_to(request, course_id, location):
    try:
        course_key = CourseKey.from_string(course_id)
        usage_key = UsageKey.from_string(location).replace(course_key=course_key)
    except InvalidKeyError as exc:
        raise Http404("Invalid course_key or usage_key") from exc
    staff_access = bool(has_access(request.user, "staff", course_key))
    try:
        redirect_url = get_courseware_url(usage_key=usage_key, request=request, is_staff=staff_access)
    except (ItemNotFoundError, NoPathToItem):
        redirect_url = get_courseware_url(
            usage_key=modulestore().make_course_usage_key(course_key), request=request, is_staff=staff_access
        )
    return redirect(redirect_url)


def course_about(request, course_id):  # pylint: disable=unused-argument
    """``about_course``: only here so ``CourseAccessRedirect`` can reverse it."""
    return HttpResponse(json.dumps({"course_id": course_id, "page": "about"}), content_type="application/json")


def dashboard(request):  # pylint: disable=unused-argument
    """``dashboard``: only here so redirects can reverse it."""
    return HttpResponse("dashboard")
