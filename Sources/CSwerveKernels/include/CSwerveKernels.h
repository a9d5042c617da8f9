#ifndef CSWERVEKERNELS_H
#define CSWERVEKERNELS_H
// Hand-vectorized kernels for the inference core (packed GEMM with fused epilogues).
#endif
