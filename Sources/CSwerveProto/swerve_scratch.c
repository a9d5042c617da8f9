// Hand-written (not generated): a per-thread scratch arena for protobuf-c, so decoding a request
// or building a response costs no malloc per field. See CSwerveProto.h for the contract.
#include "CSwerveProto.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    ProtobufCAllocator allocator;  // first member: the allocator pointer is the arena pointer
    unsigned char *buf;
    size_t cap;
    size_t used;
    size_t overflow;  // bytes that did not fit during the current use (they went to malloc)
    int busy;
} swerve_scratch_arena;

enum { SCRATCH_INITIAL = 64 * 1024, SCRATCH_MAX = 4 * 1024 * 1024 };

// One arena per thread, freed when the thread ends (batcher threads come and go with versions).
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *p) {
    swerve_scratch_arena *a = p;
    free(a->buf);
    free(a);
}

static void scratch_make_key(void) { pthread_key_create(&scratch_key, scratch_destroy); }

static swerve_scratch_arena *scratch_for_thread(void) {
    pthread_once(&scratch_once, scratch_make_key);
    swerve_scratch_arena *a = pthread_getspecific(scratch_key);
    if (a == NULL) {
        a = calloc(1, sizeof *a);
        if (a == NULL) return NULL;
        if (pthread_setspecific(scratch_key, a) != 0) { free(a); return NULL; }
    }
    return a;
}

static void *scratch_bump(swerve_scratch_arena *a, size_t size) {
    size_t need = (size + 15) & ~(size_t)15;
    if (need >= size && a->buf != NULL && need <= a->cap - a->used) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    a->overflow += need >= size ? need : size;
    return NULL;
}

static void *scratch_alloc(void *data, size_t size) {
    void *p = scratch_bump(data, size);
    return p != NULL ? p : malloc(size == 0 ? 1 : size);
}

static void scratch_free(void *data, void *p) {
    swerve_scratch_arena *a = data;
    if (p == NULL) return;
    uintptr_t at = (uintptr_t)p, start = (uintptr_t)a->buf;
    if (a->buf != NULL && at >= start && at - start < a->cap) return;
    free(p);
}

ProtobufCAllocator *swerve_scratch_acquire(void) {
    swerve_scratch_arena *a = scratch_for_thread();
    if (a == NULL || a->busy) return NULL;
    if (a->buf == NULL) {
        a->buf = malloc(SCRATCH_INITIAL);
        if (a->buf == NULL) return NULL;
        a->cap = SCRATCH_INITIAL;
    }
    a->allocator.alloc = scratch_alloc;
    a->allocator.free = scratch_free;
    a->allocator.allocator_data = a;
    a->used = 0;
    a->overflow = 0;
    a->busy = 1;
    return &a->allocator;
}

void *swerve_scratch_try_alloc(ProtobufCAllocator *allocator, size_t size) {
    if (allocator == NULL) return NULL;
    return scratch_bump(allocator->allocator_data, size);
}

void swerve_scratch_release(ProtobufCAllocator *allocator) {
    if (allocator == NULL) return;
    swerve_scratch_arena *a = allocator->allocator_data;
    // A use that overflowed grows the buffer for the next one, up to SCRATCH_MAX; the
    // overflowing pieces themselves were freed by their owner through scratch_free.
    size_t want = a->used + a->overflow;
    if (want > a->cap && a->cap < SCRATCH_MAX) {
        size_t cap = a->cap;
        while (cap < want && cap < SCRATCH_MAX) cap *= 2;
        unsigned char *grown = malloc(cap);
        if (grown != NULL) {
            free(a->buf);
            a->buf = grown;
            a->cap = cap;
        }
    }
    a->used = 0;
    a->overflow = 0;
    a->busy = 0;
}

static void *bounded_alloc(void *data, size_t size) {
    swerve_bounded_allocator *b = data;
    if (size > b->limit - b->used) {
        b->refused = 1;
        return NULL;
    }
    b->used += size;
    if (b->inner != NULL) return b->inner->alloc(b->inner->allocator_data, size);
    return malloc(size == 0 ? 1 : size);
}

static void bounded_free(void *data, void *p) {
    swerve_bounded_allocator *b = data;
    if (b->inner != NULL) b->inner->free(b->inner->allocator_data, p);
    else free(p);
}

void swerve_bounded_init(swerve_bounded_allocator *b, ProtobufCAllocator *inner, size_t limit) {
    b->allocator.alloc = bounded_alloc;
    b->allocator.free = bounded_free;
    b->allocator.allocator_data = b;
    b->inner = inner;
    b->limit = limit;
    b->used = 0;
    b->refused = 0;
}
