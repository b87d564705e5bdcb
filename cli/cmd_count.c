/* sattn count: instrumented counts of one attention layer's kernels beside the analytic
 * model (sattn/core.h op_count, costmodel.h cm_kernel_macs, docs/costmodel.md "Counted").
 * Only a SATTN_COUNT build (`make count`, build-count/sattn) counts. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/attnbench.h"
#include "sattn/costmodel.h"
#include "sattn/plan.h"

static const cli_cmd COUNT = {
    "count", NULL,
    "Runs ONE call of what `sattn bench` times (one attention layer, batch 1, heads of dim 64,\n"
    "random inputs) with the kernels counting the multiply-adds of every matrix product\n"
    "and the bytes its operands span, and prints them beside the analytic model:\n"
    "  model_macs   costmodel's executed multiply-adds (the kernels' tiles included)\n"
    "  useful_macs  attn_flops / 2: the work any causal kernel needs\n"
    "  model_bytes  costmodel's idealised attention bytes (a different definition: each\n"
    "               operand once per tile, not per product; shown for scale)\n"
    "Needs the instrumented build: make count (build-count/sattn).",
    NULL};

typedef struct {
    int C, T, k, decode, json;
    uint64_t seed;
    const char *variant;
    ab_variant v;
    head_spec spec;
    int has_spec;
} count_args;

static int count_parse(count_args *a, int argc, char **argv) {
    opt_spec o[] = {
        opt_int("dim", &a->C, 64, 1 << 14, "C", "d_model, a multiple of 64"),
        opt_int("seq", &a->T, 1, 1 << 16, "T", "length"),
        opt_int("k", &a->k, 1, 1 << 16, "K", "keys per query of the standard sparse specs"),
        opt_str("variant", &a->variant, "V",
                "naive, flash, index, block (standard spec at K) or a head spec like\n"
                "pos+mlp:k=16 (default flash)"),
        opt_flag("decode", &a->decode, "one decode step against a KV cache of T (flash, index, block)"),
        cli_opt_seed(&a->seed, "seed of the random inputs"),
        cli_opt_json(&a->json, "print the counts as one JSON object"),
    };
    int r = cli_parse(&COUNT, o, CLI_N(o), argc, argv);
    if (r) return r;
    if (a->C % 64) return cli_fail("count", "--dim %d: expected a multiple of 64 (heads of dim 64)", a->C);
    return 0;
}

/* V: a bench variant name, or a head spec in the plan grammar (a sparse variant). */
static int count_variant(count_args *a) {
    int v = ab_variant_parse(a->variant);
    if (v >= 0) return a->v = (ab_variant)v, 0;
    char plan[256];
    sattn_err e;
    snprintf(plan, sizeof plan, "all:%s", a->variant);
    if (plan_parse(plan, NULL, 1, 1, &a->spec, &e) || a->spec.sel == SEL_DENSE)
        return cli_fail("count", "--variant '%s': expected naive, flash, index, block or a sparse "
                        "head spec like index+softmax:k=16", a->variant);
    a->v = a->spec.sel == SEL_BLOCK ? AB_BLOCK : AB_INDEX;
    a->has_spec = 1;
    return 0;
}

static cm_variant model_variant(const count_args *a) {
    if (a->v == AB_NAIVE) return cm_dense(CM_NAIVE);
    if (a->v == AB_FLASH) return cm_dense(CM_FLASH);
    if (a->has_spec) return cm_sparse(&a->spec);
    cm_variant all[8];
    cm_standard_variants(a->k, all);
    return all[a->v == AB_INDEX ? 4 : 6];
}

int cmd_count(int argc, char **argv) {
    count_args a = {.C = 512, .T = 1024, .k = 32, .seed = 1234, .variant = "flash"};
    int rc = count_parse(&a, argc, argv);
    if (rc) return rc == 2 ? 0 : rc;
    if (count_variant(&a)) return 1;
    if (!OP_COUNT_ENABLED)
        return cli_fail("count", "this sattn was built without instrumented counts; build "
                        "build-count/sattn with `make count` and run that");
    char what[96];
    snprintf(what, sizeof what, "counting %s at C=%d T=%d", a.variant, a.C, a.T);
    if (cli_mem_check("count", what, ab_count_bytes(a.v, a.decode, a.C, a.T, a.k,
                      a.has_spec ? &a.spec : NULL), "attention inputs and buffers"))
        return 1;
    op_count cnt = {0, 0};
    sattn_err e;
    if (ab_count(a.v, a.decode, a.C, a.T, a.k, a.has_spec ? &a.spec : NULL, a.seed, &cnt, &e))
        return cli_fail("count", "%s", e.msg);
    cm_variant mv = model_variant(&a);
    cm_shape sh = cm_shape_make(a.C, a.C / 64, a.T);
    sh.decode = a.decode;
    cm_cost cost;
    cm_cost_of(&sh, &mv, &cost);
    double model = cm_kernel_macs(&sh, &mv);
    const char *phase = a.decode ? "decode" : "prefill";
    if (a.json) {
        printf("{\"variant\": \"%s\", \"phase\": \"%s\", \"C\": %d, \"H\": %d, \"T\": %d, "
               "\"counted_macs\": %llu, \"model_macs\": %.0f, \"useful_macs\": %.0f, "
               "\"counted_bytes\": %llu, \"model_bytes\": %.0f}\n",
               mv.name, phase, a.C, sh.H, a.T, (unsigned long long)cnt.macs, model,
               cost.attn_flops / 2, (unsigned long long)cnt.bytes, cost.attn_bytes);
        return 0;
    }
    printf("%s %s C=%d H=%d T=%d\n", mv.name, phase, a.C, sh.H, a.T);
    printf("  multiply-adds  counted %llu  model %.0f  (%s)  useful %.0f (%.3f of executed)\n",
           (unsigned long long)cnt.macs, model, model == (double)cnt.macs ? "equal" : "DIFFERENT",
           cost.attn_flops / 2, cnt.macs ? cost.attn_flops / 2 / (double)cnt.macs : 0.0);
    printf("  bytes          counted %llu (operands per product)  model %.0f (idealised)\n",
           (unsigned long long)cnt.bytes, cost.attn_bytes);
    return 0;
}
