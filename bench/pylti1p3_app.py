"""The baseline: a minimal LTI 1.3 tool on PyLTI1p3 (the library the Open edX
plugin used), in its documented Flask set-up, with JWKS caching on and a
shared Redis cache so that gunicorn's workers see each other's nonces."""

import json
import os

from flask import Flask, request
from flask_caching import Cache
from pylti1p3.contrib.flask import (
    FlaskCacheDataStorage,
    FlaskMessageLaunch,
    FlaskOIDCLogin,
    FlaskRequest,
)
from pylti1p3.tool_config import ToolConfDict

app = Flask(__name__)
app.config.update(
    CACHE_TYPE="RedisCache",
    CACHE_REDIS_URL=os.environ["BENCH_REDIS_URL"],
    CACHE_DEFAULT_TIMEOUT=600,
    SECRET_KEY="bench",
)
cache = Cache(app)

ISSUER = "https://bench-platform.test"
TOOL_CONF = ToolConfDict(
    {
        ISSUER: [
            {
                "default": True,
                "client_id": "bench-client",
                "auth_login_url": "https://bench-platform.test/auth",
                "auth_token_url": "https://bench-platform.test/token",
                "key_set_url": os.environ["BENCH_JWKS_URL"],
                "key_set": None,
                "deployment_ids": ["bench-deployment"],
            }
        ]
    }
)
with open(os.environ["BENCH_TOOL_KEY"], encoding="utf-8") as f:
    TOOL_CONF.set_private_key(ISSUER, f.read(), client_id="bench-client")


def storage():
    return FlaskCacheDataStorage(cache)


@app.route("/login/", methods=["GET", "POST"])
def login():
    target = request.values.get("target_link_uri")
    oidc = FlaskOIDCLogin(FlaskRequest(), TOOL_CONF, launch_data_storage=storage())
    return oidc.redirect(target)


@app.route("/launch/", methods=["POST"])
def launch():
    message = FlaskMessageLaunch(FlaskRequest(), TOOL_CONF, launch_data_storage=storage())
    message.set_public_key_caching(storage(), cache_lifetime=7200)
    data = message.get_launch_data()
    return json.dumps({"sub": data.get("sub")})
