/* autoplan: the greedy loss-per-FLOP planner (see sattn/autoplan.h for the algorithm;
 * the FLOPs per head are the cost model's head_attention_flops, costmodel.h). */
#include "sattn/autoplan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/hybrid.h"
#include "sattn/plan.h"
#include "sattn/train.h"

/* ---- candidates ---- */

static int is_blank(const char *a, const char *b) {
    for (; a < b; a++)
        if (*a != ' ' && *a != '\t' && *a != '\r' && *a != '\n') return 0;
    return 1;
}

/* One candidate text [a, b) into *s, checked as the plan "all:<candidate>". */
static int parse_one(const char *a, const char *b, head_spec *s, sattn_err *e) {
    size_t n = (size_t)(b - a);
    char *plan = xmalloc(n + 5);
    memcpy(plan, "all:", 4);
    memcpy(plan + 4, a, n);
    plan[n + 4] = 0;
    sattn_err pe;
    int rc = plan_parse(plan, NULL, 1, 1, s, &pe);
    if (rc) err_set(e, "candidate '%s': %s", plan + 4, pe.msg);
    else if (s->sel == SEL_DENSE)
        rc = err_set(e, "candidate '%s' is dense, expected a sparse spec like index+softmax:k=16",
                     plan + 4);
    else if (s->shared) /* auto replaces heads one by one; a shared indexer takes a whole layer */
        rc = err_set(e, "candidate '%s' has shared=1, expected per-head candidates (a shared "
                        "indexer replaces a whole layer: write that plan by hand)", plan + 4);
    free(plan);
    return rc;
}

int autoplan_parse_candidates(const char *text, head_spec **out, int *n, sattn_err *e) {
    size_t cap = 1;
    for (const char *p = text; *p; p++) cap += *p == ';';
    head_spec *c = xmalloc(cap * sizeof *c);
    int k = 0;
    for (const char *a = text;;) {
        const char *b = strchr(a, ';');
        if (!b) b = a + strlen(a);
        if (!is_blank(a, b) && parse_one(a, b, &c[k++], e)) return free(c), -1;
        if (!*b) break;
        a = b + 1;
    }
    if (k == 0) return free(c), err_set(e, "no candidate in '%s', expected specs like "
                                           "index+softmax:k=16;block+softmax:b=16,n=4", text);
    *out = c;
    *n = k;
    return 0;
}

/* ---- planner ---- */

autoplan_config autoplan_config_default(void) {
    return (autoplan_config){.dc = distill_config_default(), .windows = 64, .eval_batch = 8,
                             .budget = 0.01, .seed = 1337};
}

static int check_inputs(const gpt_model *m, const dataset *d, const autoplan_config *c, sattn_err *e) {
    if (c->n_candidates < 1) return err_set(e, "no candidate specs");
    for (int i = 0; i < c->n_candidates; i++) {
        if (c->candidates[i].sel == SEL_DENSE) return err_set(e, "candidate %d is dense", i + 1);
        if (head_spec_check(&c->candidates[i], e)) return -1;
    }
    if (!(c->budget > 0 && c->budget <= 1))
        return err_set(e, "budget %g outside (0, 1]", c->budget);
    if (c->windows < 1 || c->eval_batch < 1 || c->dc.steps < 1 || c->dc.batch < 1)
        return err_set(e, "windows %d, eval batch %d, distill steps %d and batch %d must be >= 1",
                       c->windows, c->eval_batch, c->dc.steps, c->dc.batch);
    for (size_t i = 0; i < d->n_tokens; i++)
        if (d->tokens[i] >= m->cfg.vocab)
            return err_set(e, "data token %d at position %zu is outside the model's vocabulary (%d)",
                           d->tokens[i], i, m->cfg.vocab);
    if (dataset_check_window(d, SPLIT_TRAIN, m->cfg.max_seq, NULL, e)) return -1;
    return dataset_check_window(d, SPLIT_VAL, m->cfg.max_seq, NULL, e);
}

/* Everything the stages share. */
typedef struct {
    gpt_model *m;
    const dataset *d;
    const autoplan_config *c;
    autoplan_fn fn;
    void *user;
    int nh, hs, T, windows;
    sparse_heads *cand;     /* n_candidates trained sets, every head sparse */
    double *saved;          /* per candidate */
    sparse_heads view;      /* borrowed params: never sparse_heads_free'd */
} planner;

static void emit(const planner *p, autoplan_event ev) {
    if (p->fn) p->fn(&ev, p->user);
}

typedef struct {
    const planner *p;
    int cand;
} distill_relay;

static void relay_distill(const distill_progress *dp, void *user) {
    const distill_relay *r = user;
    emit(r->p, (autoplan_event){.stage = AUTOPLAN_DISTILL, .cand = r->cand, .dp = dp});
}

/* Loss over the W windows with the view's sparse heads (dense if it has none). */
static double view_loss(planner *p, size_t *tokens) {
    size_t max_tokens = (size_t)p->windows * p->T;
    if (sparse_heads_count(&p->view) == 0) {
        p->m->attn = NULL;
        return eval_split_loss(p->m, p->d, SPLIT_VAL, p->T, p->c->eval_batch, max_tokens, tokens);
    }
    hybrid hy;
    hybrid_init(&hy, &p->view, p->m->cfg.channels, p->m->cfg.heads);
    hybrid_attach(&hy, p->m);
    double loss = eval_split_loss(p->m, p->d, SPLIT_VAL, p->T, p->c->eval_batch, max_tokens, tokens);
    hybrid_detach(p->m);
    hybrid_free(&hy);
    return loss;
}

static void view_set(planner *p, int i, int cand) {
    if (cand < 0) p->view.h[i] = (sparse_head){.spec = head_spec_default()};
    else p->view.h[i] = p->cand[cand].h[i];
}

/* 0, or -1 with e when a candidate's distillation diverged (the planner cannot rank it). */
static int distill_candidates(planner *p, sattn_err *e) {
    const gpt_config *g = &p->m->cfg;
    head_spec *specs = xmalloc((size_t)p->nh * sizeof *specs);
    for (int c = 0; c < p->c->n_candidates; c++) {
        /* A candidate that saves nothing can never be chosen: don't spend steps on it. */
        if (p->saved[c] <= 0) {
            emit(p, (autoplan_event){.stage = AUTOPLAN_SKIP, .cand = c, .saved = p->saved[c]});
            continue;
        }
        for (int i = 0; i < p->nh; i++) specs[i] = p->c->candidates[c];
        rng_t rng;
        rng_seed(&rng, p->c->seed);
        sparse_heads_create(&p->cand[c], g->layers, g->heads, p->hs, p->T, specs, &rng);
        /* block+softmax has nothing to train: its distillation would only run the teacher. */
        if (p->cand[c].h[0].n_sel + p->cand[c].h[0].n_fn == 0) continue;
        distill_config dc = p->c->dc;
        distill_relay relay = {p, c};
        p->m->attn = NULL;
        if (distill_run(p->m, &p->cand[c], p->d, &dc, relay_distill, &relay, e)) {
            char spec[128], why[SATTN_ERR_LEN];
            head_spec_format(&p->c->candidates[c], spec, sizeof spec);
            snprintf(why, sizeof why, "%s", e->msg);
            free(specs);
            return err_set(e, "candidate %s: distillation %s", spec, why);
        }
    }
    free(specs);
    return 0;
}

/* Candidate (delta, saved) beats the incumbent (d0, s0): the least loss per FLOP saved.
 * Except when both lower the loss: delta/saved would then prefer the one that saves
 * LESS (-1/1 < -1/2), so take the one that saves more (a tie: the lower loss). */
static int better(double delta, double saved, double d0, double s0) {
    if (delta < 0 && d0 < 0) return saved > s0 || (saved == s0 && delta < d0);
    return delta / saved < d0 / s0;
}

/* Step 3: each head alone, with each candidate that saves FLOPs. */
static void score_heads(planner *p, autoplan_result *r) {
    for (int i = 0; i < p->nh; i++) r->ph[i] = (autoplan_head){.cand = -1};
    for (int c = 0; c < p->c->n_candidates; c++) {
        if (p->saved[c] <= 0) continue;
        for (int i = 0; i < p->nh; i++) {
            view_set(p, i, c);
            double loss = view_loss(p, NULL), delta = loss - r->baseline;
            view_set(p, i, -1);
            emit(p, (autoplan_event){.stage = AUTOPLAN_SINGLE, .cand = c, .saved = p->saved[c],
                                     .layer = i / r->heads, .head = i % r->heads, .loss = loss,
                                     .delta = delta});
            autoplan_head *h = &r->ph[i];
            if (h->cand < 0 || better(delta, p->saved[c], h->delta, h->saved))
                h->cand = c, h->delta = delta, h->saved = p->saved[c];
        }
    }
}

/* Ascending delta/saved; ties by head index, so the order is deterministic. */
typedef struct {
    double ratio;
    int i;
} ranked;

static int by_ratio(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    return x->ratio < y->ratio ? -1 : x->ratio > y->ratio ? 1 : x->i - y->i;
}

static void greedy_order(autoplan_result *r) {
    int nh = r->layers * r->heads, n = 0;
    ranked *rk = xmalloc((size_t)nh * sizeof *rk);
    for (int i = 0; i < nh; i++)
        if (r->ph[i].cand >= 0) rk[n++] = (ranked){r->ph[i].delta / r->ph[i].saved, i};
    qsort(rk, (size_t)n, sizeof *rk, by_ratio);
    r->order = xmalloc(((size_t)n + 1) * sizeof *r->order);
    for (int k = 0; k < n; k++) r->order[k] = rk[k].i;
    r->n_order = n;
    free(rk);
}

/* Step 4: add heads in order; keep one only while the combined loss is within budget. */
static void greedy(planner *p, autoplan_result *r) {
    r->loss = r->baseline;
    for (int k = 0; k < r->n_order; k++) {
        int i = r->order[k];
        autoplan_head *h = &r->ph[i];
        view_set(p, i, h->cand);
        double loss = view_loss(p, NULL), rel = (loss - r->baseline) / r->baseline;
        h->tried = 1, h->loss_tried = loss;
        h->chosen = rel <= p->c->budget;
        if (h->chosen) r->loss = loss;
        else view_set(p, i, -1);
        emit(p, (autoplan_event){.stage = AUTOPLAN_GREEDY, .cand = h->cand, .layer = i / r->heads,
                                 .head = i % r->heads, .loss = loss, .delta = rel,
                                 .accepted = h->chosen});
    }
}

/* Step 5: specs, an owning copy of the chosen heads' parameters, FLOP totals. */
static void finish(planner *p, autoplan_result *r) {
    sparse_heads *ch = &r->chosen;
    *ch = p->view;
    ch->h = xcalloc((size_t)p->nh, sizeof *ch->h);
    r->flops_dense = r->flops_plan = 0;
    for (int i = 0; i < p->nh; i++) {
        const sparse_head *src = &p->view.h[i];
        ch->h[i] = *src;
        r->specs[i] = src->spec;
        r->replaced += src->spec.sel != SEL_DENSE;
        r->flops_dense += head_attention_flops(&(head_spec){.sel = SEL_DENSE}, p->hs, p->T);
        r->flops_plan += head_attention_flops(&src->spec, p->hs, p->T);
        if (!src->params) continue;
        size_t n = (src->n_sel + src->n_fn) * sizeof(float);
        ch->h[i].params = xmalloc(n);
        memcpy(ch->h[i].params, src->params, n);
    }
}

/* The W windows actually evaluated: as many whole windows as the split holds, at most W. */
static int eval_windows(const dataset *d, int T, int W) {
    size_t n;
    dataset_split_tokens(d, SPLIT_VAL, &n);
    size_t full = (n - 1) / (size_t)T;
    return full < (size_t)W ? (int)full : W;
}

static void result_init(autoplan_result *r, const planner *p) {
    memset(r, 0, sizeof *r);
    r->layers = p->m->cfg.layers, r->heads = p->m->cfg.heads, r->hs = p->hs, r->T = p->T;
    r->windows = p->windows;
    r->specs = xmalloc((size_t)p->nh * sizeof *r->specs);
    r->ph = xcalloc((size_t)p->nh, sizeof *r->ph);
}

int autoplan_run(gpt_model *m, const dataset *d, const autoplan_config *c, autoplan_result *r,
                 autoplan_fn fn, void *user, sattn_err *e) {
    memset(r, 0, sizeof *r);
    if (check_inputs(m, d, c, e)) return -1;
    double t0 = time_now();
    const gpt_config *g = &m->cfg;
    planner p = {.m = m, .d = d, .c = c, .fn = fn, .user = user, .nh = g->layers * g->heads,
                 .hs = g->channels / g->heads, .T = g->max_seq};
    /* Whole windows only: a shorter tail window would change the sparse heads' kmax. */
    p.windows = eval_windows(d, p.T, c->windows);
    p.cand = xcalloc((size_t)c->n_candidates, sizeof *p.cand);
    p.saved = xmalloc((size_t)c->n_candidates * sizeof *p.saved);
    head_spec dense = head_spec_default();
    for (int k = 0; k < c->n_candidates; k++)
        p.saved[k] = head_attention_flops(&dense, p.hs, p.T) - head_attention_flops(&c->candidates[k], p.hs, p.T);
    result_init(r, &p);
    p.view = (sparse_heads){g->layers, g->heads, p.hs, p.T, xcalloc((size_t)p.nh, sizeof(sparse_head))};
    for (int i = 0; i < p.nh; i++) view_set(&p, i, -1);

    int rc = distill_candidates(&p, e);
    if (!rc) {
        r->baseline = view_loss(&p, &r->tokens);
        emit(&p, (autoplan_event){.stage = AUTOPLAN_BASELINE, .loss = r->baseline});
        score_heads(&p, r);
        greedy_order(r);
        greedy(&p, r);
        finish(&p, r);
    }
    m->attn = NULL;
    free(p.view.h);
    for (int k = 0; k < c->n_candidates; k++) sparse_heads_free(&p.cand[k]);
    free(p.cand);
    free(p.saved);
    if (rc) return autoplan_free(r), -1; /* errors leave nothing allocated in r */
    r->wall_s = time_now() - t0;
    return 0;
}

void autoplan_free(autoplan_result *r) {
    free(r->specs);
    free(r->ph);
    free(r->order);
    sparse_heads_free(&r->chosen);
    memset(r, 0, sizeof *r);
}
