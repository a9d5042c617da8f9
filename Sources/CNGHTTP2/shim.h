#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * A per-session block pool for nghttp2's own allocations (`nghttp2_session_server_new3`).
 *
 * nghttp2 allocates and frees about eight blocks per request (stream state, header name/value
 * buffers, outbound items, frame payloads), all on the session's event loop. The pool keeps freed
 * blocks on a free list per size class (64 to 2048 bytes, header included) and hands them out
 * again, so a steady stream of requests stops calling malloc and free; larger blocks go straight to
 * malloc. At most SWERVE_H2_POOL_MAX_CACHED bytes per session are kept, the rest are freed:
 * bounded by construction. One session, one thread at a time: no locks.
 *
 * Each block starts with a 16-byte header: the size class, or SWERVE_H2_POOL_LARGE and the
 * block's size for a block from malloc.
 */

#define SWERVE_H2_POOL_CLASSES 6
#define SWERVE_H2_POOL_MIN_SHIFT 6 /* 64 bytes */
#define SWERVE_H2_POOL_HEADER 16
#define SWERVE_H2_POOL_LARGE ((size_t)-1)
#define SWERVE_H2_POOL_MAX_CACHED (32 * 1024)

typedef struct swerve_h2_block {
    struct swerve_h2_block *next;
} swerve_h2_block;

typedef struct swerve_h2_pool {
    swerve_h2_block *free_list[SWERVE_H2_POOL_CLASSES];
    size_t cached_bytes;
    /* Counters for tests: blocks handed out from a free list, and from malloc. */
    uint64_t reused;
    uint64_t fresh;
} swerve_h2_pool;

static inline size_t swerve_h2_pool_class_size(size_t c) { return (size_t)1 << (c + SWERVE_H2_POOL_MIN_SHIFT); }

static inline void *swerve_h2_pool_malloc(size_t size, void *user) {
    swerve_h2_pool *pool = (swerve_h2_pool *)user;
    if (size > SIZE_MAX - SWERVE_H2_POOL_HEADER) return NULL;
    size_t total = size + SWERVE_H2_POOL_HEADER;
    size_t c = 0;
    while (c < SWERVE_H2_POOL_CLASSES && swerve_h2_pool_class_size(c) < total) c++;
    size_t *header;
    if (c == SWERVE_H2_POOL_CLASSES) {
        header = (size_t *)malloc(total);
        if (header == NULL) return NULL;
        header[0] = SWERVE_H2_POOL_LARGE;
        header[1] = total;
        return (char *)header + SWERVE_H2_POOL_HEADER;
    }
    swerve_h2_block *b = pool->free_list[c];
    if (b != NULL) {
        pool->free_list[c] = b->next;
        pool->cached_bytes -= swerve_h2_pool_class_size(c);
        pool->reused++;
        header = (size_t *)b;
    } else {
        header = (size_t *)malloc(swerve_h2_pool_class_size(c));
        if (header == NULL) return NULL;
        pool->fresh++;
    }
    header[0] = c;
    return (char *)header + SWERVE_H2_POOL_HEADER;
}

static inline void swerve_h2_pool_free(void *ptr, void *user) {
    if (ptr == NULL) return;
    swerve_h2_pool *pool = (swerve_h2_pool *)user;
    size_t *header = (size_t *)((char *)ptr - SWERVE_H2_POOL_HEADER);
    size_t c = header[0];
    if (c == SWERVE_H2_POOL_LARGE || pool->cached_bytes + swerve_h2_pool_class_size(c) > SWERVE_H2_POOL_MAX_CACHED) {
        free(header);
        return;
    }
    swerve_h2_block *b = (swerve_h2_block *)header;
    b->next = pool->free_list[c];
    pool->free_list[c] = b;
    pool->cached_bytes += swerve_h2_pool_class_size(c);
}

static inline void *swerve_h2_pool_calloc(size_t count, size_t size, void *user) {
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    void *p = swerve_h2_pool_malloc(count * size, user);
    if (p != NULL) memset(p, 0, count * size);
    return p;
}

static inline void *swerve_h2_pool_realloc(void *ptr, size_t size, void *user) {
    if (ptr == NULL) return swerve_h2_pool_malloc(size, user);
    if (size == 0) {
        swerve_h2_pool_free(ptr, user);
        return NULL;
    }
    size_t *header = (size_t *)((char *)ptr - SWERVE_H2_POOL_HEADER);
    size_t capacity = (header[0] == SWERVE_H2_POOL_LARGE ? header[1] : swerve_h2_pool_class_size(header[0])) - SWERVE_H2_POOL_HEADER;
    if (size <= capacity) return ptr;
    void *q = swerve_h2_pool_malloc(size, user);
    if (q == NULL) return NULL; /* the old block stays valid, as realloc's does */
    memcpy(q, ptr, capacity);
    swerve_h2_pool_free(ptr, user);
    return q;
}

/* A new pool (NULL when out of memory). */
static inline swerve_h2_pool *swerve_h2_pool_new(void) { return (swerve_h2_pool *)calloc(1, sizeof(swerve_h2_pool)); }

/* The allocator to give nghttp2 for a session that this pool outlives. */
static inline nghttp2_mem swerve_h2_pool_mem(swerve_h2_pool *pool) {
    nghttp2_mem mem = {pool, swerve_h2_pool_malloc, swerve_h2_pool_free, swerve_h2_pool_calloc, swerve_h2_pool_realloc};
    return mem;
}

/* Frees the pool and the blocks it keeps; call after the session that used it is deleted. */
static inline void swerve_h2_pool_destroy(swerve_h2_pool *pool) {
    if (pool == NULL) return;
    for (size_t c = 0; c < SWERVE_H2_POOL_CLASSES; c++) {
        swerve_h2_block *b = pool->free_list[c];
        while (b != NULL) {
            swerve_h2_block *next = b->next;
            free(b);
            b = next;
        }
    }
    free(pool);
}

#endif
