/* peak: register-only FMA chains for the FP32 peak (include/sattn/peak.h). */
#include "sattn/peak.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/core.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

/* The build's vector: lanes, chains (FMA latency x pipes, within the register file) and the
 * FMA itself. The scalar fallback keeps 4-lane arrays the compiler may or may not vectorise:
 * its peak is what this build's plain C can reach. */
#if defined(__AVX512F__)
#define PK_ISA "avx512f"
#define PK_LANES 16
#define PK_CHAINS 24
typedef __m512 pk_vec;
#define PK_SET(x) _mm512_set1_ps(x)
#define PK_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#elif defined(__AVX2__) && defined(__FMA__)
#define PK_ISA "avx2+fma"
#define PK_LANES 8
#define PK_CHAINS 12
typedef __m256 pk_vec;
#define PK_SET(x) _mm256_set1_ps(x)
#define PK_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#else
#define PK_ISA "scalar"
#define PK_LANES 4
#define PK_CHAINS 12
typedef struct {
    float v[4];
} pk_vec;
static pk_vec PK_SET(float x) { return (pk_vec){{x, x, x, x}}; }
static pk_vec PK_FMA(pk_vec a, pk_vec b, pk_vec c) {
    for (int l = 0; l < 4; l++) a.v[l] = a.v[l] * b.v[l] + c.v[l];
    return a;
}
#endif

/* One vector of base + l/1024 per lane l, and a vector's lanes summed: the same for every
 * ISA, through the vector's bytes (pk_vec is PK_LANES packed floats in each of them). */
static pk_vec pk_init(float base) {
    float v[PK_LANES];
    for (int l = 0; l < PK_LANES; l++) v[l] = base + (float)l / 1024.0f;
    pk_vec x;
    memcpy(&x, v, sizeof x);
    return x;
}
static double pk_sum(pk_vec x) {
    float v[PK_LANES];
    memcpy(v, &x, sizeof v);
    double s = 0;
    for (int l = 0; l < PK_LANES; l++) s += v[l];
    return s;
}

int peak_lanes(void) { return PK_LANES; }
int peak_chains(void) { return PK_CHAINS; }
const char *peak_isa(void) { return PK_ISA; }
double peak_loop_flops(long iters) { return 2.0 * PK_LANES * PK_CHAINS * (double)iters; }

/* acc_a = acc_a * one + one, PK_CHAINS independent chains, unrolled so that every
 * accumulator lives in a register (no memory traffic in the loop). */
double peak_loop(long iters, float one) {
    pk_vec acc[PK_CHAINS], m = PK_SET(one);
#pragma GCC unroll 32
    for (int a = 0; a < PK_CHAINS; a++) acc[a] = pk_init((float)a);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 32
        for (int a = 0; a < PK_CHAINS; a++) acc[a] = PK_FMA(acc[a], m, m);
    }
    double s = 0;
    for (int a = 0; a < PK_CHAINS; a++) s += pk_sum(acc[a]);
    return s;
}

/* Wall seconds of one parallel run: every thread runs iters iterations between barriers. */
static double timed_run(long iters, float one, volatile double *sink) {
    double t0 = 0, t1 = 0;
#pragma omp parallel
    {
#pragma omp barrier
#pragma omp master
        t0 = omp_get_wtime();
        double s = peak_loop(iters, one);
#pragma omp barrier
#pragma omp master
        t1 = omp_get_wtime();
        if (s == 0.5) *sink = s; /* never true: keeps the result alive */
    }
    return t1 - t0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

peak_result peak_measure(int runs) {
    static volatile float ONE = 1.0f;
    volatile double sink = 0;
    float one = ONE;
    peak_result r = {0};
    r.threads = omp_get_max_threads(), r.lanes = PK_LANES, r.chains = PK_CHAINS, r.isa = PK_ISA;
    r.runs = runs < 1 ? 1 : runs;
    long iters = 1L << 14;
    while (iters < (1L << 34) && timed_run(iters, one, &sink) < 0.02) iters *= 2; /* ~20-40 ms */
    double *g = xmalloc(sizeof(double) * (size_t)r.runs);
    for (int i = 0; i < r.runs; i++) g[i] = r.threads * peak_loop_flops(iters) / timed_run(iters, one, &sink) / 1e9;
    qsort(g, (size_t)r.runs, sizeof(double), cmp_double);
    r.gflops = r.runs % 2 ? g[r.runs / 2] : 0.5 * (g[r.runs / 2 - 1] + g[r.runs / 2]);
    r.gflops_max = g[r.runs - 1];
    r.iters = iters;
    free(g);
    return r;
}
