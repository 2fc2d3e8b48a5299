"""Stand-in for edx-platform ``xmodule/modulestore/exceptions.py``."""


class ItemNotFoundError(Exception):
    """Imitates ``ItemNotFoundError``: the modulestore holds no such course or block."""


class NoPathToItem(Exception):
    """Imitates ``NoPathToItem`` (``xmodule/modulestore/search.py`` ``path_to_location``
    raises it for a block that is not reachable from its course)."""


class InvalidLocationError(Exception):
    """Imitates ``xmodule.modulestore.InvalidLocationError``."""
