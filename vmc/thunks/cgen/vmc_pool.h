/* vmc_pool.h: the one thread pool of a process (vmc.config.threads), for the
 * elementwise driver (vmc_ew_runtime.h). Included by _ew_runtime.c only.
 *
 * vmc_pool_run(fn, arg, ntasks) runs fn(arg, t) for t in [0, ntasks): the
 * calling thread takes tasks too, and up to vmc_pool_threads - 1 workers
 * (POSIX threads, started on first use) take the rest from an atomic counter.
 * Which thread runs a task never changes what it computes: callers split work
 * so that each task writes its own outputs (or its own partial result,
 * combined in task order), so results do not depend on the thread count.
 * One job at a time: a call that finds the pool busy (another Python thread's
 * kernel, its GIL released) runs its tasks alone, so kernels of concurrent
 * calls never start more threads than the setting.
 *
 * vmc_pool_round_trip_ns() is what handing a job to the pool costs: the time
 * until every thread has started on it, and back (measured on first use and
 * again every VMC_ROUND_TRIP_AGE ns, with the workers asleep as between kernel
 * calls: about 20 us on an idle core, milliseconds when the other cores are
 * busy with other processes). The driver splits only work worth several round
 * trips (vmc_ew_runtime.h).
 *
 * A job given a tag records each task's thread and times (vmc_pool_trace.h).
 *
 * Called without the GIL; touches no Python object.
 */
#ifndef VMC_POOL_H
#define VMC_POOL_H
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include "vmc_pool_trace.h"

#define VMC_POOL_MAX 256

typedef void (*vmc_task_fn)(void *arg, long task);

static int vmc_pool_threads = 1;          /* config.threads; set with the GIL held */
static unsigned long vmc_pool_jobs;       /* jobs workers helped with (pool_info) */
static unsigned long long vmc__pool_rt_ns; /* round trip; 0: not measured (vmc_pool_set_threads) */
static unsigned long long vmc__pool_rt_at; /* when it was measured; 0: set by hand, kept */
static int vmc__pool_measuring;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    int started;                          /* workers running */
    int busy;                             /* a job is in progress */
    unsigned long gen;                    /* job number: workers wait for a new one */
    int want;                             /* workers wanted by the current job */
    int joined;                           /* workers that took the current job */
    int active;                           /* of those, still working */
    vmc_task_fn fn;
    void *arg;
    long ntasks, next;                    /* next: the task counter (atomic) */
    const vmc__ptjob *trace;              /* the job's trace, or NULL */
} vmc__pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

/* worker: 0 for the thread that launched the job, k >= 1 for pool thread k */
static void vmc__pool_drain(vmc_task_fn fn, void *arg, long ntasks, const vmc__ptjob *tj,
                            int worker) {
    for (;;) {
        long t = __atomic_fetch_add(&vmc__pool.next, 1, __ATOMIC_RELAXED);
        if (t >= ntasks) return;
        vmc__pool_task(fn, arg, t, ntasks, tj, worker);
    }
}

static void *vmc__pool_worker(void *index) {
    int worker = (int)(intptr_t)index;
    unsigned long seen = 0;
    pthread_mutex_lock(&vmc__pool.mu);
    for (;;) {
        while (vmc__pool.gen == seen || vmc__pool.joined >= vmc__pool.want)
        {
            if (vmc__pool.gen != seen) seen = vmc__pool.gen;   /* a job with enough hands */
            pthread_cond_wait(&vmc__pool.go, &vmc__pool.mu);
        }
        seen = vmc__pool.gen;
        vmc__pool.joined++;
        vmc__pool.active++;
        vmc_task_fn fn = vmc__pool.fn;
        void *arg = vmc__pool.arg;
        long ntasks = vmc__pool.ntasks;
        const vmc__ptjob *tj = vmc__pool.trace;
        pthread_mutex_unlock(&vmc__pool.mu);
        vmc__pool_drain(fn, arg, ntasks, tj, worker);
        pthread_mutex_lock(&vmc__pool.mu);
        if (--vmc__pool.active == 0) pthread_cond_signal(&vmc__pool.done);
    }
    return NULL;
}

/* Start workers up to n (fewer if the system refuses); the number running. */
static int vmc__pool_start(int n) {
    while (vmc__pool.started < n && vmc__pool.started < VMC_POOL_MAX) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&tid, &attr, vmc__pool_worker,
                                (void *)(intptr_t)(vmc__pool.started + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        vmc__pool.started++;
    }
    return vmc__pool.started;
}

/* Run fn(arg, t) for t in [0, ntasks), with up to ntasks - 1 workers; the number
 * of workers that could help. With alone_ok 0, runs nothing (and returns 0)
 * unless ntasks - 1 workers can help. tj: the job's trace, or NULL. */
static int vmc__pool_run(vmc_task_fn fn, void *arg, long ntasks, int alone_ok,
                         const vmc__ptjob *tj) {
    int helpers = vmc_pool_threads - 1;
    if (helpers > ntasks - 1) helpers = (int)(ntasks - 1);
    if (helpers <= 0 || pthread_mutex_trylock(&vmc__pool.mu) != 0) goto alone;
    if (vmc__pool.busy) {
        pthread_mutex_unlock(&vmc__pool.mu);
        goto alone;
    }
    helpers = helpers < vmc__pool_start(helpers) ? helpers : vmc__pool.started;
    if (helpers <= 0 || (!alone_ok && helpers < ntasks - 1)) {
        pthread_mutex_unlock(&vmc__pool.mu);
        goto alone;
    }
    vmc__pool.busy = 1;
    vmc_pool_jobs += alone_ok;            /* kernels' jobs, not the round trip's */
    vmc__pool.fn = fn;
    vmc__pool.arg = arg;
    vmc__pool.ntasks = ntasks;
    vmc__pool.trace = tj;
    __atomic_store_n(&vmc__pool.next, 0, __ATOMIC_RELAXED);
    vmc__pool.want = helpers;
    vmc__pool.joined = 0;
    vmc__pool.active = 0;
    vmc__pool.gen++;
    pthread_cond_broadcast(&vmc__pool.go);
    pthread_mutex_unlock(&vmc__pool.mu);
    vmc__pool_drain(fn, arg, ntasks, tj, 0);
    pthread_mutex_lock(&vmc__pool.mu);
    vmc__pool.want = 0;                   /* a worker waking late takes nothing */
    while (vmc__pool.active > 0) pthread_cond_wait(&vmc__pool.done, &vmc__pool.mu);
    vmc__pool.busy = 0;
    pthread_mutex_unlock(&vmc__pool.mu);
    return helpers;
alone:
    if (alone_ok)
        for (long t = 0; t < ntasks; t++) vmc__pool_task(fn, arg, t, ntasks, tj, 0);
    return 0;
}

/* tag: record the job's tasks (vmc_pool_trace.h), or NULL. */
static void vmc_pool_run(vmc_task_fn fn, void *arg, long ntasks, const vmc_pool_tag *tag) {
    vmc__ptjob tj;
    if (tag) vmc__ptjob_init(&tj, tag);
    vmc__pool_run(fn, arg, ntasks, 1, tag ? &tj : NULL);
}

/* The round trip's task: every thread takes one and waits until all have
 * (bounded: a thread the system never schedules must not hang the caller). */
typedef struct { long n, arrived; unsigned long long deadline; } vmc__rendezvous;

static void vmc__rendezvous_task(void *arg, long t) {
    vmc__rendezvous *r = (vmc__rendezvous *)arg;
    (void)t;
    __atomic_add_fetch(&r->arrived, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&r->arrived, __ATOMIC_ACQUIRE) < r->n && vmc_now_ns() < r->deadline) {
    }
}

#define VMC_ROUND_TRIPS 9
#define VMC_ROUND_TRIP_AGE 10000000000ull   /* 10 s: the machine's load changes */

/* The median of VMC_ROUND_TRIPS jobs that every thread joins; the last value
 * (0 at first) while another thread measures it or the pool cannot get its
 * workers now. */
static unsigned long long vmc_pool_round_trip_ns(void) {
    unsigned long long v = __atomic_load_n(&vmc__pool_rt_ns, __ATOMIC_ACQUIRE);
    unsigned long long at = __atomic_load_n(&vmc__pool_rt_at, __ATOMIC_ACQUIRE);
    if (vmc_pool_threads <= 1 || (v && (!at || vmc_now_ns() - at < VMC_ROUND_TRIP_AGE)))
        return v;
    if (__atomic_exchange_n(&vmc__pool_measuring, 1, __ATOMIC_ACQ_REL)) return v;
    unsigned long long t[VMC_ROUND_TRIPS];
    int got = 0;
    for (int k = 0; k < VMC_ROUND_TRIPS; k++) {
        vmc__rendezvous r = {vmc_pool_threads, 0, vmc_now_ns() + 20000000ull};
        unsigned long long t0 = vmc_now_ns();
        if (vmc__pool_run(vmc__rendezvous_task, &r, r.n, 0, NULL) == 0) break;
        t[got++] = vmc_now_ns() - t0;
    }
    if (got == VMC_ROUND_TRIPS) {
        for (int a = 1; a < got; a++)            /* insertion sort: nine values */
            for (int b = a; b > 0 && t[b - 1] > t[b]; b--) {
                unsigned long long x = t[b]; t[b] = t[b - 1]; t[b - 1] = x;
            }
        v = t[got / 2] ? t[got / 2] : 1;
        __atomic_store_n(&vmc__pool_rt_at, vmc_now_ns(), __ATOMIC_RELEASE);
        __atomic_store_n(&vmc__pool_rt_ns, v, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&vmc__pool_measuring, 0, __ATOMIC_RELEASE);
    return v;
}

/* config.threads; the round trip is measured again for the new count. */
static void vmc_pool_set_threads(int n) {
    vmc_pool_threads = n;
    __atomic_store_n(&vmc__pool_rt_ns, 0, __ATOMIC_RELEASE);
}

#endif /* VMC_POOL_H */
