/* The GPT-2 tokenizer from the command line: `sattn tokenize` writes the llm.c token file
 * the library's encoder gives, refuses bad input with one line and nothing written; a model
 * of GPT-2's vocabulary takes text: `sample --prompt` encodes it and prints text, `loss`,
 * `distill` and `eval` read a text file as its GPT-2 tokens. Needs data/gpt2 (bash scripts/deps.sh). */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#include <criterion/criterion.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/bpe.h"
#include "sattn/data.h"

Test(bpe_cli, tokenize_writes_the_encoders_tokens, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *txt = cli_tpath(&t, "in.txt"), *out = cli_tpath(&t, "out.bin");
    cli_spew_str(txt, "Hello, world! It's caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xff\xfe bytes\n\n  123");
    const char *argv[] = {"tokenize", "--in", txt, "--out", out, "--json", NULL};
    char *js = cli_expect_ok(argv);
    cli_assert_json_line(js);
    sattn_err e;
    bpe_tokenizer *tk = bpe_load(BPE_DEFAULT_DIR, &e);
    cr_assert_not_null(tk, "%s", e.msg);
    size_t n, k;
    char *text = cli_slurp(txt, &n);
    uint16_t *ids = bpe_encode(tk, (const uint8_t *)text, n, &k);
    cr_assert_eq((size_t)cli_json_num(js, "tokens"), k, "%s", js);
    cr_assert_eq((size_t)cli_json_num(js, "bytes"), n, "%s", js);
    dataset d;
    cr_assert_eq(dataset_load_as(&d, out, DATA_TOKENS, &e), 0, "%s", e.msg);
    cr_assert(d.n_tokens == k && !memcmp(d.tokens, ids, k * sizeof *ids), "the file holds other tokens");
    cr_assert_eq(d.vocab, 50257);
    dataset_free(&d);
    free(ids), free(text), free(js);
    bpe_free(tk);
    cli_tdir_close(&t);
}

/* Copies src to dst, replacing its first occurrence of from (NULL: none) by to. */
static void copy_edited(const char *src, const char *dst, const char *from, const char *to) {
    size_t n;
    char *s = cli_slurp(src, &n), *p = from ? strstr(s, from) : NULL;
    sbuf b = {0};
    if (p) sb_printf(&b, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
    else sb_printf(&b, "%s", s);
    cli_spew(dst, b.s, b.n);
    sb_free(&b), free(s);
}

/* A vocabulary folder under dir/name: GPT-2's two files, one of them edited. */
static const char *bad_vocab(cli_tdir *t, const char *name, const char *file, const char *from, const char *to) {
    const char *d = cli_tpath(t, name);
    cr_assert_eq(mkdir(d, 0755), 0, "mkdir %s", d);
    char src[256], dst[512];
    for (int i = 0; i < 2; i++) {
        const char *f = i ? "vocab.bpe" : "encoder.json";
        snprintf(src, sizeof src, "%s/%s", BPE_DEFAULT_DIR, f);
        snprintf(dst, sizeof dst, "%s/%s", d, f);
        copy_edited(src, dst, strcmp(f, file) ? NULL : from, to);
    }
    return d;
}

Test(bpe_cli, tokenize_errors_are_one_line_and_write_nothing, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *txt = cli_tpath(&t, "in.txt"), *empty = cli_tpath(&t, "empty.txt");
    const char *tok = cli_tpath(&t, "tok.bin"), *out = cli_tpath(&t, "out.bin");
    cli_spew_str(txt, "some text\n");
    cli_spew_str(empty, "");
    const char *mk[] = {"tokenize", "--in", txt, "--out", tok, NULL};
    free(cli_expect_ok(mk));
    const char *merges = bad_vocab(&t, "v1", "vocab.bpe", "\xc4\xa0 t\n", "\xc4\xa0  t\n");
    const char *ids = bad_vocab(&t, "v2", "encoder.json", "\"!\": 0", "\"!\": 1");
    const char *missing = cli_tpath(&t, "nothing");
    const struct {
        const char *in, *vocab, *needle;
    } cases[] = {
        {txt, missing, "encoder.json: not found: the GPT-2 vocabulary is missing (bash scripts/deps.sh"},
        {txt, merges, "vocab.bpe:2: \"\xc4\xa0  t\", expected a merge: two tokens separated by one space"},
        {txt, ids, "encoder.json: id 1 appears twice"},
        {missing, NULL, "nothing: cannot open"},
        {t.dir, NULL, "not a regular file"},
        {tok, NULL, "already an llm.c token file"},
        {empty, NULL, "empty file, expected text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *argv[] = {"tokenize", "--in", cases[i].in, "--out", out, "--vocab",
                              cases[i].vocab ? cases[i].vocab : BPE_DEFAULT_DIR, NULL};
        cli_expect_fail(argv, cases[i].needle, 0);
        cli_assert_no_output(t.dir, "out.bin");
    }
    const char *same[] = {"tokenize", "--in", txt, "--out", txt, NULL};
    cli_expect_fail(same, "the same file", 0);
    cli_tdir_close(&t);
}

/* A model of GPT-2's vocabulary (tiny: C 8, one layer) trained for two steps on the GPT-2
 * tokens of some text; text goes in and comes out. */
Test(bpe_cli, gpt2_models_read_and_write_text, .timeout = 180) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *txt = cli_tpath(&t, "in.txt"), *tok = cli_tpath(&t, "tok.bin"), *model = cli_tpath(&t, "m.ckpt");
    cli_write_text(txt, 3000);
    const char *mk[] = {"tokenize", "--in", txt, "--out", tok, NULL};
    free(cli_expect_ok(mk));
    const char *tr[] = {"train", "--data", tok, "--layers", "1", "--heads", "1", "--dim", "8", "--seq", "16",
                        "--batch", "2", "--steps", "2", "--out", model, NULL};
    free(cli_expect_ok(tr));
    const char *s[] = {"sample", "--model", model, "--prompt", "The caf\xc3\xa9", "--tokens", "5", NULL};
    char *o = cli_expect_ok(s);
    cr_assert(!strncmp(o, "The caf\xc3\xa9", 9), "sample should print the prompt as text: %s", o);
    free(o);
    const char *lt[] = {"loss", "--model", model, "--data", txt, "--json", NULL};
    const char *lk[] = {"loss", "--model", model, "--data", tok, "--json", NULL};
    char *a = cli_expect_ok(lt), *b = cli_expect_ok(lk);
    cr_assert_str_eq(a, b, "a text file and its tokens score differently");
    free(a), free(b);
    const char *heads = cli_tpath(&t, "h.sparse");
    const char *di[] = {"distill", "--model", model, "--data", txt, "--plan", "all:index+softmax:k=4", "--out",
                        heads, "--steps", "2", NULL};
    free(cli_expect_ok(di));
    const char *et[] = {"eval", "--model", model, "--heads", heads, "--data", txt, "--json", NULL};
    const char *ek[] = {"eval", "--model", model, "--heads", heads, "--data", tok, "--json", NULL};
    a = cli_expect_ok(et), b = cli_expect_ok(ek);
    cr_assert_str_eq(a, b, "eval: a text file and its tokens score differently");
    cr_assert(strstr(a, "bits_per_token"), "%s", a);
    free(a), free(b);
    const char *nv[] = {"loss", "--model", model, "--data", txt, "--vocab", cli_tpath(&t, "none"), NULL};
    cli_expect_fail(nv, "not found: the GPT-2 vocabulary is missing", 0);
    const char *sv[] = {"sample", "--model", model, "--prompt", "x", "--vocab", cli_tpath(&t, "none"), NULL};
    cli_expect_fail(sv, "not found: the GPT-2 vocabulary is missing", 0);
    cli_tdir_close(&t);
}
