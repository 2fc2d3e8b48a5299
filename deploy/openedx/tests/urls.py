"""The LMS URLconf as the plugin mechanism builds it, plus a probe view."""

from django.contrib import admin
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

CALLS = []


@ensure_csrf_cookie
def whoami(request):
    CALLS.append(request.path)
    return JsonResponse(
        {
            "user": request.user.get_username() if request.user.is_authenticated else None,
            "claims": getattr(request, "ltigate_claims", None) is not None,
        }
    )


def post(request):
    """A view under Django's CsrfViewMiddleware, like track.views.user_track (/event)."""
    CALLS.append(request.path)
    return HttpResponse("ok")


@csrf_exempt
def handler(request):
    """Checks CSRF itself, as edx-platform's handle_xblock_callback does
    (lms/djangoapps/courseware/block_render.py)."""
    if request.user.is_authenticated:
        error = CsrfViewMiddleware(get_response=lambda request: None).process_view(request, None, (), {})
        if error:
            return error
    if request.method != "GET" and not request.user.is_authenticated:
        return HttpResponseForbidden("Unauthenticated")
    CALLS.append(request.path)
    return HttpResponse("handled")


urlpatterns = [
    # What edx-django-utils does with apps.py's url_config.
    re_path(r"^ltigate/", include(("ltigate_openedx.urls", "ltigate_openedx"), namespace="ltigate_openedx")),
    re_path(r"^whoami$", whoami),
    re_path(r"^event$", post),
    re_path(r"^handler$", handler),
    path("admin/", admin.site.urls),
]
