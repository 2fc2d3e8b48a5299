"""Stand-in for edx-platform ``xmodule/assetstore/assetmgr.py`` ``AssetManager``."""

from xmodule.exceptions import NotFoundError


class AssetManager:
    """Finds course assets in the contentstore (here, the fixture's assets)."""

    @staticmethod
    def find(asset_key, throw_on_not_found=True, as_stream=False):  # pylint: disable=unused-argument
        from stock_lms.fixture_course import course_assets  # pylint: disable=import-outside-toplevel

        key = asset_key.for_branch(None) if hasattr(asset_key, "for_branch") else asset_key
        content = course_assets().get(str(key))
        if content is None and throw_on_not_found:
            raise NotFoundError(asset_key)
        return content
