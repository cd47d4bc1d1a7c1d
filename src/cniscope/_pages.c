/* A spilled table's files mapped read-only (cniscope.spill), their pages handed back by a thread of its own, in C.
 *
 * The later stages of a spilled analysis scan the mapped table; every page they read is the process's (RSS, what
 * `--memory` bounds) until it is handed back (MADV_DONTNEED: a shared mapping of a file reads it again, from the page
 * cache or the disk, when next touched). The watcher reads the process's resident file pages (/proc/self/statm) every
 * `every` microseconds and hands back every mapped page as soon as they have grown by more than `budget` bytes since
 * the last time (or since their lowest): the table's pages held at once are the budget and what the stages read in one
 * interval. It never takes the GIL, so a stage that holds the GIL (a Python thread handing pages back waited for it:
 * 220 ms in one run at 10M) or a busy machine does not hold it back for longer than the scheduler does; it polls, but
 * hands back (and so makes pages fault in again) only past the budget.
 *
 * A mapping is a `Map`, an object with the buffer protocol: it is unmapped when the last reference to it goes, after
 * it has left the watcher's list under the lock that the watcher holds while handing pages back, so the watcher never
 * touches a range that is unmapped (or mapped again to something else).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct Map {
    PyObject_HEAD
    char *addr;
    size_t size;
    struct Map *prev, *next; /* the watcher's list, under `lock` */
} Map;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mapped = PTHREAD_COND_INITIALIZER; /* signalled when the list gains a map */
static Map *maps;                                          /* under `lock` */
static size_t budget = 64u << 20;                          /* under `lock` */
static long every_us = 2000;                               /* under `lock` */
static uint64_t releases;                                  /* under `lock`: rounds of handing back */
static pid_t watching;                                     /* the process the watcher runs in (0: none) */
static int statm = -1;                                     /* /proc/self/statm, opened once a process */
static pid_t statm_of;
static long page_size;

/* Bytes of file pages the process holds (statm's third field: file and shared memory pages); SIZE_MAX when
 * /proc cannot be read, so that every round hands back. */
static size_t resident(void) {
    char text[256];
    if (statm_of != getpid()) { /* /proc/self is the process that opened it: a fork's child opens its own */
        if (statm >= 0)
            close(statm);
        statm = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        statm_of = getpid();
    }
    if (statm < 0)
        return SIZE_MAX;
    ssize_t n = pread(statm, text, sizeof text - 1, 0);
    if (n <= 0)
        return SIZE_MAX;
    text[n] = '\0';
    unsigned long long size, rss, shared;
    if (sscanf(text, "%llu %llu %llu", &size, &rss, &shared) != 3)
        return SIZE_MAX;
    return (size_t)shared * (size_t)page_size;
}

/* Every mapped page handed back; `lock` held. */
static void release_locked(void) {
    for (Map *m = maps; m; m = m->next)
        madvise(m->addr, m->size, MADV_DONTNEED);
    releases++;
}

/* The file pages that are not the maps' (the libraries' code, other files), as far as the rounds tell: the least the
 * process held since the first map, raised only when a round hands back less than half of what it was over it. Not
 * what a round leaves: the stages read pages again while it runs (110 MB once, under load), and a floor that took
 * them in let the maps' pages grow past the budget by as much. */
static size_t floor_bytes = SIZE_MAX;

/* After a round that began at `before` bytes: the floor kept, or raised to `after` when the round handed back less
 * than half of what was over it (what stays is not the maps'). `lock` held. */
static void refloor(size_t before, size_t after) {
    if (after == SIZE_MAX || before == SIZE_MAX)
        return;
    if (after < floor_bytes)
        floor_bytes = after;
    else if (before > floor_bytes && (before > after ? before - after : 0) < (before - floor_bytes) / 2)
        floor_bytes = after;
}

/* One round: whether the pages were handed back (the file pages grew past the budget over the floor). `lock` held. */
static int step_locked(void) {
    if (!maps)
        return 0;
    size_t now = resident();
    if (now != SIZE_MAX && now < floor_bytes)
        floor_bytes = now;
    if (now != SIZE_MAX && now - floor_bytes <= budget)
        return 0;
    release_locked();
    refloor(now, resident());
    return 1;
}

static void *watch_loop(void *unused) {
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!maps)
            pthread_cond_wait(&mapped, &lock);
        long us = every_us;
        pthread_mutex_unlock(&lock);
        struct timespec pause = {us / 1000000, (us % 1000000) * 1000};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
        }
        pthread_mutex_lock(&lock);
        step_locked();
    }
    return NULL;
}

static void map_dealloc(Map *self) {
    if (self->addr) {
        pthread_mutex_lock(&lock);
        if (self->prev)
            self->prev->next = self->next;
        else if (maps == self)
            maps = self->next;
        if (self->next)
            self->next->prev = self->prev;
        pthread_mutex_unlock(&lock);
        munmap(self->addr, self->size);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int map_getbuffer(Map *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->addr, (Py_ssize_t)self->size, 1, flags);
}

static PyBufferProcs map_as_buffer = {(getbufferproc)map_getbuffer, NULL};

static PyTypeObject MapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cniscope._pages.Map",
    .tp_doc = "A file mapped read-only, its pages handed back by the watcher; a buffer.",
    .tp_basicsize = sizeof(Map),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)map_dealloc,
    .tp_as_buffer = &map_as_buffer,
};

static PyObject *map_file(PyObject *module, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd))
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (st.st_size <= 0) {
        PyErr_SetString(PyExc_ValueError, "cannot map an empty file");
        return NULL;
    }
    Map *self = PyObject_New(Map, &MapType);
    if (!self)
        return NULL;
    self->addr = NULL;
    self->size = (size_t)st.st_size;
    self->prev = self->next = NULL;
    void *addr = mmap(NULL, self->size, PROT_READ, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->addr = addr;
    pthread_mutex_lock(&lock);
    if (!maps) /* the first: what the process held before it is the floor */
        floor_bytes = resident();
    self->next = maps;
    if (maps)
        maps->prev = self;
    maps = self;
    pthread_cond_signal(&mapped);
    pthread_mutex_unlock(&lock);
    return (PyObject *)self;
}

static PyObject *watch(PyObject *module, PyObject *args) {
    Py_ssize_t bytes;
    long us;
    if (!PyArg_ParseTuple(args, "nl", &bytes, &us))
        return NULL;
    if (bytes < 0 || us <= 0 || us >= 1000000) {
        PyErr_SetString(PyExc_ValueError, "budget >= 0 bytes, every in (0, 1000000) microseconds");
        return NULL;
    }
    pthread_mutex_lock(&lock);
    budget = (size_t)bytes;
    every_us = us;
    int start = watching != getpid(); /* none yet, or it was in the parent of a fork */
    pthread_mutex_unlock(&lock);
    if (start) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 << 10);
        int failed = pthread_create(&thread, &attr, watch_loop, NULL);
        pthread_attr_destroy(&attr);
        if (failed) {
            errno = failed;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        watching = getpid();
    }
    Py_RETURN_NONE;
}

static PyObject *release(PyObject *module, PyObject *unused) {
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&lock);
    size_t before = resident();
    release_locked();
    refloor(before, resident());
    pthread_mutex_unlock(&lock);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *check(PyObject *module, PyObject *args) {
    Py_ssize_t bytes;
    if (!PyArg_ParseTuple(args, "n", &bytes))
        return NULL;
    int released;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&lock);
    size_t was = budget;
    budget = (size_t)bytes;
    released = step_locked();
    budget = was;
    pthread_mutex_unlock(&lock);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(released);
}

static PyObject *resident_bytes(PyObject *module, PyObject *unused) {
    pthread_mutex_lock(&lock);
    size_t now = resident();
    pthread_mutex_unlock(&lock);
    if (now == SIZE_MAX) {
        PyErr_SetString(PyExc_OSError, "cannot read /proc/self/statm");
        return NULL;
    }
    return PyLong_FromSize_t(now);
}

static PyObject *rounds(PyObject *module, PyObject *unused) {
    pthread_mutex_lock(&lock);
    uint64_t n = releases;
    pthread_mutex_unlock(&lock);
    return PyLong_FromUnsignedLongLong(n);
}

static PyMethodDef methods[] = {
    {"map", map_file, METH_VARARGS, "A file (its descriptor) mapped read-only, whole, as a `Map` the watcher hands back."},
    {"watch", watch, METH_VARARGS, "The watcher started (once), its budget (bytes) and interval (microseconds) set."},
    {"release", release, METH_NOARGS, "Every mapped page handed back now."},
    {"check", check, METH_VARARGS, "One round of the watcher's with this budget: whether it handed the pages back."},
    {"resident", resident_bytes, METH_NOARGS, "Bytes of file pages the process holds (/proc/self/statm)."},
    {"rounds", rounds, METH_NOARGS, "Rounds of handing back so far."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pages", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pages(void) {
    page_size = sysconf(_SC_PAGESIZE);
    if (PyType_Ready(&MapType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddObjectRef(m, "Map", (PyObject *)&MapType) < 0)
        Py_CLEAR(m);
    return m;
}
