"""Tutor plugin for ltigate, the LTI 1.3 gateway in front of the Open edX LMS.

`tutor plugins enable ltigate` adds the gateway to docker compose (local) and
Kubernetes, gives it its own host through Caddy, renders its gateway.toml from
Tutor settings, installs the LMS-side app, and generates the tool key once
(`tutor local do init` / `tutor k8s do init`). Every setting is documented in
README.md.
"""

from __future__ import annotations

import typing as t
from glob import glob
from importlib import resources
import os
import re

from tutor import fmt, hooks

from .__about__ import __version__

TEMPLATES = str(resources.files("tutorltigate") / "templates")
PATCHES = str(resources.files("tutorltigate") / "patches")

########################################
# CONFIGURATION
########################################

hooks.Filters.CONFIG_DEFAULTS.add_items(
    [
        ("LTIGATE_VERSION", __version__),
        # No public image is published: build deploy/Dockerfile and push it
        # to your registry, then point this setting at it.
        ("LTIGATE_DOCKER_IMAGE", "ltigate:{{ LTIGATE_VERSION }}"),
        # Beside LMS_HOST (lti-learn.example.edu beside learn.example.edu), not
        # under it: Tutor sets SESSION_COOKIE_DOMAIN = LMS_HOST, and browsers
        # send the LMS's session cookie to every host under it. LMS_HOST's
        # parent (lti.example.edu) could be a public suffix (example.co.uk's
        # is co.uk) or a host the site already runs; a prefixed first label
        # is neither.
        ("LTIGATE_HOST", "lti-{{ LMS_HOST }}"),
        ("LTIGATE_REPLICAS", 1),
        # "embedded" (one redb file, one replica) or "redis" (Tutor's Redis,
        # shared by replicas). More than one replica always uses Redis.
        ("LTIGATE_STORE", "embedded"),
        (
            "LTIGATE_REDIS_URL",
            "redis://{% if REDIS_USERNAME or REDIS_PASSWORD %}"
            "{{ REDIS_USERNAME|urlencode }}:{{ REDIS_PASSWORD|urlencode }}@{% endif %}"
            "{{ REDIS_HOST }}:{{ REDIS_PORT }}/{{ LTIGATE_REDIS_DB }}",
        ),
        ("LTIGATE_REDIS_DB", 0),
        ("LTIGATE_REDIS_KEY_PREFIX", "ltigate:"),
        ("LTIGATE_KEY_ID", "ltigate-1"),
        ("LTIGATE_ASSERTION_AUDIENCE", "openedx"),
        ("LTIGATE_SESSION_LIFETIME_SEC", 28800),
        # None: a grant lasts as long as the session.
        ("LTIGATE_ACCESS_LENGTH_SEC", None),
        ("LTIGATE_GRADES_AGGREGATE_DELAY_SEC", 900),
        # The LMS app enrolls each launched learner in the course in this mode
        # ("none": never); the stock courseware needs an enrollment.
        ("LTIGATE_ENROLLMENT_MODE", "audit"),
        ("LTIGATE_PLATFORMS", []),
        # The pip requirement of the LMS-side app (deploy/openedx); empty: do
        # not install it (install it another way, e.g. OPENEDX_EXTRA_PIP_REQUIREMENTS).
        ("LTIGATE_OPENEDX_APP_REQUIREMENT", ""),
        # Deep linking needs an OAuth2 client of the LMS for a staff service user.
        ("LTIGATE_ENABLE_DEEP_LINKING", False),
        ("LTIGATE_OAUTH2_CLIENT_ID", "ltigate"),
        ("LTIGATE_K8S_DATA_ACCESS_MODE", "ReadWriteOnce"),
        ("LTIGATE_K8S_DATA_STORAGE", "1Gi"),
    ]
)

hooks.Filters.CONFIG_UNIQUE.add_items(
    [
        ("LTIGATE_SCORE_API_TOKEN", "{{ 32|random_string }}"),
        # Derives the LMS usernames of LTI learners: never change it once
        # learners exist.
        ("LTIGATE_USERNAME_KEY", "{{ 32|random_string }}"),
        ("LTIGATE_OAUTH2_SECRET", "{{ 32|random_string }}"),
    ]
)

########################################
# INITIALIZATION TASKS
########################################

# (service, template under templates/): the ltigate task writes the tool key
# into the persistent volume once; the lms task creates the OAuth2 client
# ltigate reads the Course Blocks API with (the subtree gate, and the
# deep-linking picker when LTIGATE_ENABLE_DEEP_LINKING is set).
INIT_TASKS: list[tuple[str, tuple[str, ...]]] = [
    ("lms", ("ltigate", "tasks", "lms", "init.sh")),
    ("ltigate", ("ltigate", "tasks", "ltigate", "init.sh")),
]

for _service, _path in INIT_TASKS:
    with open(os.path.join(TEMPLATES, *_path), encoding="utf-8") as _task:
        hooks.Filters.CLI_DO_INIT_TASKS.add_item((_service, _task.read()))

########################################
# THE LMS-SIDE APP (deploy/openedx)
########################################

# `tutor mounts add /path/to/ltigate/deploy/openedx` installs the app into the
# openedx image at build time (and bind-mounts it at run time), like any
# mounted XBlock. LTIGATE_OPENEDX_APP_REQUIREMENT is the other way (a pip
# requirement, see patches/openedx-dockerfile-post-python-requirements).
LMS_APP_DIRECTORY = r"^(ltigate-openedx|openedx)$"
hooks.Filters.MOUNTED_DIRECTORIES.add_item(("openedx", LMS_APP_DIRECTORY))


@hooks.Actions.CONFIG_LOADED.add()
def _warn_without_lms_app(config: dict[str, t.Any]) -> None:
    """Without the LMS-side app, the LMS ignores ltigate's assertion."""
    if config.get("LTIGATE_OPENEDX_APP_REQUIREMENT"):
        return
    for mount in config.get("MOUNTS") or []:
        # "/host/path" or "service:/host/path:/container/path"
        parts = str(mount).split(":")
        host_path = parts[1] if len(parts) == 3 else parts[0]
        if re.match(LMS_APP_DIRECTORY, os.path.basename(host_path.rstrip("/"))):
            return
    fmt.echo_alert(
        "ltigate: the LMS-side app is not installed. Run `tutor mounts add "
        "/path/to/ltigate/deploy/openedx` or set LTIGATE_OPENEDX_APP_REQUIREMENT, "
        "then rebuild the openedx image."
    )


########################################
# DOCKER IMAGE
########################################

# `tutor images push ltigate` pushes the image built from deploy/Dockerfile.
hooks.Filters.IMAGES_PUSH.add_item(("ltigate", "{{ LTIGATE_DOCKER_IMAGE }}"))

########################################
# TEMPLATES AND PATCHES
########################################

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(TEMPLATES)
# templates/ltigate/apps -> $(tutor config printroot)/env/plugins/ltigate/apps
hooks.Filters.ENV_TEMPLATE_TARGETS.add_item(("ltigate/apps", "plugins"))

for _path in sorted(glob(os.path.join(PATCHES, "*"))):
    with open(_path, encoding="utf-8") as _patch:
        hooks.Filters.ENV_PATCHES.add_item((os.path.basename(_path), _patch.read()))


@hooks.Filters.APP_PUBLIC_HOSTS.add()
def _ltigate_public_hosts(
    hosts: list[str], context_name: t.Literal["local", "dev"]
) -> list[str]:
    if context_name == "local":
        hosts.append("{{ LTIGATE_HOST }}")
    return hosts
