/* jdoc: json-c with a depth limit and one-line errors (jdoc.h). */
#include "sattn/jdoc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The 1-based line of byte off (text need not end in a NUL). */
static int line_of(const char *text, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += text[i] == '\n';
    return line;
}

json_object *jdoc_parse(const char *text, size_t n, const char *what, int max_depth, sattn_err *e) {
    if (n > (size_t)INT32_MAX) return err_set(e, "%s: JSON of %zu bytes is too large", what, n), NULL;
    json_tokener *tok = json_tokener_new_ex(max_depth > 0 ? max_depth : JDOC_DEFAULT_DEPTH);
    if (!tok) die_at(__FILE__, __LINE__, "out of memory (json_tokener_new_ex)");
    /* strict: no comments, single quotes, trailing commas or leading zeros (json-c still
     * takes NaN and Infinity: jdoc_number refuses them) */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, text, (int)n);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (je == json_tokener_continue) return err_set(e, "%s: not JSON: it ends inside a value", what), NULL;
    if (je == json_tokener_error_depth)
        return err_set(e, "%s: JSON nested deeper than %d", what,
                       max_depth > 0 ? max_depth : JDOC_DEFAULT_DEPTH), NULL;
    if (je != json_tokener_success)
        return err_set(e, "%s: not JSON at line %d, byte %zu: %s", what, line_of(text, used), used,
                       json_tokener_error_desc(je)), NULL;
    /* json-c's null is the NULL pointer, which would read as a failure without a message */
    if (!o) return err_set(e, "%s: the JSON value is null, expected an object", what), NULL;
    for (size_t i = used; i < n; i++)
        if (!strchr(" \t\r\n", text[i])) {
            json_object_put(o);
            return err_set(e, "%s: not JSON at line %d, byte %zu: text after the value", what, line_of(text, i), i),
                   NULL;
        }
    return o;
}

json_object *jdoc_parse_file(const char *path, size_t max_bytes, int max_depth, sattn_err *e) {
    uint8_t *buf;
    size_t size;
    if (file_read_all(path, &buf, &size, e)) return NULL;
    json_object *o = NULL;
    if (max_bytes && size > max_bytes)
        err_set(e, "%s: %zu bytes, more than the %zu this reader takes", path, size, max_bytes);
    else
        o = jdoc_parse((const char *)buf, size, path, max_depth, e);
    free(buf);
    return o;
}

const char *jdoc_type_name(json_type t) {
    switch (t) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a number";
    case json_type_int: return "an integer";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
    return "an unknown value";
}

json_object *jdoc_member(json_object *o, const char *key, json_type type, const char *what,
                         sattn_err *e) {
    json_object *v = NULL;
    if (!json_object_is_type(o, json_type_object))
        return err_set(e, "%s: %s, expected an object", what, jdoc_type_name(json_object_get_type(o))), NULL;
    if (!json_object_object_get_ex(o, key, &v))
        return err_set(e, "%s: missing \"%s\"", what, key), NULL;
    json_type t = json_object_get_type(v);
    if (t == type || (type == json_type_double && t == json_type_int)) return v;
    return err_set(e, "%s: \"%s\" is %s, expected %s", what, key, jdoc_type_name(t), jdoc_type_name(type)),
           NULL;
}

int jdoc_int(json_object *o, const char *key, int64_t lo, int64_t hi, int64_t *out, const char *what,
             sattn_err *e) {
    json_object *v = jdoc_member(o, key, json_type_int, what, e);
    if (!v) return -1;
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno || x < lo || x > hi)
        return err_set(e, "%s: \"%s\" is %s, expected an integer in [%" PRId64 ", %" PRId64 "]", what, key,
                       json_object_to_json_string(v), lo, hi);
    *out = x;
    return 0;
}

int jdoc_number(json_object *o, const char *key, double lo, double hi, double *out, const char *what,
                sattn_err *e) {
    json_object *v = jdoc_member(o, key, json_type_double, what, e);
    if (!v) return -1;
    return jdoc_number_value(v, key, lo, hi, out, what, e);
}

int jdoc_number_value(json_object *v, const char *key, double lo, double hi, double *out,
                      const char *what, sattn_err *e) {
    json_type t = json_object_get_type(v);
    if (t != json_type_double && t != json_type_int)
        return err_set(e, "%s: \"%s\" is %s, expected a number", what, key, jdoc_type_name(t));
    double x = json_object_get_double(v);
    if (!isfinite(x))
        return err_set(e, "%s: \"%s\" is %s, expected a finite number", what, key,
                       json_object_to_json_string(v));
    if (x < lo || x > hi)
        return err_set(e, "%s: \"%s\" is %s, expected a number in [%g, %g]", what, key,
                       json_object_to_json_string(v), lo, hi);
    *out = x;
    return 0;
}
