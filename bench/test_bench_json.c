/*
 * moak-bench's JSON follows Google Benchmark's schema: the context keys
 * Google Benchmark writes, every benchmark entry with the keys its tools
 * read, one entry per repetition then the _median/_min/_max aggregates, the
 * figures as counters, declined and failed runs left out; and the file reads
 * back into the same medians through the compare reader.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_compare.h"
#include "bench_json.h"

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

static void has_keys(const json_t *o, const char *const *keys, size_t n, const char *where)
{
    for (size_t i = 0; i < n; i++)
        CHECK(json_object_get(o, keys[i]) != NULL, "%s: key \"%s\" missing", where, keys[i]);
}

int main(void)
{
    moak_hw_info hw = MOAK_HW_INFO_INIT;
    CHECK(moak_hw_probe(&hw) == MOAK_OK, "probe");

    bench_workload w;
    memset(&w, 0, sizeof(w));
    snprintf(w.name, sizeof(w.name), "matmul-decode");
    w.kind = BENCH_MATMUL;
    w.m = 1;
    w.n = 14336;
    w.k = 4096;
    w.format = MOAK_FORMAT_Q4_0;

    bench_roofline roof;
    memset(&roof, 0, sizeof(roof));
    roof.measured = true;
    roof.threads = 2;
    roof.dram_gbps = 20.0;
    roof.l3_gbps = 80.0;
    roof.fp32_gops = 100.0;
    roof.int8_gops = 400.0;
    roof.fp16_gops = 100.0;

    bench_options o;
    memset(&o, 0, sizeof(o));
    o.repeat = 3;

    bench_result r[3];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 3; i++) {
        r[i].w = &w;
        r[i].format = MOAK_FORMAT_Q4_0;
        r[i].ok = true;
        r[i].repeats = 3;
        r[i].iterations = 12;
        r[i].threads = 2;
        r[i].times[0] = 2.0e-3;
        r[i].times[1] = 2.2e-3;
        r[i].times[2] = 1.9e-3;
        r[i].median = 2.0e-3;
        r[i].min = 1.9e-3;
        r[i].max = 2.2e-3;
        r[i].instances = 30;
        bench_count_matmul(&r[i].count, MOAK_FORMAT_Q4_0, 1, 14336, 4096);
        bench_roofline_floor(&roof, &r[i].count, false, r[i].count.bytes, &r[i].floor);
        r[i].pct = bench_roofline_pct(&r[i].floor, r[i].median);
    }
    snprintf(r[0].backend, sizeof(r[0].backend), "auto");
    snprintf(r[0].ran_on, sizeof(r[0].ran_on), "avx512");
    snprintf(r[1].backend, sizeof(r[1].backend), "avx2");
    r[1].declined = true; /* left out */
    snprintf(r[2].backend, sizeof(r[2].backend), "ref");
    r[2].ok = false;      /* left out */

    json_t *doc = bench_results_json(r, 3, &roof, &hw, &o);
    const json_t *ctx = json_object_get(doc, "context");
    static const char *const context_keys[] = {"date", "host_name", "executable", "num_cpus", "mhz_per_cpu",
                                               "cpu_scaling_enabled", "caches", "load_avg", "library_build_type",
                                               "moak"};
    has_keys(ctx, context_keys, sizeof(context_keys) / sizeof(context_keys[0]), "context");
    const json_t *moak = json_object_get(ctx, "moak");
    static const char *const moak_keys[] = {"version", "machine", "backends", "roofline", "options"};
    has_keys(moak, moak_keys, sizeof(moak_keys) / sizeof(moak_keys[0]), "context.moak");
    const json_t *rl = json_object_get(moak, "roofline");
    CHECK(json_real_value(json_object_get(rl, "dram_read_GBps")) == 20.0, "roofline DRAM figure recorded");

    const json_t *list = json_object_get(doc, "benchmarks");
    CHECK(json_array_size(list) == 3 + 3, "3 repetitions + 3 aggregates, got %zu", json_array_size(list));
    static const char *const entry_keys[] = {"name", "family_index", "per_family_instance_index", "run_name",
                                             "run_type", "repetitions", "threads", "iterations", "real_time",
                                             "cpu_time", "time_unit", "label", "bytes", "ops", "bytes_per_second",
                                             "items_per_second", "GB_per_s", "GOP_per_s", "floor_us",
                                             "roofline_pct"};
    size_t i;
    const json_t *e;
    int iterations = 0, aggregates = 0;
    json_array_foreach(list, i, e) {
        has_keys(e, entry_keys, sizeof(entry_keys) / sizeof(entry_keys[0]), "benchmark entry");
        const char *type = json_string_value(json_object_get(e, "run_type"));
        const char *name = json_string_value(json_object_get(e, "name"));
        CHECK(strcmp(json_string_value(json_object_get(e, "run_name")), "matmul-decode/q4_0/auto") == 0,
              "run_name is workload/format/backend");
        CHECK(strcmp(json_string_value(json_object_get(e, "time_unit")), "us") == 0, "time_unit us");
        if (type && strcmp(type, "aggregate") == 0) {
            const char *agg = json_string_value(json_object_get(e, "aggregate_name"));
            char want[128];
            snprintf(want, sizeof(want), "matmul-decode/q4_0/auto_%s", agg ? agg : "?");
            CHECK(agg && strcmp(name, want) == 0, "aggregate named %s, expected %s", name, want);
            aggregates++;
        } else {
            CHECK(json_object_get(e, "repetition_index") != NULL, "a repetition has repetition_index");
            iterations++;
        }
    }
    CHECK(iterations == 3 && aggregates == 3, "%d repetitions and %d aggregates", iterations, aggregates);
    const json_t *first = json_array_get(list, 0);
    CHECK(json_real_value(json_object_get(first, "real_time")) == 2000.0, "2 ms is 2000 us");
    CHECK(json_real_value(json_object_get(first, "bytes")) == 33103872.0, "bytes counter");
    CHECK(strstr(json_string_value(json_object_get(first, "label")), "backend=avx512") != NULL,
          "the label names the backend that ran");

    /* Written and read back by the compare reader: the same median and spread. */
    char path[] = "/tmp/moak-bench-json-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temporary file");
    if (fd >= 0) {
        close(fd);
        CHECK(bench_write_json(path, r, 3, &roof, &hw, &o), "write %s", path);
        bench_entry_list back;
        char err[200];
        CHECK(bench_load_entries(path, &back, err, sizeof(err)), "read back: %s", err);
        CHECK(back.count == 1, "one run read back, got %d", back.count);
        if (back.count == 1) {
            CHECK(back.items[0].median_ns == 2.0e6 && back.items[0].min_ns == 1.9e6 && back.items[0].max_ns == 2.2e6,
                  "median/min/max survive the round trip");
            CHECK(back.items[0].roofline_pct > 0.0, "the roofline %% survives");
        }
        bench_free_entries(&back);
        unlink(path);
    }
    json_decref(doc);
    if (failures) {
        printf("test_bench_json: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_bench_json: all checks passed\n");
    return 0;
}
