#define _POSIX_C_SOURCE 200809L /* setenv, execv */
/* sattn: command-line front end: the OpenMP wait policy, --max-mem, and dispatch to the
 * subcommands (cli/cmd_NAME.c each, declared in cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "sattn/dist.h"

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
    "  report       report.md and PNG plots (gnuplot): cost model, bench CSV, eval JSONs\n"
    "  bench-generate  generation speed with the KV cache (prefill, decode ms/token) vs the recompute\n"

    "  task         passkey, needle or MQAR retrieval accuracy over lengths x depths\n"
    "  tokenize     a text file into GPT-2 tokens (an llm.c token file)\n"
    "  convert      a model between sattn, llm.c, safetensors and Hugging Face GPT-2 folders\n";

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

/* The commands that run as the ranks of a data-parallel job (docs/mpi.md). */
static const struct {
    const char *name;
    int (*fn)(int, char **, dist_ctx *);
} JOB_CMDS[] = {{"train", cmd_train}, {"distill", cmd_distill}, {"finetune", cmd_finetune}};

/* Under mpirun: train, distill and finetune join the job (rank 0 alone prints); any other
 * command is refused once, by rank 0, rather than run N times over the same files.
 * Returns the exit status, or -1 when not launched as a job. */
static int run_job(int argc, char **argv) {
    int n;
    if (!dist_launched(&n)) return -1;
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    int rank0 = !r || atoi(r) == 0;
    dist_ctx d;
    sattn_err e;
    if (dist_init(&d, &e) != 0) {
        if (rank0) fprintf(stderr, "sattn %s: %s\n", argv[1], e.msg);
        return 1;
    }
    dist_quiet(&d);
    int rc = -2;
    for (size_t i = 0; i < sizeof JOB_CMDS / sizeof *JOB_CMDS; i++)
        if (!strcmp(argv[1], JOB_CMDS[i].name)) rc = JOB_CMDS[i].fn(argc - 1, argv + 1, &d);
    if (rc == -2 && d.size == 1) rc = -1; /* mpirun -np 1: any command, as one process */
    else if (rc == -2) {
        if (d.rank == 0)
            fprintf(stderr, "sattn %s: runs as one process (expected mpirun -np N only for train, distill "
                            "and finetune; docs/mpi.md)\n", argv[1]);
        rc = 1;
    }
    dist_finalize(&d);
    return rc;
}

static int cmd_train_one(int argc, char **argv) { return cmd_train(argc, argv, NULL); }
static int cmd_distill_one(int argc, char **argv) { return cmd_distill(argc, argv, NULL); }
static int cmd_finetune_one(int argc, char **argv) { return cmd_finetune(argc, argv, NULL); }

int main(int argc, char **argv) {
    default_wait_policy(argv);
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", cmd_train_one},   {"loss", cmd_loss},
                {"sample", cmd_sample},     {"demo", cmd_demo},
                {"bench-train", cmd_bench_train}, {"bench-gemm", cmd_bench_gemm},
                {"collect", cmd_collect}, {"distill", cmd_distill_one},
                {"plan", cmd_plan},
                {"eval", cmd_eval}, {"finetune", cmd_finetune_one},
                {"flops", cmd_flops}, {"report", cmd_report},
                {"bench", cmd_bench}, {"count", cmd_count},
                {"bench-generate", cmd_bench_generate},

                {"task", cmd_task}, {"convert", cmd_convert},
                {"tokenize", cmd_tokenize}};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(MAIN_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (cli_take_max_mem(&argc, argv)) return 1;
    int job = run_job(argc, argv);
    if (job >= 0) return job;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fputs("sattn: unknown command '", stderr);
    cli_fput_escaped(argv[1], stderr);
    fputs("' (see sattn --help)\n", stderr);
    return 1;
}
