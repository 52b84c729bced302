/*
 * django_scgi._speedups: the usual request head parsed, the usual response head
 * encoded and its Content-Length read, and the usual access line formatted, in C.
 * (encode_head, declared_length and access_line are at the end of this file.)
 *
 * parse_head(data, max_header_size, max_headers) reads an SCGI header netstring from
 * the start of ``data`` (bytes) and returns (variables, CONTENT_LENGTH, body offset)
 * -- but only for a head that is complete and plainly valid: a length prefix within
 * the limit, the "," after the block, name/value pairs each ended by NUL, no empty
 * and no repeated name, at most max_headers pairs, CONTENT_LENGTH first with 1-18
 * digits, SCGI equal to "1". For anything else it returns None and protocol.py's
 * Python code decides (more data needed, which error to raise, joining repeated
 * names): every refusal and every rare case has one implementation, in Python, and
 * this module only ever agrees with it (tests/test_speedups.py holds the two equal).
 *
 * Why C: splitting the block and building the dict are most of a request's parsing
 * cost in Python (a str per field, a hash per name). Here common names are interned
 * once, so most names cost neither an allocation nor a hash.
 *
 * fcgi_params(data, max_size, max_pairs) does the same for a whole FastCGI PARAMS
 * stream (fcgi_records.PairReader in Python): name-value pairs with one- or four-byte
 * lengths, into a dict -- only when every pair is whole, no name is empty, no HTTP_*
 * name but HTTP_HOST is repeated (a later copy of any other name wins, as in Python),
 * there are at most max_pairs and the stream is at most max_size bytes. Else None.
 *
 * Optional: when it is not built (no compiler at install time), protocol.py runs
 * the same parse in Python.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* CGI variables the front-ends send on most requests (docs/frontend-variables.rst) and the
 * request headers most browsers send. A name not listed is decoded as usual. */
static const char *const KNOWN_NAMES[] = {
    "CONTENT_LENGTH", "SCGI", "REQUEST_METHOD", "REQUEST_URI", "QUERY_STRING",
    "CONTENT_TYPE", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME",
    "HTTPS", "REMOTE_ADDR", "REMOTE_PORT", "REMOTE_USER", "AUTH_TYPE", "SERVER_ADDR",
    "SERVER_PORT", "SERVER_NAME", "SERVER_SOFTWARE", "SERVER_SIGNATURE", "SERVER_ADMIN",
    "GATEWAY_INTERFACE", "SCRIPT_NAME", "SCRIPT_FILENAME", "PATH_INFO", "PATH",
    "CONTEXT_PREFIX", "CONTEXT_DOCUMENT_ROOT", "REDIRECT_STATUS",
    "HTTP_HOST", "HTTP_USER_AGENT", "HTTP_ACCEPT", "HTTP_ACCEPT_LANGUAGE",
    "HTTP_ACCEPT_ENCODING", "HTTP_COOKIE", "HTTP_CONNECTION", "HTTP_REFERER", "HTTP_ORIGIN",
    "HTTP_CACHE_CONTROL", "HTTP_PRAGMA", "HTTP_UPGRADE_INSECURE_REQUESTS", "HTTP_DNT",
    "HTTP_SEC_FETCH_DEST", "HTTP_SEC_FETCH_MODE", "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_USER", "HTTP_SEC_CH_UA", "HTTP_SEC_CH_UA_MOBILE",
    "HTTP_SEC_CH_UA_PLATFORM", "HTTP_PRIORITY", "HTTP_TE", "HTTP_AUTHORIZATION",
    "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
    "HTTP_X_REAL_IP", "HTTP_X_REQUESTED_WITH", "HTTP_X_CSRFTOKEN", "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH",
    NULL,
};

#define MAX_KNOWN_LENGTH 40
#define MAX_PER_LENGTH 12

/* Interned names by length: a lookup compares with the few names of that length. */
static PyObject *known_by_length[MAX_KNOWN_LENGTH + 1][MAX_PER_LENGTH];
static const char *known_text_by_length[MAX_KNOWN_LENGTH + 1][MAX_PER_LENGTH];

/* Room made up front in the dict of variables: the usual front-end sends 10-40, and
 * the environ builder adds about ten; growing a dict re-inserts every entry. */
#define PRESIZED_VARIABLES 40

/* ---- usual_environ: environ.build_environ's usual request, in place ----------------
 *
 * usual_environ(cgi, base, body) makes the WSGI environ of the usual request out of
 * its variables ``cgi`` (a dict, changed in place) exactly as environ.build_environ
 * would, and returns True; or changes nothing and returns False, and the Python code
 * does it all. The usual request (nginx's scgi_params, lighttpd at the root): none of
 * the dropped HTTP_* names, SERVER_PROTOCOL HTTP/1.0 or HTTP/1.1, REQUEST_SCHEME http
 * and no HTTPS (or an empty one), REQUEST_METHOD, QUERY_STRING, SERVER_NAME,
 * SERVER_PORT and REMOTE_ADDR sent, no SCRIPT_NAME (or an empty one), a PATH_INFO, or
 * none and a DOCUMENT_URI, that is not empty, and no ", " in HTTP_COOKIE; ``base``
 * holds only wsgi.* names. The caller passes no mount prefix and no FastCGI request.
 * tests/test_environ.py holds the two equal. */

static PyObject *u_dropped[4];
static PyObject *u_server_protocol, *u_request_scheme, *u_https, *u_request_method,
    *u_query_string, *u_server_name, *u_server_port, *u_remote_addr, *u_script_name,
    *u_path_info, *u_document_uri, *u_http_cookie, *u_wsgi_input, *u_wsgi_url_scheme,
    *u_http, *u_empty, *u_comma_space;
static int usual_names_ready = 0;

static int
init_usual_names(void)
{
    static const char *const dropped[4] = {
        "HTTP_PROXY", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_TRANSFER_ENCODING",
    };
    for (int i = 0; i < 4; i++) {
        if ((u_dropped[i] = PyUnicode_InternFromString(dropped[i])) == NULL) {
            return -1;
        }
    }
    struct { PyObject **slot; const char *text; } names[] = {
        {&u_server_protocol, "SERVER_PROTOCOL"}, {&u_request_scheme, "REQUEST_SCHEME"},
        {&u_https, "HTTPS"}, {&u_request_method, "REQUEST_METHOD"},
        {&u_query_string, "QUERY_STRING"}, {&u_server_name, "SERVER_NAME"},
        {&u_server_port, "SERVER_PORT"}, {&u_remote_addr, "REMOTE_ADDR"},
        {&u_script_name, "SCRIPT_NAME"}, {&u_path_info, "PATH_INFO"},
        {&u_document_uri, "DOCUMENT_URI"}, {&u_http_cookie, "HTTP_COOKIE"},
        {&u_wsgi_input, "wsgi.input"}, {&u_wsgi_url_scheme, "wsgi.url_scheme"},
        {&u_http, "http"}, {&u_empty, ""}, {&u_comma_space, ", "},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL) {
            return -1;
        }
    }
    usual_names_ready = 1;
    return 0;
}

/* cgi[name] when it is an exact str, NULL when absent; *bad set when present as
 * anything else or on an error (then the caller answers False, or NULL on an error). */
static PyObject *
usual_text(PyObject *cgi, PyObject *name, int *bad)
{
    PyObject *value = PyDict_GetItemWithError(cgi, name);
    if (value == NULL) {
        if (PyErr_Occurred()) {
            *bad = -1;
        }
        return NULL;
    }
    if (!PyUnicode_CheckExact(value)) {
        *bad = 1;
        return NULL;
    }
    return value;
}

/* Whether cgi[name] is a non-empty str (0 for absent, empty or not a str; -1 error). */
static int
usual_nonempty(PyObject *cgi, PyObject *name)
{
    int bad = 0;
    PyObject *value = usual_text(cgi, name, &bad);
    if (bad < 0) {
        return -1;
    }
    return value != NULL && PyUnicode_GET_LENGTH(value) > 0;
}

/* Whether every name of ``base`` is an exact str starting with "wsgi.". */
static int
usual_base(PyObject *base)
{
    PyObject *key, *value;
    Py_ssize_t at = 0;
    while (PyDict_Next(base, &at, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || PyUnicode_KIND(key) != PyUnicode_1BYTE_KIND
            || PyUnicode_GET_LENGTH(key) < 5
            || memcmp(PyUnicode_1BYTE_DATA(key), "wsgi.", 5) != 0) {
            return 0;
        }
    }
    return 1;
}

/* 1 when the variables are the usual request's (*whole: the path), 0 when not, -1 on
 * an error. */
static int
usual_request(PyObject *cgi, PyObject **whole)
{
    int bad = 0, found;
    for (int i = 0; i < 4; i++) {
        if ((found = PyDict_Contains(cgi, u_dropped[i])) != 0) {
            return found < 0 ? -1 : 0;
        }
    }
    PyObject *value = usual_text(cgi, u_server_protocol, &bad);
    if (value == NULL || (PyUnicode_CompareWithASCIIString(value, "HTTP/1.1") != 0
                          && PyUnicode_CompareWithASCIIString(value, "HTTP/1.0") != 0)) {
        return bad < 0 ? -1 : 0;
    }
    value = usual_text(cgi, u_request_scheme, &bad);
    if (value == NULL || PyUnicode_CompareWithASCIIString(value, "http") != 0) {
        return bad < 0 ? -1 : 0;
    }
    value = usual_text(cgi, u_https, &bad);
    if (bad || (value != NULL && PyUnicode_GET_LENGTH(value) > 0)) {
        return bad < 0 ? -1 : 0;
    }
    if ((found = PyDict_Contains(cgi, u_query_string)) <= 0) {
        return found;
    }
    PyObject *required[4] = {u_request_method, u_server_name, u_server_port, u_remote_addr};
    for (int i = 0; i < 4; i++) {
        if ((found = usual_nonempty(cgi, required[i])) <= 0) {
            return found;
        }
    }
    value = usual_text(cgi, u_script_name, &bad);
    if (bad || (value != NULL && PyUnicode_GET_LENGTH(value) > 0)) {
        return bad < 0 ? -1 : 0;
    }
    value = usual_text(cgi, u_path_info, &bad);
    if (bad) {
        return bad < 0 ? -1 : 0;
    }
    if (value == NULL && (value = usual_text(cgi, u_document_uri, &bad)) == NULL) {
        return bad < 0 ? -1 : 0;
    }
    if (PyUnicode_GET_LENGTH(value) == 0) {
        return 0;
    }
    *whole = value;
    PyObject *cookie = usual_text(cgi, u_http_cookie, &bad);
    if (bad) {
        return bad < 0 ? -1 : 0;
    }
    if (cookie != NULL) {
        Py_ssize_t at = PyUnicode_Find(cookie, u_comma_space, 0, PY_SSIZE_T_MAX, 1);
        if (at != -1) {
            return at == -2 ? -1 : 0;
        }
    }
    return 1;
}

static PyObject *
usual_environ(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "usual_environ(cgi, base, body) takes 3 arguments");
        return NULL;
    }
    PyObject *cgi = args[0], *base = args[1], *body = args[2], *whole = NULL;
    if (!PyDict_CheckExact(cgi) || !PyDict_CheckExact(base)) {
        Py_RETURN_FALSE;
    }
    if (!usual_names_ready && init_usual_names() < 0) {
        return NULL;
    }
    int usual = usual_request(cgi, &whole);
    if (usual < 0) {
        return NULL;
    }
    if (!usual || !usual_base(base)) {
        Py_RETURN_FALSE;
    }
    /* As build_environ does it, in its order: whole is held while PATH_INFO changes. */
    Py_INCREF(whole);
    int failed = PyDict_Update(cgi, base) < 0
                 || PyDict_SetItem(cgi, u_wsgi_input, body) < 0
                 || PyDict_SetItem(cgi, u_wsgi_url_scheme, u_http) < 0
                 || PyDict_SetItem(cgi, u_path_info, whole) < 0
                 || PyDict_SetItem(cgi, u_script_name, u_empty) < 0;
    Py_DECREF(whole);
    if (failed) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* ---- end of usual_environ ---------------------------------------------------------- */

static PyObject *
new_variables_dict(void)
{
#if PY_VERSION_HEX < 0x030D0000
    return _PyDict_NewPresized(PRESIZED_VARIABLES);
#else
    return PyDict_New(); /* the presizing call is internal from 3.13 on */
#endif
}

/* The largest CONTENT_LENGTH read here: 18 digits cannot overflow a long long. */
#define MAX_LENGTH_DIGITS 18

static PyObject *
known_name(const char *name, Py_ssize_t length)
{
    if (length > MAX_KNOWN_LENGTH) {
        return NULL;
    }
    for (int i = 0; i < MAX_PER_LENGTH && known_text_by_length[length][i] != NULL; i++) {
        if (memcmp(known_text_by_length[length][i], name, (size_t)length) == 0) {
            PyObject *interned = known_by_length[length][i];
            Py_INCREF(interned);
            return interned;
        }
    }
    return NULL;
}

/* digits[0:count] as a number, or -1 when they are not 1..max_digits ASCII digits. */
static long long
read_digits(const char *digits, Py_ssize_t count, Py_ssize_t max_digits)
{
    long long value = 0;
    if (count < 1 || count > max_digits) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (digits[i] < '0' || digits[i] > '9') {
            return -1;
        }
        value = value * 10 + (digits[i] - '0');
    }
    return value;
}

/* Adds name=value; 1 when added, 0 when the name was there already, -1 on error. */
static int
add_pair(PyObject *environ, const char *name, Py_ssize_t name_length,
         const char *value, Py_ssize_t value_length)
{
    Py_ssize_t before = PyDict_GET_SIZE(environ);
    PyObject *key = known_name(name, name_length);
    if (key == NULL) {
        key = PyUnicode_DecodeLatin1(name, name_length, NULL);
        if (key == NULL) {
            return -1;
        }
    }
    PyObject *text = PyUnicode_DecodeLatin1(value, value_length, NULL);
    if (text == NULL) {
        Py_DECREF(key);
        return -1;
    }
    int status = PyDict_SetItem(environ, key, text);
    Py_DECREF(key);
    Py_DECREF(text);
    if (status < 0) {
        return -1;
    }
    return PyDict_GET_SIZE(environ) > before;
}

/* The block's pairs into a new dict, CONTENT_LENGTH into *content_length.
 * Returns the dict, Py_None (new reference) for "let Python decide", or NULL. */
static PyObject *
parse_block(const char *block, Py_ssize_t size, Py_ssize_t max_headers,
            long long *content_length)
{
    const char *cursor = block, *stop = block + size;
    Py_ssize_t pairs = 0;
    int scgi_seen = 0;

    if (size == 0 || stop[-1] != '\0') {
        Py_RETURN_NONE;
    }
    PyObject *environ = new_variables_dict();
    if (environ == NULL) {
        return NULL;
    }
    while (cursor < stop) {
        /* Both NULs exist: the block ends in one. */
        const char *name_end = memchr(cursor, '\0', (size_t)(stop - cursor));
        const char *value = name_end + 1;
        if (value >= stop) {
            goto let_python_decide; /* a name without a value */
        }
        const char *value_end = memchr(value, '\0', (size_t)(stop - value));
        Py_ssize_t name_length = name_end - cursor, value_length = value_end - value;
        if (name_length == 0 || ++pairs > max_headers) {
            goto let_python_decide;
        }
        if (pairs == 1) {
            if (name_length != 14 || memcmp(cursor, "CONTENT_LENGTH", 14) != 0) {
                goto let_python_decide;
            }
            *content_length = read_digits(value, value_length, MAX_LENGTH_DIGITS);
            if (*content_length < 0) {
                goto let_python_decide;
            }
        }
        else if (name_length == 4 && memcmp(cursor, "SCGI", 4) == 0) {
            if (value_length != 1 || value[0] != '1') {
                goto let_python_decide;
            }
            scgi_seen = 1;
        }
        int added = add_pair(environ, cursor, name_length, value, value_length);
        if (added < 0) {
            Py_DECREF(environ);
            return NULL;
        }
        if (added == 0) {
            goto let_python_decide; /* repeated: Python joins or refuses it */
        }
        cursor = value_end + 1;
    }
    if (!scgi_seen) {
        goto let_python_decide;
    }
    return environ;

let_python_decide:
    Py_DECREF(environ);
    Py_RETURN_NONE;
}

static PyObject *
parse_head(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "parse_head(data, max_header_size, max_headers) takes 3 arguments");
        return NULL;
    }
    Py_ssize_t max_header_size = PyLong_AsSsize_t(args[1]);
    if (max_header_size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_headers = PyLong_AsSsize_t(args[2]);
    if (max_headers == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0])) {
        Py_RETURN_NONE;
    }
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);

    /* "<digits>:" -- no leading zero, within the limit. */
    Py_ssize_t colon = 0;
    while (colon < size && colon <= MAX_LENGTH_DIGITS && data[colon] != ':') {
        colon++;
    }
    if (colon >= size || data[colon] != ':' || (colon > 1 && data[0] == '0')) {
        Py_RETURN_NONE;
    }
    long long block_length = read_digits(data, colon, MAX_LENGTH_DIGITS);
    if (block_length < 0 || block_length > max_header_size) {
        Py_RETURN_NONE;
    }
    Py_ssize_t start = colon + 1, end = start + (Py_ssize_t)block_length;
    if (end >= size || data[end] != ',') {
        Py_RETURN_NONE;
    }
    long long content_length = -1;
    PyObject *environ = parse_block(data + start, end - start, max_headers, &content_length);
    if (environ == NULL || environ == Py_None) {
        return environ;
    }
    PyObject *result = PyTuple_New(3);
    PyObject *length = PyLong_FromLongLong(content_length);
    PyObject *body_start = PyLong_FromSsize_t(end + 1);
    if (result == NULL || length == NULL || body_start == NULL) {
        Py_XDECREF(result);
        Py_XDECREF(length);
        Py_XDECREF(body_start);
        Py_DECREF(environ);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, environ);
    PyTuple_SET_ITEM(result, 1, length);
    PyTuple_SET_ITEM(result, 2, body_start);
    return result;
}

/* --- the response head ------------------------------------------------------------ */

/* Characters a header name may not hold: what Python's str.isspace() says of the
 * latin-1 range (the \s of protocol._BAD_NAME_RE), ":" and NUL. A value may not
 * hold CR, LF or NUL. Filled in by init_tables(). */
static unsigned char bad_in_name[256];
static unsigned char bad_in_value[256];

static void
init_tables(void)
{
    static const unsigned char spaces[] = {
        '\t', '\n', 0x0b, 0x0c, '\r', 0x1c, 0x1d, 0x1e, 0x1f, ' ', 0x85, 0xa0,
    };
    for (size_t i = 0; i < sizeof(spaces); i++) {
        bad_in_name[spaces[i]] = 1;
    }
    bad_in_name[':'] = bad_in_name[0] = 1;
    bad_in_value['\r'] = bad_in_value['\n'] = bad_in_value[0] = 1;
}

/* str objects are always "ready" from 3.12 on, where the call is deprecated. */
#if PY_VERSION_HEX < 0x030C0000
#define ENSURE_READY(text) PyUnicode_READY(text)
#else
#define ENSURE_READY(text) 0
#endif

/* protocol._HOP_BY_HOP: response headers that describe one connection, and "status"
 * (a second status line in a CGI head: the front-end would take it as the status). */
static const char *const HOP_BY_HOP[] = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
    "upgrade", "status", NULL,
};

/* Whether the name lower-cases (ASCII: nothing else in latin-1 lower-cases into
 * ASCII) to ``lower``. */
static int
lower_cases_to(const Py_UCS1 *name, Py_ssize_t length, const char *lower)
{
    if ((Py_ssize_t)strlen(lower) != length) {
        return 0;
    }
    Py_ssize_t j = 0;
    while (j < length && (name[j] | 0x20) == (Py_UCS1)lower[j]
           && ((name[j] >= 'A' && name[j] <= 'Z') || name[j] == (Py_UCS1)lower[j])) {
        j++;
    }
    return j == length;
}

static int
is_hop_by_hop(const Py_UCS1 *name, Py_ssize_t length)
{
    for (int i = 0; HOP_BY_HOP[i] != NULL; i++) {
        if (lower_cases_to(name, length, HOP_BY_HOP[i])) {
            return 1;
        }
    }
    return 0;
}

static int
is_optional_whitespace(Py_UCS1 c)
{
    return c == ' ' || c == '\t';
}

/* The header's name and value as latin-1 text, unchecked: 0 when it is not a (str, str)
 * pair of latin-1 strings. For what does not depend on the bytes being valid. */
static int
header_texts(PyObject *header, const Py_UCS1 **name, Py_ssize_t *name_length,
             const Py_UCS1 **value, Py_ssize_t *value_length)
{
    if (!PyTuple_CheckExact(header) || PyTuple_GET_SIZE(header) != 2) {
        return 0;
    }
    PyObject *name_text = PyTuple_GET_ITEM(header, 0);
    PyObject *value_text = PyTuple_GET_ITEM(header, 1);
    if (!PyUnicode_CheckExact(name_text) || !PyUnicode_CheckExact(value_text)
        || ENSURE_READY(name_text) < 0 || ENSURE_READY(value_text) < 0
        || PyUnicode_KIND(name_text) != PyUnicode_1BYTE_KIND
        || PyUnicode_KIND(value_text) != PyUnicode_1BYTE_KIND) {
        PyErr_Clear();
        return 0;
    }
    *name = PyUnicode_1BYTE_DATA(name_text);
    *name_length = PyUnicode_GET_LENGTH(name_text);
    *value = PyUnicode_1BYTE_DATA(value_text);
    *value_length = PyUnicode_GET_LENGTH(value_text);
    return 1;
}

/* The header's name and value as latin-1 text with the value's optional whitespace
 * trimmed; 0 when the header is not a plain, valid (str, str) pair. */
static int
plain_header(PyObject *header, const Py_UCS1 **name, Py_ssize_t *name_length,
             const Py_UCS1 **value, Py_ssize_t *value_length)
{
    Py_ssize_t length;
    if (!header_texts(header, name, name_length, value, &length) || *name_length == 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < *name_length; i++) {
        if (bad_in_name[(*name)[i]]) {
            return 0;
        }
    }
    const Py_UCS1 *start = *value;
    const Py_UCS1 *end = start + length;
    for (const Py_UCS1 *c = start; c < end; c++) {
        if (bad_in_value[*c]) {
            return 0;
        }
    }
    while (start < end && is_optional_whitespace(start[0])) {
        start++;
    }
    while (end > start && is_optional_whitespace(end[-1])) {
        end--;
    }
    *value = start;
    *value_length = end - start;
    return 1;
}

static PyObject *
encode_head(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_head(status_line, headers) takes 2 arguments");
        return NULL;
    }
    PyObject *status_line = args[0], *headers = args[1];
    if (!PyBytes_CheckExact(status_line) || !PyList_CheckExact(headers)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PyList_GET_SIZE(headers);
    /* An upper bound from the lengths alone (each header as it is, plus ": " and CRLF),
     * then one pass that checks and copies: the head is cut to what was written. */
    Py_ssize_t size = PyBytes_GET_SIZE(status_line) + 2;
    const Py_UCS1 *name, *value;
    Py_ssize_t name_length, value_length;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!header_texts(PyList_GET_ITEM(headers, i), &name, &name_length, &value,
                          &value_length)) {
            Py_RETURN_NONE;
        }
        size += name_length + 2 + value_length + 2;
    }
    PyObject *head = PyBytes_FromStringAndSize(NULL, size);
    if (head == NULL) {
        return NULL;
    }
    char *start = PyBytes_AS_STRING(head), *out = start;
    memcpy(out, PyBytes_AS_STRING(status_line), (size_t)PyBytes_GET_SIZE(status_line));
    out += PyBytes_GET_SIZE(status_line);
    for (Py_ssize_t i = 0; i < count; i++) {
        /* The list is not changed in between: nothing here runs Python code. */
        if (!plain_header(PyList_GET_ITEM(headers, i), &name, &name_length, &value,
                          &value_length)) {
            Py_DECREF(head);
            Py_RETURN_NONE;
        }
        if (is_hop_by_hop(name, name_length)) {
            continue;
        }
        memcpy(out, name, (size_t)name_length);
        out += name_length;
        *out++ = ':';
        *out++ = ' ';
        memcpy(out, value, (size_t)value_length);
        out += value_length;
        *out++ = '\r';
        *out++ = '\n';
    }
    *out++ = '\r';
    *out++ = '\n';
    if (out - start != size && _PyBytes_Resize(&head, out - start) < 0) {
        return NULL;
    }
    return head;
}

/* declared_length(headers): see protocol.declared_length, which this agrees with for
 * a list of (str, str) latin-1 pairs and answers None for anything else. Like it, it
 * does not check the headers' bytes (encode_head does). */
static PyObject *
declared_length(PyObject *Py_UNUSED(module), PyObject *headers)
{
    if (!PyList_CheckExact(headers)) {
        Py_RETURN_NONE;
    }
    long long found = -1;
    int seen = 0;
    const Py_UCS1 *name, *value;
    Py_ssize_t name_length, value_length;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        if (!header_texts(PyList_GET_ITEM(headers, i), &name, &name_length, &value,
                          &value_length)) {
            Py_RETURN_NONE;
        }
        if (name_length == 14 && lower_cases_to(name, name_length, "content-length")) {
            const Py_UCS1 *end = value + value_length;
            while (value < end && is_optional_whitespace(value[0])) {
                value++;
            }
            while (end > value && is_optional_whitespace(end[-1])) {
                end--;
            }
            found = seen ? -1 : read_digits((const char *)value, end - value, 18);
            seen = 1;
        }
    }
    return PyLong_FromLongLong(found);
}

/* A FastCGI name-value length at data[*at]: one byte below 128, else four with the top
 * bit set. -1 when its bytes run past size. */
static Py_ssize_t
fcgi_length(const unsigned char *data, Py_ssize_t size, Py_ssize_t *at)
{
    Py_ssize_t i = *at;
    if (i >= size) {
        return -1;
    }
    if (data[i] < 0x80) {
        *at = i + 1;
        return data[i];
    }
    if (size - i < 4) {
        return -1;
    }
    *at = i + 4;
    return ((Py_ssize_t)(data[i] & 0x7f) << 24) | ((Py_ssize_t)data[i + 1] << 16)
           | ((Py_ssize_t)data[i + 2] << 8) | (Py_ssize_t)data[i + 3];
}

static PyObject *
fcgi_params(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "fcgi_params(data, max_size, max_pairs) takes 3 arguments");
        return NULL;
    }
    Py_ssize_t max_size = PyLong_AsSsize_t(args[1]);
    if (max_size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_pairs = PyLong_AsSsize_t(args[2]);
    if (max_pairs == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0])) {
        Py_RETURN_NONE;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (size > max_size) {
        Py_RETURN_NONE;
    }
    PyObject *environ = new_variables_dict();
    if (environ == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0, pairs = 0;
    while (at < size) {
        Py_ssize_t name_length = fcgi_length(data, size, &at);
        if (name_length < 0) {
            goto let_python_decide;
        }
        Py_ssize_t value_length = fcgi_length(data, size, &at);
        /* Compared with what is left, never added first: a claimed 2 GiB cannot overflow. */
        if (value_length < 0 || name_length == 0 || name_length > size - at
            || value_length > size - at - name_length || ++pairs > max_pairs) {
            goto let_python_decide;
        }
        const char *name = (const char *)data + at;
        int added = add_pair(environ, name, name_length, name + name_length, value_length);
        if (added < 0) {
            Py_DECREF(environ);
            return NULL;
        }
        if (added == 0 && name_length >= 5 && memcmp(name, "HTTP_", 5) == 0
            && !(name_length == 9 && memcmp(name, "HTTP_HOST", 9) == 0)) {
            goto let_python_decide; /* a repeated client header: Python joins the copies */
        }
        /* Any other repeated name: the later value has replaced the earlier one, in its
         * place, as fcgi_records.params_environ does (nginx: a fastcgi_param after
         * `include fastcgi_params` arrives as a second copy, and wins). */
        at += name_length + value_length;
    }
    return environ;

let_python_decide:
    Py_DECREF(environ);
    Py_RETURN_NONE;
}

/* access_line(stamp, now, environ, status, bytes_sent, duration, secret_words): the
 * access line of Django's default django.server output (server/accesslog.py,
 * default_line), for the usual request: every field a plain str of printable ASCII
 * without space or '"' (nothing to escape), no secret word in its query (nothing to
 * mask), a status starting with three digits, an int and a float. Anything else:
 * None, and the Python code formats it. */

static PyObject *s_remote_addr, *s_request_method, *s_request_uri, *s_server_protocol;

/* A plain token: an exact str, ASCII 0x21-0x7e without '"'. -1: missing/None/"" (the
 * caller may write "-"); 0: not plain; 1: plain, in *text / *length. */
static int
log_token(PyObject *value, const char **text, Py_ssize_t *length)
{
    if (value == NULL || value == Py_None) {
        return -1;
    }
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value)) {
        return 0;
    }
    Py_ssize_t size = PyUnicode_GET_LENGTH(value);
    if (size == 0) {
        return -1;
    }
    const char *data = (const char *)PyUnicode_1BYTE_DATA(value);
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c <= 0x20 || c >= 0x7f || c == '"') {
            return 0;
        }
    }
    *text = data;
    *length = size;
    return 1;
}

/* A field of the environ, "-" when missing or empty; 0: not plain (let Python do it). */
static int
log_field(PyObject *environ, PyObject *name, const char **text, Py_ssize_t *length)
{
    PyObject *value = PyDict_GetItemWithError(environ, name); /* borrowed */
    if (value == NULL && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    int found = log_token(value, text, length);
    if (found == -1) {
        *text = "-";
        *length = 1;
        return 1;
    }
    return found;
}

/* The decimal digits of a value >= 0 at ``out`` (at most 19); returns the end. */
static char *
write_decimal(char *out, long long value)
{
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    while (count > 0) {
        *out++ = digits[--count];
    }
    return out;
}

/* "%.3f" of a duration in [0, 1e6) s, as Python writes it (correctly rounded, ties to
 * even), into ``out``; 0 for anything else and for a value whose thousandths lie too
 * near a tie to decide from the rounded product (the caller lets Python write those).
 * d * 1000 is within 2^-23 of the exact product below 1e9, so away from x.5 by more
 * than 1e-6 the rounding of the exact value is that of the product. */
static int
millis_text(double d, char *out)
{
    if (!(d >= 0 && d < 1e6) || (d == 0 && signbit(d))) {
        return 0;
    }
    double x = d * 1000.0;
    double whole = floor(x);
    double fraction = x - whole;
    if (fabs(fraction - 0.5) < 1e-6) {
        return 0;
    }
    long long n = (long long)whole + (fraction > 0.5 ? 1 : 0);
    char *at = write_decimal(out, n / 1000);
    long rest = (long)(n % 1000);
    *at++ = '.';
    *at++ = (char)('0' + rest / 100);
    *at++ = (char)('0' + rest / 10 % 10);
    *at++ = (char)('0' + rest % 10);
    *at = '\0';
    return 1;
}

/* Whether environ._mask_query() could change ``uri`` (ASCII): it has a "=" and one of
 * ``words`` (a tuple of ASCII str) appears in its query, ignoring case. 1 also when the
 * words are not such a tuple: then Python decides. */
static int
may_hold_secret(const char *uri, Py_ssize_t length, PyObject *words)
{
    if (memchr(uri, '=', (size_t)length) == NULL) {
        return 0; /* _mask_query: no "=", nothing to mask */
    }
    if (!PyTuple_CheckExact(words)) {
        return 1;
    }
    /* The query: after the last "?", or the whole text without one (as _mask_query). */
    const char *query = uri;
    for (Py_ssize_t i = length - 1; i >= 0; i--) {
        if (uri[i] == '?') {
            query = uri + i + 1;
            break;
        }
    }
    Py_ssize_t query_length = length - (query - uri);
    for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(words); w++) {
        PyObject *word = PyTuple_GET_ITEM(words, w);
        if (!PyUnicode_CheckExact(word) || !PyUnicode_IS_ASCII(word)) {
            return 1;
        }
        const char *text = (const char *)PyUnicode_1BYTE_DATA(word);
        Py_ssize_t size = PyUnicode_GET_LENGTH(word);
        for (Py_ssize_t at = 0; at + size <= query_length; at++) {
            Py_ssize_t k = 0;
            while (k < size && Py_TOLOWER((unsigned char)query[at + k])
                                   == Py_TOLOWER((unsigned char)text[k])) {
                k++;
            }
            if (k == size) {
                return 1;
            }
        }
    }
    return 0;
}

static PyObject *
access_line(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "access_line() takes 7 arguments");
        return NULL;
    }
    PyObject *stamp = args[0], *now = args[1], *environ = args[2], *status = args[3];
    PyObject *sent = args[4], *duration = args[5], *secret_words = args[6];
    if (!PyUnicode_CheckExact(stamp) || !PyUnicode_IS_ASCII(stamp)
        || !PyFloat_CheckExact(now) || !PyDict_CheckExact(environ)
        || !PyUnicode_CheckExact(status) || !PyUnicode_IS_ASCII(status)
        || PyUnicode_GET_LENGTH(status) < 3 || !PyLong_CheckExact(sent)
        || !PyFloat_CheckExact(duration)) {
        Py_RETURN_NONE;
    }
    const char *code = (const char *)PyUnicode_1BYTE_DATA(status);
    int code_value = 0;
    for (int i = 0; i < 3; i++) {
        if (code[i] < '0' || code[i] > '9') {
            Py_RETURN_NONE;
        }
        code_value = code_value * 10 + (code[i] - '0');
    }
    int overflow = 0;
    long long sent_value = PyLong_AsLongLongAndOverflow(sent, &overflow);
    if (overflow || (sent_value == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    double when = PyFloat_AS_DOUBLE(now);
    if (!(when >= 0 && when < 9e15)) {
        Py_RETURN_NONE;
    }
    /* LogRecord's millisecond part of its time (accesslog._msecs). */
#if PY_VERSION_HEX >= 0x030D0000
    long msecs = (long)((long long)(when * 1000) % 1000);
#else
    long msecs = (long)((when - (double)(long long)when) * 1000);
#endif
    const char *remote, *method, *uri, *protocol;
    Py_ssize_t remote_length, method_length, uri_length, protocol_length;
    const char *uri_text;
    PyObject *uri_value = PyDict_GetItemWithError(environ, s_request_uri);
    if (uri_value == NULL && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    /* No REQUEST_URI: the path is rebuilt from SCRIPT_NAME and PATH_INFO, in Python. */
    if (log_token(uri_value, &uri_text, &uri_length) != 1) {
        Py_RETURN_NONE;
    }
    /* A query parameter whose name holds a secret word is masked (environ._mask_query):
     * Python does that, whenever one of the words appears in the query at all. */
    if (may_hold_secret(uri_text, uri_length, secret_words)) {
        Py_RETURN_NONE;
    }
    uri = uri_text;
    if (!log_field(environ, s_remote_addr, &remote, &remote_length)
        || !log_field(environ, s_request_method, &method, &method_length)
        || !log_field(environ, s_server_protocol, &protocol, &protocol_length)) {
        Py_RETURN_NONE;
    }
    if (msecs < 0 || msecs > 999 || sent_value < 0) {
        Py_RETURN_NONE;
    }
    char seconds_buffer[32];
    char *seconds = seconds_buffer;
    if (!millis_text(PyFloat_AS_DOUBLE(duration), seconds_buffer)) {
        /* Python's own "%.3f": correctly rounded, for any value. */
        seconds = PyOS_double_to_string(PyFloat_AS_DOUBLE(duration), 'f', 3, 0, NULL);
        if (seconds == NULL) {
            return NULL;
        }
    }
    /* ",mmm] " and '" CODE BYTES SECONDS\n', by hand: snprintf costs more than the rest. */
    char numbers[96];
    char *at = numbers;
    *at++ = (char)('0' + msecs / 100);
    *at++ = (char)('0' + msecs / 10 % 10);
    *at++ = (char)('0' + msecs % 10);
    *at++ = ']';
    *at++ = ' ';
    int numbers_length = (int)(at - numbers);
    *at++ = '"';
    *at++ = ' ';
    at = write_decimal(at, code_value);
    *at++ = ' ';
    at = write_decimal(at, sent_value);
    *at++ = ' ';
    size_t seconds_length = strlen(seconds);
    if (seconds_length > 40) {
        if (seconds != seconds_buffer) {
            PyMem_Free(seconds);
        }
        Py_RETURN_NONE;
    }
    memcpy(at, seconds, seconds_length);
    at += seconds_length;
    if (seconds != seconds_buffer) {
        PyMem_Free(seconds);
    }
    *at++ = '\n';
    int tail_length = (int)(at - numbers) - numbers_length;
    Py_ssize_t stamp_length = PyUnicode_GET_LENGTH(stamp);
    /* "[" stamp "," msecs "] " remote " \"" method " " uri " " protocol tail */
    Py_ssize_t size = 1 + stamp_length + 1 + numbers_length + remote_length + 2
                      + method_length + 1 + uri_length + 1 + protocol_length + tail_length;
    PyObject *line = PyUnicode_New(size, 127);
    if (line == NULL) {
        return NULL;
    }
    char *out = (char *)PyUnicode_1BYTE_DATA(line);
    *out++ = '[';
    memcpy(out, PyUnicode_1BYTE_DATA(stamp), (size_t)stamp_length);
    out += stamp_length;
    *out++ = ',';
    memcpy(out, numbers, (size_t)numbers_length);
    out += numbers_length;
    memcpy(out, remote, (size_t)remote_length);
    out += remote_length;
    *out++ = ' ';
    *out++ = '"';
    memcpy(out, method, (size_t)method_length);
    out += method_length;
    *out++ = ' ';
    memcpy(out, uri, (size_t)uri_length);
    out += uri_length;
    *out++ = ' ';
    memcpy(out, protocol, (size_t)protocol_length);
    out += protocol_length;
    memcpy(out, numbers + numbers_length, (size_t)tail_length);
    return line;
}

static int
init_access_names(void)
{
    s_remote_addr = PyUnicode_InternFromString("REMOTE_ADDR");
    s_request_method = PyUnicode_InternFromString("REQUEST_METHOD");
    s_request_uri = PyUnicode_InternFromString("REQUEST_URI");
    s_server_protocol = PyUnicode_InternFromString("SERVER_PROTOCOL");
    return (s_remote_addr && s_request_method && s_request_uri && s_server_protocol) ? 0 : -1;
}

/* ---- FastCGI: the usual request head in one call (fastcgi.ServerConnection) ---------- */

/* Whether a version-1 record of `type` and `request_id` starts at data[pos] and ends
 * (padding included) within size; its content length and end if so. */
static int
fcgi_record_at(const unsigned char *data, Py_ssize_t size, Py_ssize_t pos, int type,
               unsigned int request_id, Py_ssize_t *length, Py_ssize_t *end)
{
    if (size - pos < 8 || data[pos] != 1 || data[pos + 1] != type
        || (((unsigned int)data[pos + 2] << 8) | data[pos + 3]) != request_id) {
        return 0;
    }
    Py_ssize_t content = ((Py_ssize_t)data[pos + 4] << 8) | data[pos + 5];
    Py_ssize_t next = pos + 8 + content + data[pos + 6];
    if (next > size) {
        return 0;
    }
    *length = content;
    *end = next;
    return 1;
}

/* fcgi_head(buffer, pos, max_size, max_pairs): the request head that front-ends write
 * in one go, for fastcgi.ServerConnection._whole_head. When the bytes of `buffer`
 * (bytes or bytearray) from `pos` are a BEGIN_REQUEST (id not 0, 8 bytes of content,
 * role RESPONDER or AUTHORIZER), one PARAMS record with content and the empty PARAMS
 * record of the same id, and fcgi_params takes that content: (request id, role,
 * keep_conn, environ, end, stdin_end). `end` is past the PARAMS stream, or, for a
 * RESPONDER, past the empty STDIN record of the same id that follows it when one does
 * (stdin_end true: a request without a body). Anything else: None, and the Python
 * code (fcgi_records.RecordReader.whole_head and the record-by-record path) judges. */
static PyObject *
fcgi_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "fcgi_head(buffer, pos, max_size, max_pairs) takes 4 arguments");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *data;
    Py_ssize_t size;
    if (PyByteArray_CheckExact(args[0])) {
        data = (const unsigned char *)PyByteArray_AS_STRING(args[0]);
        size = PyByteArray_GET_SIZE(args[0]);
    } else if (PyBytes_CheckExact(args[0])) {
        data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
        size = PyBytes_GET_SIZE(args[0]);
    } else {
        Py_RETURN_NONE;
    }
    if (pos < 0 || size - pos < 16) {
        Py_RETURN_NONE;
    }
    unsigned int request_id = ((unsigned int)data[pos + 2] << 8) | data[pos + 3];
    Py_ssize_t length, at, params_start, params_length, stdin_stop;
    if (request_id == 0 || !fcgi_record_at(data, size, pos, 1, request_id, &length, &at)
        || length != 8) {
        Py_RETURN_NONE;
    }
    int role = (data[pos + 8] << 8) | data[pos + 9];
    int keep_conn = data[pos + 10] & 1;
    if (role != 1 && role != 2) { /* RESPONDER, AUTHORIZER; others are refused in Python */
        Py_RETURN_NONE;
    }
    params_start = at + 8;
    if (!fcgi_record_at(data, size, at, 4, request_id, &params_length, &at)
        || params_length == 0 || !fcgi_record_at(data, size, at, 4, request_id, &length, &at)
        || length != 0) {
        Py_RETURN_NONE;
    }
    int stdin_end = role == 1
                    && fcgi_record_at(data, size, at, 5, request_id, &length, &stdin_stop)
                    && length == 0;
    if (stdin_end) {
        at = stdin_stop;
    }
    /* A copy: nothing below may see the buffer change under it. */
    PyObject *params = PyBytes_FromStringAndSize((const char *)data + params_start,
                                                 params_length);
    if (params == NULL) {
        return NULL;
    }
    PyObject *call_args[3] = {params, args[2], args[3]};
    PyObject *environ = fcgi_params(module, call_args, 3);
    Py_DECREF(params);
    if (environ == NULL || environ == Py_None) {
        return environ;
    }
    /* Built by hand: Py_BuildValue parses its format string on every call. */
    PyObject *result = PyTuple_New(6);
    PyObject *number = PyLong_FromLong((long)request_id);
    PyObject *end = PyLong_FromSsize_t(at);
    if (result == NULL || number == NULL || end == NULL) {
        Py_XDECREF(result);
        Py_XDECREF(number);
        Py_XDECREF(end);
        Py_DECREF(environ);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, number);
    PyTuple_SET_ITEM(result, 1, PyLong_FromLong(role)); /* 1 or 2: a cached small int */
    PyTuple_SET_ITEM(result, 2, PyBool_FromLong(keep_conn));
    PyTuple_SET_ITEM(result, 3, environ);
    PyTuple_SET_ITEM(result, 4, end);
    PyTuple_SET_ITEM(result, 5, PyBool_FromLong(stdin_end));
    return result;
}

/* fcgi_stdout_end(request_id, data): the end of a response that completed, for
 * fastcgi.ServerConnection.end_with_stdout: `data` (bytes, 1 to 65,535 of them) in one
 * STDOUT record padded to 8, the empty STDOUT record, END_REQUEST (application status 0,
 * REQUEST_COMPLETE), in one buffer: the bytes fcgi_records.encode_stdout and
 * fastcgi._completed give. Anything else: None, and Python frames it. */
static PyObject *
fcgi_stdout_end(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "fcgi_stdout_end(request_id, data) takes 2 arguments");
        return NULL;
    }
    long request_id = PyLong_AsLong(args[0]);
    if (request_id == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyBytes_CheckExact(args[1]) || request_id < 0 || request_id > 0xFFFF) {
        Py_RETURN_NONE;
    }
    Py_ssize_t length = PyBytes_GET_SIZE(args[1]);
    if (length < 1 || length > 0xFFFF) {
        Py_RETURN_NONE;
    }
    Py_ssize_t padding = (8 - length % 8) % 8;
    PyObject *out = PyBytes_FromStringAndSize(NULL, 8 + length + padding + 8 + 16);
    if (out == NULL) {
        return NULL;
    }
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned char id_high = (unsigned char)(request_id >> 8), id_low = (unsigned char)request_id;
    unsigned char head[8] = {1, 6, id_high, id_low, (unsigned char)(length >> 8),
                             (unsigned char)length, (unsigned char)padding, 0};
    memcpy(at, head, 8);
    memcpy(at + 8, PyBytes_AS_STRING(args[1]), (size_t)length);
    at += 8 + length;
    memset(at, 0, (size_t)padding);
    at += padding;
    unsigned char tail[24] = {1, 6, id_high, id_low, 0, 0, 0, 0,  /* empty STDOUT */
                              1, 3, id_high, id_low, 0, 8, 0, 0,  /* END_REQUEST */
                              0, 0, 0, 0, 0, 0, 0, 0};            /* 0, COMPLETE */
    memcpy(at, tail, 24);
    return out;
}

static PyMethodDef methods[] = {
    {"usual_environ", (PyCFunction)(void (*)(void))usual_environ, METH_FASTCALL,
     "usual_environ(cgi, base, body) -> True: the usual request's environ made in place, "
     "as environ.build_environ makes it; False: nothing changed, let the Python code."},
    {"access_line", (PyCFunction)(void (*)(void))access_line, METH_FASTCALL,
     "access_line(stamp, now, environ, status, bytes_sent, duration, secret_words) -> "
     "Django's default django.server line for a request whose fields need no escaping "
     "and whose query holds none of the secret words; None: let the Python code "
     "(server/accesslog.py) format it."},
    {"encode_head", (PyCFunction)(void (*)(void))encode_head, METH_FASTCALL,
     "encode_head(status_line, headers) -> the response head, hop-by-hop headers "
     "dropped, for a list of plain, valid (str, str) headers; None: let the Python "
     "encoder decide."},
    {"declared_length", declared_length, METH_O,
     "declared_length(headers) -> the Content-Length of a list of plain, valid (str, str) "
     "headers, -1 for none; None: let the Python code decide."},
    {"parse_head", (PyCFunction)(void (*)(void))parse_head, METH_FASTCALL,
     "parse_head(data, max_header_size, max_headers) -> (variables, content_length, "
     "body_start) for a complete, plainly valid head; None: let the Python parser decide."},
    {"fcgi_params", (PyCFunction)(void (*)(void))fcgi_params, METH_FASTCALL,
     "fcgi_params(data, max_size, max_pairs) -> the variables of a whole, plainly valid "
     "FastCGI PARAMS stream without repeated names; None: let the Python parser decide."},
    {"fcgi_head", (PyCFunction)(void (*)(void))fcgi_head, METH_FASTCALL,
     "fcgi_head(buffer, pos, max_size, max_pairs) -> (request_id, role, keep_conn, "
     "environ, end, stdin_end) for the usual whole FastCGI request head; None: let the "
     "Python code decide."},
    {"fcgi_stdout_end", (PyCFunction)(void (*)(void))fcgi_stdout_end, METH_FASTCALL,
     "fcgi_stdout_end(request_id, data) -> data in a STDOUT record, the empty STDOUT "
     "record and END_REQUEST (0, REQUEST_COMPLETE); None: let the Python code frame it."},
    {NULL, NULL, 0, NULL},
};

static int
init_known_names(void)
{
    for (int i = 0; KNOWN_NAMES[i] != NULL; i++) {
        size_t length = strlen(KNOWN_NAMES[i]);
        int slot = 0;
        if (length > MAX_KNOWN_LENGTH) {
            continue;
        }
        while (slot < MAX_PER_LENGTH && known_text_by_length[length][slot] != NULL) {
            slot++;
        }
        if (slot == MAX_PER_LENGTH) {
            continue;
        }
        PyObject *name = PyUnicode_InternFromString(KNOWN_NAMES[i]);
        if (name == NULL) {
            return -1;
        }
        if (PyObject_Hash(name) == -1) { /* computed once, cached in the str */
            Py_DECREF(name);
            return -1;
        }
        known_by_length[length][slot] = name; /* kept for the interpreter's lifetime */
        known_text_by_length[length][slot] = KNOWN_NAMES[i];
    }
    return 0;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "django_scgi._speedups",
    "The usual SCGI request head, parsed in C (see protocol.parse_head).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (known_text_by_length[4][0] == NULL) {
        if (init_known_names() < 0 || init_access_names() < 0) {
            return NULL;
        }
        init_tables();
    }
    return PyModule_Create(&module_def);
}
