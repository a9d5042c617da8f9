#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
#include <cblas.h>
// OpenBLAS's own thread pool; Swerve runs one BLAS call per worker thread.
void openblas_set_num_threads(int num_threads);
#endif
