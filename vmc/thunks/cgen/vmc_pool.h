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
 * Called without the GIL; touches no Python object.
 */
#ifndef VMC_POOL_H
#define VMC_POOL_H
#include <pthread.h>

#define VMC_POOL_MAX 256

typedef void (*vmc_task_fn)(void *arg, long task);

static int vmc_pool_threads = 1;          /* config.threads; set with the GIL held */

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
} vmc__pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void vmc__pool_drain(vmc_task_fn fn, void *arg, long ntasks) {
    for (;;) {
        long t = __atomic_fetch_add(&vmc__pool.next, 1, __ATOMIC_RELAXED);
        if (t >= ntasks) return;
        fn(arg, t);
    }
}

static void *vmc__pool_worker(void *unused) {
    (void)unused;
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
        pthread_mutex_unlock(&vmc__pool.mu);
        vmc__pool_drain(fn, arg, ntasks);
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
        int rc = pthread_create(&tid, &attr, vmc__pool_worker, NULL);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        vmc__pool.started++;
    }
    return vmc__pool.started;
}

static void vmc_pool_run(vmc_task_fn fn, void *arg, long ntasks) {
    int helpers = vmc_pool_threads - 1;
    if (helpers > ntasks - 1) helpers = (int)(ntasks - 1);
    if (helpers <= 0 || pthread_mutex_trylock(&vmc__pool.mu) != 0) {
        for (long t = 0; t < ntasks; t++) fn(arg, t);
        return;
    }
    if (vmc__pool.busy) {
        pthread_mutex_unlock(&vmc__pool.mu);
        for (long t = 0; t < ntasks; t++) fn(arg, t);
        return;
    }
    helpers = helpers < vmc__pool_start(helpers) ? helpers : vmc__pool.started;
    vmc__pool.busy = 1;
    vmc__pool.fn = fn;
    vmc__pool.arg = arg;
    vmc__pool.ntasks = ntasks;
    __atomic_store_n(&vmc__pool.next, 0, __ATOMIC_RELAXED);
    vmc__pool.want = helpers;
    vmc__pool.joined = 0;
    vmc__pool.active = 0;
    vmc__pool.gen++;
    pthread_cond_broadcast(&vmc__pool.go);
    pthread_mutex_unlock(&vmc__pool.mu);
    vmc__pool_drain(fn, arg, ntasks);
    pthread_mutex_lock(&vmc__pool.mu);
    vmc__pool.want = 0;                   /* a worker waking late takes nothing */
    while (vmc__pool.active > 0) pthread_cond_wait(&vmc__pool.done, &vmc__pool.mu);
    vmc__pool.busy = 0;
    pthread_mutex_unlock(&vmc__pool.mu);
}

#endif /* VMC_POOL_H */
