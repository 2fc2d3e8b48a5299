"""Stand-in for edx-platform ``xmodule/modulestore/__init__.py`` (the names the views import)."""

from .exceptions import InvalidLocationError  # noqa: F401


class ModuleStoreEnum:
    """``ModuleStoreEnum``: only the branch names ``render_xblock`` chooses between."""

    class Branch:
        draft_preferred = "draft-preferred"
        published_only = "published-only"
