/* sattn train: flags -> train_config + model config, then train_execute (train_exec.c). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/train.h"
#include "train_pos.h"

static const cli_cmd TRAIN = {
    "train", NULL,
    "Trains a GPT-2 with full attention on a text file (bytes, V=256) or an llm.c token file.",
    "At the end the loss over the WHOLE validation split is printed."};

static const char *const FORMATS[] = {"sattn", "llmc", NULL};
static const int FORMAT_VALUES[] = {CKPT_SATTN, CKPT_LLMC};
static const char *const MIX_LOSSES[] = {"all", "answers", NULL};
static const int MIX_LOSS_VALUES[] = {0, 1};
static const char *const MIX_LENGTHS[] = {"full", "varied", NULL};
_Static_assert(sizeof(ckpt_format) == sizeof(int), "ckpt_format is not an int");

train_args train_args_default(void) {
    train_args a = {0};
    a.tc = train_config_default();
    a.cfg = (gpt_config){.layers = 4, .heads = 4, .channels = 128, .attn = CLI_ATTN_AUTO};
    a.seed = 1337;
    a.tc.eval_every = -1; /* resolved to steps/10 once --steps is known */
    a.format = CKPT_SATTN;
    a.rope_base = GPT_ROPE_BASE_DEFAULT;
    a.rope_scale = 1.0f;
    a.rope_extend = TRAIN_EXTEND_NTK; /* docs/rope.md: better than pi on both corpora */
    return a;
}

/* --mix SPEC into a task_mix. */
static int parse_mix(const opt_spec *o, const char *s, sattn_err *e) {
    char why[SATTN_ERR_LEN];
    if (!task_mix_parse(s, o->target, e)) return 0;
    snprintf(why, sizeof why, "%s", e->msg);
    return err_set(e, "--mix: %s", why);
}

/* --attn: the dense kernels as cli_opt_attn's, or sparse:PLAN (native sparse training). */
static int parse_attn(const opt_spec *o, const char *s, sattn_err *e) {
    train_args *a = o->target;
    static const char *const names[] = {"auto", "naive", "flash"};
    static const int values[] = {CLI_ATTN_AUTO, GPT_ATTN_NAIVE, GPT_ATTN_FLASH};
    a->sparse_plan = NULL;
    if (!strncmp(s, "sparse:", 7)) {
        if (!s[7]) return err_set(e, "--attn sparse: expected a plan after 'sparse:', e.g. sparse:all:block+softmax:b=16,n=4");
        a->sparse_plan = s + 7;
        a->cfg.attn = CLI_ATTN_AUTO; /* the dense warm-up's kernel */
        return 0;
    }
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) return a->cfg.attn = values[i], 0;
    return err_set(e, "--attn: '%s' is not one of auto, naive, flash, sparse:PLAN", s);
}

/* The flags of native sparse training that need each other. 0 or an exit status. */
static int sparse_flags_check(const train_args *a, const opt_spec *o, int n) {
    const char *cmd = "train";
    if (!a->sparse_plan) {
        if (opts_seen(o, n, "dense-warmup"))
            return cli_fail(cmd, "--dense-warmup: applies to --attn sparse:PLAN only (the heads run dense before that step)");
        if (a->heads_out) return cli_fail(cmd, "--heads-out: applies to --attn sparse:PLAN only");
        return 0;
    }
    if (!a->heads_out)
        return cli_fail(cmd, "--attn sparse:PLAN: expected --heads-out PATH too (the heads file that loss, "
                             "sample, task and eval load with --heads)");
    if (a->format == CKPT_LLMC)
        return cli_fail(cmd, "--format llmc: cannot hold a sparse run (no plan, no optimizer state); expected "
                             "--format sattn with --attn sparse:PLAN");
    if (a->dense_warmup >= a->tc.steps)
        return cli_fail(cmd, "--dense-warmup %d: expected fewer than --steps %d (the sparse heads would "
                             "never run)", a->dense_warmup, a->tc.steps);
    return 0;
}

/* Returns 0 to go on, 1 on a bad flag, 2 after --help.
 * (long: the option table is one declaration, one entry per flag) */
static int train_parse(train_args *a, int argc, char **argv) {
    opt_spec o[] = {
        opt_required(cli_opt_data(&a->data, NULL)),
        cli_opt_out(&a->out, "PATH", "checkpoint to write (atomically, at the end)"),
        opt_int("layers", &a->cfg.layers, 1, 1024, "L", "transformer blocks"),
        opt_int("heads", &a->cfg.heads, 1, 1024, "H", "attention heads, divides dim"),
        opt_int("dim", &a->cfg.channels, 1, 65536, "C", "channels"),
        opt_int("seq", &a->tc.seq, 1, 1 << 20, "T", "context length"),
        opt_int("batch", &a->tc.batch, 1, 1 << 20, "B",
                "sequences per step (under mpirun: over all ranks, a multiple of them)"),
        opt_int("steps", &a->tc.steps, 1, 1 << 30, "N", "optimizer steps in all"),
        opt_float("lr", &a->tc.lr, 0, 1, 10, "X", "peak learning rate"),
        opt_float("min-lr", &a->tc.min_lr, 0, 0, 10, "X", "final learning rate (cosine)"),
        opt_int("warmup", &a->tc.warmup, 0, 1 << 30, "N", "linear warmup steps"),
        opt_float("wd", &a->tc.opt.weight_decay, 0, 0, 10, "X", "AdamW weight decay, 2-D weights only"),
        opt_float("beta2", &a->tc.opt.beta2, 0, 0, 0.999999, "X", "AdamW beta2"),
        opt_float("clip", &a->tc.clip, 0, 0, 1e9, "X", "gradient-norm clip, 0 = off"),
        cli_opt_seed(&a->seed, NULL),
        opt_call("attn", a, parse_attn, "auto|naive|flash|sparse:PLAN",
                 "attention: a dense kernel, naive (keeps every head's T x T softmax),\n"
                 "flash (tiled, keeps only the log-sum-exp: memory linear in T) or auto\n"
                 "(default: flash from T = 1024 on, where it measured faster); or\n"
                 "sparse:PLAN, the plan's sparse heads as the model's own attention from\n"
                 "step 0 (or --dense-warmup), e.g. sparse:all:block+softmax:b=16,n=4\n"
                 "(needs --heads-out; docs/native_sparse.md)"),
        opt_int("dense-warmup", &a->dense_warmup, 0, 1 << 30, "N",
                "with --attn sparse:PLAN: steps 0..N-1 run every head dense (auto's\n"
                "kernel), the sparse heads from step N on"),
        opt_str("heads-out", &a->heads_out, "HEADS",
                "with --attn sparse:PLAN: the heads file to write beside --out (what\n"
                "loss, sample, task and eval take as --heads)"),
        opt_str("log-csv", &a->log_csv, "CSV",
                "the loss curve: one row per step (step, tokens, train_loss, val_loss at\n"
                "the --eval-every points and the final loss on the last row, lr, wall_s);\n"
                "sattn report --train-log plots it"),
        cli_opt_threads(&a->threads),
        opt_int("zero", &a->zero, 0, 1, "0|1",
                "under mpirun (docs/mpi.md): 0 all-reduces the gradient and every rank keeps\n"
                "all AdamW moments; 1 (ZeRO-1) reduce-scatters it, each rank keeping and\n"
                "updating only its shard of the moments, then all-gathers the weights"),
        opt_int("eval-every", &a->tc.eval_every, 0, 1 << 30, "N",
                "validation estimate every N steps on --eval-tokens tokens\n(default: --steps/10; 0 = none)"),
        opt_int("eval-tokens", &a->tc.eval_tokens, 1, 1 << 30, "N", "tokens of the validation split for that estimate"),
        opt_int("save-every", &a->save_every, 1, 1 << 30, "N",
                "also write the checkpoint every N steps (atomically; default: only at the end)"),
        opt_int("stop-at", &a->tc.stop_at, 1, 1 << 30, "N",
                "stop after step N of the --steps schedule (resume later with --resume;\n"
                "default: run every step)"),
        opt_str("resume", &a->resume, "PATH",
                "continue a sattn checkpoint exactly (model shape comes from it;\n"
                "pass the same --steps and schedule flags as the first run: a\n"
                "different --batch, --seq, --steps, --warmup, --lr, --min-lr, --clip,\n"
                "--wd, --beta2 or --seed is refused)"),
        opt_flag("override-schedule", &a->override_schedule, "let --resume continue with other schedule flags"),
        opt_enum("format", (int *)&a->format, FORMATS, FORMAT_VALUES,
                 "checkpoint format: sattn (keeps optimizer state for --resume) or llmc"),
        opt_call("mix", &a->mix, parse_mix, "SPEC",
                 "mix generated task samples of length T into each batch, e.g.\n"
                 "passkey:0.1,mqar:0.05 (tasks passkey, needle, mqar; fractions of the\n"
                 "batch's sequences, summing to at most 1; needle's filler is the training\n"
                 "split; docs/tasks.md). Default: none, the corpus only"),
        opt_enum("mix-loss", &a->mix_loss, MIX_LOSSES, MIX_LOSS_VALUES,
                 "the loss of a --mix task row: on every token (all) or only on its\n"
                 "answers (the key digits, MQAR's values), as Zoology trains MQAR"),
        opt_enum("mix-length", &a->mix_length, MIX_LENGTHS, MIX_LOSS_VALUES,
                 "passkey and needle rows: one sample of T+1 bytes (full), or a sample\n"
                 "of a length uniform in [128, T+1] after corpus text (varied)"),
        cli_opt_json(&a->json, "print the final summary as one JSON object"),
        cli_opt_data_format(&a->data_fmt),
        TRAIN_POS_OPTIONS(a),
    };
    int r = cli_parse(&TRAIN, o, CLI_N(o), argc, argv);
    if (r) return r;
    a->shape_given = opts_seen(o, CLI_N(o), "layers") || opts_seen(o, CLI_N(o), "heads") ||
                     opts_seen(o, CLI_N(o), "dim");
    if (a->tc.eval_every < 0) a->tc.eval_every = a->tc.steps / 10;
    if (a->tc.stop_at > a->tc.steps)
        return cli_fail("train", "--stop-at %d is beyond --steps %d", a->tc.stop_at, a->tc.steps);
    if (a->tc.min_lr > a->tc.lr)
        return cli_fail("train", "--min-lr %g is larger than --lr %g", a->tc.min_lr, a->tc.lr);
    if (sparse_flags_check(a, o, CLI_N(o))) return 1;
    return train_pos_check_flags(a, o, CLI_N(o), "train");
}

int cmd_train(int argc, char **argv, dist_ctx *d) {
    train_args a = train_args_default();
    int r = train_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    a.dist = d;
    return train_execute(&a, "train");
}
