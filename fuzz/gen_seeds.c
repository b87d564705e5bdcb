/* gen_seeds: writes the valid seed files of fuzz/corpus/ with sattn's own writers
 * (ckpt_save, llmc_tokens_save, heads_save, the teacher shard writer, plan_save,
 * bench_csv_write), for tiny models so that each seed stays small (a few KiB).
 *
 *   gen_seeds CORPUS_DIR EVAL_DIR
 *
 * CORPUS_DIR gets ckpt/ tokens/ heads/ shard/ plan/ bench_csv/ (which must exist).
 * EVAL_DIR gets what `sattn eval --json` needs for the eval_json seeds (fuzz/make_seeds.sh
 * runs it): model.ckpt (bytes vocabulary), heads_*.sparse, text.txt. Everything is
 * seeded: the same build writes the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/benchres.h"
#include "sattn/ckpt.h"
#include "sattn/data.h"
#include "sattn/heads.h"
#include "sattn/hfgpt2.h"
#include "sattn/plan.h"
#include "sattn/teacher.h"

static void ok(int rc, const sattn_err *e) {
    if (rc) {
        fprintf(stderr, "gen_seeds: %s\n", e->msg);
        exit(1);
    }
}

static const char *at(const char *dir, const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static void model(gpt_model *m, int L, int H, int C, int V, int T, uint64_t seed) {
    gpt_config c = {.max_seq = T, .vocab = V, .padded_vocab = gpt_padded_vocab(V), .layers = L,
                    .heads = H, .channels = C};
    rng_t r;
    rng_seed(&r, seed);
    gpt_create(m, &c);
    gpt_init_random(m, &r);
}

static void checkpoints(const char *dir) {
    sattn_err e;
    gpt_model m;
    model(&m, 1, 1, 8, 16, 8, 1);
    ok(ckpt_save(at(dir, "ckpt/sattn-L1H1C8V16T8.bin"), CKPT_SATTN, &m, NULL, &e), &e);
    ok(ckpt_save(at(dir, "ckpt/llmc-L1H1C8V16T8.bin"), CKPT_LLMC, &m, NULL, &e), &e);
    /* with AdamW moments, step and sampler state (a resumable checkpoint) */
    m.m_mem = calloc(m.num_params, sizeof(float));
    m.v_mem = calloc(m.num_params, sizeof(float));
    for (size_t i = 0; i < m.num_params; i++) m.m_mem[i] = 1e-3f * (float)(i % 7), m.v_mem[i] = 1e-6f;
    train_state st = {.has_optim = 1, .step = 3};
    rng_seed(&st.rng, 42);
    ok(ckpt_save(at(dir, "ckpt/sattn-optim-L1H1C8V16T8.bin"), CKPT_SATTN, &m, &st, &e), &e);
    gpt_free(&m);
    model(&m, 2, 2, 4, 5, 4, 2); /* two layers, odd vocabulary */
    ok(ckpt_save(at(dir, "ckpt/sattn-L2H2C4V5T4.bin"), CKPT_SATTN, &m, NULL, &e), &e);
    gpt_free(&m);
    /* version 3 with RoPE positions (no wpe) and position interpolation recorded */
    gpt_config c = {.max_seq = 8, .vocab = 16, .padded_vocab = 16, .layers = 1, .heads = 2,
                    .channels = 8, .pos = GPT_POS_ROPE, .rope_base = 10000.0f, .rope_scale = 0.5f};
    rng_t r;
    rng_seed(&r, 3);
    gpt_create(&m, &c);
    gpt_init_random(&m, &r);
    ok(ckpt_save(at(dir, "ckpt/sattn-rope-L1H2C8V16T8.bin"), CKPT_SATTN, &m, NULL, &e), &e);
    gpt_free(&m);
}

static void tokens(const char *dir) {
    sattn_err e;
    uint16_t t[64];
    for (int i = 0; i < 64; i++) t[i] = (uint16_t)(i * 37 % 50257);
    ok(llmc_tokens_save(at(dir, "tokens/llmc-64.bin"), t, 64, &e), &e);
    t[5] = 60000; /* beyond GPT-2's vocabulary: the reader widens it */
    ok(llmc_tokens_save(at(dir, "tokens/llmc-big-id-8.bin"), t, 8, &e), &e);
}

/* A heads file for a model of L x H heads of hs dims, T positions, from a plan. */
static void heads_file(const char *path, int L, int H, int hs, int T, int V, const char *plan) {
    sattn_err e;
    head_spec specs[16];
    ok(plan_parse(plan, NULL, L, H, specs, &e), &e);
    sparse_heads sh;
    rng_t r;
    rng_seed(&r, 7);
    sparse_heads_create(&sh, L, H, hs, T, specs, &r);
    gpt_config c = {.max_seq = T, .vocab = V, .padded_vocab = gpt_padded_vocab(V), .layers = L,
                    .heads = H, .channels = H * hs};
    ok(heads_save(path, &sh, &c, &e), &e);
    sparse_heads_free(&sh);
}

static const char *const HEAD_PLANS[][2] = {
    {"index-softmax", "L0H0:index+softmax:k=4,r=2,j=1"},
    {"block-softmax", "L0H0:block+softmax:b=2,n=2,bounds=1"},
    {"pos-mlp", "L0H0:pos+mlp:k=2,hidden=4,q=1,logits=1"},
    {"index-mlp-tau", "L0H0:index+mlp:k=4,kmin=2,tau=0.5,r=2,j=2,hidden=4,q=0,logits=0"},
    {"all-dense", "L0H0:dense"},
};

static void heads(const char *dir) {
    char name[256];
    for (size_t i = 0; i < sizeof HEAD_PLANS / sizeof HEAD_PLANS[0]; i++) {
        snprintf(name, sizeof name, "heads/%s-L1H2C8T8.sparse", HEAD_PLANS[i][0]);
        heads_file(at(dir, name), 1, 2, 4, 8, 16, HEAD_PLANS[i][1]);
    }
}

static void shard(const char *dir, const char *name, int L, int H, int C, int T, int kmax, int n_seqs,
                  const char *layers) {
    sattn_err e;
    gpt_model m;
    model(&m, L, H, C, 16, T, 3);
    teacher_pair *pairs;
    int n_pairs;
    ok(teacher_select_pairs(&m.cfg, layers, "all", &pairs, &n_pairs, &e), &e);
    teacher_stats st;
    teacher_stats_init(&st, pairs, n_pairs, T);
    teacher_shard_info info = teacher_shard_info_make(&m.cfg, pairs, n_pairs, n_seqs, T, kmax);
    teacher_writer w;
    ok(teacher_writer_open(&w, at(dir, name), &info, &e), &e);
    int *in = malloc((size_t)n_seqs * T * sizeof(int));
    for (int i = 0; i < n_seqs * T; i++) in[i] = i * 5 % 16;
    gpt_forward(&m, in, NULL, n_seqs, T);
    teacher_stats_add(&st, &m, n_seqs, T);
    ok(teacher_writer_add(&w, &m, n_seqs, &e), &e);
    teacher_stats_finish(&st);
    ok(teacher_writer_finish(&w, &st, &e), &e);
    teacher_stats_free(&st);
    free(in);
    free(pairs);
    gpt_free(&m);
}

/* Plan seeds start with the shape byte fuzz_plan.c reads: layers = 1 + (b & 3),
 * heads = 1 + (b >> 2 & 3). */
static void plan_seed(const char *dir, const char *name, int L, int H, const char *text) {
    FILE *f = fopen(at(dir, name), "wb");
    if (!f) exit(1);
    fputc((L - 1) | (H - 1) << 2, f);
    fputs(text, f);
    fclose(f);
}

static void plans(const char *dir) {
    sattn_err e;
    head_spec specs[4];
    ok(plan_parse("L0H0:index+softmax:k=8,r=8,j=2;L0H1:block+softmax:b=4,n=3;"
                  "L1:pos+mlp:k=2,hidden=16;H1:index+mlp:tau=0.9,kmin=2,q=0",
                  NULL, 2, 2, specs, &e), &e);
    /* plan_save's file, then its bytes behind the shape byte */
    const char *tmp = at(dir, "plan/.saved");
    ok(plan_save(tmp, specs, 2, 2, &e), &e);
    FILE *f = fopen(tmp, "rb");
    char text[4096];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    remove(tmp);
    plan_seed(dir, "plan/saved-L2H2.plan", 2, 2, text);
    plan_seed(dir, "plan/inline-all.txt", 1, 1, "all:index+softmax:k=16");
    plan_seed(dir, "plan/inline-mixed.txt", 2, 2,
              "L0:block+softmax:b=8,n=2,bounds=1 ; H1:dense # comment\n*:pos+softmax:k=4,kmin=1,tau=0.5");
    plan_seed(dir, "plan/inline-opts.txt", 4, 4,
              "L3H3:index+mlp:k=32,kmin=4,tau=0.95,r=16,j=4,hidden=64,q=1,logits=0\r\nall:dense");
}

static void bench_csv(const char *dir) {
    sattn_err e;
    bench_row rows[] = {
        {"dense-flash", BENCH_PREFILL, 256, 4, 256, 0, 1.5e-4, 12.5, 1.0, 1.2e6, 0.1},
        {"dense-naive", BENCH_PREFILL, 256, 4, 256, 0, 3.0e-4, 6.2, 0.5, 4.5e6, 0.1},
        {"index+softmax", BENCH_PREFILL, 256, 4, 256, 32, 2.0e-4, 3.0, 0.75, 1.0e6, -1},
        {"block+softmax", BENCH_PREFILL, 256, 4, 1024, 32, 1.0e-3, 9.1, 2.5, 3.3e6, 0.25},
        {"dense-flash", BENCH_DECODE, 256, 4, 1024, 0, 4.0e-6, 2.0, 1.0, 5.0e5, 0},
        {"block+softmax", BENCH_DECODE, 256, 4, 1024, 32, 2.0e-6, 1.0, 2.0, 2.0e5, 0},
        {"dense-flash", BENCH_BACKWARD, 512, 8, 256, 0, 8.0e-4, 20.0, 1.0, 9.0e6, 0.5},
        {"index+softmax", BENCH_BACKWARD, 512, 8, 256, 32, 9.0e-4, 4.0, 0.9, 8.0e6, 0.5},
    };
    ok(bench_csv_write(at(dir, "bench_csv/bench.csv"), rows, (int)(sizeof rows / sizeof rows[0]), &e), &e);
    ok(bench_csv_write(at(dir, "bench_csv/one-row.csv"), rows + 3, 1, &e), &e);
}

/* safetensors files as sattn writes them (hf_save): F32, F16, BF16, a vocabulary with
 * padding (V 5), two layers; the Python-written ones come from fuzz/make_seeds.sh. */
static void safetensors(const char *dir) {
    sattn_err e;
    gpt_model m;
    model(&m, 1, 1, 8, 16, 8, 11);
    ok(hf_save(at(dir, "safetensors/sattn-L1H1C8V16T8-F32.safetensors"), &m, 0, STF_F32, &e), &e);
    ok(hf_save(at(dir, "safetensors/sattn-L1H1C8V16T8-F16.safetensors"), &m, 0, STF_F16, &e), &e);
    ok(hf_save(at(dir, "safetensors/sattn-L1H1C8V16T8-BF16.safetensors"), &m, 0, STF_BF16, &e), &e);
    gpt_free(&m);
    model(&m, 2, 2, 4, 5, 4, 12);
    ok(hf_save(at(dir, "safetensors/sattn-L2H2C4V5T4-F16.safetensors"), &m, 0, STF_F16, &e), &e);
    gpt_free(&m);
}

/* Inputs for `sattn eval --json`: a bytes-vocabulary model and heads for it. */
static void eval_inputs(const char *dir) {
    sattn_err e;
    gpt_model m;
    model(&m, 1, 2, 8, 256, 8, 4);
    ok(ckpt_save(at(dir, "model.ckpt"), CKPT_SATTN, &m, NULL, &e), &e);
    gpt_free(&m);
    heads_file(at(dir, "heads_index.sparse"), 1, 2, 4, 8, 256,
               "L0H0:index+softmax:k=4,r=2,j=1;L0H1:block+softmax:b=2,n=2");
    heads_file(at(dir, "heads_mlp.sparse"), 1, 2, 4, 8, 256, "L0H1:pos+mlp:k=2,hidden=4");
    FILE *f = fopen(at(dir, "text.txt"), "wb");
    if (!f) exit(1);
    for (int i = 0; i < 4; i++) fputs("In the beginning God created the heaven and the earth. ", f);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: gen_seeds CORPUS_DIR EVAL_DIR\n");
        return 2;
    }
    checkpoints(argv[1]);
    tokens(argv[1]);
    heads(argv[1]);
    shard(argv[1], "shard/L1H1C8T8-k4.shard", 1, 1, 8, 8, 4, 1, "all");
    shard(argv[1], "shard/L2H2C8T4-k2-2seqs.shard", 2, 2, 8, 4, 2, 2, "1");
    plans(argv[1]);
    bench_csv(argv[1]);
    safetensors(argv[1]);
    eval_inputs(argv[2]);
    return 0;
}
