"""Stand-in for edx-platform ``lms/djangoapps/grades/constants.py``."""


class ScoreDatabaseTableEnum:
    courseware_student_module = "csm"
    submissions = "submissions"
    overrides = "overrides"
