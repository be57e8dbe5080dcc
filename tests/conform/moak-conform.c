/*
 * moak-conform — the conformance tool a chip vendor runs to prove a port.
 *
 * Every op x format x shape case (real model shapes from cases.json, edge
 * shapes, random shapes from the seed) runs on each chosen backend and on the
 * reference backend; each output is compared with the reference's under the
 * bound moak.h states for that op and format.  A NaN/Inf where the reference
 * is finite fails, and so does a backend that declines a case without saying
 * why.  Prints a table, writes JSON and JUnit XML, exits 1 on any failure.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conform_cases.h"
#include "conform_report.h"
#include "conform_run.h"
#include "tool_support.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moak-conform [--backend NAME[,NAME]|all] [--op LIST] [--format LIST] [--quick]\n"
            "                    [--seed N] [--random N] [--threads N] [--json FILE] [--junit FILE]\n"
            "                    [--data FILE] [--max-weight-mib N] [--allow-weight-expansion]\n"
            "                    [--list] [--perturb]\n"
            "\n"
            "Runs every case on the chosen backends (default: all available) and on \"ref\",\n"
            "and compares each output with the reference under the bounds of moak.h.\n"
            "  --backend   backends to test; \"all\" = every backend available here\n"
            "  --op        matmul,moe,route,attention,rmsnorm,rope,indexer (default: all)\n"
            "  --format    weight/KV formats to keep (f32,f16,bf16,q8_0,q4_0,i8_row,i4_g32,i4_g128)\n"
            "  --quick     the subset run by make check (well under a minute per backend)\n"
            "  --seed N    data and random shapes (default: fresh, printed for replay)\n"
            "  --random N  random shapes per op (default 3, 1 with --quick)\n"
            "  --data FILE the cases file (default: cases.json, also via MOAK_CONFORM_DATA)\n"
            "  --max-weight-mib N  largest MoE weight set to allocate (default 1536)\n"
            "  --allow-weight-expansion  let backends widen weights they cannot run as\n"
            "              given (MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION; oneDNN and Q4_0)\n"
            "  --list      print the cases and exit\n"
            "  --perturb   self-test of the tool: corrupt each output by 10x its bound;\n"
            "              every compared case must then fail (exit status 1)\n"
            "Exit status: 0 all passed, 1 a failure, 2 a usage or setup error.\n");
}

typedef struct options {
    char *backends;
    uint32_t op_mask;
    uint32_t format_mask;
    bool quick;
    bool seed_given;
    uint64_t seed;
    int random_per_op;
    int32_t threads;
    const char *json_path;
    const char *junit_path;
    const char *data_path;
    double max_weight_mib;
    bool list;
    bool perturb;
    uint32_t context_flags;
} options;

static bool parse_mask_ops(char *arg, uint32_t *mask)
{
    char *tok[CONFORM_OP_COUNT * 2];
    int n = tool_split_list(arg, tok, CONFORM_OP_COUNT * 2);
    *mask = 0;
    for (int i = 0; i < n; i++) {
        int op = conform_op_from_name(tok[i]);
        if (op < 0) {
            fprintf(stderr, "moak-conform: '%s' is not an op (matmul, moe, route, attention, rmsnorm, rope)\n", tok[i]);
            return false;
        }
        *mask |= 1u << op;
    }
    return n > 0;
}

static bool parse_mask_formats(char *arg, uint32_t *mask)
{
    char *tok[MOAK_FORMAT_COUNT * 2];
    int n = tool_split_list(arg, tok, MOAK_FORMAT_COUNT * 2);
    *mask = 0;
    for (int i = 0; i < n; i++) {
        moak_format f;
        if (moak_format_from_name(tok[i], &f) != MOAK_OK) {
            fprintf(stderr, "moak-conform: '%s' is not a format\n", tok[i]);
            return false;
        }
        *mask |= 1u << f;
    }
    return n > 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        {"backend", required_argument, NULL, 'b'}, {"op", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},  {"quick", no_argument, NULL, 'q'},
        {"seed", required_argument, NULL, 's'},    {"random", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'}, {"json", required_argument, NULL, 'j'},
        {"junit", required_argument, NULL, 'u'},   {"data", required_argument, NULL, 'd'},
        {"max-weight-mib", required_argument, NULL, 'm'}, {"list", no_argument, NULL, 'l'},
        {"perturb", no_argument, NULL, 'p'},       {"help", no_argument, NULL, 'h'},
        {"allow-weight-expansion", no_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->op_mask = (1u << CONFORM_OP_COUNT) - 1u;
    o->format_mask = (1u << MOAK_FORMAT_COUNT) - 1u;
    o->random_per_op = -1;
    o->max_weight_mib = 1536.0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (ch) {
        case 'b': o->backends = optarg; break;
        case 'o': if (!parse_mask_ops(optarg, &o->op_mask)) return 2; break;
        case 'f': if (!parse_mask_formats(optarg, &o->format_mask)) return 2; break;
        case 'q': o->quick = true; break;
        case 's': o->seed = strtoull(optarg, NULL, 10); o->seed_given = true; break;
        case 'r': o->random_per_op = atoi(optarg); break;
        case 't': o->threads = atoi(optarg); break;
        case 'j': o->json_path = optarg; break;
        case 'u': o->junit_path = optarg; break;
        case 'd': o->data_path = optarg; break;
        case 'm': o->max_weight_mib = atof(optarg); break;
        case 'l': o->list = true; break;
        case 'p': o->perturb = true; break;
        case 'x': o->context_flags |= MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moak-conform: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->random_per_op < 0)
        o->random_per_op = o->quick ? 1 : 3;
    if (!o->seed_given)
        o->seed = tool_fresh_seed();
    return -1;
}

/* Which backends to test: every available one for "all" (or no --backend),
 * else the named ones, each of which must be available. */
static bool choose_backends(const options *o, conform_report *rep, char names[][32], int *n_names)
{
    char list[256];
    char *tok[CONFORM_MAX_BACKENDS];
    int n_tok = 0;
    bool all = !o->backends || strcmp(o->backends, "all") == 0;
    if (!all) {
        snprintf(list, sizeof(list), "%s", o->backends);
        n_tok = tool_split_list(list, tok, CONFORM_MAX_BACKENDS);
    }
    *n_names = 0;
    rep->n_backends = 0;
    int32_t count = moak_backend_count();
    for (int32_t i = 0; i < count && rep->n_backends < CONFORM_MAX_BACKENDS; i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        if (moak_backend_query(i, &info) != MOAK_OK)
            continue;
        bool named = all;
        for (int k = 0; k < n_tok; k++)
            named |= strcmp(tok[k], info.name) == 0;
        int slot = rep->n_backends++;
        snprintf(rep->backends[slot].name, sizeof(rep->backends[slot].name), "%s", info.name);
        if (named && info.available) {
            rep->backends[slot].tested = true;
            snprintf(names[(*n_names)++], 32, "%s", info.name);
        } else if (named) {
            snprintf(rep->backends[slot].note, sizeof(rep->backends[slot].note), "%s",
                     info.reason[0] ? info.reason : "not available");
            if (!all) {
                fprintf(stderr, "moak-conform: backend %s is not available here: %s\n", info.name,
                        info.reason[0] ? info.reason : "(no reason given)");
                return false;
            }
        }
    }
    for (int k = 0; k < n_tok; k++) {
        bool known = false;
        for (int i = 0; i < rep->n_backends; i++)
            known |= strcmp(tok[k], rep->backends[i].name) == 0;
        if (!known) {
            fprintf(stderr, "moak-conform: '%s' is not a backend moak knows\n", tok[k]);
            return false;
        }
    }
    return *n_names > 0;
}

/* A seed per case and format that does not depend on which other cases run,
 * so --op or --format filters replay the same data. */
static uint64_t case_seed(uint64_t seed, const conform_case *c, moak_format f)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    const char *parts[2] = {c->model, c->name};
    for (int p = 0; p < 2; p++)
        for (const char *s = parts[p]; *s; s++)
            h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h = (h ^ (uint64_t)c->op) * 1099511628211ull;
    return (h ^ (uint64_t)f) * 1099511628211ull;
}

static void list_cases(const conform_case_list *cases)
{
    for (int i = 0; i < cases->count; i++) {
        const conform_case *c = &cases->items[i];
        char shape[160], name[112], formats[128] = "";
        size_t used = 0;
        conform_describe_shape(c, shape, sizeof(shape));
        for (int f = 0; f < MOAK_FORMAT_COUNT; f++)
            if (c->formats & (1u << f))
                used += (size_t)snprintf(formats + used, sizeof(formats) - used, "%s%s", used ? "," : "",
                                         moak_format_name((moak_format)f));
        snprintf(name, sizeof(name), "%s/%s", c->model, c->name);
        printf("%-9s %-40s %-50s %s\n", conform_op_name(c->op), name, shape, formats);
    }
}

/* Run one case in one format on the reference and on every backend. */
static bool run_one(const options *o, const conform_case *c, moak_format f, conform_backend *ref,
                    conform_backend **tested, int n_tested, conform_report *rep)
{
    conform_inputs in;
    conform_outputs ref_out, out;
    conform_result ref_res, res;
    char err[200];

    if (c->op == CONFORM_MOE && conform_moe_weight_bytes(c, f) > o->max_weight_mib * 1048576.0) {
        memset(&res, 0, sizeof(res));
        res.outcome = CONFORM_SKIPPED;
        res.bound = conform_bound(c->op, f);
        snprintf(res.detail, sizeof(res.detail), "%.0f MiB of %s weights is over --max-weight-mib %.0f",
                 conform_moe_weight_bytes(c, f) / 1048576.0, moak_format_name(f), o->max_weight_mib);
        for (int b = 0; b < n_tested; b++) {
            if (!conform_report_add(rep, c, f, tested[b]->name, &res))
                return false;
            conform_print_row(stdout, &rep->items[rep->count - 1]);
        }
        return true;
    }
    if (!conform_make_inputs(c, f, case_seed(o->seed, c, f), &in, err, sizeof(err))) {
        fprintf(stderr, "moak-conform: %s/%s %s: %s\n", c->model, c->name, moak_format_name(f), err);
        return false;
    }
    if (!conform_alloc_outputs(c, &in, &ref_out) || !conform_alloc_outputs(c, &in, &out)) {
        fprintf(stderr, "moak-conform: out of memory for outputs\n");
        conform_free_inputs(&in);
        return false;
    }
    conform_run_case(ref, c, &in, &ref_out, &ref_res);
    for (int b = 0; b < n_tested; b++) {
        if (ref_res.outcome != CONFORM_PASS) {
            /* Without a reference there is nothing to compare: a failure of ref. */
            res = ref_res;
            res.outcome = CONFORM_FAIL;
            snprintf(res.detail, sizeof(res.detail), "the reference failed: %.480s", ref_res.detail);
        } else {
            conform_run_case(tested[b], c, &in, &out, &res);
            if (res.outcome == CONFORM_PASS) {
                if (o->perturb)
                    conform_perturb(c, &in, &ref_out, &out);
                conform_judge(c, &in, &ref_out, &out, &res);
            }
        }
        if (!conform_report_add(rep, c, f, tested[b]->name, &res))
            return false;
        conform_print_row(stdout, &rep->items[rep->count - 1]);
        fflush(stdout);
    }
    conform_free_outputs(&ref_out);
    conform_free_outputs(&out);
    conform_free_inputs(&in);
    return true;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;

    char tried[1024];
    char *path = tool_find_data(o.data_path, "MOAK_CONFORM_DATA", "tests/conform/cases.json", tried, sizeof(tried));
    if (!path) {
        fprintf(stderr, "moak-conform: cannot find cases.json (tried %s); use --data FILE\n", tried);
        return 2;
    }
    conform_case_options copt = {o.quick, o.seed, o.random_per_op, o.op_mask, o.format_mask, o.max_weight_mib};
    conform_case_list cases;
    char err[512];
    if (!conform_load_cases(path, &copt, &cases, err, sizeof(err))) {
        fprintf(stderr, "moak-conform: %s\n", err);
        free(path);
        return 2;
    }
    if (o.list) {
        list_cases(&cases);
        conform_free_cases(&cases);
        free(path);
        return 0;
    }

    moak_hw_info hw = MOAK_HW_INFO_INIT;
    moak_status st = moak_hw_probe(&hw);
    if (st != MOAK_OK) {
        fprintf(stderr, "moak-conform: moak_hw_probe: %s\n", moak_status_str(st));
        return 2;
    }
    conform_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.seed = o.seed;
    rep.quick = o.quick;
    rep.threads = o.threads;
    rep.cases_path = path;
    char names[CONFORM_MAX_BACKENDS][32];
    int n_names = 0;
    if (!choose_backends(&o, &rep, names, &n_names)) {
        if (n_names == 0)
            fprintf(stderr, "moak-conform: no backend to test\n");
        return 2;
    }

    printf("moak-conform %s (library %s), seed %llu%s, cases from %s\n", PACKAGE_VERSION, moak_version_string(),
           (unsigned long long)o.seed, o.quick ? ", --quick" : "", path);
    tool_print_hw(stdout, &hw);
    printf("backends tested:");
    for (int i = 0; i < n_names; i++)
        printf(" %s", names[i]);
    printf("  (reference: ref)%s\n\n", o.perturb ? "  [--perturb: every output is corrupted on purpose]" : "");

    /* One context per backend for the whole run, and one for the reference. */
    conform_backend *ref = calloc(1, sizeof(*ref));
    conform_backend *tested[CONFORM_MAX_BACKENDS];
    int n_tested = 0;
    int status = 0;
    if (!ref || (st = conform_backend_open(ref, "ref", o.threads, o.context_flags)) != MOAK_OK) {
        fprintf(stderr, "moak-conform: cannot create the reference context: %s\n", moak_status_str(st));
        return 2;
    }
    for (int i = 0; i < n_names; i++) {
        conform_backend *b = calloc(1, sizeof(*b));
        if (!b || (st = conform_backend_open(b, names[i], o.threads, o.context_flags)) != MOAK_OK) {
            fprintf(stderr, "moak-conform: cannot create a context for %s: %s %s\n", names[i],
                    moak_status_str(st), moak_last_error(NULL));
            status = 1;
            free(b);
            continue;
        }
        tested[n_tested++] = b;
    }

    double t0 = tool_now();
    conform_print_header(stdout);
    for (int i = 0; i < cases.count && status != 2; i++) {
        const conform_case *c = &cases.items[i];
        for (int f = 0; f < MOAK_FORMAT_COUNT; f++) {
            if (!(c->formats & (1u << f)))
                continue;
            if (!run_one(&o, c, (moak_format)f, ref, tested, n_tested, &rep)) {
                status = 2;
                break;
            }
        }
    }
    rep.seconds = tool_now() - t0;
    printf("\n");
    conform_print_summary(stdout, &rep);

    int counts[4];
    conform_report_counts(&rep, counts);
    if (counts[CONFORM_FAIL] && status == 0)
        status = 1;
    if (o.json_path && !conform_write_json(o.json_path, &rep, &hw))
        status = status ? status : 2;
    if (o.junit_path && !conform_write_junit(o.junit_path, &rep, &hw))
        status = status ? status : 2;

    for (int i = 0; i < n_tested; i++) {
        conform_backend_close(tested[i]);
        free(tested[i]);
    }
    conform_backend_close(ref);
    free(ref);
    conform_report_free(&rep);
    conform_free_cases(&cases);
    free(path);
    return status;
}
