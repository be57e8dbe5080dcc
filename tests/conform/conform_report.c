/* moak-conform's table, JSON and JUnit XML (see conform_report.h). */
#include "config.h"

#include "conform_report.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "tool_support.h"

bool conform_report_add(conform_report *r, const conform_case *c, moak_format f, const char *backend,
                        const conform_result *res)
{
    if (r->count == r->capacity) {
        int cap = r->capacity ? 2 * r->capacity : 128;
        conform_record *items = realloc(r->items, (size_t)cap * sizeof(*items));
        if (!items)
            return false;
        r->items = items;
        r->capacity = cap;
    }
    conform_record *rec = &r->items[r->count++];
    rec->c = c;
    rec->format = f;
    snprintf(rec->backend, sizeof(rec->backend), "%s", backend);
    rec->res = *res;
    return true;
}

void conform_report_free(conform_report *r)
{
    free(r->items);
    r->items = NULL;
    r->count = r->capacity = 0;
}

void conform_report_counts(const conform_report *r, int counts[4])
{
    memset(counts, 0, 4 * sizeof(int));
    for (int i = 0; i < r->count; i++)
        counts[r->items[i].res.outcome]++;
}

/* ---- table ------------------------------------------------------------------------ */

void conform_print_header(FILE *out)
{
    fprintf(out, "%-9s %-7s %-36s %-44s %-7s %9s %8s %-8s %8s\n", "op", "format", "case", "shape", "backend",
            "max err", "bound", "result", "ms");
}

void conform_print_row(FILE *out, const conform_record *rec)
{
    char shape[160], name[112], err[32];
    const conform_result *res = &rec->res;
    conform_describe_shape(rec->c, shape, sizeof(shape));
    snprintf(name, sizeof(name), "%s/%s", rec->c->model, rec->c->name);
    if (res->outcome == CONFORM_PASS || (res->outcome == CONFORM_FAIL && res->ran_on[0] && res->max_err > 0))
        snprintf(err, sizeof(err), "%.2e", res->max_err);
    else
        snprintf(err, sizeof(err), "-");
    fprintf(out, "%-9s %-7s %-36.36s %-44.44s %-7s %9s %8.0e %-8s %8.2f\n", conform_op_name(rec->c->op),
            moak_format_name(rec->format), name, shape, rec->backend, err, res->bound,
            conform_outcome_name(res->outcome), res->seconds * 1e3);
    if (res->outcome != CONFORM_PASS && res->detail[0])
        fprintf(out, "          %s\n", res->detail);
}

void conform_print_summary(FILE *out, const conform_report *r)
{
    int counts[4];
    conform_report_counts(r, counts);
    for (int i = 0; i < r->n_backends; i++)
        if (!r->backends[i].tested && r->backends[i].note[0])
            fprintf(out, "backend %s not tested: %s\n", r->backends[i].name, r->backends[i].note);
    if (counts[CONFORM_FAIL]) {
        fprintf(out, "\nfailures:\n");
        for (int i = 0; i < r->count; i++) {
            const conform_record *rec = &r->items[i];
            if (rec->res.outcome == CONFORM_FAIL)
                fprintf(out, "  %s %s %s/%s on %s: %s\n", conform_op_name(rec->c->op), moak_format_name(rec->format),
                        rec->c->model, rec->c->name, rec->backend, rec->res.detail);
        }
    }
    fprintf(out, "\nseed %llu%s, %.1f s; %d declined (with a reason)\n", (unsigned long long)r->seed,
            r->quick ? " (--quick)" : "", r->seconds, counts[CONFORM_DECLINED]);
    /* The closing line in the form test runners read. */
    fprintf(out, "moak-conform: %d passed, %d failed, %d skipped\n", counts[CONFORM_PASS], counts[CONFORM_FAIL],
            counts[CONFORM_SKIPPED] + counts[CONFORM_DECLINED]);
}

/* ---- JSON ------------------------------------------------------------------------------ */

static json_t *case_json(const conform_record *rec)
{
    char shape[160];
    const conform_case *c = rec->c;
    const conform_result *res = &rec->res;
    conform_describe_shape(c, shape, sizeof(shape));
    json_t *o = json_object();
    json_object_set_new(o, "op", json_string(conform_op_name(c->op)));
    json_object_set_new(o, "format", json_string(moak_format_name(rec->format)));
    json_object_set_new(o, "model", json_string(c->model));
    json_object_set_new(o, "case", json_string(c->name));
    if (c->why[0])
        json_object_set_new(o, "why", json_string(c->why));
    json_object_set_new(o, "shape", json_string(shape));
    json_object_set_new(o, "backend", json_string(rec->backend));
    json_object_set_new(o, "ran_on", json_string(res->ran_on));
    json_object_set_new(o, "result", json_string(conform_outcome_name(res->outcome)));
    json_object_set_new(o, "max_err", json_real(res->max_err));
    json_object_set_new(o, "bound", json_real(res->bound));
    json_object_set_new(o, "seconds", json_real(res->seconds));
    json_object_set_new(o, "detail", json_string(res->detail));
    return o;
}

bool conform_write_json(const char *path, const conform_report *r, const moak_hw_info *hw)
{
    int counts[4];
    conform_report_counts(r, counts);
    json_t *root = json_object();
    json_object_set_new(root, "tool", json_string("moak-conform"));
    json_object_set_new(root, "moak_version", json_string(moak_version_string()));
    json_object_set_new(root, "moak_version_number", json_integer(moak_version()));
    json_object_set_new(root, "date", json_integer((json_int_t)time(NULL)));
    json_object_set_new(root, "seed", json_integer((json_int_t)r->seed));
    json_object_set_new(root, "quick", json_boolean(r->quick));
    json_object_set_new(root, "threads", json_integer(r->threads));
    json_object_set_new(root, "cases_file", json_string(r->cases_path ? r->cases_path : ""));
    json_object_set_new(root, "machine", tool_hw_json(hw));
    json_t *backends = tool_backends_json();
    size_t i;
    json_t *b;
    json_array_foreach(backends, i, b) {
        const char *name = json_string_value(json_object_get(b, "name"));
        bool tested = false;
        for (int k = 0; k < r->n_backends; k++)
            if (name && strcmp(r->backends[k].name, name) == 0)
                tested = r->backends[k].tested;
        json_object_set_new(b, "tested", json_boolean(tested));
    }
    json_object_set_new(root, "backends", backends);
    json_t *cases = json_array();
    for (int k = 0; k < r->count; k++)
        json_array_append_new(cases, case_json(&r->items[k]));
    json_object_set_new(root, "cases", cases);
    json_t *summary = json_object();
    json_object_set_new(summary, "passed", json_integer(counts[CONFORM_PASS]));
    json_object_set_new(summary, "failed", json_integer(counts[CONFORM_FAIL]));
    json_object_set_new(summary, "declined", json_integer(counts[CONFORM_DECLINED]));
    json_object_set_new(summary, "skipped", json_integer(counts[CONFORM_SKIPPED]));
    json_object_set_new(summary, "seconds", json_real(r->seconds));
    json_object_set_new(root, "summary", summary);
    int rc = json_dump_file(root, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0)
        fprintf(stderr, "moak-conform: cannot write %s\n", path);
    return rc == 0;
}

/* ---- JUnit XML ------------------------------------------------------------------------- */

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t')
                fputc(*s, f);
        }
    }
}

static void xml_property(FILE *f, const char *name, const char *value)
{
    fprintf(f, "      <property name=\"");
    xml_text(f, name);
    fprintf(f, "\" value=\"");
    xml_text(f, value);
    fprintf(f, "\"/>\n");
}

bool conform_write_junit(const char *path, const conform_report *r, const moak_hw_info *hw)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "moak-conform: cannot write %s\n", path);
        return false;
    }
    int counts[4];
    conform_report_counts(r, counts);
    char isa[512], seed[32];
    tool_isa_names(hw->isa, isa, sizeof(isa));
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)r->seed);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"moak-conform\" tests=\"%d\" failures=\"%d\" skipped=\"%d\" time=\"%.3f\">\n",
            r->count, counts[CONFORM_FAIL], counts[CONFORM_SKIPPED] + counts[CONFORM_DECLINED], r->seconds);
    for (int k = 0; k < r->n_backends; k++) {
        if (!r->backends[k].tested)
            continue;
        const char *name = r->backends[k].name;
        int tests = 0, failures = 0, skipped = 0;
        double seconds = 0.0;
        for (int i = 0; i < r->count; i++) {
            const conform_record *rec = &r->items[i];
            if (strcmp(rec->backend, name) != 0)
                continue;
            tests++;
            failures += rec->res.outcome == CONFORM_FAIL;
            skipped += rec->res.outcome == CONFORM_SKIPPED || rec->res.outcome == CONFORM_DECLINED;
            seconds += rec->res.seconds;
        }
        fprintf(f, "  <testsuite name=\"moak-conform.%s\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"%d\" "
                   "time=\"%.3f\">\n",
                name, tests, failures, skipped, seconds);
        fprintf(f, "    <properties>\n");
        xml_property(f, "moak_version", moak_version_string());
        xml_property(f, "cpu", hw->cpu_name);
        xml_property(f, "arch", hw->arch ? hw->arch : "");
        xml_property(f, "isa", isa);
        xml_property(f, "seed", seed);
        xml_property(f, "quick", r->quick ? "true" : "false");
        fprintf(f, "    </properties>\n");
        for (int i = 0; i < r->count; i++) {
            const conform_record *rec = &r->items[i];
            if (strcmp(rec->backend, name) != 0)
                continue;
            char shape[160], tcname[320];
            conform_describe_shape(rec->c, shape, sizeof(shape));
            snprintf(tcname, sizeof(tcname), "%s/%s %s [%s]", rec->c->model, rec->c->name,
                     moak_format_name(rec->format), shape);
            fprintf(f, "    <testcase classname=\"moak-conform.%s.%s\" name=\"", name, conform_op_name(rec->c->op));
            xml_text(f, tcname);
            fprintf(f, "\" time=\"%.6f\"", rec->res.seconds);
            if (rec->res.outcome == CONFORM_PASS) {
                fprintf(f, "/>\n");
                continue;
            }
            fprintf(f, ">\n");
            if (rec->res.outcome == CONFORM_FAIL) {
                fprintf(f, "      <failure message=\"");
                xml_text(f, rec->res.detail);
                fprintf(f, "\" type=\"bound\"/>\n");
            } else {
                fprintf(f, "      <skipped message=\"%s: ", conform_outcome_name(rec->res.outcome));
                xml_text(f, rec->res.detail);
                fprintf(f, "\"/>\n");
            }
            fprintf(f, "    </testcase>\n");
        }
        fprintf(f, "  </testsuite>\n");
    }
    fprintf(f, "</testsuites>\n");
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok)
        fprintf(stderr, "moak-conform: error writing %s\n", path);
    return ok;
}
