"""Stand-in for edx-platform ``common/djangoapps/static_replace/__init__.py``."""

import re


def _quoted_url_regex(prefix):
    """A URL in quotes that starts with ``prefix`` (``_url_replace_regex``)."""
    return re.compile(
        r"""(?P<quote>\\?['"])(?P<prefix>""" + re.escape(prefix) + r""")(?P<rest>.*?)(?P=quote)"""
    )


def replace_jump_to_id_urls(text, course_id, jump_to_id_base_url):  # pylint: disable=unused-argument
    """Rewrites quoted ``/jump_to_id/<id>`` links to ``<jump_to_id_base_url><id>``
    (``replace_jump_to_id_urls``): the link stays relative to the LMS origin."""

    def replace(match):
        quote = match.group("quote")
        return f"{quote}{jump_to_id_base_url}{match.group('rest')}{quote}"

    return _quoted_url_regex("/jump_to_id/").sub(replace, text)
