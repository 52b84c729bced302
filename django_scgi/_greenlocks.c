/*
 * django_scgi._greenlocks: threading.get_ident() and threading.RLock() for a process
 * that gevent has monkey-patched, in C.
 *
 * After patch_all() a "thread" is a greenlet: gevent replaces get_ident() with a Python
 * function returning id(getcurrent()), and it sets threading._CRLock to None so that
 * threading.RLock() makes the pure-Python _PyRLock around gevent's lock (the C RLock
 * would take the OS thread for its owner). Django pays for both on every request:
 * asgiref's Local, behind its URLconf and script-prefix locals, takes an RLock and
 * calls get_ident() on every attribute access (five lock pairs and eighteen get_ident
 * calls per request for a plain view), about 37 k instructions in all.
 *
 * This module does the same work in C, with the same semantics:
 *   get_ident(gr=None)  id(gr), or id(greenlet.getcurrent()) (id(None) while greenlet
 *                       is being torn down), as gevent.thread.get_ident;
 *   RLock()             threading._PyRLock's semantics: the owner is the get_ident()
 *                       above, and a greenlet that must wait for it waits on a gevent
 *                       lock (gevent.thread.allocate_lock()), so the others run.
 *                       That lock is taken only when some greenlet has to wait (see
 *                       "lazy blocking lock" below): Django's RLocks are never
 *                       contended, and gevent's acquire() costs ~2 k instructions.
 * django_scgi.launch installs both after patch_all(); DJANGO_SCGI_PURE_PYTHON=1 or a
 * missing build leaves gevent's Python versions in place.
 *
 * Nothing here can switch greenlets except the gevent lock's own acquire(), and the
 * GIL is held throughout, so the owner/count updates are as atomic as the Python
 * version's.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <structmember.h>
#include <stdint.h>

static PyObject *getcurrent;      /* greenlet.getcurrent */
static PyObject *allocate_lock;   /* gevent.thread.allocate_lock (LockType) */
/* BoundedSemaphore.acquire, which LockType.acquire(True, -1) ends in after a Python
 * layer that only translates arguments; called directly for that (usual) case. */
static PyObject *semaphore_acquire;
static PyObject *str_acquire, *str_release, *str_at_fork_reinit;
static PyObject *minus_one;

/* id() of the current greenlet into *ident; -1 with an exception set on failure. */
static int
current_ident(uintptr_t *ident)
{
    PyObject *current = PyObject_CallNoArgs(getcurrent);
    if (current == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            return -1;
        }
        /* greenlet is being finalised at interpreter exit: gevent answers id(None). */
        PyErr_Clear();
        *ident = (uintptr_t)Py_None;
        return 0;
    }
    *ident = (uintptr_t)current;
    Py_DECREF(current);
    return 0;
}

static PyObject *
get_ident(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "get_ident() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None) {
        return PyLong_FromVoidPtr(args[0]);
    }
    uintptr_t ident;
    if (current_ident(&ident) < 0) {
        return NULL;
    }
    return PyLong_FromVoidPtr((void *)ident);
}

/* --- RLock --------------------------------------------------------------------------- */

/* Lazy blocking lock. _PyRLock holds its gevent lock ("block") for as long as it is
 * owned. Here an uncontended acquire() only records the owner; the block is taken when
 * a second greenlet has to wait:
 *   - "held" says the block is taken for the current owner. A greenlet that finds the
 *     RLock owned with the block free takes the block for the owner (never waits: the
 *     block is free), then waits on it; the owner's last release() releases it, which
 *     wakes that waiter.
 *   - A waiter that gets the block becomes the owner with held set.
 *   - The fast path (record the owner, nothing else) is taken only when nothing is
 *     owned, held, or waited for: after a release that woke a waiter, until that
 *     waiter runs, newcomers go through the block too, as with _PyRLock.
 * Invariant: owner != 0 and !held => no waiters and the block is free. Every step
 * runs with the GIL and without a greenlet switch except the block's own acquire(). */
typedef struct {
    PyObject_HEAD
    PyObject *block;          /* the gevent lock that waiting greenlets wait on */
    uintptr_t owner;          /* get_ident() of the owner; 0: not owned */
    unsigned long count;      /* recursion level */
    int held;                 /* the block is taken on the owner's behalf */
    Py_ssize_t waiters;       /* greenlets inside the block's acquire() */
    PyObject *weakreflist;
} RLockObject;

static PyTypeObject RLockType;

static PyObject *
rlock_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "RLock() takes no arguments");
        return NULL;
    }
    PyObject *block = PyObject_CallNoArgs(allocate_lock);
    if (block == NULL) {
        return NULL;
    }
    RLockObject *self = (RLockObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(block);
        return NULL;
    }
    self->block = block;
    self->owner = 0;
    self->count = 0;
    self->held = 0;
    self->waiters = 0;
    self->weakreflist = NULL;
    return (PyObject *)self;
}

/* Traversed, as a Python-level _PyRLock would be: a greenlet waiting on the lock can
 * make a cycle back to it through its frame. No tp_clear: those frames break it. */
static int
rlock_traverse(RLockObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->block);
    return 0;
}

static void
rlock_dealloc(RLockObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Py_XDECREF(self->block);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The gevent lock's acquire(blocking, None) (blocking: Py_True or Py_False): the result
 * object. */
static PyObject *
block_acquire_default(RLockObject *self, PyObject *blocking)
{
    if (semaphore_acquire != NULL) {
        PyObject *args[3] = {self->block, blocking, Py_None};
        return PyObject_Vectorcall(semaphore_acquire, args, 3, NULL);
    }
    PyObject *args[2] = {self->block, blocking};
    return PyObject_VectorcallMethod(str_acquire, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     NULL);
}

static PyObject *
block_call(RLockObject *self, PyObject *name)
{
    PyObject *args[1] = {self->block};
    return PyObject_VectorcallMethod(name, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* acquire(blocking=True, timeout=-1), keyword or positional. */
static int
parse_acquire_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                   PyObject **blocking, PyObject **timeout)
{
    *blocking = NULL;
    *timeout = NULL;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "acquire() takes at most 2 arguments");
        return -1;
    }
    if (nargs > 0) {
        *blocking = args[0];
    }
    if (nargs > 1) {
        *timeout = args[1];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot;
        if (PyUnicode_CompareWithASCIIString(name, "blocking") == 0) {
            slot = blocking;
        } else if (PyUnicode_CompareWithASCIIString(name, "timeout") == 0) {
            slot = timeout;
        } else {
            PyErr_Format(PyExc_TypeError, "acquire() got an unexpected keyword argument '%U'",
                         name);
            return -1;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "acquire() got multiple values for argument '%U'",
                         name);
            return -1;
        }
        *slot = args[nargs + i];
    }
    return 0;
}

/* Take the block for an owner that took the fast path, so that the caller can wait on
 * it. 0 on success. */
static int
hold_for_owner(RLockObject *self)
{
    PyObject *taken = block_acquire_default(self, Py_False);
    if (taken == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(taken);
    Py_DECREF(taken);
    if (truth < 0) {
        return -1;
    }
    if (!truth) {  /* the invariant says it is free: something else took it */
        PyErr_SetString(PyExc_RuntimeError, "RLock's blocking lock taken unexpectedly");
        return -1;
    }
    self->held = 1;
    return 0;
}

/* The block's acquire() with the caller's arguments (NULL: not given): the result. */
static PyObject *
block_acquire(RLockObject *self, PyObject *blocking, PyObject *timeout)
{
    if ((blocking == NULL || blocking == Py_True) && timeout == NULL) {
        return block_acquire_default(self, Py_True);
    }
    PyObject *call[3] = {self->block, blocking ? blocking : Py_True,
                         timeout ? timeout : minus_one};
    return PyObject_VectorcallMethod(str_acquire, call, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     NULL);
}

/* Owned by another greenlet, or handed over: go through the block, as _PyRLock does. */
static PyObject *
acquire_through_block(RLockObject *self, uintptr_t me, PyObject *blocking, PyObject *timeout)
{
    if (self->owner != 0 && !self->held && hold_for_owner(self) < 0) {
        return NULL;
    }
    self->waiters++;
    PyObject *acquired = block_acquire(self, blocking, timeout);
    self->waiters--;
    if (acquired == NULL) {
        return NULL;
    }
    int truth = PyObject_IsTrue(acquired);
    if (truth < 0) {
        Py_DECREF(acquired);
        return NULL;
    }
    if (truth) {
        self->owner = me;
        self->count = 1;
        self->held = 1;
    }
    return acquired;
}

static PyObject *
rlock_acquire(RLockObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *blocking, *timeout;
    if (parse_acquire_args(args, nargs, kwnames, &blocking, &timeout) < 0) {
        return NULL;
    }
    uintptr_t me;
    if (current_ident(&me) < 0) {
        return NULL;
    }
    if (self->owner == me) {
        self->count++;
        return PyLong_FromLong(1);  /* what _PyRLock answers for a nested acquire */
    }
    int default_arguments = (blocking == NULL || blocking == Py_True) && timeout == NULL;
    if (default_arguments && self->owner == 0 && !self->held && self->waiters == 0) {
        /* The block's acquire() would take it at once and answer True. */
        self->owner = me;
        self->count = 1;
        Py_RETURN_TRUE;
    }
    return acquire_through_block(self, me, blocking, timeout);
}

/* Give up ownership; the block too if it was taken, which wakes a waiter. */
static int
let_go(RLockObject *self)
{
    self->owner = 0;
    self->count = 0;
    if (!self->held) {
        return 0;
    }
    self->held = 0;
    PyObject *result = block_call(self, str_release);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static PyObject *
rlock_release(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    uintptr_t me;
    if (current_ident(&me) < 0) {
        return NULL;
    }
    if (self->owner != me) {  /* owner is 0 whenever count is */
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    if (--self->count) {
        Py_RETURN_NONE;
    }
    if (let_go(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
rlock_exit(RLockObject *self, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    return rlock_release(self, NULL);
}

static PyObject *
rlock_is_owned(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    uintptr_t me;
    if (current_ident(&me) < 0) {
        return NULL;
    }
    return PyBool_FromLong(self->owner == me);
}

static PyObject *
rlock_recursion_count(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    uintptr_t me;
    if (current_ident(&me) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(self->owner == me ? self->count : 0);
}

/* For threading.Condition.wait(): give the lock up whatever its level, and return the
 * (count, owner) pair _acquire_restore() takes back. */
static PyObject *
rlock_release_save(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->count == 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    PyObject *owner = self->owner ? PyLong_FromVoidPtr((void *)self->owner)
                                  : Py_NewRef(Py_None);
    if (owner == NULL) {
        return NULL;
    }
    PyObject *state = Py_BuildValue("(kN)", self->count, owner);
    if (state == NULL) {
        return NULL;
    }
    if (let_go(self) < 0) {
        Py_DECREF(state);
        return NULL;
    }
    return state;
}

static PyObject *
rlock_acquire_restore(RLockObject *self, PyObject *state)
{
    unsigned long count;
    PyObject *owner;
    if (!PyArg_ParseTuple(state, "kO:_acquire_restore", &count, &owner)) {
        return NULL;
    }
    uintptr_t ident = 0;
    if (owner != Py_None) {
        ident = (uintptr_t)PyLong_AsVoidPtr(owner);
        if (ident == 0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    uintptr_t me;
    if (current_ident(&me) < 0) {
        return NULL;
    }
    if (self->owner == 0 && !self->held && self->waiters == 0) {
        self->owner = me;  /* the fast path of acquire() */
    } else {
        PyObject *result = acquire_through_block(self, me, NULL, NULL);
        if (result == NULL) {
            return NULL;
        }
        Py_DECREF(result);
    }
    self->count = count;
    self->owner = ident;
    Py_RETURN_NONE;
}

static PyObject *
rlock_at_fork_reinit(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *result = block_call(self, str_at_fork_reinit);
    if (result == NULL) {
        return NULL;
    }
    Py_DECREF(result);
    self->owner = 0;
    self->count = 0;
    self->held = 0;
    self->waiters = 0;
    Py_RETURN_NONE;
}

/* Owned by some greenlet. (The block may be free while it is: see "lazy blocking lock".) */
static PyObject *
rlock_locked(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->owner != 0);
}

static PyObject *
rlock_repr(RLockObject *self)
{
    int truth = self->owner != 0;
    PyObject *owner = self->owner ? PyLong_FromVoidPtr((void *)self->owner)
                                  : Py_NewRef(Py_None);
    if (owner == NULL) {
        return NULL;
    }
    PyObject *text = PyUnicode_FromFormat("<%s %s object owner=%R count=%lu at %p>",
                                          truth ? "locked" : "unlocked",
                                          Py_TYPE(self)->tp_name, owner, self->count, self);
    Py_DECREF(owner);
    return text;
}

static PyMethodDef rlock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))rlock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1): as threading.RLock.acquire."},
    {"__enter__", (PyCFunction)(void (*)(void))rlock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire()"},
    {"release", (PyCFunction)rlock_release, METH_NOARGS,
     "release(): as threading.RLock.release."},
    {"__exit__", (PyCFunction)(void (*)(void))rlock_exit, METH_FASTCALL, "release()"},
    {"locked", (PyCFunction)rlock_locked, METH_NOARGS, "Whether some greenlet owns it."},
    {"_is_owned", (PyCFunction)rlock_is_owned, METH_NOARGS, NULL},
    {"_recursion_count", (PyCFunction)rlock_recursion_count, METH_NOARGS, NULL},
    {"_release_save", (PyCFunction)rlock_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)rlock_acquire_restore, METH_O, NULL},
    {"_at_fork_reinit", (PyCFunction)rlock_at_fork_reinit, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef rlock_members[] = {
    {"_block", T_OBJECT, offsetof(RLockObject, block), READONLY,
     "The gevent lock waiting greenlets wait on (as threading._PyRLock's _block)."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "django_scgi._greenlocks.RLock",
    .tp_basicsize = sizeof(RLockObject),
    .tp_dealloc = (destructor)rlock_dealloc,
    .tp_repr = (reprfunc)rlock_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)rlock_traverse,
    .tp_doc = "A reentrant lock owned by greenlets: threading.RLock under gevent.",
    .tp_weaklistoffset = offsetof(RLockObject, weakreflist),
    .tp_methods = rlock_methods,
    .tp_members = rlock_members,
    .tp_new = rlock_new,
};

/* --- module -------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"get_ident", (PyCFunction)(void (*)(void))get_ident, METH_FASTCALL,
     "get_ident(gr=None) -> id(gr or greenlet.getcurrent()), as gevent.thread.get_ident."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "django_scgi._greenlocks",
    "get_ident() and RLock for greenlets, for a gevent-patched process.", -1, methods,
    NULL, NULL, NULL, NULL,
};

static PyObject *
import_attribute(const char *module_name, const char *name)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    return value;
}

/* BoundedSemaphore.acquire when gevent's lock type is the one this module knows: a
 * BoundedSemaphore whose own acquire() only maps (True, -1) to (True, None). Else
 * NULL, and every acquire goes through the lock's own method. */
static PyObject *
find_semaphore_acquire(void)
{
    PyObject *semaphore = import_attribute("gevent.lock", "BoundedSemaphore");
    if (semaphore == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *acquire = NULL;
    if (PyType_Check(allocate_lock) && PyType_Check(semaphore)
            && PyType_IsSubtype((PyTypeObject *)allocate_lock, (PyTypeObject *)semaphore)) {
        acquire = PyObject_GetAttr(semaphore, str_acquire);
        if (acquire == NULL) {
            PyErr_Clear();
        }
    }
    Py_DECREF(semaphore);
    return acquire;
}

PyMODINIT_FUNC
PyInit__greenlocks(void)
{
    getcurrent = import_attribute("greenlet", "getcurrent");
    allocate_lock = getcurrent ? import_attribute("gevent.thread", "allocate_lock") : NULL;
    str_acquire = PyUnicode_InternFromString("acquire");
    str_release = PyUnicode_InternFromString("release");
    str_at_fork_reinit = PyUnicode_InternFromString("_at_fork_reinit");
    minus_one = PyLong_FromLong(-1);
    if (allocate_lock == NULL || !str_acquire || !str_release || !str_at_fork_reinit
            || !minus_one) {
        return NULL;
    }
    semaphore_acquire = find_semaphore_acquire();
    if (PyType_Ready(&RLockType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&RLockType);
    if (PyModule_AddObject(module, "RLock", (PyObject *)&RLockType) < 0) {
        Py_DECREF(&RLockType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
