/*
 * moak-bench compare's verdicts on synthetic Google Benchmark JSON: a real
 * slowdown outside both spreads is a regression, one inside them is noise,
 * small changes are the same; aggregates, repetitions, time units and runs
 * present in one file only are all read right.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench_compare.h"

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

/* Repetitions of run `name`, in `unit`. */
static void add_reps(json_t *list, const char *name, const double *t, int n, const char *unit)
{
    for (int i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:s}", "name", name, "run_name",
                                              name, "run_type", "iteration", "repetition_index", i, "iterations", 10,
                                              "real_time", t[i], "cpu_time", t[i], "time_unit", unit));
}

/* moak-bench's aggregates: <name>_median/_min/_max. */
static void add_aggs(json_t *list, const char *name, double med, double lo, double hi, const char *unit)
{
    const char *aggs[3] = {"median", "min", "max"};
    double v[3] = {med, lo, hi};
    for (int i = 0; i < 3; i++) {
        char full[128];
        snprintf(full, sizeof(full), "%s_%s", name, aggs[i]);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:s, s:f}", "name", full, "run_name",
                                              name, "run_type", "aggregate", "aggregate_name", aggs[i], "real_time",
                                              v[i], "cpu_time", v[i], "time_unit", unit, "roofline_pct", 50.0));
    }
}

static json_t *document(json_t *list)
{
    return json_pack("{s:{s:s}, s:o}", "context", "date", "2026-01-01", "benchmarks", list);
}

static const bench_comparison *find(const bench_comparison *c, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(c[i].name, name) == 0)
            return &c[i];
    return NULL;
}

static void expect(const bench_comparison *c, int n, const char *name, bench_verdict v)
{
    const bench_comparison *x = find(c, n, name);
    CHECK(x != NULL, "run %s missing from the comparison", name);
    if (x)
        CHECK(x->verdict == v, "run %s: %s, expected %s (ratio %.3f)", name, bench_verdict_name(x->verdict),
              bench_verdict_name(v), x->ratio);
}

int main(void)
{
    json_t *base = json_array(), *cur = json_array();
    const double a0[5] = {100, 101, 99, 102, 100}, a1[5] = {110, 111, 109, 112, 110};
    const double b0[3] = {100, 95, 105}, b1[3] = {108, 97, 115};
    const double c0[3] = {100, 100, 100}, c1[1] = {103};
    const double d0[3] = {100, 101, 99}, d1[3] = {80, 81, 79};
    const double e0[2] = {5, 5}, f1[2] = {7, 7};
    const double h0[3] = {10, 10.1, 9.9}, h1[3] = {10000, 10050, 9950};
    /* a: +10 %, the spreads apart: a regression. */
    add_reps(base, "a", a0, 5, "us");
    add_reps(cur, "a", a1, 5, "us");
    /* b: +8 %, but new's fastest (97) beats base's slowest (105): noise. */
    add_reps(base, "b", b0, 3, "us");
    add_reps(cur, "b", b1, 3, "us");
    /* c: +3 %, under the 5 % threshold. */
    add_reps(base, "c", c0, 3, "us");
    add_reps(cur, "c", c1, 1, "us");
    /* d: -20 %, apart: faster. */
    add_reps(base, "d", d0, 3, "us");
    add_reps(cur, "d", d1, 3, "us");
    /* e only before, f only after. */
    add_reps(base, "e", e0, 2, "us");
    add_reps(cur, "f", f1, 2, "us");
    /* g: aggregates only, in ms: +12 %, apart: a regression. */
    add_aggs(base, "g", 50, 49, 51, "ms");
    add_aggs(cur, "g", 56, 55, 57, "ms");
    /* h: the same time in us and in ns. */
    add_reps(base, "h", h0, 3, "us");
    add_reps(cur, "h", h1, 3, "ns");
    /* i: Google Benchmark's own aggregate naming (no run_name), mean/median/stddev. */
    json_array_append_new(base, json_pack("{s:s, s:s, s:s, s:f, s:s}", "name", "i_median", "run_type", "aggregate",
                                          "aggregate_name", "median", "real_time", 200.0, "time_unit", "ns"));
    json_array_append_new(cur, json_pack("{s:s, s:s, s:s, s:f, s:s}", "name", "i_median", "run_type", "aggregate",
                                         "aggregate_name", "median", "real_time", 201.0, "time_unit", "ns"));

    json_t *base_doc = document(base), *cur_doc = document(cur);
    bench_entry_list lb, lc;
    char err[200];
    CHECK(bench_entries_from_json(base_doc, &lb, err, sizeof(err)), "base: %s", err);
    CHECK(bench_entries_from_json(cur_doc, &lc, err, sizeof(err)), "new: %s", err);

    /* What was read. */
    const bench_entry *g = NULL, *a = NULL, *i_entry = NULL;
    for (int k = 0; k < lb.count; k++) {
        if (strcmp(lb.items[k].name, "g") == 0)
            g = &lb.items[k];
        if (strcmp(lb.items[k].name, "a") == 0)
            a = &lb.items[k];
        if (strcmp(lb.items[k].name, "i") == 0)
            i_entry = &lb.items[k];
    }
    CHECK(a && a->median_ns == 100e3 && a->min_ns == 99e3 && a->max_ns == 102e3 && a->samples == 5,
          "repetitions give median 100 us, spread 99..102");
    CHECK(g && g->median_ns == 50e6 && g->min_ns == 49e6 && g->max_ns == 51e6 && g->roofline_pct == 50.0,
          "aggregates give median, min, max (ms -> ns) and the roofline %%");
    CHECK(i_entry && i_entry->median_ns == 200.0, "a name_median aggregate without run_name belongs to run i");

    bench_comparison *c;
    int n;
    int regressions = bench_compare_lists(&lb, &lc, 5.0, &c, &n);
    CHECK(regressions == 2, "2 regressions at 5 %%, got %d", regressions);
    expect(c, n, "a", BENCH_REGRESSION);
    expect(c, n, "b", BENCH_NOISE);
    expect(c, n, "c", BENCH_SAME);
    expect(c, n, "d", BENCH_FASTER);
    expect(c, n, "e", BENCH_GONE);
    expect(c, n, "f", BENCH_NEW);
    expect(c, n, "g", BENCH_REGRESSION);
    expect(c, n, "h", BENCH_SAME);
    expect(c, n, "i", BENCH_SAME);
    const bench_comparison *x = find(c, n, "a");
    CHECK(x && fabs(x->ratio - 1.1) < 1e-12, "a's ratio is 1.1");
    printf("the comparison as printed:\n");
    bench_print_comparison(stdout, c, n, 5.0);
    free(c);

    /* A looser threshold forgives both. */
    regressions = bench_compare_lists(&lb, &lc, 15.0, &c, &n);
    CHECK(regressions == 0, "no regression at 15 %%, got %d", regressions);
    expect(c, n, "a", BENCH_SAME);
    free(c);

    /* Not Google Benchmark JSON at all. */
    json_t *bad = json_pack("{s:i}", "x", 1);
    bench_entry_list lx;
    CHECK(!bench_entries_from_json(bad, &lx, err, sizeof(err)), "a document without benchmarks is refused");
    json_decref(bad);

    bench_free_entries(&lb);
    bench_free_entries(&lc);
    json_decref(base_doc);
    json_decref(cur_doc);
    if (failures) {
        printf("test_bench_compare: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_bench_compare: all checks passed\n");
    return 0;
}
