/* sattn plan: an automatic plan — heads replaced in the order of least validation
 * loss per attention FLOP saved, until a loss budget is spent (docs/autoplan.md). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/autoplan.h"
#include "sattn/heads.h"
#include "sattn/plan.h"

#define DEFAULT_CANDIDATES "index+softmax:k=8,r=8,j=1;block+softmax:b=8,n=2"

static const cli_cmd PLAN = {
    "plan", NULL,
    "Builds a plan automatically: distills every candidate for every head, measures each head's\n"
    "validation loss alone per attention FLOP saved, then adds heads greedily (least loss per FLOP\n"
    "first), dropping any that would push the loss past the budget.",
    NULL};

typedef struct {
    const char *model, *data, *out, *heads_out, *cands_text, *budget_text;
    autoplan_config ac;
    head_spec *cands;
    int threads, json;
    data_format data_fmt;
} plan_args;

/* "1%" -> 0.01, "0.01" -> 0.01; (0, 1] only. */
static int parse_budget(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    int pct = end != s && *end == '%';
    if (pct) v /= 100, end++;
    if (errno || end == s || *end || !(v > 0 && v <= 1))
        return cli_fail("plan", "--budget: expected a percentage like 1%% or a fraction like 0.01 "
                                "in (0, 1], got '%s'", s);
    *out = v;
    return 0;
}

/* The values checked after the scan: --heads-out, --budget, --candidates. */
static int plan_values(plan_args *a) {
    if (a->heads_out && !strcmp(a->heads_out, a->out))
        return cli_fail("plan", "--heads-out %s: the same path as --out", a->heads_out);
    if (parse_budget(a->budget_text, &a->ac.budget)) return 1;
    sattn_err e;
    if (autoplan_parse_candidates(a->cands_text, &a->cands, &a->ac.n_candidates, &e))
        return cli_fail("plan", "--candidates %s", e.msg);
    a->ac.candidates = a->cands;
    return 0;
}

static int plan_parse_args(plan_args *a, int argc, char **argv) {
    opt_spec o[] = {
        cli_opt_model(&a->model, "the teacher: a sattn or llm.c checkpoint, safetensors or HF folder"),
        opt_required(cli_opt_data(&a->data, NULL)),
        opt_required(opt_str("budget", &a->budget_text, "B",
                             "allowed loss increase: a percentage like 1% or a fraction like 0.01, in (0, 1]")),
        cli_opt_out(&a->out, "PLAN", "the plan file to write (sattn distill --plan / docs/plans.md)"),
        opt_str("candidates", &a->cands_text, "LIST", "';'-separated specs (default '" DEFAULT_CANDIDATES "')"),
        opt_int("steps", &a->ac.dc.steps, 1, 1 << 30, "N", "distillation steps per candidate"),
        opt_int("windows", &a->ac.windows, 1, 1 << 30, "W", "validation windows of the model's context per loss"),
        opt_int("batch", &a->ac.eval_batch, 1, 1 << 16, "B", "windows per forward of the loss evaluations"),
        cli_opt_seed(&a->ac.seed, NULL),
        opt_str("heads-out", &a->heads_out, "PATH", "also save the chosen heads' trained parameters (sattn eval --heads)"),
        cli_opt_threads(&a->threads),
        cli_opt_json(&a->json, "print the result as one JSON object"),
        cli_opt_data_format(&a->data_fmt),
    };
    int r = cli_parse(&PLAN, o, CLI_N(o), argc, argv);
    if (r) return r;
    a->ac.dc.seed = a->ac.seed;
    return plan_values(a);
}

/* ---- progress (stderr) ---- */

typedef struct {
    const plan_args *a;
    int tty;
} progress_ctx;

static const char *cand_name(const plan_args *a, int c, char *buf, size_t n) {
    head_spec_format(&a->cands[c], buf, n);
    return buf;
}

static void progress_distill(const progress_ctx *p, const autoplan_event *ev) {
    const distill_progress *dp = ev->dp;
    int every = dp->steps / 10 > 0 ? dp->steps / 10 : 1;
    if (!p->tty && dp->step % every && dp->step != dp->steps) return;
    char name[128];
    fprintf(stderr, "%sdistill %d/%d %s: step %d/%d | selector loss %.4f | mlp mse %.5f | ETA %.0fs%s",
            p->tty ? "\r" : "", ev->cand + 1, p->a->ac.n_candidates,
            cand_name(p->a, ev->cand, name, sizeof name), dp->step, dp->steps, dp->sel_loss,
            dp->fn_loss, dp->eta_s, p->tty && dp->step < dp->steps ? "" : "\n");
}

static void progress_line(const autoplan_event *ev, void *user) {
    const progress_ctx *p = user;
    char name[128];
    switch (ev->stage) {
    case AUTOPLAN_DISTILL: progress_distill(p, ev); break;
    case AUTOPLAN_BASELINE: fprintf(stderr, "baseline: dense loss %.4f\n", ev->loss); break;
    case AUTOPLAN_SKIP:
        fprintf(stderr, "candidate %s: saves %.4g attention FLOPs per head at the model's context "
                        "(<= 0): skipped\n", cand_name(p->a, ev->cand, name, sizeof name), ev->saved);
        break;
    case AUTOPLAN_SINGLE:
        fprintf(stderr, "alone L%dH%d %s: loss %.4f | delta %+.4f\n", ev->layer, ev->head,
                cand_name(p->a, ev->cand, name, sizeof name), ev->loss, ev->delta);
        break;
    case AUTOPLAN_GREEDY:
        fprintf(stderr, "greedy L%dH%d %s: loss %.4f (%+.3f%%) %s\n", ev->layer, ev->head,
                cand_name(p->a, ev->cand, name, sizeof name), ev->loss, 100 * ev->delta,
                ev->accepted ? "kept" : "dropped");
        break;
    }
}

/* ---- output (stdout) ---- */

static void print_table(const plan_args *a, const autoplan_result *r) {
    printf("%-6s %-28s %-28s %11s %10s %7s %s\n", "head", "plan", "best candidate", "delta_alone",
           "saved", "saved%", "greedy");
    double dense = r->flops_dense / (r->layers * r->heads);
    for (int i = 0; i < r->layers * r->heads; i++) {
        const autoplan_head *h = &r->ph[i];
        char name[32], spec[128], cand[128] = "-", greedy[48] = "-";
        snprintf(name, sizeof name, "L%dH%d", i / r->heads, i % r->heads);
        head_spec_format(&r->specs[i], spec, sizeof spec);
        if (h->cand < 0) {
            printf("%-6s %-28s %-28s %11s %10s %7s %s\n", name, spec, cand, "-", "-", "-", greedy);
            continue;
        }
        cand_name(a, h->cand, cand, sizeof cand);
        if (h->tried)
            snprintf(greedy, sizeof greedy, "%s (%+.3f%%)", h->chosen ? "kept" : "dropped",
                     100 * (h->loss_tried / r->baseline - 1));
        printf("%-6s %-28s %-28s %+11.4f %10.4g %6.1f%% %s\n", name, spec, cand, h->delta, h->saved,
               100 * h->saved / dense, greedy);
    }
}

static void print_summary(const plan_args *a, const autoplan_result *r) {
    double saved = r->flops_dense - r->flops_plan;
    printf("baseline loss %.4f (%d windows, %zu tokens)\n", r->baseline, r->windows, r->tokens);
    printf("plan loss %.4f | change %+.4f nats (%+.2f%%) | budget %.2f%%\n", r->loss,
           r->loss - r->baseline, 100 * (r->loss / r->baseline - 1), 100 * a->ac.budget);
    printf("attention FLOPs per sequence (T=%d): dense %.4g | plan %.4g | saved %.4g (%.1f%%)\n",
           r->T, r->flops_dense, r->flops_plan, saved, 100 * saved / r->flops_dense);
    printf("heads replaced %d/%d\n", r->replaced, r->layers * r->heads);
    printf("plan %s%s%s\nwall_s %.1f\n", a->out, a->heads_out ? " | heads " : "",
           a->heads_out ? a->heads_out : "", r->wall_s);
}

static void json_head(const plan_args *a, const autoplan_result *r, int i) {
    const autoplan_head *h = &r->ph[i];
    char spec[128], cand[128];
    head_spec_format(&r->specs[i], spec, sizeof spec);
    printf("%s{\"layer\": %d, \"head\": %d, \"spec\": \"%s\"", i ? ", " : "", i / r->heads,
           i % r->heads, spec);
    if (h->cand >= 0)
        printf(", \"candidate\": \"%s\", \"delta_alone\": %.6f, \"flops_saved\": %.1f",
               cand_name(a, h->cand, cand, sizeof cand), h->delta, h->saved);
    else printf(", \"candidate\": null");
    if (h->tried) printf(", \"loss_when_added\": %.6f", h->loss_tried);
    printf(", \"chosen\": %s}", h->chosen ? "true" : "false");
}

static void print_json(const plan_args *a, const autoplan_result *r) {
    double saved = r->flops_dense - r->flops_plan;
    printf("{\"heads\": [");
    for (int i = 0; i < r->layers * r->heads; i++) json_head(a, r, i);
    printf("], \"candidates\": [");
    for (int c = 0; c < a->ac.n_candidates; c++) {
        char name[128];
        printf("%s\"%s\"", c ? ", " : "", cand_name(a, c, name, sizeof name));
    }
    printf("], \"budget\": %.6g, \"baseline_loss\": %.6f, \"plan_loss\": %.6f, \"loss_change\": %.6f, "
           "\"loss_change_pct\": %.4f, \"flops_dense\": %.1f, \"flops_plan\": %.1f, "
           "\"flops_saved\": %.1f, \"flops_saved_pct\": %.4f, \"heads_replaced\": %d, "
           "\"heads_total\": %d, \"T\": %d, \"windows\": %d, \"tokens\": %zu, \"steps\": %d, "
           "\"wall_s\": %.2f, \"out\": ",
           a->ac.budget, r->baseline, r->loss, r->loss - r->baseline, 100 * (r->loss / r->baseline - 1),
           r->flops_dense, r->flops_plan, saved, 100 * saved / r->flops_dense, r->replaced,
           r->layers * r->heads, r->T, r->windows, r->tokens, a->ac.dc.steps, r->wall_s);
    cli_json_str(a->out);
    printf(", \"heads_out\": ");
    if (a->heads_out) cli_json_str(a->heads_out);
    else printf("null");
    printf("}\n");
}

/* ---- main ---- */

/* Loads the teacher and the data and checks both splits hold a window. Exit status. */
static int plan_setup(const plan_args *a, gpt_model *m, dataset *d) {
    sattn_err e;
    if (cli_load_model("plan", a->model, m)) return 1;
    int B = a->ac.dc.batch > a->ac.eval_batch ? a->ac.dc.batch : a->ac.eval_batch;
    if (load_data_checked("plan", a->data, a->data_fmt, m, "planning with this model", B, m->cfg.max_seq, 0, d))
        return gpt_free(m), 1;
    if (dataset_check_window(d, SPLIT_TRAIN, m->cfg.max_seq, a->data, &e) ||
        dataset_check_window(d, SPLIT_VAL, m->cfg.max_seq, a->data, &e)) {
        dataset_free(d), gpt_free(m);
        return cli_fail("plan", "%s", e.msg);
    }
    cli_data_note(a->data, d);
    return 0;
}

static int plan_write(const plan_args *a, const autoplan_result *r, const gpt_model *m) {
    sattn_err e;
    if (a->heads_out && heads_save(a->heads_out, &r->chosen, &m->cfg, &e))
        return cli_fail("plan", "--heads-out %s", e.msg);
    if (plan_save(a->out, r->specs, r->layers, r->heads, &e)) {
        if (a->heads_out) remove(a->heads_out);
        return cli_fail("plan", "--out %s", e.msg);
    }
    return 0;
}

int cmd_plan(int argc, char **argv) {
    plan_args a = {.ac = autoplan_config_default(), .cands_text = DEFAULT_CANDIDATES};
    int r = plan_parse_args(&a, argc, argv);
    if (!r) {
        cli_file outs[] = {{"--out", a.out}, {"--heads-out", a.heads_out}, {NULL, NULL}};
        cli_file ins[] = {{"--model", a.model}, {"--data", a.data}, {NULL, NULL}};
        r = cli_check_outputs("plan", outs, ins);
    }
    if (r) return free(a.cands), r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    gpt_model m;
    dataset d;
    if (plan_setup(&a, &m, &d)) return free(a.cands), 1;
    progress_ctx pc = {&a, isatty(2)};
    autoplan_result res;
    sattn_err e;
    if (autoplan_run(&m, &d, &a.ac, &res, progress_line, &pc, &e)) {
        r = cli_fail("plan", "%s", e.msg);
    } else {
        r = plan_write(&a, &res, &m);
        if (!r && a.json) print_json(&a, &res);
        else if (!r) print_table(&a, &res), print_summary(&a, &res);
        autoplan_free(&res);
    }
    dataset_free(&d);
    gpt_free(&m);
    free(a.cands);
    return r;
}
