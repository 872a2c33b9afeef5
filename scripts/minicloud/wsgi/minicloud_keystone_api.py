"""Keystone's WSGI application for gunicorn (config from $OS_KEYSTONE_CONFIG_FILES).

keystone parses ``sys.argv`` with oslo.config, and under gunicorn those are gunicorn's own
arguments: give it none, as uwsgi's ``keystone-wsgi-public`` sees them.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
