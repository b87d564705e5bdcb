#define _POSIX_C_SOURCE 200809L /* setenv, execv */
/* sattn: command-line front end. Each subcommand parses flags and calls the library. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"

static const char MAIN_HELP[] =
    "usage: sattn COMMAND [options]   (sattn COMMAND --help for each)\n"
    "  train        train a GPT-2 with full attention on a corpus\n"
    "  loss         loss and bits per byte of a model over a whole data split\n"
    "  sample       generate text from a model\n"
    "  demo         the whole chain on the default corpus (train, teacher stats, distill, eval);\n"
    "               --preset seed re-runs the original project's experiment\n"
    "  bench-train  training throughput (tokens/s, GFLOP/s) on standard configs\n"
    "  bench-gemm   oneDNN vs OpenBLAS sgemm on the model's matrix shapes\n"
    "  collect      teacher signals per head (stats, top-k keys) into a shard; --read inspects one\n"
    "  distill      train sparse heads (selector + head function) for a plan against a model\n"
    "  eval         the hybrid model (sparse heads swapped in) against the dense teacher\n"
    "  plan         automatic plan: replace heads by least loss per FLOP saved within a loss budget\n"
    "  finetune     recovery fine-tuning of the hybrid model on the language-modelling loss\n"
    "  flops        analytic FLOPs, bytes and memory of one attention layer; crossover T*\n"
    "  bench        measured time of one attention layer (prefill, decode); measured vs analytic T*\n"
    "  count        instrumented multiply-add counts of the kernels vs the analytic model (make count)\n"
    "  report       report.md and PNG plots (gnuplot): cost model, bench CSV, eval JSONs\n";

/* ---- loss ---- */

static const char LOSS_HELP[] =
    "usage: sattn loss --model PATH --data PATH [--split val|train] [--batch B] [--threads N] [--json]\n"
    "Mean next-token loss over the WHOLE split, in non-overlapping windows of the model's\n"
    "context (deterministic). Prints loss (nats) and bits_per_byte (bits_per_token for token files).\n"
    CLI_DATA_FORMAT_HELP;

enum { L_MODEL = 256, L_DATA, L_SPLIT, L_BATCH, L_THREADS, L_JSON, L_DFMT, L_HELP };
static const struct option LOSS_OPTS[] = {
    {"model", 1, 0, L_MODEL}, {"data", 1, 0, L_DATA},       {"split", 1, 0, L_SPLIT},
    {"batch", 1, 0, L_BATCH}, {"threads", 1, 0, L_THREADS}, {"json", 0, 0, L_JSON},
    {"help", 0, 0, L_HELP},   {"data-format", 1, 0, L_DFMT}, {0, 0, 0, 0}};

typedef struct {
    const char *model, *data;
    data_split split;
    int batch, threads, json;
    data_format data_fmt;
} loss_args;

static int loss_parse(loss_args *a, int argc, char **argv) {
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LOSS_OPTS, NULL)) != -1) {
        switch (c) {
        case L_HELP: fputs(LOSS_HELP, stdout); return 2;
        case L_MODEL: a->model = optarg; break;
        case L_DATA: a->data = optarg; break;
        case L_JSON: a->json = 1; break;
        case L_DFMT: if (cli_data_format("loss", optarg, &a->data_fmt)) return 1; break;
        case L_BATCH: if (arg_int("loss", "batch", optarg, 1, 1 << 16, &a->batch)) return 1; break;
        case L_THREADS: if (arg_int("loss", "threads", optarg, 1, 1024, &a->threads)) return 1; break;
        case L_SPLIT:
            if (!strcmp(optarg, "val")) a->split = SPLIT_VAL;
            else if (!strcmp(optarg, "train")) a->split = SPLIT_TRAIN;
            else return cli_fail("loss", "--split: expected 'val' or 'train', got '%s'", optarg);
            break;
        default: return cli_usage_error("loss", c, argc, argv);
        }
    }
    if (optind < argc) return cli_usage_error("loss", 0, argc, argv);
    if (!a->model) return cli_fail("loss", "--model PATH is required");
    if (!a->data) return cli_fail("loss", "--data PATH is required");
    return 0;
}

int cmd_loss(int argc, char **argv) {
    loss_args a = {.split = SPLIT_VAL, .batch = 8};
    int r = loss_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    sattn_err e;
    gpt_model m;
    if (ckpt_load(a.model, &m, NULL, &e) != 0) return cli_fail("loss", "%s", e.msg);
    dataset d;
    if (load_data_for_model("loss", a.data, a.data_fmt, &m, &d)) return gpt_free(&m), 1;
    if (cli_mem_check_model("loss", "evaluating this model", &m.cfg, a.batch, m.cfg.max_seq, 0,
                            (double)d.n_tokens * 2))
        return dataset_free(&d), gpt_free(&m), 1;
    size_t n;
    dataset_split_tokens(&d, a.split, &n);
    if (n < 2) {
        gpt_free(&m);
        dataset_free(&d);
        return cli_fail("loss", "%s: the %s split has %zu tokens, need at least 2", a.data,
                        a.split == SPLIT_VAL ? "val" : "train", n);
    }
    cli_data_note(a.data, &d);
    size_t tokens;
    double loss = eval_split_loss(&m, &d, a.split, m.cfg.max_seq, a.batch, 0, &tokens);
    const char *unit = d.is_bytes ? "bits_per_byte" : "bits_per_token";
    if (a.json)
        printf("{\"loss\": %.6f, \"%s\": %.6f, \"tokens\": %zu, \"split\": \"%s\"}\n", loss, unit,
               loss / log(2.0), tokens, a.split == SPLIT_VAL ? "val" : "train");
    else
        printf("loss %.6f\n%s %.6f\ntokens %zu\n", loss, unit, loss / log(2.0), tokens);
    gpt_free(&m);
    dataset_free(&d);
    return 0;
}

/* OpenMP threads that wait for work spin by default (libgomp: 300,000 spins), which is
 * fastest on an idle machine and collapses on a busy one: with one other busy process on
 * 2 cores, bench-train config B fell to 0.38 of its quiet speed, against 0.53 with passive
 * waits, which cost about 5 % when quiet (docs/reliability.md, "Under load"). A user's
 * machine is rarely idle, so passive is sattn's default. libgomp reads the policy from the
 * environment when it loads, before main, so setting it means executing once more; a
 * user who set OMP_WAIT_POLICY or GOMP_SPINCOUNT keeps that choice. */
static void default_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* no /proc: run on with the runtime's default (the variable now set stops a loop) */
}

int main(int argc, char **argv) {
    default_wait_policy(argv);
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", cmd_train},       {"loss", cmd_loss},
                {"sample", cmd_sample},     {"demo", cmd_demo},
                {"bench-train", cmd_bench_train}, {"bench-gemm", cmd_bench_gemm},
                {"collect", cmd_collect}, {"distill", cmd_distill},
                {"plan", cmd_plan},
                {"eval", cmd_eval}, {"finetune", cmd_finetune},
                {"flops", cmd_flops}, {"report", cmd_report},
                {"bench", cmd_bench_attn}, {"count", cmd_count}};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(MAIN_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (cli_take_max_mem(&argc, argv)) return 1;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fputs("sattn: unknown command '", stderr);
    cli_fput_escaped(argv[1], stderr);
    fputs("' (see sattn --help)\n", stderr);
    return 1;
}
