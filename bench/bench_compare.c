/* The noise-aware compare of two benchmark files (see bench_compare.h). */
#include "config.h"

#include "bench_compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading -------------------------------------------------------------------------- */

static double unit_to_ns(const char *unit)
{
    if (!unit || strcmp(unit, "ns") == 0)
        return 1.0;
    if (strcmp(unit, "us") == 0)
        return 1e3;
    if (strcmp(unit, "ms") == 0)
        return 1e6;
    if (strcmp(unit, "s") == 0)
        return 1e9;
    return 1.0;
}

/* What one run name gathered while reading. */
typedef struct gathered {
    char name[200];
    double *samples;
    int n_samples, cap_samples;
    double agg_median, agg_min, agg_max, agg_mean; /* NAN when absent */
    double pct;
    char label[160];
} gathered;

static gathered *find_or_add(gathered **list, int *n, int *cap, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (strcmp((*list)[i].name, name) == 0)
            return &(*list)[i];
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 32;
        gathered *g = realloc(*list, (size_t)c * sizeof(*g));
        if (!g)
            return NULL;
        *list = g;
        *cap = c;
    }
    gathered *g = &(*list)[(*n)++];
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->agg_median = g->agg_min = g->agg_max = g->agg_mean = NAN;
    g->pct = -1.0;
    return g;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The run name of an entry: run_name when present, else name without an
 * aggregate's "_<aggregate_name>" suffix. */
static void entry_run_name(const json_t *e, char *buf, size_t len)
{
    const char *run = json_string_value(json_object_get(e, "run_name"));
    const char *name = json_string_value(json_object_get(e, "name"));
    const char *agg = json_string_value(json_object_get(e, "aggregate_name"));
    if (run) {
        snprintf(buf, len, "%s", run);
        return;
    }
    snprintf(buf, len, "%s", name ? name : "");
    if (agg) {
        size_t n = strlen(buf), a = strlen(agg);
        if (n > a + 1 && buf[n - a - 1] == '_' && strcmp(buf + n - a, agg) == 0)
            buf[n - a - 1] = '\0';
    }
}

bool bench_entries_from_json(const json_t *root, bench_entry_list *list, char *err, size_t err_len)
{
    memset(list, 0, sizeof(*list));
    const json_t *benchmarks = json_object_get(root, "benchmarks");
    if (!json_is_array(benchmarks)) {
        snprintf(err, err_len, "no \"benchmarks\" array (not Google Benchmark JSON)");
        return false;
    }
    gathered *g = NULL;
    int n = 0, cap = 0;
    bool ok = true;
    size_t i;
    const json_t *e;
    json_array_foreach(benchmarks, i, e) {
        char run[200];
        entry_run_name(e, run, sizeof(run));
        const json_t *t = json_object_get(e, "real_time");
        if (!run[0] || !json_is_number(t))
            continue;
        if (json_is_string(json_object_get(e, "error_message")))
            continue;
        double ns = json_number_value(t) * unit_to_ns(json_string_value(json_object_get(e, "time_unit")));
        gathered *x = find_or_add(&g, &n, &cap, run);
        if (!x) {
            ok = false;
            break;
        }
        const char *type = json_string_value(json_object_get(e, "run_type"));
        const char *agg = json_string_value(json_object_get(e, "aggregate_name"));
        if (type && strcmp(type, "aggregate") == 0) {
            if (agg && strcmp(agg, "median") == 0) {
                x->agg_median = ns;
                const json_t *pct = json_object_get(e, "roofline_pct");
                if (json_is_number(pct))
                    x->pct = json_number_value(pct);
            } else if (agg && strcmp(agg, "min") == 0) {
                x->agg_min = ns;
            } else if (agg && strcmp(agg, "max") == 0) {
                x->agg_max = ns;
            } else if (agg && strcmp(agg, "mean") == 0) {
                x->agg_mean = ns;
            }
            continue;
        }
        if (x->n_samples == x->cap_samples) {
            int c = x->cap_samples ? 2 * x->cap_samples : 8;
            double *s = realloc(x->samples, (size_t)c * sizeof(double));
            if (!s) {
                ok = false;
                break;
            }
            x->samples = s;
            x->cap_samples = c;
        }
        x->samples[x->n_samples++] = ns;
        const char *label = json_string_value(json_object_get(e, "label"));
        if (label)
            snprintf(x->label, sizeof(x->label), "%s", label);
        const json_t *pct = json_object_get(e, "roofline_pct");
        if (x->pct < 0.0 && json_is_number(pct) && x->n_samples == 1)
            x->pct = json_number_value(pct);
    }
    if (ok && n > 0) {
        list->items = calloc((size_t)n, sizeof(*list->items));
        ok = list->items != NULL;
    }
    for (int k = 0; ok && k < n; k++) {
        gathered *x = &g[k];
        bench_entry *out = &list->items[list->count++];
        snprintf(out->name, sizeof(out->name), "%s", x->name);
        snprintf(out->label, sizeof(out->label), "%s", x->label);
        out->samples = x->n_samples;
        out->roofline_pct = x->pct;
        double med = NAN, lo = NAN, hi = NAN;
        if (x->n_samples > 0) {
            qsort(x->samples, (size_t)x->n_samples, sizeof(double), cmp_double);
            int m = x->n_samples;
            med = m % 2 ? x->samples[m / 2] : 0.5 * (x->samples[m / 2 - 1] + x->samples[m / 2]);
            lo = x->samples[0];
            hi = x->samples[m - 1];
        }
        out->median_ns = !isnan(x->agg_median) ? x->agg_median : !isnan(med) ? med : x->agg_mean;
        out->min_ns = !isnan(x->agg_min) ? x->agg_min : !isnan(lo) ? lo : out->median_ns;
        out->max_ns = !isnan(x->agg_max) ? x->agg_max : !isnan(hi) ? hi : out->median_ns;
    }
    for (int k = 0; k < n; k++)
        free(g[k].samples);
    free(g);
    if (!ok) {
        snprintf(err, err_len, "out of memory");
        bench_free_entries(list);
    }
    return ok;
}

bool bench_load_entries(const char *path, bench_entry_list *list, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(err, err_len, "%s:%d: %s", path, jerr.line, jerr.text);
        memset(list, 0, sizeof(*list));
        return false;
    }
    bool ok = bench_entries_from_json(root, list, err, err_len);
    json_decref(root);
    return ok;
}

void bench_free_entries(bench_entry_list *list)
{
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* ---- verdicts ---------------------------------------------------------------------------- */

const char *bench_verdict_name(bench_verdict v)
{
    switch (v) {
    case BENCH_SAME: return "same";
    case BENCH_NOISE: return "noise";
    case BENCH_FASTER: return "faster";
    case BENCH_REGRESSION: return "REGRESSION";
    case BENCH_NEW: return "new";
    case BENCH_GONE: return "gone";
    }
    return "?";
}

bench_verdict bench_compare_entry(const bench_entry *base, const bench_entry *cur, double threshold_pct,
                                  double *ratio)
{
    *ratio = base->median_ns > 0.0 ? cur->median_ns / base->median_ns : NAN;
    if (!(*ratio > 0.0))
        return BENCH_NOISE;
    double limit = threshold_pct / 100.0;
    if (fabs(*ratio - 1.0) <= limit)
        return BENCH_SAME;
    if (*ratio > 1.0)
        return cur->min_ns > base->max_ns ? BENCH_REGRESSION : BENCH_NOISE;
    return cur->max_ns < base->min_ns ? BENCH_FASTER : BENCH_NOISE;
}

static const bench_entry *find_entry(const bench_entry_list *list, const char *name)
{
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->items[i].name, name) == 0)
            return &list->items[i];
    return NULL;
}

int bench_compare_lists(const bench_entry_list *base, const bench_entry_list *cur, double threshold_pct,
                        bench_comparison **out, int *n_out)
{
    int cap = base->count + cur->count, n = 0, regressions = 0;
    bench_comparison *c = calloc((size_t)(cap ? cap : 1), sizeof(*c));
    *out = NULL;
    *n_out = 0;
    if (!c)
        return -1;
    for (int i = 0; i < base->count; i++) {
        bench_comparison *x = &c[n++];
        snprintf(x->name, sizeof(x->name), "%s", base->items[i].name);
        x->base = &base->items[i];
        x->cur = find_entry(cur, x->name);
        if (!x->cur) {
            x->verdict = BENCH_GONE;
            x->ratio = NAN;
            continue;
        }
        x->verdict = bench_compare_entry(x->base, x->cur, threshold_pct, &x->ratio);
        regressions += x->verdict == BENCH_REGRESSION;
    }
    for (int i = 0; i < cur->count; i++) {
        if (find_entry(base, cur->items[i].name))
            continue;
        bench_comparison *x = &c[n++];
        snprintf(x->name, sizeof(x->name), "%s", cur->items[i].name);
        x->cur = &cur->items[i];
        x->verdict = BENCH_NEW;
        x->ratio = NAN;
    }
    *out = c;
    *n_out = n;
    return regressions;
}

static void print_time(FILE *f, double ns)
{
    if (ns >= 1e9)
        fprintf(f, "%9.3f s ", ns / 1e9);
    else if (ns >= 1e6)
        fprintf(f, "%9.3f ms", ns / 1e6);
    else if (ns >= 1e3)
        fprintf(f, "%9.2f us", ns / 1e3);
    else
        fprintf(f, "%9.1f ns", ns);
}

void bench_print_comparison(FILE *f, const bench_comparison *c, int n, double threshold_pct)
{
    int counts[6] = {0};
    fprintf(f, "%-44s %12s %12s %8s %8s  %s\n", "benchmark", "base median", "new median", "change", "spread",
            "verdict");
    for (int i = 0; i < n; i++) {
        const bench_comparison *x = &c[i];
        counts[x->verdict]++;
        fprintf(f, "%-44.44s ", x->name);
        if (x->base)
            print_time(f, x->base->median_ns);
        else
            fprintf(f, "%12s", "-");
        fprintf(f, " ");
        if (x->cur)
            print_time(f, x->cur->median_ns);
        else
            fprintf(f, "%12s", "-");
        if (x->base && x->cur && x->ratio > 0.0) {
            /* The noise: the wider of the two runs' spreads, relative to its median. */
            double sb = x->base->median_ns > 0 ? (x->base->max_ns - x->base->min_ns) / x->base->median_ns : 0;
            double sn = x->cur->median_ns > 0 ? (x->cur->max_ns - x->cur->min_ns) / x->cur->median_ns : 0;
            fprintf(f, " %+7.1f%% %7.1f%%  %s\n", 100.0 * (x->ratio - 1.0), 100.0 * (sb > sn ? sb : sn),
                    bench_verdict_name(x->verdict));
        } else {
            fprintf(f, " %8s %8s  %s\n", "", "", bench_verdict_name(x->verdict));
        }
    }
    fprintf(f, "\nthreshold %.1f%%: %d regression(s), %d faster, %d within noise, %d same, %d new, %d gone\n",
            threshold_pct, counts[BENCH_REGRESSION], counts[BENCH_FASTER], counts[BENCH_NOISE], counts[BENCH_SAME],
            counts[BENCH_NEW], counts[BENCH_GONE]);
}
