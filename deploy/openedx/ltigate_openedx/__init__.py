"""The Open edX side of ltigate, an LTI 1.3 gateway in front of the LMS.

- ``middleware``: verifies ltigate's assertion header and logs the learner in.
- ``views``: the display view (``/ltigate/xblock/<usage_key>``) and the
  composite score endpoint (``/ltigate/score``).
- ``scores`` and ``tasks``: report score changes to ltigate's score API.
- ``platform``: the only module that imports edx-platform (lazily).
"""

__version__ = "0.1.0"

USER_AGENT = f"ltigate-openedx/{__version__}"
