"""Stand-in for edx-platform ``common/djangoapps/track/urls.py``."""

from django.urls import path

from . import views

urlpatterns = [
    path("event", views.user_track),
]
