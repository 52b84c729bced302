/*
 * django_scgi._syscalls: the system calls connection.py makes per connection that
 * Python's standard library has no lean form of.
 *
 * accept(listener_fd) -> (fd, raw peer sockaddr as bytes) or None when the backlog
 * is empty: accept4() with SOCK_NONBLOCK | SOCK_CLOEXEC, so the new descriptor needs
 * no further fcntl/ioctl. unread_bytes(fd) -> int: ioctl(FIONREAD).
 * send_more(fd, data) -> bytes sent: send() with MSG_MORE, which os.write() cannot
 * pass and socket.send() needs a socket object for.
 *
 * Without this module connection.py makes the first two calls through the socket and
 * fcntl modules (a socket object per accept, the peer decoded at once), and sends
 * without MSG_MORE. No call can block
 * (the descriptors are non-blocking; FIONREAD never waits), so the GIL is kept.
 *
 * Optional: when it is not built, or on a platform without accept4 (macOS), the
 * Python code does the same work.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* A descriptor from a Python int; -1 with an exception set when it is not one. */
static int
as_fd(PyObject *arg)
{
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < 0 || value > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "not a file descriptor");
        return -1;
    }
    return (int)value;
}

#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
static PyObject *
accept_connection(PyObject *Py_UNUSED(module), PyObject *arg)
{
    int listener = as_fd(arg);
    if (listener < 0) {
        return NULL;
    }
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    int fd = accept4(listener, (struct sockaddr *)&address, &length,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            Py_RETURN_NONE;
        }
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (length > sizeof(address)) {
        length = sizeof(address);
    }
    PyObject *peer = PyBytes_FromStringAndSize((const char *)&address, (Py_ssize_t)length);
    if (peer == NULL) {
        close(fd);
        return NULL;
    }
    PyObject *result = PyTuple_New(2);
    PyObject *number = PyLong_FromLong(fd);
    if (result == NULL || number == NULL) {
        Py_XDECREF(result);
        Py_XDECREF(number);
        Py_DECREF(peer);
        close(fd);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, number);
    PyTuple_SET_ITEM(result, 1, peer);
    return result;
}
#endif

static PyObject *
unread_bytes(PyObject *Py_UNUSED(module), PyObject *arg)
{
    int fd = as_fd(arg);
    if (fd < 0) {
        return NULL;
    }
    int count = 0;
    if (ioctl(fd, FIONREAD, &count) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(count);
}

#ifdef MSG_MORE
static PyObject *
send_more(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "send_more(fd, data) takes 2 arguments");
        return NULL;
    }
    int fd = as_fd(args[0]);
    if (fd < 0) {
        return NULL;
    }
    Py_buffer data;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    ssize_t sent = send(fd, data.buf, (size_t)data.len, MSG_MORE | MSG_NOSIGNAL);
    PyBuffer_Release(&data);
    if (sent < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);  /* EAGAIN: BlockingIOError */
    }
    return PyLong_FromSsize_t(sent);
}
#endif

static PyMethodDef methods[] = {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    {"accept", accept_connection, METH_O,
     "accept(listener_fd) -> (fd, peer sockaddr bytes), or None when none is waiting."},
#endif
    {"unread_bytes", unread_bytes, METH_O, "unread_bytes(fd) -> bytes waiting (FIONREAD)."},
#ifdef MSG_MORE
    {"send_more", (PyCFunction)(void (*)(void))send_more, METH_FASTCALL,
     "send_more(fd, data) -> bytes sent by send(MSG_MORE | MSG_NOSIGNAL)."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "django_scgi._syscalls",
    "accept4, FIONREAD and send(MSG_MORE) for connection.py.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__syscalls(void)
{
    return PyModule_Create(&module_def);
}
