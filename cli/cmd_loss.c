/* sattn loss: the mean next-token loss of a model over a whole data split. */
#include <math.h>
#include <omp.h>
#include <stdio.h>

#include "args.h"
#include "cli.h"
#include "gpt2text.h"
#include "opts.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"

static const cli_cmd LOSS = {
    "loss", NULL,
    "Mean next-token loss over the WHOLE split, in non-overlapping windows of the model's\n"
    "context or --seq (deterministic). Prints loss (nats) and bits_per_byte (bits_per_token for token files).",
    NULL};

typedef struct {
    const char *model, *data, *heads, *vocab;
    data_split split;
    int batch, threads, json, attn;
    data_format data_fmt;
    cli_ctx ctx; /* --seq, --rope-scale, --rope-base */
} loss_args;

static int loss_parse(loss_args *a, int argc, char **argv) {
    opt_spec o[] = {
        cli_opt_model(&a->model, NULL),
        opt_required(cli_opt_data(&a->data, NULL)),
        cli_opt_split(&a->split),
        opt_int("batch", &a->batch, 1, 1 << 16, "B", "windows per forward"),
        cli_opt_threads(&a->threads),
        cli_opt_attn(&a->attn),
        opt_str("heads", &a->heads, "HEADS",
                "the loss of the hybrid model: these sparse heads swapped in (sattn\n"
                "distill, finetune or train --attn sparse:PLAN --heads-out); needs\n"
                "naive attention, or none at all when every head is sparse"),
        cli_opt_json(&a->json, "print {\"loss\", \"bits_per_byte\", \"tokens\", \"split\"} on one line"),
        cli_opt_data_format(&a->data_fmt),
        cli_opt_vocab(&a->vocab),
        cli_opt_ctx_seq(&a->ctx),
        cli_opt_ctx_rope_scale(&a->ctx),
        cli_opt_ctx_rope_base(&a->ctx),
    };
    int r = cli_parse(&LOSS, o, CLI_N(o), argc, argv);
    if (!r && a->heads && a->attn == GPT_ATTN_FLASH)
        return cli_fail("loss", "--attn flash: the sparse-head hook needs naive attention, expected --attn "
                                "naive or auto with --heads");
    return r;
}

int cmd_loss(int argc, char **argv) {
    loss_args a = {.split = SPLIT_VAL, .batch = 8, .attn = CLI_ATTN_AUTO};
    int r = loss_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    gpt_model m;
    if (cli_load_model("loss", a.model, &m)) return 1;
    if (cli_model_context("loss", &m, a.ctx.seq, a.ctx.rope_scale, a.ctx.rope_base))
        return gpt_free(&m), 1;
    int T = a.ctx.seq > 0 ? a.ctx.seq : m.cfg.max_seq;
    sparse_heads sh;
    hybrid hy;
    sattn_err e;
    if (a.heads && heads_load(a.heads, &sh, &m.cfg, &e) != 0) return gpt_free(&m), cli_fail("loss", "%s", e.msg);
    /* all heads sparse: no T x T buffer at all (GPT_ATTN_HOOK) */
    m.cfg.attn = a.heads && hybrid_all_sparse(&sh) ? GPT_ATTN_HOOK : cli_attn_resolve(a.attn, T, a.heads != NULL);
    if (a.heads) hybrid_init(&hy, &sh, m.cfg.channels, m.cfg.heads), hybrid_attach(&hy, &m);
    dataset d;
    if (load_data_checked_vocab("loss", a.data, a.data_fmt, a.vocab, &m, "evaluating this model", a.batch,
                          T, 0, &d)) {
        if (a.heads) hybrid_free(&hy), sparse_heads_free(&sh);
        return gpt_free(&m), 1;
    }
    size_t n;
    dataset_split_tokens(&d, a.split, &n);
    if (n < 2) {
        if (a.heads) hybrid_free(&hy), sparse_heads_free(&sh);
        gpt_free(&m);
        dataset_free(&d);
        return cli_fail("loss", "%s: the %s split has %zu tokens, need at least 2", a.data,
                        a.split == SPLIT_VAL ? "val" : "train", n);
    }
    cli_data_note(a.data, &d);
    size_t tokens;
    double loss = eval_split_loss(&m, &d, a.split, T, a.batch, 0, &tokens);
    const char *unit = d.is_bytes ? "bits_per_byte" : "bits_per_token";
    if (a.json)
        printf("{\"loss\": %.6f, \"%s\": %.6f, \"tokens\": %zu, \"split\": \"%s\"}\n", loss, unit,
               loss / log(2.0), tokens, a.split == SPLIT_VAL ? "val" : "train");
    else
        printf("loss %.6f\n%s %.6f\ntokens %zu\n", loss, unit, loss / log(2.0), tokens);
    if (a.heads) hybrid_detach(&m), hybrid_free(&hy), sparse_heads_free(&sh);
    gpt_free(&m);
    dataset_free(&d);
    return 0;
}
