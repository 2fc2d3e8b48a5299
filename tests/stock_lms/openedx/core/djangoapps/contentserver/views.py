"""Stand-in for edx-platform ``openedx/core/djangoapps/contentserver/views.py``.

On edx-platform master the content server is a view (``course_assets_view``,
``require_safe``), routed by ``contentserver/urls.py`` for ``^c4x/``,
``^asset-v1:`` and ``^assets/courseware/``; older releases ran the same code
as ``contentserver/middleware.py`` ``StaticContentServer``. Behaviour imitated
(``process_request``, ``is_user_authorized``, ``set_caching_headers``):

- ``asset-v1:...+type@asset+block/<name>`` is read as ``...block@<name>``;
- ``/assets/courseware/v1/<md5>/<key>``: a digest that is not the asset's is
  answered **301** to ``/assets/courseware/v1/<actual md5>/<key with block@>``;
- an unparsable key is 400, an unknown asset 404;
- a *locked* asset needs an authenticated user who is staff or
  ``CourseEnrollment.is_enrolled``: otherwise **403** ``Unauthorized``;
- ``If-Modified-Since`` equal to the upload time is 304;
- the response carries ``X-Frame-Options: ALLOW``, ``Accept-Ranges: bytes``,
  ``Last-Modified``, ``Vary: Origin`` and, for locked assets,
  ``Cache-Control: private, no-cache, no-store`` (no cache TTL is configured).

Not imitated: byte ranges, the CDN user-agent check, ``python_lib.zip``.
"""

import logging

from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotFound,
    HttpResponseNotModified,
    HttpResponsePermanentRedirect,
)
from django.views.decorators.http import require_safe
from opaque_keys import InvalidKeyError
from opaque_keys.edx.locator import AssetLocator

from common.djangoapps.student.models import CourseEnrollment
from xmodule.assetstore.assetmgr import AssetManager
from xmodule.contentstore.content import XASSET_LOCATION_TAG, StaticContent
from xmodule.exceptions import NotFoundError
from xmodule.modulestore.exceptions import InvalidLocationError, ItemNotFoundError

log = logging.getLogger(__name__)

HTTP_DATE_FORMAT = "%a, %d %b %Y %H:%M:%S GMT"


@require_safe
def course_assets_view(request):
    return process_request(request)


def is_asset_request(request):
    return (
        request.path.startswith("/" + XASSET_LOCATION_TAG + "/")
        or request.path.startswith("/" + AssetLocator.CANONICAL_NAMESPACE)
        or StaticContent.is_versioned_asset_path(request.path)
    )


def process_request(request):
    if not is_asset_request(request):
        return None
    asset_path = request.path
    if AssetLocator.CANONICAL_NAMESPACE in asset_path:
        asset_path = asset_path.replace("block/", "block@", 1)
    requested_digest = None
    if StaticContent.is_versioned_asset_path(asset_path):
        requested_digest, asset_path = StaticContent.parse_versioned_asset_path(asset_path)
    try:
        loc = StaticContent.get_location_from_path(asset_path)
    except (InvalidLocationError, InvalidKeyError):
        return HttpResponseBadRequest()
    try:
        content = AssetManager.find(loc, as_stream=True)
    except (ItemNotFoundError, NotFoundError):
        return HttpResponseNotFound()
    actual_digest = getattr(content, "content_digest", None)
    if requested_digest is not None and actual_digest is not None and actual_digest != requested_digest:
        return HttpResponsePermanentRedirect(StaticContent.add_version_to_asset_path(asset_path, actual_digest))
    if not is_user_authorized(request, content, loc):
        return HttpResponseForbidden("Unauthorized")
    last_modified = content.last_modified_at.strftime(HTTP_DATE_FORMAT)
    if request.META.get("HTTP_IF_MODIFIED_SINCE") == last_modified:
        return HttpResponseNotModified()
    response = HttpResponse(content.data)
    response["Content-Length"] = content.length
    response["Accept-Ranges"] = "bytes"
    response["Content-Type"] = content.content_type
    response["X-Frame-Options"] = "ALLOW"
    set_caching_headers(content, response)
    return response


def set_caching_headers(content, response):
    if getattr(content, "locked", False):
        response["Cache-Control"] = "private, no-cache, no-store"
    response["Last-Modified"] = content.last_modified_at.strftime(HTTP_DATE_FORMAT)
    response["Vary"] = "Origin"


def is_user_authorized(request, content, location):
    if not getattr(content, "locked", False):
        return True
    if not hasattr(request, "user") or not request.user.is_authenticated:
        return False
    if not request.user.is_staff:
        if getattr(location, "deprecated", False):
            return False
        if not CourseEnrollment.is_enrolled(request.user, location.course_key):
            return False
    return True
