"""The LMS URLconf as the plugin mechanism builds it, plus a probe view."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path

CALLS = []


def whoami(request):
    CALLS.append(request.path)
    return JsonResponse(
        {
            "user": request.user.get_username() if request.user.is_authenticated else None,
            "claims": getattr(request, "ltigate_claims", None) is not None,
        }
    )


urlpatterns = [
    # What edx-django-utils does with apps.py's url_config.
    re_path(r"^ltigate/", include(("ltigate_openedx.urls", "ltigate_openedx"), namespace="ltigate_openedx")),
    re_path(r"^whoami$", whoami),
    path("admin/", admin.site.urls),
]
