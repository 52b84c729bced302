"""``offload_response`` on its own (issue 20, item 5): what it refuses, what it hands over.

The attacks through real Apache, nginx and lighttpd are in test_hostile_frontends.py; here
the rules, with real files and symlinks in a temp dir and Django's settings overridden.
"""

from __future__ import annotations

import os

import pytest
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.test import RequestFactory, override_settings

from django_scgi.offload import offload_response


@pytest.fixture
def root(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("a")
    (tmp_path / "files" / "100%41 x.txt").write_text("b")
    (tmp_path / "files" / "sub").mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    (tmp_path / "files" / "out-link").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "files" / "in-link").symlink_to(tmp_path / "files" / "a.txt")
    with override_settings(SCGI_OFFLOAD_ROOTS=[str(tmp_path / "files")]):
        yield tmp_path / "files"


def test_a_file_inside_the_root_is_offloaded(root):
    response = offload_response(str(root / "a.txt"))
    assert response["X-Sendfile"] == str(root / "a.txt")


def test_a_symlink_is_handed_over_resolved(root):
    # Inside the root: allowed, but the front-end gets the target, not the link.
    assert offload_response(str(root / "in-link"))["X-Sendfile"] == str(root / "a.txt")


@pytest.mark.parametrize("name", ["out-link", "../outside.txt", "sub", "missing.txt"])
def test_what_resolves_outside_or_is_no_file_is_refused(root, name):
    with pytest.raises(SuspiciousFileOperation):
        offload_response(os.path.join(str(root), name))


def test_a_prefix_of_the_root_is_not_the_root(root):
    sibling = root.parent / (root.name + "-evil")
    sibling.mkdir()
    (sibling / "x.txt").write_text("x")
    with pytest.raises(SuspiciousFileOperation):
        offload_response(str(sibling / "x.txt"))


def test_without_roots_nothing_is_offloaded(root):
    with override_settings(SCGI_OFFLOAD_ROOTS=None), pytest.raises(ImproperlyConfigured):
        offload_response(str(root / "a.txt"))


def test_names_are_encoded_for_the_front_end_that_decodes_them(root):
    path = str(root / "100%41 x.txt")
    factory = RequestFactory()
    lighttpd = factory.get("/", SERVER_SOFTWARE="lighttpd/1.4.69")
    apache = factory.get("/", SERVER_SOFTWARE="Apache/2.4.62 (Debian)")
    assert offload_response(path, request=lighttpd)["X-Sendfile"].endswith("/100%2541%20x.txt")
    assert offload_response(path, request=apache)["X-Sendfile"] == path
    with pytest.raises(SuspiciousFileOperation):  # unknown front-end: not guessed
        offload_response(path)
    nginx = offload_response(path, via="x-accel-redirect", uri="/protected/100%41 x.txt?q")
    assert nginx["X-Accel-Redirect"] == "/protected/100%2541%20x.txt%3Fq"
