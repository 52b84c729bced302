/*
 * django_scgi._speedups: the usual request head, parsed in C.
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
 * Optional: when it is not built (no compiler at install time), protocol.py runs
 * the same parse in Python.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* CGI variables the front-ends send on most requests (shared/frontends.md) and the
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
    PyObject *environ = PyDict_New();
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
    return Py_BuildValue("(NLn)", environ, content_length, end + 1);
}

static PyMethodDef methods[] = {
    {"parse_head", (PyCFunction)(void (*)(void))parse_head, METH_FASTCALL,
     "parse_head(data, max_header_size, max_headers) -> (variables, content_length, "
     "body_start) for a complete, plainly valid head; None: let the Python parser decide."},
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
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (known_text_by_length[4][0] == NULL && init_known_names() < 0) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
