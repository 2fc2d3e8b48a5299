#!/usr/bin/env python3
"""Render the tutor-ltigate templates the way Tutor does, without Tutor.

    python3 deploy/tutor/render_check.py OUT_DIR

For each case in CASES (Tutor settings on top of the plugin's defaults), writes
OUT_DIR/<case>/gateway.toml, OUT_DIR/<case>/patches/<patch> and
OUT_DIR/<case>/tasks/<service>.sh, and checks that each rendered patch parses:
YAML for the docker compose and Kubernetes patches, Python for the LMS
settings, `sh -n` for the init tasks. `ltigate check` on the rendered
gateway.toml files is left to tests/deploy.rs.

The plugin's defaults are read from tutorltigate/plugin.py (its
CONFIG_DEFAULTS and CONFIG_UNIQUE items are literals), so this script and the
plugin cannot drift apart. Rendering follows Tutor: Jinja2 with
StrictUndefined, setting values rendered once against the whole config, and
Tutor's `list_if` and `random_string` filters. Needs jinja2 and PyYAML.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import jinja2
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(HERE, "tutorltigate")
TEMPLATES = os.path.join(PLUGIN, "templates")
PATCHES = os.path.join(PLUGIN, "patches")

# The Tutor core settings the plugin's templates use (Tutor's defaults).
TUTOR_CORE = {
    "LMS_HOST": "local.openedx.io",
    "ENABLE_HTTPS": False,
    "REDIS_HOST": "redis",
    "REDIS_PORT": 6379,
    "REDIS_USERNAME": "",
    "REDIS_PASSWORD": "",
    "RUN_REDIS": True,
    "RUN_LMS": True,
}

# A platform's public key, for the inline key_set case (an RSA-2048 public JWK).
PLATFORM_JWK = {
    "alg": "RS256",
    "e": "AQAB",
    "kid": "moodle-1",
    "kty": "RSA",
    "n": "xWxDE10xs6aX4uxhVEIEKGqC2eEpuFEPX8MD0QgLodDCimVkloM4cWbYi-rH9i2crX3Xq_LalLW02r1tFY-0_XhlCRxXFHyg678um5m8kRptJ5ZOgvaBk5_4VafaD4jR3vxGeg5_x_Z4RVPLVj7GX4x-l58lKDmb71xNGKOhWQX3Psbo4kXV0jj0QGDYLzTbpmg4AfaavNWE9-netCMEbmcWBtlXEk7Hj0PlcfTp5GHqAlNBBJv-k29LCHjfL8eJ6uhzECr8Kx8AFqlgRv3cz2Gli5N1XLk0yI7Ojh-RFg7WMyFYtdnv8e5cuJBOHaDFt3MHPDoUu1xRzZFcSfSj7w",
    "use": "sig"
}

PLATFORMS = [
    {
        "title": "Canvas",
        "issuer": "https://canvas.instructure.com",
        "client_id": "10000000000001",
        "auth_login_url": "https://sso.canvaslms.com/api/lti/authorize_redirect",
        "auth_token_url": "https://sso.canvaslms.com/login/oauth2/token",
        "key_set_url": "https://sso.canvaslms.com/api/lti/security/jwks",
        "deployment_ids": ["1:8865aa05b4b79b64a91a86042e43af5ea8ae79eb"],
        "gate": {
            "allowed_courses": ["course-v1:OpenedX+DemoX+Demo_Course"],
            "allowed_orgs": ["OrgY"],
            "block_filter": ["problem", "html", "video", "vertical"],
            "course_block_filter": {"course-v1:OpenedX+DemoX+Demo_Course": ["video"]},
        },
    },
    {
        "title": 'Moodle "staging"',
        "active": False,
        "issuer": "https://moodle.example.edu",
        "client_id": "aBcD1234",
        "auth_login_url": "https://moodle.example.edu/mod/lti/auth.php",
        "auth_token_url": "https://moodle.example.edu/mod/lti/token.php",
        "key_set": json.dumps({"keys": [PLATFORM_JWK]}),
        "deployment_ids": ["1", "2"],
    },
]

# case name -> settings on top of the defaults
CASES: dict[str, dict[str, object]] = {
    "defaults": {},
    "redis-https": {
        "ENABLE_HTTPS": True,
        "LTIGATE_STORE": "redis",
        "REDIS_USERNAME": "ltigate",
        "REDIS_PASSWORD": "s3cr3t+pw",
        "LTIGATE_HOST": "lti.courses.example.edu",
    },
    "replicas-platforms": {
        "ENABLE_HTTPS": True,
        "LTIGATE_REPLICAS": 2,
        "LTIGATE_ACCESS_LENGTH_SEC": 3600,
        "LTIGATE_ENABLE_DEEP_LINKING": True,
        "LTIGATE_OPENEDX_APP_REQUIREMENT": "ltigate-openedx==0.1.0",
        "LTIGATE_PLATFORMS": PLATFORMS,
    },
}


class _Version(ast.NodeTransformer):
    """Replaces the name __version__ by the value in __about__.py."""

    def __init__(self) -> None:
        about: dict[str, str] = {}
        with open(os.path.join(PLUGIN, "__about__.py"), encoding="utf-8") as f:
            exec(f.read(), about)  # noqa: S102 - our own one-line module
        self.version = about["__version__"]

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "__version__":
            return ast.copy_location(ast.Constant(self.version), node)
        return node


def plugin_settings() -> tuple[list[tuple[str, object]], list[tuple[str, object]]]:
    """The (name, value) items of CONFIG_DEFAULTS and CONFIG_UNIQUE in plugin.py."""
    with open(os.path.join(PLUGIN, "plugin.py"), encoding="utf-8") as f:
        tree = _Version().visit(ast.parse(f.read()))
    found: dict[str, list[tuple[str, object]]] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_items"
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr in ("CONFIG_DEFAULTS", "CONFIG_UNIQUE")
        ):
            items = ast.literal_eval(node.args[0])
            found[node.func.value.attr] = [(str(k), v) for k, v in items]
    if set(found) != {"CONFIG_DEFAULTS", "CONFIG_UNIQUE"}:
        raise SystemExit(f"plugin.py: CONFIG_DEFAULTS/CONFIG_UNIQUE not found ({sorted(found)})")
    return found["CONFIG_DEFAULTS"], found["CONFIG_UNIQUE"]


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined
    )
    # Tutor's filters, as far as the plugin uses them.
    env.filters["list_if"] = lambda items: json.dumps([v for v, cond in items if cond])
    env.filters["random_string"] = lambda length: "r" * int(length)
    return env


def config_for(env: jinja2.Environment, overrides: dict[str, object]) -> dict[str, object]:
    defaults, unique = plugin_settings()
    raw: dict[str, object] = dict(TUTOR_CORE)
    raw.update(defaults)
    raw.update(unique)
    raw.update(overrides)
    # Tutor renders every string setting once against the whole config.
    return {
        k: env.from_string(v).render(**raw) if isinstance(v, str) else v
        for k, v in raw.items()
    }


def check_patch(name: str, text: str, path: str) -> None:
    if name.startswith(("k8s-", "local-docker-compose-", "kustomization-")):
        list(yaml.safe_load_all(text))
    elif name.startswith("openedx-") and name.endswith("-settings"):
        compile(text, path, "exec")
    elif name == "caddyfile":
        if text.count("{") != text.count("}"):
            raise ValueError("unbalanced braces")


def render_case(env: jinja2.Environment, out: str, overrides: dict[str, object]) -> None:
    config = config_for(env, overrides)
    os.makedirs(os.path.join(out, "patches"), exist_ok=True)
    os.makedirs(os.path.join(out, "tasks"), exist_ok=True)

    toml = env.get_template("ltigate/apps/gateway.toml").render(**config)
    with open(os.path.join(out, "gateway.toml"), "w", encoding="utf-8") as f:
        f.write(toml + "\n")

    for name in sorted(os.listdir(PATCHES)):
        with open(os.path.join(PATCHES, name), encoding="utf-8") as f:
            text = env.from_string(f.read()).render(**config)
        path = os.path.join(out, "patches", name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        try:
            check_patch(name, text, path)
        except Exception as e:  # noqa: BLE001 - report which patch, then fail
            raise SystemExit(f"{path}: does not parse: {e}") from e

    tasks = os.path.join(TEMPLATES, "ltigate", "tasks")
    for service in sorted(os.listdir(tasks)):
        text = env.get_template(f"ltigate/tasks/{service}/init.sh").render(**config)
        path = os.path.join(out, "tasks", f"{service}.sh")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        done = subprocess.run(["sh", "-n", path], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{path}: sh -n failed: {done.stderr.strip()}")


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} OUT_DIR")
    env = environment()
    for case, overrides in CASES.items():
        render_case(env, os.path.join(sys.argv[1], case), overrides)
        print(f"rendered {case}")


if __name__ == "__main__":
    main()
