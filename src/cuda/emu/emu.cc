/* emu: the fiber scheduler behind emu.h (see there for what it is and is not). */
#include "emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

#include <vector>

uint3 emu_threadIdx, emu_blockIdx;
dim3 emu_blockDim, emu_gridDim;

namespace {

enum { RUN, AT_BLOCK, AT_WARP, DONE };
const size_t STACK = 256 * 1024;

struct fiber {
    ucontext_t ctx;
    int state;
    unsigned tid;
    unsigned gen; /* warp exchanges done */
    char *stack;
};

struct sched {
    ucontext_t main;
    std::vector<fiber> f;
    int cur;
    std::function<void()> *body;
    /* warp exchange: [warp][gen & 1][lane] value, src lane and predicate */
    std::vector<uint64_t> val;
    std::vector<int> src, pred;
    std::vector<unsigned char> dyn;
};

sched S;

[[noreturn]] void fail(const char *what) {
    fprintf(stderr, "cuda-emu: %s (block %u,%u,%u thread %u)\n", what, emu_blockIdx.x, emu_blockIdx.y,
            emu_blockIdx.z, S.cur >= 0 ? S.f[S.cur].tid : 0u);
    abort();
}

void trampoline() {
    (*S.body)();
    S.f[S.cur].state = DONE;
    swapcontext(&S.f[S.cur].ctx, &S.main);
}

void yield_as(int state) {
    fiber &me = S.f[S.cur];
    me.state = state;
    swapcontext(&me.ctx, &S.main);
}

size_t slot(unsigned tid, unsigned gen) {
    unsigned warp = tid / 32, lane = tid % 32;
    return ((size_t)warp * 2 + (gen & 1)) * 32 + lane;
}

} // namespace

void emu_syncthreads(void) { yield_as(AT_BLOCK); }

uint64_t emu_warp_exchange(uint64_t v, int src, uint32_t *ballot, int pred) {
    fiber &me = S.f[S.cur];
    unsigned g = me.gen;
    size_t s = slot(me.tid, g);
    S.val[s] = v, S.src[s] = src, S.pred[s] = pred;
    yield_as(AT_WARP);
    fiber &m2 = S.f[S.cur];
    m2.gen++;
    size_t base = slot(m2.tid - m2.tid % 32, g);
    if (ballot) {
        uint32_t b = 0;
        for (int l = 0; l < 32; l++) b |= (uint32_t)(S.pred[base + l] != 0) << l;
        *ballot = b;
    }
    return S.val[base + (unsigned)src % 32];
}

void emu_warp_gather(uint32_t v, uint32_t *all) {
    fiber &me = S.f[S.cur];
    unsigned g = me.gen;
    size_t s = slot(me.tid, g);
    S.val[s] = v;
    yield_as(AT_WARP);
    fiber &m2 = S.f[S.cur];
    m2.gen++;
    size_t base = slot(m2.tid - m2.tid % 32, g);
    for (int l = 0; l < 32; l++) all[l] = (uint32_t)S.val[base + l];
}

void emu_syncwarp(void) { emu_warp_exchange(0, 0, NULL, 0); }

unsigned char *emu_dyn_smem(void) { return S.dyn.data(); }

void emu_launch(dim3 grid, dim3 block, size_t smem, std::function<void()> body) {
    unsigned nt = block.x * block.y * block.z;
    if (block.y != 1 || block.z != 1) fail("only 1-D thread blocks are emulated");
    if (nt % 32) fail("block size must be a multiple of 32");
    if (nt > 1024) fail("more than 1024 threads per block");
    if (S.f.size() < nt) {
        size_t old = S.f.size();
        S.f.resize(nt);
        for (size_t i = old; i < nt; i++) S.f[i].stack = (char *)malloc(STACK);
    }
    S.val.assign((size_t)nt * 2, 0);
    S.src.assign((size_t)nt * 2, 0);
    S.pred.assign((size_t)nt * 2, 0);
    S.dyn.assign(smem + 16, 0xFF); /* like uninitialised shared memory: NaN floats */
    S.body = &body;
    emu_blockDim = block, emu_gridDim = grid;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                emu_blockIdx = {bx, by, bz};
                for (unsigned t = 0; t < nt; t++) {
                    fiber &f = S.f[t];
                    f.tid = t, f.state = RUN, f.gen = 0;
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack;
                    f.ctx.uc_stack.ss_size = STACK;
                    f.ctx.uc_link = NULL;
                    makecontext(&f.ctx, trampoline, 0);
                }
                for (;;) {
                    for (unsigned t = 0; t < nt; t++) {
                        if (S.f[t].state != RUN) continue;
                        S.cur = (int)t;
                        emu_threadIdx = {t, 0, 0};
                        swapcontext(&S.main, &S.f[t].ctx);
                    }
                    S.cur = -1;
                    /* everyone is done or at a barrier: release what can be released */
                    int released = 0, done = 0, at_block = 0;
                    for (unsigned w = 0; w < nt / 32; w++) {
                        int n_warp = 0, n_done = 0;
                        for (unsigned l = 0; l < 32; l++) {
                            int st = S.f[w * 32 + l].state;
                            n_warp += st == AT_WARP, n_done += st == DONE;
                        }
                        if (n_warp && n_warp + n_done != 32) fail("warp shuffle/ballot reached by part of a warp");
                        if (n_warp && n_done) fail("warp shuffle/ballot after some lanes returned");
                        if (n_warp == 32) {
                            for (unsigned l = 0; l < 32; l++) S.f[w * 32 + l].state = RUN;
                            released = 1;
                        }
                    }
                    if (released) continue;
                    for (unsigned t = 0; t < nt; t++) done += S.f[t].state == DONE, at_block += S.f[t].state == AT_BLOCK;
                    if (done == (int)nt) break;
                    if (at_block && done) fail("__syncthreads reached after some threads returned");
                    if (at_block != (int)nt) fail("barrier divergence");
                    for (unsigned t = 0; t < nt; t++) S.f[t].state = RUN;
                }
            }
}

/* ---- runtime API ---- */

struct emu_event {
    double t;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int *n) { return *n = 1, cudaSuccess; }
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cuda-emu (CPU emulation)");
    p->totalGlobalMem = (size_t)1 << 32, p->major = 9, p->minor = 0, p->multiProcessorCount = 1;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int) {
    *v = a == cudaDevAttrMaxSharedMemoryPerBlockOptin ? 232448 : 1;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return *s = NULL, cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t *e) { return *e = new emu_event{0}, cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { return delete e, cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { return e->t = now_ms(), cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    return *ms = (float)(b->t - a->t), cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = aligned_alloc(256, (n + 255) / 256 * 256 + 256);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p) { return free(p), cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) {
    return memcpy(d, s, n), cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { return memset(d, v, n), cudaSuccess; }
