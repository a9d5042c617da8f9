#ifndef CSWERVEPROTO_H
#define CSWERVEPROTO_H
// Umbrella header for the protobuf-c code generated from protos/ (scripts/gen-protos.sh).
#include <protobuf-c/protobuf-c.h>
#include "grpc_service.pb-c.h"
#include "model_config.pb-c.h"
#include "health.pb-c.h"
#include "onnx.pb-c.h"
#include "swerve_serving.pb-c.h"
#include "swerve_training.pb-c.h"

// `protobuf_c_empty_string` is an unsized extern array that Swift cannot import;
// unset string fields point at it.
static inline const char *swerve_pb_empty_string(void) { return protobuf_c_empty_string; }
static inline int swerve_pb_is_empty_string(const char *s) { return s == protobuf_c_empty_string; }
#endif
