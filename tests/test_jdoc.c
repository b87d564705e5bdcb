/* jdoc (json-c with a depth limit): exactly one value, nesting capped, members typed,
 * integers ranged, each failure a one-line error naming the source. */
#include <criterion/criterion.h>
#include <string.h>

#include "sattn/jdoc.h"

static json_object *parse(const char *s, int depth, sattn_err *e) {
    return jdoc_parse(s, strlen(s), "t.json", depth, e);
}

Test(jdoc, parses_one_value_and_reads_members) {
    sattn_err e;
    json_object *o = parse(" {\"n\": 12, \"x\": 1.5, \"s\": \"hi\"}\n", 0, &e);
    cr_assert_not_null(o, "%s", e.msg);
    int64_t n = 0;
    cr_assert_eq(jdoc_int(o, "n", 1, 100, &n, "t.json", &e), 0, "%s", e.msg);
    cr_assert_eq(n, 12);
    json_object *x = jdoc_member(o, "x", json_type_double, "t.json", &e);
    cr_assert_not_null(x);
    cr_assert_float_eq(json_object_get_double(x), 1.5, 0);
    cr_assert_not_null(jdoc_member(o, "n", json_type_double, "t.json", &e), "an integer is a number");
    json_object_put(o);
}

Test(jdoc, errors_are_one_line_and_name_the_source) {
    sattn_err e;
    const char *bad[] = {"{\"a\": 1", "{\"a\": 1} x", "[1, 2,, 3]", "", "nul", "{\"a\": 1,}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_null(parse(bad[i], 0, &e), "%s", bad[i]);
        cr_assert(strncmp(e.msg, "t.json: not JSON", 16) == 0, "%s", e.msg);
        cr_assert_null(strchr(e.msg, '\n'));
    }
    cr_assert_null(parse(" null ", 0, &e)); /* json-c's null is NULL: still an error with a message */
    cr_assert_str_eq(e.msg, "t.json: the JSON value is null, expected an object");
    json_object *o = parse("{\"n\": 1e9, \"s\": \"x\", \"big\": 5000}", 0, &e);
    cr_assert_not_null(o);
    int64_t v;
    cr_assert_eq(jdoc_int(o, "n", 1, 10, &v, "t.json", &e), -1);
    cr_assert_str_eq(e.msg, "t.json: \"n\" is a number, expected an integer");
    cr_assert_eq(jdoc_int(o, "big", 1, 1024, &v, "t.json", &e), -1);
    cr_assert_str_eq(e.msg, "t.json: \"big\" is 5000, expected an integer in [1, 1024]");
    cr_assert_eq(jdoc_int(o, "m", 1, 10, &v, "t.json", &e), -1);
    cr_assert_str_eq(e.msg, "t.json: missing \"m\"");
    json_object_put(o);
}

Test(jdoc, numbers_must_be_finite_and_in_range) {
    sattn_err e;
    json_object *o = parse("{\"a\": NaN, \"b\": -Infinity, \"c\": 2.5, \"s\": \"x\"}", 0, &e);
    cr_assert_not_null(o, "%s", e.msg);
    static const struct {
        const char *key, *msg;
    } bad[] = {{"a", "t.json: \"a\" is NaN, expected a finite number"},
               {"b", "t.json: \"b\" is -Infinity, expected a finite number"},
               {"c", "t.json: \"c\" is 2.5, expected a number in [0, 2]"},
               {"s", "t.json: \"s\" is a string, expected a number"}};
    double x;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(jdoc_number(o, bad[i].key, 0, 2, &x, "t.json", &e), -1);
        cr_assert_str_eq(e.msg, bad[i].msg);
    }
    cr_assert_eq(jdoc_number(o, "c", 0, 3, &x, "t.json", &e), 0);
    cr_assert_eq(x, 2.5);
    json_object_put(o);
}

Test(jdoc, nesting_is_capped) {
    char deep[4096];
    int d = 2000;
    for (int i = 0; i < d; i++) deep[i] = '[';
    for (int i = 0; i < d; i++) deep[d + i] = ']';
    deep[2 * d] = 0;
    sattn_err e;
    cr_assert_null(parse(deep, 0, &e));
    cr_assert_str_eq(e.msg, "t.json: JSON nested deeper than 32");
    json_object *o = parse("[[[[1]]]]", 5, &e);
    cr_assert_not_null(o, "%s", e.msg);
    json_object_put(o);
    cr_assert_null(parse("[[[[[1]]]]]", 4, &e));
}
