"""cinder-api's WSGI application for gunicorn, reading the cloud's cinder.conf.

``cinder.wsgi.api`` parses ``sys.argv`` with oslo.config, and under gunicorn those are
gunicorn's own arguments: give it cinder's instead, as uwsgi's ``cinder-wsgi`` sees them.
"""

import os
import sys

sys.argv = [sys.argv[0], "--config-file", os.environ["MINICLOUD_CINDER_CONF"]]

from cinder.wsgi.api import application  # noqa: E402,F401
