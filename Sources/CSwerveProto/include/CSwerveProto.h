#ifndef CSWERVEPROTO_H
#define CSWERVEPROTO_H
// Umbrella header for the protobuf-c code generated from protos/ (scripts/gen-protos.sh).
#include <protobuf-c/protobuf-c.h>
#include "grpc_service.pb-c.h"
#include "model_config.pb-c.h"
#include "health.pb-c.h"
#include "onnx.pb-c.h"
#include "swerve_serving.pb-c.h"
#include "swerve_registry.pb-c.h"
#include "swerve_training.pb-c.h"

// `protobuf_c_empty_string` is an unsized extern array that Swift cannot import;
// unset string fields point at it.
static inline const char *swerve_pb_empty_string(void) { return protobuf_c_empty_string; }
static inline int swerve_pb_is_empty_string(const char *s) { return s == protobuf_c_empty_string; }

// A per-thread scratch arena (swerve_scratch.c, hand-written): `acquire` returns this thread's
// arena as a protobuf-c allocator, or NULL when the thread is already using it (then pass NULL
// on, which means malloc). Unpack or build with it, free what was unpacked with the same
// allocator (pieces in the arena are left alone, pieces that did not fit are freed), then
// `release` it, which recycles the whole arena at once. Nothing allocated from it may be used
// after release. `try_alloc` takes 16-byte-aligned memory from the arena, or returns NULL when
// it does not fit (the caller allocates elsewhere; the arena grows for its next use).
ProtobufCAllocator *swerve_scratch_acquire(void);
void *swerve_scratch_try_alloc(ProtobufCAllocator *allocator, size_t size);
void swerve_scratch_release(ProtobufCAllocator *allocator);

// An allocator that passes each request on to `inner` (NULL: malloc) until `limit` bytes have
// been taken in all, and fails every request after that; protobuf-c then refuses the message.
// Unpacking with it bounds what a message can make the decoder allocate: a few bytes of wire
// can otherwise declare a large struct each (an empty sub-message is 2 bytes, its struct ~90).
// `allocator` is the first member: pass `&b->allocator`, and free with the same one.
typedef struct {
    ProtobufCAllocator allocator;
    ProtobufCAllocator *inner;
    size_t limit;
    size_t used;
    int refused;  // set once a request was failed
} swerve_bounded_allocator;
void swerve_bounded_init(swerve_bounded_allocator *b, ProtobufCAllocator *inner, size_t limit);
#endif
