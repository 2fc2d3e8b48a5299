#!/usr/bin/env python
"""``python tests/stock_lms/manage.py migrate --noinput`` / ``stock_lms_setup``."""

import os
import sys
from pathlib import Path


def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stock_lms.settings")
    from django.core.management import execute_from_command_line  # pylint: disable=import-outside-toplevel

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
