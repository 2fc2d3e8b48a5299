"""Stand-in for edx-platform ``xmodule/exceptions.py``."""


class NotFoundError(Exception):
    """Imitates ``xmodule.exceptions.NotFoundError`` (raised by ``AssetManager.find``
    for an asset the contentstore does not hold)."""


class ProcessingError(Exception):
    """Imitates ``xblock.exceptions.ProcessingError``: a handler's error that
    ``handle_xblock_callback`` answers as ``{"success": <message>}`` with 200."""
