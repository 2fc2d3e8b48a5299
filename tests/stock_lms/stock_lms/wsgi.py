"""WSGI entry point: ``gunicorn --chdir tests/stock_lms stock_lms.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stock_lms.settings")

application = get_wsgi_application()
