/* taskeval: the retrieval-task grid scored teacher-forced (sattn/taskeval.h). */
#include "sattn/taskeval.h"

#include <math.h>
#include <stdlib.h>

double taskeval_depth(int i, int n) { return n > 1 ? (double)i / (n - 1) : 0.5; }

static int depths_of(const task_grid *g) { return g->kind == TASK_MQAR ? 1 : g->n_depths; }

int taskeval_cells(const task_grid *g) { return g->n_lengths * depths_of(g); }

static task_params params_of(const task_grid *g, int d) {
    task_params p = {.kind = g->kind, .pairs = g->pairs, .corpus = g->corpus, .n_corpus = g->n_corpus};
    p.depth = g->kind == TASK_MQAR ? 0.0 : taskeval_depth(d, g->n_depths);
    return p;
}

int taskeval_check(const task_grid *g, int max_seq, sattn_err *e) {
    if (g->n_lengths < 1) return err_set(e, "no lengths, expected at least one");
    if (g->n_depths < 1) return err_set(e, "%d depths, expected at least 1", g->n_depths);
    if (g->samples < 1 || g->batch < 1)
        return err_set(e, "%d samples per cell, batch %d: expected at least 1 each", g->samples, g->batch);
    for (int l = 0; l < g->n_lengths; l++) {
        int T = g->lengths[l];
        if (T < 1 || T > max_seq)
            return err_set(e, "length %d is above the model's context %d (a sample is T+1 tokens; "
                              "the model reads T)", T, max_seq);
        for (int d = 0; d < depths_of(g); d++) {
            task_params p = params_of(g, d);
            char why[SATTN_ERR_LEN];
            if (task_check(&p, T + 1, e)) {
                snprintf(why, sizeof why, "%s", e->msg);
                return err_set(e, "length %d: %s", T, why);
            }
        }
    }
    return 0;
}

void taskeval_score(gpt_model *m, const task_sample *s, int n, int B, int *right) {
    int T = s[0].n - 1, Vp = m->cfg.padded_vocab;
    int *in = xmalloc((size_t)B * T * sizeof *in);
    for (int i0 = 0; i0 < n; i0 += B) {
        int nb = n - i0 < B ? n - i0 : B;
        for (int b = 0; b < nb; b++)
            for (int t = 0; t < T; t++) in[(size_t)b * T + t] = s[i0 + b].tok[t];
        gpt_forward(m, in, NULL, nb, T);
        for (int b = 0; b < nb; b++)
            right[i0 + b] = task_score(&s[i0 + b], m->acts.probs + (size_t)b * T * Vp, Vp, m->cfg.vocab);
    }
    free(in);
}

/* Every sample of length T (all depths), scored in batches, summed into its cell. */
static void grid_length(gpt_model *m, const task_grid *g, int T, task_cell *cells) {
    int nd = depths_of(g), n = nd * g->samples;
    task_sample *s = xmalloc((size_t)n * sizeof *s);
    int *right = xmalloc((size_t)n * sizeof *right);
    for (int d = 0; d < nd; d++) {
        task_params p = params_of(g, d);
        for (int j = 0; j < g->samples; j++) {
            rng_t r = {task_seed(g->seed, (uint64_t)T, (uint64_t)d << 32 | (uint64_t)j)};
            task_sample_init(&s[d * g->samples + j], T + 1);
            task_generate(&p, T + 1, &r, &s[d * g->samples + j]);
        }
    }
    taskeval_score(m, s, n, g->batch, right);
    for (int d = 0; d < nd; d++) {
        task_cell *c = &cells[d];
        *c = (task_cell){.length = T, .depth = g->kind == TASK_MQAR ? NAN : taskeval_depth(d, nd),
                         .samples = g->samples};
        for (int j = 0; j < g->samples; j++) {
            const task_sample *x = &s[d * g->samples + j];
            int r = right[d * g->samples + j];
            c->answers += g->kind == TASK_MQAR ? x->n_ans : 1;
            c->correct += g->kind == TASK_MQAR ? r : r == x->n_ans;
        }
        c->accuracy = (double)c->correct / (double)c->answers;
    }
    for (int i = 0; i < n; i++) task_sample_free(&s[i]);
    free(s);
    free(right);
}

void taskeval_grid(gpt_model *m, const task_grid *g, task_cell *cells) {
    for (int l = 0; l < g->n_lengths; l++) grid_length(m, g, g->lengths[l], cells + (size_t)l * depths_of(g));
}
