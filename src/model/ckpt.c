/* ckpt: sattn native and llm.c GPT-2 checkpoints (layouts in sattn/ckpt.h).
 *
 * Loading reads the header, checks everything that can be checked before
 * allocating (magic, version, dimensions, exact file size), then reads the
 * float blocks straight into the model, so a GPT-2 sized file is never held
 * twice in memory. Both formats are little-endian, as is every host we build on. */
#include "sattn/ckpt.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sattn/data.h"
#include "sattn/hfgpt2.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint I/O assumes a little-endian host"
#endif

#define NATIVE_HEADER_WORDS 64
#define LLMC_HEADER_WORDS 256
#define LLMC_HEADER_BYTES (LLMC_HEADER_WORDS * 4)

/* Native header words (see sattn/ckpt.h). */
enum { W_CHECKSUM = 14, W_HAS_SCHED = 16, W_SCHED_END = 30, W_POS = 30, W_ROPE_BASE = 31,
       W_ROPE_SCALE = 32, W_POS_END = 33, W_MIX = 33, W_MIX_END = 36,
       W_MIX_FLAGS = 36, W_DENSE_WARMUP = 37, W_PLAN_HASH = 38, W_V3_END = 40 };

/* What a header says, in either format. */
typedef struct {
    gpt_config cfg;
    int native;
    int version;
    int has_optim;
    int step;
    uint64_t rng_state;
    uint64_t num_params; /* native only: must agree with the dimensions */
    uint64_t checksum;   /* native only */
    uint64_t head_hash;  /* native version 2: FNV-1a of the header with the checksum as 0 */
    int has_schedule;
    ckpt_schedule sched;
    size_t header_bytes;
    int safetensors; /* the file is safetensors: hfgpt2.h reads it */
} ckpt_header;

/* ---------------------------------------------------------------- save */

/* Continues hash h over the parameters (and the AdamW moments). */
static uint64_t payload_checksum(const gpt_model *m, int has_optim, uint64_t h) {
    size_t bytes = m->num_params * sizeof(float);
    h = fnv1a64(m->params_mem, bytes, h);
    if (has_optim) {
        h = fnv1a64(m->m_mem, bytes, h);
        h = fnv1a64(m->v_mem, bytes, h);
    }
    return h;
}

static void schedule_to_words(const ckpt_schedule *s, uint32_t *h) {
    uint32_t w[] = {1, (uint32_t)s->batch, (uint32_t)s->seq, (uint32_t)s->steps,
                    (uint32_t)s->warmup, f32_to_bits(s->lr), f32_to_bits(s->min_lr),
                    f32_to_bits(s->clip), f32_to_bits(s->weight_decay), f32_to_bits(s->beta1),
                    f32_to_bits(s->beta2), f32_to_bits(s->eps), (uint32_t)s->seed,
                    (uint32_t)(s->seed >> 32)};
    memcpy(h + W_HAS_SCHED, w, sizeof w);
    for (int i = 0; i < W_MIX_END - W_MIX; i++) h[W_MIX + i] = f32_to_bits(s->mix[i]);
    h[W_MIX_FLAGS] = (uint32_t)s->mix_flags;
    h[W_DENSE_WARMUP] = (uint32_t)s->dense_warmup;
    h[W_PLAN_HASH] = (uint32_t)s->plan_hash;
    h[W_PLAN_HASH + 1] = (uint32_t)(s->plan_hash >> 32);
}

/* The version-3 header with the checksum words still 0. */
static void native_header(const gpt_model *m, const train_state *st,
                          uint32_t h[NATIVE_HEADER_WORDS]) {
    int optim = st && st->has_optim;
    uint64_t rng = st ? st->rng.state : 0, np = m->num_params;
    const gpt_config *c = &m->cfg;
    uint32_t w[] = {CKPT_MAGIC, CKPT_VERSION, (uint32_t)c->max_seq, (uint32_t)c->vocab,
                    (uint32_t)c->padded_vocab, (uint32_t)c->layers, (uint32_t)c->heads,
                    (uint32_t)c->channels, (uint32_t)optim, (uint32_t)(st ? st->step : 0),
                    (uint32_t)rng, (uint32_t)(rng >> 32), (uint32_t)np, (uint32_t)(np >> 32)};
    memset(h, 0, NATIVE_HEADER_WORDS * 4);
    memcpy(h, w, sizeof w);
    if (st && st->has_schedule) schedule_to_words(&st->sched, h);
    h[W_POS] = (uint32_t)c->pos; /* learned: base and scale are 0 (gpt_config_check) */
    h[W_ROPE_BASE] = f32_to_bits(c->rope_base);
    h[W_ROPE_SCALE] = f32_to_bits(c->rope_scale);
}

static int write_native(afile *a, const gpt_model *m, const train_state *st, sattn_err *e) {
    int optim = st && st->has_optim;
    uint32_t h[NATIVE_HEADER_WORDS];
    native_header(m, st, h);
    uint64_t sum = payload_checksum(m, optim, fnv1a64(h, sizeof h, FNV1A64_INIT));
    h[W_CHECKSUM] = (uint32_t)sum;
    h[W_CHECKSUM + 1] = (uint32_t)(sum >> 32);
    size_t bytes = m->num_params * sizeof(float);
    if (afile_write(a, h, sizeof h, e) || afile_write(a, m->params_mem, bytes, e)) return -1;
    if (optim && (afile_write(a, m->m_mem, bytes, e) || afile_write(a, m->v_mem, bytes, e)))
        return -1;
    return 0;
}

static int write_llmc(afile *a, const gpt_model *m, sattn_err *e) {
    const gpt_config *c = &m->cfg;
    int32_t h[LLMC_HEADER_WORDS] = {LLMC_CKPT_MAGIC, LLMC_CKPT_VERSION, c->max_seq, c->vocab,
                                    c->layers, c->heads, c->channels, c->padded_vocab};
    if (afile_write(a, h, sizeof h, e)) return -1;
    return afile_write(a, m->params_mem, m->num_params * sizeof(float), e);
}

/* Refuses, before any file is created, what could only be written wrongly. */
static int check_save_args(const char *path, ckpt_format fmt, const gpt_model *m,
                           const train_state *st, sattn_err *e) {
    int optim = st && st->has_optim;
    if (fmt != CKPT_SATTN && fmt != CKPT_LLMC && fmt != CKPT_SAFETENSORS && fmt != CKPT_HF)
        return err_set(e, "%s: unknown checkpoint format %d, expected sattn, llm.c, safetensors or hf",
                       path, (int)fmt);
    if ((fmt == CKPT_SAFETENSORS || fmt == CKPT_HF) && optim)
        return err_set(e, "%s: safetensors has no place for optimizer state, expected the sattn format "
                          "for a resumable checkpoint", path);
    if (fmt == CKPT_LLMC && m->cfg.pos != GPT_POS_LEARNED)
        return err_set(e, "%s: the llm.c format holds only learned positions and this model uses "
                          "RoPE, expected the sattn format", path);
    if (fmt == CKPT_LLMC && optim)
        return err_set(e, "%s: the llm.c format has no place for optimizer state, "
                          "expected the sattn format for a resumable checkpoint", path);
    if (optim && (!m->m_mem || !m->v_mem))
        return err_set(e, "%s: optimizer state requested but the model has no AdamW moments "
                          "yet, expected at least one update before saving it", path);
    if (st && st->step < 0)
        return err_set(e, "%s: step %d, expected >= 0", path, st->step);
    return 0;
}

int ckpt_save(const char *path, ckpt_format fmt, const gpt_model *m, const train_state *st,
              sattn_err *e) {
    if (check_save_args(path, fmt, m, st, e)) return -1;
    if (fmt == CKPT_SAFETENSORS || fmt == CKPT_HF) return hf_save(path, m, fmt == CKPT_HF, STF_F32, e);
    afile a;
    if (afile_open(&a, path, e)) return -1;
    int r = fmt == CKPT_LLMC ? write_llmc(&a, m, e) : write_native(&a, m, st, e);
    if (r) {
        afile_abort(&a);
        return -1;
    }
    return afile_commit(&a, e);
}

/* ---------------------------------------------------------------- load */

/* memcpy instead of a cast: the header buffer has no alignment guarantee. */
static uint32_t rd32(const uint8_t *p, int word) {
    uint32_t v;
    memcpy(&v, p + 4 * (size_t)word, sizeof v);
    return v;
}

static uint64_t rd64(const uint8_t *p, int word) {
    return (uint64_t)rd32(p, word) | (uint64_t)rd32(p, word + 1) << 32;
}

/* The six dimensions at words 2..7: maxT, V, then Vp,L,NH,C (native) or
 * L,NH,C,Vp (llm.c, which appended Vp when it added version 3). */
static gpt_config read_dims(const uint8_t *b, int native) {
    gpt_config c;
    c.max_seq = (int32_t)rd32(b, 2);
    c.vocab = (int32_t)rd32(b, 3);
    c.padded_vocab = (int32_t)rd32(b, native ? 4 : 7);
    c.layers = (int32_t)rd32(b, native ? 5 : 4);
    c.heads = (int32_t)rd32(b, native ? 6 : 5);
    c.channels = (int32_t)rd32(b, native ? 7 : 6);
    return c;
}

static ckpt_schedule schedule_from_words(const uint8_t *b) {
    ckpt_schedule s = {(int32_t)rd32(b, 17), (int32_t)rd32(b, 18), (int32_t)rd32(b, 19),
                       (int32_t)rd32(b, 20), f32_from_bits(rd32(b, 21)), f32_from_bits(rd32(b, 22)),
                       f32_from_bits(rd32(b, 23)), f32_from_bits(rd32(b, 24)), f32_from_bits(rd32(b, 25)),
                       f32_from_bits(rd32(b, 26)), f32_from_bits(rd32(b, 27)), rd64(b, 28), {0}, 0, 0, 0};
    for (int i = 0; i < W_MIX_END - W_MIX; i++) s.mix[i] = f32_from_bits(rd32(b, W_MIX + i));
    s.mix_flags = (int)rd32(b, W_MIX_FLAGS);
    s.dense_warmup = (int32_t)rd32(b, W_DENSE_WARMUP);
    s.plan_hash = rd64(b, W_PLAN_HASH);
    return s;
}

/* Version 3's position words: pos 0 (learned, base and scale words 0) or 1 (RoPE, base and
 * scale finite and > 0). The odd head dim of a RoPE model is left to gpt_config_check. */
static int parse_pos_words(const char *path, const uint8_t *b, ckpt_header *h, sattn_err *e) {
    uint32_t pos = rd32(b, W_POS), wb = rd32(b, W_ROPE_BASE), ws = rd32(b, W_ROPE_SCALE);
    if (pos != GPT_POS_LEARNED && pos != GPT_POS_ROPE)
        return err_set(e, "%s: pos = %" PRIu32 ", expected 0 (learned) or 1 (rope)", path, pos);
    if (pos == GPT_POS_LEARNED && (wb || ws))
        return err_set(e, "%s: rope base/scale words 0x%08" PRIx32 "/0x%08" PRIx32 " in a learned-"
                          "position checkpoint, expected 0", path, wb, ws);
    float base = f32_from_bits(wb), scale = f32_from_bits(ws);
    if (pos == GPT_POS_ROPE && !(isfinite(base) && base > 0.0f))
        return err_set(e, "%s: rope base %g, expected a finite number > 0", path, (double)base);
    if (pos == GPT_POS_ROPE && !(isfinite(scale) && scale > 0.0f))
        return err_set(e, "%s: rope scale %g, expected a finite number > 0", path, (double)scale);
    h->cfg.pos = (int)pos;
    h->cfg.rope_base = base;
    h->cfg.rope_scale = scale;
    return 0;
}

/* Version 2 and 3's words after the checksum: the schedule flag, a schedule only when the
 * flag says so, (version 3) the positions, reserved words 0; and the hash of the header
 * the checksum starts from. */
static int parse_v2_words(const char *path, const uint8_t *b, ckpt_header *h, sattn_err *e) {
    uint32_t has = rd32(b, W_HAS_SCHED);
    if (has > 1)
        return err_set(e, "%s: has_schedule = %" PRIu32 ", expected 0 or 1", path, has);
    int reserved = h->version >= CKPT_VERSION_V3 ? W_V3_END : W_SCHED_END;
    for (int w = has ? W_SCHED_END : W_HAS_SCHED + 1; w < NATIVE_HEADER_WORDS; w++)
        if (rd32(b, w) && (w < W_SCHED_END || w >= reserved || (!has && w >= W_MIX)))
            return err_set(e, "%s: header word %d = 0x%08" PRIx32 ", expected 0 (%s)", path, w,
                           rd32(b, w), w < W_SCHED_END ? "no schedule is stored" : "reserved");
    if (h->version >= CKPT_VERSION_V3 && parse_pos_words(path, b, h, e)) return -1;
    h->has_schedule = (int)has;
    if (has) h->sched = schedule_from_words(b);
    for (int i = 0; has && i < W_MIX_END - W_MIX; i++)
        if (!(h->sched.mix[i] >= 0.0f && h->sched.mix[i] <= 1.0f))
            return err_set(e, "%s: header word %d: training mix fraction %g, expected 0 to 1", path,
                           W_MIX + i, h->sched.mix[i]);
    if (has && (unsigned)h->sched.mix_flags > (CKPT_MIX_ANSWERS | CKPT_MIX_VARIED))
        return err_set(e, "%s: header word %d: mix flags %d, expected 0 to 3", path, W_MIX_FLAGS,
                       h->sched.mix_flags);
    if (has && h->sched.dense_warmup < 0)
        return err_set(e, "%s: header word %d: dense warm-up %d, expected a step count >= 0", path,
                       W_DENSE_WARMUP, h->sched.dense_warmup);
    h->head_hash = fnv1a64_header(b, NATIVE_HEADER_WORDS * 4, 4 * W_CHECKSUM);
    return 0;
}

static int parse_native(const char *path, const uint8_t *b, size_t got, ckpt_header *h,
                        sattn_err *e) {
    if (got < NATIVE_HEADER_WORDS * 4)
        return err_set(e, "%s: truncated header: %zu bytes, expected %d", path, got,
                       NATIVE_HEADER_WORDS * 4);
    uint32_t version = rd32(b, 1);
    if (version != CKPT_VERSION_V3 && version != CKPT_VERSION_V2 && version != CKPT_VERSION_V1)
        return err_set(e, "%s: sattn checkpoint version %" PRIu32 ", expected version %d, %d or %d",
                       path, version, CKPT_VERSION_V1, CKPT_VERSION_V2, CKPT_VERSION_V3);
    h->native = 1;
    h->version = (int)version;
    h->header_bytes = NATIVE_HEADER_WORDS * 4;
    h->cfg = read_dims(b, 1);
    h->has_optim = (int32_t)rd32(b, 8);
    h->step = (int32_t)rd32(b, 9);
    h->rng_state = rd64(b, 10);
    h->num_params = rd64(b, 12);
    h->checksum = rd64(b, W_CHECKSUM);
    /* Version 1's checksum starts after the header (its words 16..63 were never checked). */
    h->head_hash = FNV1A64_INIT;
    if (h->has_optim != 0 && h->has_optim != 1)
        return err_set(e, "%s: has_optim = %d, expected 0 or 1", path, h->has_optim);
    if (h->step < 0) return err_set(e, "%s: step = %d, expected >= 0", path, h->step);
    return version >= CKPT_VERSION_V2 ? parse_v2_words(path, b, h, e) : 0; /* v1, v2: learned */
}

static int parse_llmc(const char *path, const uint8_t *b, size_t got, ckpt_header *h,
                      sattn_err *e) {
    if (got < LLMC_HEADER_BYTES)
        return err_set(e, "%s: truncated llm.c header: %zu bytes, expected %d", path, got,
                       LLMC_HEADER_BYTES);
    int32_t version = (int32_t)rd32(b, 1);
    if (version != LLMC_CKPT_VERSION)
        return err_set(e, "%s: llm.c checkpoint version %" PRId32 ", expected version %d", path,
                       version, LLMC_CKPT_VERSION);
    h->header_bytes = LLMC_HEADER_BYTES;
    h->cfg = read_dims(b, 0);
    return 0;
}

static int parse_header(const char *path, const uint8_t *b, size_t got, ckpt_header *h,
                        sattn_err *e) {
    if (got < 4)
        return err_set(e, "%s: %zu bytes, too small for a checkpoint (expected a sattn or "
                          "llm.c header)", path, got);
    uint32_t magic = rd32(b, 0);
    if (magic == CKPT_MAGIC) return parse_native(path, b, got, h, e);
    if (magic == LLMC_CKPT_MAGIC) return parse_llmc(path, b, got, h, e);
    /* safetensors: a little-endian uint64 header length (below 4 GiB), then '{' */
    if (got >= 9 && rd32(b, 1) == 0 && b[8] == '{') return h->safetensors = 1, 0;
    if (magic == LLMC_TOKENS_MAGIC)
        return err_set(e, "%s: this is an llm.c token file, expected a checkpoint", path);
    return err_set(e, "%s: not a checkpoint: magic 0x%08" PRIx32 ", expected 0x%08x (sattn), "
                      "%d (llm.c) or a safetensors header", path, magic, CKPT_MAGIC, LLMC_CKPT_MAGIC);
}

static size_t count_params(const gpt_config *c) {
    size_t s[GPT_NUM_TENSORS], n = 0;
    gpt_param_sizes(c, s);
    for (int i = 0; i < GPT_NUM_TENSORS; i++) n += s[i];
    return n;
}

/* Dimensions, parameter count and the exact file size, all before allocating. */
static int check_header(const char *path, const ckpt_header *h, size_t file_size, sattn_err *e) {
    sattn_err inner;
    if (gpt_config_check(&h->cfg, &inner))
        return err_set(e, "%s: bad dimensions in header: %s", path, inner.msg);
    size_t np = count_params(&h->cfg);
    if (h->native && h->num_params != np)
        return err_set(e, "%s: header says %" PRIu64 " parameters, its dimensions give %zu",
                       path, h->num_params, np);
    size_t want = h->header_bytes + np * sizeof(float) * (h->has_optim ? 3 : 1);
    if (file_size < want)
        return err_set(e, "%s: truncated: %zu bytes, expected %zu", path, file_size, want);
    if (file_size > want)
        return err_set(e, "%s: size mismatch: %zu bytes, expected %zu (trailing bytes)", path,
                       file_size, want);
    return 0;
}

static int read_floats(const char *path, FILE *f, float *dst, size_t n, sattn_err *e) {
    if (fread(dst, sizeof(float), n, f) != n)
        return err_set(e, "%s: read failed (%s)", path,
                       ferror(f) ? strerror(errno) : "file shrank while reading");
    return 0;
}

/* The first non-finite value of block (the parameters, or a moment: `what`), named by
 * tensor, layer and element: a NaN weight would otherwise poison every result. */
static int check_finite(const char *path, const gpt_model *m, const float *block,
                        const char *what, sattn_err *e) {
    size_t off = 0;
    for (int t = 0; t < GPT_NUM_TENSORS; t++) {
        size_t n = m->param_sizes[t], i = 0;
        while (i < n && isfinite(block[off + i])) i++;
        if (i < n) {
            float x = block[off + i];
            const char *kind = isnan(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf";
            int per_layer = t >= GPT_LN1W && t <= GPT_FCPROJB;
            size_t per = per_layer ? n / (size_t)m->cfg.layers : n;
            char layer[32] = "";
            if (per_layer) snprintf(layer, sizeof layer, " (layer %zu)", i / per);
            return err_set(e, "%s: %stensor %s%s holds %s at element %zu, expected finite %s",
                           path, what, gpt_param_name(t), layer, kind, i % per,
                           *what ? "values" : "parameters");
        }
        off += n;
    }
    return 0;
}

static int check_all_finite(const char *path, const gpt_model *m, int has_optim, sattn_err *e) {
    if (check_finite(path, m, m->params_mem, "", e)) return -1;
    if (!has_optim) return 0;
    if (check_finite(path, m, m->m_mem, "AdamW first moment of ", e)) return -1;
    return check_finite(path, m, m->v_mem, "AdamW second moment of ", e);
}

/* Reads the payload into a model created from the header; the model is freed on error. */
static int read_payload(const char *path, FILE *f, const ckpt_header *h, gpt_model *m,
                        sattn_err *e) {
    gpt_create(m, &h->cfg);
    size_t n = m->num_params;
    if (h->has_optim) {
        m->m_mem = xmalloc_aligned(n * sizeof(float));
        m->v_mem = xmalloc_aligned(n * sizeof(float));
    }
    int bad;
    if (fseek(f, (long)h->header_bytes, SEEK_SET) != 0)
        bad = err_set(e, "%s: seek failed (%s)", path, strerror(errno));
    else
        bad = read_floats(path, f, m->params_mem, n, e) ||
              (h->has_optim &&
               (read_floats(path, f, m->m_mem, n, e) || read_floats(path, f, m->v_mem, n, e)));
    if (!bad && h->native && payload_checksum(m, h->has_optim, h->head_hash) != h->checksum)
        bad = err_set(e, "%s: checksum mismatch: file is corrupt", path);
    if (!bad) bad = check_all_finite(path, m, h->has_optim, e);
    if (bad) gpt_free(m);
    return bad ? -1 : 0;
}

/* Header bytes, or an error naming the file. */
static int read_head(const char *path, FILE *f, uint8_t *b, size_t *got, sattn_err *e) {
    *got = fread(b, 1, LLMC_HEADER_BYTES, f);
    if (ferror(f)) return err_set(e, "%s: read failed (%s)", path, strerror(errno));
    return 0;
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int ckpt_load(const char *path, gpt_model *m, train_state *st, sattn_err *e) {
    memset(m, 0, sizeof *m);
    size_t got = 0, size = 0;
    ckpt_header h;
    memset(&h, 0, sizeof h);
    int r;
    if (is_dir(path)) {
        r = hf_load(path, m, e);
    } else {
        FILE *f = file_open_regular(path, &size, e);
        if (!f) return -1;
        uint8_t b[LLMC_HEADER_BYTES];
        r = read_head(path, f, b, &got, e);
        if (!r) r = parse_header(path, b, got, &h, e);
        if (!r && !h.safetensors) r = check_header(path, &h, size, e);
        if (!r && !h.safetensors) r = read_payload(path, f, &h, m, e);
        fclose(f);
        if (!r && h.safetensors) r = hf_load(path, m, e);
    }
    if (!r && st) {
        st->has_optim = h.has_optim;
        st->step = h.step;
        st->rng.state = h.rng_state;
        st->has_schedule = h.has_schedule;
        st->sched = h.sched;
    }
    return r;
}
