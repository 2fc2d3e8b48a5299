"""The Open edX side of ltigate, an LTI 1.3 gateway in front of the LMS.

- ``middleware``: verifies ltigate's assertion header and logs the learner in;
  with ``users`` (accounts, and ``seed`` for the seed plugin's learners),
  ``enrollment`` (enrolls in the launched course), ``csrf`` (the gateway's
  origin for Django's CSRF check) and ``gateway_session`` (sessions it logged
  in work only through the gateway).
- ``views``: the display view (``/ltigate/xblock/<usage_key>``) and the
  composite score endpoint (``/ltigate/score``).
- ``scores`` and ``tasks``: report score changes to ltigate's score API.
- ``admin`` and ``management/commands``: what an operator sees and removes
  (``ltigate_enrollments``, ``ltigate_seed_report``).
- ``platform``: the only module that imports edx-platform (lazily).
"""

__version__ = "0.1.0"

USER_AGENT = f"ltigate-openedx/{__version__}"
