"""Static files and the script prefix: what ``runscgi`` owes ``STATIC_URL``.

Two jobs, both for the command (Django side; the server never imports this):

* Django computes ``STATIC_URL`` and ``MEDIA_URL`` (when relative) with the script
  prefix of whoever reads them first and caches the result in ``settings``; a storage
  (``staticfiles_storage``, ``default_storage``) keeps the value it was made with.
  runscgi reads settings and loads middleware before any request (system checks, the
  static handler, WhiteNoise's middleware, which makes ``staticfiles_storage``), where
  the prefix is "/" (or ``FORCE_SCRIPT_NAME``): left so, a project mounted at ``/app/``
  would link ``/static/…`` forever. :func:`forget_prefixed_settings` drops those cached
  values once start-up is done, so the first request computes them with its own
  prefix, as under any WSGI server.
* With ``DEBUG`` on, serve the staticfiles finders' files as ``runserver`` does:
  :class:`MountedStaticFilesHandler`, Django's own handler made right below a mount.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.contrib.staticfiles.storage import staticfiles_storage
from django.contrib.staticfiles.views import serve
from django.core.files.storage import default_storage, storages
from django.urls import get_script_prefix
from django.utils.functional import empty

# The settings Django prefixes with the script prefix when read (LazySettings.__getattr__).
PREFIXED_SETTINGS = ("STATIC_URL", "MEDIA_URL")


def forget_prefixed_settings() -> None:
    """Drop the cached, already prefixed STATIC_URL and MEDIA_URL.

    LazySettings keeps each value it computed in its instance ``__dict__`` (the same
    cache its ``__setattr__`` clears when a setting is assigned); removing the two
    entries makes the next read compute them again, with the reader's script prefix.
    The settings module's values are untouched.
    """
    for name in PREFIXED_SETTINGS:
        settings.__dict__.pop(name, None)
    forget_storages()


def forget_storages() -> None:
    """Drop the storages made so far; the next use makes them again from settings.

    A storage takes STATIC_URL/MEDIA_URL as its ``base_url`` when it is made. Django's
    own ``setting_changed`` receiver for STORAGES/STATIC_URL (django.test.signals) resets
    the same three things: the handler's instances and the two lazy objects.
    """
    storages._storages = {}
    for lazy in (staticfiles_storage, default_storage):
        lazy._wrapped = empty


def wants_static_handler(static: bool, insecure: bool) -> bool:
    """runserver's rule: unless --nostatic, with DEBUG on or --insecure, when
    django.contrib.staticfiles is installed (it provides the finders)."""
    return (static and (settings.DEBUG or insecure)
            and apps.is_installed("django.contrib.staticfiles"))


class MountedStaticFilesHandler(StaticFilesHandler):  # type: ignore[misc]
    """Django's runserver static handler, also right when the project is mounted below
    a path.

    Django's handler decides on ``PATH_INFO`` (the path below the mount) but serves
    ``request.path`` (``SCRIPT_NAME`` + ``PATH_INFO``) minus ``STATIC_URL``'s path: at
    ``/app/`` every file would be a 404. Here both use the path below the mount, and
    ``STATIC_URL`` is taken relative to the start-up prefix ("/" or FORCE_SCRIPT_NAME).
    """

    def get_base_url(self) -> str:
        static_url: str = super().get_base_url()
        prefix = get_script_prefix()
        if static_url.startswith(prefix):  # relative STATIC_URL: prefixed at this read
            return "/" + static_url[len(prefix):]
        return static_url

    def serve(self, request: Any) -> Any:
        return serve(request, self.file_path(request.path_info), insecure=True)
