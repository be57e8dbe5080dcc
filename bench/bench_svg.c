/* moak-bench's SVG charts (see bench_svg.h). */
#include "config.h"

#include "bench_svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench_json.h"

/* Layout, in SVG user units (pixels). */
enum { LABEL_W = 330, PLOT_W = 520, VALUE_W = 230, ROW_H = 22, TOP = 74, BAR_H = 15 };

static void text_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char *backend_colour(const char *name)
{
    static const struct {
        const char *name, *colour;
    } colours[] = {
        {"avx512", "#1f77b4"}, {"avx2", "#2ca02c"}, {"neon", "#9467bd"}, {"onednn", "#ff7f0e"},
        {"opencl", "#8c564b"}, {"ref", "#7f7f7f"},  {"auto", "#17becf"},
    };
    for (size_t i = 0; i < sizeof(colours) / sizeof(colours[0]); i++)
        if (strncmp(name, colours[i].name, strlen(colours[i].name)) == 0)
            return colours[i].colour;
    return "#bcbd22";
}

/* The header, the axis and the grid for a chart of `rows` rows and an x axis
 * running to `x_max` (in %).  Returns the file, or NULL. */
static FILE *begin(const char *path, int rows, double x_max, const char *title, const char *subtitle,
                   const char *axis)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "moak-bench: cannot write %s\n", path);
        return NULL;
    }
    int width = LABEL_W + PLOT_W + VALUE_W, height = TOP + rows * ROW_H + 40;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n",
            width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">");
    text_escaped(f, title);
    fprintf(f, "</text>\n<text x=\"10\" y=\"42\" fill=\"#555\">");
    text_escaped(f, subtitle ? subtitle : "");
    fprintf(f, "</text>\n");
    /* Grid every 25 %, the 100 % line bold. */
    for (int g = 0; g <= (int)x_max; g += 25) {
        double x = LABEL_W + PLOT_W * g / x_max;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%s\"/>\n", x,
                TOP - 6, x, TOP + rows * ROW_H, g == 100 ? "#d62728" : "#ddd", g == 100 ? "1.5" : "1");
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%d%%</text>\n", x, TOP - 10, g);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">", LABEL_W + PLOT_W / 2,
            TOP + rows * ROW_H + 24);
    text_escaped(f, axis);
    fprintf(f, "</text>\n");
    return f;
}

static void bar(FILE *f, double y, double value, double x_max, const char *colour, const char *tip)
{
    double v = value < 0.0 ? 0.0 : value > x_max ? x_max : value;
    fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>", LABEL_W, y,
            PLOT_W * v / x_max, BAR_H, colour);
    text_escaped(f, tip);
    fprintf(f, "</title></rect>\n");
}

static void label(FILE *f, double x, double y, const char *anchor, const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", x, y, anchor);
    text_escaped(f, s);
    fprintf(f, "</text>\n");
}

static bool end(FILE *f, const char *path)
{
    fprintf(f, "</svg>\n");
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok)
        fprintf(stderr, "moak-bench: error writing %s\n", path);
    return ok;
}

static double axis_max(double largest)
{
    double m = 100.0;
    while (m < largest && m < 400.0)
        m += 25.0;
    return m;
}

bool bench_write_svg_results(const char *path, const bench_result *results, int n, const char *title,
                             const char *subtitle)
{
    double largest = 0.0;
    int rows = 0;
    for (int i = 0; i < n; i++) {
        if (results[i].ok && !results[i].declined) {
            rows++;
            largest = results[i].pct > largest ? results[i].pct : largest;
        }
    }
    double x_max = axis_max(largest);
    FILE *f = begin(path, rows, x_max, title, subtitle, "% of this machine's roofline reached (floor / median time)");
    if (!f)
        return false;
    int row = 0;
    for (int i = 0; i < n; i++) {
        const bench_result *r = &results[i];
        if (!r->ok || r->declined)
            continue;
        char name[200], value[160], tip[400];
        double y = TOP + row * ROW_H;
        bench_run_name(r, name, sizeof(name));
        snprintf(value, sizeof(value), "%.0f%% (%s-bound) on %s", r->pct, r->floor.bound, r->ran_on);
        snprintf(tip, sizeof(tip), "%s: median %.3g ms, floor %.3g ms, %.1f GB/s, %.1f GOP/s", name, r->median * 1e3,
                 r->floor.seconds * 1e3, r->median > 0 ? r->count.bytes / r->median / 1e9 : 0.0,
                 r->median > 0 ? r->count.ops / r->median / 1e9 : 0.0);
        label(f, LABEL_W - 8, y + BAR_H - 3, "end", name);
        bar(f, y, r->pct, x_max, backend_colour(r->ran_on), tip);
        label(f, LABEL_W + PLOT_W * fmin(r->pct, x_max) / x_max + 6, y + BAR_H - 3, "start", value);
        row++;
    }
    return end(f, path);
}

bool bench_write_svg_compare(const char *path, const bench_comparison *c, int n, const char *title)
{
    /* % of roofline when every compared run has it, else speed relative to before. */
    bool pct = true;
    int rows = 0;
    double largest = 0.0;
    for (int i = 0; i < n; i++) {
        if (!c[i].base || !c[i].cur)
            continue;
        rows += 2;
        pct &= c[i].base->roofline_pct > 0.0 && c[i].cur->roofline_pct > 0.0;
    }
    for (int i = 0; i < n; i++) {
        if (!c[i].base || !c[i].cur)
            continue;
        double b = pct ? c[i].base->roofline_pct : 100.0;
        double a = pct ? c[i].cur->roofline_pct : 100.0 / c[i].ratio;
        largest = fmax(largest, fmax(a, b));
    }
    double x_max = axis_max(largest);
    FILE *f = begin(path, rows, x_max, title, "grey: before; colour: after (red regression, green faster, blue otherwise)",
                    pct ? "% of the roofline reached" : "speed relative to before (before = 100%)");
    if (!f)
        return false;
    int row = 0;
    for (int i = 0; i < n; i++) {
        const bench_comparison *x = &c[i];
        if (!x->base || !x->cur)
            continue;
        double before = pct ? x->base->roofline_pct : 100.0;
        double after = pct ? x->cur->roofline_pct : 100.0 / x->ratio;
        const char *colour = x->verdict == BENCH_REGRESSION ? "#d62728" : x->verdict == BENCH_FASTER ? "#2ca02c"
                                                                                                    : "#1f77b4";
        char value[96], tip[300];
        double y = TOP + row * ROW_H;
        label(f, LABEL_W - 8, y + BAR_H - 3, "end", x->name);
        snprintf(tip, sizeof(tip), "before: median %.4g us", x->base->median_ns / 1e3);
        bar(f, y, before, x_max, "#b0b0b0", tip);
        snprintf(value, sizeof(value), "%.0f%%", before);
        label(f, LABEL_W + PLOT_W * fmin(before, x_max) / x_max + 6, y + BAR_H - 3, "start", value);
        y += ROW_H;
        snprintf(tip, sizeof(tip), "after: median %.4g us (%+.1f%%), %s", x->cur->median_ns / 1e3,
                 100.0 * (x->ratio - 1.0), bench_verdict_name(x->verdict));
        bar(f, y, after, x_max, colour, tip);
        snprintf(value, sizeof(value), "%.0f%%  time %+.1f%%  %s", after, 100.0 * (x->ratio - 1.0),
                 bench_verdict_name(x->verdict));
        label(f, LABEL_W + PLOT_W * fmin(after, x_max) / x_max + 6, y + BAR_H - 3, "start", value);
        row += 2;
    }
    return end(f, path);
}
