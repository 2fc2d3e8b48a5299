"""Stand-in for edx-platform ``xmodule/contentstore/content.py`` ``StaticContent``.

The path helpers the content server relies on, with the real formats:
versioned paths are ``/assets/courseware/v1/<md5>/<asset key>``
(``VERSIONED_ASSETS_PREFIX``, ``STATIC_CONTENT_VERSION = 1``), and an asset key
may be written with ``block@<name>`` or, in rendered pages, ``block/<name>``.
"""

import re

from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import AssetKey

STATIC_CONTENT_VERSION = 1
XASSET_LOCATION_TAG = "c4x"
VERSIONED_ASSETS_PREFIX = "/assets/courseware"
VERSIONED_ASSETS_PATTERN = r"/assets/courseware/(v[\d]/)?([a-f0-9]{32})"


class StaticContent:
    """An asset: its key, bytes, type, lock flag and md5 digest."""

    def __init__(self, loc, name, content_type, data, last_modified_at=None, locked=False, content_digest=None):
        self.location = loc
        self.name = name
        self.content_type = content_type
        self._data = data
        self.length = len(data)
        self.last_modified_at = last_modified_at
        self.locked = locked
        self.content_digest = content_digest

    @property
    def data(self):
        return self._data

    def stream_data(self):
        yield self._data

    @staticmethod
    def get_location_from_path(path):
        """The AssetKey of ``path`` (with or without its leading or trailing slash)."""
        try:
            return AssetKey.from_string(path)
        except InvalidKeyError:
            if path.startswith("/") or path.endswith("/"):
                return AssetKey.from_string(path.strip("/"))
            raise

    @staticmethod
    def is_versioned_asset_path(path):
        return path.startswith(VERSIONED_ASSETS_PREFIX)

    @staticmethod
    def parse_versioned_asset_path(path):
        """(digest, the path without its version prefix)."""
        digest = None
        if StaticContent.is_versioned_asset_path(path):
            match = re.match(VERSIONED_ASSETS_PATTERN, path)
            if match is not None:
                digest = match.group(2)
            path = re.sub(VERSIONED_ASSETS_PATTERN, "", path)
        return digest, path

    @staticmethod
    def add_version_to_asset_path(path, version):
        if StaticContent.is_versioned_asset_path(path):
            return path
        return f"{VERSIONED_ASSETS_PREFIX}/v{STATIC_CONTENT_VERSION}/{version}{path}"

    @staticmethod
    def serialize_asset_key_with_slash(asset_key):
        url = str(asset_key)
        return url if url.startswith("/") else "/" + url
