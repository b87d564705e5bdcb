/* sattn bench-gemm: oneDNN against OpenBLAS sgemm on the forward matrix products of the
 * bench-train configs. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "cli.h"
#include "opts.h"

static const cli_cmd BENCH_GEMM = {
    "bench-gemm", NULL,
    "GFLOP/s of oneDNN and OpenBLAS sgemm (median of 7) on the forward matrix products of\n"
    "the bench-train configs (M = B*T rows).",
    NULL};

/* out(M,N) = A(M,K) W(N,K)^T as in matmul_forward: the GFLOP/s of each library. */
static double time_gemm(int lib, int M, int N, int K, const float *A, const float *W, float *out,
                        int runs) {
    double t[64];
    for (int r = 0; r < runs + 1; r++) {
        double t0 = time_now();
        if (lib == 0) nn_sgemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, out, N);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, out, N);
        if (r > 0) t[r - 1] = time_now() - t0; /* first call warms up */
    }
    return 2.0 * M * N * K / median_sort(t, runs) / 1e9;
}

int cmd_bench_gemm(int argc, char **argv) {
    int r = cli_parse(&BENCH_GEMM, NULL, 0, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("threads %d, OPENBLAS_CORETYPE=%s\n", omp_get_max_threads(), ct ? ct : "(unset)");
    printf("%-5s %-8s %6s %6s %6s %10s %10s\n", "cfg", "gemm", "M", "N", "K", "oneDNN", "OpenBLAS");
    for (int i = 0; i < BENCH_NCONFIGS; i++) {
        const bench_cfg *b = &BENCH_CONFIGS[i];
        int M = b->B * b->T, C = b->C, Vp = gpt_padded_vocab(b->V);
        struct { const char *name; int N, K; } g[] = {
            {"qkv", 3 * C, C}, {"attproj", C, C}, {"fc", 4 * C, C}, {"fcproj", C, 4 * C}, {"head", Vp, C}};
        for (size_t j = 0; j < sizeof g / sizeof g[0]; j++) {
            float *A = xmalloc((size_t)M * g[j].K * 4), *W = xmalloc((size_t)g[j].N * g[j].K * 4);
            float *O = xmalloc((size_t)M * g[j].N * 4);
            for (size_t k = 0; k < (size_t)M * g[j].K; k++) A[k] = (float)(k % 7) * 0.1f;
            for (size_t k = 0; k < (size_t)g[j].N * g[j].K; k++) W[k] = (float)(k % 5) * 0.1f;
            double d = time_gemm(0, M, g[j].N, g[j].K, A, W, O, 7);
            double o = time_gemm(1, M, g[j].N, g[j].K, A, W, O, 7);
            printf("%-5s %-8s %6d %6d %6d %10.1f %10.1f\n", b->name, g[j].name, M, g[j].N, g[j].K, d, o);
            free(A);
            free(W);
            free(O);
        }
    }
    return 0;
}
