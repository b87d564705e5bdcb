/* emu: a small CPU emulation of the CUDA subset that src/cuda/attn.cu uses, so the
 * kernels' logic can be parity-tested on a machine without a GPU (`make cuda-emu`).
 *
 * Each thread block runs as blockDim cooperative fibers (ucontext) on one host
 * thread; blocks run one after another. __syncthreads() is a block barrier, the warp
 * shuffles / ballots are warp barriers with a data exchange. __shared__ variables are
 * function-scope statics (one block at a time, so every fiber of the block sees the
 * same storage, as on the GPU). A barrier reached by only part of a block or warp
 * aborts with a message (on the GPU that would hang or be undefined).
 *
 * What this does NOT show: timing, occupancy, the memory model between blocks,
 * races that the sequential fiber order happens to hide, sm_90 code generation.
 * It is a logic check, not a GPU verification (docs/cuda.md). */
#ifndef SATTN_CUDA_EMU_H
#define SATTN_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __restrict__

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3 {
    unsigned x, y, z;
};
struct float4 {
    float x, y, z, w;
};

extern uint3 emu_threadIdx, emu_blockIdx;
extern dim3 emu_blockDim, emu_gridDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim

void emu_syncthreads(void);
void emu_syncwarp(void);
/* Every lane of the calling warp passes v; returns the value of lane src (0..31). */
uint64_t emu_warp_exchange(uint64_t v, int src, uint32_t *ballot_out, int pred);
unsigned char *emu_dyn_smem(void);

#define __syncthreads() emu_syncthreads()
#define __syncwarp(...) emu_syncwarp()
#define __threadfence() ((void)0)

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline int emu_lane(void) { return (int)(threadIdx.x & 31u); }
static inline float __shfl_xor_sync(unsigned, float v, int m) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u = (uint32_t)emu_warp_exchange(u, emu_lane() ^ m, NULL, 0);
    float r;
    memcpy(&r, &u, 4);
    return r;
}
static inline float __shfl_sync(unsigned, float v, int src) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u = (uint32_t)emu_warp_exchange(u, src & 31, NULL, 0);
    float r;
    memcpy(&r, &u, 4);
    return r;
}
static inline int __shfl_xor_sync(unsigned, int v, int m) {
    return (int)(uint32_t)emu_warp_exchange((uint32_t)v, emu_lane() ^ m, NULL, 0);
}
static inline unsigned __shfl_xor_sync(unsigned, unsigned v, int m) {
    return (uint32_t)emu_warp_exchange(v, emu_lane() ^ m, NULL, 0);
}
static inline unsigned long long __shfl_xor_sync(unsigned, unsigned long long v, int m) {
    return (unsigned long long)emu_warp_exchange(v, emu_lane() ^ m, NULL, 0);
}
static inline unsigned __shfl_up_sync(unsigned, unsigned v, int d) {
    int src = emu_lane() - d;
    uint32_t r = (uint32_t)emu_warp_exchange(v, src < 0 ? emu_lane() : src, NULL, 0);
    return r;
}
/* All 32 lanes' values of the calling warp (one warp barrier). */
void emu_warp_gather(uint32_t v, uint32_t *all);
static inline unsigned __match_any_sync(unsigned, unsigned v) {
    uint32_t all[32], m = 0;
    emu_warp_gather(v, all);
    for (int l = 0; l < 32; l++) m |= (uint32_t)(all[l] == v) << l;
    return m;
}
static inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
static inline unsigned __ballot_sync(unsigned, int pred) {
    uint32_t b = 0;
    emu_warp_exchange(0, emu_lane(), &b, pred);
    return b;
}
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __float_as_int(float f) {
    int i;
    memcpy(&i, &f, 4);
    return i;
}
static inline unsigned __float_as_uint(float f) {
    unsigned i;
    memcpy(&i, &f, 4);
    return i;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* Fibers are cooperative on one host thread: plain read-modify-write is atomic. */
static inline unsigned atomicAdd(unsigned *p, unsigned v) {
    unsigned o = *p;
    *p = o + v;
    return o;
}
static inline int atomicAdd(int *p, int v) {
    int o = *p;
    *p = o + v;
    return o;
}

/* ---- runtime API subset ---- */
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin, cudaDevAttrMultiProcessorCount };
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor, multiProcessorCount;
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st);
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st);
template <typename F>
cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) {
    return cudaSuccess;
}

/* Runs body once per thread of every block (dynamic shared memory: smem bytes). */
void emu_launch(dim3 grid, dim3 block, size_t smem, std::function<void()> body);

#endif
