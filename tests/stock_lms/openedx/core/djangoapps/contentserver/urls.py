"""Stand-in for edx-platform ``openedx/core/djangoapps/contentserver/urls.py``: incomplete
patterns, the view parses the path itself."""

from django.urls import re_path

from . import views

urlpatterns = [
    re_path("^c4x/", views.course_assets_view),
    re_path("^asset-v1:", views.course_assets_view),
    re_path("^assets/courseware/", views.course_assets_view),
]
