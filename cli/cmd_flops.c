/* sattn flops: the analytic cost model of one attention layer (sattn/costmodel.h,
 * docs/costmodel.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/costmodel.h"
#include "sattn/plan.h"

static const cli_cmd FLOPS = {
    "flops", NULL,
    "Analytic FLOPs (2 per multiply-add), bytes moved (float32) and peak activation memory of\n"
    "ONE attention layer, batch 1, for prefill (T queries) and one decode step (KV cache of T).",
    "T*: the smallest T at which the variant's total FLOPs (projections included) are below\n"
    "full attention's; '-' when there is none up to 2^20."};

#define TMAX (1 << 20)
#define MAXV 8

typedef struct {
    int C, H, T, k, Br, sweep, original, json, csv;
    const char *variant;
} flops_args;

static int flops_parse(flops_args *a, int argc, char **argv) {
    opt_spec o[] = {
        opt_int("dim", &a->C, 1, 1 << 16, "C", "d_model"),
        opt_int("heads", &a->H, 1, 1 << 12, "H", "heads, head dim C/H"),
        opt_int("seq", &a->T, 1, TMAX, "T", "sequence length"),
        opt_int("k", &a->k, 1, 1 << 16, "K", "keys per query"),
        opt_str("variant", &a->variant, "V", "only V: dense-naive, dense-flash or a head spec like index+softmax:k=16"),
        opt_int("tile", &a->Br, 1, 1 << 16, "Br", "flash query tile"),
        opt_flag("sweep", &a->sweep, "C in {128,256,512,1024} x T in {64..32768} x k in {8..256}, crossover T*"),
        opt_flag("original", &a->original, "the original project's formula beside ours"),
        cli_opt_json(&a->json, "machine-readable: one JSON object"),
        opt_flag("csv", &a->csv, "machine-readable: CSV with a header"),
    };
    int r = cli_parse(&FLOPS, o, CLI_N(o), argc, argv);
    if (r) return r;
    if (a->json && a->csv) return cli_fail("flops", "--json and --csv exclude each other");
    if (a->sweep && a->original) return cli_fail("flops", "--sweep and --original exclude each other");
    if (a->variant && (a->sweep || a->original))
        return cli_fail("flops", "--variant applies to one configuration, not to --sweep or --original");
    if (!a->sweep && a->C % a->H)
        return cli_fail("flops", "--dim %d is not a multiple of --heads %d", a->C, a->H);
    return 0;
}

/* V into the variant list: a dense name or a head spec (plan grammar). */
static int parse_variant(const char *text, cm_variant *out, int *n) {
    if (!strcmp(text, "dense-naive") || !strcmp(text, "dense-flash")) {
        out[0] = cm_dense(text[6] == 'n' ? CM_NAIVE : CM_FLASH);
        return *n = 1, 0;
    }
    char plan[256];
    head_spec s;
    sattn_err e;
    snprintf(plan, sizeof plan, "all:%s", text);
    if (plan_parse(plan, NULL, 1, 1, &s, &e))
        return cli_fail("flops", "--variant: %s (expected dense-naive, dense-flash or a spec "
                        "like index+softmax:k=16)", e.msg);
    if (s.sel == SEL_DENSE) {
        out[0] = cm_dense(CM_NAIVE), out[1] = cm_dense(CM_FLASH);
        return *n = 2, 0;
    }
    out[0] = cm_sparse(&s);
    return *n = 1, 0;
}

/* 1234567 -> "1.23M" */
static const char *si(double x, char *buf) {
    static const char *u[] = {"", "K", "M", "G", "T", "P", "E"};
    int i = 0;
    while (x >= 1000 && i < 6) x /= 1000, i++;
    snprintf(buf, 16, i ? "%.3g%s" : "%.0f%s", x, u[i]);
    return buf;
}

static const char *tstar(int t, char *buf) {
    if (t < 0) snprintf(buf, 16, "-");
    else snprintf(buf, 16, "%d", t);
    return buf;
}

/* ---- one configuration ---- */

typedef struct {
    const cm_variant *v;
    cm_cost c, flash;
    int tstar;
} flops_row;

static void row_fill(flops_row *r, const cm_shape *s, const cm_variant *v) {
    cm_variant fl = cm_dense(CM_FLASH);
    r->v = v;
    cm_cost_of(s, v, &r->c);
    cm_cost_of(s, &fl, &r->flash);
    r->tstar = v->kind == CM_SPARSE ? cm_crossover(s, v, TMAX) : -1;
}

static void row_text(const flops_row *r) {
    char a[16], b[16], c[16], d[16], t[16];
    printf("  %-40s %9s %9s %9s %9s %7.3f %7.3f %8s\n", r->v->name, si(r->c.attn_flops, a),
           si(r->c.flops, b), si(r->c.bytes, c), si(r->c.peak_bytes, d), r->c.flops / r->flash.flops,
           r->c.bytes / r->flash.bytes, tstar(r->tstar, t));
}

static void row_json(const flops_row *r, const cm_shape *s, int k, int first) {
    printf("%s{\"mode\": \"%s\", \"dim\": %d, \"heads\": %d, \"seq\": %d, \"k\": %d, "
           "\"variant\": \"%s\", \"proj_flops\": %.0f, \"attn_flops\": %.0f, \"flops\": %.0f, "
           "\"bytes\": %.0f, \"attn_bytes\": %.0f, \"peak_bytes\": %.0f, \"flops_vs_flash\": %.6g, "
           "\"bytes_vs_flash\": %.6g, \"crossover_T\": %d}",
           first ? "" : ", ", s->decode ? "decode" : "prefill", s->C, s->H, s->T, k, r->v->name,
           r->c.proj_flops, r->c.attn_flops, r->c.flops, r->c.bytes, r->c.attn_bytes, r->c.peak_bytes,
           r->c.flops / r->flash.flops, r->c.bytes / r->flash.bytes, r->tstar);
}

static const char CSV_HEAD[] = "mode,dim,heads,seq,k,variant,proj_flops,attn_flops,flops,bytes,"
                               "attn_bytes,peak_bytes,flops_vs_flash,bytes_vs_flash,crossover_T\n";

static void row_csv(const flops_row *r, const cm_shape *s, int k) {
    printf("%s,%d,%d,%d,%d,\"%s\",%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.6g,%.6g,%d\n",
           s->decode ? "decode" : "prefill", s->C, s->H, s->T, k, r->v->name, r->c.proj_flops,
           r->c.attn_flops, r->c.flops, r->c.bytes, r->c.attn_bytes, r->c.peak_bytes,
           r->c.flops / r->flash.flops, r->c.bytes / r->flash.bytes, r->tstar);
}

static void one_mode(const flops_args *a, const cm_variant *v, int n, int decode, int *first) {
    cm_shape s = cm_shape_make(a->C, a->H, a->T);
    s.Br = a->Br, s.decode = decode;
    if (!a->json && !a->csv) {
        char p[16];
        printf("%s (%s), projections %s FLOPs\n", decode ? "decode step" : "prefill",
               decode ? "1 query, KV cache of T keys" : "T queries", si(cm_proj_flops(&s), p));
        printf("  %-40s %9s %9s %9s %9s %7s %7s %8s\n", "variant", "attn", "total", "bytes", "peak",
               "xflash", "bytes/f", "T*");
    }
    for (int i = 0; i < n; i++) {
        flops_row r;
        row_fill(&r, &s, &v[i]);
        if (a->json) row_json(&r, &s, a->k, *first);
        else if (a->csv) row_csv(&r, &s, a->k);
        else row_text(&r);
        *first = 0;
    }
}

static int one_config(const flops_args *a, const cm_variant *v, int n) {
    int first = 1;
    if (a->json) printf("{\"rows\": [");
    else if (a->csv) fputs(CSV_HEAD, stdout);
    else
        printf("one attention layer: C %d, H %d (d %d), T %d, k %d, flash tile %d; FLOPs and bytes "
               "per layer, xflash = total FLOPs / dense-flash's\n", a->C, a->H, a->C / a->H, a->T,
               a->k, a->Br);
    one_mode(a, v, n, 0, &first);
    one_mode(a, v, n, 1, &first);
    if (a->json) printf("]}\n");
    return 0;
}

/* ---- the sweep ---- */

static const int SW_C[] = {128, 256, 512, 1024}, SW_K[] = {8, 16, 32, 64, 128, 256};
#define NC 4
#define NK 6

static void sweep_grid(const flops_args *a, int C, int k, const cm_variant *v, int n, int *first) {
    for (int decode = 0; decode < 2; decode++)
        for (int T = 64; T <= 32768; T *= 2) {
            cm_shape s = cm_shape_make(C, a->H, T);
            s.Br = a->Br, s.decode = decode;
            for (int i = 0; i < n; i++) {
                flops_row r;
                row_fill(&r, &s, &v[i]);
                if (a->json) row_json(&r, &s, k, *first);
                else row_csv(&r, &s, k);
                *first = 0;
            }
        }
}

static void sweep_text(const flops_args *a, int decode, int n) {
    printf("\ncrossover T* (%s), H %d: smallest T where total FLOPs < dense's\n",
           decode ? "decode step" : "prefill", a->H);
    static const char *labels[] = {"pos+softmax", "pos+mlp", "index+softmax", "index+mlp",
                                   "block+softmax", "block+mlp"};
    printf("%6s %4s %4s", "C", "d", "k");
    for (int i = 2; i < n; i++) printf(" %13s", labels[i - 2]);
    printf("\n");
    for (int ci = 0; ci < NC; ci++)
        for (int ki = 0; ki < NK; ki++) {
            cm_variant v[MAXV];
            cm_standard_variants(SW_K[ki], v);
            cm_shape s = cm_shape_make(SW_C[ci], a->H, 1);
            s.Br = a->Br, s.decode = decode;
            printf("%6d %4d %4d", SW_C[ci], SW_C[ci] / a->H, SW_K[ki]);
            for (int i = 2; i < n; i++) {
                char t[16];
                printf(" %13s", tstar(cm_crossover(&s, &v[i], TMAX), t));
            }
            printf("\n");
        }
}

static int sweep(const flops_args *a) {
    for (int ci = 0; ci < NC; ci++)
        if (SW_C[ci] % a->H)
            return cli_fail("flops", "--sweep: dim %d is not a multiple of --heads %d", SW_C[ci], a->H);
    cm_variant v[MAXV];
    int n = cm_standard_variants(32, v);
    if (!a->json && !a->csv) {
        printf("sparse variants at k keys per query: pos and index k = k (r 16, J 4), block b*n = k\n"
               "(b 16 for k >= 32, else k/2); pos and mlp hidden 128\n");
        sweep_text(a, 0, n);
        sweep_text(a, 1, n);
        return 0;
    }
    int first = 1;
    if (a->json) printf("{\"rows\": [");
    else fputs(CSV_HEAD, stdout);
    for (int ci = 0; ci < NC; ci++)
        for (int ki = 0; ki < NK; ki++) {
            n = cm_standard_variants(SW_K[ki], v);
            sweep_grid(a, SW_C[ci], SW_K[ki], v, n, &first);
        }
    if (a->json) printf("]}\n");
    return 0;
}

/* ---- the original project's formula beside ours ---- */

static void original_row(const flops_args *a, int T, int hidden, int first) {
    int d = a->C / a->H;
    double od = a->H * cm_original_dense(d, T), os = a->H * cm_original_sparse(d, T, a->k, hidden);
    head_spec p = head_spec_default();
    p.sel = SEL_POS, p.fn = HFN_MLP, p.k = a->k, p.hidden = hidden;
    cm_variant pm = cm_sparse(&p), nv = cm_dense(CM_NAIVE), fl = cm_dense(CM_FLASH);
    cm_shape s = cm_shape_make(a->C, a->H, T);
    s.Br = a->Br;
    cm_cost cp, cn, cf;
    cm_cost_of(&s, &pm, &cp), cm_cost_of(&s, &nv, &cn), cm_cost_of(&s, &fl, &cf);
    double outl = a->H * 2.0 * hidden * (double)T * T; /* the pos selector's T-wide output layer */
    if (a->json) {
        printf("%s{\"seq\": %d, \"orig_dense\": %.0f, \"orig_sparse\": %.0f, \"orig_ratio\": %.6g, "
               "\"ours_dense\": %.0f, \"ours_pos_mlp\": %.0f, \"ours_ratio\": %.6g, "
               "\"pos_output_layer\": %.0f, \"naive_bytes\": %.0f, \"flash_bytes\": %.0f, "
               "\"pos_mlp_bytes\": %.0f}", first ? "" : ", ", T, od, os, od / os, cf.flops, cp.flops,
               cf.flops / cp.flops, outl, cn.bytes, cf.bytes, cp.bytes);
        return;
    }
    char b[8][16];
    printf("%6d %10s %10s %7.2f | %10s %10s %7.3f %10s | %10s %10s %10s\n", T, si(od, b[0]),
           si(os, b[1]), od / os, si(cf.flops, b[2]), si(cp.flops, b[3]), cf.flops / cp.flops,
           si(outl, b[4]), si(cn.bytes, b[5]), si(cf.bytes, b[6]), si(cp.bytes, b[7]));
}

static int original(const flops_args *a) {
    static const int Ts[] = {256, 1024, 8192};
    int hidden = head_spec_default().hidden;
    if (a->csv) return cli_fail("flops", "--original has no --csv form (use --json)");
    if (a->json) printf("{\"dim\": %d, \"heads\": %d, \"k\": %d, \"hidden\": %d, \"rows\": [", a->C,
                        a->H, a->k, hidden);
    else {
        printf("the original project's formula (our reconstruction, docs/costmodel.md) beside ours;\n"
               "C %d, H %d (d %d), k %d, pos selector hidden %d; per layer; it claimed 2.3x at 512 dims /\n"
               "256 tokens and 500x at 8K\n", a->C, a->H, a->C / a->H, a->k, hidden);
        printf("%6s %10s %10s %7s | %10s %10s %7s %10s | %10s %10s %10s\n", "T", "orig dense",
               "orig sparse", "d/s", "ours flash", "pos+mlp", "d/s", "pos out", "naive B",
               "flash B", "pos+mlp B");
    }
    for (int i = 0; i < 3; i++) original_row(a, Ts[i], hidden, i == 0);
    if (a->json) printf("]}\n");
    else
        printf("d/s = dense / sparse FLOPs; orig: dense = 2*2*T^2*d (naive), sparse = T*hidden*d + 2*T*k*d; ours: projections\n"
               "included, the pos selector's output layer over T positions (2*hidden*T^2, 'pos out')\n"
               "counted, dense = flash-style (same FLOPs as naive, no T x T traffic)\n");
    return 0;
}

int cmd_flops(int argc, char **argv) {
    flops_args a = {.C = 512, .H = 8, .T = 1024, .k = 32, .Br = 64};
    int r = flops_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.sweep) return sweep(&a);
    if (a.original) return original(&a);
    cm_variant v[MAXV];
    int n = cm_standard_variants(a.k, v);
    if (a.variant && parse_variant(a.variant, v, &n)) return 1;
    return one_config(&a, v, n);
}
