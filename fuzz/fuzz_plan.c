/* libFuzzer harness: plans (src/sparse/plan.c), as an inline string (plan_parse) and as
 * a file (plan_load). The first byte picks the model shape the plan is parsed for:
 * layers = 1 + (b & 3), heads = 1 + (b >> 2 & 3); the rest is the plan text. Every plan
 * that parses must survive plan_format -> plan_parse with the same text (plan.h). */
#include "fuzz_common.h"
#include "sattn/plan.h"

static void check_specs(const head_spec *specs, int n) {
    for (int i = 0; i < n; i++) {
        sattn_err e;
        FZ_CHECK(head_spec_check(&specs[i], &e) == 0, "head %d: accepted a bad spec: %s", i, e.msg);
    }
}

static void round_trip(const head_spec *specs, int L, int H) {
    head_spec back[16];
    char *text = plan_format(specs, L, H);
    sattn_err e = {{0}};
    FZ_CHECK(plan_parse(text, NULL, L, H, back, &e) == 0, "plan_format's text does not parse: %s\n%s",
             e.msg, text);
    char *again = plan_format(back, L, H);
    FZ_CHECK(!strcmp(text, again), "plan round trip changed the plan:\n%s---\n%s", text, again);
    free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n < 1) return 0;
    int L = 1 + (data[0] & 3), H = 1 + (data[0] >> 2 & 3);
    head_spec specs[16];
    sattn_err e = {{0}};
    /* inline: the text up to the first NUL, as a command line would pass it */
    char *text = malloc(n);
    FZ_CHECK(text, "out of memory");
    memcpy(text, data + 1, n - 1);
    text[n - 1] = 0;
    if (plan_parse(text, NULL, L, H, specs, &e) == 0) {
        check_specs(specs, L * H);
        round_trip(specs, L, H);
    } else {
        fz_check_err(&e, "plan_parse");
    }
    free(text);
    /* file: every byte, NULs included */
    const char *path = fz_write("plan", data + 1, n - 1);
    memset(&e, 0, sizeof e);
    if (plan_load(path, L, H, specs, &e) == 0) {
        check_specs(specs, L * H);
        round_trip(specs, L, H);
    } else {
        fz_check_err(&e, "plan_load");
    }
    return 0;
}
