"""Stand-in for edx-platform ``openedx/core/djangoapps/user_api/urls.py`` (``v1/me``), under ``api/user/``."""

from django.urls import path

from .accounts.views import me

urlpatterns = [
    path("v1/me", me, name="own_username_api"),
]
