#include "CSwerveKernels.h"
