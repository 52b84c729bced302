"""The demo project for gunicorn and uWSGI on PostgreSQL (bench/database.py).

psycopg2 blocks a gevent server unless a wait callback is installed; their users install
psycogreen's, as here, before the application (and so Django's backend) loads.
"""

from psycogreen.gevent import patch_psycopg

patch_psycopg()

from testproject.wsgi import application  # noqa: E402

__all__ = ["application"]
