// Declarations shared between CSwerveKernels' source files (not part of the module's API).
#ifndef SWK_KERNELS_INTERNAL_H
#define SWK_KERNELS_INTERNAL_H

/// The best supported variant (SWK_ISA_*) at or below `isa`; SWK_ISA_AUTO means the best.
int swk_isa_resolve(int isa);

#endif
