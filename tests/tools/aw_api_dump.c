/* aw_api_dump.c -- prints the Klaviyo API table (worker/klaviyo/api.c) as one JSON document,
 * for tests/unit/test_api_spec.py, which checks every row against the vendored OpenAPI spec:
 *   {"revision":"2026-07-15","body_margin_pct":90,"operations":[{"endpoint":0,"name":...,
 *    "method":"post","path":"/api/...",...},...]}
 * Exit status 0 on success. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/klaviyo/api.h"

static json_t *row(const struct aw_api_op *op)
{
    char method[8];
    const char *m = aw_api_method_str(op->method);
    size_t n = strlen(m);
    for (size_t i = 0; i <= n && i < sizeof method; i++)
        method[i] = (char)(m[i] >= 'A' && m[i] <= 'Z' ? m[i] - 'A' + 'a' : m[i]);
    method[sizeof method - 1] = '\0';
    return json_pack(
        "{s:i,s:s,s:s,s:s,s:I,s:b,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "endpoint",
        (int)op->endpoint, "name", op->name, "method", method, "path", op->path, "page_size_max",
        (json_int_t)op->page_size_max, "filterable", op->filterable, "sort_newest",
        op->sort_newest ? json_string(op->sort_newest) : json_null(), "filter_max_values",
        (json_int_t)op->filter_max_values, "filter_max_bytes", (json_int_t)op->filter_max_bytes,
        "max_items", (json_int_t)op->max_items, "max_bytes", (json_int_t)op->max_bytes,
        "budget_bytes", (json_int_t)op->budget_bytes, "max_item_bytes",
        (json_int_t)op->max_item_bytes, "burst_per_s", (json_int_t)op->burst_per_s,
        "steady_per_min", (json_int_t)op->steady_per_min, "daily", (json_int_t)op->daily);
}

int main(void)
{
    json_t *ops = json_array();
    for (int e = 0; ops && e < AW_API_ENDPOINT_COUNT; e++) {
        json_t *r = row(aw_api_get((enum aw_api_endpoint)e));
        if (!r || json_array_append_new(ops, r) != 0) {
            fprintf(stderr, "aw_api_dump: cannot encode row %d\n", e);
            json_decref(ops);
            return 1;
        }
    }
    json_t *doc = json_pack("{s:s,s:I,s:o}", "revision", AW_API_REVISION, "body_margin_pct",
                            (json_int_t)AW_API_BODY_MARGIN_PCT, "operations", ops);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        fprintf(stderr, "aw_api_dump: cannot encode the table\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}
