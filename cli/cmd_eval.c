/* sattn eval: the hybrid model (sparse heads swapped in) against the dense teacher. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "lenpolicy.h"
#include "gpt2text.h"
#include "opts.h"
#include "sattn/crossover.h"
#include "sattn/eval_json.h"
#include "sattn/heads.h"
#include "sattn/sparse_eval.h"

static const cli_cmd EVAL = {
    "eval", NULL,
    "Per sparse head (on the teacher's own activations): selector top-1 accuracy, argmax hit rate,\n"
    "recall@k of the teacher's top-k, teacher mass captured, keys per query, relative head-output\n"
    "error; whole model: relative logit error against the teacher (first N windows, default all)\n"
    "and the loss over the WHOLE split, dense and hybrid. T for hybrid by length is the window\n"
    "length (the model's context; the split's last window may be shorter); the per-head metrics\n"
    "are always the sparse heads' own.",
    NULL};

typedef struct {
    const char *model, *heads, *data, *vocab;
    data_split split;
    int windows, batch, threads, json;
    len_flags len;
    data_format data_fmt;
} eval_args;

static int eval_parse(eval_args *a, int argc, char **argv) {
    opt_spec o[] = {
        cli_opt_model(&a->model, "the teacher: a sattn or llm.c checkpoint, safetensors or HF folder"),
        opt_required(opt_str("heads", &a->heads, "HEADS", "the sparse heads (sattn distill --out)")),
        opt_required(cli_opt_data(&a->data, NULL)),
        cli_opt_split(&a->split),
        opt_int("windows", &a->windows, 0, 1 << 30, "N",
                "windows behind the per-head metrics and the logit error (default 0: all)"),
        opt_int("batch", &a->batch, 1, 1 << 16, "B", "windows per forward"),
        cli_opt_threads(&a->threads),
        cli_opt_dense_below(&a->len.dense_below),
        cli_opt_crossover_from(&a->len.crossover_from),
        cli_opt_json(&a->json, "print the result as one JSON object (sattn report --eval reads it)"),
        cli_opt_data_format(&a->data_fmt),
        cli_opt_vocab(&a->vocab),
    };
    int r = cli_parse(&EVAL, o, CLI_N(o), argc, argv);
    return r ? r : len_flags_check("eval", &a->len);
}

static void print_table(const sparse_eval_result *r, const sparse_heads *sh, const len_choice *lc) {
    printf("%-6s %-28s %6s %6s %7s %7s %6s %8s\n", "head", "spec", "top1", "hit", "recall", "mass",
           "keys", "rel_err");
    for (int j = 0; j < r->n_heads; j++) {
        const head_metrics *h = &r->heads[j];
        char spec[128], name[16];
        head_spec_format(&sh->h[h->layer * sh->heads + h->head].spec, spec, sizeof spec);
        snprintf(name, sizeof name, "L%dH%d", h->layer, h->head);
        printf("%-6s %-28s %6.3f %6.3f %7.4f %7.4f %6.1f %8.4f\n", name, spec, h->top1, h->hit,
               h->recall, h->mass, h->keys, h->rel_err);
    }
    printf("mean recall %.4f | mean mass %.4f | mean top1 %.3f | median rel_err %.4f\n",
           r->mean_recall, r->mean_mass, r->mean_top1, r->median_rel_err);
    printf("logit rel_err %.4f (%zu windows)\n", r->logit_rel_err, r->windows);
    printf("loss dense %.4f | hybrid %.4f | ratio %.4f | change %+.4f nats (%+.2f%%) over %zu tokens\n",
           r->loss_dense, r->loss_hybrid, r->loss_hybrid / r->loss_dense, r->loss_hybrid - r->loss_dense,
           100.0 * (r->loss_hybrid / r->loss_dense - 1.0), r->tokens);
    int L = sh->layers > 0 ? sh->layers : 1;
    printf("hybrid by length: %s\nhybrid forwards: %ld with every head dense (shorter than the threshold), "
           "%ld with the sparse heads\n", lc->desc, r->fwd_dense / L, r->fwd_sparse / L);
}

int cmd_eval(int argc, char **argv) {
    eval_args a = {.split = SPLIT_VAL, .batch = 8, .len = {.dense_below = -1}};
    int r = eval_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    sattn_err e;
    gpt_model m;
    if (cli_load_model("eval", a.model, &m)) return 1;
    sparse_heads sh;
    if (heads_load(a.heads, &sh, &m.cfg, &e) != 0) return gpt_free(&m), cli_fail("eval", "%s", e.msg);
    len_choice lc;
    if (len_choose("eval", &a.len, &sh, m.cfg.channels, &lc)) return sparse_heads_free(&sh), gpt_free(&m), 1;
    dataset d;
    if (load_data_checked_vocab("eval", a.data, a.data_fmt, a.vocab, &m, "evaluating this model", a.batch,
                          m.cfg.max_seq, 0, &d)) return sparse_heads_free(&sh), gpt_free(&m), 1;
    if (dataset_check_window(&d, a.split, m.cfg.max_seq, a.data, &e)) {
        r = cli_fail("eval", "%s", e.msg);
    } else {
        cli_data_note(a.data, &d);
        if (strcmp(lc.source, "default")) fprintf(stderr, "hybrid by length: %s\n", lc.desc);
        sparse_eval_result res;
        sparse_eval_len(&m, &sh, &d, a.split, a.windows, a.batch, lc.dense_below, &res);
        if (a.json) eval_json_write(stdout, &res, &sh, d.is_bytes, lc.dense_below, lc.source);
        else print_table(&res, &sh, &lc);
        sparse_eval_free(&res);
    }
    dataset_free(&d);
    sparse_heads_free(&sh);
    gpt_free(&m);
    return r;
}
