/* sattn collect: teacher signals of a trained model (see sattn/teacher.h), and
 * `collect --read` to validate and inspect a shard. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/teacher.h"

static const cli_cmd COLLECT = {
    "collect",
    "--model PATH --data PATH --out PATH [options]\n"
    "       sattn collect --read PATH [--json] [--threads N]",
    "Runs the model (full attention) on the first N non-overlapping windows of its\n"
    "context from the split and writes a teacher shard: for each chosen head and\n"
    "position q, k, v, the head output and the top-K keys with their\n"
    "probabilities, plus per-head statistics, which it prints: entropy (nats), argmax distance,\n"
    "self and sink (position 0) fractions of the argmax, and mass@k (teacher mass in the top k keys).\n"
    "Format: include/sattn/teacher.h, docs/teacher.md.",
    NULL};

typedef struct {
    const char *model, *data, *out, *layers, *heads, *read;
    int seqs, kmax, batch, threads, json;
    data_split split;
    data_format data_fmt;
} collect_args;

/* The first option given (in argv's order) of those only a collection run takes. */
static const char *first_run_flag(const opt_spec *o, int n) {
    const opt_spec *first = NULL;
    for (int i = 0; i < n; i++)
        if (o[i].seen && strcmp(o[i].name, "json") && strcmp(o[i].name, "threads") &&
            strcmp(o[i].name, "read") && (!first || o[i].seen < first->seen))
            first = &o[i];
    return first ? first->name : NULL;
}

static int collect_parse(collect_args *a, int argc, char **argv) {
    opt_spec o[] = {
        opt_str("model", &a->model, "PATH", "the teacher: a sattn or llm.c checkpoint, safetensors or HF folder"),
        cli_opt_data(&a->data, NULL),
        opt_str("out", &a->out, "PATH", "the teacher shard to write"),
        opt_str("layers", &a->layers, "LIST", "layers: 'all' (default), indices and ranges (0,2 or 1-3)"),
        opt_str("heads", &a->heads, "LIST", "heads of each chosen layer: the same form (default all)"),
        opt_int("seqs", &a->seqs, 1, 1 << 30, "N", "windows of the model's context"),
        opt_int("kmax", &a->kmax, 1, 1 << 20, "K", "top keys kept per position (default min(32, T))"),
        cli_opt_split(&a->split),
        opt_int("batch", &a->batch, 1, 1 << 16, "B", "windows per forward"),
        cli_opt_threads(&a->threads),
        cli_opt_json(&a->json, "print the result as one JSON object"),
        opt_str("read", &a->read, "PATH", "validate a shard and print its header and statistics"),
        cli_opt_data_format(&a->data_fmt),
    };
    int r = cli_parse(&COLLECT, o, CLI_N(o), argc, argv);
    if (r) return r;
    const char *run_flag = first_run_flag(o, CLI_N(o));
    if (a->read && run_flag)
        return cli_fail("collect", "--read inspects a shard and takes only --json and --threads, not --%s",
                        run_flag);
    if (a->read) return 0;
    if (!a->model) return cli_fail("collect", "--model PATH is required (or --read PATH)");
    if (!a->data) return cli_fail("collect", "--data PATH is required");
    if (!a->out) return cli_fail("collect", "--out PATH is required");
    return 0;
}

/* ---- output ---- */

static void print_table(const teacher_pair *pairs, const teacher_head_stats *st, int n_pairs,
                        const int *ks, int n_ks) {
    printf("%5s %4s %7s %7s %6s %6s", "layer", "head", "entropy", "dist", "self", "sink");
    for (int i = 0; i < n_ks; i++) {
        char lab[24];
        snprintf(lab, sizeof lab, "m@%d", ks[i]);
        printf(" %6s", lab);
    }
    putchar('\n');
    for (int p = 0; p < n_pairs; p++) {
        const teacher_head_stats *h = &st[p];
        printf("%5d %4d %7.3f %7.2f %6.3f %6.3f", pairs[p].layer, pairs[p].head, h->entropy,
               h->argmax_dist, h->self_frac, h->sink_frac);
        for (int i = 0; i < n_ks; i++) printf(" %6.3f", h->mass[i]);
        putchar('\n');
    }
}

static void print_json_stats(const teacher_pair *pairs, const teacher_head_stats *st, int n_pairs,
                             const int *ks, int n_ks) {
    printf("\"ks\": [");
    for (int i = 0; i < n_ks; i++) printf("%s%d", i ? ", " : "", ks[i]);
    printf("], \"stats\": [");
    for (int p = 0; p < n_pairs; p++) {
        const teacher_head_stats *h = &st[p];
        printf("%s{\"layer\": %d, \"head\": %d, \"entropy\": %.9g, \"argmax_dist\": %.9g, "
               "\"self_frac\": %.9g, \"sink_frac\": %.9g, \"mass\": [",
               p ? ", " : "", pairs[p].layer, pairs[p].head, h->entropy, h->argmax_dist,
               h->self_frac, h->sink_frac);
        for (int i = 0; i < n_ks; i++) printf("%s%.9g", i ? ", " : "", h->mass[i]);
        printf("]}");
    }
    printf("]");
}

static void print_info_json(const teacher_shard_info *in, unsigned long long bytes) {
    printf("\"model\": {\"layers\": %d, \"heads\": %d, \"channels\": %d, \"max_seq\": %d, "
           "\"vocab\": %d}, \"seqs\": %d, \"T\": %d, \"kmax\": %d, \"bytes\": %llu, ",
           in->layers, in->heads, in->channels, in->max_seq, in->vocab, in->n_seqs, in->T,
           in->kmax, bytes);
}

/* ---- --read ---- */

static int collect_read(const collect_args *a) {
    teacher_shard s;
    sattn_err e;
    if (teacher_shard_open(&s, a->read, &e)) return cli_fail("collect", "%s", e.msg);
    const teacher_shard_info *in = &s.info;
    unsigned long long bytes = teacher_shard_bytes(in);
    if (a->json) {
        printf("{\"file\": ");
        cli_json_str(a->read);
        printf(", \"version\": %d, \"checksum\": \"%016llx\", ", TEACHER_VERSION,
               (unsigned long long)in->checksum);
        print_info_json(in, bytes);
        print_json_stats(in->pairs, s.stats, in->n_pairs, in->ks, in->n_ks);
        printf("}\n");
    } else {
        printf("file %s\nversion %d\nmodel L%d H%d C%d T%d V%d (head dim %d)\n", a->read,
               TEACHER_VERSION, in->layers, in->heads, in->channels, in->max_seq, in->vocab,
               in->channels / in->heads);
        printf("sequences %d x T %d, kmax %d, heads %d\nbytes %llu\nchecksum %016llx (ok)\n",
               in->n_seqs, in->T, in->kmax, in->n_pairs, bytes, (unsigned long long)in->checksum);
        print_table(in->pairs, s.stats, in->n_pairs, in->ks, in->n_ks);
    }
    teacher_shard_close(&s);
    return 0;
}

/* ---- collection ---- */

typedef struct {
    gpt_model m;
    dataset d;
    teacher_pair *pairs;
    int n_pairs, T, kmax;
} collect_ctx;

/* Model, heads, kmax, output and data, each checked before any work. */
static int collect_setup(const collect_args *a, collect_ctx *x) {
    sattn_err e;
    if (cli_load_model("collect", a->model, &x->m)) return 1;
    x->T = x->m.cfg.max_seq;
    x->kmax = a->kmax ? a->kmax : (x->T < 32 ? x->T : 32);
    int rc = 0;
    if (teacher_select_pairs(&x->m.cfg, a->layers ? a->layers : "all", a->heads ? a->heads : "all",
                             &x->pairs, &x->n_pairs, &e))
        rc = cli_fail("collect", "--%s", e.msg);
    else if (x->kmax > x->T)
        rc = cli_fail("collect", "--kmax %d: expected at most the model's context T = %d", x->kmax, x->T);
    if (!rc) {
        cli_file outs[] = {{"--out", a->out}, {NULL, NULL}};
        cli_file ins[] = {{"--model", a->model}, {"--data", a->data}, {NULL, NULL}};
        rc = cli_check_outputs("collect", outs, ins);
    }
    if (!rc) rc = load_data_checked("collect", a->data, a->data_fmt, &x->m, "collecting from this model",
                                    a->batch, x->T, 0, &x->d);
    if (!rc) {
        size_t n;
        dataset_split_tokens(&x->d, a->split, &n);
        if (n / (size_t)x->T < (size_t)a->seqs) {
            rc = cli_fail("collect", "%s: the %s split has %zu tokens, room for %zu windows of %d; --seqs asks for %d",
                          a->data, a->split == SPLIT_VAL ? "val" : "train", n, n / (size_t)x->T, x->T, a->seqs);
            dataset_free(&x->d);
        }
    }
    if (rc) free(x->pairs), gpt_free(&x->m);
    else cli_data_note(a->data, &x->d);
    return rc;
}

/* Windows i0 .. i0+B-1 of the split: window i is tokens [i T, (i+1) T). */
static void fill_windows(const collect_ctx *x, data_split split, int i0, int B, int *inputs) {
    size_t n;
    const uint16_t *tok = dataset_split_tokens(&x->d, split, &n);
    for (size_t j = 0; j < (size_t)B * x->T; j++) inputs[j] = tok[(size_t)i0 * x->T + j];
}

/* Forward passes over the windows, streaming records into the writer. */
static int collect_loop(const collect_args *a, collect_ctx *x, teacher_stats *st, sattn_err *e) {
    teacher_writer w;
    teacher_shard_info info = teacher_shard_info_make(&x->m.cfg, x->pairs, x->n_pairs, a->seqs, x->T, x->kmax);
    if (teacher_writer_open(&w, a->out, &info, e)) return -1;
    int *inputs = xmalloc((size_t)a->batch * x->T * sizeof(int));
    for (int i = 0; i < a->seqs; i += a->batch) {
        int B = a->seqs - i < a->batch ? a->seqs - i : a->batch;
        fill_windows(x, a->split, i, B, inputs);
        gpt_forward(&x->m, inputs, NULL, B, x->T);
        teacher_stats_add(st, &x->m, B, x->T);
        if (teacher_writer_add(&w, &x->m, B, e)) {
            free(inputs);
            teacher_writer_abort(&w);
            return -1;
        }
    }
    free(inputs);
    teacher_stats_finish(st);
    return teacher_writer_finish(&w, st, e);
}

static void collect_print(const collect_args *a, const collect_ctx *x, const teacher_stats *st) {
    teacher_shard_info in = teacher_shard_info_make(&x->m.cfg, x->pairs, x->n_pairs, a->seqs, x->T, x->kmax);
    unsigned long long bytes = teacher_shard_bytes(&in);
    const char *split = a->split == SPLIT_VAL ? "val" : "train";
    if (!a->json) {
        printf("collect: %d windows x %d positions of the %s split, %d heads, kmax %d -> %s (%llu bytes)\n",
               a->seqs, x->T, split, x->n_pairs, x->kmax, a->out, bytes);
        print_table(x->pairs, st->head, x->n_pairs, st->ks, st->n_ks);
        return;
    }
    printf("{\"out\": ");
    cli_json_str(a->out);
    printf(", \"split\": \"%s\", ", split);
    print_info_json(&in, bytes);
    print_json_stats(x->pairs, st->head, x->n_pairs, st->ks, st->n_ks);
    printf("}\n");
}

int cmd_collect(int argc, char **argv) {
    collect_args a = {.seqs = 64, .batch = 8, .split = SPLIT_VAL};
    int r = collect_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    if (a.read) return collect_read(&a);
    collect_ctx x = {0};
    if (collect_setup(&a, &x)) return 1;
    teacher_stats st;
    teacher_stats_init(&st, x.pairs, x.n_pairs, x.T);
    sattn_err e;
    r = collect_loop(&a, &x, &st, &e) ? cli_fail("collect", "%s", e.msg) : 0;
    if (!r) collect_print(&a, &x, &st);
    teacher_stats_free(&st);
    free(x.pairs);
    dataset_free(&x.d);
    gpt_free(&x.m);
    return r;
}
