"""The SCGI header block: its limits, the netstring length prefix, the NUL-separated
pairs and the framing rules (CONTENT_LENGTH first, SCGI=1, no repeats that matter),
as ``protocol.py``'s parser and its one-buffer ``parse_head`` both apply them.
Standard library only.
"""

from __future__ import annotations

from .scgi_events import (
    BadContentLength,
    BadHeaderBlock,
    BadLengthPrefix,
    BodyTooLarge,
    DuplicateHeader,
    HeaderBlockTooLarge,
    HttpOnScgiPort,
    MissingScgiHeader,
    ProtocolError,
    TooManyHeaders,
)

# Cap on the header block (the netstring payload). nginx's default
# large_client_header_buffers (4 x 8 KiB) bounds what a client can send to 32 KiB,
# and the CGI variables the front-end adds are a few hundred bytes to a few KiB;
# 64 KiB holds both with room to spare, while a hostile peer cannot make us buffer
# more than that before the request is refused.
DEFAULT_MAX_HEADER_SIZE = 65536
# Its decimal width, computed once: len(str()) is the dearest step of RequestParser().
_DEFAULT_PREFIX_DIGITS = len(str(DEFAULT_MAX_HEADER_SIZE))

# Cap on the number of name/value pairs. Apache refuses more than 100 client
# headers by default (LimitRequestFields) and the front-ends add about 20-40 CGI
# variables of their own, so real requests carry well under 200 pairs. 1000 is an
# order of magnitude of headroom, and it stops a 64 KiB block of 3-byte pairs
# ("a\0\0") from turning into ~21,000 dict entries.
DEFAULT_MAX_HEADERS = 1000

# Largest CONTENT_LENGTH we accept at all: 2**63 - 1, the largest off_t, which is
# the type Apache (apr_off_t), nginx (off_t) and lighttpd keep body sizes in, so no
# front-end can send a larger one. It also keeps int() away from the interpreter's
# 4300-digit conversion limit (which would raise ValueError, not a ProtocolError).
MAX_CONTENT_LENGTH = 2**63 - 1
_MAX_CONTENT_LENGTH_DIGITS = len(str(MAX_CONTENT_LENGTH))


def _prefix_digits(max_header_size: int) -> int:
    """Digits of the longest acceptable length prefix: a prefix longer than the limit's
    own decimal form exceeds the limit (no leading zeros are allowed), so it is refused
    without reading more."""
    if max_header_size == DEFAULT_MAX_HEADER_SIZE:
        return _DEFAULT_PREFIX_DIGITS
    return len(str(max_header_size))


def _block_length(digits: bytes | bytearray, max_header_size: int) -> int:
    """The header block's length from the digits before ":"; refuses a bad prefix."""
    # bytes.isdigit() is ASCII-only and False for b""; netstrings forbid leading zeros.
    if not digits.isdigit():
        raise _bad_prefix(digits)
    if len(digits) > 1 and digits[0] == 0x30:
        raise BadLengthPrefix()
    length = int(digits)
    if length > max_header_size:
        raise HeaderBlockTooLarge()
    return length


def _parse_block(
    buf: bytes | bytearray, start: int, end: int, max_headers: int, max_body_size: int | None,
) -> tuple[dict[str, str], int]:
    """The variables and CONTENT_LENGTH of the block ``buf[start:end]``; its "," must
    be at ``end``."""
    if buf[end] != 0x2C:  # ","
        raise BadHeaderBlock()
    # One split for the whole block. Even a hostile block yields at most
    # max_header_size / 2 fields, mostly the interpreter's cached 1-char strings.
    # A block of pairs ends in NUL, so the split has an odd length and ends in "".
    fields = buf[start:end].decode("latin-1").split("\0")
    if fields[-1] or not len(fields) & 1:
        raise BadHeaderBlock()
    pairs = len(fields) >> 1
    if pairs > max_headers:
        raise TooManyHeaders()
    try:
        # The spec puts CONTENT_LENGTH first so that framing never depends on a
        # header found later; a request that does otherwise is refused -- except a
        # Gemini one (see _gemini_framing).
        if fields[0] == "CONTENT_LENGTH":
            content_length = _parse_content_length(fields[1])
            environ = _build_environ(fields, pairs)
        else:
            environ, content_length = _gemini_framing(fields, pairs)
        if environ.get("SCGI") != "1":
            raise MissingScgiHeader()
        if max_body_size is not None and content_length > max_body_size:
            raise BodyTooLarge()
    except ProtocolError as error:
        # The server answers a Gemini front-end's request in Gemini form, even a refusal.
        error.gemini = _is_gemini(fields)
        raise
    return environ, content_length


def _is_gemini(fields: list[str]) -> bool:
    """Whether the block's pairs hold ``SERVER_PROTOCOL=GEMINI`` (names at even indexes)."""
    for index in range(0, len(fields) - 1, 2):
        if fields[index] == "SERVER_PROTOCOL" and fields[index + 1].upper() == "GEMINI":
            return True
    return False


def _gemini_framing(fields: list[str], pairs: int) -> tuple[dict[str, str], int]:
    """The variables and CONTENT_LENGTH of a block whose first name is not CONTENT_LENGTH.

    Molly Brown (a Gemini server) sends its variables in a random order on every
    request, so for a request that says ``SERVER_PROTOCOL=GEMINI`` CONTENT_LENGTH may
    stand anywhere; it must still be present exactly once (a repeated one is a
    DuplicateHeader). Every other request keeps the strict rule: BadContentLength,
    decided before anything else of the block is looked at, as it always was.
    """
    if not _is_gemini(fields):
        raise BadContentLength()
    environ = _build_environ(fields, pairs)
    value = environ.get("CONTENT_LENGTH")
    if value is None:
        raise BadContentLength()
    return environ, _parse_content_length(value)


# Variables that frame the request: a second copy makes the request ambiguous.
_FRAMING_NAMES = frozenset({"CONTENT_LENGTH", "SCGI"})


def _bad_prefix(digits: bytes | bytearray) -> BadLengthPrefix:
    """The error for a prefix that is not digits: HTTP's request line, or garbage."""
    if digits[:1].isupper():  # bytes.isupper() is ASCII-only: b"G", not b"1" or b"\xc9"
        return HttpOnScgiPort()
    return BadLengthPrefix()


def _check_prefix_digits(digits: bytes) -> None:
    """Refuse what can already be seen to be wrong in the length prefix."""
    if digits and not digits.isdigit():  # bytes.isdigit() is ASCII-only
        raise _bad_prefix(digits)
    if len(digits) > 1 and digits[0] == 0x30:  # netstrings forbid leading zeros
        raise BadLengthPrefix()


def _parse_content_length(value: str) -> int:
    # str.isdigit() alone would accept latin-1 superscripts such as "\xb2".
    if not (value.isascii() and value.isdigit()):
        raise BadContentLength()
    if len(value) < _MAX_CONTENT_LENGTH_DIGITS:  # cannot exceed the limit
        return int(value)
    value = value.lstrip("0") or "0"
    if len(value) > _MAX_CONTENT_LENGTH_DIGITS or int(value) > MAX_CONTENT_LENGTH:
        raise BadContentLength()
    return int(value)


def _build_environ(fields: list[str], pairs: int) -> dict[str, str]:
    names_values = iter(fields)
    # Fast path: C-level, and right when there are no duplicates. zip() stops
    # before the trailing "" of the split.
    environ = dict(zip(names_values, names_values))
    if "" in environ:
        raise BadHeaderBlock()
    if len(environ) != pairs:
        environ = _merge_duplicates(fields[0:-1:2], fields[1::2])
    return environ


def _merge_duplicates(names: list[str], values: list[str]) -> dict[str, str]:
    """The slow path: resolve repeated names per the module's policy (its docstring)."""
    environ: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}  # joined once at the end: linear, not quadratic
    for name, value in zip(names, values):
        if name not in environ:
            environ[name] = value
        elif name in _FRAMING_NAMES:
            raise DuplicateHeader()
        elif not name.startswith("HTTP_") or name == "HTTP_HOST":
            environ[name] = value  # the front-end's later setting overrides its default
            repeated.pop(name, None)
        elif name in repeated:
            repeated[name].append(value)
        else:
            repeated[name] = [environ[name], value]
    for name, parts in repeated.items():
        environ[name] = ("; " if name == "HTTP_COOKIE" else ", ").join(parts)
    return environ


