"""Stand-in for edx-platform ``xmodule/modulestore/search.py`` ``path_to_location``."""

from .exceptions import ItemNotFoundError, NoPathToItem


def path_to_location(modulestore, usage_key, request=None, full_path=False, branch_type=None):  # pylint: disable=unused-argument
    """The keys from the course down to ``usage_key``.

    Raises ItemNotFoundError for an unknown block and NoPathToItem for one the
    course does not reach. With ``full_path`` the whole list is returned, as
    ``openedx/features/course_experience/url_helpers.py`` ``_get_new_courseware_url`` uses it.
    """
    if not modulestore.has_item(usage_key):
        raise ItemNotFoundError(usage_key)
    path = [usage_key]
    location = usage_key
    while True:
        parent = modulestore.get_parent_location(location)
        if parent is None:
            break
        path.insert(0, parent)
        location = parent
    if path[0].block_type != "course":
        raise NoPathToItem(usage_key)
    if not full_path:
        raise NotImplementedError("only full_path=True is imitated")
    return path
