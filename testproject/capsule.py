"""A small Gemini capsule next to the HTTP views: served to Molly Brown and Xitzin.

Mounted at /capsule/ (testproject/urls.py); docs/gemini.rst walks through it and
tests/test_gemini_frontends.py drives every page through both front-ends.
"""

import json
import os
import time

from django.http import Http404, HttpResponse, HttpResponseGone, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from django_scgi import capsule

# How long the streaming page waits for the test's go-ahead before it finishes anyway.
STREAM_GATE_WAIT = 30.0


def index(request):
    links = "\n".join(
        f"=> {reverse(name)} {label}"
        for name, label in [
            ("capsule-hello", "Say hello (asks for your name)"),
            ("capsule-secret", "Tell a secret (sensitive input)"),
            ("capsule-me", "Who am I? (needs a client certificate)"),
            ("capsule-stream", "A page that streams"),
            ("capsule-moved", "An old address (permanent redirect)"),
        ]
    )
    return capsule.GemtextResponse(f"# django-scgi capsule\n\n{links}\n")


@capsule.requires_input("What is your name?")
def hello(request):
    return capsule.GemtextResponse(f"# Hello, {capsule.gemini_input(request)}!\n")


@capsule.requires_input("Your secret?", sensitive=True)
def secret(request):
    length = len(capsule.gemini_input(request))
    return capsule.GemtextResponse(f"Your secret has {length} characters.\n")


@capsule.requires_certificate("Please present a client certificate")
def me(request):
    return capsule.GemtextResponse(f"# You are {capsule.client_certificate(request)}\n")


def members(request):
    """403 from Django: 60 without a certificate, 61 with one (nobody is a member)."""
    return HttpResponse("members only", status=403)


def moved(request):
    return redirect("capsule-index", permanent=True)


def elsewhere(request):
    return redirect("capsule-hello")


def gone(request):
    return HttpResponseGone("gone")


def missing(request):
    raise Http404("no such page")


def broken(request):
    raise RuntimeError("the capsule's broken page broke, as it should")


def busy(request):
    return capsule.slow_down(7)


def stream(request):
    """Two chunks; between them it waits for ``$CAPSULE_STREAM_GATE/release`` to exist
    (the test creates it once it has read the first chunk), or STREAM_GATE_WAIT."""
    gate = os.environ.get("CAPSULE_STREAM_GATE")

    def chunks():
        yield b"# Streaming\n\nfirst chunk\n"
        deadline = time.monotonic() + STREAM_GATE_WAIT
        while gate and time.monotonic() < deadline:
            if os.path.exists(os.path.join(gate, "release")):
                break
            time.sleep(0.02)
        yield b"second chunk\n"

    return StreamingHttpResponse(chunks(), content_type="text/gemini")


def whoami(request):
    """What Django made of the request, as JSON (for the tests)."""
    return HttpResponse(json.dumps({
        "method": request.method,
        "scheme": request.scheme,
        "is_secure": request.is_secure(),
        "is_gemini": capsule.is_gemini(request),
        "script_name": request.META.get("SCRIPT_NAME"),
        "path": request.path,
        "path_info": request.path_info,
        "absolute": request.build_absolute_uri(),
        "reverse": reverse("capsule-index"),
        "input": capsule.gemini_input(request),
        "get": {key: request.GET.getlist(key) for key in request.GET},
        "certificate": capsule.client_certificate(request),
        "host": request.get_host(),
    }), content_type="application/json")
