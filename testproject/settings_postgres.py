"""The demo project on PostgreSQL, for the database tests (``tests/postgres.py``).

Everything comes from the environment: the cluster the tests started, and what a test
varies (driver, persistent connections, health checks, Django's pool). The default
settings (SQLite, ``./dev serve``) stay as they are.
"""

import os
import sys

from .settings import *  # noqa: F403

# DJANGO_PG_DRIVER=psycopg2: Django's backend takes psycopg 3 when it can import it, so
# the psycopg2 tests hide it (a None entry in sys.modules makes the import fail).
if os.environ.get("DJANGO_PG_DRIVER") == "psycopg2":
    sys.modules["psycopg"] = None

_options = {}
if os.environ.get("DJANGO_PG_POOL"):  # "MIN:MAX" → Django's psycopg pool
    _min, _max = (int(n) for n in os.environ["DJANGO_PG_POOL"].split(":"))
    _options["pool"] = {"min_size": _min, "max_size": _max,
                        "timeout": float(os.environ.get("DJANGO_PG_POOL_TIMEOUT", "10"))}

_max_age = os.environ.get("DJANGO_CONN_MAX_AGE", "0")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("DJANGO_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DJANGO_PG_PORT", "5432"),
        "NAME": os.environ.get("DJANGO_PG_NAME", "scgi"),
        "USER": os.environ.get("DJANGO_PG_USER", "scgi"),
        "CONN_MAX_AGE": None if _max_age == "none" else int(_max_age),
        "CONN_HEALTH_CHECKS": os.environ.get("DJANGO_CONN_HEALTH_CHECKS") == "1",
        "OPTIONS": _options,
    }
}
