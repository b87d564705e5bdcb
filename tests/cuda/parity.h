/* What the parity test files share (tests/cuda/parity.c has the rule and main). */
#ifndef SATTN_TESTS_CUDA_PARITY_H
#define SATTN_TESTS_CUDA_PARITY_H

#include <stddef.h>

#include "sattn/cuda_attn.h"
#include "sattn/rng.h"

#define TOL 1e-4

typedef struct {
    sa_cuda *g;
    int fails, checks, near_rows, rows;
    rng_t rng;
} ctx;

/* x[i] uniform in [-sqrt(3), sqrt(3)) (unit variance). */
void fill(float *x, size_t n, rng_t *r);
/* One check line: ok when err <= TOL and no NaN. */
void report(ctx *c, const char *what, double err, int nan);
/* rel = max|gpu - cpu| / max|cpu| over n, reported. */
void check_close(ctx *c, const char *what, const float *gpu, const float *cpu, size_t n);
/* The same relative to max(scale, max|cpu|): for a part of a larger tensor whose own values
 * can all be zero (a gradient part that is exactly 0 compares its rounding noise to the
 * whole gradient's scale). */
void check_close_scaled(ctx *c, const char *what, const float *gpu, const float *cpu, size_t n, double scale);
/* A device copy of h. */
void *dup_dev(ctx *c, const void *h, size_t bytes);

/* The tblock kernels (parity_tblock.c). */
void parity_tblock(ctx *c, int quick);
/* The shared indexer's bf16 kernels (parity_lindex.c). */
void parity_lindex(ctx *c, int quick);

#endif
