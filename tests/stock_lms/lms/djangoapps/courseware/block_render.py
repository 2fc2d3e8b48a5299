"""Stand-in for edx-platform ``lms/djangoapps/courseware/block_render.py``.

``handle_xblock_callback`` (``/courses/<course>/xblock/<usage>/handler/<handler>[/<suffix>]``)
is ``csrf_exempt``, ``xframe_options_exempt`` and ``non_atomic_requests``, and
then checks CSRF *itself* for a logged-in user: it runs
``CsrfViewMiddleware(...).process_view(request, None, (), {})`` and returns
its refusal (a 403) when there is one. A request without a session user is
anonymous here (the real view also tries JWT and OAuth2 bearer tokens, not
imitated), and anonymous requests other than GET get
``403 Unauthenticated``. The block is looked up without any enrollment
check (``get_block_by_usage_id`` only checks block access), an unknown block
or handler is Http404, and a block's ``ProcessingError`` is answered
``{"success": <message>}`` with 200.

``handle_xblock_callback_noauth`` (``handler_noauth``) is ``csrf_exempt`` and runs the
handler for an unknown (anonymous) user.

The runtime given to bound blocks publishes ``grade`` events as
``SCORE_PUBLISHED`` for authenticated users only (``handle_grade_event``).
"""

import logging

from django.http import Http404, HttpResponseForbidden, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.db import transaction
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey, UsageKey

from lms.djangoapps.grades.signals.signals import SCORE_PUBLISHED
from xmodule.exceptions import NotFoundError, ProcessingError
from xmodule.modulestore.django import modulestore
from xmodule.modulestore.exceptions import ItemNotFoundError
from xmodule.x_module import NoSuchHandlerError

from .access import has_access

log = logging.getLogger(__name__)


def quote_slashes(text):
    """``openedx/core/lib/url_utils.py`` ``quote_slashes``: ``;`` -> ``;;``, ``/`` -> ``;_``."""
    return text.replace(";", ";;").replace("/", ";_")


def unquote_slashes(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == ";" and i + 1 < len(text):
            out.append("/" if text[i + 1] == "_" else ";")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class LmsRuntime:
    """What a bound block can ask of the LMS: its user, child blocks, handler URLs, publishing."""

    def __init__(self, user, request, course_key):
        self.user = user
        self.request = request
        self.course_id = course_key
        self.user_is_staff = bool(has_access(user, "staff", course_key))

    def get_block(self, usage_key):
        try:
            descriptor = modulestore().get_item(usage_key)
        except ItemNotFoundError:
            return None
        return get_block_for_descriptor(self.user, self.request, descriptor, None, self.course_id)

    def handler_url(self, block, handler_name, suffix="", query=""):  # pylint: disable=unused-argument
        kwargs = {
            "course_id": str(self.course_id),
            "usage_id": quote_slashes(str(block.location)),
            "handler": handler_name,
        }
        if suffix:
            kwargs["suffix"] = suffix
        return reverse("xblock_handler", kwargs=kwargs)

    def publish(self, block, event_type, event):
        # handle_grade_event: anonymous users' scores are dropped; an unknown user
        # (handler_noauth) has no stored state to score either.
        if event_type == "grade" and self.user is not None and not self.user.is_anonymous \
                and getattr(self.user, "known", True):
            SCORE_PUBLISHED.send(
                sender=None,
                block=block,
                user=self.user,
                raw_earned=event["value"],
                raw_possible=event["max_value"],
                only_if_higher=event.get("only_if_higher"),
                score_deleted=event.get("score_deleted"),
                grader_response=event.get("grader_response"),
            )


def get_block_for_descriptor(user, request, block, field_data_cache, course_key, disable_staff_debug_info=False,  # pylint: disable=unused-argument
                             course=None, will_recheck_access=False):
    """The block bound to the user, or None when the user may not load it."""
    if not has_access(user, "load", block, course_key):
        return None
    return block.bind_for_student(LmsRuntime(user, request, course_key))


def _get_usage_key_for_course(course_key, usage_id):
    try:
        return UsageKey.from_string(unquote_slashes(usage_id)).map_into_course(course_key)
    except InvalidKeyError as exc:
        raise Http404("Invalid location") from exc


def _get_block_by_usage_key(usage_key):
    try:
        block = modulestore().get_item(usage_key)
    except ItemNotFoundError as exc:
        log.warning("Invalid location for course id %s: %s", usage_key.course_key, usage_key)
        raise Http404 from exc
    return block, {"module": {"display_name": block.display_name_with_default, "usage_key": str(block.location)}}


def get_block_by_usage_id(request, course_id, usage_id, disable_staff_debug_info=False, course=None,
                          will_recheck_access=False):
    course_key = CourseKey.from_string(course_id)
    usage_key = _get_usage_key_for_course(course_key, usage_id)
    block, tracking_context = _get_block_by_usage_key(usage_key)
    instance = get_block_for_descriptor(request.user, request, block, None, usage_key.course_key,
                                        disable_staff_debug_info, course, will_recheck_access)
    if instance is None:
        raise Http404
    return instance, tracking_context


def _invoke_xblock_handler(request, course_id, usage_id, handler, suffix, course=None):
    try:
        course_key = CourseKey.from_string(course_id)
    except InvalidKeyError as exc:
        raise Http404 from exc
    with modulestore().bulk_operations(course_key):
        usage_key = _get_usage_key_for_course(course_key, usage_id)
        instance, _ = get_block_by_usage_id(request, course_id, str(usage_key), course=course)
        try:
            return instance.handle(handler, request, suffix or "")
        except NoSuchHandlerError:
            log.exception("XBlock %s attempted to access missing handler %r", instance, handler)
            raise Http404  # pylint: disable=raise-missing-from
        except NotFoundError:
            raise Http404  # pylint: disable=raise-missing-from
        except ProcessingError as err:
            log.warning("Module encountered an error while processing AJAX call", exc_info=True)
            return JsonResponse({"success": err.args[0]}, status=200)


@csrf_exempt
@xframe_options_exempt
@transaction.non_atomic_requests
def handle_xblock_callback_noauth(request, course_id, usage_id, handler, suffix=None):
    """Unauthenticated handlers: the block runs for an unknown user (``user.known = False``)."""
    request.user.known = False
    course_key = CourseKey.from_string(course_id)
    with modulestore().bulk_operations(course_key):
        course = modulestore().get_course(course_key, depth=0)
        return _invoke_xblock_handler(request, course_id, usage_id, handler, suffix, course=course)


@csrf_exempt
@xframe_options_exempt
@transaction.non_atomic_requests
def handle_xblock_callback(request, course_id, usage_id, handler, suffix=None):
    # Session authentication: the view checks CSRF itself (it is csrf_exempt for the middleware).
    if request.user.is_authenticated:
        error = CsrfViewMiddleware(get_response=lambda request: None).process_view(request, None, (), {})
        if error:
            return error
    if request.method != "GET" and not (request.user and request.user.is_authenticated):
        return HttpResponseForbidden("Unauthenticated")
    request.user.known = request.user.is_authenticated
    try:
        course_key = CourseKey.from_string(course_id)
    except InvalidKeyError:
        raise Http404(f"{course_id} is not a valid course key")  # pylint: disable=raise-missing-from
    with modulestore().bulk_operations(course_key):
        course = modulestore().get_course(course_key)
        return _invoke_xblock_handler(request, course_id, usage_id, handler, suffix, course=course)
