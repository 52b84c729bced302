"""The parsers' vocabulary: the error hierarchy (each error with the status to answer
with) and the events a parser hands out. Shared by the SCGI parser (``protocol.py``)
and the FastCGI one (``fastcgi.py``). Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------- errors


class ProtocolError(Exception):
    """Abstract base: the peer sent something that is not a valid SCGI request.

    ``status_hint`` is the HTTP status to answer with (if nothing was sent yet);
    ``message`` is a fixed sentence that quotes nothing the peer sent, so it is
    safe to log and to send back.
    """

    status_hint: int = 400
    message: str = "Malformed SCGI request."
    # True when the refused request came from a Gemini front-end (its header block
    # said SERVER_PROTOCOL=GEMINI): the refusal must then be a Gemini answer. Set on
    # the instance by the parser when it got as far as reading the block.
    gemini: bool = False

    def __init__(self) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise one of its subclasses")
        super().__init__(self.message)


class BadLengthPrefix(ProtocolError):
    status_hint = 400
    message = "The netstring length prefix is not a decimal number followed by ':'."


class HttpOnScgiPort(BadLengthPrefix):
    """What a browser or ``curl`` sends to the SCGI port (a kind of bad prefix)."""

    status_hint = 400
    message = (
        "The peer spoke HTTP to an SCGI port: put a web server in front "
        "(Apache mod_proxy_scgi, nginx scgi_pass, lighttpd mod_scgi) and point "
        "browsers at it, not at this port."
    )


class HeaderBlockTooLarge(ProtocolError):
    status_hint = 431
    message = "The SCGI header block is larger than the configured limit."


class TooManyHeaders(ProtocolError):
    status_hint = 431
    message = "The SCGI header block has more headers than the configured limit."


class BadHeaderBlock(ProtocolError):
    status_hint = 400
    message = "The SCGI header block is not a sequence of NUL-terminated name/value pairs."


class BadContentLength(ProtocolError):
    status_hint = 400
    message = "The first SCGI header is not CONTENT_LENGTH with a decimal value."


class MissingScgiHeader(ProtocolError):
    status_hint = 400
    message = "The SCGI header is missing or its value is not '1'."


class DuplicateHeader(ProtocolError):
    status_hint = 400
    message = "CONTENT_LENGTH or SCGI appears more than once in the SCGI header block."


class BodyTooLarge(ProtocolError):
    status_hint = 413
    message = "The request body is larger than the configured limit."


class IncompleteRequest(ProtocolError):
    status_hint = 400
    message = "The connection was closed before the request was complete."


# --------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Headers:
    """The whole header block arrived. ``environ`` holds latin-1-decoded names
    and values (duplicates resolved per the module's policy), CONTENT_LENGTH and
    SCGI included."""

    environ: dict[str, str]
    content_length: int


@dataclass(frozen=True, slots=True)
class Data:
    """Some body bytes; all Data events of a request add up to its body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The body is complete (right after Headers when CONTENT_LENGTH is 0)."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """EOF arrived before the first byte of a request: a quiet close."""


class _NeedData:
    """Type of the NEED_DATA sentinel: feed more bytes (or b"" for EOF)."""

    _instance: _NeedData | None = None

    def __new__(cls) -> _NeedData:  # noqa: PYI034 (a final singleton class)
        # A singleton, so callers can test with ``is NEED_DATA``.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

Event = Headers | Data | EndOfMessage | ConnectionClosed

# Events without fields are immutable and equal to each other: share one each.
_END_OF_MESSAGE = EndOfMessage()
_CONNECTION_CLOSED = ConnectionClosed()

# The parser makes one Headers per request and one Data per body chunk. A frozen
# dataclass's __init__ sets each field through object.__setattr__ (Headers(): 4.4 k
# instructions); filling the slots directly builds the same object for 2.9 k
# (test_protocol compares the two).
_new = object.__new__
_set_environ = Headers.__dict__["environ"].__set__
_set_content_length = Headers.__dict__["content_length"].__set__
_set_data = Data.__dict__["data"].__set__


def _headers(environ: dict[str, str], content_length: int) -> Headers:
    """``Headers(environ, content_length)``, without the frozen __init__."""
    event = _new(Headers)
    _set_environ(event, environ)
    _set_content_length(event, content_length)
    return event


def _data(data: bytes) -> Data:
    """``Data(data)``, without the frozen __init__."""
    event = _new(Data)
    _set_data(event, data)
    return event


