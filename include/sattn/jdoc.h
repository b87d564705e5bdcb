/* jdoc: reading JSON through json-c (Debian's libjson-c), with a nesting limit and
 * one-line errors that name the source.
 *
 * Every JSON sattn reads goes through here (eval and task JSON, safetensors headers,
 * config.json, the GPT-2 vocabulary): json-c is a well-kept parser with a runtime depth
 * limit (json_tokener_new_ex), so a hostile file cannot recurse the reader off its stack.
 * Values are json-c objects (json_object_get_*, json_object_put to free the root). */
#ifndef SATTN_JDOC_H
#define SATTN_JDOC_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "sattn/core.h"

/* The nesting limit used when a caller passes 0: deeper than any file sattn writes. */
#define JDOC_DEFAULT_DEPTH 32

/* Parses text[0..n) as exactly one strict JSON value (only whitespace may follow), nested at
 * most max_depth deep (0: JDOC_DEFAULT_DEPTH). NULL with e on failure:
 *   "WHAT: not JSON at line 2, byte 17: unexpected character" / "WHAT: JSON nested deeper than 32". */
json_object *jdoc_parse(const char *text, size_t n, const char *what, int max_depth, sattn_err *e);

/* The same for a whole regular file of at most max_bytes bytes (0: no limit). */
json_object *jdoc_parse_file(const char *path, size_t max_bytes, int max_depth, sattn_err *e);

/* The member `key` of object o if it has JSON type `type`; NULL with e otherwise:
 *   "WHAT: missing \"key\"" / "WHAT: \"key\" is a string, expected a number".
 * json_type_double also accepts integers. */
json_object *jdoc_member(json_object *o, const char *key, json_type type, const char *what,
                         sattn_err *e);

/* An integer member in [lo, hi] into *out; -1 with e when missing, not an integer or
 * out of range ("WHAT: \"n_layer\" is 1e9, expected an integer in [1, 1024]"). */
int jdoc_int(json_object *o, const char *key, int64_t lo, int64_t hi, int64_t *out, const char *what,
             sattn_err *e);

/* A finite number member (an integer counts) in [lo, hi] into *out; -1 with e when missing,
 * not a number, NaN or Infinity (json-c parses both) or out of range:
 *   "WHAT: \"loss\" is NaN, expected a finite number". */
int jdoc_number(json_object *o, const char *key, double lo, double hi, double *out, const char *what,
                sattn_err *e);
/* The same check of a value v already in hand (an array item); key names it in the message. */
int jdoc_number_value(json_object *v, const char *key, double lo, double hi, double *out,
                      const char *what, sattn_err *e);

/* The JSON type's name as errors print it: "an object", "a string", ... */
const char *jdoc_type_name(json_type t);

#endif
