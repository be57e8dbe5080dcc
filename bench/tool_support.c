/* Pieces shared by moak-bench and moak-conform: see tool_support.h. */
#include "config.h"

#include "tool_support.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Where the build put the sources and where `make install` puts data; set by
 * the tools' automake fragments. */
#ifndef MOAK_TOOLS_SRCDIR
#define MOAK_TOOLS_SRCDIR "."
#endif
#ifndef MOAK_TOOLS_DATADIR
#define MOAK_TOOLS_DATADIR "/usr/local/share/moak"
#endif

static int readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fclose(f);
    return 1;
}

static void note_tried(char *tried, size_t tried_len, const char *path)
{
    if (!tried || tried_len == 0)
        return;
    size_t used = strlen(tried);
    if (used + 3 < tried_len)
        snprintf(tried + used, tried_len - used, "%s%s", used ? ", " : "", path);
}

static char *try_path(const char *path, char *tried, size_t tried_len)
{
    if (readable(path))
        return strdup(path);
    note_tried(tried, tried_len, path);
    return NULL;
}

char *tool_find_data(const char *explicit_path, const char *env_var,
                     const char *src_relpath, char *tried, size_t tried_len)
{
    char path[PATH_MAX];
    char *found;
    if (tried && tried_len)
        tried[0] = '\0';
    if (explicit_path)
        return try_path(explicit_path, tried, tried_len);
    const char *env = env_var ? getenv(env_var) : NULL;
    if (env && *env && (found = try_path(env, tried, tried_len)))
        return found;

    const char *base = strrchr(src_relpath, '/');
    base = base ? base + 1 : src_relpath;
    /* Next to the executable: a relocated or unpacked tool finds its data. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        size_t dir_len = slash ? (size_t)(slash - exe) : 0, base_len = strlen(base);
        if (slash && dir_len + base_len + 2 <= sizeof(path)) {
            memcpy(path, exe, dir_len);
            path[dir_len] = '/';
            memcpy(path + dir_len + 1, base, base_len + 1);
            if ((found = try_path(path, tried, tried_len)))
                return found;
        }
    }
    snprintf(path, sizeof(path), "%s/%s", MOAK_TOOLS_SRCDIR, src_relpath);
    if ((found = try_path(path, tried, tried_len)))
        return found;
    snprintf(path, sizeof(path), "%s/%s", MOAK_TOOLS_DATADIR, base);
    return try_path(path, tried, tried_len);
}

double tool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- random numbers ---------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void tool_rng_seed(tool_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** */
uint64_t tool_rng_next(tool_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tool_rng_uniform(tool_rng *rng, double lo, double hi)
{
    /* 53 random bits -> [0, 1) */
    double u = (double)(tool_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

int64_t tool_rng_range(tool_rng *rng, int64_t lo, int64_t hi)
{
    if (hi <= lo)
        return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(tool_rng_next(rng) % span);
}

void tool_rng_fill(tool_rng *rng, float *dst, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) {
        float v;
        do
            v = (float)tool_rng_uniform(rng, lo, hi);
        while (v == 0.0f);
        dst[i] = v;
    }
}

uint64_t tool_fresh_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * UINT64_C(1000000007) ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 32);
    /* Keep seeds short enough to retype. */
    return splitmix64(&x) % UINT64_C(1000000000);
}

/* ---- machine and backends -------------------------------------------------------- */

void tool_isa_names(uint64_t mask, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int bit = 0; bit < 64; bit++) {
        uint64_t b = UINT64_C(1) << bit;
        if (!(mask & b))
            continue;
        const char *name = moak_isa_name(b);
        if (!name)
            continue;
        if (used + strlen(name) + 2 >= len)
            break;
        used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", name);
    }
}

uint64_t tool_cache_total(const moak_hw_info *hw, int level)
{
    if (level < 1 || level > MOAK_CACHE_LEVELS)
        return 0;
    uint64_t count = hw->cache_count[level - 1] > 0 ? (uint64_t)hw->cache_count[level - 1] : 1;
    return hw->cache_bytes[level - 1] * count;
}

static json_t *isa_array(uint64_t mask)
{
    json_t *a = json_array();
    for (int bit = 0; bit < 64; bit++) {
        uint64_t b = UINT64_C(1) << bit;
        const char *name = (mask & b) ? moak_isa_name(b) : NULL;
        if (name)
            json_array_append_new(a, json_string(name));
    }
    return a;
}

json_t *tool_hw_json(const moak_hw_info *hw)
{
    json_t *o = json_object();
    json_object_set_new(o, "arch", json_string(hw->arch ? hw->arch : ""));
    json_object_set_new(o, "cpu_name", json_string(hw->cpu_name));
    json_object_set_new(o, "packages", json_integer(hw->n_packages));
    json_object_set_new(o, "numa_nodes", json_integer(hw->n_numa_nodes));
    json_object_set_new(o, "cores", json_integer(hw->n_cores));
    json_object_set_new(o, "pus", json_integer(hw->n_pus));
    json_object_set_new(o, "cpu_kinds", json_integer(hw->n_cpu_kinds));
    json_t *caches = json_array();
    for (int i = 0; i < MOAK_CACHE_LEVELS; i++) {
        if (!hw->cache_bytes[i])
            continue;
        json_t *c = json_object();
        json_object_set_new(c, "level", json_integer(i + 1));
        json_object_set_new(c, "bytes", json_integer((json_int_t)hw->cache_bytes[i]));
        json_object_set_new(c, "count", json_integer(hw->cache_count[i]));
        json_array_append_new(caches, c);
    }
    json_object_set_new(o, "caches", caches);
    json_object_set_new(o, "isa_detected", isa_array(hw->isa_detected));
    json_object_set_new(o, "isa", isa_array(hw->isa));
    json_object_set_new(o, "isa_cap", hw->isa_cap ? json_string(hw->isa_cap) : json_null());
    return o;
}

json_t *tool_backends_json(void)
{
    json_t *a = json_array();
    int32_t n = moak_backend_count();
    for (int32_t i = 0; i < n; i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        if (moak_backend_query(i, &info) != MOAK_OK)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(info.name ? info.name : ""));
        json_object_set_new(o, "built", json_boolean(info.built));
        json_object_set_new(o, "available", json_boolean(info.available));
        json_object_set_new(o, "reason", json_string(info.reason));
        json_array_append_new(a, o);
    }
    return a;
}

static void print_bytes(FILE *out, uint64_t b)
{
    if (b >= (UINT64_C(1) << 20))
        fprintf(out, "%.0f MiB", (double)b / (1 << 20));
    else
        fprintf(out, "%.0f KiB", (double)b / 1024);
}

void tool_print_hw(FILE *out, const moak_hw_info *hw)
{
    char isa[512];
    fprintf(out, "machine: %s (%s), %d package(s), %d NUMA node(s), %d cores, %d threads\n",
            hw->cpu_name[0] ? hw->cpu_name : "unknown CPU", hw->arch ? hw->arch : "?",
            (int)hw->n_packages, (int)hw->n_numa_nodes, (int)hw->n_cores, (int)hw->n_pus);
    fprintf(out, "caches:");
    for (int i = 0; i < MOAK_CACHE_LEVELS; i++) {
        if (!hw->cache_bytes[i])
            continue;
        fprintf(out, " L%d ", i + 1);
        print_bytes(out, hw->cache_bytes[i]);
        fprintf(out, " x%d", (int)hw->cache_count[i]);
    }
    fprintf(out, "\n");
    tool_isa_names(hw->isa, isa, sizeof(isa));
    fprintf(out, "isa used: %s", isa[0] ? isa : "(scalar)");
    if (hw->isa_cap)
        fprintf(out, "  (capped by MOAK_ISA_MAX=%s)", hw->isa_cap);
    fprintf(out, "\n");
}

int tool_split_list(char *list, char **tokens, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*t)
            tokens[n++] = t;
    }
    return n;
}
