/* ipcrpc._native: the primitives Python lacks for the shared-memory ring.
 *
 * Atomic loads (acquire), stores (release), exchange and a sequentially
 * consistent fence on 32/64-bit words of a writable buffer (a mmap of the
 * memfd), futex wait/wake on such a word WITHOUT FUTEX_PRIVATE_FLAG (the word
 * is shared between processes), a bounded spin on a 64-bit word, and
 * sched_getcpu. Every function checks that the word lies inside the buffer
 * and is naturally aligned. Blocking calls release the GIL; the caller's
 * buffer export keeps the mapping alive meanwhile (mmap.close() refuses to
 * unmap while a buffer is exported).
 *
 * Optional: if this extension cannot be built, ipcrpc still imports and the
 * shm transport is simply unavailable (auto: falls back to unix).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *word(Py_buffer *view, Py_ssize_t offset, Py_ssize_t size) {
  if (view->readonly) {
    PyErr_SetString(PyExc_TypeError, "ipcrpc._native: the buffer must be writable");
    return NULL;
  }
  if (offset < 0 || offset > view->len - size || (offset % size) != 0 ||
      ((uintptr_t)view->buf % size) != 0) {
    PyErr_Format(PyExc_ValueError, "ipcrpc._native: offset %zd is out of range or not %zd-byte aligned",
                 offset, size);
    return NULL;
  }
  return (char *)view->buf + offset;
}

static PyObject *load32(PyObject *self, PyObject *args) {
  Py_buffer view;
  Py_ssize_t off;
  if (!PyArg_ParseTuple(args, "w*n", &view, &off)) return NULL;
  uint32_t *p = word(&view, off, 4);
  PyObject *r = p ? PyLong_FromUnsignedLong(__atomic_load_n(p, __ATOMIC_ACQUIRE)) : NULL;
  PyBuffer_Release(&view);
  return r;
}

static PyObject *load64(PyObject *self, PyObject *args) {
  Py_buffer view;
  Py_ssize_t off;
  if (!PyArg_ParseTuple(args, "w*n", &view, &off)) return NULL;
  uint64_t *p = word(&view, off, 8);
  PyObject *r = p ? PyLong_FromUnsignedLongLong(__atomic_load_n(p, __ATOMIC_ACQUIRE)) : NULL;
  PyBuffer_Release(&view);
  return r;
}

static PyObject *store32(PyObject *self, PyObject *args) {
  Py_buffer view;
  Py_ssize_t off;
  unsigned long v;
  if (!PyArg_ParseTuple(args, "w*nk", &view, &off, &v)) return NULL;
  uint32_t *p = word(&view, off, 4);
  if (p) __atomic_store_n(p, (uint32_t)v, __ATOMIC_RELEASE);
  PyBuffer_Release(&view);
  if (!p) return NULL;
  Py_RETURN_NONE;
}

static PyObject *store64(PyObject *self, PyObject *args) {
  Py_buffer view;
  Py_ssize_t off;
  unsigned long long v;
  if (!PyArg_ParseTuple(args, "w*nK", &view, &off, &v)) return NULL;
  uint64_t *p = word(&view, off, 8);
  if (p) __atomic_store_n(p, (uint64_t)v, __ATOMIC_RELEASE);
  PyBuffer_Release(&view);
  if (!p) return NULL;
  Py_RETURN_NONE;
}

static PyObject *exchange32(PyObject *self, PyObject *args) {
  Py_buffer view;
  Py_ssize_t off;
  unsigned long v;
  if (!PyArg_ParseTuple(args, "w*nk", &view, &off, &v)) return NULL;
  uint32_t *p = word(&view, off, 4);
  PyObject *r = p ? PyLong_FromUnsignedLong(__atomic_exchange_n(p, (uint32_t)v, __ATOMIC_SEQ_CST)) : NULL;
  PyBuffer_Release(&view);
  return r;
}

static PyObject *fence(PyObject *self, PyObject *unused) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  Py_RETURN_NONE;
}

/* futex_wait(buf, off, expected, timeout_seconds) -> 0 (woken or value
 * differed: EAGAIN is reported as 0 too), or errno (ETIMEDOUT, EINTR). */
static PyObject *futex_wait(PyObject *self, PyObject *args) {
  Py_buffer view;
  Py_ssize_t off;
  unsigned long expected;
  double timeout;
  if (!PyArg_ParseTuple(args, "w*nkd", &view, &off, &expected, &timeout)) return NULL;
  uint32_t *p = word(&view, off, 4);
  if (!p) {
    PyBuffer_Release(&view);
    return NULL;
  }
  if (timeout < 0) timeout = 0;
  struct timespec ts;
  ts.tv_sec = (time_t)timeout;
  ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
  long rc;
  int err = 0;
  Py_BEGIN_ALLOW_THREADS
  rc = syscall(SYS_futex, p, FUTEX_WAIT, (uint32_t)expected, &ts, NULL, 0);
  if (rc < 0) err = errno;
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&view);
  if (err == EAGAIN) err = 0;
  if (err != 0 && err != ETIMEDOUT && err != EINTR) {
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  return PyLong_FromLong(err);
}

static PyObject *futex_wake(PyObject *self, PyObject *args) {
  Py_buffer view;
  Py_ssize_t off;
  int n;
  if (!PyArg_ParseTuple(args, "w*ni", &view, &off, &n)) return NULL;
  uint32_t *p = word(&view, off, 4);
  if (!p) {
    PyBuffer_Release(&view);
    return NULL;
  }
  long rc = syscall(SYS_futex, p, FUTEX_WAKE, n, NULL, NULL, 0);
  int err = rc < 0 ? errno : 0;
  PyBuffer_Release(&view);
  if (err) {
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  return PyLong_FromLong(rc);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* spin_while_eq64(buf, off, value, max_seconds) -> True once the word differs
 * from value, False after max_seconds. Releases the GIL while spinning. */
static PyObject *spin_while_eq64(PyObject *self, PyObject *args) {
  Py_buffer view;
  Py_ssize_t off;
  unsigned long long value;
  double max_seconds;
  if (!PyArg_ParseTuple(args, "w*nKd", &view, &off, &value, &max_seconds)) return NULL;
  uint64_t *p = word(&view, off, 8);
  if (!p) {
    PyBuffer_Release(&view);
    return NULL;
  }
  int changed = 0;
  Py_BEGIN_ALLOW_THREADS
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (unsigned i = 0;; ++i) {
    if (__atomic_load_n(p, __ATOMIC_ACQUIRE) != value) {
      changed = 1;
      break;
    }
    cpu_relax();
    if ((i & 63) == 63) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      double elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) * 1e-9;
      if (elapsed >= max_seconds) break;
    }
  }
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&view);
  return PyBool_FromLong(changed);
}

static PyObject *py_sched_getcpu(PyObject *self, PyObject *unused) {
  return PyLong_FromLong(sched_getcpu());
}

static PyMethodDef methods[] = {
    {"load32", load32, METH_VARARGS, "load32(buf, off) -> int: acquire load of a u32."},
    {"load64", load64, METH_VARARGS, "load64(buf, off) -> int: acquire load of a u64."},
    {"store32", store32, METH_VARARGS, "store32(buf, off, v): release store of a u32."},
    {"store64", store64, METH_VARARGS, "store64(buf, off, v): release store of a u64."},
    {"exchange32", exchange32, METH_VARARGS, "exchange32(buf, off, v) -> old: seq_cst exchange."},
    {"fence", fence, METH_NOARGS, "fence(): seq_cst thread fence."},
    {"futex_wait", futex_wait, METH_VARARGS,
     "futex_wait(buf, off, expected, timeout_s) -> 0 | ETIMEDOUT | EINTR (shared futex)."},
    {"futex_wake", futex_wake, METH_VARARGS, "futex_wake(buf, off, n) -> woken (shared futex)."},
    {"spin_while_eq64", spin_while_eq64, METH_VARARGS,
     "spin_while_eq64(buf, off, value, max_s) -> bool: True once the word changed."},
    {"sched_getcpu", py_sched_getcpu, METH_NOARGS, "sched_getcpu() -> int."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ipcrpc._native",
                                    "Atomics and futexes for ipcrpc's shared-memory ring.", -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
