/* ipcrpc._native: what Python lacks for the shared-memory ring, and the
 * client's hot path.
 *
 * - Ring: one shm connection's two rings driven from C: a send or a receive
 *   is one call (the copy, release stores, fences, waking a sleeping peer, the
 *   adaptive spin and the futex or semaphore sleep, GIL released while waiting).
 * - Word access for set-up and shutdown: acquire loads, release stores,
 *   exchange, a fence, futex wake (WITHOUT FUTEX_PRIVATE_FLAG: the word is
 *   shared between processes) on 32/64-bit words of a writable buffer (a mmap
 *   of the memfd); each checks that the word lies inside the buffer and is
 *   naturally aligned.
 * - msgq_recv: a SysV queue read that never blocks, retried for a bounded
 *   spin (the asyncio client's loop thread reads msgq itself).
 * - encode_unary / split_frames: a unary request's three frames in one
 *   buffer, and whole frames split off a received chunk (the Python
 *   FrameDecoder remains the reference and takes everything unusual).
 *
 * Optional: if this extension cannot be built, ipcrpc still imports, the frame
 * helpers fall back to Python and the shm transports are unavailable (auto:
 * falls back to unix).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdarg.h>
#include <string.h>
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


/* ---------------------------------------------------------------------------
 * Ring: one connection's two rings (docs/transports/shm.md), driven from C so
 * that a send or a receive is one call from Python: the copy, the release
 * store, the fence, the wake-up of a sleeping peer, the adaptive spin and the
 * futex (or semaphore) sleep. The Python ShmTransport keeps the set-up, the
 * liveness watcher and the error messages.
 *
 * Threads: one reader and one writer at a time (the transport's contract);
 * stop() from any thread. The Ring holds a buffer export of the mapping until
 * release(), so the mmap cannot be unmapped under it.
 */

#include <semaphore.h>

/* Offsets inside a ring control block and a per-side block (shm.md). */
enum { R_HEAD = 0, R_READER_SLEEPING = 8, R_TAIL = 64, R_WRITER_SLEEPING = 72, R_SEM_READER = 128, R_SEM_WRITER = 160 };
enum { S_CLOSED = 0, S_CPU = 64 };
static const uint64_t SHM_MAGIC = 0x4D53435052435049ULL;

/* The adaptive spin budget of one waiting role ("Spinning" in shm.md): starts
 * at max; a spin that sees the data restores it; one that runs out halves it,
 * a second turns spinning off; while off every probe_every-th wait (16,
 * doubling to 1024 while probes fail) spins once at the full budget. */
typedef struct {
  double max, budget;
  unsigned failures, waits, probe_every;
} Spin;

static void spin_init(Spin *s, double max) {
  s->max = max > 0 ? max : 0;
  s->budget = s->max;
  s->failures = 0;
  s->waits = 0;
  s->probe_every = 16;
}

static double spin_next(Spin *s) {
  if (s->max <= 0) return 0;
  if (s->budget > 0) return s->budget;
  s->waits++;
  return s->waits % s->probe_every == 0 ? s->max : 0;
}

static void spin_result(Spin *s, int success) {
  if (success) {
    s->budget = s->max;
    s->failures = 0;
    s->probe_every = 16;
  } else if (s->budget > 0) {
    s->failures++;
    s->budget = s->failures >= 2 ? 0 : s->budget / 2;
  } else if (s->probe_every < 1024) {
    s->probe_every *= 2;
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
  PyObject_HEAD
  Py_buffer view;
  int have_view;
  char *base;
  uint64_t ring, mask;
  Py_ssize_t prod, prod_data, cons, cons_data, own_side, peer_side;
  int sem;            /* wake-up by the POSIX semaphores in the region (glibc's sem_t) */
  int sem_flags;      /* what glibc keeps at sem_t+8 in an intact semaphore */
  volatile int stop;  /* set by stop(): shutdown, or the peer died */
  int cpu;
  uint64_t head, last_tail, tail, last_head;
  Spin read_spin, write_spin;
  int broken;
  int active; /* calls inside read/write/wait_readable (they may run without the GIL) */
} RingObject;

#define U64(r, off) ((uint64_t *)((r)->base + (off)))
#define U32(r, off) ((uint32_t *)((r)->base + (off)))

static PyObject *ring_error(RingObject *r, const char *fmt, ...) {
  /* The region broke the ring's invariants: ValueError, which the Python side reports as data loss. */
  va_list ap;
  va_start(ap, fmt);
  r->broken = 1;
  PyErr_FormatV(PyExc_ValueError, fmt, ap);
  va_end(ap);
  return NULL;
}

static int ring_usable(RingObject *r) {
  if (!r->have_view) {
    PyErr_SetString(PyExc_ConnectionError, "shm: the ring was released");
    return 0;
  }
  if (r->broken) {
    PyErr_SetString(PyExc_ValueError, "the ring broke earlier");
    return 0;
  }
  if (__atomic_load_n(U64(r, 0), __ATOMIC_ACQUIRE) != SHM_MAGIC) {
    ring_error(r, "the region's magic changed");
    return 0;
  }
  return 1;
}

static void note_cpu(RingObject *r) {
  int cpu = sched_getcpu();
  if (cpu != r->cpu) {
    r->cpu = cpu;
    __atomic_store_n(U32(r, r->own_side + S_CPU), (uint32_t)cpu, __ATOMIC_RELAXED);
  }
}

static int may_spin(RingObject *r) {
  int peer = (int)__atomic_load_n(U32(r, r->peer_side + S_CPU), __ATOMIC_RELAXED);
  return !(r->cpu >= 0 && peer == r->cpu);
}

static int sem_intact(RingObject *r, Py_ssize_t off) {
  int flags;
  memcpy(&flags, r->base + off + 8, sizeof flags);
  return flags == r->sem_flags;
}

/* Wakes the side sleeping on the word at off (0 → nothing to do). Returns 0, or -1 with an error set. */
static int wake_word(RingObject *r, Py_ssize_t off, Py_ssize_t sem_off) {
  uint32_t *w = U32(r, off);
  if (__atomic_load_n(w, __ATOMIC_ACQUIRE) == 0 || __atomic_exchange_n(w, 0, __ATOMIC_SEQ_CST) != 1) return 0;
  if (!r->sem) {
    syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
    return 0;
  }
  if (!sem_intact(r, sem_off)) {
    ring_error(r, "a semaphore in the shared memory was overwritten");
    return -1;
  }
  sem_post((sem_t *)(r->base + sem_off));
  return 0;
}

/* Spins (GIL released by the caller) while the word equals value, at most max_s. 1 if it changed. */
static int spin_while(RingObject *r, uint64_t *p, uint64_t value, double max_s) {
  double start = now_s();
  for (unsigned i = 0;; ++i) {
    if (__atomic_load_n(p, __ATOMIC_ACQUIRE) != value) return 1;
    if (r->stop) return 0;
    cpu_relax();
    if ((i & 63) == 63 && now_s() - start >= max_s) return 0;
  }
}

/* Announces sleep on the word at off, re-checks *p == value and that nobody
 * closed, sleeps at most slice_s, withdraws the announcement. GIL released by the caller.
 * Returns an errno-style result (0, ETIMEDOUT, EINTR) or -2 for a broken semaphore. */
static int sleep_on(RingObject *r, Py_ssize_t off, Py_ssize_t sem_off, uint64_t *p, uint64_t value, double slice_s) {
  uint32_t *w = U32(r, off);
  int err = 0;
  if (r->sem) {
    if (!sem_intact(r, sem_off)) return -2;
    for (int i = 0; i < 16 && sem_trywait((sem_t *)(r->base + sem_off)) == 0; ++i) {
    } /* late posts from earlier sleeps */
  }
  __atomic_store_n(w, 1, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(p, __ATOMIC_ACQUIRE) == value && !r->stop &&
      !__atomic_load_n(U32(r, r->peer_side + S_CLOSED), __ATOMIC_ACQUIRE)) {
    if (r->sem) {
      struct timespec at;
      clock_gettime(CLOCK_MONOTONIC, &at);
      double t = (double)at.tv_sec + (double)at.tv_nsec * 1e-9 + slice_s;
      at.tv_sec = (time_t)t;
      at.tv_nsec = (long)((t - (double)at.tv_sec) * 1e9);
      if (sem_clockwait((sem_t *)(r->base + sem_off), CLOCK_MONOTONIC, &at) != 0) err = errno;
    } else {
      struct timespec ts;
      ts.tv_sec = (time_t)slice_s;
      ts.tv_nsec = (long)((slice_s - (double)ts.tv_sec) * 1e9);
      if (syscall(SYS_futex, w, FUTEX_WAIT, 1, &ts, NULL, 0) != 0) err = errno;
    }
  }
  __atomic_store_n(w, 0, __ATOMIC_RELEASE);
  return err == EAGAIN ? 0 : err;
}

static const double SLEEP_SLICE = 0.1; /* every sleep is bounded; stop and closed are re-checked after it */

/* Ring(mm, ring_bytes, prod, prod_data, cons, cons_data, own_side, peer_side, sem, max_spin) */
static int Ring_init(RingObject *r, PyObject *args, PyObject *kwds) {
  PyObject *mm;
  unsigned long long ring;
  int sem;
  double max_spin;
  if (!PyArg_ParseTuple(args, "OKnnnnnnpd", &mm, &ring, &r->prod, &r->prod_data, &r->cons, &r->cons_data, &r->own_side,
                        &r->peer_side, &sem, &max_spin))
    return -1;
  if (r->have_view) {
    PyErr_SetString(PyExc_RuntimeError, "Ring is initialised already");
    return -1;
  }
  if (PyObject_GetBuffer(mm, &r->view, PyBUF_WRITABLE) != 0) return -1;
  r->have_view = 1;
  r->base = r->view.buf;
  Py_ssize_t need = r->prod_data > r->cons_data ? r->prod_data : r->cons_data;
  if (ring == 0 || (ring & (ring - 1)) != 0 || (uint64_t)(r->view.len - need) < ring || ((uintptr_t)r->base % 8) != 0) {
    PyErr_SetString(PyExc_ValueError, "Ring: the layout does not fit the buffer");
    return -1;
  }
  r->ring = ring;
  r->mask = ring - 1;
  r->sem = sem;
  if (sem) {
    sem_t probe;
    sem_init(&probe, 1, 0);
    memcpy(&r->sem_flags, (char *)&probe + 8, sizeof r->sem_flags);
    sem_destroy(&probe);
  }
  r->stop = 0;
  r->cpu = -2;
  r->head = __atomic_load_n(U64(r, r->prod + R_HEAD), __ATOMIC_ACQUIRE);
  r->last_tail = __atomic_load_n(U64(r, r->prod + R_TAIL), __ATOMIC_ACQUIRE);
  r->tail = __atomic_load_n(U64(r, r->cons + R_TAIL), __ATOMIC_ACQUIRE);
  r->last_head = __atomic_load_n(U64(r, r->cons + R_HEAD), __ATOMIC_ACQUIRE);
  spin_init(&r->read_spin, max_spin);
  spin_init(&r->write_spin, max_spin);
  return 0;
}

static void Ring_dealloc(RingObject *r) {
  if (r->have_view) PyBuffer_Release(&r->view);
  Py_TYPE(r)->tp_free((PyObject *)r);
}

/* read(max_bytes, timeout) -> bytes: the bytes available (at most max_bytes);
 * b"" once the peer closed or stop() was called and nothing is left; None if
 * nothing arrived within timeout seconds (None: wait as long as it takes).
 * Spins first (adaptively, never while the peer last ran on this CPU), then sleeps. */
static PyObject *Ring_read_(RingObject *r, PyObject *args);
static PyObject *Ring_read(RingObject *r, PyObject *args) {
  r->active++;
  PyObject *result = Ring_read_(r, args);
  r->active--;
  return result;
}
static PyObject *Ring_read_(RingObject *r, PyObject *args) {
  Py_ssize_t max_bytes;
  PyObject *timeout_obj;
  if (!PyArg_ParseTuple(args, "nO", &max_bytes, &timeout_obj)) return NULL;
  double give_up = -1;
  if (timeout_obj != Py_None) {
    double t = PyFloat_AsDouble(timeout_obj);
    if (t == -1.0 && PyErr_Occurred()) return NULL;
    give_up = now_s() + (t > 0 ? t : 0);
  }
  if (max_bytes <= 0) max_bytes = 1;
  uint64_t *headp = U64(r, r->cons + R_HEAD);
  uint64_t *tailp = U64(r, r->cons + R_TAIL);
  uint32_t *peer_closed = U32(r, r->peer_side + S_CLOSED);
  note_cpu(r);
  for (;;) {
    if (!ring_usable(r)) return NULL;
    uint32_t closed = __atomic_load_n(peer_closed, __ATOMIC_ACQUIRE); /* before head (shm.md) */
    uint64_t head = __atomic_load_n(headp, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(tailp, __ATOMIC_ACQUIRE) != r->tail)
      return ring_error(r, "the ring's tail changed under its consumer");
    if (head < r->last_head || head - r->tail > r->ring)
      return ring_error(r, "impossible head %llu (tail %llu, ring %llu)", (unsigned long long)head,
                        (unsigned long long)r->tail, (unsigned long long)r->ring);
    r->last_head = head;
    if (head != r->tail) {
      uint64_t k = head - r->tail;
      if (k > (uint64_t)max_bytes) k = (uint64_t)max_bytes;
      PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)k);
      if (!out) return NULL;
      uint64_t start = r->tail & r->mask;
      uint64_t first = r->ring - start < k ? r->ring - start : k;
      memcpy(PyBytes_AS_STRING(out), r->base + r->cons_data + start, first);
      if (first < k) memcpy(PyBytes_AS_STRING(out) + first, r->base + r->cons_data, k - first);
      r->tail += k;
      __atomic_store_n(tailp, r->tail, __ATOMIC_RELEASE);
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      if (wake_word(r, r->cons + R_WRITER_SLEEPING, r->cons + R_SEM_WRITER) != 0) {
        Py_DECREF(out);
        return NULL;
      }
      return out;
    }
    if (closed || r->stop) return PyBytes_FromStringAndSize(NULL, 0);
    double slice = SLEEP_SLICE;
    if (give_up >= 0) {
      slice = give_up - now_s();
      if (slice <= 0) Py_RETURN_NONE;
      if (slice > SLEEP_SLICE) slice = SLEEP_SLICE;
    }
    double budget = may_spin(r) ? spin_next(&r->read_spin) : 0;
    int got = 0, err = 0;
    Py_BEGIN_ALLOW_THREADS
    if (budget > 0) {
      got = spin_while(r, headp, head, budget);
      spin_result(&r->read_spin, got);
    }
    if (!got) err = sleep_on(r, r->cons + R_READER_SLEEPING, r->cons + R_SEM_READER, headp, head, slice);
    Py_END_ALLOW_THREADS
    if (err == -2) return ring_error(r, "a semaphore in the shared memory was overwritten");
    if (err == EINTR && PyErr_CheckSignals() != 0) return NULL;
  }
}

/* write(data) -> None: copies every byte in, waiting (spin, then sleep) while
 * the ring is full. Returns False without writing the rest if the peer closed
 * or stop() was called. */
static PyObject *Ring_write_(RingObject *r, PyObject *args);
static PyObject *Ring_write(RingObject *r, PyObject *args) {
  r->active++;
  PyObject *result = Ring_write_(r, args);
  r->active--;
  return result;
}
static PyObject *Ring_write_(RingObject *r, PyObject *args) {
  Py_buffer data;
  if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
  const char *src = data.buf;
  uint64_t left = (uint64_t)data.len;
  uint64_t *headp = U64(r, r->prod + R_HEAD);
  uint64_t *tailp = U64(r, r->prod + R_TAIL);
  uint32_t *peer_closed = U32(r, r->peer_side + S_CLOSED);
  PyObject *result = NULL;
  note_cpu(r);
  while (left > 0) {
    if (!ring_usable(r)) goto out;
    if (r->stop || __atomic_load_n(peer_closed, __ATOMIC_ACQUIRE)) {
      result = Py_False;
      goto out;
    }
    if (__atomic_load_n(headp, __ATOMIC_ACQUIRE) != r->head) {
      ring_error(r, "the ring's head changed under its producer");
      goto out;
    }
    uint64_t free_bytes = r->ring - (r->head - r->last_tail);
    if (free_bytes < left) { /* look again: the consumer may have read since */
      uint64_t tail = __atomic_load_n(tailp, __ATOMIC_ACQUIRE);
      if (tail < r->last_tail || tail > r->head) {
        ring_error(r, "impossible tail %llu (head %llu)", (unsigned long long)tail, (unsigned long long)r->head);
        goto out;
      }
      r->last_tail = tail;
      free_bytes = r->ring - (r->head - tail);
    }
    if (free_bytes == 0) {
      double budget = may_spin(r) ? spin_next(&r->write_spin) : 0;
      int got = 0, err = 0;
      uint64_t seen = r->last_tail;
      Py_BEGIN_ALLOW_THREADS
      if (budget > 0) {
        got = spin_while(r, tailp, seen, budget);
        spin_result(&r->write_spin, got);
      }
      if (!got) err = sleep_on(r, r->prod + R_WRITER_SLEEPING, r->prod + R_SEM_WRITER, tailp, seen, SLEEP_SLICE);
      Py_END_ALLOW_THREADS
      if (err == -2) {
        ring_error(r, "a semaphore in the shared memory was overwritten");
        goto out;
      }
      if (err == EINTR && PyErr_CheckSignals() != 0) goto out;
      continue;
    }
    uint64_t k = free_bytes < left ? free_bytes : left;
    uint64_t start = r->head & r->mask;
    uint64_t first = r->ring - start < k ? r->ring - start : k;
    memcpy(r->base + r->prod_data + start, src, first);
    if (first < k) memcpy(r->base + r->prod_data, src + first, k - first);
    src += k;
    left -= k;
    r->head += k;
    __atomic_store_n(headp, r->head, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (wake_word(r, r->prod + R_READER_SLEEPING, r->prod + R_SEM_READER) != 0) goto out;
  }
  result = Py_True;
out:
  PyBuffer_Release(&data);
  Py_XINCREF(result);
  return result;
}

/* readable() -> bool: whether read() would return at once (bytes, or the end). */
static PyObject *Ring_readable(RingObject *r, PyObject *unused) {
  if (!r->have_view) Py_RETURN_TRUE;
  int yes = r->stop || r->broken || __atomic_load_n(U32(r, r->peer_side + S_CLOSED), __ATOMIC_ACQUIRE) ||
            __atomic_load_n(U64(r, r->cons + R_HEAD), __ATOMIC_ACQUIRE) != r->tail;
  return PyBool_FromLong(yes);
}

/* wait_readable(spin_s, sleep_s) -> bool: spins at most spin_s (spin_s < 0:
 * the reader's adaptive budget, as read() spins), then sleeps at most sleep_s
 * (both GIL-free) until readable(); consumes nothing. For an event loop that
 * reads the ring itself, and for a thread that only watches the ring while
 * another thread reads it (it compares with the tail as it was at the call). */
static PyObject *Ring_wait_readable_(RingObject *r, PyObject *args);
static PyObject *Ring_wait_readable(RingObject *r, PyObject *args) {
  r->active++;
  PyObject *result = Ring_wait_readable_(r, args);
  r->active--;
  return result;
}
static PyObject *Ring_wait_readable_(RingObject *r, PyObject *args) {
  double spin_s, sleep_s;
  if (!PyArg_ParseTuple(args, "dd", &spin_s, &sleep_s)) return NULL;
  if (!r->have_view) Py_RETURN_TRUE;
  uint64_t *headp = U64(r, r->cons + R_HEAD);
  uint32_t *peer_closed = U32(r, r->peer_side + S_CLOSED);
  uint64_t tail = r->tail;
  int yes = 0, err = 0, adaptive = spin_s < 0;
  if (adaptive) {
    note_cpu(r);
    spin_s = may_spin(r) ? spin_next(&r->read_spin) : 0;
  }
  Py_BEGIN_ALLOW_THREADS
  yes = r->stop || __atomic_load_n(peer_closed, __ATOMIC_ACQUIRE) || __atomic_load_n(headp, __ATOMIC_ACQUIRE) != tail;
  if (!yes && spin_s > 0) {
    yes = spin_while(r, headp, tail, spin_s);
    if (adaptive) spin_result(&r->read_spin, yes);
  }
  if (!yes && sleep_s > 0) {
    err = sleep_on(r, r->cons + R_READER_SLEEPING, r->cons + R_SEM_READER, headp, tail, sleep_s);
    yes = r->stop || __atomic_load_n(peer_closed, __ATOMIC_ACQUIRE) || __atomic_load_n(headp, __ATOMIC_ACQUIRE) != tail;
  }
  Py_END_ALLOW_THREADS
  if (err == -2) return ring_error(r, "a semaphore in the shared memory was overwritten");
  return PyBool_FromLong(yes);
}

/* stop(): makes waiting reads return b"" and writes return False; wakes nobody (the caller does). */
static PyObject *Ring_stop(RingObject *r, PyObject *unused) {
  r->stop = 1;
  Py_RETURN_NONE;
}

/* release() -> bool: stop(), and give up the buffer export unless a call is
 * still inside (then False: the export goes when the Ring is freed, and the
 * mapping stays until then). */
static PyObject *Ring_release(RingObject *r, PyObject *unused) {
  r->stop = 1;
  if (r->active > 0) Py_RETURN_FALSE;
  if (r->have_view) {
    r->have_view = 0;
    PyBuffer_Release(&r->view);
  }
  Py_RETURN_TRUE;
}

static PyMethodDef ring_methods[] = {
    {"read", (PyCFunction)Ring_read, METH_VARARGS, "read(max_bytes, timeout) -> bytes | b'' (end) | None (timeout)."},
    {"write", (PyCFunction)Ring_write, METH_VARARGS, "write(data) -> bool: False if the peer closed or stop() was called."},
    {"readable", (PyCFunction)Ring_readable, METH_NOARGS, "readable() -> bool."},
    {"wait_readable", (PyCFunction)Ring_wait_readable, METH_VARARGS,
     "wait_readable(spin_s, sleep_s) -> bool: waits for readable() without consuming."},
    {"stop", (PyCFunction)Ring_stop, METH_NOARGS, "stop(): waiting calls return; later ones report the end."},
    {"release", (PyCFunction)Ring_release, METH_NOARGS, "release() -> bool: stop() and give the mapping back unless a call is inside."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ipcrpc._native.Ring",
    .tp_basicsize = sizeof(RingObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Both rings of one shm connection (see _native.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Ring_init,
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_methods = ring_methods,
};

/* ---------------------------------------------------------------------------
 * Frame helpers for the client's hot path (PROTOCOL.md §1-2): the 16-byte
 * little-endian header is magic "IR", version 1, type, stream id, length,
 * flags, fd_count, reserved. The Python FrameDecoder stays the reference;
 * these only take the common case off it.
 */

static void put_header(unsigned char *p, int type, uint32_t sid, uint32_t len) {
  p[0] = 'I';
  p[1] = 'R';
  p[2] = 1;
  p[3] = (unsigned char)type;
  memcpy(p + 4, &sid, 4); /* x86-64 and aarch64 Linux are little-endian */
  memcpy(p + 8, &len, 4);
  memset(p + 12, 0, 4);
}

/* encode_unary(stream_id, call_start_payload, message_payload) -> bytes:
 * CALL_START + MESSAGE + HALF_CLOSE of one unary request, in one buffer. */
static PyObject *encode_unary(PyObject *self, PyObject *args) {
  unsigned long sid;
  Py_buffer cs, msg;
  if (!PyArg_ParseTuple(args, "ky*y*", &sid, &cs, &msg)) return NULL;
  PyObject *out = NULL;
  if (sid > 0xFFFFFFFFUL || cs.len > 0xFFFFFFFF || msg.len > 0xFFFFFFFF) {
    PyErr_SetString(PyExc_OverflowError, "encode_unary: field out of range");
    goto done;
  }
  out = PyBytes_FromStringAndSize(NULL, 48 + cs.len + msg.len);
  if (!out) goto done;
  unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
  put_header(p, 2, (uint32_t)sid, (uint32_t)cs.len);
  memcpy(p + 16, cs.buf, cs.len);
  p += 16 + cs.len;
  put_header(p, 3, (uint32_t)sid, (uint32_t)msg.len);
  memcpy(p + 16, msg.buf, msg.len);
  put_header(p + 16 + msg.len, 4, (uint32_t)sid, 0);
done:
  PyBuffer_Release(&cs);
  PyBuffer_Release(&msg);
  return out;
}

/* split_frames(data, max_message, max_control) -> (frames, consumed): the
 * whole frames at the start of data as (type, stream_id, flags, fd_count,
 * payload) tuples. Stops before an incomplete frame, one whose payload is
 * over its limit (MESSAGE: max_message, others: max_control), or one with a
 * bad magic or version: the caller hands data[consumed:] to FrameDecoder. */
static PyObject *split_frames(PyObject *self, PyObject *args) {
  Py_buffer data;
  unsigned long long max_message, max_control;
  if (!PyArg_ParseTuple(args, "y*KK", &data, &max_message, &max_control)) return NULL;
  PyObject *frames = PyList_New(0);
  Py_ssize_t pos = 0;
  const unsigned char *b = data.buf;
  while (frames && data.len - pos >= 16) {
    const unsigned char *h = b + pos;
    if (h[0] != 'I' || h[1] != 'R' || h[2] != 1) break;
    uint32_t sid, len;
    uint16_t flags;
    memcpy(&sid, h + 4, 4);
    memcpy(&len, h + 8, 4);
    memcpy(&flags, h + 12, 2);
    if (len > (h[3] == 3 ? max_message : max_control) || (uint64_t)(data.len - pos - 16) < len) break;
    PyObject *t = Py_BuildValue("(iIiiy#)", (int)h[3], (unsigned int)sid, (int)flags, (int)h[14], (const char *)h + 16, (Py_ssize_t)len);
    if (!t || PyList_Append(frames, t) != 0) {
      Py_XDECREF(t);
      Py_CLEAR(frames);
      break;
    }
    Py_DECREF(t);
    pos += 16 + len;
  }
  PyBuffer_Release(&data);
  if (!frames) return NULL;
  PyObject *r = Py_BuildValue("(Nn)", frames, pos);
  return r;
}

/* ---------------------------------------------------------------------------
 * msgq_recv(qid, max_bytes, spin_s) -> (mtype, bytes) | None: takes the first
 * message of type 1 or 2 (data before a wake: msgtyp -2) from a SysV queue
 * without blocking, trying again for at most spin_s seconds (GIL released
 * while trying again; the first try keeps it). None if nothing came; OSError
 * with the errno otherwise (EIDRM/EINVAL once the queue is removed, E2BIG for
 * a message over max_bytes, EINTR). For an event loop that reads the queue
 * itself before it lets a thread block in msgrcv (docs/transports/msgq.md;
 * the data path is kernel ABI: `long mtype` + bytes).
 */

#include <stdlib.h>
#include <sys/msg.h>

static PyObject *msgq_recv(PyObject *self, PyObject *args) {
  int qid;
  Py_ssize_t max_bytes;
  double spin_s;
  if (!PyArg_ParseTuple(args, "ind", &qid, &max_bytes, &spin_s)) return NULL;
  if (max_bytes < 1) max_bytes = 1;
  char *buf = malloc(sizeof(long) + (size_t)max_bytes);
  if (!buf) return PyErr_NoMemory();
  ssize_t n = msgrcv(qid, buf, (size_t)max_bytes, -2, IPC_NOWAIT);
  int err = n < 0 ? errno : 0;
  if (n < 0 && err == ENOMSG && spin_s > 0) {
    Py_BEGIN_ALLOW_THREADS
    double start = now_s();
    for (unsigned i = 1;; ++i) {
      cpu_relax();
      n = msgrcv(qid, buf, (size_t)max_bytes, -2, IPC_NOWAIT);
      err = n < 0 ? errno : 0;
      if (n >= 0 || err != ENOMSG) break;
      if ((i & 7) == 0 && now_s() - start >= spin_s) break;
    }
    Py_END_ALLOW_THREADS
  }
  PyObject *r;
  if (n >= 0) {
    long mtype;
    memcpy(&mtype, buf, sizeof mtype);
    r = Py_BuildValue("(ly#)", mtype, buf + sizeof(long), (Py_ssize_t)n);
  } else if (err == ENOMSG) {
    r = Py_NewRef(Py_None);
  } else {
    errno = err;
    r = PyErr_SetFromErrno(PyExc_OSError);
  }
  free(buf);
  return r;
}

static PyMethodDef methods[] = {
    {"load32", load32, METH_VARARGS, "load32(buf, off) -> int: acquire load of a u32."},
    {"load64", load64, METH_VARARGS, "load64(buf, off) -> int: acquire load of a u64."},
    {"store32", store32, METH_VARARGS, "store32(buf, off, v): release store of a u32."},
    {"store64", store64, METH_VARARGS, "store64(buf, off, v): release store of a u64."},
    {"exchange32", exchange32, METH_VARARGS, "exchange32(buf, off, v) -> old: seq_cst exchange."},
    {"fence", fence, METH_NOARGS, "fence(): seq_cst thread fence."},
    {"futex_wake", futex_wake, METH_VARARGS, "futex_wake(buf, off, n) -> woken (shared futex)."},
    {"msgq_recv", msgq_recv, METH_VARARGS,
     "msgq_recv(qid, max_bytes, spin_s) -> (mtype, data) | None: msgrcv(-2, IPC_NOWAIT), retried for spin_s."},
    {"encode_unary", encode_unary, METH_VARARGS,
     "encode_unary(stream_id, call_start, message) -> bytes: CALL_START + MESSAGE + HALF_CLOSE."},
    {"split_frames", split_frames, METH_VARARGS,
     "split_frames(data, max_message, max_control) -> ([(type, id, flags, fd_count, payload)], consumed)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ipcrpc._native",
                                    "Atomics and futexes for ipcrpc's shared-memory ring.", -1, methods};

PyMODINIT_FUNC PyInit__native(void) {
  if (PyType_Ready(&RingType) < 0) return NULL;
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  Py_INCREF(&RingType);
  if (PyModule_AddObject(m, "Ring", (PyObject *)&RingType) < 0) {
    Py_DECREF(&RingType);
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
