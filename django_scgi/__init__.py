"""django-scgi: serve a Django project over SCGI from a gevent server.

This package's top level must stay import-free: ``python -m django_scgi.launch``
imports it before gevent has patched the standard library, so importing Django
or gevent here would defeat the early patching that the launcher exists for.
"""

__version__ = "0.1.0"
