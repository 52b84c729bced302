"""Settings every server runs with in the benchmark: the demo project's, plus one change.

``DATA_UPLOAD_MAX_MEMORY_SIZE = None`` lets the request.body metric POST 64 MiB to
/echo/ (Django refuses more than 2.5 MB in ``request.body`` by default). Nothing else
differs from ``testproject.settings``; uploads read in pieces are not affected by it.
"""

from testproject.settings import *  # noqa: F403

DATA_UPLOAD_MAX_MEMORY_SIZE = None
