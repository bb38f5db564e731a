/* vmc_blocks.h: a small cache of large freed output buffers.
 *
 * Why: a fresh multi-megabyte buffer comes from mmap, and the kernel maps and
 * zeroes every page on first touch; for a streaming kernel like x*y + z*0.5
 * that is a third of the call (80 MB: ~9 ms of page faults on a ~18 ms
 * kernel). A training loop asks for the same sizes on every call, so a freed
 * block is kept and handed to the next request of the same size.
 *
 * How: arrays of at least VMC_BLOCK_MIN bytes that a kernel allocates get a
 * numpy memory handler (PyDataMem_Handler, NEP 49) whose free() keeps the
 * block here instead of returning it to the OS. Ownership stays numpy's
 * (owndata arrays, freed by numpy with the handler they were made with).
 *
 * The promise kept: the cache never raises the peak of vmc's allocations. A
 * request the cache cannot serve with a block of exactly its size first
 * returns every cached block to the OS, so the memory held at that moment is
 * what it would have been without the cache. Cached bytes are capped
 * (vmc_blocks_cap, config.block_cache_mb) and can be released at any time.
 *
 * Every entry point runs with the GIL held (numpy allocates and frees array
 * data under the GIL), which is the cache's lock.
 */
#ifndef VMC_BLOCKS_H
#define VMC_BLOCKS_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define VMC_BLOCK_MIN ((npy_intp)1 << 20)  /* smaller buffers: malloc reuses its heap */
#define VMC_BLOCK_SLOTS 16
#define VMC_BLOCK_HDR 64                   /* header (the block's size); keeps 64-byte alignment */
#define VMC_BLOCK_PAGE 4096

static void *vmc__blocks[VMC_BLOCK_SLOTS];       /* cached blocks, oldest first */
static size_t vmc__block_sizes[VMC_BLOCK_SLOTS];
static int vmc__nblocks;
static size_t vmc__cached_bytes;
static size_t vmc_blocks_cap = (size_t)1 << 30;
static unsigned long long vmc__block_hits, vmc__block_misses;

static size_t vmc__block_size(void *q) { return *(size_t *)((char *)q - VMC_BLOCK_HDR); }

static void *vmc__block_new(size_t size) {
    void *p;
    if (size > (size_t)-1 - VMC_BLOCK_HDR - VMC_BLOCK_PAGE) return NULL;
    size = (size + VMC_BLOCK_PAGE - 1) & ~(size_t)(VMC_BLOCK_PAGE - 1);
    if (posix_memalign(&p, 64, size + VMC_BLOCK_HDR)) return NULL;
    *(size_t *)p = size;
#ifdef MADV_HUGEPAGE
    /* as numpy does for its large arrays: fewer TLB misses when streaming */
    uintptr_t lo = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t hi = ((uintptr_t)p + size + VMC_BLOCK_HDR) & ~(uintptr_t)4095;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#endif
    return (char *)p + VMC_BLOCK_HDR;
}

/* Remove entry i from the cache; returns its block. */
static void *vmc__block_take(int i) {
    void *q = vmc__blocks[i];
    vmc__cached_bytes -= vmc__block_sizes[i];
    memmove(vmc__blocks + i, vmc__blocks + i + 1, (size_t)(vmc__nblocks - i - 1) * sizeof(void *));
    memmove(vmc__block_sizes + i, vmc__block_sizes + i + 1,
            (size_t)(vmc__nblocks - i - 1) * sizeof(size_t));
    vmc__nblocks--;
    return q;
}

static void vmc__block_drop(int i) { free((char *)vmc__block_take(i) - VMC_BLOCK_HDR); }

static void vmc_blocks_release(void) {
    while (vmc__nblocks) vmc__block_drop(vmc__nblocks - 1);
}

static void *vmc__blocks_malloc(void *ctx, size_t size) {
    size_t want = (size + VMC_BLOCK_PAGE - 1) & ~(size_t)(VMC_BLOCK_PAGE - 1);
    for (int i = vmc__nblocks - 1; i >= 0; i--) {
        if (vmc__block_sizes[i] != want) continue;
        vmc__block_hits++;
        return vmc__block_take(i);
    }
    vmc__block_misses++;
    vmc_blocks_release();          /* see the promise above */
    return vmc__block_new(size);
}

static void vmc__blocks_free(void *ctx, void *q, size_t unused) {
    if (!q) return;
    size_t size = vmc__block_size(q);
    if (size > vmc_blocks_cap) { free((char *)q - VMC_BLOCK_HDR); return; }
    while (vmc__nblocks && (vmc__nblocks == VMC_BLOCK_SLOTS
                            || vmc__cached_bytes + size > vmc_blocks_cap))
        vmc__block_drop(0);
    vmc__blocks[vmc__nblocks] = q;
    vmc__block_sizes[vmc__nblocks++] = size;
    vmc__cached_bytes += size;
}

static void *vmc__blocks_calloc(void *ctx, size_t n, size_t elsize) {
    if (elsize && n > (size_t)-1 / elsize) return NULL;
    void *q = vmc__blocks_malloc(ctx, n * elsize);
    if (q) memset(q, 0, n * elsize);
    return q;
}

static void *vmc__blocks_realloc(void *ctx, void *q, size_t size) {
    if (!q) return vmc__blocks_malloc(ctx, size);
    size_t old = vmc__block_size(q);
    if (size <= old) return q;
    void *r = vmc__block_new(size);
    if (!r) return NULL;
    memcpy(r, q, old);
    vmc__blocks_free(ctx, q, old);
    return r;
}

static PyDataMem_Handler vmc__blocks_handler = {
    "vmc_blocks", 1,
    {NULL, vmc__blocks_malloc, vmc__blocks_calloc, vmc__blocks_realloc, vmc__blocks_free}};
static PyObject *vmc__blocks_capsule;   /* lives as long as the process: arrays point to it */

/* A new C-contiguous array; large ones take their data from the cache. */
static PyArrayObject *vmc_blocks_new_array(int nd, npy_intp *shape, int type) {
    PyArray_Descr *dt = PyArray_DescrFromType(type);
    if (!dt) return NULL;
    npy_intp n = PyDataType_ELSIZE(dt);
    Py_DECREF(dt);
    for (int a = 0; a < nd; a++) n *= shape[a];
    if (n < VMC_BLOCK_MIN)
        return (PyArrayObject *)PyArray_SimpleNew(nd, shape, type);
    if (!vmc__blocks_capsule) {
        vmc__blocks_capsule = PyCapsule_New(&vmc__blocks_handler, "mem_handler", NULL);
        if (!vmc__blocks_capsule) return NULL;
    }
    PyObject *old = PyDataMem_SetHandler(vmc__blocks_capsule);
    if (!old) return NULL;
    PyArrayObject *o = (PyArrayObject *)PyArray_SimpleNew(nd, shape, type);
    PyObject *ours = PyDataMem_SetHandler(old);   /* restore even when the allocation failed */
    Py_DECREF(old);
    if (!ours) { Py_XDECREF(o); return NULL; }
    Py_DECREF(ours);
    return o;
}

#endif /* VMC_BLOCKS_H */
