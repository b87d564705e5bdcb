/* Tests for the automatic plan: the analytic FLOP formulas against hand-computed
 * cases (and the key counts against the real selectors), candidate parsing, the
 * planner on a tiny random model (the budget holds, every greedy decision follows
 * the rule, 100% replaces every head that saves FLOPs, the plan and heads files read
 * back), and `sattn plan`'s one-line errors.
 *
 * The CLI tests run $SATTN_BIN (default build/sattn) from the repo root through the
 * helpers in cli_util.h. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/autoplan.h"
#include "sattn/ckpt.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"
#include "sattn/plan.h"
#include "sattn/train.h"

/* ------------------------------------------------------------ FLOPs ---- */

static void expect_flops(const char *spec, int d, int T, double want) {
    head_spec s = test_spec_of(spec);
    double got = head_attention_flops(&s, d, T);
    cr_assert_eq(got, want, "%s, d %d, T %d: %.1f FLOPs, expected %.1f", spec, d, T, got, want);
}

Test(autoplan, flops_dense) {
    expect_flops("dense", 2, 3, 48);   /* 2*2*2 * (1+2+3) */
    expect_flops("dense", 64, 1, 256); /* one pair: 2*2*64 */
    expect_flops("dense", 32, 64, 2.0 * 2 * 32 * 64 * 65 / 2);
}

/* index, J=1, r=1, d=2, k=1, T=2: projections 2*(2+2+2)*2 = 24; 3 pairs * (2+1) = 9;
 * top-k 3; softmax 2*2*2 * (1+1) = 16. */
Test(autoplan, flops_index_softmax) {
    expect_flops("index+softmax:k=1,r=1,j=1", 2, 2, 24 + 9 + 3 + 16);
    /* k >= T keeps every key: J=2, r=3, d=4, T=4: 2*(24+12+8)*4 + (12+2)*10 + 10 + 16*10 */
    expect_flops("index+softmax:k=16,r=3,j=2", 4, 4, 352 + 140 + 10 + 160);
}

/* pos, hidden 3, d=2, T=3, k=2: 2*(3*2 + 3*3)*3 = 90; top-k 6; keys 1+2+2: 8*5 = 40. */
Test(autoplan, flops_pos_softmax) { expect_flops("pos+softmax:k=2,hidden=3", 2, 3, 90 + 6 + 40); }

/* block b=2, n=2, d=1, T=5: complete blocks before t: 0,0,1,1,2 (sum 4); keys
 * 1,2,1+2,2+2,1+2 (sum 13). summaries 5, scores 2*4 = 8, top-n 4, softmax 4*13 = 52. */
Test(autoplan, flops_block_softmax) {
    expect_flops("block+softmax:b=2,n=2", 1, 5, 5 + 8 + 4 + 52);
    expect_flops("block+softmax:b=2,n=2,bounds=1", 1, 5, 10 + 16 + 4 + 52);
    /* n=1: only the own block: keys 1,2,1,2,1 = 7; scores and top-n still count */
    expect_flops("block+softmax:b=2,n=1", 1, 5, 5 + 8 + 4 + 28);
}

/* mlp over index k=2, r=1, J=1, d=2, T=3, hidden 4 (kmax 2): selector 36 + 18 + 6;
 * keys 1+2+2 = 5; D = 2*2 + 2 + 2 = 8: 2*(4*8 + 2*4)*3 = 240, logits 2*2*5 = 20. */
Test(autoplan, flops_mlp) {
    expect_flops("index+mlp:k=2,r=1,j=1,hidden=4", 2, 3, 60 + 240 + 20);
    /* no q, no logits: D = 4: 2*(16 + 8)*3 = 144 */
    expect_flops("index+mlp:k=2,r=1,j=1,hidden=4,q=0,logits=0", 2, 3, 60 + 144);
    /* dynamic k counts the maximum */
    expect_flops("index+mlp:k=2,kmin=1,tau=0.5,r=1,j=1,hidden=4", 2, 3, 60 + 240 + 20);
}

/* The quadratic terms per causal pair: dense 4d, index 2Jr + J + 1. At d = 32 the
 * default index (r 16, J 4: 133) costs MORE than dense (128) at long T; at d = 64 less. */
Test(autoplan, flops_index_is_quadratic) {
    head_spec ix = test_spec_of("index+softmax:k=16"), dense = test_spec_of("dense");
    int T = 1 << 14;
    cr_assert_gt(head_attention_flops(&ix, 32, T), head_attention_flops(&dense, 32, T));
    cr_assert_lt(head_attention_flops(&ix, 64, T), head_attention_flops(&dense, 64, T));
    double a = head_attention_flops(&ix, 32, T), b = head_attention_flops(&ix, 32, 2 * T);
    cr_assert_gt(b / a, 3.9, "index should grow ~4x per doubling of T, got %.2f", b / a);
}

/* block: O(T/b) scores per query, so the cost grows ~T^2 d/b rather than T^2 * 4d. */
Test(autoplan, flops_block_beats_dense_at_long_context) {
    head_spec bl = test_spec_of("block+softmax:b=16,n=4"), dense = test_spec_of("dense");
    cr_assert_gt(head_attention_flops(&bl, 64, 64), head_attention_flops(&dense, 64, 64),
                 "b*n = T keeps every key: the block overhead makes it dearer than dense");
    double r1 = head_attention_flops(&dense, 64, 1024) / head_attention_flops(&bl, 64, 1024);
    double r2 = head_attention_flops(&dense, 64, 4096) / head_attention_flops(&bl, 64, 4096);
    cr_assert_gt(r1, 4.0);
    cr_assert_gt(r2, r1);
}

/* The |S_t| the formulas use equals what the selectors really keep: FLOPs are linear
 * in d, so f(d=2) - f(d=1) isolates the per-d terms, from which the keys follow. */
static double selector_keys(const char *spec, int T) {
    head_spec s = test_spec_of(spec);
    int d = 4, kmax = selector_kmax(&s, T);
    rng_t r;
    rng_seed(&r, 3);
    float *qk = malloc(sizeof(float) * (size_t)T * 2 * d);
    for (int i = 0; i < T * 2 * d; i++) qk[i] = rng_normal(&r);
    size_t np = selector_param_count(&s, d, T) + 1;
    float *p = malloc(np * sizeof(float)), *w = malloc((selector_work_floats(&s, d, T) + 1) * sizeof(float));
    selector_init(&s, d, T, p, &r);
    int *idx = malloc(sizeof(int) * (size_t)T * kmax), *count = malloc(sizeof(int) * (size_t)T);
    float *score = malloc(sizeof(float) * (size_t)T * kmax);
    selector_select(&s, p, d, T, qk, qk + d, 2 * d, T, idx, score, count, w);
    double keys = 0;
    for (int t = 0; t < T; t++) keys += count[t];
    free(qk), free(p), free(w), free(idx), free(count), free(score);
    return keys;
}

Test(autoplan, flops_keys_match_selectors) {
    int T = 45;
    for (int b = 1; b <= 8; b++)
        for (int n = 1; n <= 4; n++) {
            char spec[64];
            snprintf(spec, sizeof spec, "block+softmax:b=%d,n=%d", b, n);
            head_spec s = test_spec_of(spec);
            double cands = 0;
            for (int t = 0; t < T; t++) cands += t / b;
            /* per d: summaries T, scores 2*cands, softmax 4*keys */
            double per_d = head_attention_flops(&s, 2, T) - head_attention_flops(&s, 1, T);
            double keys = (per_d - T - 2 * cands) / 4;
            cr_assert_eq(keys, selector_keys(spec, T), "%s: formula keys %.0f, selector %.0f", spec,
                         keys, selector_keys(spec, T));
        }
    /* index: per d, projections 2*(J*r + r + J)*T, softmax 4*keys */
    head_spec s = test_spec_of("index+softmax:k=7,r=2,j=1");
    double per_d = head_attention_flops(&s, 2, T) - head_attention_flops(&s, 1, T);
    cr_assert_eq((per_d - 2.0 * (2 + 2 + 1) * T) / 4, selector_keys("index+softmax:k=7,r=2,j=1", T));
}

/* ------------------------------------------------------- candidates ---- */

Test(autoplan, candidates_parse) {
    head_spec *c;
    int n;
    sattn_err e;
    cr_assert_eq(autoplan_parse_candidates(" index+softmax:k=8 ;; block+mlp:b=4,n=2,hidden=8;", &c, &n, &e),
                 0, "%s", e.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(c[0].sel, SEL_INDEX);
    cr_assert_eq(c[0].k, 8);
    cr_assert_eq(c[1].sel, SEL_BLOCK);
    cr_assert_eq(c[1].fn, HFN_MLP);
    cr_assert_eq(c[1].block, 4);
    cr_assert_eq(c[1].hidden, 8);
    free(c);
}

Test(autoplan, candidates_errors) {
    static const struct {
        const char *text, *needle;
    } cases[] = {{"bogus", "candidate 'bogus'"},
                 {"index+softmax:k=8;dense", "candidate 'dense' is dense"},
                 {"", "no candidate"},
                 {" ; ;", "no candidate"},
                 {"index+softmax:k=0", "k (keys per query)"},
                 {"all:index+softmax", "candidate 'all:index+softmax'"},
                 {"block+softmax:k=4", "candidate 'block+softmax:k=4'"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        head_spec *c = NULL;
        int n = 0;
        sattn_err e = {{0}};
        cr_assert_eq(autoplan_parse_candidates(cases[i].text, &c, &n, &e), -1, "'%s' parsed", cases[i].text);
        cr_assert_null(c);
        cr_assert_not_null(strstr(e.msg, cases[i].needle), "'%s': error '%s' lacks '%s'", cases[i].text,
                           e.msg, cases[i].needle);
        cr_assert_null(strchr(e.msg, '\n'));
    }
}

/* --------------------------------------------------------- planner ---- */

#define NL 2
#define NH 2
#define NC 16
#define NT 32
#define NV 256

static void tiny_data(dataset *d, size_t n);

/* The tiny model, trained briefly on the test text so that its heads matter: at
 * random init sparse heads LOWER the loss and no budget would ever bind. */
static void tiny_model(gpt_model *m) {
    gpt_config c = {NT, NV, NV, NL, NH, NC, GPT_ATTN_NAIVE, GPT_POS_LEARNED, 0, 0};
    gpt_create(m, &c);
    rng_t r;
    rng_seed(&r, 11);
    gpt_init_random(m, &r);
    dataset d;
    tiny_data(&d, 24000);
    train_config tc = train_config_default();
    tc.batch = 8, tc.seq = NT, tc.steps = 300, tc.warmup = 5, tc.lr = 1e-2f, tc.min_lr = 1e-3f;
    tc.eval_every = 0;
    train_state st = {0};
    rng_seed(&st.rng, 3);
    cr_assert(train_run(m, &st, &d, &tc, NULL, NULL, NULL, NULL) == 0);
    dataset_free(&d);
}

/* A dataset of n bytes of deterministic English-like text. */
static void tiny_data(dataset *d, size_t n) {
    char *t = cli_make_text(n);
    dataset_from_bytes(d, (const uint8_t *)t, n);
    free(t);
}

/* Coarse index and block heads that save FLOPs at d = 8, T = 32 and cost loss (so a 1%
 * budget binds), and a block that keeps every key (saves none). */
#define CANDS "index+softmax:k=2,r=2,j=1;block+softmax:b=2,n=1;block+softmax:b=16,n=2"

static autoplan_config tiny_config(head_spec **cands, double budget) {
    autoplan_config c = autoplan_config_default();
    sattn_err e;
    cr_assert_eq(autoplan_parse_candidates(CANDS, cands, &c.n_candidates, &e), 0, "%s", e.msg);
    c.candidates = *cands;
    c.dc.steps = 6;
    c.dc.batch = 4;
    c.windows = 12;
    c.eval_batch = 5; /* 12 windows: batches of 5, 5, 2 */
    c.budget = budget;
    c.seed = c.dc.seed = 5;
    return c;
}

/* Loss over the planner's windows with sh swapped in, computed independently. */
static double loss_with(gpt_model *m, const dataset *d, const sparse_heads *sh, int windows) {
    hybrid hy;
    hybrid_init(&hy, sh, NC, NH);
    hybrid_attach(&hy, m);
    double l = eval_split_loss(m, d, SPLIT_VAL, NT, 3, (size_t)windows * NT, NULL);
    hybrid_detach(m);
    hybrid_free(&hy);
    return l;
}

typedef struct {
    int events[5];
} event_count;

static void count_events(const autoplan_event *ev, void *user) {
    event_count *c = user;
    c->events[ev->stage]++;
}

/* Runs the planner and checks everything that must hold for any budget. */
static void run_and_check(double budget, autoplan_result *r, gpt_model *m, dataset *d) {
    head_spec *cands;
    autoplan_config c = tiny_config(&cands, budget);
    tiny_model(m);
    tiny_data(d, 24000);
    sattn_err e;
    event_count ec = {{0}};
    cr_assert_eq(autoplan_run(m, d, &c, r, count_events, &ec, &e), 0, "%s", e.msg);
    cr_assert_null(m->attn, "the teacher must be left dense");
    int nh = NL * NH;
    cr_assert_eq(ec.events[AUTOPLAN_DISTILL], c.dc.steps, "only the index candidate has parameters");
    cr_assert_eq(ec.events[AUTOPLAN_BASELINE], 1);
    cr_assert_eq(ec.events[AUTOPLAN_SKIP], 1, "the b=16,n=2 block keeps every key at T=32");
    cr_assert_eq(ec.events[AUTOPLAN_SINGLE], 2 * nh);
    cr_assert_eq(ec.events[AUTOPLAN_GREEDY], nh);
    cr_assert_eq(r->windows, 12);
    cr_assert_eq(r->tokens, (size_t)12 * NT);

    /* the budget holds, and the reported numbers are what they claim */
    cr_assert_leq(r->loss - r->baseline, budget * r->baseline, "loss %.6f, baseline %.6f, budget %g",
                  r->loss, r->baseline, budget);
    m->attn = NULL;
    cr_assert_float_eq(r->baseline, eval_split_loss(m, d, SPLIT_VAL, NT, 7, 12 * NT, NULL), 1e-6);
    cr_assert_float_eq(r->loss, loss_with(m, d, &r->chosen, 12), 1e-6);
    double fd = 0, fp = 0;
    int replaced = 0;
    for (int i = 0; i < nh; i++) {
        const autoplan_head *h = &r->ph[i];
        cr_assert(h->cand == 0 || h->cand == 1, "head %d: candidate %d", i, h->cand);
        cr_assert(h->tried);
        cr_assert_eq(h->chosen, (h->loss_tried - r->baseline) / r->baseline <= budget, "head %d", i);
        cr_assert_eq(r->specs[i].sel, h->chosen ? cands[h->cand].sel : SEL_DENSE);
        cr_assert_eq(r->chosen.h[i].spec.sel, r->specs[i].sel);
        cr_assert_eq(r->chosen.h[i].params != NULL, h->chosen);
        replaced += h->chosen;
        fd += head_attention_flops(&(head_spec){.sel = SEL_DENSE}, NC / NH, NT);
        fp += head_attention_flops(&r->specs[i], NC / NH, NT);
    }
    cr_assert_eq(r->replaced, replaced);
    cr_assert_float_eq(r->flops_dense, fd, 1e-6 * fd);
    cr_assert_float_eq(r->flops_plan, fp, 1e-6 * fd);
    /* greedy order: delta/saved ascending */
    cr_assert_eq(r->n_order, nh);
    for (int k = 1; k < r->n_order; k++) {
        const autoplan_head *a = &r->ph[r->order[k - 1]], *b = &r->ph[r->order[k]];
        cr_assert_leq(a->delta / a->saved, b->delta / b->saved);
    }
    free(cands);
}

Test(autoplan, planner_respects_budget, .timeout = 60) {
    gpt_model m;
    dataset d;
    autoplan_result r;
    run_and_check(0.01, &r, &m, &d);
    /* on this model some heads cost more than 1% and some fit: the budget really binds */
    cr_assert_gt(r.replaced, 0);
    cr_assert_lt(r.replaced, NL * NH);
    cr_assert_gt(r.loss, r.baseline);
    autoplan_free(&r);
    gpt_free(&m);
    dataset_free(&d);
}

Test(autoplan, planner_full_budget_replaces_all, .timeout = 60) {
    gpt_model m;
    dataset d;
    autoplan_result r;
    run_and_check(1.0, &r, &m, &d);
    cr_assert_eq(r.replaced, NL * NH, "loss %.4f vs baseline %.4f", r.loss, r.baseline);
    cr_assert_lt(r.flops_plan, r.flops_dense);
    autoplan_free(&r);
    gpt_free(&m);
    dataset_free(&d);
}

/* A tiny budget may replace none; what it keeps must still fit. Its plan and heads
 * files read back to the same specs. */
Test(autoplan, planner_tiny_budget_and_files, .timeout = 60) {
    gpt_model m;
    dataset d;
    autoplan_result r;
    run_and_check(1e-6, &r, &m, &d);
    cli_tdir t;
    cli_tdir_open(&t);
    const char *plan = cli_tpath(&t, "p.plan"), *heads = cli_tpath(&t, "h.sparse");
    sattn_err e;
    cr_assert_eq(plan_save(plan, r.specs, NL, NH, &e), 0, "%s", e.msg);
    cr_assert_eq(heads_save(heads, &r.chosen, &m.cfg, &e), 0, "%s", e.msg);
    head_spec back[NL * NH];
    cr_assert_eq(plan_load(plan, NL, NH, back, &e), 0, "%s", e.msg);
    sparse_heads sh;
    cr_assert_eq(heads_load(heads, &sh, &m.cfg, &e), 0, "%s", e.msg);
    for (int i = 0; i < NL * NH; i++) {
        cr_assert_eq(back[i].sel, r.specs[i].sel);
        cr_assert_eq(sh.h[i].spec.sel, r.specs[i].sel);
        if (sh.h[i].params)
            cr_assert_eq(memcmp(sh.h[i].params, r.chosen.h[i].params,
                                (sh.h[i].n_sel + sh.h[i].n_fn) * sizeof(float)), 0);
    }
    sparse_heads_free(&sh);
    cli_tdir_close(&t);
    autoplan_free(&r);
    gpt_free(&m);
    dataset_free(&d);
}

/* Same inputs, same plan: the planner is deterministic. */
Test(autoplan, planner_deterministic, .timeout = 60) {
    gpt_model m1, m2;
    dataset d1, d2;
    autoplan_result a, b;
    run_and_check(0.01, &a, &m1, &d1);
    run_and_check(0.01, &b, &m2, &d2);
    cr_assert_eq(a.loss, b.loss);
    cr_assert_eq(a.baseline, b.baseline);
    for (int i = 0; i < NL * NH; i++) cr_assert_eq(a.ph[i].delta, b.ph[i].delta);
    autoplan_free(&a), autoplan_free(&b);
    gpt_free(&m1), gpt_free(&m2);
    dataset_free(&d1), dataset_free(&d2);
}

Test(autoplan, planner_errors) {
    gpt_model m;
    dataset d, small;
    tiny_model(&m);
    tiny_data(&d, 24000);
    tiny_data(&small, 200); /* val split of 20 bytes < one window of 33 */
    head_spec *cands;
    autoplan_config ok = tiny_config(&cands, 0.01);
    head_spec dense = head_spec_default();
    static const struct {
        double budget;
        int n_cand, dense, small, windows;
        const char *needle;
    } cases[] = {{0.0, 3, 0, 0, 12, "budget"},       {1.5, 3, 0, 0, 12, "budget"},
                 {NAN, 3, 0, 0, 12, "budget"},       {0.01, 0, 0, 0, 12, "no candidate"},
                 {0.01, 1, 1, 0, 12, "dense"},       {0.01, 3, 0, 1, 12, "tokens"},
                 {0.01, 3, 0, 0, 0, "windows"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        autoplan_config c = ok;
        c.budget = cases[i].budget;
        c.n_candidates = cases[i].n_cand;
        if (cases[i].dense) c.candidates = &dense;
        c.windows = cases[i].windows;
        autoplan_result r;
        sattn_err e = {{0}};
        cr_assert_eq(autoplan_run(&m, cases[i].small ? &small : &d, &c, &r, NULL, NULL, &e), -1,
                     "case %zu accepted", i);
        cr_assert_not_null(strstr(e.msg, cases[i].needle), "case %zu: '%s' lacks '%s'", i, e.msg,
                           cases[i].needle);
        cr_assert_null(r.specs);
    }
    free(cands);
    gpt_free(&m);
    dataset_free(&d), dataset_free(&small);
}

/* ------------------------------------------------------------- CLI ---- */

/* A temp dir with a tiny model and a small corpus. */
typedef struct {
    cli_tdir t;
    char model[256], data[256], tiny[256], out[256], heads[256];
} fixture;

static void fixture_open(fixture *f) {
    cli_tdir_open(&f->t);
    snprintf(f->model, sizeof f->model, "%s", cli_tpath(&f->t, "m.ckpt"));
    snprintf(f->data, sizeof f->data, "%s", cli_tpath(&f->t, "text.txt"));
    snprintf(f->tiny, sizeof f->tiny, "%s", cli_tpath(&f->t, "tiny.txt"));
    snprintf(f->out, sizeof f->out, "%s", cli_tpath(&f->t, "p.plan"));
    snprintf(f->heads, sizeof f->heads, "%s", cli_tpath(&f->t, "h.sparse"));
    gpt_model m;
    tiny_model(&m);
    sattn_err e;
    cr_assert_eq(ckpt_save(f->model, CKPT_SATTN, &m, NULL, &e), 0, "%s", e.msg);
    gpt_free(&m);
    cli_write_text(f->data, 24000);
    cli_write_text(f->tiny, 200); /* the first 200 bytes of the same text */
}

/* Nothing but the fixture's own files (no plan, no heads, no temp files). */
static void assert_nothing_written(const fixture *f, const char *cmd) {
    DIR *d = opendir(f->t.dir);
    cr_assert_not_null(d);
    for (struct dirent *de; (de = readdir(d));)
        cr_assert(!strncmp(de->d_name, ".", 1) || !strcmp(de->d_name, "m.ckpt") ||
                      !strcmp(de->d_name, "text.txt") || !strcmp(de->d_name, "tiny.txt"),
                  "%s: left %s", cmd, de->d_name);
    closedir(d);
}

Test(autoplan, cli_bad_flags, .timeout = 120) {
    fixture f;
    fixture_open(&f);
    char nodir[256], dname[256], heads_dir[300];
    snprintf(nodir, sizeof nodir, "%s", cli_tpath(&f.t, "no/such/p.plan"));
    snprintf(dname, sizeof dname, "%s", cli_tpath(&f.t, "none.ckpt"));
    snprintf(heads_dir, sizeof heads_dir, "--heads-out %s", f.t.dir);
    const char *M = f.model, *D = f.data, *O = f.out;
    const char *needles[] = {
        "--model PATH is required", "--data PATH is required", "--budget B is required",
        "--out PLAN is required", "--budget: expected a percentage like 1% or a fraction like 0.01 in (0, 1]",
        "got '0%'", "got '150%'", "got '2'", "got 'abc'", "got '-1%'", "got 'nan'", "got '1%%'",
        "--candidates candidate 'bogus'", "candidate 'dense' is dense", "--candidates no candidate",
        "--steps", "--windows", "--batch", "--seed", "unknown option '--nope'", "unexpected argument 'extra'",
        "option '--steps' needs a value", "none.ckpt", "--out", "--heads-out", "tiny.txt",
        "is a directory", heads_dir};
    const char *cases[][16] = {
        {"plan", "--data", D, "--budget", "1%", "--out", O, NULL},
        {"plan", "--model", M, "--budget", "1%", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "0", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "0%", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "150%", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "2", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "abc", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "-1%", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "nan", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%%", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--candidates", "bogus", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--candidates", "block+softmax;dense", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--candidates", " ; ", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--steps", "0", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--windows", "x", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--batch", "0", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--seed", "-3", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--nope", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "extra", NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--steps", NULL},
        {"plan", "--model", dname, "--data", D, "--budget", "1%", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", nodir, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--heads-out", O, NULL},
        {"plan", "--model", M, "--data", f.tiny, "--budget", "1%", "--out", O, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", f.t.dir, NULL},
        {"plan", "--model", M, "--data", D, "--budget", "1%", "--out", O, "--heads-out", f.t.dir, NULL}};
    cr_assert_eq(sizeof needles / sizeof needles[0], sizeof cases / sizeof cases[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int rc = cli_run(cases[i], &out, &err);
        cli_check_fail_line(rc, out, err, "sattn plan: ", needles[i], 0);
        assert_nothing_written(&f, cli_cmd);
        free(out), free(err);
    }
    cli_tdir_close(&f.t);
}

Test(autoplan, cli_run_json_and_files, .timeout = 120) {
    fixture f;
    fixture_open(&f);
    const char *argv[] = {"plan", "--model", f.model, "--data", f.data, "--budget", "100%", "--out", f.out,
                          "--heads-out", f.heads, "--candidates", "block+softmax:b=4,n=2", "--steps", "2",
                          "--windows", "4", "--batch", "3", "--threads", "2", "--json", NULL};
    char *out = cli_expect_ok(argv), *err;
    cli_assert_json_line(out);
    cr_assert_eq(cli_json_num(out, "heads_replaced"), NL * NH);
    cr_assert_eq(cli_json_num(out, "heads_total"), NL * NH);
    cr_assert_eq(cli_json_num(out, "budget"), 1.0);
    cr_assert_eq(cli_json_num(out, "windows"), 4);
    cr_assert_gt(cli_json_num(out, "flops_saved_pct"), 0);
    cr_assert_leq(cli_json_num(out, "plan_loss"), 2 * cli_json_num(out, "baseline_loss"));
    head_spec specs[NL * NH];
    sattn_err e;
    cr_assert_eq(plan_load(f.out, NL, NH, specs, &e), 0, "%s", e.msg);
    for (int i = 0; i < NL * NH; i++) cr_assert_eq(specs[i].sel, SEL_BLOCK);
    sparse_heads sh;
    cr_assert_eq(heads_load(f.heads, &sh, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(sparse_heads_count(&sh), NL * NH);
    sparse_heads_free(&sh);
    free(out);

    /* the table form names every head and prints the summary */
    const char *argv2[] = {"plan", "--model", f.model, "--data", f.data, "--budget", "0.5", "--out", f.out,
                           "--steps", "2", "--windows", "4", NULL};
    int rc = cli_run(argv2, &out, &err);
    cr_assert_eq(rc, 0, "%s: exit %d: %s", cli_cmd, rc, err);
    for (const char *w = "L0H0\0L1H1\0baseline loss\0plan loss\0attention FLOPs\0heads replaced\0"; *w;
         w += strlen(w) + 1)
        cr_assert_not_null(strstr(out, w), "no '%s' in:\n%s", w, out);
    cr_assert_not_null(strstr(err, "baseline: dense loss"), "%s", err);
    free(out), free(err);
    cli_tdir_close(&f.t);
}
