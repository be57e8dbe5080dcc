/*
 * bench_svg.h — moak-bench's charts, plain SVG a browser shows as is.
 *
 * Results: one horizontal bar per workload and backend, its length the % of
 * this machine's roofline reached, a line at 100 %, the bar coloured by
 * backend and labelled with the figure and what bounds the workload.
 * Compare: per run, a grey "before" bar and an "after" bar coloured by the
 * verdict (red regression, green faster, blue otherwise), both in % of the
 * roofline when the files carry it, else in speed relative to before.
 */
#ifndef MOAK_BENCH_SVG_H
#define MOAK_BENCH_SVG_H

#include <stdbool.h>

#include "bench_compare.h"
#include "bench_run.h"

bool bench_write_svg_results(const char *path, const bench_result *results, int n, const char *title,
                             const char *subtitle);
bool bench_write_svg_compare(const char *path, const bench_comparison *c, int n, const char *title);

#endif
