"""Included by the LMS under ``^ltigate/`` (see apps.py)."""

from django.urls import path

from . import views

app_name = "ltigate_openedx"

urlpatterns = [
    path("xblock/<str:usage_key>", views.display, name="xblock"),
    path("score", views.composite_score, name="score"),
    path("logout", views.logout, name="logout"),
]
