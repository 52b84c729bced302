"""Hypothesis strategies for SCGI request bytes, shared by the parser's fuzz tests and the
differential tests of its C accelerator."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from django_scgi.protocol import encode_request

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LATIN1 = st.characters(min_codepoint=1, max_codepoint=255)  # latin-1 without NUL
SPECIAL = ("CONTENT_LENGTH", "SCGI")
names = st.text(LATIN1, min_size=1, max_size=16).filter(lambda name: name not in SPECIAL)
values = st.text(LATIN1, max_size=24)
bodies = st.binary(max_size=64)


@st.composite
def valid_requests(draw) -> bytes:
    return encode_request(draw(st.dictionaries(names, values, max_size=8)), draw(bodies))


@st.composite
def mutated_requests(draw) -> bytes:
    """A valid request with 1-3 bytes flipped, inserted or deleted."""
    data = bytearray(draw(valid_requests()))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "insert":
            data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
            continue
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        else:
            del data[pos]
    return bytes(data)


# Material that makes garbage reach the HEADERS and BODY states and every check
# made there (duplicates, SCGI, CONTENT_LENGTH syntax, empty names).
NAME = st.sampled_from(
    [b"CONTENT_LENGTH", b"SCGI", b"HTTP_COOKIE", b"HTTP_X", b"REQUEST_METHOD", b""]
) | st.binary(max_size=6)
VALUE = st.sampled_from([b"0", b"1", b"3", b"", b"-1", b"x"]) | st.binary(max_size=6)


@st.composite
def netstring_shaped(draw) -> bytes:
    """Roughly netstring-framed garbage: plausible prefix, name/value pairs
    (usually led by CONTENT_LENGTH), maybe a ',' and a body."""
    pairs = draw(st.lists(st.tuples(NAME, VALUE), max_size=6))
    if draw(st.booleans()):
        pairs.insert(0, (b"CONTENT_LENGTH", draw(VALUE)))
    fields = [field for pair in pairs for field in pair] + draw(st.lists(NAME, max_size=1))
    block = b"\0".join(fields) + draw(st.sampled_from([b"\0", b"\0", b""]))
    length = len(block) + draw(st.sampled_from([0, 0, 0, -1, 1]))
    prefix = draw(st.sampled_from([b"%d", b"%d", b"0%d", b"%d "])) % length
    comma = draw(st.sampled_from([b",", b",", b";", b""]))
    return prefix + b":" + block + comma + draw(bodies)


any_input = st.one_of(
    st.binary(max_size=200), netstring_shaped(), valid_requests(), mutated_requests()
)

# Small limits too, so that every size check is reached by short inputs. The
# defaults come first: hypothesis leans towards the first element.
limits = st.fixed_dictionaries(
    {
        "max_header_size": st.sampled_from([65536, 40, 9, 0]),
        "max_headers": st.sampled_from([1000, 2, 0]),
        "max_body_size": st.sampled_from([None, 5, 0]),
    }
)


