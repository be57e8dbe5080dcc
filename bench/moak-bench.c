/*
 * moak-bench — the performance engineer's tool.
 *
 *   moak-bench [options]                  machine, roofline, workloads, table
 *   moak-bench compare BASE NEW [--threshold PCT] [--svg FILE]
 *   moak-bench roofline [--threads N]     the roofline alone
 *
 * With no arguments it prints the machine (probe), measures this machine's
 * roofline, runs the default workloads on the backend the dispatcher picks
 * and prints a table: time, GB/s, GOP/s, the floor the roofline sets and the
 * percentage of it reached.  See bench/NOTES.md for the method.
 */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_compare.h"
#include "bench_json.h"
#include "bench_run.h"
#include "bench_svg.h"
#include "roofline.h"
#include "tool_support.h"
#include "workload.h"

#define MAX_BACKENDS 8
#define MAX_FORMATS MOAK_FORMAT_COUNT

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moak-bench [--list] [--workload NAME[,NAME]|default|all] [--backend NAME[,NAME]|all|auto]\n"
            "                  [--format F[,F]] [--threads N] [--repeat N] [--hot] [--json FILE] [--svg FILE]\n"
            "                  [--budget SEC] [--max-mem-mib N] [--seed N] [--data FILE] [--no-roofline]\n"
            "                  [--allow-weight-expansion]\n"
            "       moak-bench compare BASE.json NEW.json [--threshold PCT] [--svg FILE]\n"
            "       moak-bench roofline [--threads N]\n"
            "\n"
            "  --workload   workloads from workloads.json (default: those marked default)\n"
            "  --backend    auto (the dispatcher's choice, default), a name, a list, or all\n"
            "  --format     weight format (matmul, moe, layer) or KV format (attention):\n"
            "               f32 f16 bf16 q8_0 q4_0 i8_row i4_g32 i4_g128 (default: the workload's)\n"
            "  --threads    worker threads (default: one per physical core)\n"
            "  --repeat     timed repeats after warm-up (default 5); median, min and max are reported\n"
            "  --hot        keep the weights in cache (default: cold, rotated through > L3)\n"
            "  --json FILE  results in Google Benchmark's JSON schema\n"
            "  --svg FILE   chart of the %% of roofline reached (compare: before/after bars)\n"
            "  --budget     seconds per workload before repeats are cut (default 15)\n"
            "  --no-roofline  skip measuring the roofline (no floors, no %%)\n"
            "  --allow-weight-expansion  MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION (oneDNN runs Q4_0 widened)\n"
            "  --threshold  compare: slower by more than PCT %% (default 5) and outside both\n"
            "               runs' min-max spread is a regression (exit status 1)\n");
}

typedef struct cli {
    char *workloads;
    char *backends;
    char *formats;
    const char *json_path;
    const char *svg_path;
    const char *data_path;
    bool list;
    bool no_roofline;
    uint32_t context_flags;
    bench_options o;
    double max_mem_mib;
} cli;

/* ---- logging: a named backend's refusals say why it did not run a workload ---- */

typedef struct refusal_log {
    char backend[32];
    char last[400];
} refusal_log;

static void capture_refusals(void *user, moak_log_level level, const char *message)
{
    refusal_log *l = user;
    char needle[48];
    snprintf(needle, sizeof(needle), " %s refused: ", l->backend);
    if (strstr(message, needle))
        snprintf(l->last, sizeof(l->last), "%s", message);
    else if (level <= MOAK_LOG_WARN)
        fprintf(stderr, "moak-bench: %s\n", message);
}

/* ---- printing ------------------------------------------------------------------------ */

static void print_roofline(const bench_roofline *r)
{
    printf("roofline: %d threads, %s loops, measured in %.1f s\n", r->threads, r->isa_path, r->seconds);
    printf("  DRAM read  %8.1f GB/s     (%.0f MiB buffer streamed by every thread)\n", r->dram_gbps,
           r->dram_buffer_bytes / 1048576.0);
    if (r->l3_gbps > 0)
        printf("  L3 read    %8.1f GB/s     (%.0f MiB buffer, L3 %.0f MiB)\n", r->l3_gbps,
               r->l3_buffer_bytes / 1048576.0, r->l3_bytes / 1048576.0);
    else
        printf("  L3 read    (no L3 reported)\n");
    printf("  fp32       %8.1f GFLOP/s  (%s)\n", r->fp32_gops, r->fp32_method);
    printf("  int8       %8.1f GOP/s    (%s)\n", r->int8_gops, r->int8_method);
    printf("  fp16       %8.1f GFLOP/s  (%s)\n", r->fp16_gops, r->fp16_method);
    if (r->disturbed)
        printf("  warning: other processes took the CPUs during every trial of some figure (load average %.1f);\n"
               "           these figures are lower bounds, and %% of roofline is overstated\n",
               r->load_average);
    printf("\n");
}

static void print_header(void)
{
    printf("%-24s %-7s %-11s %11s %17s %8s %8s %11s %6s %-7s %s\n", "workload", "format", "backend", "median",
           "min..max", "GB/s", "GOP/s", "floor", "%roof", "bound", "runs");
}

static void fmt_time(char *buf, size_t len, double s)
{
    if (s >= 1.0)
        snprintf(buf, len, "%.3f s", s);
    else if (s >= 1e-3)
        snprintf(buf, len, "%.3f ms", s * 1e3);
    else
        snprintf(buf, len, "%.1f us", s * 1e6);
}

static void print_row(const bench_result *r)
{
    if (!r->ok || r->declined) {
        printf("%-24.24s %-7s %-11.11s %s: %s\n", r->w->name, moak_format_name(r->format), r->backend,
               r->declined ? "declined" : "ERROR", r->message);
        return;
    }
    char med[24], lo[24], hi[24], fl[24], spread[64], runs[48];
    fmt_time(med, sizeof(med), r->median);
    fmt_time(lo, sizeof(lo), r->min);
    fmt_time(hi, sizeof(hi), r->max);
    snprintf(spread, sizeof(spread), "%s..%s", lo, hi);
    if (r->floor.seconds > 0)
        fmt_time(fl, sizeof(fl), r->floor.seconds);
    else
        snprintf(fl, sizeof(fl), "-");
    snprintf(runs, sizeof(runs), "%dx%lld, %d inst", r->repeats, (long long)r->iterations, r->instances);
    char pct[16];
    if (r->floor.seconds > 0)
        snprintf(pct, sizeof(pct), "%.0f%%", r->pct);
    else
        snprintf(pct, sizeof(pct), "-");
    printf("%-24.24s %-7s %-11.11s %11s %17s %8.1f %8.1f %11s %6s %-7s %s\n", r->w->name,
           moak_format_name(r->format), r->ran_on, med, spread, r->count.bytes / r->median / 1e9,
           r->count.ops / r->median / 1e9, fl, pct, r->floor.bound, runs);
    if (r->experts_allocated && r->w->n_experts && r->experts_allocated < r->w->n_experts)
        printf("%24s note: %lld of the model's %lld experts allocated (--max-mem-mib)\n", "",
               (long long)r->experts_allocated, (long long)r->w->n_experts);
}

/* ---- compare ------------------------------------------------------------------------------ */

static int run_compare(int argc, char **argv)
{
    double threshold = 5.0;
    const char *svg = NULL;
    const char *files[2] = {NULL, NULL};
    int n_files = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--threshold") == 0 && i + 1 < argc)
            threshold = atof(argv[++i]);
        else if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc)
            svg = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "moak-bench compare: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (n_files < 2)
            files[n_files++] = argv[i];
        else {
            fprintf(stderr, "moak-bench compare: one BASE and one NEW file\n");
            return 2;
        }
    }
    if (n_files != 2 || !(threshold >= 0.0)) {
        usage(stderr);
        return 2;
    }
    bench_entry_list base, cur;
    char err[400];
    if (!bench_load_entries(files[0], &base, err, sizeof(err))) {
        fprintf(stderr, "moak-bench compare: %s: %s\n", files[0], err);
        return 2;
    }
    if (!bench_load_entries(files[1], &cur, err, sizeof(err))) {
        fprintf(stderr, "moak-bench compare: %s: %s\n", files[1], err);
        bench_free_entries(&base);
        return 2;
    }
    bench_comparison *c;
    int n;
    int regressions = bench_compare_lists(&base, &cur, threshold, &c, &n);
    if (regressions < 0) {
        fprintf(stderr, "moak-bench compare: out of memory\n");
        return 2;
    }
    printf("base: %s\nnew:  %s\n\n", files[0], files[1]);
    bench_print_comparison(stdout, c, n, threshold);
    int status = regressions > 0 ? 1 : 0;
    if (svg && !bench_write_svg_compare(svg, c, n, "moak-bench compare: before and after"))
        status = status ? status : 2;
    free(c);
    bench_free_entries(&base);
    bench_free_entries(&cur);
    return status;
}

/* ---- run ---------------------------------------------------------------------------------- */

static int parse_run_options(int argc, char **argv, cli *c)
{
    static const struct option longs[] = {
        {"list", no_argument, NULL, 'l'},          {"workload", required_argument, NULL, 'w'},
        {"backend", required_argument, NULL, 'b'}, {"format", required_argument, NULL, 'f'},
        {"threads", required_argument, NULL, 't'}, {"repeat", required_argument, NULL, 'r'},
        {"hot", no_argument, NULL, 'H'},           {"json", required_argument, NULL, 'j'},
        {"svg", required_argument, NULL, 's'},     {"data", required_argument, NULL, 'd'},
        {"budget", required_argument, NULL, 'B'},  {"max-mem-mib", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 'S'},    {"no-roofline", no_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},          {"allow-weight-expansion", no_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    memset(c, 0, sizeof(*c));
    c->o.repeat = 5;
    c->o.min_repeat_seconds = 0.05;
    c->o.budget_seconds = 15.0;
    c->o.seed = 42;
    c->max_mem_mib = 4096.0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (ch) {
        case 'l': c->list = true; break;
        case 'w': c->workloads = optarg; break;
        case 'b': c->backends = optarg; break;
        case 'f': c->formats = optarg; break;
        case 't': c->o.threads = atoi(optarg); break;
        case 'r': c->o.repeat = atoi(optarg); break;
        case 'H': c->o.hot = true; break;
        case 'j': c->json_path = optarg; break;
        case 's': c->svg_path = optarg; break;
        case 'd': c->data_path = optarg; break;
        case 'B': c->o.budget_seconds = atof(optarg); break;
        case 'm': c->max_mem_mib = atof(optarg); break;
        case 'S': c->o.seed = strtoull(optarg, NULL, 10); break;
        case 'N': c->no_roofline = true; break;
        case 'x': c->context_flags |= MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moak-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (c->o.repeat < 1 || c->o.repeat > BENCH_MAX_REPEATS) {
        fprintf(stderr, "moak-bench: --repeat takes 1..%d\n", BENCH_MAX_REPEATS);
        return 2;
    }
    if (c->o.threads < 0 || !(c->max_mem_mib > 0.0) || !(c->o.budget_seconds > 0.0)) {
        fprintf(stderr, "moak-bench: --threads, --max-mem-mib and --budget take positive values\n");
        return 2;
    }
    c->o.max_mem_bytes = c->max_mem_mib * 1048576.0;
    return -1;
}

static void list_workloads(const bench_workload_list *list)
{
    printf("%-34s %-9s %-7s %-7s %s\n", "workload", "op", "format", "default", "model: what");
    for (int i = 0; i < list->count; i++) {
        const bench_workload *w = &list->items[i];
        printf("%-34s %-9s %-7s %-7s %s: %s\n", w->name, bench_kind_name(w->kind), moak_format_name(w->format),
               w->is_default ? "yes" : "", w->model, w->description);
    }
}

/* The workloads to run, in file order. */
static int select_workloads(const cli *c, const bench_workload_list *list, const bench_workload **out)
{
    int n = 0;
    if (!c->workloads || strcmp(c->workloads, "default") == 0 || strcmp(c->workloads, "all") == 0) {
        bool all = c->workloads && strcmp(c->workloads, "all") == 0;
        for (int i = 0; i < list->count; i++)
            if (all || list->items[i].is_default)
                out[n++] = &list->items[i];
        return n;
    }
    char buf[1024];
    char *tok[64];
    snprintf(buf, sizeof(buf), "%s", c->workloads);
    int nt = tool_split_list(buf, tok, 64);
    for (int i = 0; i < nt; i++) {
        const bench_workload *w = bench_find_workload(list, tok[i]);
        if (!w) {
            fprintf(stderr, "moak-bench: no workload '%s' (see --list)\n", tok[i]);
            return -1;
        }
        out[n++] = w;
    }
    return n;
}

static int select_backends(const cli *c, char names[][32])
{
    int n = 0;
    if (!c->backends || strcmp(c->backends, "auto") == 0) {
        snprintf(names[n++], 32, "auto");
        return n;
    }
    if (strcmp(c->backends, "all") == 0) {
        for (int32_t i = 0; i < moak_backend_count() && n < MAX_BACKENDS; i++) {
            moak_backend_info info = MOAK_BACKEND_INFO_INIT;
            if (moak_backend_query(i, &info) == MOAK_OK && info.available)
                snprintf(names[n++], 32, "%.31s", info.name);
        }
        return n;
    }
    char buf[256];
    char *tok[MAX_BACKENDS];
    snprintf(buf, sizeof(buf), "%s", c->backends);
    int nt = tool_split_list(buf, tok, MAX_BACKENDS);
    for (int i = 0; i < nt; i++)
        snprintf(names[n++], 32, "%.31s", tok[i]);
    return n;
}

static int select_formats(const cli *c, moak_format *formats)
{
    if (!c->formats)
        return 0;
    char buf[256];
    char *tok[MAX_FORMATS * 2];
    snprintf(buf, sizeof(buf), "%s", c->formats);
    int nt = tool_split_list(buf, tok, MAX_FORMATS * 2), n = 0;
    for (int i = 0; i < nt; i++) {
        if (moak_format_from_name(tok[i], &formats[n]) != MOAK_OK) {
            fprintf(stderr, "moak-bench: '%s' is not a format\n", tok[i]);
            return -1;
        }
        n++;
    }
    return n;
}

static int run_bench(int argc, char **argv, bool roofline_only)
{
    cli c;
    int rc = parse_run_options(argc, argv, &c);
    if (rc >= 0)
        return rc;
    bench_workload_list list = {NULL, 0};
    char err[512], tried[1024];
    char *path = NULL;
    if (!roofline_only) {
        path = tool_find_data(c.data_path, "MOAK_BENCH_DATA", "bench/workloads.json", tried, sizeof(tried));
        if (!path) {
            fprintf(stderr, "moak-bench: cannot find workloads.json (tried %s); use --data FILE\n", tried);
            return 2;
        }
        if (!bench_load_workloads(path, &list, err, sizeof(err))) {
            fprintf(stderr, "moak-bench: %s\n", err);
            free(path);
            return 2;
        }
        free(path);
        if (c.list) {
            list_workloads(&list);
            bench_free_workloads(&list);
            return 0;
        }
    }
    const bench_workload **chosen = calloc((size_t)(list.count ? list.count : 1) * 8, sizeof(*chosen));
    char backends[MAX_BACKENDS][32];
    moak_format formats[MAX_FORMATS * 2];
    int n_work = roofline_only ? 0 : select_workloads(&c, &list, chosen);
    int n_back = select_backends(&c, backends);
    int n_fmt = select_formats(&c, formats);
    if (!chosen || n_work < 0 || n_fmt < 0) {
        free(chosen);
        bench_free_workloads(&list);
        return 2;
    }

    moak_hw_info hw = MOAK_HW_INFO_INIT;
    moak_status st = moak_hw_probe(&hw);
    if (st != MOAK_OK) {
        fprintf(stderr, "moak-bench: moak_hw_probe: %s\n", moak_status_str(st));
        return 2;
    }
    printf("moak-bench %s (library %s)\n", PACKAGE_VERSION, moak_version_string());
    tool_print_hw(stdout, &hw);
    double l3 = (double)tool_cache_total(&hw, 3), l2 = (double)tool_cache_total(&hw, 2);
    c.o.rotate_bytes = fmax(3.0 * (l3 + l2), (double)(1u << 30));
    printf("mode: %s", c.o.hot ? "hot (weights stay in cache)" : "cold");
    if (!c.o.hot)
        printf(" (each call reads bytes not touched for the last %.0f MiB)", c.o.rotate_bytes / 1048576.0);
    printf(", %d repeats\n\n", c.o.repeat);

    bench_roofline roof;
    memset(&roof, 0, sizeof(roof));
    if (!c.no_roofline) {
        if (!bench_measure_roofline(&hw, c.o.threads, &roof, err, sizeof(err))) {
            fprintf(stderr, "moak-bench: roofline: %s\n", err);
            return 2;
        }
        print_roofline(&roof);
    }
    if (roofline_only) {
        free(chosen);
        return 0;
    }

    int max_results = n_work * n_back * (n_fmt ? n_fmt : 1);
    bench_result *results = calloc((size_t)(max_results ? max_results : 1), sizeof(*results));
    int n_results = 0, errors = 0;
    if (!results)
        return 2;
    print_header();
    for (int b = 0; b < n_back; b++) {
        refusal_log log;
        memset(&log, 0, sizeof(log));
        snprintf(log.backend, sizeof(log.backend), "%.31s", backends[b]);
        moak_context_options opts = MOAK_CONTEXT_OPTIONS_INIT;
        opts.num_threads = c.o.threads;
        opts.flags = c.context_flags;
        opts.backends = strcmp(backends[b], "auto") == 0 ? NULL : backends[b];
        opts.verbose = opts.backends ? 1 : 0;
        opts.log_fn = capture_refusals;
        opts.log_user = &log;
        moak_context *ctx = NULL;
        st = moak_context_create(&opts, &ctx);
        if (st != MOAK_OK) {
            printf("%-24s backend %s: %s %s\n", "", backends[b], moak_status_str(st), moak_last_error(NULL));
            errors++;
            continue;
        }
        for (int i = 0; i < n_work; i++) {
            const bench_workload *w = chosen[i];
            int nf = n_fmt ? n_fmt : 1;
            for (int k = 0; k < nf; k++) {
                moak_format f = n_fmt ? formats[k] : w->format;
                char why[160];
                if (!bench_format_fits(w, f, why, sizeof(why))) {
                    printf("%-24.24s %-7s %-11.11s skipped: %s\n", w->name, moak_format_name(f), backends[b], why);
                    continue;
                }
                bench_result *r = &results[n_results++];
                log.last[0] = '\0';
                bench_run_workload(ctx, backends[b], w, f, &c.o, &roof, r);
                if (r->declined && log.last[0]) {
                    size_t used = strlen(r->message);
                    snprintf(r->message + used, sizeof(r->message) - used, ": %s", log.last);
                }
                errors += !r->ok;
                print_row(r);
                fflush(stdout);
            }
        }
        moak_context_destroy(ctx);
    }
    printf("\n%% of roofline = floor / median; floor = max(bytes / bandwidth, ops / peak) per op (bench/NOTES.md)\n");

    int status = errors ? 1 : 0;
    if (c.json_path && !bench_write_json(c.json_path, results, n_results, &roof, &hw, &c.o))
        status = 2;
    if (c.svg_path) {
        char subtitle[300];
        snprintf(subtitle, sizeof(subtitle), "%s, %d threads, %s; DRAM %.1f GB/s, fp32 %.0f GFLOP/s, int8 %.0f GOP/s",
                 hw.cpu_name, roof.threads, c.o.hot ? "hot" : "cold", roof.dram_gbps, roof.fp32_gops,
                 roof.int8_gops);
        if (!bench_write_svg_results(c.svg_path, results, n_results, "moak-bench: % of this machine's roofline",
                                     subtitle))
            status = 2;
    }
    free(results);
    free(chosen);
    bench_free_workloads(&list);
    return status;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "compare") == 0)
        return run_compare(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "roofline") == 0) {
        argv[1] = argv[0];
        return run_bench(argc - 1, argv + 1, true);
    }
    return run_bench(argc, argv, false);
}
