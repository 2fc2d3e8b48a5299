"""Packaging and wiring: the plugin entry point, plugin settings, the seam."""

import ast
import importlib
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from ltigate_openedx import middleware, platform
from ltigate_openedx.apps import LtigateOpenedxConfig
from ltigate_openedx.settings import common

PACKAGE = Path(__file__).resolve().parent.parent / "ltigate_openedx"


def test_the_tests_import_the_source_tree():
    # .ci/run reinstalls the package only when pyproject.toml changes: the
    # installed copy provides the entry point, the source tree the code.
    import ltigate_openedx

    assert Path(ltigate_openedx.__file__).resolve().parent == PACKAGE


def test_the_lms_plugin_entry_point_names_the_app_config():
    points = [p for p in metadata.entry_points(group="lms.djangoapp") if p.name == "ltigate_openedx"]
    assert len(points) == 1, "pip install deploy/openedx first"
    assert points[0].value == "ltigate_openedx.apps:LtigateOpenedxConfig"
    assert points[0].load() is LtigateOpenedxConfig


def test_plugin_app_registers_urls_and_settings():
    config = LtigateOpenedxConfig.plugin_app
    urls = config["url_config"]["lms.djangoapp"]
    assert urls == {"namespace": "ltigate_openedx", "regex": r"^ltigate/", "relative_path": "urls"}
    settings_path = config["settings_config"]["lms.djangoapp"]["common"]["relative_path"]
    module = importlib.import_module(f"ltigate_openedx.{settings_path}")
    assert callable(module.plugin_settings)
    assert reverse("ltigate_openedx:xblock", args=["block-v1:a+b+c+type@html+block@x"]).startswith("/ltigate/xblock/")
    assert reverse("ltigate_openedx:score") == "/ltigate/score"
    assert isinstance(apps.get_app_config("ltigate_openedx"), LtigateOpenedxConfig)


LMS_MIDDLEWARE = [
    "django.middleware.csrf.CsrfViewMiddleware",
    "openedx.core.djangoapps.safe_sessions.middleware.SafeSessionMiddleware",
    "method_override.middleware.MethodOverrideMiddleware",
    "openedx.core.djangoapps.cache_toolbox.middleware.CacheBackedAuthenticationMiddleware",
    "common.djangoapps.student.middleware.UserStandingMiddleware",
]


def test_plugin_settings_put_the_middleware_after_authentication_once():
    settings = types.SimpleNamespace(MIDDLEWARE=list(LMS_MIDDLEWARE))
    common.plugin_settings(settings)
    common.plugin_settings(settings)
    assert settings.MIDDLEWARE == LMS_MIDDLEWARE[:4] + [common.MIDDLEWARE_PATH] + LMS_MIDDLEWARE[4:]
    plain = types.SimpleNamespace(
        MIDDLEWARE=("a", "django.contrib.auth.middleware.AuthenticationMiddleware", "b")
    )
    common.plugin_settings(plain)
    assert plain.MIDDLEWARE[2] == common.MIDDLEWARE_PATH


def test_the_auth_backend_is_the_first_model_backend(settings):
    assert middleware.auth_backend() == "tests.backends.LmsLikeModelBackend"
    settings.LTIGATE_AUTH_BACKEND = "custom.Backend"
    assert middleware.auth_backend() == "custom.Backend"
    settings.LTIGATE_AUTH_BACKEND = None
    settings.AUTHENTICATION_BACKENDS = ["tests.backends.NoUsersBackend"]
    with pytest.raises(ImproperlyConfigured):
        middleware.auth_backend()


def test_the_platform_is_selected_by_setting(settings):
    assert isinstance(platform.get(), platform.FakePlatform)
    settings.LTIGATE_PLATFORM = "openedx"
    assert isinstance(platform.get(), platform.OpenEdxPlatform)
    settings.LTIGATE_PLATFORM = "ltigate_openedx.platform.FakePlatform"
    assert isinstance(platform.get(), platform.FakePlatform)


def test_the_openedx_platform_imports_edx_platform_only_when_called():
    real = platform.OpenEdxPlatform()
    assert "lms" not in sys.modules and "common.djangoapps" not in sys.modules
    with pytest.raises(ImportError):
        real.problem_weighted_score_changed()


ALLOWED_ROOTS = {"django", "jwt", "requests", "ltigate_openedx"}


def _imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_only_the_seam_imports_edx_platform():
    stdlib = set(sys.stdlib_module_names)
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "platform.py":
            continue
        allowed = ALLOWED_ROOTS | ({"celery"} if relative == "tasks.py" else set())
        for name in _imports(path):
            root = name.split(".")[0]
            if root not in stdlib and root not in allowed:
                offenders.append(f"{relative}: {name}")
    assert offenders == []
    seam = set(_imports(PACKAGE / "platform.py"))
    edx = {n for n in seam if n.split(".")[0] in {"lms", "common", "openedx", "xmodule", "opaque_keys"}}
    assert edx, "the seam should hold the edx-platform imports"
