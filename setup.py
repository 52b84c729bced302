"""Only the optional C accelerators live here; everything else is in pyproject.toml.

``optional=True``: without a C compiler (or Python's headers) the build goes on
without it, and django_scgi.protocol parses in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("django_scgi._speedups", ["django_scgi/_speedups.c"], optional=True),
        Extension("django_scgi._syscalls", ["django_scgi/_syscalls.c"], optional=True),
    ],
)
