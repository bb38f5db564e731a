/* vmc_pool_trace.h: the pool's side of the timeline (issue 21). Included by
 * vmc_pool.h only.
 *
 * A job launched with a tag (vmc_pool_run; the elementwise driver tags the
 * jobs of thunks whose function keeps a trace: _ew_runtime.set_pool_trace)
 * records one row per task: which thread ran it, when (CLOCK_MONOTONIC ns, the
 * VM trace's clock, so rows line up with its instructions), the job and the
 * items of the split axis the task covered, and the thread that launched the
 * job (its pthread_self, which is Python's threading.get_ident(): the
 * timeline puts a row under that thread's instruction that contains it).
 *
 * Rows go to one ring per process (VMC_PTRACE_CAP rows, allocated when tracing
 * is first asked for, never freed: a worker may be writing). Writers claim a
 * slot with one atomic add and publish it seqlock-style (seq 0 while writing,
 * then its index + 1), so a reader holding the GIL copies only complete rows,
 * whatever other threads' kernels do meanwhile. An untagged job costs one
 * branch per task.
 */
#ifndef VMC_POOL_TRACE_H
#define VMC_POOL_TRACE_H
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VMC_PTRACE_CAP (1L << 16)   /* rows kept: 5 MiB; 8 tasks a job at 2 threads */

static unsigned long long vmc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* One task of a traced job. All 8-byte fields: vmc.thunks.pool_trace.POOL_EVENT
 * reads the rows with the same layout. */
typedef struct {
    int64_t job;                /* job number (per process, counted over traced jobs) */
    int64_t task, ntasks;       /* this task of the job's */
    int64_t worker;             /* 0: the thread that launched the job; k >= 1: pool thread k */
    int64_t lo, hi;             /* items [lo, hi) of the job's split axis */
    int64_t t0, t1;             /* the task's start and end, CLOCK_MONOTONIC ns */
    uint64_t caller;            /* the launching thread (pthread_self) */
    uint64_t seq;               /* 0 while written, then the row's index + 1 */
} vmc_pool_event;

/* How a traced job's tasks map to items: task t covers
 * [t * span, min((t + 1) * span, extent)) of its split axis. */
typedef struct {
    int64_t span, extent;
} vmc_pool_tag;

/* A traced job as its tasks see it (on the launching thread's stack: it
 * outlives every task, as the launcher waits for them). */
typedef struct {
    const vmc_pool_tag *tag;
    int64_t job;
    uint64_t caller;
} vmc__ptjob;

static vmc_pool_event *vmc__ptrace;          /* the ring; NULL until tracing is asked for */
static unsigned long long vmc__ptrace_head;  /* rows claimed so far (atomic) */
static unsigned long long vmc__ptrace_from;  /* rows before this one are cleared */
static int64_t vmc__ptrace_jobs;             /* traced jobs so far (atomic) */

/* Allocate the ring (the GIL held); 0, or -1 when there is no memory. */
static int vmc_ptrace_alloc(void) {
    if (__atomic_load_n(&vmc__ptrace, __ATOMIC_ACQUIRE)) return 0;
    vmc_pool_event *r = calloc((size_t)VMC_PTRACE_CAP, sizeof(vmc_pool_event));
    if (!r) return -1;
    __atomic_store_n(&vmc__ptrace, r, __ATOMIC_RELEASE);
    return 0;
}

static void vmc__ptjob_init(vmc__ptjob *tj, const vmc_pool_tag *tag) {
    tj->tag = tag;
    tj->job = __atomic_fetch_add(&vmc__ptrace_jobs, 1, __ATOMIC_RELAXED);
    tj->caller = (uint64_t)pthread_self();
}

static void vmc__ptrace_note(const vmc__ptjob *tj, long t, long ntasks, int worker,
                             unsigned long long t0, unsigned long long t1) {
    vmc_pool_event *ring = __atomic_load_n(&vmc__ptrace, __ATOMIC_ACQUIRE);
    if (!ring) return;
    unsigned long long i = __atomic_fetch_add(&vmc__ptrace_head, 1, __ATOMIC_RELAXED);
    vmc_pool_event *e = ring + i % (unsigned long long)VMC_PTRACE_CAP;
    __atomic_store_n(&e->seq, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);   /* readers see seq 0 before the new fields */
    int64_t lo = (int64_t)t * tj->tag->span, hi = lo + tj->tag->span;
    e->job = tj->job;
    e->task = t;
    e->ntasks = ntasks;
    e->worker = worker;
    e->lo = lo;
    e->hi = hi < tj->tag->extent ? hi : tj->tag->extent;
    e->t0 = (int64_t)t0;
    e->t1 = (int64_t)t1;
    e->caller = tj->caller;
    __atomic_store_n(&e->seq, i + 1, __ATOMIC_RELEASE);
}

/* Run task t of a job, timed and recorded when the job is traced (tj). */
static inline void vmc__pool_task(void (*fn)(void *, long), void *arg, long t, long ntasks,
                                  const vmc__ptjob *tj, int worker) {
    if (!tj) {
        fn(arg, t);
        return;
    }
    unsigned long long t0 = vmc_now_ns();
    fn(arg, t);
    vmc__ptrace_note(tj, t, ntasks, worker, t0, vmc_now_ns());
}

/* Copy the complete rows recorded since the last clear, oldest first, into
 * out (room for VMC_PTRACE_CAP rows); how many. With clear, they are not read
 * again. Rows a writer is still filling are left out. */
static long vmc_ptrace_read(vmc_pool_event *out, int clear) {
    vmc_pool_event *ring = __atomic_load_n(&vmc__ptrace, __ATOMIC_ACQUIRE);
    unsigned long long head = __atomic_load_n(&vmc__ptrace_head, __ATOMIC_ACQUIRE);
    unsigned long long i = __atomic_load_n(&vmc__ptrace_from, __ATOMIC_RELAXED);
    long n = 0;
    if (!ring) return 0;
    if (head - i > (unsigned long long)VMC_PTRACE_CAP) i = head - VMC_PTRACE_CAP;
    for (; i < head; i++) {
        vmc_pool_event *e = ring + i % (unsigned long long)VMC_PTRACE_CAP;
        if (__atomic_load_n(&e->seq, __ATOMIC_ACQUIRE) != i + 1) continue;
        memcpy(&out[n], e, sizeof *e);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) == i + 1) n++;   /* not overwritten meanwhile */
    }
    if (clear) __atomic_store_n(&vmc__ptrace_from, head, __ATOMIC_RELAXED);
    return n;
}

#endif /* VMC_POOL_TRACE_H */
