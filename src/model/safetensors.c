#define _POSIX_C_SOURCE 200809L /* fseeko */
/* safetensors: the Hugging Face tensor file (layout and rules in sattn/safetensors.h). */
#include "sattn/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/jdoc.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

static const struct {
    const char *name;
    size_t size;
} DTYPES[STF_NUM_DTYPES] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
    {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
    {"F64", 8},  {"I64", 8}, {"U64", 8},
};

const char *stf_dtype_name(stf_dtype d) { return (unsigned)d < STF_NUM_DTYPES ? DTYPES[d].name : "?"; }
size_t stf_dtype_size(stf_dtype d) { return (unsigned)d < STF_NUM_DTYPES ? DTYPES[d].size : 0; }

int stf_dtype_parse(const char *s, stf_dtype *d) {
    for (int i = 0; i < STF_NUM_DTYPES; i++)
        if (!strcmp(s, DTYPES[i].name)) return *d = (stf_dtype)i, 0;
    return -1;
}

/* ---------------------------------------------------------------- dtype conversions */

/* binary16: sign, 5 exponent bits (bias 15), 10 mantissa bits. A subnormal is m * 2^-24,
 * exact in float32 (m < 2^10, a power-of-two scale); the rest is a rebias of the exponent. */
float stf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | man << 13);
    return f32_from_bits(sign | (exp + 127 - 15) << 23 | man << 13);
}

/* bfloat16 is the top half of a float32. */
float stf_bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

uint16_t stf_f32_to_bf16(float x) {
    uint32_t u = f32_to_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40); /* quiet NaN */
    /* round to nearest even: add just under half, plus one when the kept part is odd */
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);
}

/* Rounds m (an integer) right by s bits, ties to even. */
static uint32_t shift_rne(uint32_t m, int s) {
    if (s >= 32) return 0;
    uint32_t q = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

/* Above 65504 the nearest-even result is infinity from 65520 (0x477ff000) on. Below 2^-14
 * (0x38800000) the result is subnormal: the value in units of 2^-24 is m * 2^(e - 126) for
 * the float32 (biased exponent e, mantissa m with its hidden bit). A normal result keeps the
 * float32's bits with the exponent rebiased; dropping 13 mantissa bits may carry into the
 * exponent, which is the right rounding too. */
uint16_t stf_f32_to_f16(float x) {
    uint32_t u = f32_to_bits(x), a = u & 0x7fffffffu;
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | (a >> 13 & 0x1ff));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) {
        int e = (int)(a >> 23);
        if (e == 0) return sign; /* float32 subnormals are far below half of 2^-24 */
        return (uint16_t)(sign | shift_rne((a & 0x7fffffu) | 0x800000u, 126 - e));
    }
    return (uint16_t)(sign | shift_rne(a - ((uint32_t)(127 - 15) << 23), 13));
}

/* ---------------------------------------------------------------- reading */

void stf_name_for_msg(const char *name, char *buf, size_t n) {
    sbuf b = {0};
    sb_escaped(&b, name);
    if (b.n + 1 > n && n > 4) snprintf(buf, n, "%.*s...", (int)(n - 4), b.s);
    else snprintf(buf, n, "%s", b.s ? b.s : "");
    sb_free(&b);
}

/* The error of tensor `name` in f: "PATH: tensor 'NAME': ..." (the name escaped). */
static int tensor_err(const char *path, const char *name, sattn_err *e, const char *what) {
    char nm[128];
    stf_name_for_msg(name, nm, sizeof nm);
    return err_set(e, "%s: tensor '%s': %s", path, nm, what);
}

/* A non-negative integer array item below 2^53 (json-c keeps 64-bit integers). */
static int u64_item(json_object *v, uint64_t *out) {
    if (!json_object_is_type(v, json_type_int)) return -1;
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno || x < 0 || x > ((int64_t)1 << 53)) return -1;
    *out = (uint64_t)x;
    return 0;
}

static int parse_shape(json_object *o, stf_tensor *t, const char *path, sattn_err *e) {
    json_object *s;
    char msg[160];
    if (!json_object_object_get_ex(o, "shape", &s) || !json_object_is_type(s, json_type_array))
        return tensor_err(path, t->name, e, "no \"shape\" array");
    size_t n = json_object_array_length(s);
    if (n > STF_MAX_DIMS) {
        snprintf(msg, sizeof msg, "%zu dimensions, expected at most %d", n, STF_MAX_DIMS);
        return tensor_err(path, t->name, e, msg);
    }
    t->ndim = (int)n;
    t->numel = 1;
    for (size_t i = 0; i < n; i++) {
        if (u64_item(json_object_array_get_idx(s, i), &t->shape[i]))
            return tensor_err(path, t->name, e, "a shape entry is not a non-negative integer");
        if (__builtin_mul_overflow(t->numel, t->shape[i], &t->numel) || t->numel > ((uint64_t)1 << 53))
            return tensor_err(path, t->name, e, "the shape holds more than 2^53 elements");
    }
    return 0;
}

static int parse_offsets(json_object *o, stf_tensor *t, uint64_t data_len, const char *path,
                         sattn_err *e) {
    json_object *d;
    char msg[200];
    if (!json_object_object_get_ex(o, "data_offsets", &d) || !json_object_is_type(d, json_type_array) ||
        json_object_array_length(d) != 2 || u64_item(json_object_array_get_idx(d, 0), &t->begin) ||
        u64_item(json_object_array_get_idx(d, 1), &t->end))
        return tensor_err(path, t->name, e, "expected \"data_offsets\": [BEGIN, END] (two non-negative integers)");
    if (t->begin > t->end || t->end > data_len) {
        snprintf(msg, sizeof msg, "data_offsets [%" PRIu64 ", %" PRIu64 "] outside the data region of %" PRIu64
                 " bytes", t->begin, t->end, data_len);
        return tensor_err(path, t->name, e, msg);
    }
    uint64_t need = t->numel * stf_dtype_size(t->dtype);
    if (t->end - t->begin != need) {
        snprintf(msg, sizeof msg, "data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64 " bytes, its dtype %s "
                 "and shape need %" PRIu64, t->begin, t->end, t->end - t->begin, stf_dtype_name(t->dtype), need);
        return tensor_err(path, t->name, e, msg);
    }
    return 0;
}

static int parse_entry(const char *key, json_object *o, stf_tensor *t, uint64_t data_len,
                       const char *path, sattn_err *e) {
    t->name = xmalloc(strlen(key) + 1);
    strcpy(t->name, key);
    json_object *d;
    if (!json_object_is_type(o, json_type_object))
        return tensor_err(path, key, e, "expected an object with dtype, shape and data_offsets");
    if (!json_object_object_get_ex(o, "dtype", &d) || !json_object_is_type(d, json_type_string))
        return tensor_err(path, key, e, "no \"dtype\" string");
    if (stf_dtype_parse(json_object_get_string(d), &t->dtype)) {
        char msg[128], dn[48];
        stf_name_for_msg(json_object_get_string(d), dn, sizeof dn);
        snprintf(msg, sizeof msg, "unknown dtype '%s', expected one of the spec's (F32, F16, BF16, ...)", dn);
        return tensor_err(path, key, e, msg);
    }
    if (parse_shape(o, t, path, e)) return -1;
    return parse_offsets(o, t, data_len, path, e);
}

static int check_metadata(const char *path, json_object *m, sattn_err *e) {
    if (!json_object_is_type(m, json_type_object))
        return err_set(e, "%s: __metadata__ is %s, expected an object of strings", path,
                       jdoc_type_name(json_object_get_type(m)));
    json_object_object_foreach(m, k, v) {
        if (json_object_is_type(v, json_type_string)) continue;
        char nm[96];
        stf_name_for_msg(k, nm, sizeof nm);
        return err_set(e, "%s: __metadata__ '%s' is %s, expected a string", path, nm,
                       jdoc_type_name(json_object_get_type(v)));
    }
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const stf_tensor *x = *(const stf_tensor *const *)a, *y = *(const stf_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* The tensors, sorted by offset, must tile [0, data_len): each begins where the previous
 * one ended (a gap is a hole, an earlier begin an overlap) and the last ends at data_len. */
static int check_tiling(stf_file *f, sattn_err *e) {
    stf_tensor **s = xmalloc(sizeof *s * (size_t)(f->n ? f->n : 1));
    for (int i = 0; i < f->n; i++) s[i] = &f->t[i];
    qsort(s, (size_t)f->n, sizeof *s, cmp_begin);
    uint64_t at = 0;
    int r = 0;
    char msg[200];
    for (int i = 0; i < f->n && !r; i++) {
        if (s[i]->begin < at) {
            char other[96];
            stf_name_for_msg(s[i - 1]->name, other, sizeof other);
            snprintf(msg, sizeof msg, "bytes [%" PRIu64 ", %" PRIu64 ") overlap tensor '%s'", s[i]->begin,
                     s[i]->end, other);
            r = tensor_err(f->path, s[i]->name, e, msg);
        } else if (s[i]->begin > at) {
            snprintf(msg, sizeof msg, "starts at byte %" PRIu64 ", leaving a hole of %" PRIu64 " bytes before it "
                     "(the data region must be covered exactly)", s[i]->begin, s[i]->begin - at);
            r = tensor_err(f->path, s[i]->name, e, msg);
        }
        at = s[i]->end;
    }
    free(s);
    if (!r && at != f->data_len)
        r = err_set(e, "%s: %" PRIu64 " bytes after the last tensor's data, expected none", f->path, f->data_len - at);
    return r;
}

static int parse_header_json(stf_file *f, json_object *root, sattn_err *e) {
    int cap = json_object_object_length(root);
    f->t = xcalloc((size_t)(cap ? cap : 1), sizeof *f->t);
    json_object_object_foreach(root, k, v) {
        if (!strcmp(k, "__metadata__")) {
            if (check_metadata(f->path, v, e)) return -1;
            f->meta = json_object_get(v);
            continue;
        }
        if (parse_entry(k, v, &f->t[f->n++], f->data_len, f->path, e)) return -1;
    }
    return check_tiling(f, e);
}

/* The 8-byte length and the header's text (malloc'd) after checking the length. */
static int read_header_text(stf_file *f, size_t size, char **text, uint64_t *n, sattn_err *e) {
    uint8_t len[8];
    if (size < 8 || fread(len, 1, 8, f->f) != 8)
        return err_set(e, "%s: %zu bytes, too short for safetensors (an 8-byte header length, then the header)",
                       f->path, size);
    memcpy(n, len, 8);
    if (*n > STF_MAX_HEADER)
        return err_set(e, "%s: safetensors header length %" PRIu64 ", expected at most %u", f->path, *n, STF_MAX_HEADER);
    if (*n > size - 8)
        return err_set(e, "%s: safetensors header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                       f->path, *n, size);
    if (*n < 2) return err_set(e, "%s: safetensors header length %" PRIu64 ", expected a JSON object", f->path, *n);
    *text = xmalloc((size_t)*n);
    if (fread(*text, 1, (size_t)*n, f->f) != *n)
        return err_set(e, "%s: read failed (%s)", f->path, ferror(f->f) ? strerror(errno) : "file shrank");
    if ((*text)[0] != '{') return err_set(e, "%s: safetensors header does not start with '{'", f->path);
    return 0;
}

int stf_open(const char *path, stf_file *f, sattn_err *e) {
    memset(f, 0, sizeof *f);
    f->path = xmalloc(strlen(path) + 1);
    strcpy(f->path, path);
    size_t size = 0;
    f->f = file_open_regular(path, &size, e);
    if (!f->f) return -1;
    char *text = NULL;
    uint64_t n = 0;
    int r = read_header_text(f, size, &text, &n, e);
    if (!r) {
        f->data_start = 8 + n;
        f->data_len = size - f->data_start;
        sbuf what = {0};
        sb_printf(&what, "%s (safetensors header)", path);
        json_object *root = jdoc_parse(text, (size_t)n, what.s, 8, e);
        sb_free(&what);
        r = root ? parse_header_json(f, root, e) : -1;
        json_object_put(root);
    }
    free(text);
    return r;
}

void stf_close(stf_file *f) {
    if (f->f) fclose(f->f);
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    free(f->path);
    json_object_put(f->meta);
    memset(f, 0, sizeof *f);
}

const stf_tensor *stf_find(const stf_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *stf_meta(const stf_file *f, const char *key) {
    json_object *v;
    if (!f->meta || !json_object_object_get_ex(f->meta, key, &v)) return NULL;
    return json_object_get_string(v);
}

/* A 2-byte tensor is read into the upper half of dst and widened front to back: element
 * i is read (bytes 2n+2i) before dst[i] (bytes 4i..4i+3 < 2n+2i+2) is written, so a
 * GPT-2-sized tensor needs no second buffer. */
int stf_read_f32(stf_file *f, const stf_tensor *t, float *dst, sattn_err *e) {
    size_t n = (size_t)t->numel, w = stf_dtype_size(t->dtype);
    if (t->dtype != STF_F32 && t->dtype != STF_F16 && t->dtype != STF_BF16) {
        char msg[96];
        snprintf(msg, sizeof msg, "dtype %s, expected F32, F16 or BF16", stf_dtype_name(t->dtype));
        return tensor_err(f->path, t->name, e, msg);
    }
    uint8_t *raw = (uint8_t *)dst + (w == 2 ? 2 * n : 0);
    if (fseeko(f->f, (off_t)(f->data_start + t->begin), SEEK_SET) != 0)
        return err_set(e, "%s: seek failed (%s)", f->path, strerror(errno));
    if (n && fread(raw, w, n, f->f) != n)
        return err_set(e, "%s: read failed (%s)", f->path, ferror(f->f) ? strerror(errno) : "file shrank while reading");
    for (size_t i = 0; w == 2 && i < n; i++) {
        uint16_t h;
        memcpy(&h, raw + 2 * i, 2);
        dst[i] = t->dtype == STF_F16 ? stf_f16_to_f32(h) : stf_bf16_to_f32(h);
    }
    return 0;
}

/* ---------------------------------------------------------------- writing */

int stf_write_header(afile *a, const stf_out *t, int n, stf_dtype dt, const char *const (*meta)[2],
                     int n_meta, sattn_err *e) {
    sbuf h = {0};
    uint64_t at = 0, w = stf_dtype_size(dt);
    sb_printf(&h, "{");
    if (n_meta) {
        sb_printf(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            sb_printf(&h, "%s", i ? "," : "");
            sb_json_str(&h, meta[i][0]);
            sb_printf(&h, ":");
            sb_json_str(&h, meta[i][1]);
        }
        sb_printf(&h, "}");
    }
    for (int i = 0; i < n; i++) {
        uint64_t numel = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1);
        sb_printf(&h, "%s", i || n_meta ? "," : "");
        sb_json_str(&h, t[i].name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[%" PRIu64, stf_dtype_name(dt), t[i].shape[0]);
        if (t[i].ndim == 2) sb_printf(&h, ",%" PRIu64, t[i].shape[1]);
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", at, at + numel * w);
        at += numel * w;
    }
    sb_printf(&h, "}");
    while (h.n % 8) sb_printf(&h, " ");
    uint64_t len = h.n;
    int r = afile_write(a, &len, 8, e) || afile_write(a, h.s, h.n, e) ? -1 : 0;
    sb_free(&h);
    return r;
}

/* F16 tops out at 65504: a finite weight beyond it would come back as infinity, which the
 * reader refuses, so it is refused here, before the file exists. */
int stf_write_data(afile *a, const char *name, const float *x, size_t n, stf_dtype dt, sattn_err *e) {
    if (dt == STF_F32) return afile_write(a, x, n * sizeof(float), e);
    uint16_t buf[4096];
    for (size_t i = 0; i < n;) {
        size_t k = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < k; j++) {
            buf[j] = dt == STF_F16 ? stf_f32_to_f16(x[i + j]) : stf_f32_to_bf16(x[i + j]);
            if ((buf[j] & 0x7fff) == (dt == STF_F16 ? 0x7c00 : 0x7f80) && isfinite(x[i + j])) {
                char msg[128];
                snprintf(msg, sizeof msg, "element %zu is %g, too large for %s", i + j, (double)x[i + j],
                         stf_dtype_name(dt));
                return tensor_err(a->path, name, e, msg);
            }
        }
        if (afile_write(a, buf, k * 2, e)) return -1;
        i += k;
    }
    return 0;
}
