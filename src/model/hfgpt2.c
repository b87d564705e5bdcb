#define _POSIX_C_SOURCE 200809L /* mkdir's mode, stat */
/* hfgpt2: Hugging Face GPT-2 (names, layouts and checks in sattn/hfgpt2.h). */
#include "sattn/hfgpt2.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sattn/jdoc.h"

/* A per-layer tensor: sattn's index, the Hugging Face name after "h.N.", and its sattn
 * shape in units of C: (out, in) for a Conv1D weight, stored (in, out) by HF; in = 0 for
 * a vector of out * C. */
static const struct {
    int t;
    const char *hf;
    int out, in;
} LAYER_MAP[] = {
    {GPT_LN1W, "ln_1.weight", 1, 0},        {GPT_LN1B, "ln_1.bias", 1, 0},
    {GPT_QKVW, "attn.c_attn.weight", 3, 1}, {GPT_QKVB, "attn.c_attn.bias", 3, 0},
    {GPT_ATTPROJW, "attn.c_proj.weight", 1, 1}, {GPT_ATTPROJB, "attn.c_proj.bias", 1, 0},
    {GPT_LN2W, "ln_2.weight", 1, 0},        {GPT_LN2B, "ln_2.bias", 1, 0},
    {GPT_FCW, "mlp.c_fc.weight", 4, 1},     {GPT_FCB, "mlp.c_fc.bias", 4, 0},
    {GPT_FCPROJW, "mlp.c_proj.weight", 1, 4}, {GPT_FCPROJB, "mlp.c_proj.bias", 1, 0},
};
#define N_LAYER_MAP ((int)(sizeof LAYER_MAP / sizeof *LAYER_MAP))

/* One tensor of the file: its name without prefix, where it lives in sattn's parameter
 * block (an offset: slots are checked before the model exists), and its shape as HF stores
 * it (rows x cols; cols 0 for a vector). transpose: the block holds (cols x rows). */
typedef struct {
    char name[64];
    size_t off;
    uint64_t rows, cols;
    int transpose;
} hf_slot;

static int n_slots(const gpt_config *c) { return 4 + N_LAYER_MAP * c->layers; }

/* Slot i of n_slots(c) in file order: wte, wpe, the layers, ln_f (sizes: gpt_param_sizes).
 * Made one at a time: a config that claims a million layers costs nothing before the file's
 * own tensors have been matched against it. */
static hf_slot slot_at(const gpt_config *c, const size_t *sizes, int i) {
    uint64_t C = (uint64_t)c->channels;
    size_t base[GPT_NUM_TENSORS], o = 0;
    for (int t = 0; t < GPT_NUM_TENSORS; t++) base[t] = o, o += sizes[t];
    if (i == 0) return (hf_slot){"wte.weight", base[GPT_WTE], (uint64_t)c->vocab, C, 0};
    if (i == 1) return (hf_slot){"wpe.weight", base[GPT_WPE], (uint64_t)c->max_seq, C, 0};
    if (i == n_slots(c) - 2) return (hf_slot){"ln_f.weight", base[GPT_LNFW], C, 0, 0};
    if (i == n_slots(c) - 1) return (hf_slot){"ln_f.bias", base[GPT_LNFB], C, 0, 0};
    int l = (i - 2) / N_LAYER_MAP, j = (i - 2) % N_LAYER_MAP, w = LAYER_MAP[j].in > 0, t = LAYER_MAP[j].t;
    hf_slot x = {"", base[t] + (size_t)l * (sizes[t] / (size_t)c->layers),
                 (uint64_t)(w ? LAYER_MAP[j].in : LAYER_MAP[j].out) * C, w ? (uint64_t)LAYER_MAP[j].out * C : 0, w};
    snprintf(x.name, sizeof x.name, "h.%d.%s", l, LAYER_MAP[j].hf);
    return x;
}

static uint64_t slot_numel(const hf_slot *s) { return s->rows * (s->cols ? s->cols : 1); }

/* (r x c) row-major src into (c x r) dst. */
static void transpose(float *dst, const float *src, uint64_t r, uint64_t c) {
    for (uint64_t i = 0; i < r; i++)
        for (uint64_t j = 0; j < c; j++) dst[j * r + i] = src[i * c + j];
}

/* ---------------------------------------------------------------- config.json */

/* An optional member that, when present, must be `want` (true/false); why says why. */
static int want_bool(json_object *o, const char *key, int want, const char *path, const char *why, sattn_err *e) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) return 0;
    if (json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v) == want) return 0;
    return err_set(e, "%s: \"%s\" is %s, expected %s (%s)", path, key, json_object_to_json_string(v),
                   want ? "true" : "false", why);
}

/* The members that change GPT-2's arithmetic; each must be what sattn computes. */
static int config_semantics(json_object *o, const char *path, int C, sattn_err *e) {
    json_object *v;
    if (json_object_object_get_ex(o, "n_inner", &v) && !json_object_is_type(v, json_type_null) &&
        !(json_object_is_type(v, json_type_int) && json_object_get_int64(v) == 4 * (int64_t)C))
        return err_set(e, "%s: \"n_inner\" is %.40s, expected null or %d (sattn's MLP is 4 x n_embd wide)", path,
                       json_object_to_json_string(v), 4 * C);
    if (json_object_object_get_ex(o, "activation_function", &v)) {
        const char *a = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (strcmp(a, "gelu_new") && strcmp(a, "gelu_pytorch_tanh"))
            return err_set(e, "%s: \"activation_function\" is %.40s, expected \"gelu_new\" (sattn's tanh GELU)",
                           path, json_object_to_json_string(v));
    }
    if (json_object_object_get_ex(o, "layer_norm_epsilon", &v) &&
        !(json_object_is_type(v, json_type_double) && json_object_get_double(v) == 1e-5))
        return err_set(e, "%s: \"layer_norm_epsilon\" is %.40s, expected 1e-05 (sattn's LayerNorm)", path,
                       json_object_to_json_string(v));
    if (want_bool(o, "scale_attn_weights", 1, path, "sattn scales attention by 1/sqrt(head dim)", e) ||
        want_bool(o, "scale_attn_by_inverse_layer_idx", 0, path, "not in sattn's attention", e) ||
        want_bool(o, "add_cross_attention", 0, path, "sattn's GPT-2 is a decoder only", e) ||
        want_bool(o, "tie_word_embeddings", 1, path, "sattn ties the output layer to wte", e))
        return -1;
    return 0;
}

static int config_from_json(json_object *o, const char *path, gpt_config *c, sattn_err *e) {
    json_object *t = jdoc_member(o, "model_type", json_type_string, path, e);
    if (!t) return -1;
    if (strcmp(json_object_get_string(t), "gpt2"))
        return err_set(e, "%s: \"model_type\" is %.40s, expected \"gpt2\"", path, json_object_to_json_string(t));
    int64_t v[5], ctx;
    static const char *const keys[5] = {"vocab_size", "n_positions", "n_embd", "n_layer", "n_head"};
    for (int i = 0; i < 5; i++)
        if (jdoc_int(o, keys[i], 1, 1 << 20, &v[i], path, e)) return -1;
    json_object *x;
    if (json_object_object_get_ex(o, "n_ctx", &x) && (jdoc_int(o, "n_ctx", 1, 1 << 20, &ctx, path, e) || ctx != v[1]))
        return err_set(e, "%s: \"n_ctx\" is %s, expected n_positions (%" PRId64 ")", path,
                       json_object_to_json_string(x), v[1]);
    memset(c, 0, sizeof *c);
    c->vocab = (int)v[0], c->max_seq = (int)v[1], c->channels = (int)v[2], c->layers = (int)v[3];
    c->heads = (int)v[4];
    c->padded_vocab = gpt_padded_vocab(c->vocab);
    sattn_err inner;
    if (gpt_config_check(c, &inner)) return err_set(e, "%s: %s", path, inner.msg);
    return config_semantics(o, path, c->channels, e);
}

int hf_config_read(const char *path, gpt_config *c, sattn_err *e) {
    json_object *o = jdoc_parse_file(path, 1 << 20, 0, e);
    if (!o) return -1;
    int r = config_from_json(o, path, c, e);
    json_object_put(o);
    return r;
}

void hf_config_format(sbuf *b, const gpt_config *c, stf_dtype dt) {
    const char *torch = dt == STF_F16 ? "float16" : dt == STF_BF16 ? "bfloat16" : "float32";
    sb_printf(b, "{\n  \"activation_function\": \"gelu_new\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n"
                 "  \"layer_norm_epsilon\": 1e-05,\n  \"model_type\": \"gpt2\",\n"
                 "  \"n_embd\": %d,\n  \"n_head\": %d,\n  \"n_inner\": null,\n  \"n_layer\": %d,\n"
                 "  \"n_positions\": %d,\n  \"scale_attn_weights\": true,\n  \"tie_word_embeddings\": true,\n"
                 "  \"torch_dtype\": \"%s\",\n  \"vocab_size\": %d\n}\n",
              c->channels, c->heads, c->layers, c->max_seq, torch, c->vocab);
}

/* ---------------------------------------------------------------- reading */

enum { NAME_UNKNOWN = -1, NAME_SLOT = 0, NAME_BUFFER = 1, NAME_LM_HEAD = 2 };

/* What the file's tensor `name` is: one of the model's (*layer: its layer, or -1 for wte,
 * wpe and ln_f), a mask buffer to skip (*layer set too), the tied head, or unknown. */
static int classify(const char *name, const char *prefix, int *layer) {
    if (!strcmp(name, "lm_head.weight")) return NAME_LM_HEAD;
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl)) return NAME_UNKNOWN;
    name += pl;
    *layer = -1;
    static const char *const top[] = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, top[i])) return NAME_SLOT;
    if (strncmp(name, "h.", 2) || name[2] < '0' || name[2] > '9' || (name[2] == '0' && name[3] != '.'))
        return NAME_UNKNOWN;
    char *end;
    long l = strtol(name + 2, &end, 10);
    if (*end != '.' || l > (1 << 20)) return NAME_UNKNOWN;
    *layer = (int)l;
    if (!strcmp(end + 1, "attn.bias") || !strcmp(end + 1, "attn.masked_bias")) return NAME_BUFFER;
    for (int i = 0; i < N_LAYER_MAP; i++)
        if (!strcmp(end + 1, LAYER_MAP[i].hf)) return NAME_SLOT;
    return NAME_UNKNOWN;
}

static int is_float_dtype(stf_dtype d) { return d == STF_F32 || d == STF_F16 || d == STF_BF16; }

static void shape_text(char *buf, size_t n, const uint64_t *s, int nd) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%" PRIu64, i ? ", " : "", s[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* t holds slot s's tensor: a float dtype and HF's shape. */
static int check_slot_tensor(const stf_file *f, const stf_tensor *t, const hf_slot *s, sattn_err *e) {
    char nm[128], got[96], want[64];
    stf_name_for_msg(t->name, nm, sizeof nm);
    if (!is_float_dtype(t->dtype))
        return err_set(e, "%s: tensor '%s': dtype %s, expected F32, F16 or BF16", f->path, nm, stf_dtype_name(t->dtype));
    uint64_t ws[2] = {s->rows, s->cols};
    int wnd = s->cols ? 2 : 1;
    if (t->ndim == wnd && t->shape[0] == ws[0] && (wnd == 1 || t->shape[1] == ws[1])) return 0;
    shape_text(got, sizeof got, t->shape, t->ndim);
    shape_text(want, sizeof want, ws, wnd);
    return err_set(e, "%s: tensor '%s': shape %s, expected %s%s", f->path, nm, got, want,
                   s->transpose ? " (Conv1D weights are stored (in, out))" : "");
}

/* Every tensor of the file is one of the model's (with the prefix, layers < L), a mask
 * buffer or lm_head.weight; then every slot is present with its dtype and shape (which
 * bounds what the model will allocate by the file's size). */
static int check_names(const stf_file *f, const char *prefix, const gpt_config *c, const size_t *sizes,
                       sattn_err *e) {
    char nm[128], full[96];
    for (int i = 0; i < f->n; i++) {
        int layer = -1, k = classify(f->t[i].name, prefix, &layer);
        stf_name_for_msg(f->t[i].name, nm, sizeof nm);
        if (k == NAME_UNKNOWN)
            return err_set(e, "%s: tensor '%s' is not one of GPT-2's (expected %swte.weight, "
                              "%sh.N.attn.c_attn.weight, ...)", f->path, nm, prefix, prefix);
        if (layer >= c->layers)
            return err_set(e, "%s: tensor '%s': layer %d, but the model has %d layers", f->path, nm, layer,
                           c->layers);
    }
    for (int i = 0; i < n_slots(c); i++) {
        hf_slot s = slot_at(c, sizes, i);
        snprintf(full, sizeof full, "%s%s", prefix, s.name);
        const stf_tensor *t = stf_find(f, full);
        if (!t) return err_set(e, "%s: missing tensor '%s'", f->path, full);
        if (check_slot_tensor(f, t, &s, e)) return -1;
    }
    return 0;
}

static int check_finite(const char *path, const char *name, const float *x, uint64_t n, sattn_err *e) {
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return err_set(e, "%s: tensor '%s' holds %s at element %" PRIu64 ", expected finite parameters", path, name,
                           isnan(x[i]) ? "NaN" : x[i] > 0 ? "+Inf" : "-Inf", i);
    return 0;
}

/* The largest slot: wte, wpe or an MLP weight (4C x C). */
static uint64_t most_numel(const gpt_config *c) {
    uint64_t C = (uint64_t)c->channels, n = 4 * C * C;
    if ((uint64_t)c->vocab * C > n) n = (uint64_t)c->vocab * C;
    return (uint64_t)c->max_seq * C > n ? (uint64_t)c->max_seq * C : n;
}

/* Reads each slot into m (transposed through a scratch buffer, or straight in). */
static int read_slots(stf_file *f, const char *prefix, gpt_model *m, sattn_err *e) {
    float *scratch = xmalloc_aligned((size_t)most_numel(&m->cfg) * sizeof(float) + 64);
    char full[96];
    int r = 0;
    for (int i = 0; i < n_slots(&m->cfg) && !r; i++) {
        hf_slot s = slot_at(&m->cfg, m->param_sizes, i);
        snprintf(full, sizeof full, "%s%s", prefix, s.name);
        float *into = s.transpose ? scratch : m->params_mem + s.off;
        r = stf_read_f32(f, stf_find(f, full), into, e) || check_finite(f->path, full, into, slot_numel(&s), e);
        if (!r && s.transpose) transpose(m->params_mem + s.off, scratch, s.rows, s.cols);
    }
    free(scratch);
    return r ? -1 : 0;
}

/* lm_head.weight, when there, must be wte exactly: sattn's output layer is wte. */
static int check_lm_head(stf_file *f, const gpt_model *m, sattn_err *e) {
    const stf_tensor *t = stf_find(f, "lm_head.weight");
    if (!t) return 0;
    uint64_t V = (uint64_t)m->cfg.vocab, C = (uint64_t)m->cfg.channels;
    hf_slot s = {"lm_head.weight", 0, V, C, 0};
    if (check_slot_tensor(f, t, &s, e)) return -1;
    float *x = xmalloc_aligned((size_t)(V * C) * sizeof(float) + 64);
    int r = stf_read_f32(f, t, x, e);
    if (!r && memcmp(x, m->params.wte, (size_t)(V * C) * sizeof(float)))
        r = err_set(e, "%s: tensor 'lm_head.weight' differs from wte.weight, expected the tied head "
                       "(sattn's output layer is the token embedding)", f->path);
    free(x);
    return r;
}

/* A bare file's config: n_head from __metadata__, the rest from the shapes. */
static int config_from_tensors(const stf_file *f, const char *prefix, gpt_config *c, sattn_err *e) {
    const char *nh = stf_meta(f, "n_head");
    char full[96], *end;
    long h = nh ? strtol(nh, &end, 10) : 0;
    if (!nh || *end || end == nh || h < 1 || h > (1 << 20))
        return err_set(e, "%s: no __metadata__ \"n_head\" (a positive integer) and no config.json beside it, "
                          "expected a Hugging Face folder or a file sattn wrote", f->path);
    snprintf(full, sizeof full, "%swte.weight", prefix);
    const stf_tensor *wte = stf_find(f, full);
    snprintf(full, sizeof full, "%swpe.weight", prefix);
    const stf_tensor *wpe = stf_find(f, full);
    if (!wpe) return err_set(e, "%s: missing tensor '%s'", f->path, full);
    if (wte->ndim != 2 || wpe->ndim != 2 || wte->shape[0] > (1 << 20) || wte->shape[1] > (1 << 20) ||
        wpe->shape[0] > (1 << 20))
        return err_set(e, "%s: wte.weight and wpe.weight must be matrices (V, C) and (n_positions, C) of at most "
                          "2^20 rows and columns", f->path);
    memset(c, 0, sizeof *c);
    c->vocab = (int)wte->shape[0], c->channels = (int)wte->shape[1], c->max_seq = (int)wpe->shape[0];
    c->heads = (int)h, c->padded_vocab = gpt_padded_vocab(c->vocab);
    for (int i = 0; i < f->n; i++) {
        int layer = -1;
        if (classify(f->t[i].name, prefix, &layer) != NAME_UNKNOWN && layer >= c->layers) c->layers = layer + 1;
    }
    sattn_err inner;
    return gpt_config_check(c, &inner) ? err_set(e, "%s: %s", f->path, inner.msg) : 0;
}

static int exists(const char *path, int dir) {
    struct stat sb;
    return stat(path, &sb) == 0 && (dir ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode));
}

/* config.json beside file (its folder), malloc'd; NULL when there is none. */
static char *sibling_config(const char *file) {
    const char *slash = strrchr(file, '/');
    size_t dl = slash ? (size_t)(slash - file) + 1 : 0;
    char *p = xmalloc(dl + sizeof "config.json");
    memcpy(p, file, dl);
    strcpy(p + dl, "config.json");
    if (exists(p, 0)) return p;
    free(p);
    return NULL;
}

/* The config of f: config.json at cfg_path when given, else __metadata__ n_head and the
 * shapes, else a config.json beside the file. */
static int file_config(const stf_file *f, const char *cfg_path, const char *prefix, gpt_config *c, sattn_err *e) {
    if (cfg_path) return hf_config_read(cfg_path, c, e);
    char *sib = stf_meta(f, "n_head") ? NULL : sibling_config(f->path);
    int r = sib ? hf_config_read(sib, c, e) : config_from_tensors(f, prefix, c, e);
    free(sib);
    return r;
}

static int load_file(const char *path, const char *cfg_path, gpt_model *m, sattn_err *e) {
    stf_file f;
    int r = stf_open(path, &f, e);
    const char *prefix = stf_find(&f, "wte.weight") ? "" : "transformer.";
    if (!r && !stf_find(&f, "wte.weight") && !stf_find(&f, "transformer.wte.weight"))
        r = err_set(e, "%s: missing tensor 'wte.weight' (expected GPT-2's tensors, or GPT2LMHeadModel's "
                       "transformer.wte.weight ...)", path);
    gpt_config c;
    size_t sizes[GPT_NUM_TENSORS];
    if (!r) r = file_config(&f, cfg_path, prefix, &c, e);
    if (!r) gpt_param_sizes(&c, sizes);
    if (!r) r = check_names(&f, prefix, &c, sizes, e);
    if (!r) {
        gpt_create(m, &c);
        r = read_slots(&f, prefix, m, e) || check_lm_head(&f, m, e) ? -1 : 0;
        if (r) gpt_free(m);
    }
    stf_close(&f);
    return r;
}

/* dir/name, malloc'd. */
static char *join(const char *dir, const char *name) {
    size_t dl = strlen(dir);
    char *p = xmalloc(dl + strlen(name) + 2);
    sprintf(p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
    return p;
}

static int load_folder(const char *dir, gpt_model *m, sattn_err *e) {
    char *cfg = join(dir, "config.json"), *st = join(dir, "model.safetensors"), *idx = join(dir, "model.safetensors.index.json");
    int r;
    if (!exists(st, 0) && exists(idx, 0))
        r = err_set(e, "%s: a sharded checkpoint (model.safetensors.index.json), expected one model.safetensors", dir);
    else if (!exists(st, 0) || !exists(cfg, 0))
        r = err_set(e, "%s: a folder without %s, expected a Hugging Face GPT-2 folder (config.json + "
                       "model.safetensors)", dir, exists(cfg, 0) ? "model.safetensors" : "config.json");
    else
        r = load_file(st, cfg, m, e);
    free(cfg), free(st), free(idx);
    return r;
}

int hf_load(const char *path, gpt_model *m, sattn_err *e) {
    memset(m, 0, sizeof *m);
    return exists(path, 1) ? load_folder(path, m, e) : load_file(path, NULL, m, e);
}

/* ---------------------------------------------------------------- writing */

static int write_tensors(afile *a, const gpt_model *m, stf_dtype dt, sattn_err *e) {
    int ns = n_slots(&m->cfg);
    stf_out *o = xcalloc((size_t)ns, sizeof *o);
    for (int i = 0; i < ns; i++) {
        hf_slot s = slot_at(&m->cfg, m->param_sizes, i);
        snprintf(o[i].name, sizeof o[i].name, "%s", s.name);
        o[i].ndim = s.cols ? 2 : 1;
        o[i].shape[0] = s.rows, o[i].shape[1] = s.cols;
    }
    char nh[16];
    snprintf(nh, sizeof nh, "%d", m->cfg.heads);
    const char *const meta[2][2] = {{"format", "pt"}, {"n_head", nh}};
    int r = stf_write_header(a, o, ns, dt, meta, 2, e);
    free(o);
    float *scratch = xmalloc_aligned((size_t)most_numel(&m->cfg) * sizeof(float) + 64);
    for (int i = 0; i < ns && !r; i++) {
        hf_slot s = slot_at(&m->cfg, m->param_sizes, i);
        const float *x = m->params_mem + s.off;
        if (s.transpose) transpose(scratch, x, s.cols, s.rows), x = scratch;
        r = stf_write_data(a, s.name, x, (size_t)slot_numel(&s), dt, e);
    }
    free(scratch);
    return r;
}

static int write_file(const char *path, const gpt_model *m, stf_dtype dt, sattn_err *e) {
    afile a;
    if (afile_open(&a, path, e)) return -1;
    if (write_tensors(&a, m, dt, e)) return afile_abort(&a), -1;
    return afile_commit(&a, e);
}

static int write_config(const char *path, const gpt_config *c, stf_dtype dt, sattn_err *e) {
    sbuf b = {0};
    hf_config_format(&b, c, dt);
    afile a;
    int r = afile_open(&a, path, e);
    if (!r && afile_write(&a, b.s, b.n, e)) afile_abort(&a), r = -1;
    else if (!r) r = afile_commit(&a, e);
    sb_free(&b);
    return r;
}

static int save_check(const char *path, const gpt_model *m, stf_dtype dt, sattn_err *e) {
    if (m->cfg.pos != GPT_POS_LEARNED)
        return err_set(e, "%s: Hugging Face's GPT-2 holds only learned positions and this model uses RoPE, "
                          "expected the sattn format", path);
    if (dt != STF_F32 && dt != STF_F16 && dt != STF_BF16)
        return err_set(e, "%s: dtype %s, expected F32, F16 or BF16", path, stf_dtype_name(dt));
    return 0;
}

int hf_save(const char *path, const gpt_model *m, int folder, stf_dtype dt, sattn_err *e) {
    if (save_check(path, m, dt, e)) return -1;
    if (!folder) return write_file(path, m, dt, e);
    if (!exists(path, 1) && mkdir(path, 0777) != 0)
        return err_set(e, "%s: cannot make the folder (%s)", path, strerror(errno));
    char *st = join(path, "model.safetensors"), *cfg = join(path, "config.json");
    int r = write_file(st, m, dt, e) || write_config(cfg, &m->cfg, dt, e) ? -1 : 0;
    free(st), free(cfg);
    return r;
}
