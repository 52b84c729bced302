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
#include <string.h>

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

/* --- the lazy blocking lock, shared by RLock and Lock ---------------------------------- */

/* gevent's locks hold a gevent lock ("block") for as long as they are taken. Here an
 * uncontended acquire() only records that the lock is taken; the block is taken when a
 * second greenlet has to wait:
 *   - "held" says the block is taken on behalf of whoever has the lock. A greenlet that
 *     finds the lock taken with the block free takes the block for the taker (never
 *     waits: the block is free), then waits on it; the taker's release() releases it,
 *     which wakes that waiter.
 *   - A waiter that gets the block takes the lock with held set.
 *   - The fast path (record the taker, nothing else) is taken only when the lock is
 *     free and nothing is held or waited for: after a release that woke a waiter,
 *     until that waiter runs, newcomers go through the block too, as with gevent's.
 *   - A try (acquire(False)) of a lock taken by another is answered False without
 *     the block: threading.Condition asks that way whether it is held.
 * Invariant: taken and !held => no waiters and the block is free. Every step runs with
 * the GIL and without a greenlet switch except the block's own blocking acquire(). */
typedef struct {
    PyObject *block;          /* the gevent lock that waiting greenlets wait on */
    int held;                 /* the block is taken on the taker's behalf */
    Py_ssize_t waiters;       /* greenlets inside the block's acquire() */
} LazyBlock;

static int
lazy_init(LazyBlock *lazy)
{
    lazy->block = PyObject_CallNoArgs(allocate_lock);
    lazy->held = 0;
    lazy->waiters = 0;
    return lazy->block == NULL ? -1 : 0;
}

/* Neither held nor waited for: a free lock may then be taken without the block. */
static inline int
lazy_is_quiet(const LazyBlock *lazy)
{
    return !lazy->held && lazy->waiters == 0;
}

/* The block's acquire(blocking, None) (blocking: Py_True or Py_False): the result. */
static PyObject *
block_acquire_default(LazyBlock *lazy, PyObject *blocking)
{
    if (semaphore_acquire != NULL) {
        PyObject *args[3] = {lazy->block, blocking, Py_None};
        return PyObject_Vectorcall(semaphore_acquire, args, 3, NULL);
    }
    PyObject *args[2] = {lazy->block, blocking};
    return PyObject_VectorcallMethod(str_acquire, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     NULL);
}

/* The block's acquire() with the caller's arguments (NULL: not given): the result. */
static PyObject *
block_acquire(LazyBlock *lazy, PyObject *blocking, PyObject *timeout)
{
    if ((blocking == NULL || blocking == Py_True) && timeout == NULL) {
        return block_acquire_default(lazy, Py_True);
    }
    PyObject *call[3] = {lazy->block, blocking ? blocking : Py_True,
                         timeout ? timeout : minus_one};
    return PyObject_VectorcallMethod(str_acquire, call, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     NULL);
}

static PyObject *
block_call(LazyBlock *lazy, PyObject *name)
{
    PyObject *args[1] = {lazy->block};
    return PyObject_VectorcallMethod(name, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* Take the block for a taker that took the fast path, so that the caller can wait on
 * it. 0 on success. */
static int
hold_for_taker(LazyBlock *lazy)
{
    PyObject *taken = block_acquire_default(lazy, Py_False);
    if (taken == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(taken);
    Py_DECREF(taken);
    if (truth < 0) {
        return -1;
    }
    if (!truth) {  /* the invariant says it is free: something else took it */
        PyErr_SetString(PyExc_RuntimeError, "the lock's gevent lock was taken unexpectedly");
        return -1;
    }
    lazy->held = 1;
    return 0;
}

/* Acquire through the block, as gevent's locks do: the lock is ``taken`` now, or being
 * handed over. The block's result in *result; 1 if acquired (held is then set), 0 if
 * not, -1 on error. */
static int
lazy_wait(LazyBlock *lazy, int taken, PyObject *blocking, PyObject *timeout,
          PyObject **result)
{
    *result = NULL;
    if (taken && !lazy->held && hold_for_taker(lazy) < 0) {
        return -1;
    }
    lazy->waiters++;
    PyObject *acquired = block_acquire(lazy, blocking, timeout);
    lazy->waiters--;
    if (acquired == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(acquired);
    if (truth < 0) {
        Py_DECREF(acquired);
        return -1;
    }
    if (truth) {
        lazy->held = 1;  /* a waiter that gave up leaves it held for the taker */
    }
    *result = acquired;
    return truth;
}

/* The lock is given up: release the block if it was taken, which wakes a waiter. */
static int
lazy_let_go(LazyBlock *lazy)
{
    if (!lazy->held) {
        return 0;
    }
    lazy->held = 0;
    PyObject *result = block_call(lazy, str_release);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static int
lazy_reinit(LazyBlock *lazy)
{
    PyObject *result = block_call(lazy, str_at_fork_reinit);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    lazy->held = 0;
    lazy->waiters = 0;
    return 0;
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

/* How acquire() was called: the two calls that may be answered without the block. */
enum { ACQUIRE_WAIT, ACQUIRE_TRY, ACQUIRE_OTHER };

static inline int
acquire_kind(PyObject *blocking, PyObject *timeout)
{
    if (timeout != NULL) {
        return ACQUIRE_OTHER;  /* left to gevent's acquire(), which checks the values */
    }
    if (blocking == NULL || blocking == Py_True) {
        return ACQUIRE_WAIT;
    }
    return blocking == Py_False ? ACQUIRE_TRY : ACQUIRE_OTHER;
}

/* --- the lock types ----------------------------------------------------------------- */

/* What both lock types start with, and the functions they share over it. */
#define GREEN_LOCK_HEAD \
    PyObject_HEAD \
    LazyBlock lazy; \
    PyObject *weakreflist;

typedef struct {
    GREEN_LOCK_HEAD
} GreenLock;

/* tp_new of both: no arguments; every other field starts zeroed (tp_alloc). */
static PyObject *
green_lock_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        const char *dot = strrchr(type->tp_name, '.');
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", dot ? dot + 1 : type->tp_name);
        return NULL;
    }
    GreenLock *self = (GreenLock *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (lazy_init(&self->lazy) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* Traversed, as a Python-level lock would be: a greenlet waiting on the block can make
 * a cycle back to it through its frame. No tp_clear: those frames break it. */
static int
green_lock_traverse(GreenLock *self, visitproc visit, void *arg)
{
    Py_VISIT(self->lazy.block);
    return 0;
}

static void
green_lock_dealloc(GreenLock *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Py_XDECREF(self->lazy.block);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* --- RLock --------------------------------------------------------------------------- */

typedef struct {
    GREEN_LOCK_HEAD
    uintptr_t owner;          /* get_ident() of the owner; 0: not owned */
    unsigned long count;      /* recursion level */
} RLockObject;

static PyTypeObject RLockType;

/* Take the RLock for ``me``, who does not own it: at once when it is free and quiet, or
 * through the block. */
static PyObject *
rlock_take(RLockObject *self, uintptr_t me, PyObject *blocking, PyObject *timeout)
{
    int kind = acquire_kind(blocking, timeout);
    if (kind != ACQUIRE_OTHER) {
        if (self->owner == 0 && lazy_is_quiet(&self->lazy)) {
            /* The block's acquire() would take it at once and answer True. */
            self->owner = me;
            self->count = 1;
            Py_RETURN_TRUE;
        }
        if (kind == ACQUIRE_TRY && self->owner != 0) {
            Py_RETURN_FALSE;  /* Condition._is_owned() asks this way */
        }
    }
    PyObject *acquired;
    if (lazy_wait(&self->lazy, self->owner != 0, blocking, timeout, &acquired) > 0) {
        self->owner = me;
        self->count = 1;
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
    return rlock_take(self, me, blocking, timeout);
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
    self->owner = 0;
    if (lazy_let_go(&self->lazy) < 0) {
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
    self->count = 0;
    self->owner = 0;
    if (lazy_let_go(&self->lazy) < 0) {
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
    PyObject *result = rlock_take(self, ident, NULL, NULL);
    if (result == NULL) {
        return NULL;
    }
    Py_DECREF(result);
    self->count = count;
    self->owner = ident;
    Py_RETURN_NONE;
}

static PyObject *
rlock_at_fork_reinit(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (lazy_reinit(&self->lazy) < 0) {
        return NULL;
    }
    self->owner = 0;
    self->count = 0;
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
    PyObject *owner = self->owner ? PyLong_FromVoidPtr((void *)self->owner)
                                  : Py_NewRef(Py_None);
    if (owner == NULL) {
        return NULL;
    }
    PyObject *text = PyUnicode_FromFormat("<%s %s object owner=%R count=%lu at %p>",
                                          self->owner ? "locked" : "unlocked",
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
    {"_block", T_OBJECT, offsetof(RLockObject, lazy.block), READONLY,
     "The gevent lock waiting greenlets wait on (as threading._PyRLock's _block)."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "django_scgi._greenlocks.RLock",
    .tp_basicsize = sizeof(RLockObject),
    .tp_dealloc = (destructor)green_lock_dealloc,
    .tp_repr = (reprfunc)rlock_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)green_lock_traverse,
    .tp_doc = "A reentrant lock owned by greenlets: threading.RLock under gevent.",
    .tp_weaklistoffset = offsetof(RLockObject, weakreflist),
    .tp_methods = rlock_methods,
    .tp_members = rlock_members,
    .tp_new = green_lock_new,
};

/* --- Lock ---------------------------------------------------------------------------- */

/* threading.Lock() after patch_all() is gevent's LockType, whose acquire() is a Python
 * layer over its semaphore: ~3.5 k instructions for a `with` block. Django's signals
 * take one for each send(), two per request. Any greenlet may release it. */
typedef struct {
    GREEN_LOCK_HEAD
    int taken;
} LockObject;

static PyTypeObject LockType;

static PyObject *
lock_take(LockObject *self, PyObject *blocking, PyObject *timeout)
{
    int kind = acquire_kind(blocking, timeout);
    if (kind != ACQUIRE_OTHER) {
        if (!self->taken && lazy_is_quiet(&self->lazy)) {
            self->taken = 1;
            Py_RETURN_TRUE;
        }
        if (kind == ACQUIRE_TRY && self->taken) {
            Py_RETURN_FALSE;  /* Condition._is_owned() asks this way */
        }
    }
    PyObject *acquired;
    if (lazy_wait(&self->lazy, self->taken, blocking, timeout, &acquired) > 0) {
        self->taken = 1;
    }
    return acquired;
}

static PyObject *
lock_acquire(LockObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *blocking, *timeout;
    if (parse_acquire_args(args, nargs, kwnames, &blocking, &timeout) < 0) {
        return NULL;
    }
    return lock_take(self, blocking, timeout);
}

/* `with lock:` answers None, as gevent's LockType.__enter__ does. */
static PyObject *
lock_enter(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *acquired = lock_take(self, NULL, NULL);
    if (acquired == NULL) {
        return NULL;
    }
    Py_DECREF(acquired);
    Py_RETURN_NONE;
}

static PyObject *
lock_release(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->taken) {
        PyErr_SetString(PyExc_RuntimeError, "Semaphore released too many times");
        return NULL;  /* gevent's words and type (thread.error is RuntimeError) */
    }
    self->taken = 0;
    if (lazy_let_go(&self->lazy) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
lock_exit(LockObject *self, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    return lock_release(self, NULL);
}

static PyObject *
lock_locked(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->taken);
}

static PyObject *
lock_at_fork_reinit(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (lazy_reinit(&self->lazy) < 0) {
        return NULL;
    }
    self->taken = 0;
    Py_RETURN_NONE;
}

static PyObject *
lock_repr(LockObject *self)
{
    return PyUnicode_FromFormat("<%s %s object at %p>", self->taken ? "locked" : "unlocked",
                                Py_TYPE(self)->tp_name, self);
}

static PyMethodDef lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))lock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1): as threading.Lock.acquire."},
    {"__enter__", (PyCFunction)lock_enter, METH_NOARGS, "acquire()"},
    {"release", (PyCFunction)lock_release, METH_NOARGS,
     "release(): as threading.Lock.release; any greenlet may."},
    {"__exit__", (PyCFunction)(void (*)(void))lock_exit, METH_FASTCALL, "release()"},
    {"locked", (PyCFunction)lock_locked, METH_NOARGS, "Whether it is taken."},
    {"_at_fork_reinit", (PyCFunction)lock_at_fork_reinit, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef lock_members[] = {
    {"_block", T_OBJECT, offsetof(LockObject, lazy.block), READONLY,
     "The gevent lock waiting greenlets wait on."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "django_scgi._greenlocks.Lock",
    .tp_basicsize = sizeof(LockObject),
    .tp_dealloc = (destructor)green_lock_dealloc,
    .tp_repr = (reprfunc)lock_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)green_lock_traverse,
    .tp_doc = "A lock for greenlets: threading.Lock under gevent.",
    .tp_weaklistoffset = offsetof(LockObject, weakreflist),
    .tp_methods = lock_methods,
    .tp_members = lock_members,
    .tp_new = green_lock_new,
};

/* --- module -------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"get_ident", (PyCFunction)(void (*)(void))get_ident, METH_FASTCALL,
     "get_ident(gr=None) -> id(gr or greenlet.getcurrent()), as gevent.thread.get_ident."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "django_scgi._greenlocks",
    "get_ident(), RLock and Lock for greenlets, for a gevent-patched process.", -1, methods,
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
    if (PyType_Ready(&RLockType) < 0 || PyType_Ready(&LockType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "RLock", (PyObject *)&RLockType) < 0
            || PyModule_AddObjectRef(module, "Lock", (PyObject *)&LockType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
