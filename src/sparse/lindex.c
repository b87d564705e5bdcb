/* lindex: the shared (per-layer) lightning indexer: parameters, bf16/float32 score
 * kernels, top-k selection (lindex.h; docs/indexer.md). Training is in lindex_train.c. */
#include "sattn/lindex.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/nn.h"

/* ---- precision ---- */

int lindex_cpu_bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512f");
}

lindex_prec lindex_resolve(lindex_prec p) {
    if (p == LINDEX_AUTO) {
        const char *env = getenv("SATTN_INDEXER_PREC");
        p = env && !strcmp(env, "f32") ? LINDEX_F32 : LINDEX_BF16;
    }
    return p == LINDEX_BF16 && lindex_cpu_bf16() ? LINDEX_BF16 : LINDEX_F32;
}

const char *lindex_prec_name(lindex_prec p) {
    return p == LINDEX_BF16 ? "bf16" : p == LINDEX_F32 ? "f32" : "auto";
}

/* ---- parameters ---- */

lindex_dims lindex_dims_of(const head_spec *s, int H, int hs) {
    return (lindex_dims){H, hs, H * hs, s->rank, s->iheads};
}

size_t lindex_param_count(const lindex_dims *d) {
    return ((size_t)d->J * d->r + d->r + d->J) * d->C + d->J;
}

/* Row-blocked copy between the layer's (rows, C) matrix and head h's (rows, hs) slice. */
static void copy_cols(float *dst, int ldd, const float *src, int lds, int rows, int n) {
    for (int i = 0; i < rows; i++) memcpy(dst + (size_t)i * ldd, src + (size_t)i * lds, (size_t)n * sizeof(float));
}

void lindex_gather(const sparse_heads *sh, int l, float *w) {
    const head_spec *s = &sh->h[(size_t)l * sh->heads].spec;
    lindex_dims d = lindex_dims_of(s, sh->heads, sh->hs);
    int rows = d.J * d.r + d.r + d.J, hs = d.hs;
    float *bw = w + (size_t)rows * d.C;
    memset(bw, 0, (size_t)d.J * sizeof(float));
    for (int h = 0; h < d.H; h++) {
        const float *p = sh->h[(size_t)l * sh->heads + h].params;
        copy_cols(w + (size_t)h * hs, d.C, p, hs, rows, hs);
        for (int j = 0; j < d.J; j++) bw[j] += p[(size_t)rows * hs + j];
    }
}

void lindex_scatter(sparse_heads *sh, int l, const float *w) {
    const head_spec *s = &sh->h[(size_t)l * sh->heads].spec;
    lindex_dims d = lindex_dims_of(s, sh->heads, sh->hs);
    int rows = d.J * d.r + d.r + d.J, hs = d.hs;
    for (int h = 0; h < d.H; h++) {
        float *p = sh->h[(size_t)l * sh->heads + h].params;
        copy_cols(p, hs, w + (size_t)h * hs, d.C, rows, hs);
        for (int j = 0; j < d.J; j++) p[(size_t)rows * hs + j] = h ? 0.0f : w[(size_t)rows * d.C + j];
    }
}

void lindex_init(const lindex_dims *d, float *w, rng_t *rng) {
    size_t C = (size_t)d->C, proj = ((size_t)d->J * d->r + d->r) * C;
    float sd = 1.0f / sqrtf((float)d->C);
    for (size_t i = 0; i < proj; i++) w[i] = sd * rng_normal(rng);
    for (size_t i = 0; i < (size_t)d->J * C; i++) w[proj + i] = 0.02f * rng_normal(rng);
    for (int j = 0; j < d->J; j++) w[proj + (size_t)d->J * C + j] = 1.0f;
}

void lindex_init_heads(sparse_heads *sh, rng_t *rng) {
    for (int l = 0; l < sh->layers; l++) {
        const head_spec *s = &sh->h[(size_t)l * sh->heads].spec;
        if (!s->shared) continue;
        lindex_dims d = lindex_dims_of(s, sh->heads, sh->hs);
        float *w = xmalloc(lindex_param_count(&d) * sizeof(float));
        lindex_init(&d, w, rng);
        lindex_scatter(sh, l, w);
        free(w);
    }
}

/* ---- scores ---- */

enum { KB = 16, RG = 4 }; /* keys per packed block (one 512-bit vector), query rows per group */

typedef struct {
    float *Qt, *Kt, *W, *A, *R, *Kf; /* Qt (T, J r) scaled by 1/sqrt(r); Kt (T, r); W (T, J);
                                      * A a group's dot tile, R its score rows (RG, keys) */
    uint32_t *Qb, *Kb;           /* bf16 pairs: Qb (T J, np); Kb (nkb, np, KB) */
    int np, nkb;                 /* pairs per row (r rounded up to even / 2); key blocks */
} lix_bufs;

/* Keys padded to a multiple of 2 KB: the kernels take two blocks a step. */
static int key_blocks(int T) { return (T + 2 * KB - 1) / (2 * KB) * 2; }

size_t lindex_work_floats(const lindex_dims *d, int T) {
    size_t t = (size_t)T, J = (size_t)d->J, r = (size_t)d->r, np = (r + 1) / 2;
    size_t keys = (size_t)key_blocks(T) * KB;
    return t * (J * r + r + J) + 2 * RG * keys + keys * 2 * np + t * J * np + 64;
}

static lix_bufs lix_carve(const lindex_dims *d, int T, float *work) {
    lix_bufs b;
    size_t t = (size_t)T, J = (size_t)d->J, r = (size_t)d->r;
    b.np = (d->r + 1) / 2, b.nkb = key_blocks(T);
    size_t keys = (size_t)b.nkb * KB;
    b.Qt = work, b.Kt = b.Qt + t * J * r, b.W = b.Kt + t * r, b.A = b.W + t * J;
    b.R = b.A + RG * keys;
    b.Kf = b.R + RG * keys;                            /* float path: (nkb, r, KB) */
    b.Kb = (uint32_t *)b.Kf;                           /* bf16 path: the same space */
    b.Qb = (uint32_t *)(b.Kf + keys * 2 * (size_t)b.np); /* Kf needs keys r <= keys 2 np */
    return b;
}

/* Qt = q Wq^T / sqrt(r) (T, J r), Kt = k Wk^T (T, r), W = q Ww^T + bw (T, J). */
static void project(const lindex_dims *d, const float *w, const float *q, const float *k, int ld,
                    int T, lix_bufs *b) {
    int J = d->J, r = d->r, C = d->C;
    const float *Wq = w, *Wk = Wq + (size_t)J * r * C, *Ww = Wk + (size_t)r * C, *bw = Ww + (size_t)J * C;
    nn_sgemm(0, 1, T, J * r, C, 1.0f / sqrtf((float)r), q, ld, Wq, C, 0.0f, b->Qt, J * r);
    nn_sgemm(0, 1, T, r, C, 1.0f, k, ld, Wk, C, 0.0f, b->Kt, r);
    nn_sgemm(0, 1, T, J, C, 1.0f, q, ld, Ww, C, 0.0f, b->W, J);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < J; j++) b->W[(size_t)t * J + j] += bw[j];
}

/* float32 -> bf16, round to nearest even (finite inputs). */
static uint32_t bf16_rne(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* Element i of an r-vector as a pair word's half (0 past r: the odd rank's padding). */
static uint32_t pair_of(const float *v, int r, int p) {
    uint32_t lo = bf16_rne(v[2 * p]), hi = 2 * p + 1 < r ? bf16_rne(v[2 * p + 1]) : 0;
    return lo | hi << 16;
}

/* bf16 packs: Qb row (t, j) = np pair words of qt_j(t); Kb block kb, pair p = the 16 keys'
 * pair words (lane x = key kb KB + x), zero past T. */
static void pack_bf16(const lindex_dims *d, int T, lix_bufs *b) {
    int J = d->J, r = d->r, np = b->np;
    for (size_t i = 0; i < (size_t)T * J; i++)
        for (int p = 0; p < np; p++) b->Qb[i * np + p] = pair_of(b->Qt + i * r, r, p);
    for (int kb = 0; kb < b->nkb; kb++)
        for (int p = 0; p < np; p++)
            for (int x = 0; x < KB; x++) {
                int s = kb * KB + x;
                b->Kb[((size_t)kb * np + p) * KB + x] = s < T ? pair_of(b->Kt + (size_t)s * r, r, p) : 0;
            }
}

/* float pack: Kf block kb = (r, KB), dimension-major, zero past T. */
static void pack_f32(const lindex_dims *d, int T, lix_bufs *b) {
    int r = d->r;
    for (int kb = 0; kb < b->nkb; kb++)
        for (int i = 0; i < r; i++)
            for (int x = 0; x < KB; x++) {
                int s = kb * KB + x;
                b->Kf[((size_t)kb * r + i) * KB + x] = s < T ? b->Kt[(size_t)s * r + i] : 0.0f;
            }
}

/* A[i][s] = qt(row i) . kt(s) for RG query rows (q[i]: np pair words each) and the keys of
 * blocks 0..nkb-1 (nkb even), bf16 products summed in float32:
 *   lane x of block kb += q[2p] kt_x[2p] + q[2p+1] kt_x[2p+1]   (vdpbf16ps, p = 0..np-1)
 * Two key blocks a step: 8 independent accumulators hide the instruction's latency. */
__attribute__((target("avx512f,avx512bf16")))
static void dots_bf16(const uint32_t *const q[RG], const uint32_t *Kb, int np, int nkb, float *A, int lda) {
    for (int kb = 0; kb < nkb; kb += 2) {
        const uint32_t *k0 = Kb + (size_t)kb * np * KB, *k1 = k0 + (size_t)np * KB;
        __m512 a[2 * RG];
        for (int i = 0; i < 2 * RG; i++) a[i] = _mm512_setzero_ps();
        for (int p = 0; p < np; p++) {
            __m512bh v0 = (__m512bh)_mm512_loadu_si512(k0 + (size_t)p * KB);
            __m512bh v1 = (__m512bh)_mm512_loadu_si512(k1 + (size_t)p * KB);
            for (int i = 0; i < RG; i++) {
                __m512bh qb = (__m512bh)_mm512_set1_epi32((int)q[i][p]);
                a[i] = _mm512_dpbf16_ps(a[i], v0, qb);
                a[RG + i] = _mm512_dpbf16_ps(a[RG + i], v1, qb);
            }
        }
        for (int i = 0; i < RG; i++) {
            _mm512_storeu_ps(A + (size_t)i * lda + (size_t)kb * KB, a[i]);
            _mm512_storeu_ps(A + (size_t)i * lda + (size_t)(kb + 1) * KB, a[RG + i]);
        }
    }
}

/* The same in float32 (the fallback): A[i][s] = sum_d q[i][d] kt_s[d], d in order. Plain C
 * the compiler vectorises over the 16 keys of a block. */
static void dots_f32(const float *const q[RG], const float *Kf, int r, int nkb, float *A, int lda) {
    for (int kb = 0; kb < nkb; kb++) {
        float acc[RG][KB] = {{0}};
        const float *kp = Kf + (size_t)kb * r * KB;
        for (int d = 0; d < r; d++)
            for (int i = 0; i < RG; i++)
                for (int x = 0; x < KB; x++) acc[i][x] += q[i][d] * kp[(size_t)d * KB + x];
        for (int i = 0; i < RG; i++) memcpy(A + (size_t)i * lda + (size_t)kb * KB, acc[i], sizeof acc[i]);
    }
}

/* Scores of query rows t0 .. t0+nr-1 (nr <= RG) into S (row i at S + i lds, valid on
 * s <= t0+i): per indexer head j the dot tile A (RG x the keys up to the group's last
 * query, rounded up to 2 KB), then S += w_j relu(A) (S = for j = 0).
 * Returns the multiply-adds run. */
static uint64_t score_group(const lindex_dims *d, const lix_bufs *b, int bf16, int t0, int nr,
                            float *S, int lds) {
    int J = d->J, r = d->r, last = t0 + nr - 1, nkb = (last / (2 * KB) + 1) * 2, nk = nkb * KB;
    float *A = b->A;
    for (int j = 0; j < J; j++) {
        if (bf16) {
            const uint32_t *q[RG];
            for (int i = 0; i < RG; i++) q[i] = b->Qb + ((size_t)(t0 + (i < nr ? i : 0)) * J + j) * b->np;
            dots_bf16(q, b->Kb, b->np, nkb, A, nk);
        } else {
            const float *q[RG];
            for (int i = 0; i < RG; i++) q[i] = b->Qt + ((size_t)(t0 + (i < nr ? i : 0)) * J + j) * r;
            dots_f32(q, b->Kf, r, nkb, A, nk);
        }
        for (int i = 0; i < nr; i++) {
            float *row = S + (size_t)i * lds, w = b->W[(size_t)(t0 + i) * J + j];
            const float *a = A + (size_t)i * nk;
            if (j == 0) memset(row, 0, (size_t)(t0 + i + 1) * sizeof(float));
            vec_relu_axpy(row, w, a, t0 + i + 1);
        }
    }
    return (uint64_t)RG * nk * (uint64_t)(bf16 ? 2 * b->np : r) * J;
}

/* Projections and packs for precision p (resolved). */
static lix_bufs prepare(const lindex_dims *d, const float *w, const float *q, const float *k, int ld,
                        int T, float *work, int bf16) {
    lix_bufs b = lix_carve(d, T, work);
    project(d, w, q, k, ld, T, &b);
    if (bf16) pack_bf16(d, T, &b);
    else pack_f32(d, T, &b);
    return b;
}

void lindex_scores(const lindex_dims *d, const float *w, const float *q, const float *k, int ld,
                   int T, float *S, float *work, lindex_prec p) {
    int bf16 = lindex_resolve(p) == LINDEX_BF16;
    lix_bufs b = prepare(d, w, q, k, ld, T, work, bf16);
    for (int t0 = 0; t0 < T; t0 += RG)
        score_group(d, &b, bf16, t0, T - t0 < RG ? T - t0 : RG, S + (size_t)t0 * T, T);
}

/* Scores then top-k of the rows of group t0 (b's A and R tiles are the caller's). */
static uint64_t select_group(const head_spec *s, const lindex_dims *d, const lix_bufs *b, int bf16, int t0, int T,
                             int kmax, int *idx, float *score, int *count) {
    int nr = T - t0 < RG ? T - t0 : RG, lds = b->nkb * KB;
    uint64_t macs = score_group(d, b, bf16, t0, nr, b->R, lds);
    for (int i = 0; i < nr; i++) {
        int t = t0 + i;
        float *sc = score + (size_t)t * kmax, *row = b->R + (size_t)i * lds;
        int c = selector_topk(row, t + 1, kmax, sc, idx + (size_t)t * kmax);
        if (s->tau > 0.0f) c = selector_dynamic_k(s, row, t + 1, sc, c);
        count[t] = c;
    }
    return macs;
}

/* The row groups run in parallel, each thread on its own A and R tiles (inside an outer
 * parallel loop, hybrid's over the batch, the region has one thread and uses work's). */
void lindex_select(const head_spec *s, const lindex_dims *d, const float *w, const float *q,
                   const float *k, int ld, int T, int *idx, float *score, int *count, float *work,
                   lindex_prec p, op_count *cnt) {
    int bf16 = lindex_resolve(p) == LINDEX_BF16, kmax = selector_kmax(s, T), ng = (T + RG - 1) / RG;
    lix_bufs b = prepare(d, w, q, k, ld, T, work, bf16);
    uint64_t C = (uint64_t)d->C, J = (uint64_t)d->J, r = (uint64_t)d->r;
    op_count_add(cnt, (uint64_t)T * C * (J * r + r + J), 4 * ((uint64_t)T * 2 * C + (J * r + r + J) * C));
    size_t tile = (size_t)RG * b.nkb * KB;
#pragma omp parallel if (ng >= 8 && !omp_in_parallel())
    {
        lix_bufs bt = b;
        float *own = omp_get_num_threads() > 1 ? xmalloc(2 * tile * sizeof(float)) : NULL;
        if (own) bt.A = own, bt.R = own + tile;
        uint64_t macs = 0;
#pragma omp for schedule(dynamic, 4)
        for (int g = 0; g < ng; g++) macs += select_group(s, d, &bt, bf16, g * RG, T, kmax, idx, score, count);
        op_count_add(cnt, macs, 0);
        free(own);
    }
}
