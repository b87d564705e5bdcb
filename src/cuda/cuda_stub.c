/* cuda_stub: what a build without CUDA (no -DSATTN_CUDA) links for cuda_attn.h's entry
 * points that callers use to find out — sa_cuda_built() is 0 and sa_cuda_open() fails
 * with "built without CUDA: run make cuda". The kernels themselves are src/cuda/attn.cu. */
#include "sattn/cuda_attn.h"

#ifndef SATTN_CUDA
int sa_cuda_built(void) { return 0; }

int sa_cuda_open(sa_cuda **ctx, sattn_err *e) {
    *ctx = NULL;
    return err_set(e, "built without CUDA: run make cuda (needs nvcc) and use build-cuda/sattn");
}

void sa_cuda_close(sa_cuda *ctx) { (void)ctx; }
#else
typedef int cuda_stub_unused; /* ISO C: a translation unit must not be empty */
#endif
