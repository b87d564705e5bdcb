/* genbench: the generation benchmark's grid (sattn/genbench.h). */
#include "sattn/genbench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/attnbench.h"
#include "sattn/generate.h"
#include "sattn/hybrid.h"
#include "sattn/hybrid_decode.h"

void gb_label(const char *text, char *buf, size_t n) {
    size_t i = 0;
    for (; text[i] && i + 1 < n; i++) {
        char ch = text[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 strchr("+-_.:=", ch);
        buf[i] = ok ? ch : '_';
    }
    if (n) buf[i < n ? i : n - 1] = '\0';
}

typedef struct {
    gpt_model *m;
    const gb_config *c;
    const gb_sink *sink;
    void (*phase)(const phase_row *r, void *user); /* NULL: no splits */
    int *tokens;      /* max context + steps random tokens */
    gen_state gen;    /* one cache for every variant (hook set per variant) */
    int filled;       /* the context the cache was last prefilled at (0: none) */
    const hdec *filled_by; /* whose hook saw that prefill (NULL: none; a tile layer's decode
                            * state needs the prefill's queries, so it rewinds only its own) */
    double *pre, *dec; /* runs, runs * steps samples */
    double *pre_sel, *pre_fwd, *dec_sel, *dec_fwd; /* the timers' increments per sample */
    bench_row *rows;
    int n, cap;
} gb_ctx;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

__attribute__((format(printf, 2, 3))) static void note(gb_ctx *g, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g->sink && g->sink->note) g->sink->note(msg, g->sink->user);
}

static void emit(gb_ctx *g, const char *variant, int phase, int T, int k, double med, double flops,
                 double bytes, double pressure) {
    if (g->n == g->cap) g->cap = g->cap ? 2 * g->cap : 64, g->rows = xrealloc(g->rows, (size_t)g->cap * sizeof *g->rows);
    bench_row *r = &g->rows[g->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->variant, sizeof r->variant, "%s", variant);
    r->phase = phase, r->C = g->m->cfg.channels, r->H = g->m->cfg.heads, r->T = T, r->k = k;
    r->median_s = med > 1e-12 ? med : 1e-12, r->gflops = flops / r->median_s / 1e9;
    r->speedup_vs_flash = -1.0, r->peak_bytes = bytes, r->cpu_pressure = pressure;
    if (g->sink && g->sink->row) g->sink->row(r, g->sink->user);
}

/* Dense-equivalent FLOPs (genbench.h): a forward of T tokens, one decode step at T. */
static double forward_flops(const gpt_config *c, int T) { return T * gpt_flops_per_token(c, T); }
static double decode_flops(const gpt_config *c, int T) {
    double C = c->channels;
    return c->layers * (24.0 * C * C + 4.0 * C * T) + 2.0 * C * c->padded_vocab;
}

/* The split of a row's samples (phasetime.h), before median() reorders tot; sel NULL: dense. */
static void emit_phase(gb_ctx *g, const char *variant, int stage, int T, const double *tot, const double *sel,
                       const double *fwd, int n) {
    if (!g->phase || n < 1) return;
    const gpt_config *c = &g->m->cfg;
    phase_row r = {.stage = stage, .L = c->layers, .H = c->heads, .C = c->channels, .T = T};
    snprintf(r.variant, sizeof r.variant, "%s", variant);
    if (sel) pt_split(&r, tot, sel, fwd, NULL, n);
    else pt_dense(&r, tot, n);
    g->phase(&r, g->sink ? g->sink->user : NULL);
}

static double params_bytes(const gpt_model *m) { return 4.0 * (double)m->num_params; }
static double cache_bytes(const gpt_config *c, int T) { return 8.0 * c->layers * (double)T * c->channels; }
/* A forward of T tokens with attention attn: its activations (and backward buffers,
 * which gpt_forward allocates too). */
static double forward_bytes(const gpt_config *c, int attn, int T) {
    gpt_config cc = *c;
    cc.attn = attn;
    return gpt_mem_estimate(&cc, 1, T, 0).acts;
}

/* The largest kmax of the plan's sparse heads at T. */
static int plan_k(const sparse_heads *sh, int T) {
    int k = 0;
    for (int i = 0; i < sh->layers * sh->heads; i++)
        if (sh->h[i].spec.sel != SEL_DENSE && selector_kmax(&sh->h[i].spec, T) > k) k = selector_kmax(&sh->h[i].spec, T);
    return k;
}

/* steps single-token decode steps after a prefill of T tokens, each timed into dec (and, with
 * a sparse decoder hd, its timers' increments into sel, fwd). */
static void time_decode(gb_ctx *g, int T, double *dec, const hdec *hd, double *sel, double *fwd) {
    for (int j = 0; j < g->c->steps; j++) {
        hybrid_timers t = hd ? hd->tm : (hybrid_timers){0};
        double t0 = time_now();
        gen_decode(&g->gen, g->tokens[T + j]);
        dec[j] = time_now() - t0;
        if (hd) sel[j] = hd->tm.select_s - t.select_s, fwd[j] = hd->tm.head_s - t.head_s;
    }
}

/* Whether run r makes a new prefill: always the first; later ones only while a prefill
 * is quick (else they rewind the cache to T: one prefill sample, every decode sample). */
static int new_prefill(const gb_ctx *g, int r, double last) { return r == 0 || last <= g->c->prefill_repeat_s; }

/* The dense cache at T: per run a prefill (the model's attention) and the steps. */
static void run_dense(gb_ctx *g, int T) {
    const gpt_config *c = &g->m->cfg;
    double need = params_bytes(g->m) + cache_bytes(c, c->max_seq) + forward_bytes(c, c->attn, T);
    if (need > g->c->max_bytes) {
        note(g, "gen-dense at T=%d skipped: its prefill needs %.2f GB (above the limit)", T, need / 1e9);
        return;
    }
    double p = ab_cpu_pressure();
    int np = 0;
    g->gen.hook = NULL;
    for (int r = 0; r < g->c->runs; r++) {
        if (new_prefill(g, r, np ? g->pre[np - 1] : 0)) {
            double t0 = time_now();
            gen_prefill(&g->gen, g->tokens, T);
            g->pre[np++] = time_now() - t0;
        } else {
            gen_rewind(&g->gen, T);
        }
        time_decode(g, T, g->dec + (size_t)r * g->c->steps, NULL, NULL, NULL);
    }
    g->filled = T, g->filled_by = NULL;
    emit_phase(g, "gen-dense", PT_PREFILL, T, g->pre, NULL, NULL, np);
    emit_phase(g, "gen-dense", PT_DECODE, T, g->dec, NULL, NULL, g->c->runs * g->c->steps);
    emit(g, "gen-dense", BENCH_PREFILL, T, 0, median(g->pre, np), forward_flops(c, T), need, p);
    emit(g, "gen-dense", BENCH_DECODE, T, 0, median(g->dec, g->c->runs * g->c->steps), decode_flops(c, T),
         params_bytes(g->m) + cache_bytes(c, T), p);
}

/* The hybrid's prefill attention: the hook alone when every head is sparse (no T x T
 * buffer), naive otherwise (its dense heads need one). */
static int hybrid_attn(const hybrid *hy) { return hybrid_all_sparse(hy->sh) ? GPT_ATTN_HOOK : GPT_ATTN_NAIVE; }

/* Whether some layer of hy is tile-shared (its decode state needs the prefill's queries). */
static int has_tile(const hybrid *hy) {
    for (int l = 0; l < hy->sh->layers; l++)
        if (hy->tile_layer[l]) return 1;
    return 0;
}

/* The hybrid's own prefill (with the sparse heads), timed; its timers' increments into
 * sel, fwd (may be NULL). */
static double hybrid_prefill(gb_ctx *g, hybrid *hy, const hdec *hd, int T, double *sel, double *fwd) {
    gpt_model *m = g->m;
    int base = m->cfg.attn;
    m->cfg.attn = hybrid_attn(hy);
    hybrid_attach(hy, m);
    hybrid_timers t0m = hy->tm;
    double t0 = time_now();
    gen_prefill(&g->gen, g->tokens, T);
    double t = time_now() - t0;
    if (sel) *sel = hy->tm.select_s - t0m.select_s, *fwd = hy->tm.head_s - t0m.head_s;
    hybrid_detach(m);
    m->cfg.attn = base;
    g->filled = T, g->filled_by = hd;
    return t;
}

/* The cache at T for a plan whose prefill is not timed: the rows already there (rewound to
 * T; the hook rebuilds its state from them), else a prefill: the hybrid's for a plan with
 * tile layers (their state needs the prefill's queries), a dense flash one otherwise. The
 * decode's time does not depend on what the cached rows hold. */
static void plan_fill(gb_ctx *g, hybrid *hy, const hdec *hd, int T) {
    int tile = has_tile(hy);
    if (g->filled == T && g->gen.n >= T && (!tile || g->filled_by == hd)) {
        gen_rewind(&g->gen, T);
        return;
    }
    if (tile) {
        hybrid_prefill(g, hy, hd, T, NULL, NULL);
        return;
    }
    int base = g->m->cfg.attn;
    g->m->cfg.attn = GPT_ATTN_FLASH;
    gen_prefill(&g->gen, g->tokens, T);
    g->m->cfg.attn = base;
    g->filled = T, g->filled_by = hd;
}

/* Per run: the hybrid's prefill where it fits and is quick, else the cache rewound. */
static int plan_runs(gb_ctx *g, hybrid *hy, const hdec *hd, int T, int timed) {
    int np = 0;
    for (int r = 0; r < g->c->runs; r++) {
        if (timed && new_prefill(g, r, np ? g->pre[np - 1] : 0))
            g->pre[np] = hybrid_prefill(g, hy, hd, T, &g->pre_sel[np], &g->pre_fwd[np]), np++;
        else plan_fill(g, hy, hd, T);
        size_t o = (size_t)r * g->c->steps;
        time_decode(g, T, g->dec + o, hd, g->dec_sel + o, g->dec_fwd + o);
    }
    return np;
}

/* The plan's prefill's memory: parameters, the cache, the forward's activations with the
 * hybrid's attention, and the hybrid's own buffers. */
static double plan_prefill_bytes(const gb_ctx *g, const hybrid *hy, int T) {
    const gpt_config *c = &g->m->cfg;
    return params_bytes(g->m) + cache_bytes(c, c->max_seq) + forward_bytes(c, hybrid_attn(hy), T) +
           hybrid_mem_bytes(hy, 1, T, 1);
}

static void run_plan(gb_ctx *g, const gb_plan *pl, int T) {
    const gpt_config *c = &g->m->cfg;
    char name[BENCH_NAME_LEN];
    snprintf(name, sizeof name, "gen-%s", pl->label);
    double base = params_bytes(g->m) + cache_bytes(c, c->max_seq), flash = base + forward_bytes(c, GPT_ATTN_FLASH, T);
    hybrid hy;
    hybrid_init(&hy, pl->sh, c->channels, c->heads);
    double own = plan_prefill_bytes(g, &hy, T);
    int timed = own <= g->c->max_bytes;
    if (!timed && (has_tile(&hy) || (g->filled != T && flash > g->c->max_bytes))) {
        note(g, "%s at T=%d skipped: no prefill fits the limit (%.2f GB)", name, T, (has_tile(&hy) ? own : flash) / 1e9);
        hybrid_free(&hy);
        return;
    }
    if (!timed)
        note(g, "%s prefill at T=%d not timed: the hybrid's naive prefill needs %.2f GB (its decode runs on a "
                "dense prefill's cache)", name, T, own / 1e9);
    hdec hd;
    hdec_init(&hd, &hy, g->gen.cap);
    double p = ab_cpu_pressure();
    g->gen.hook = &hd.hook;
    int np = plan_runs(g, &hy, &hd, T, timed);
    g->gen.hook = NULL;
    emit_phase(g, name, PT_PREFILL, T, g->pre, g->pre_sel, g->pre_fwd, np);
    emit_phase(g, name, PT_DECODE, T, g->dec, g->dec_sel, g->dec_fwd, g->c->runs * g->c->steps);
    if (np) emit(g, name, BENCH_PREFILL, T, plan_k(pl->sh, T), median(g->pre, np), forward_flops(c, T), own, p);
    emit(g, name, BENCH_DECODE, T, plan_k(pl->sh, T + 1), median(g->dec, g->c->runs * g->c->steps),
         decode_flops(c, T), params_bytes(g->m) + cache_bytes(c, T), p);
    hdec_free(&hd);
    hybrid_free(&hy);
}

/* One token of the recompute: a forward of the T-token window with attention attn (one
 * untimed warm-up sizes the activations). */
static void run_recompute(gb_ctx *g, int attn, int T) {
    gpt_model *m = g->m;
    const char *name = attn == GPT_ATTN_FLASH ? "gen-recompute-flash" : "gen-recompute-naive";
    double need = params_bytes(m) + forward_bytes(&m->cfg, attn, T);
    if (need > g->c->max_bytes) {
        note(g, "%s at T=%d skipped: it needs %.2f GB (above the limit)", name, T, need / 1e9);
        return;
    }
    int base = m->cfg.attn;
    m->cfg.attn = attn;
    double p = ab_cpu_pressure();
    for (int r = -1; r < g->c->runs; r++) {
        double t0 = time_now();
        gpt_forward(m, g->tokens, NULL, 1, T);
        if (r >= 0) g->pre[r] = time_now() - t0;
    }
    m->cfg.attn = base;
    emit(g, name, BENCH_DECODE, T, 0, median(g->pre, g->c->runs), forward_flops(&m->cfg, T), need, p);
}

void gb_run(gpt_model *m, const gb_plan *plans, int n_plans, const gb_config *c, const gb_sink *sink,
            bench_row **rows, int *n) {
    gb_run_phases(m, plans, n_plans, c, sink, NULL, rows, n);
}

void gb_run_phases(gpt_model *m, const gb_plan *plans, int n_plans, const gb_config *c, const gb_sink *sink,
                   void (*phase)(const phase_row *r, void *user), bench_row **rows, int *n) {
    gb_ctx g = {.m = m, .c = c, .sink = sink, .phase = phase};
    int maxT = 0;
    for (int i = 0; i < c->n_contexts; i++) maxT = c->contexts[i] > maxT ? c->contexts[i] : maxT;
    g.tokens = xmalloc(((size_t)maxT + (size_t)c->steps) * sizeof(int));
    rng_t r;
    rng_seed(&r, c->seed);
    for (int i = 0; i < maxT + c->steps; i++) g.tokens[i] = (int)rng_below(&r, (uint64_t)m->cfg.vocab);
    size_t nd = (size_t)c->runs * (size_t)c->steps;
    g.pre = xmalloc(3 * (size_t)c->runs * sizeof(double)), g.pre_sel = g.pre + c->runs, g.pre_fwd = g.pre_sel + c->runs;
    g.dec = xmalloc(3 * nd * sizeof(double)), g.dec_sel = g.dec + nd, g.dec_fwd = g.dec_sel + nd;
    gen_init(&g.gen, m, NULL);
    for (int i = 0; i < c->n_contexts; i++) {
        int T = c->contexts[i];
        if (T + c->steps > m->cfg.max_seq) {
            note(&g, "T=%d skipped: decoding %d steps after it needs max_seq >= %d (the model has %d)", T, c->steps,
                 T + c->steps, m->cfg.max_seq);
            continue;
        }
        run_dense(&g, T);
        for (int p = 0; p < n_plans; p++) run_plan(&g, &plans[p], T);
        if (T <= c->recompute_max) run_recompute(&g, GPT_ATTN_NAIVE, T), run_recompute(&g, GPT_ATTN_FLASH, T);
    }
    gen_free(&g.gen);
    free(g.tokens), free(g.pre), free(g.dec);
    *rows = g.rows, *n = g.n;
}

int gb_fit(const bench_row *rows, int n, const char *variant, double *a, double *b, int *count) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].phase != BENCH_DECODE || strcmp(rows[i].variant, variant)) continue;
        double x = rows[i].T, y = rows[i].median_s;
        sx += x, sy += y, sxx += x * x, sxy += x * y, k++;
    }
    *count = k;
    double den = k * sxx - sx * sx;
    if (k < 2 || den <= 0) return -1;
    *b = (k * sxy - sx * sy) / den;
    *a = (sy - *b * sx) / k;
    return 0;
}

double gb_decode_at(const bench_row *rows, int n, const char *variant, int T) {
    for (int i = 0; i < n; i++)
        if (rows[i].phase == BENCH_DECODE && rows[i].T == T && !strcmp(rows[i].variant, variant))
            return rows[i].median_s;
    return -1.0;
}
