/* testutil.c — RNG, random fills, poisoning, the error metric, reporting and
 * the backend loop shared by every moak test.  See testutil.h. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid */

#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *test_name = "test";
static uint64_t seed;
static uint64_t rng_state[4];
static int n_failures;
static int n_lines;

/* ---- RNG ---------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t t_rand_u64(void)
{
    uint64_t *s = rng_state;
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

double t_uniform(double lo, double hi)
{
    /* 53 random bits -> [0, 1) */
    double u = (double)(t_rand_u64() >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

int64_t t_rand_int(int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(t_rand_u64() % span);
}

static int have_spare_normal;
static double spare_normal;

double t_normal(void)
{
    /* Box-Muller gives two values per draw; u1 in (0, 1] so log() is finite. */
    if (have_spare_normal) {
        have_spare_normal = 0;
        return spare_normal;
    }
    double u1 = 1.0 - t_uniform(0.0, 1.0);
    double u2 = t_uniform(0.0, 1.0);
    double r = sqrt(-2.0 * log(u1));
    spare_normal = r * sin(6.283185307179586 * u2);
    have_spare_normal = 1;
    return r * cos(6.283185307179586 * u2);
}

void t_fill_normal(float *x, size_t n, double stddev)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        do
            v = (float)(t_normal() * stddev);
        while (v == 0.0f);
        x[i] = v;
    }
}

void t_fill_uniform(float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        do
            v = (float)t_uniform(lo, hi);
        while (v == 0.0f);
        x[i] = v;
    }
}

void t_shuffle_i32(int32_t *v, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        v[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)t_rand_int(0, i);
        int32_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* ---- memory ------------------------------------------------------------------- */

void t_poison_f32(float *x, size_t n)
{
    const uint32_t quiet_nan = UINT32_C(0x7FC0DEAD);
    for (size_t i = 0; i < n; i++)
        memcpy(&x[i], &quiet_nan, sizeof(float));
}

void t_poison_bytes(void *p, size_t n) { memset(p, 0xA5, n); }

void *t_malloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        t_die("out of memory allocating %zu bytes", bytes);
    return p;
}

void *t_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        t_die("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

float *t_alloc_f32(size_t n) { return t_malloc(n * sizeof(float)); }
double *t_alloc_f64(size_t n) { return t_malloc(n * sizeof(double)); }

/* ---- error metric ------------------------------------------------------------- */

double t_row_error(const float *y, const double *ref, int64_t n)
{
    double sum_sq = 0.0, max_diff = 0.0;
    for (int64_t j = 0; j < n; j++) {
        if (!isfinite(y[j]) && isfinite(ref[j]))
            return INFINITY;
        double d = fabs((double)y[j] - ref[j]);
        if (d > max_diff)
            max_diff = d;
        sum_sq += ref[j] * ref[j];
    }
    double rms = sqrt(sum_sq / (double)(n > 0 ? n : 1));
    if (rms == 0.0)
        return max_diff == 0.0 ? 0.0 : INFINITY;
    return max_diff / rms;
}

double t_max_row_error(const float *y, const double *ref, int64_t rows, int64_t n)
{
    if (n < MOAK_BOUND_MIN_ROW) {
        /* A short row's rms can vanish by cancellation: measure every row
         * against the rms of the whole output, as moak.h says. */
        double sum_sq = 0.0, max_diff = 0.0;
        for (int64_t i = 0; i < rows * n; i++) {
            if (!isfinite(y[i]) && isfinite(ref[i]))
                return INFINITY;
            double d = fabs((double)y[i] - ref[i]);
            if (d > max_diff)
                max_diff = d;
            sum_sq += ref[i] * ref[i];
        }
        double rms = sqrt(sum_sq / (double)(rows * n > 0 ? rows * n : 1));
        if (rms == 0.0)
            return max_diff == 0.0 ? 0.0 : INFINITY;
        return max_diff / rms;
    }
    double worst = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        double e = t_row_error(y + r * n, ref + r * n, n);
        if (!(e <= worst))
            worst = e;
    }
    return worst;
}

/* ---- reporting ------------------------------------------------------------------ */

static void print_level(void)
{
    moak_hw_info hw = MOAK_HW_INFO_INIT;
    if (moak_hw_probe(&hw) != MOAK_OK)
        t_die("moak_hw_probe failed: %s", moak_last_error(NULL));
    const char *cap_env = getenv("MOAK_ISA_MAX");
    printf("# %s: seed %llu (replay with MOAK_TEST_SEED=%llu), %s, isa cap %s\n", test_name,
           (unsigned long long)seed, (unsigned long long)seed, hw.arch ? hw.arch : "?",
           hw.isa_cap ? hw.isa_cap : "none");
    if (cap_env && *cap_env) {
        /* A level that the probe ignores would run the same code twice and
         * claim to have tested a lower ISA. */
        if (!hw.isa_cap || strcmp(hw.isa_cap, cap_env) != 0)
            t_fail("MOAK_ISA_MAX=%s but the probe reports cap %s", cap_env,
                   hw.isa_cap ? hw.isa_cap : "(none)");
        if ((hw.isa & ~hw.isa_detected) != 0)
            t_fail("probe: isa in use 0x%llx has bits the CPU lacks (detected 0x%llx)",
                   (unsigned long long)hw.isa, (unsigned long long)hw.isa_detected);
    }
}

void t_init(const char *name)
{
    test_name = name;
    const char *s = getenv("MOAK_TEST_SEED");
    if (s && *s) {
        seed = strtoull(s, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * UINT64_C(1000000007)) ^ (uint64_t)ts.tv_nsec ^
               ((uint64_t)getpid() << 32);
    }
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng_state[i] = splitmix64(&x);
    have_spare_normal = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    print_level();
}

uint64_t t_seed(void) { return seed; }

void t_report(const char *backend, const char *ran, const char *op, const char *format,
              const char *shape, double err, double bound)
{
    int ok = err <= bound;
    char who[80];
    if (ran && *ran && strcmp(ran, backend) != 0)
        snprintf(who, sizeof(who), "%s->%s", backend, ran);
    else
        snprintf(who, sizeof(who), "%s", backend);
    printf("%-14s %-10s %-8s %-44s err=%.3e bound=%.1e %s\n", who, op, format, shape, err,
           bound, ok ? "ok" : "FAIL");
    n_lines++;
    if (!ok)
        n_failures++;
}

void t_check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" %s\n", ok ? "ok" : "FAIL");
    n_lines++;
    if (!ok)
        n_failures++;
}

void t_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" FAIL\n");
    n_lines++;
    n_failures++;
}

void t_note(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

void t_die(const char *fmt, ...)
{
    va_list ap;
    printf("HARD ERROR (%s, seed %llu): ", test_name, (unsigned long long)seed);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(T_EXIT_HARD);
}

int t_failures(void) { return n_failures; }

int t_finish(void)
{
    if (n_failures) {
        printf("# %s: %d of %d checks FAILED; replay with MOAK_TEST_SEED=%llu\n", test_name,
               n_failures, n_lines, (unsigned long long)seed);
        return T_EXIT_FAIL;
    }
    if (n_lines == 0) {
        printf("# %s: nothing was checked\n", test_name);
        return T_EXIT_SKIP;
    }
    printf("# %s: all %d checks passed\n", test_name, n_lines);
    return T_EXIT_PASS;
}

const char *t_status_name(moak_status st)
{
    static const char *const names[] = {
        "MOAK_OK", "MOAK_ERR_NULL_ARGUMENT", "MOAK_ERR_INVALID_ARGUMENT",
        "MOAK_ERR_SIZE_OVERFLOW", "MOAK_ERR_SHAPE_MISMATCH", "MOAK_ERR_UNSUPPORTED",
        "MOAK_ERR_OUT_OF_MEMORY", "MOAK_ERR_CACHE_FULL", "MOAK_ERR_OUT_OF_RANGE",
        "MOAK_ERR_UNKNOWN_BACKEND", "MOAK_ERR_BACKEND", "MOAK_ERR_STRUCT_SIZE"};
    if ((int)st < 0 || (size_t)st >= sizeof(names) / sizeof(names[0]))
        return "(unknown status)";
    return names[st];
}

void t_ok(moak_status st, const moak_context *ctx, const char *what)
{
    if (st != MOAK_OK)
        t_die("%s: %s (%s)", what, moak_status_str(st), moak_last_error(ctx));
}

/* ---- backends ------------------------------------------------------------------- */

static int in_filter(const char *name)
{
    const char *list = getenv("MOAK_TEST_BACKENDS");
    if (!list || !*list)
        return 1;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

moak_context *t_context(const char *backends, int32_t num_threads)
{
    moak_context_options opts = MOAK_CONTEXT_OPTIONS_INIT;
    opts.backends = backends;
    opts.num_threads = num_threads;
    moak_context *ctx = NULL;
    moak_status st = moak_context_create(&opts, &ctx);
    if (st != MOAK_OK || !ctx)
        t_die("moak_context_create(backends=%s): %s (%s)", backends ? backends : "(default)",
              moak_status_str(st), moak_last_error(NULL));
    return ctx;
}

int t_open_backends(t_backend *out, int max, int32_t num_threads)
{
    int n = 0;
    int32_t count = moak_backend_count();
    for (int32_t i = 0; i < count; i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        moak_status st = moak_backend_query(i, &info);
        if (st != MOAK_OK) {
            t_fail("moak_backend_query(%d): %s", i, moak_status_str(st));
            continue;
        }
        if (!info.available) {
            t_note("backend %s: not run (%s)", info.name, info.reason[0] ? info.reason : "?");
            continue;
        }
        /* ref is plain C, blind to MOAK_ISA_MAX: run-levels.sh runs it at the
         * highest level only (MOAK_TEST_TOP_LEVEL). */
        const char *top = getenv("MOAK_TEST_TOP_LEVEL"), *level = getenv("MOAK_ISA_MAX");
        if (strcmp(info.name, "ref") == 0 && top && *top && level && strcmp(top, level) != 0) {
            t_note("backend ref: not run at this level (ISA-independent; runs at %s)", top);
            continue;
        }
        if (!in_filter(info.name)) {
            t_note("backend %s: not run (not in MOAK_TEST_BACKENDS)", info.name);
            continue;
        }
        if (n == max)
            t_die("more than %d backends", max);
        moak_context_options opts = MOAK_CONTEXT_OPTIONS_INIT;
        opts.backends = info.name;
        opts.num_threads = num_threads;
        moak_context *ctx = NULL;
        st = moak_context_create(&opts, &ctx);
        if (st != MOAK_OK) {
            /* Reported available but unusable: that is a library failure. */
            t_fail("backend %s is available but moak_context_create failed: %s (%s)", info.name,
                   moak_status_str(st), moak_last_error(NULL));
            continue;
        }
        snprintf(out[n].name, sizeof(out[n].name), "%s", info.name);
        out[n].ctx = ctx;
        t_note("backend %s: run (preference list %s, %d threads)", info.name,
               moak_context_backends(ctx), (int)moak_context_num_threads(ctx));
        n++;
    }
    if (n == 0)
        t_note("no backend to run");
    return n;
}

void t_close_backends(t_backend *b, int n)
{
    for (int i = 0; i < n; i++) {
        moak_context_destroy(b[i].ctx);
        b[i].ctx = NULL;
    }
}

int32_t t_max_threads(void)
{
    const char *emulator = getenv("MOAK_TEST_EMULATOR");
    return emulator && *emulator ? 1 : 3;
}

double t_bound_for(const char *ran, double ref_bound, double moak_bound)
{
    if (ran && strcmp(ran, "ref") == 0)
        return ref_bound;
    return moak_bound + ref_bound;
}

double t_matmul_bound(moak_format f)
{
    switch (f) {
    case MOAK_FORMAT_F32: return MOAK_BOUND_MATMUL_F32;
    case MOAK_FORMAT_F16: return MOAK_BOUND_MATMUL_F16;
    case MOAK_FORMAT_BF16: return MOAK_BOUND_MATMUL_BF16;
    case MOAK_FORMAT_FP8_E4M3_B128: return MOAK_BOUND_MATMUL_FP8_E4M3_B128;
    case MOAK_FORMAT_MXFP4: return MOAK_BOUND_MATMUL_MXFP4;
    case MOAK_FORMAT_MXFP4_ST: return MOAK_BOUND_MATMUL_MXFP4_ST;
    case MOAK_FORMAT_I4_G32_CT: return MOAK_BOUND_MATMUL_I4_G32_CT;
    case MOAK_FORMAT_NVFP4: return MOAK_BOUND_MATMUL_NVFP4;
    default: return MOAK_BOUND_MATMUL_INT;
    }
}

double t_moe_bound(moak_format f)
{
    switch (f) {
    case MOAK_FORMAT_F32: return MOAK_BOUND_MOE_F32;
    case MOAK_FORMAT_F16: return MOAK_BOUND_MOE_F16;
    case MOAK_FORMAT_BF16: return MOAK_BOUND_MOE_BF16;
    case MOAK_FORMAT_FP8_E4M3_B128: return MOAK_BOUND_MOE_FP8_E4M3_B128;
    case MOAK_FORMAT_MXFP4: return MOAK_BOUND_MOE_MXFP4;
    case MOAK_FORMAT_MXFP4_ST: return MOAK_BOUND_MOE_MXFP4_ST;
    case MOAK_FORMAT_I4_G32_CT: return MOAK_BOUND_MOE_I4_G32_CT;
    case MOAK_FORMAT_NVFP4: return MOAK_BOUND_MOE_NVFP4;
    default: return MOAK_BOUND_MOE_INT;
    }
}
