/* safetensors: the Hugging Face tensor file, read and written (docs/safetensors.md).
 *
 * Layout (little-endian):
 *   uint64 N                 the header's length in bytes (at most 100,000,000)
 *   N bytes of JSON          {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [B, E]},
 *                             ..., "__metadata__": {"key": "string value", ...}}
 *                            starting with '{', padded at the end with spaces
 *   the data region          each tensor's bytes at [B, E) relative to the region's start,
 *                            row-major; E - B = product(shape) * the dtype's size
 * A reader must refuse a data region with holes, overlaps or bytes after the last tensor
 * (the spec: no polyglot files), and so does stf_open: the tensors, sorted by B, tile the
 * region exactly. Duplicate names are refused by the spec; json-c keeps the last one, and
 * the first one's bytes then show up as a hole. Every error is one line naming the file
 * and, where there is one, the tensor.
 *
 * This module knows nothing of GPT-2: hfgpt2.h maps the tensors to a model. */
#ifndef SATTN_SAFETENSORS_H
#define SATTN_SAFETENSORS_H

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>

#include "sattn/core.h"

/* The spec's dtypes. sattn reads model weights as F32, F16 and BF16; the others are
 * known so that a file holding them (a mask buffer, say) still validates. */
typedef enum {
    STF_BOOL, STF_U8, STF_I8, STF_F8_E5M2, STF_F8_E4M3, STF_I16, STF_U16, STF_F16, STF_BF16,
    STF_I32, STF_U32, STF_F32, STF_F64, STF_I64, STF_U64, STF_NUM_DTYPES
} stf_dtype;

const char *stf_dtype_name(stf_dtype d);
size_t stf_dtype_size(stf_dtype d);
/* The dtype called s; -1 when s is none of the spec's names. */
int stf_dtype_parse(const char *s, stf_dtype *d);

/* Exact widening conversions (every F16 and BF16 value, subnormals, infinities and NaN
 * included, is a float32 value), and narrowing ones with round to nearest, ties to even
 * (as IEEE 754 and PyTorch's .half() / .bfloat16() do); overflow gives infinity, a NaN
 * stays a (quiet) NaN of the same sign. */
float stf_f16_to_f32(uint16_t h);
float stf_bf16_to_f32(uint16_t h);
uint16_t stf_f32_to_f16(float x);
uint16_t stf_f32_to_bf16(float x);

#define STF_MAX_HEADER 100000000u /* the spec's (and the Rust reader's) limit */
#define STF_MAX_DIMS 8

typedef struct {
    char *name;
    stf_dtype dtype;
    int ndim;
    uint64_t shape[STF_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* data_offsets: relative to the data region */
} stf_tensor;

typedef struct {
    char *path;
    FILE *f;
    uint64_t data_start, data_len; /* the data region: file offset and length */
    int n;
    stf_tensor *t;
    json_object *meta; /* __metadata__ (every value a string), or NULL */
} stf_file;

/* Opens and validates path: the header length against the file, the JSON, every entry's
 * dtype, shape and offsets, sizes, and the exact tiling of the data region. Nothing is
 * read from the data yet. stf_close frees it (also after a failed open). */
int stf_open(const char *path, stf_file *f, sattn_err *e);
void stf_close(stf_file *f);
/* The tensor called name, or NULL. */
const stf_tensor *stf_find(const stf_file *f, const char *name);
/* The __metadata__ string under key, or NULL. */
const char *stf_meta(const stf_file *f, const char *key);
/* Reads t (F32, F16 or BF16) as numel float32 values into dst; any other dtype is an
 * error naming the tensor. The values are not checked (NaN is the caller's business). */
int stf_read_f32(stf_file *f, const stf_tensor *t, float *dst, sattn_err *e);
/* name with control bytes escaped and cut to fit a message (buf of n bytes). */
void stf_name_for_msg(const char *name, char *buf, size_t n);

/* ---- writing ---- */

/* One tensor to write: its name and shape (1 or 2 dimensions). */
typedef struct {
    char name[96];
    int ndim;
    uint64_t shape[2];
} stf_out;

/* Writes the length and the header for tensors t[0..n) of dtype dt (F32, F16 or BF16),
 * laid out in that order, with __metadata__ from meta[0..n_meta) (key, value pairs).
 * The header is padded with spaces to a multiple of 8, so the data starts aligned. */
int stf_write_header(afile *a, const stf_out *t, int n, stf_dtype dt, const char *const (*meta)[2],
                     int n_meta, sattn_err *e);
/* Appends n floats of tensor `name` converted to dt: call once or more per tensor, in
 * header order. A finite value that dt cannot hold (|x| >= 65520 in F16) is an error. */
int stf_write_data(afile *a, const char *name, const float *x, size_t n, stf_dtype dt, sattn_err *e);

#endif
