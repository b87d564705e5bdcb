/* blas_shim: dnnl_sgemm and cblas_sgemm as plain OpenMP loops, linked instead of oneDNN
 * and OpenBLAS into the portable CUDA build (`make cuda-portable`), so its binaries run
 * on a GPU machine that has neither library (the parity test's CPU references are
 * small). Never part of the normal build: src/cuda/portable is outside its wildcard.
 * Row-major like dnnl_sgemm: C = alpha op(A) op(B) + beta C, op(A) M x K, op(B) K x N;
 * beta == 0 overwrites C (NaN in C does not survive), as the libraries do. */
#include <stdint.h>

static void gemm_rm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
#pragma omp parallel for schedule(static) if (M * N * K > 65536)
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        for (int64_t k = 0; k < K; k++) {
            float a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
            if (!tb) {
                const float *b = B + k * ldb;
                for (int64_t j = 0; j < N; j++) c[j] += a * b[j];
            } else {
                for (int64_t j = 0; j < N; j++) c[j] += a * B[j * ldb + k];
            }
        }
    }
}

int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gemm_rm(transa == 'T' || transa == 't', transb == 'T' || transb == 't', M, N, K, alpha, A, lda, B, ldb, beta, C,
            ldc);
    return 0; /* dnnl_success */
}

/* CBLAS enums: RowMajor 101, ColMajor 102, NoTrans 111, Trans 112. */
void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    if (order == 101) gemm_rm(ta == 112, tb == 112, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else gemm_rm(tb == 112, ta == 112, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc); /* C^T = B^T A^T */
}
