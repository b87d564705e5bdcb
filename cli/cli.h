/* Shared pieces of the sattn subcommands. */
#ifndef SATTN_CLI_H
#define SATTN_CLI_H

#include <stdint.h>

#include "sattn/dist.h"
#include "sattn/train.h"

typedef struct {
    const char *data, *out, *resume;
    gpt_config cfg;
    int shape_given;
    train_config tc;
    uint64_t seed;
    int threads;
    ckpt_format format;
    int json;
    int save_every; /* checkpoint every N steps (0: only at the end) */
    data_format data_fmt;  /* --data-format */
    int override_schedule; /* --override-schedule: --resume may change the schedule */
    /* positions (docs/rope.md): --pos goes into cfg.pos; these are applied by train_pos.c */
    const char *init_from;       /* --init-from: weights only, fresh optimizer and schedule */
    float rope_base, rope_scale; /* --rope-base, --rope-scale */
    int rope_extend;             /* --rope-extend: TRAIN_EXTEND_NTK (default), _PI, _NONE */
    int pos_given, rope_base_given, rope_scale_given, rope_extend_given;
    task_mix mix;          /* --mix: task samples in each batch (all 0: none) */
    int mix_loss;          /* --mix-loss: 0 all tokens of a task row, 1 its answers only */
    int mix_length;        /* --mix-length: 0 full (T+1 bytes), 1 varied (after corpus text) */
    int no_summary;        /* callers that print their own (demo --preset long): no summary */
    /* native sparse training (docs/native_sparse.md) */
    const char *sparse_plan; /* --attn sparse:PLAN: the plan (inline or a file); NULL: dense */
    const char *heads_out;   /* --heads-out: the heads file written beside --out */
    int dense_warmup;        /* --dense-warmup: steps before the sparse heads run */
    const char *log_csv;     /* --log-csv: the loss curve (trainlog.h); NULL: none */
    /* data parallel (docs/mpi.md) */
    dist_ctx *dist;          /* the job's ranks (NULL: one process) */
    int zero;                /* --zero 1: ZeRO-1, AdamW moments sharded over the ranks */
} train_args;

/* How --init-from continues a RoPE model at a longer --seq (train_pos.c, docs/rope.md). */
enum { TRAIN_EXTEND_PI = 0, TRAIN_EXTEND_NTK = 1, TRAIN_EXTEND_NONE = 2 };

typedef struct {
    double val_loss, train_loss, tokens_per_s, wall_s;
    size_t val_tokens;
    int is_bytes, steps_done;
    double sync_bytes; /* data parallel: payload bytes all-reduced per step (gradsync.h) */
} train_result;

train_args train_args_default(void);
/* Loads data, builds or resumes the model, trains, evaluates the whole validation
 * split and writes the checkpoint; prints progress and a summary. Exit status. */
int train_execute(const train_args *a, const char *cmd);
int train_execute_result(const train_args *a, const char *cmd, train_result *res);

/* Loads a dataset (as fmt) and checks a model can score it (tokens < model vocab). Exit
 * status. The caller says cli_data_note once every check has passed (an error stays the
 * only line). */
int load_data_for_model(const char *cmd, const char *path, data_format fmt, const gpt_model *m,
                        dataset *d);
/* load_data_for_model, then the memory check (cli_mem_check_model) for running m at
 * (B, T) on it, training or forward only, with the corpus counted; what names the run
 * in the error ("evaluating this model"). The dataset is freed on failure. Exit status. */
int load_data_checked(const char *cmd, const char *path, data_format fmt, const gpt_model *m,
                      const char *what, int B, int T, int training, dataset *d);
/* The same two, where a text file given to a model of GPT-2's vocabulary (50257 or more) is
 * encoded into GPT-2 tokens with the vocabulary in folder vocab (NULL: data/gpt2); the
 * functions above do that too, with the default folder. */
int load_data_for_model_vocab(const char *cmd, const char *path, data_format fmt, const char *vocab,
                              const gpt_model *m, dataset *d);
int load_data_checked_vocab(const char *cmd, const char *path, data_format fmt, const char *vocab,
                            const gpt_model *m, const char *what, int B, int T, int training, dataset *d);
/* One stderr line saying which format a --data file was read as, e.g.
 * "data: corpus.txt read as bytes (4.1 MB, vocab 256)": the run's first line. */
void cli_data_note(const char *path, const dataset *d);
/* The standard training configs of bench-train and bench-gemm (cmd_bench_train.c). */
typedef struct {
    const char *name;
    int L, H, C, T, B, V;
    double llmc_tok_s; /* llm.c train_gpt2.c on this kind of machine, 2 threads, quiet */
} bench_cfg;
#define BENCH_NCONFIGS 3
extern const bench_cfg BENCH_CONFIGS[BENCH_NCONFIGS];

/* demo --preset long (demo_long.c, docs/long.md). */
typedef struct {
    const char *data, *out_dir;
    int seq, steps, extend_steps, task_samples, threads, json; /* seq: the long context */
    uint64_t seed;
    data_format data_fmt;
    const char *plan; /* --plan: every stage trains natively sparse with it (NULL: dense flash) */
} demo_long_args;
int demo_long(const demo_long_args *a);
/* mkdir -p for demo's --out-dir: 0, or 1 after a one-line error. */
int demo_make_dirs(const char *dir);

int cmd_train(int argc, char **argv, dist_ctx *d);
int cmd_loss(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench_train(int argc, char **argv);
int cmd_bench_gemm(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_distill(int argc, char **argv, dist_ctx *d);
int cmd_eval(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_finetune(int argc, char **argv, dist_ctx *d);
int cmd_flops(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_count(int argc, char **argv);
int cmd_bench_generate(int argc, char **argv);
int cmd_task(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_convert(int argc, char **argv);

#endif
