/* The process's end, its address space let go after it has been waited for (cli._leave).
 *
 * When a process ends, the kernel frees its memory before its parent can wait for it: on this machine 40 ms for 200 MB
 * touched, 115 ms for 600 MB (the 200k capture's analysis: 14-19 ms; 2M: 53-61 ms), serial after the output was
 * written and worth nothing to whoever waits. `leave` starts a helper that shares the address space (CLONE_VM, a
 * process of its own, not a thread), then ends the process: the address space is the helper's too, so the process's
 * exit does not free it and its parent's wait returns at once; the helper ends once the process is gone (its parent is
 * then another: while a thread of the process is alive, the helper's parent is that thread's process; a parent-death
 * signal would come as the first thread ends, and the last of the process's threads to end would free the memory) and
 * the kernel frees the memory then, in the helper's exit. Before the process ends the helper closes its copy of every
 * file descriptor (close_range), so that a pipe reading the output sees its end when the process ends, not when the
 * helper does. Where the helper cannot be made (no close_range: Linux before 5.9; clone refused), the process ends as
 * `_exit` ends it.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HELPER_STACK (64 << 10)

static int ready;     /* set by the helper once it holds no file descriptor */
static pid_t process; /* the process that made the helper */

/* The helper: on its own stack in the shared address space, system calls only (it shares the process's thread-local
 * storage, errno included, until the process ends). */
static int helper(void *unused) {
    (void)unused;
    struct timespec look = {0, 1000000}; /* a millisecond: the process ends within a few */
    syscall(SYS_close_range, 0U, ~0U, 0U);
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    while (syscall(SYS_getppid) == process) /* bounded by the process's end, which follows at once */
        syscall(SYS_nanosleep, &look, NULL);
    syscall(SYS_exit, 0);
    return 0;
}

/* Whether close_range is there: asked of a range that holds no descriptor (nothing is closed). */
static int can_close_all(void) {
    return syscall(SYS_close_range, ~0U - 1, ~0U - 1, 0U) == 0;
}

static PyObject *leave(PyObject *self, PyObject *arg) {
    (void)self;
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    if (can_close_all()) {
        char *stack = mmap(NULL, HELPER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack != MAP_FAILED) {
            process = getpid();
            if (clone(helper, stack + HELPER_STACK, CLONE_VM | SIGCHLD, NULL) > 0) {
                /* the helper runs two system calls before it is ready; a second at most (a helper killed meanwhile) */
                struct timespec now, until;
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_sec += 1;
                do {
                    if (__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
                        break;
                    sched_yield();
                    clock_gettime(CLOCK_MONOTONIC, &now);
                } while (now.tv_sec < until.tv_sec || (now.tv_sec == until.tv_sec && now.tv_nsec < until.tv_nsec));
            }
        }
    }
    _exit((int)code);
}

static PyMethodDef methods[] = {
    {"leave", leave, METH_O, "End the process with the exit code given, its memory freed after its parent's wait."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_exit", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__exit(void) {
    return PyModule_Create(&module);
}
