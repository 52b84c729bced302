# Types of the optional C accelerator _speedups.c, built only where a C compiler is
# found at install time; protocol.py imports it and falls back to Python without it.
#
# Each function answers only for the plain, common case and returns None for anything
# else, and protocol.py's Python code then decides (more data needed, which error,
# repeated names): that is why the arguments checked at run time are typed ``object``.

# (variables, CONTENT_LENGTH, offset of the first body byte) of a complete, plainly
# valid SCGI head at the start of ``data`` (exactly bytes); None: let Python decide.
# Raises TypeError only when the two limits are not ints.
def parse_head(
    data: object, max_header_size: int, max_headers: int, /
) -> tuple[dict[str, str], int, int] | None: ...

# The CGI response head for a bytes status line ("Status: 200 OK\r\n") and a list of
# plain, valid (str, str) headers, hop-by-hop headers dropped; None: let Python encode.
def encode_head(status_line: object, headers: object, /) -> bytes | None: ...

# The Content-Length that a list of plain, valid (str, str) headers declares, -1 for
# none, a repeated or an invalid one; None: not such a list, let Python decide.
def declared_length(headers: object, /) -> int | None: ...

# The variables of a whole FastCGI PARAMS stream (exactly bytes) of at most max_size
# bytes and max_pairs pairs, none empty and no HTTP_* name but HTTP_HOST repeated (a
# later copy of another name wins); None: let fcgi_records decide.
def fcgi_params(data: object, max_size: int, max_pairs: int, /) -> dict[str, str] | None: ...

# Django's default django.server line ("[stamp,mmm] REMOTE "METHOD URI PROTO" CODE BYTES
# SECONDS\n") for an environ whose fields need no escaping and whose REQUEST_URI's query
# holds none of ``secret_words`` (environ's masking rule), a status starting with three
# digits, an int and a float; None: let server/accesslog.py's default_line() write it.
def access_line(
    stamp: object, now: object, environ: object, status: object, bytes_sent: object,
    duration: object, secret_words: object, /,
) -> str | None: ...

# environ.build_environ's work for the usual request (no mount prefix, not FastCGI):
# True when ``cgi`` (a dict) was made the environ in place; False: nothing changed, let
# the Python code do it.
def usual_environ(cgi: object, base: object, body: object, /) -> bool: ...

# The usual FastCGI request head at ``pos`` of ``buffer`` (bytes or bytearray): a
# BEGIN_REQUEST (RESPONDER or AUTHORIZER), one PARAMS record that fcgi_params takes and
# the empty one, then for a RESPONDER perhaps its empty STDIN record: (request id, role,
# keep_conn, environ, end offset, whether the empty STDIN record was there); None: let
# fastcgi.py's Python path decide.
def fcgi_head(
    buffer: object, pos: int, max_size: int, max_pairs: int, /
) -> tuple[int, int, bool, dict[str, str], int, bool] | None: ...

# ``data`` (bytes, 1 to 65,535) in one STDOUT record of ``request_id``, then the empty
# STDOUT record and END_REQUEST (0, REQUEST_COMPLETE); None: let fastcgi.py frame it.
def fcgi_stdout_end(request_id: int, data: object, /) -> bytes | None: ...
