/*
 * bench_compare.h — `moak-bench compare BASE.json NEW.json`: a noise-aware
 * gate for a performance engineer's CI.
 *
 * Both files are Google Benchmark JSON (moak-bench's own or any Google
 * Benchmark program's).  Per run name, the median time and the min-max
 * spread come from the _median/_min/_max aggregates when present, else from
 * the repetitions.  Verdicts:
 *   regression  new median slower than base by more than the threshold AND
 *               the two spreads do not overlap (new min > base max): slower
 *               beyond anything either run's noise explains;
 *   faster      the mirror image (new max < base min, and beyond the threshold);
 *   noise       beyond the threshold but inside the spreads: not a verdict;
 *   same        within the threshold;
 *   new / gone  present in only one file.
 * The tool exits non-zero when any run is a regression.
 */
#ifndef MOAK_BENCH_COMPARE_H
#define MOAK_BENCH_COMPARE_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

typedef struct bench_entry {
    char name[200];
    double median_ns, min_ns, max_ns;
    int samples;                 /* repetitions seen */
    double roofline_pct;         /* from the median (moak-bench files), or -1 */
    char label[160];
} bench_entry;

typedef struct bench_entry_list {
    bench_entry *items;
    int count;
} bench_entry_list;

/* Read the benchmarks of a parsed document.  false (message in err) when it
 * has no "benchmarks" array. */
bool bench_entries_from_json(const json_t *root, bench_entry_list *list, char *err, size_t err_len);
bool bench_load_entries(const char *path, bench_entry_list *list, char *err, size_t err_len);
void bench_free_entries(bench_entry_list *list);

typedef enum bench_verdict {
    BENCH_SAME = 0,
    BENCH_NOISE,
    BENCH_FASTER,
    BENCH_REGRESSION,
    BENCH_NEW,
    BENCH_GONE
} bench_verdict;

const char *bench_verdict_name(bench_verdict v);

/* The verdict for one run; *ratio = new median / base median. */
bench_verdict bench_compare_entry(const bench_entry *base, const bench_entry *cur, double threshold_pct,
                                  double *ratio);

typedef struct bench_comparison {
    char name[200];
    const bench_entry *base;     /* NULL: new */
    const bench_entry *cur;      /* NULL: gone */
    double ratio;
    bench_verdict verdict;
} bench_comparison;

/* Compare every run; *out is malloc'ed (base order, then the new runs).
 * Returns how many regressed, or -1 when out of memory. */
int bench_compare_lists(const bench_entry_list *base, const bench_entry_list *cur, double threshold_pct,
                        bench_comparison **out, int *n_out);

/* The table a person reads at a glance. */
void bench_print_comparison(FILE *f, const bench_comparison *c, int n, double threshold_pct);

#endif
