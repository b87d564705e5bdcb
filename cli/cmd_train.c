/* sattn train: flags -> train_config + model config, then train_run and a checkpoint. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "sattn/train.h"

static const char TRAIN_HELP[] =
    "usage: sattn train --data PATH --out PATH [options]\n"
    "Trains a GPT-2 with full attention on a text file (bytes, V=256) or an llm.c token file.\n"
    "  --data PATH       corpus; train = first 90%%, validation = last 10%%\n"
    "  --out PATH        checkpoint to write (atomically, at the end)\n"
    "  --layers L        transformer blocks            (default 4)\n"
    "  --heads H         attention heads, divides dim  (default 4)\n"
    "  --dim C           channels                      (default 128)\n"
    "  --seq T           context length                (default 64)\n"
    "  --batch B         sequences per step            (default 12)\n"
    "  --steps N         optimizer steps in all        (default 2000)\n"
    "  --lr X            peak learning rate            (default 1e-3)\n"
    "  --min-lr X        final learning rate (cosine)  (default 1e-4)\n"
    "  --warmup N        linear warmup steps           (default 100)\n"
    "  --wd X            AdamW weight decay, 2-D weights only (default 0.1)\n"
    "  --beta2 X         AdamW beta2                   (default 0.99)\n"
    "  --clip X          gradient-norm clip, 0 = off   (default 1)\n"
    "  --seed S          initialisation and batch seed (default 1337)\n"
    "  --threads N       OpenMP threads                (default: all cores)\n"
    "  --eval-every N    validation estimate every N steps on --eval-tokens tokens\n"
    "                    (default: --steps/10; 0 = none)\n"
    "  --eval-tokens N   tokens of the validation split for that estimate (default 8192)\n"
    "  --save-every N    also write the checkpoint every N steps (atomically)\n"
    "  --stop-at N       stop after step N of the --steps schedule (resume later with --resume)\n"
    "  --resume PATH     continue a sattn checkpoint exactly (model shape comes from it;\n"
    "                    pass the same --steps and schedule flags as the first run: a\n"
    "                    different --batch, --seq, --steps, --warmup, --lr, --min-lr, --clip,\n"
    "                    --wd, --beta2 or --seed is refused)\n"
    "  --override-schedule  let --resume continue with other schedule flags\n"
    "  --format F        sattn (default; keeps optimizer state for --resume) or llmc\n"
    "  --json            print the final summary as one JSON object\n"
    CLI_DATA_FORMAT_HELP
    "At the end the loss over the WHOLE validation split is printed.\n";

enum { O_DATA = 256, O_OUT, O_LAYERS, O_HEADS, O_DIM, O_SEQ, O_BATCH, O_STEPS, O_LR, O_MINLR,
       O_WARMUP, O_WD, O_BETA2, O_CLIP, O_SEED, O_THREADS, O_EVERY, O_ETOK, O_RESUME, O_FORMAT,
       O_JSON, O_SAVE, O_STOP, O_OVERRIDE, O_DFMT, O_HELP };

static const struct option TRAIN_OPTS[] = {
    {"data", 1, 0, O_DATA},       {"out", 1, 0, O_OUT},         {"layers", 1, 0, O_LAYERS},
    {"heads", 1, 0, O_HEADS},     {"dim", 1, 0, O_DIM},         {"seq", 1, 0, O_SEQ},
    {"batch", 1, 0, O_BATCH},     {"steps", 1, 0, O_STEPS},     {"lr", 1, 0, O_LR},
    {"min-lr", 1, 0, O_MINLR},    {"warmup", 1, 0, O_WARMUP},   {"wd", 1, 0, O_WD},
    {"beta2", 1, 0, O_BETA2},     {"clip", 1, 0, O_CLIP},       {"seed", 1, 0, O_SEED},
    {"threads", 1, 0, O_THREADS}, {"eval-every", 1, 0, O_EVERY}, {"eval-tokens", 1, 0, O_ETOK},
    {"resume", 1, 0, O_RESUME},   {"format", 1, 0, O_FORMAT},   {"json", 0, 0, O_JSON},
    {"save-every", 1, 0, O_SAVE}, {"stop-at", 1, 0, O_STOP},   {"help", 0, 0, O_HELP},
    {"override-schedule", 0, 0, O_OVERRIDE},                    {"data-format", 1, 0, O_DFMT},
    {0, 0, 0, 0}};

static int train_parse_one(train_args *a, int c, const char *v) {
    const char *cmd = "train";
    const char *name = NULL;
    for (const struct option *o = TRAIN_OPTS; o->name; o++)
        if (o->val == c) name = o->name;
    switch (c) {
    case O_DATA: a->data = v; return 0;
    case O_OUT: a->out = v; return 0;
    case O_RESUME: a->resume = v; return 0;
    case O_JSON: a->json = 1; return 0;
    case O_OVERRIDE: a->override_schedule = 1; return 0;
    case O_DFMT: return cli_data_format(cmd, v, &a->data_fmt) ? -1 : 0;
    case O_LAYERS: a->shape_given = 1; return arg_int(cmd, name, v, 1, 1024, &a->cfg.layers);
    case O_HEADS: a->shape_given = 1; return arg_int(cmd, name, v, 1, 1024, &a->cfg.heads);
    case O_DIM: a->shape_given = 1; return arg_int(cmd, name, v, 1, 65536, &a->cfg.channels);
    case O_SEQ: return arg_int(cmd, name, v, 1, 1 << 20, &a->tc.seq);
    case O_BATCH: return arg_int(cmd, name, v, 1, 1 << 20, &a->tc.batch);
    case O_STEPS: return arg_int(cmd, name, v, 1, 1 << 30, &a->tc.steps);
    case O_WARMUP: return arg_int(cmd, name, v, 0, 1 << 30, &a->tc.warmup);
    case O_EVERY: return arg_int(cmd, name, v, 0, 1 << 30, &a->tc.eval_every);
    case O_ETOK: return arg_int(cmd, name, v, 1, 1 << 30, &a->tc.eval_tokens);
    case O_THREADS: return arg_int(cmd, name, v, 1, 1024, &a->threads);
    case O_SAVE: return arg_int(cmd, name, v, 1, 1 << 30, &a->save_every);
    case O_STOP: return arg_int(cmd, name, v, 1, 1 << 30, &a->tc.stop_at);
    case O_LR: return arg_float(cmd, name, v, 0, 1, 10, &a->tc.lr);
    case O_MINLR: return arg_float(cmd, name, v, 0, 0, 10, &a->tc.min_lr);
    case O_WD: return arg_float(cmd, name, v, 0, 0, 10, &a->tc.opt.weight_decay);
    case O_BETA2: return arg_float(cmd, name, v, 0, 0, 0.999999, &a->tc.opt.beta2);
    case O_CLIP: return arg_float(cmd, name, v, 0, 0, 1e9, &a->tc.clip);
    case O_SEED: return arg_u64(cmd, name, v, &a->seed);
    case O_FORMAT:
        if (!strcmp(v, "sattn")) a->format = CKPT_SATTN;
        else if (!strcmp(v, "llmc")) a->format = CKPT_LLMC;
        else return cli_fail(cmd, "--format: expected 'sattn' or 'llmc', got '%s'", v), -1;
        return 0;
    }
    return -1;
}

train_args train_args_default(void) {
    train_args a = {0};
    a.tc = train_config_default();
    a.cfg = (gpt_config){.layers = 4, .heads = 4, .channels = 128};
    a.seed = 1337;
    a.tc.eval_every = -1; /* resolved to steps/10 once --steps is known */
    a.format = CKPT_SATTN;
    return a;
}

/* Returns 0 to go on, 1 on a bad flag, 2 after --help. */
static int train_parse(train_args *a, int argc, char **argv) {
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", TRAIN_OPTS, NULL)) != -1) {
        if (c == O_HELP) return fputs(TRAIN_HELP, stdout), 2;
        if (c == '?' || c == ':') return cli_usage_error("train", c, argc, argv);
        if (train_parse_one(a, c, optarg) != 0) return 1;
    }
    if (optind < argc) return cli_usage_error("train", 0, argc, argv);
    if (!a->data) return cli_fail("train", "--data PATH is required");
    if (!a->out) return cli_fail("train", "--out PATH is required");
    if (a->tc.eval_every < 0) a->tc.eval_every = a->tc.steps / 10;
    if (a->tc.stop_at > a->tc.steps)
        return cli_fail("train", "--stop-at %d is beyond --steps %d", a->tc.stop_at, a->tc.steps);
    if (a->tc.min_lr > a->tc.lr)
        return cli_fail("train", "--min-lr %g is larger than --lr %g", a->tc.min_lr, a->tc.lr);
    return 0;
}

int cmd_train(int argc, char **argv) {
    train_args a = train_args_default();
    int r = train_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    return train_execute(&a, "train");
}
