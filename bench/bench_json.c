/* moak-bench results as Google Benchmark JSON (see bench_json.h). */
#define _DEFAULT_SOURCE /* localtime_r, gethostname, getloadavg */
#include "config.h"

#include "bench_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool_support.h"

void bench_run_name(const bench_result *res, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/%s%s", res->w->name, moak_format_name(res->format), res->backend,
             res->hot ? "/hot" : "");
}

static json_t *context_json(const bench_roofline *roof, const moak_hw_info *hw, const bench_options *o)
{
    json_t *c = json_object();
    char date[64], host[256] = "";
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S%z", &tm);
    gethostname(host, sizeof(host) - 1);
    json_object_set_new(c, "date", json_string(date));
    json_object_set_new(c, "host_name", json_string(host));
    json_object_set_new(c, "executable", json_string("moak-bench"));
    json_object_set_new(c, "num_cpus", json_integer(hw->n_pus));
    json_object_set_new(c, "mhz_per_cpu", json_integer(0));
    json_object_set_new(c, "cpu_scaling_enabled", json_false());
    json_t *caches = json_array();
    for (int i = 0; i < MOAK_CACHE_LEVELS; i++) {
        if (!hw->cache_bytes[i])
            continue;
        json_t *e = json_object();
        int count = hw->cache_count[i] > 0 ? hw->cache_count[i] : 1;
        json_object_set_new(e, "type", json_string(i == 0 ? "Data" : "Unified"));
        json_object_set_new(e, "level", json_integer(i + 1));
        json_object_set_new(e, "size", json_integer((json_int_t)hw->cache_bytes[i]));
        json_object_set_new(e, "num_sharing", json_integer(hw->n_pus > count ? hw->n_pus / count : 1));
        json_array_append_new(caches, e);
    }
    json_object_set_new(c, "caches", caches);
    double load[3] = {0, 0, 0};
    json_t *la = json_array();
    if (getloadavg(load, 3) == 3)
        for (int i = 0; i < 3; i++)
            json_array_append_new(la, json_real(load[i]));
    json_object_set_new(c, "load_avg", la);
    json_object_set_new(c, "library_build_type", json_string("release"));

    json_t *m = json_object();
    json_object_set_new(m, "version", json_string(moak_version_string()));
    json_object_set_new(m, "machine", tool_hw_json(hw));
    json_object_set_new(m, "backends", tool_backends_json());
    json_t *r = json_object();
    json_object_set_new(r, "measured", json_boolean(roof->measured));
    json_object_set_new(r, "threads", json_integer(roof->threads));
    json_object_set_new(r, "isa_path", json_string(roof->isa_path));
    json_object_set_new(r, "disturbed", json_boolean(roof->disturbed));
    json_object_set_new(r, "load_average", json_real(roof->load_average));
    json_object_set_new(r, "dram_read_GBps", json_real(roof->dram_gbps));
    json_object_set_new(r, "dram_buffer_bytes", json_real(roof->dram_buffer_bytes));
    json_object_set_new(r, "l3_read_GBps", json_real(roof->l3_gbps));
    json_object_set_new(r, "l3_buffer_bytes", json_real(roof->l3_buffer_bytes));
    json_object_set_new(r, "fp32_GFLOPs", json_real(roof->fp32_gops));
    json_object_set_new(r, "fp32_method", json_string(roof->fp32_method));
    json_object_set_new(r, "int8_GOPs", json_real(roof->int8_gops));
    json_object_set_new(r, "int8_method", json_string(roof->int8_method));
    json_object_set_new(r, "fp16_GFLOPs", json_real(roof->fp16_gops));
    json_object_set_new(r, "fp16_method", json_string(roof->fp16_method));
    json_object_set_new(m, "roofline", r);
    json_t *opt = json_object();
    json_object_set_new(opt, "mode", json_string(o->hot ? "hot" : "cold"));
    json_object_set_new(opt, "repeat", json_integer(o->repeat));
    json_object_set_new(opt, "threads", json_integer(o->threads));
    json_object_set_new(opt, "rotate_bytes", json_real(o->rotate_bytes));
    json_object_set_new(opt, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(m, "options", opt);
    json_object_set_new(c, "moak", m);
    return c;
}

/* One entry; seconds is this repetition's (or aggregate's) time per call. */
static json_t *entry_json(const bench_result *res, int family, const char *run_name, const char *suffix,
                          const char *aggregate, int repetition, double seconds)
{
    char name[256], label[160];
    snprintf(name, sizeof(name), "%s%s", run_name, suffix);
    snprintf(label, sizeof(label), "backend=%s mode=%s instances=%d", res->ran_on, res->hot ? "hot" : "cold",
             res->instances);
    json_t *e = json_object();
    json_object_set_new(e, "name", json_string(name));
    json_object_set_new(e, "family_index", json_integer(family));
    json_object_set_new(e, "per_family_instance_index", json_integer(0));
    json_object_set_new(e, "run_name", json_string(run_name));
    json_object_set_new(e, "run_type", json_string(aggregate ? "aggregate" : "iteration"));
    json_object_set_new(e, "repetitions", json_integer(res->repeats));
    if (aggregate) {
        json_object_set_new(e, "threads", json_integer(res->threads));
        json_object_set_new(e, "aggregate_name", json_string(aggregate));
        json_object_set_new(e, "aggregate_unit", json_string("time"));
    } else {
        json_object_set_new(e, "repetition_index", json_integer(repetition));
        json_object_set_new(e, "threads", json_integer(res->threads));
    }
    json_object_set_new(e, "iterations", json_integer(res->iterations));
    json_object_set_new(e, "real_time", json_real(seconds * 1e6));
    json_object_set_new(e, "cpu_time", json_real(seconds * 1e6));
    json_object_set_new(e, "time_unit", json_string("us"));
    json_object_set_new(e, "label", json_string(label));
    double bps = seconds > 0.0 ? res->count.bytes / seconds : 0.0;
    double ops = seconds > 0.0 ? res->count.ops / seconds : 0.0;
    json_object_set_new(e, "bytes", json_real(res->count.bytes));
    json_object_set_new(e, "ops", json_real(res->count.ops));
    json_object_set_new(e, "bytes_per_second", json_real(bps));
    json_object_set_new(e, "items_per_second", json_real(ops));
    json_object_set_new(e, "GB_per_s", json_real(bps / 1e9));
    json_object_set_new(e, "GOP_per_s", json_real(ops / 1e9));
    json_object_set_new(e, "floor_us", json_real(res->floor.seconds * 1e6));
    json_object_set_new(e, "roofline_pct", json_real(bench_roofline_pct(&res->floor, seconds)));
    return e;
}

json_t *bench_results_json(const bench_result *results, int n, const bench_roofline *roof,
                           const moak_hw_info *hw, const bench_options *o)
{
    json_t *root = json_object();
    json_object_set_new(root, "context", context_json(roof, hw, o));
    json_t *list = json_array();
    int family = 0;
    for (int i = 0; i < n; i++) {
        const bench_result *res = &results[i];
        if (!res->ok || res->declined || res->repeats < 1)
            continue;
        char run_name[200];
        bench_run_name(res, run_name, sizeof(run_name));
        for (int k = 0; k < res->repeats; k++)
            json_array_append_new(list, entry_json(res, family, run_name, "", NULL, k, res->times[k]));
        json_array_append_new(list, entry_json(res, family, run_name, "_median", "median", 0, res->median));
        json_array_append_new(list, entry_json(res, family, run_name, "_min", "min", 0, res->min));
        json_array_append_new(list, entry_json(res, family, run_name, "_max", "max", 0, res->max));
        family++;
    }
    json_object_set_new(root, "benchmarks", list);
    return root;
}

bool bench_write_json(const char *path, const bench_result *results, int n, const bench_roofline *roof,
                      const moak_hw_info *hw, const bench_options *o)
{
    json_t *root = bench_results_json(results, n, roof, hw, o);
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0)
        fprintf(stderr, "moak-bench: cannot write %s\n", path);
    return rc == 0;
}
