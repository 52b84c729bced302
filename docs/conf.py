"""Sphinx configuration of the django-scgi docs (``./dev docs`` builds them with -W)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from django_scgi import __version__  # noqa: E402  (stdlib-only import, no Django)

project = "django-scgi"
author = "the django-scgi developers"
copyright = "2026, the django-scgi developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions: list[str] = []
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
# The code blocks name their lexer (apache, nginx, docker, ini, python, text); a
# literal block without one is shown as plain text, never guessed.
highlight_language = "none"

html_theme = "furo"
html_title = f"django-scgi {release}"

