/* sa_cuda: what the .cu files in src/cuda share — real CUDA or the CPU emulation (emu/emu.h),
 * the checked-call macro and the launch macro. */
#ifndef SATTN_SA_CUDA_H
#define SATTN_SA_CUDA_H

#ifdef SA_EMU
#include "emu/emu.h"
#define SA_LAUNCH(kern, grid, block, smem, stream, ...) \
    emu_launch((grid), (block), (smem), [&]() { kern(__VA_ARGS__); })
#define SA_DYN_SMEM(name) unsigned char *name = emu_dyn_smem()
#else
#include <cuda_runtime.h>
#define SA_LAUNCH(kern, grid, block, smem, stream, ...) \
    kern<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define SA_DYN_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

#include <stdio.h>
#include <stdlib.h>

/* Every CUDA runtime call goes through this: on error, file, line, call and message. */
#define CK(call)                                                                              \
    do {                                                                                      \
        cudaError_t err_ = (call);                                                            \
        if (err_ != cudaSuccess) {                                                            \
            fprintf(stderr, "sattn: CUDA error at %s:%d: %s: %s\n", __FILE__, __LINE__, #call, \
                    cudaGetErrorString(err_));                                                \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)
/* After a kernel launch: launch-configuration errors now, execution errors at the next sync. */
#define CK_LAUNCH() CK(cudaGetLastError())

#endif
