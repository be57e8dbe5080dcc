/* moak-info: what moak sees on this machine and what it will run.
 *
 * Prints the hardware probe (topology, caches, the ISA features the CPU and
 * OS support, those in use, and those MOAK_ISA_MAX took away) and every
 * backend moak knows (built, available, and why not), as text or, with
 * --json, as one JSON object.  Only the report goes to stdout; errors go to
 * stderr with a non-zero exit status.  Uses the public API only. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moak.h"

#ifdef MOAK_HAVE_JANSSON
#include <jansson.h>
#endif

static const char *const cache_names[MOAK_CACHE_LEVELS] = {"L1d", "L2", "L3", "L4"};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: moak-info [--json]\n"
            "Print the hardware moak detects (topology, caches, ISA features and which\n"
            "were capped by MOAK_ISA_MAX) and the backends built into this library,\n"
            "with whether each can run here and why not.\n"
            "\n"
            "  --json   one JSON object instead of text%s\n"
            "  --help   this text\n"
            "\n"
            "Environment: MOAK_ISA_MAX=scalar|avx2|avx512|neon|dotprod|i8mm caps the ISA\n"
            "features moak uses.\n",
#ifdef MOAK_HAVE_JANSSON
            ""
#else
            " (not available: built without jansson)"
#endif
    );
}

/* One backend's description, or false (and a message on stderr). */
static bool query_backend(int32_t index, moak_backend_info *info)
{
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    moak_status st = moak_backend_query(index, info);
    if (st != MOAK_OK) {
        fprintf(stderr, "moak-info: backend %d: %s: %s\n", (int)index, moak_status_str(st),
                moak_last_error(NULL));
        return false;
    }
    info->reason[sizeof info->reason - 1] = '\0';
    return true;
}

/* ------------------------------------------------------------------------ */
/* Text                                                                     */
/* ------------------------------------------------------------------------ */

static void print_size(uint64_t bytes)
{
    if (bytes >= (UINT64_C(1) << 30) && bytes % (UINT64_C(1) << 30) == 0)
        printf("%" PRIu64 " GiB", bytes >> 30);
    else if (bytes >= (UINT64_C(1) << 20) && bytes % (UINT64_C(1) << 20) == 0)
        printf("%" PRIu64 " MiB", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        printf("%" PRIu64 " KiB", bytes >> 10);
    else
        printf("%" PRIu64 " B", bytes);
}

static void print_isa_line(const char *label, uint64_t bits)
{
    printf("%-14s", label);
    if (bits == 0)
        printf(" (none)");
    for (int b = 0; b < 64; b++)
        if (bits & (UINT64_C(1) << b)) {
            const char *name = moak_isa_name(UINT64_C(1) << b);
            if (name)
                printf(" %s", name);
            else
                printf(" bit%d", b);
        }
    printf("\n");
}

static bool print_text(const moak_hw_info *hw)
{
    bool ok = true;
    printf("moak %s\n", moak_version_string());
    printf("%-14s %s (%s)\n", "cpu:", hw->cpu_name, hw->arch);
    printf("%-14s %d package%s, %d NUMA node%s, %d core%s, %d hardware thread%s, %d CPU kind%s\n",
           "topology:", hw->n_packages, hw->n_packages == 1 ? "" : "s", hw->n_numa_nodes,
           hw->n_numa_nodes == 1 ? "" : "s", hw->n_cores, hw->n_cores == 1 ? "" : "s", hw->n_pus,
           hw->n_pus == 1 ? "" : "s", hw->n_cpu_kinds, hw->n_cpu_kinds == 1 ? "" : "s");
    printf("%-14s", "caches:");
    bool any_cache = false;
    for (int l = 0; l < MOAK_CACHE_LEVELS; l++) {
        if (hw->cache_bytes[l] == 0)
            continue;
        printf("%s %s ", any_cache ? "," : "", cache_names[l]);
        print_size(hw->cache_bytes[l]);
        if (hw->cache_count[l] > 0)
            printf(" x %d", hw->cache_count[l]);
        any_cache = true;
    }
    printf("%s\n", any_cache ? "" : " (unknown)");
    print_isa_line("isa detected:", hw->isa_detected);
    print_isa_line("isa in use:", hw->isa);
    if (hw->isa_cap)
        printf("%-14s MOAK_ISA_MAX=%s\n", "isa cap:", hw->isa_cap);
    print_isa_line("isa capped:", hw->isa_detected & ~hw->isa);

    printf("backends:\n");
    const int32_t n = moak_backend_count();
    for (int32_t i = 0; i < n; i++) {
        moak_backend_info b;
        if (!query_backend(i, &b)) {
            ok = false;
            continue;
        }
        const char *state = b.available ? "available" : b.built ? "built, not available"
                                                                : "not built";
        /* one line per backend: what it is when usable, else why not */
        if (b.available)
            printf("  %-8s %-21s %s\n", b.name ? b.name : "?", state,
                   b.description ? b.description : "");
        else
            printf("  %-8s %-21s why: %s\n", b.name ? b.name : "?", state,
                   b.reason[0] ? b.reason : "(no reason given)");
        /* device backends list what they see, indented under their line */
        char devices[4096];
        if (b.built && moak_backend_devices(i, devices, sizeof devices) == MOAK_OK && devices[0]) {
            for (char *line = strtok(devices, "\n"); line; line = strtok(NULL, "\n"))
                printf("           %s\n", line);
        }
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

#ifdef MOAK_HAVE_JANSSON

static json_t *isa_array(uint64_t bits)
{
    json_t *array = json_array();
    for (int b = 0; b < 64; b++)
        if (bits & (UINT64_C(1) << b)) {
            const char *name = moak_isa_name(UINT64_C(1) << b);
            json_array_append_new(array, name ? json_string(name) : json_integer(b));
        }
    return array;
}

static bool print_json(const moak_hw_info *hw)
{
    bool ok = true;
    json_t *root = json_object();
    json_object_set_new(root, "moak_version", json_string(moak_version_string()));

    json_object_set_new(root, "cpu", json_pack("{s:s, s:s}", "name", hw->cpu_name, "arch", hw->arch));
    json_object_set_new(root, "topology",
                        json_pack("{s:i, s:i, s:i, s:i, s:i}", "packages", (int)hw->n_packages,
                                  "numa_nodes", (int)hw->n_numa_nodes, "cores", (int)hw->n_cores,
                                  "pus", (int)hw->n_pus, "cpu_kinds", (int)hw->n_cpu_kinds));
    json_t *caches = json_array();
    for (int l = 0; l < MOAK_CACHE_LEVELS; l++) {
        if (hw->cache_bytes[l] == 0)
            continue;
        json_array_append_new(caches, json_pack("{s:s, s:I, s:i}", "level", cache_names[l],
                                                "bytes", (json_int_t)hw->cache_bytes[l],
                                                "count", (int)hw->cache_count[l]));
    }
    json_object_set_new(root, "caches", caches);

    json_t *isa = json_object();
    json_object_set_new(isa, "detected", isa_array(hw->isa_detected));
    json_object_set_new(isa, "in_use", isa_array(hw->isa));
    json_object_set_new(isa, "capped", isa_array(hw->isa_detected & ~hw->isa));
    json_object_set_new(isa, "cap", hw->isa_cap ? json_string(hw->isa_cap) : json_null());
    json_object_set_new(root, "isa", isa);

    json_t *backends = json_array();
    const int32_t n = moak_backend_count();
    for (int32_t i = 0; i < n; i++) {
        moak_backend_info b;
        if (!query_backend(i, &b)) {
            ok = false;
            continue;
        }
        char devices[4096] = "";
        if (b.built && moak_backend_devices(i, devices, sizeof devices) != MOAK_OK)
            devices[0] = '\0';
        json_array_append_new(backends,
                              json_pack("{s:s, s:s, s:b, s:b, s:s, s:s}", "name", b.name ? b.name : "",
                                        "description", b.description ? b.description : "",
                                        "built", (int)(b.built != 0), "available",
                                        (int)(b.available != 0), "reason", b.reason, "devices", devices));
    }
    json_object_set_new(root, "backends", backends);

    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (text == NULL) {
        fprintf(stderr, "moak-info: could not encode the JSON report\n");
        return false;
    }
    fputs(text, stdout);
    fputc('\n', stdout);
    free(text);
    return ok;
}

#endif /* MOAK_HAVE_JANSSON */

int main(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "moak-info: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
#ifndef MOAK_HAVE_JANSSON
    if (json) {
        fprintf(stderr, "moak-info: --json is not available: this moak-info was built without "
                        "jansson (Debian: libjansson-dev, then reconfigure)\n");
        return 2;
    }
#endif

    moak_hw_info hw;
    memset(&hw, 0, sizeof hw);
    hw.struct_size = sizeof hw;
    moak_status st = moak_hw_probe(&hw);
    if (st != MOAK_OK) {
        fprintf(stderr, "moak-info: hardware probe failed: %s: %s\n", moak_status_str(st),
                moak_last_error(NULL));
        return 1;
    }

    bool ok;
#ifdef MOAK_HAVE_JANSSON
    ok = json ? print_json(&hw) : print_text(&hw);
#else
    ok = print_text(&hw);
#endif
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "moak-info: could not write the report\n");
        return 1;
    }
    return ok ? 0 : 1;
}
