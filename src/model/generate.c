/* generate: KV-cache prefill and decode, and sampling on them (sattn/generate.h). */
#include "sattn/generate.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/flash.h"
#include "sattn/rope.h"

/* One token's activations after the two caches, in floats: x, ln, qkv, atty, proj (C, C,
 * 3C, C, C), fch and its GELU (8C), lnf (C), logits, probs (Vp each), stat (4). */
static size_t token_floats(const gpt_config *c) {
    return 16 * (size_t)c->channels + 2 * (size_t)c->padded_vocab + 4;
}

static size_t cache_floats(const gpt_config *c) {
    return (size_t)c->layers * (size_t)c->max_seq * (size_t)c->channels;
}

double gen_mem_bytes(const gpt_config *c) {
    return 4.0 * (2.0 * (double)cache_floats(c) + (double)token_floats(c));
}

void gen_init(gen_state *g, gpt_model *m, const gen_decode_hook *hook) {
    const gpt_config *c = &m->cfg;
    size_t C = (size_t)c->channels, cache = cache_floats(c);
    memset(g, 0, sizeof *g);
    g->m = m, g->hook = hook, g->cap = c->max_seq;
    g->mem = xmalloc_aligned((2 * cache + token_floats(c)) * sizeof(float));
    g->kc = g->mem, g->vc = g->kc + cache;
    g->x = g->vc + cache, g->ln = g->x + C, g->qkv = g->ln + C, g->atty = g->qkv + 3 * C;
    g->proj = g->atty + C, g->fch = g->proj + C, g->lnf = g->fch + 8 * C, g->logits = g->lnf + C;
    g->probs = g->logits + c->padded_vocab, g->stat = g->probs + c->padded_vocab;
}

void gen_free(gen_state *g) {
    free(g->mem);
    memset(g, 0, sizeof *g);
}

/* The one place where a decoded token gets its position `pos`:
 *   POS_EMBED: x (C) is the token's embedding row; learned positions add wpe[pos] here.
 *   POS_QKV:   qkv (3C) is the layer's fresh projection of the token; rotary positions
 *              rotate its q and k here (rope.h with T = 1, pos0 = pos), exactly as
 *              gpt_forward rotates row pos of the window.
 * The prefill (gpt_forward) places the window at positions 0..n-1 itself. */
enum { POS_EMBED, POS_QKV };
static void token_position(const gpt_model *m, int stage, float *buf, int pos) {
    const gpt_config *c = &m->cfg;
    int C = c->channels;
    if (c->pos == GPT_POS_ROPE) {
        if (stage == POS_QKV) rope_forward(buf, 1, 1, C, c->heads, pos, c->rope_base, c->rope_scale);
        return;
    }
    if (stage != POS_EMBED) return; /* learned positions: nothing to do on q, k */
    const float *p = m->params.wpe + (size_t)pos * C;
    for (int i = 0; i < C; i++) buf[i] += p[i];
}

/* A decode step's row operations are small: waking a thread team (OpenMP waits passively
 * here, docs/reliability.md) costs tens of microseconds, about 30 times a token. Measured on
 * L4 C256 at T = 4096 (2 threads, AMD EPYC): the tile plan's decode took 2.59 ms a token with
 * every row operation threaded, 0.39 ms on one thread. So the step runs single-threaded
 * (gen_decode), except the attention (long over the cache) and products of at least this
 * many multiply-adds. */
#define DECODE_THREADED_MACS (1 << 21)

/* out (OC) = w (OC, IC) inp + bias: matmul_forward for one row, without its
 * parallel bias copy (a thread team for one row costs more than the copy). */
static void linear1(const gen_state *g, float *out, const float *inp, const float *w, const float *bias, int IC,
                    int OC) {
    int big = (size_t)OC * IC >= DECODE_THREADED_MACS;
    if (big) omp_set_num_threads(g->threads);
    memcpy(out, bias, (size_t)OC * sizeof(float));
    nn_sgemm(0, 1, 1, OC, IC, 1.0f, inp, IC, w, IC, 1.0f, out, OC);
    if (big) omp_set_num_threads(1);
}

static void add_into(float *x, const float *y, int n) {
    for (int i = 0; i < n; i++) x[i] += y[i];
}

/* Layer l on the token at position pos (x is the residual stream, C): the block of
 * model.c's block_forward for one row, with k, v appended to the cache as row pos. */
static void decode_layer(gen_state *g, int l, int pos) {
    gpt_model *m = g->m;
    const gpt_params *p = &m->params;
    int C = m->cfg.channels, H = m->cfg.heads;
    size_t lc = (size_t)l * C;
    float *kc = g->kc + (size_t)l * g->cap * C, *vc = g->vc + (size_t)l * g->cap * C;
    layernorm_forward(g->ln, g->stat, g->stat + 1, g->x, p->ln1w + lc, p->ln1b + lc, 1, C);
    linear1(g, g->qkv, g->ln, p->qkvw + 3 * lc * C, p->qkvb + 3 * lc, C, 3 * C);
    token_position(m, POS_QKV, g->qkv, pos);
    memcpy(kc + (size_t)pos * C, g->qkv + C, (size_t)C * sizeof(float));
    memcpy(vc + (size_t)pos * C, g->qkv + 2 * C, (size_t)C * sizeof(float));
    omp_set_num_threads(g->threads); /* the attention reads the whole cache */
    if (g->hook) g->hook->decode(g->hook->ctx, l, g->atty, g->qkv, kc, vc, pos + 1);
    else attention_decode_step(g->atty, g->qkv, kc, vc, pos + 1, C, H);
    omp_set_num_threads(1);
    linear1(g, g->proj, g->atty, p->attprojw + lc * C, p->attprojb + lc, C, C);
    add_into(g->x, g->proj, C);
    layernorm_forward(g->ln, g->stat, g->stat + 1, g->x, p->ln2w + lc, p->ln2b + lc, 1, C);
    linear1(g, g->fch, g->ln, p->fcw + 4 * lc * C, p->fcb + 4 * lc, C, 4 * C);
    gelu_forward(g->fch + 4 * C, g->fch, 4 * (size_t)C);
    linear1(g, g->proj, g->fch + 4 * C, p->fcprojw + 4 * lc * C, p->fcprojb + lc, 4 * C, C);
    add_into(g->x, g->proj, C);
}

/* Final LayerNorm, tied head and softmax of the residual row x (C). */
static const float *head_probs(gen_state *g, const float *x) {
    gpt_model *m = g->m;
    const gpt_config *c = &m->cfg;
    layernorm_forward(g->lnf, g->stat, g->stat + 1, x, m->params.lnfw, m->params.lnfb, 1, c->channels);
    nn_sgemm(0, 1, 1, c->padded_vocab, c->channels, 1.0f, g->lnf, c->channels, m->params.wte, c->channels,
             0.0f, g->logits, c->padded_vocab);
    crossentropy_softmax_forward(g->probs, g->stat + 2, g->logits, NULL, 1, c->vocab, c->padded_vocab);
    return g->probs;
}

const float *gen_decode(gen_state *g, int token) {
    gpt_model *m = g->m;
    const gpt_config *c = &m->cfg;
    if (g->n < 1 || g->n >= g->cap || token < 0 || token >= c->vocab)
        die_at(__FILE__, __LINE__, "gen_decode: position %d of %d (prefill first), token %d of %d", g->n,
               g->cap, token, c->vocab);
    double t0 = time_now();
    int C = c->channels, pos = g->n;
    g->threads = omp_get_max_threads();
    omp_set_num_threads(1); /* DECODE_THREADED_MACS */
    memcpy(g->x, m->params.wte + (size_t)token * C, (size_t)C * sizeof(float));
    token_position(m, POS_EMBED, g->x, pos);
    for (int l = 0; l < c->layers; l++) decode_layer(g, l, pos);
    g->n++;
    int big = (size_t)c->padded_vocab * c->channels >= DECODE_THREADED_MACS;
    if (big) omp_set_num_threads(g->threads);
    const float *probs = head_probs(g, g->x);
    omp_set_num_threads(g->threads);
    g->st.decodes++;
    g->st.decode_s += time_now() - t0;
    return probs;
}

/* Each layer's k, v rows of the last forward (acts.qkv, (L, 1, n, 3C)) into the cache. */
static void cache_from_acts(gen_state *g, int n) {
    const gpt_config *c = &g->m->cfg;
    size_t C = (size_t)c->channels;
    for (int l = 0; l < c->layers; l++) {
        const float *qkv = g->m->acts.qkv + (size_t)l * n * 3 * C;
        float *kc = g->kc + (size_t)l * g->cap * C, *vc = g->vc + (size_t)l * g->cap * C;
        for (int t = 0; t < n; t++) {
            memcpy(kc + t * C, qkv + t * 3 * C + C, C * sizeof(float));
            memcpy(vc + t * C, qkv + t * 3 * C + 2 * C, C * sizeof(float));
        }
        if (g->hook) g->hook->prefilled(g->hook->ctx, l, qkv, (int)(3 * C), kc, vc, n);
    }
}

const float *gen_prefill(gen_state *g, const int *tokens, int n) {
    gpt_model *m = g->m;
    const gpt_config *c = &m->cfg;
    if (n < 1 || n > g->cap) die_at(__FILE__, __LINE__, "gen_prefill: %d tokens, cache of %d", n, g->cap);
    double t0 = time_now();
    gpt_forward(m, tokens, NULL, 1, n);
    cache_from_acts(g, n);
    g->n = n;
    size_t last = (size_t)(n - 1) * c->padded_vocab;
    memcpy(g->logits, m->acts.logits + last, (size_t)c->padded_vocab * sizeof(float));
    memcpy(g->probs, m->acts.probs + last, (size_t)c->padded_vocab * sizeof(float));
    g->st.prefills++;
    g->st.prefill_tokens += n;
    g->st.prefill_s += time_now() - t0;
    return g->probs;
}

void gen_rewind(gen_state *g, int n) {
    if (n < 1 || n > g->n) die_at(__FILE__, __LINE__, "gen_rewind to %d of %d cached positions", n, g->n);
    g->n = n;
    if (!g->hook) return;
    size_t C = (size_t)g->m->cfg.channels;
    for (int l = 0; l < g->m->cfg.layers; l++)
        g->hook->prefilled(g->hook->ctx, l, NULL, 0, g->kc + (size_t)l * g->cap * C,
                           g->vc + (size_t)l * g->cap * C, n);
}

int gen_keep(int max_seq) { return max_seq / 2 > 1 ? max_seq / 2 : 1; }

int gen_window_start(int start, int len, int max_seq) {
    return len - start > max_seq ? len - gen_keep(max_seq) : start;
}

int gen_sample_token(const float *probs, int V, float temperature, rng_t *rng) {
    int best = 0;
    for (int j = 1; j < V; j++) best = probs[j] > probs[best] ? j : best;
    if (temperature <= 0.0f) return best;
    /* p^(1/temp) renormalised equals softmax(logits / temp) */
    double total = 0.0;
    for (int j = 0; j < V; j++) total += pow(probs[j], 1.0 / temperature);
    double u = rng_uniform(rng) * total, acc = 0.0;
    for (int j = 0; j < V; j++) {
        acc += pow(probs[j], 1.0 / temperature);
        if (u < acc) return j;
    }
    return best;
}

void gen_sample(gen_state *g, int *ctx, int *len, int n, float temperature, rng_t *rng) {
    const gpt_config *c = &g->m->cfg;
    const gen_decode_hook *hk = g->hook;
    if (n < 1) return;
    int start = gen_window_start(0, *len, c->max_seq);
    const float *p = gen_prefill(g, ctx + start, *len - start);
    for (int i = 0;; i++) {
        int tok = gen_sample_token(p, c->vocab, temperature, rng);
        ctx[(*len)++] = tok;
        if (i + 1 == n) return;
        int ns = gen_window_start(start, *len, c->max_seq);
        if (ns != start || (hk && hk->stale && hk->stale(hk->ctx, *len - start)))
            start = ns, p = gen_prefill(g, ctx + start, *len - start);
        else
            p = gen_decode(g, tok);
    }
}
