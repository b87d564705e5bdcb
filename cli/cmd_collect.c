/* sattn collect: teacher signals of a trained model (see sattn/teacher.h), and
 * `collect --read` to validate and inspect a shard. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "sattn/teacher.h"

static const char COLLECT_HELP[] =
    "usage: sattn collect --model PATH --data PATH --out PATH [--layers all|0,2] [--heads all|0,1]\n"
    "                     [--seqs N] [--kmax K] [--split train|val] [--batch B] [--threads N] [--json]\n"
    "       sattn collect --read PATH [--json]\n"
    "Runs the model (full attention) on the first N (default 64) non-overlapping windows of its\n"
    "context from the split (default val) and writes a teacher shard: for each chosen head and\n"
    "position q, k, v, the head output and the top-K (default min(32, T)) keys with their\n"
    "probabilities, plus per-head statistics, which it prints: entropy (nats), argmax distance,\n"
    "self and sink (position 0) fractions of the argmax, and mass@k (teacher mass in the top k keys).\n"
    "--layers/--heads take 'all', indices and ranges (0,2 or 1-3). --read validates a shard and\n"
    "prints its header and statistics. Format: include/sattn/teacher.h, docs/teacher.md.\n";

enum { C_MODEL = 256, C_DATA, C_OUT, C_LAYERS, C_HEADS, C_SEQS, C_KMAX, C_SPLIT, C_BATCH,
       C_THREADS, C_JSON, C_READ, C_HELP };
static const struct option COLLECT_OPTS[] = {
    {"model", 1, 0, C_MODEL}, {"data", 1, 0, C_DATA},     {"out", 1, 0, C_OUT},
    {"layers", 1, 0, C_LAYERS}, {"heads", 1, 0, C_HEADS}, {"seqs", 1, 0, C_SEQS},
    {"kmax", 1, 0, C_KMAX},   {"split", 1, 0, C_SPLIT},   {"batch", 1, 0, C_BATCH},
    {"threads", 1, 0, C_THREADS}, {"json", 0, 0, C_JSON}, {"read", 1, 0, C_READ},
    {"help", 0, 0, C_HELP},   {0, 0, 0, 0}};

typedef struct {
    const char *model, *data, *out, *layers, *heads, *read;
    const char *run_flag; /* the first flag given that only a collection run takes */
    int seqs, kmax, batch, threads, json;
    data_split split;
} collect_args;

static int parse_split(const char *s, data_split *out) {
    if (!strcmp(s, "val")) *out = SPLIT_VAL;
    else if (!strcmp(s, "train")) *out = SPLIT_TRAIN;
    else return cli_fail("collect", "--split: expected 'val' or 'train', got '%s'", s);
    return 0;
}

/* One option; returns 0, 1 (error) or 2 (help printed). */
static int parse_opt(collect_args *a, int c, int argc, char **argv) {
    switch (c) {
    case C_HELP: fputs(COLLECT_HELP, stdout); return 2;
    case C_JSON: a->json = 1; return 0;
    case C_READ: a->read = optarg; return 0;
    case C_THREADS: return arg_int("collect", "threads", optarg, 1, 1024, &a->threads) ? 1 : 0;
    }
    int bad = 0;
    switch (c) {
    case C_MODEL: a->model = optarg; break;
    case C_DATA: a->data = optarg; break;
    case C_OUT: a->out = optarg; break;
    case C_LAYERS: a->layers = optarg; break;
    case C_HEADS: a->heads = optarg; break;
    case C_SEQS: bad = arg_int("collect", "seqs", optarg, 1, 1 << 30, &a->seqs); break;
    case C_KMAX: bad = arg_int("collect", "kmax", optarg, 1, 1 << 20, &a->kmax); break;
    case C_BATCH: bad = arg_int("collect", "batch", optarg, 1, 1 << 16, &a->batch); break;
    case C_SPLIT: bad = parse_split(optarg, &a->split); break;
    default: return cli_usage_error("collect", c, argc, argv);
    }
    for (const struct option *o = COLLECT_OPTS; !a->run_flag && o->name; o++)
        if (o->val == c) a->run_flag = o->name;
    return bad ? 1 : 0;
}

static int collect_parse(collect_args *a, int argc, char **argv) {
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", COLLECT_OPTS, NULL)) != -1) {
        int r = parse_opt(a, c, argc, argv);
        if (r) return r;
    }
    if (optind < argc) return cli_usage_error("collect", 0, argc, argv);
    if (a->read && a->run_flag)
        return cli_fail("collect", "--read inspects a shard and takes only --json and --threads, not --%s",
                        a->run_flag);
    if (a->read) return 0;
    if (!a->model) return cli_fail("collect", "--model PATH is required (or --read PATH)");
    if (!a->data) return cli_fail("collect", "--data PATH is required");
    if (!a->out) return cli_fail("collect", "--out PATH is required");
    return 0;
}

/* ---- output ---- */

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

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
        json_str(a->read);
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
    if (ckpt_load(a->model, &x->m, NULL, &e) != 0) return cli_fail("collect", "%s", e.msg);
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
    if (!rc) rc = load_data_for_model("collect", a->data, &x->m, &x->d);
    if (!rc && cli_mem_check_model("collect", "collecting from this model", &x->m.cfg, a->batch, x->T,
                                   0, (double)x->d.n_tokens * 2))
        rc = 1, dataset_free(&x->d);
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
    json_str(a->out);
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
