/* libFuzzer harness: heads_load (src/sparse/heads.c), sparse heads files. Each input is
 * tried as it is, with its checksum recomputed (fuzz_common.h), and "reshaped": every
 * head's parameter counts made to agree with its (mutated) spec, its parameters cut or
 * zero-padded to them, the sparse-head count and the checksum recomputed, so mutated specs
 * get past the count checks. What the reader accepts is run the way distill and eval run
 * it: every sparse head (whatever its parameters: NaN, Inf, 1e38) selects keys and
 * computes its output on one random sequence of the file's max_seq positions (up to
 * FZ_USE_MAX_SEQ, to keep an input fast). The layout follows include/sattn/heads.h: update reshape() with it. */
#include "fuzz_common.h"

#include "sattn/heads.h"
#include "sattn/rng.h"

#ifndef FZ_USE_MAX_SEQ
#define FZ_USE_MAX_SEQ 64
#endif

static void run_head(const sparse_head *sp, int hs, int max_seq) {
    int T = max_seq, ld = 3 * hs;
    float *qkv = malloc((size_t)T * ld * sizeof(float));
    FZ_CHECK(qkv, "out of memory");
    rng_t r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)T * ld; i++) qkv[i] = rng_normal(&r);
    head_scratch s;
    head_scratch_init(&s, &sp->spec, hs, T, max_seq);
    head_scratch_select(&s, &sp->spec, sp->params, hs, max_seq, qkv, qkv + hs, ld, T);
    for (int t = 0; t < T; t++) {
        FZ_CHECK(s.count[t] >= 0 && s.count[t] <= s.kmax, "query %d selects %d keys (kmax %d)", t,
                 s.count[t], s.kmax);
        for (int j = 0; j < s.count[t]; j++) {
            int k = s.idx[(size_t)t * s.kmax + j];
            FZ_CHECK(k >= 0 && k <= t, "query %d selects key %d (not causal)", t, k);
        }
    }
    headfn_forward(&sp->spec, sp->params + sp->n_sel, hs, s.kmax, qkv, qkv + hs, qkv + 2 * hs, ld,
                   T, s.idx, s.count, s.out, hs, s.cache);
    head_scratch_free(&s);
    free(qkv);
}

static void try_load(const uint8_t *data, size_t n) {
    const char *path = fz_write("heads", data, n);
    sparse_heads sh;
    sattn_err e = {{0}};
    if (heads_load(path, &sh, NULL, &e) != 0) {
        fz_check_err(&e, "heads_load");
        return;
    }
    size_t nheads = (size_t)sh.layers * (size_t)sh.heads;
    for (size_t i = 0; i < nheads; i++) {
        const sparse_head *sp = &sh.h[i];
        sattn_err se;
        FZ_CHECK(head_spec_check(&sp->spec, &se) == 0, "head %zu: accepted a bad spec: %s", i, se.msg);
        if (sp->spec.sel == SEL_DENSE) continue;
        FZ_CHECK(sp->params, "head %zu: sparse without parameters", i);
        if (sh.max_seq <= FZ_USE_MAX_SEQ)
            run_head(sp, sh.hs, sh.max_seq);
    }
    sparse_heads_free(&sh);
}

typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put(buf *o, const void *p, size_t n) {
    if (o->n + n > o->cap) {
        o->cap = 2 * (o->n + n);
        o->b = realloc(o->b, o->cap);
        FZ_CHECK(o->b, "out of memory");
    }
    if (p) memcpy(o->b + o->n, p, n);
    else memset(o->b + o->n, 0, n);
    o->n += n;
}

/* Header words: [2] layers [3] heads [4] hs [5] max_seq [8] sparse heads; then per head
 * 16 spec words (sel, fn, k, k_min, tau bits, rank, iheads, block, nblocks, bounds, hidden,
 * mlp_q, mlp_logits, 0, 0, 0) and, unless dense, uint64 n_sel, n_fn and the floats.
 * NULL when the input is not a heads header of a small shape, or runs out, or a spec is bad. */
static uint8_t *reshape(const uint8_t *d, size_t n, size_t *out_n) {
    if (n < 256 || fz_rd32(d, 0) != HEADS_MAGIC || fz_rd32(d, 1) != HEADS_VERSION) return NULL;
    int32_t L = (int32_t)fz_rd32(d, 2), H = (int32_t)fz_rd32(d, 3), hs = (int32_t)fz_rd32(d, 4),
            T = (int32_t)fz_rd32(d, 5);
    if (L < 1 || H < 1 || L > 64 || H > 64 || L * H > 64 || hs < 1 || hs > 256 || T < 1 || T > 4096) return NULL;
    buf o = {0};
    put(&o, d, 256);
    size_t off = 256;
    int n_sparse = 0;
    for (int i = 0; i < L * H; i++) {
        if (n - off < 64) goto fail;
        const uint8_t *w = d + off;
        int32_t v[13];
        for (int j = 0; j < 13; j++) v[j] = (int32_t)fz_rd32(w, (size_t)j);
        head_spec sp = {.sel = (sel_kind)v[0], .fn = (hfn_kind)v[1], .k = v[2], .k_min = v[3],
                        .rank = v[5], .iheads = v[6], .block = v[7], .nblocks = v[8],
                        .bounds = v[9], .hidden = v[10], .mlp_q = v[11], .mlp_logits = v[12]};
        memcpy(&sp.tau, &v[4], 4);
        sattn_err e;
        if (head_spec_check(&sp, &e)) goto fail;
        put(&o, w, 64);
        off += 64;
        if (sp.sel == SEL_DENSE) continue;
        n_sparse++;
        int kmax = selector_kmax(&sp, T);
        if (sp.fn == HFN_MLP && (long long)kmax * (hs + 1) + hs > (1 << 20)) goto fail;
        uint64_t cnt[2] = {selector_param_count(&sp, hs, T), headfn_param_count(&sp, hs, kmax)};
        if (cnt[0] + cnt[1] > (1 << 18)) goto fail;
        uint64_t old[2] = {0, 0};
        if (n - off >= 16) memcpy(old, d + off, 16), off += 16;
        else off = n;
        size_t have = (n - off) / 4, old_total = old[0] > have || old[1] > have - old[0] ? have
                                                                                          : (size_t)(old[0] + old[1]);
        size_t want = (size_t)(cnt[0] + cnt[1]), copy = want < old_total ? want : old_total;
        put(&o, cnt, 16);
        put(&o, d + off, copy * 4);
        put(&o, NULL, (want - copy) * 4);
        off += old_total * 4;
    }
    fz_wr32(o.b, 8, (uint32_t)n_sparse);
    *out_n = o.n;
    if (o.n == n && !memcmp(o.b, d, n)) goto fail;
    return o.b;
fail:
    free(o.b);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    try_load(data, n);
    uint8_t *fixed = fz_fix_checksum(data, n);
    if (fixed) {
        try_load(fixed, n);
        free(fixed);
    }
    size_t sn = 0;
    uint8_t *shaped = reshape(data, n, &sn);
    if (shaped) {
        fixed = fz_fix_checksum(shaped, sn);
        try_load(fixed ? fixed : shaped, sn);
        free(fixed);
        free(shaped);
    }
    return 0;
}
