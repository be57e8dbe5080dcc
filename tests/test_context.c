/* test_context — versions, status names, the backend registry, choosing
 * backends (option, MOAK_BACKENDS, unknown names), verbose logging through the
 * log callback (and never to stdout), thread counts, and bitwise-identical
 * results across runs with the same thread count. */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv, dup, dup2, fileno */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* ---- version and status ----------------------------------------------------------- */

static void check_version(void)
{
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", MOAK_VERSION_MAJOR, MOAK_VERSION_MINOR,
             MOAK_VERSION_PATCH);
    t_check(moak_version() == MOAK_VERSION, "version: moak_version() %d, MOAK_VERSION %d",
            moak_version(), MOAK_VERSION);
    const char *s = moak_version_string();
    t_check(s && strcmp(s, want) == 0, "version: moak_version_string() \"%s\", header %s",
            s ? s : "(null)", want);
}

static void check_status_strings(void)
{
    const char *seen[MOAK_ERR_STRUCT_SIZE + 1];
    for (int st = MOAK_OK; st <= MOAK_ERR_STRUCT_SIZE; st++) {
        const char *s = moak_status_str((moak_status)st);
        int distinct = 1;
        for (int j = 0; j < st; j++)
            distinct &= s && seen[j] && strcmp(s, seen[j]) != 0;
        seen[st] = s;
        /* moak.h: "MOAK_ERR_CACHE_FULL: ..." — the enum's own name first. */
        const char *name = t_status_name((moak_status)st);
        t_check(s && strncmp(s, name, strlen(name)) == 0 && distinct,
                "status: moak_status_str(%d) = \"%s\" starts with %s, distinct", st, s ? s : "(null)",
                name);
    }
    const char *u = moak_status_str((moak_status)999);
    t_check(u != NULL && *u, "status: moak_status_str(999) is a non-empty string (\"%s\")",
            u ? u : "(null)");
}

/* ---- registry --------------------------------------------------------------------- */

static int check_registry(char names[][32], int max)
{
    int32_t count = moak_backend_count();
    int n_avail = 0, has_ref = 0;
    t_check(count >= 1, "registry: moak_backend_count() = %d", (int)count);
    for (int32_t i = 0; i < count; i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        moak_status st = moak_backend_query(i, &info);
        if (st != MOAK_OK) {
            t_fail("registry: moak_backend_query(%d): %s", (int)i, moak_status_str(st));
            continue;
        }
        int consistent = info.name && *info.name && (info.built || !info.available) &&
                         (info.available ? info.reason[0] == '\0' : info.reason[0] != '\0');
        t_check(consistent, "registry: %s built=%d available=%d reason \"%s\"",
                info.name ? info.name : "(null)", (int)info.built, (int)info.available, info.reason);
        for (int j = 0; j < n_avail; j++)
            if (info.name && strcmp(names[j], info.name) == 0)
                t_fail("registry: %s listed twice", info.name);
        if (info.name && strcmp(info.name, "ref") == 0) {
            has_ref = 1;
            t_check(info.built && info.available, "registry: ref is built and available");
        }
        if (info.available && n_avail < max)
            snprintf(names[n_avail++], 32, "%s", info.name);
    }
    t_check(has_ref, "registry: ref is listed");
    return n_avail;
}

/* ---- preference lists ----------------------------------------------------------------- */

static void expect_list(const char *option, const char *env, const char *want)
{
    if (env)
        setenv("MOAK_BACKENDS", env, 1);
    else
        unsetenv("MOAK_BACKENDS");
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.backends = option;
    o.num_threads = 1;
    moak_context *ctx = NULL;
    moak_status st = moak_context_create(&o, &ctx);
    const char *got = st == MOAK_OK ? moak_context_backends(ctx) : moak_last_error(NULL);
    t_check(st == MOAK_OK && strcmp(got, want) == 0,
            "backends: option %s, MOAK_BACKENDS %s -> \"%s\" (expected \"%s\")",
            option ? option : "NULL", env ? env : "unset", got, want);
    moak_context_destroy(ctx);
    unsetenv("MOAK_BACKENDS");
}

static void expect_unknown(const char *option, const char *env, const char *bad_name)
{
    if (env)
        setenv("MOAK_BACKENDS", env, 1);
    else
        unsetenv("MOAK_BACKENDS");
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.backends = option;
    moak_context *const sentinel = (moak_context *)&o;
    moak_context *ctx = sentinel;
    moak_status st = moak_context_create(&o, &ctx);
    const char *msg = moak_last_error(NULL);
    t_check(st == MOAK_ERR_UNKNOWN_BACKEND && strstr(msg, bad_name) && ctx == sentinel,
            "backends: option %s, MOAK_BACKENDS %s -> %s, message names '%s' (\"%s\"), ctx untouched",
            option ? option : "NULL", env ? env : "unset", t_status_name(st), bad_name, msg);
    if (st == MOAK_OK && ctx != sentinel)
        moak_context_destroy(ctx);
    unsetenv("MOAK_BACKENDS");
}

static void check_preference_lists(char names[][32], int n)
{
    expect_list("ref", NULL, "ref");
    expect_list("ref!", NULL, "ref");
    expect_list(NULL, "ref", "ref");
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], "ref") == 0)
            continue;
        char with_ref[64], closed[64];
        snprintf(with_ref, sizeof(with_ref), "%.31s,ref", names[i]);
        snprintf(closed, sizeof(closed), "%.31s!", names[i]);
        /* ref appended when absent; not after a closing '!'. */
        expect_list(names[i], NULL, with_ref);
        expect_list(closed, NULL, names[i]);
        /* The option wins over the environment. */
        expect_list(names[i], "ref", with_ref);
        expect_list(NULL, names[i], with_ref);
    }
    /* The default list ends in ref among what it names. */
    {
        unsetenv("MOAK_BACKENDS");
        moak_context *ctx = t_context(NULL, 1);
        const char *list = moak_context_backends(ctx);
        t_check(strstr(list, "ref") != NULL, "backends: default list \"%s\" has ref", list);
        moak_context_destroy(ctx);
    }
    expect_unknown("nosuchbackend", NULL, "nosuchbackend");
    expect_unknown("ref,avx9000", NULL, "avx9000");
    expect_unknown(NULL, "nosuchbackend", "nosuchbackend");
    expect_unknown(NULL, "ref,avx9000", "avx9000");
}

/* ---- logging ------------------------------------------------------------------------ */

typedef struct log_capture {
    char text[1 << 16];
    size_t used;
    int lines;
} log_capture;

static void capture(void *user, moak_log_level level, const char *message)
{
    log_capture *c = user;
    (void)level;
    c->lines++;
    int n = snprintf(c->text + c->used, sizeof(c->text) - c->used, "%s\n", message);
    if (n > 0 && c->used + (size_t)n < sizeof(c->text))
        c->used += (size_t)n;
}

/* Runs one instance of each op on ctx; calls after() with its name after each. */
typedef void (*after_op_fn)(moak_context *ctx, const char *op, void *arg);

static void run_each_op(moak_context *ctx, after_op_fn after, void *arg)
{
    /* matmul on a Q4_0 weight (K = 2880 as gpt-oss), 7 rows */
    size_t bytes;
    uint8_t *wb = t_random_weights(MOAK_FORMAT_Q4_0, 16, 2880, 0.02, &bytes, NULL);
    moak_weight_desc wd = MOAK_WEIGHT_DESC_INIT;
    wd.format = MOAK_FORMAT_Q4_0;
    wd.n_experts = 1;
    wd.rows = 16;
    wd.cols = 2880;
    wd.data = wb;
    wd.data_size = bytes;
    moak_weight *w = NULL;
    t_ok(moak_weight_create(ctx, &wd, &w), ctx, "weight");
    after(ctx, "weight_create", arg);
    float x[7 * 2880], y[7 * 16];
    t_fill_normal(x, 7 * 2880, 1.0);
    t_ok(moak_matmul(ctx, w, x, 7, y), ctx, "matmul");
    after(ctx, "matmul", arg);
    moak_weight_destroy(w);

    /* moe_ffn: 2 experts, top-1 */
    moak_weight *g = NULL, *u = NULL, *d = NULL;
    wd.n_experts = 2;
    wd.rows = 32;
    wd.cols = 64;
    uint8_t *gb = t_random_weights(MOAK_FORMAT_Q4_0, 64, 64, 0.1, &bytes, NULL);
    wd.data = gb;
    wd.data_size = bytes;
    t_ok(moak_weight_create(ctx, &wd, &g), ctx, "w_gate");
    t_ok(moak_weight_create(ctx, &wd, &u), ctx, "w_up");
    wd.rows = 64;
    wd.cols = 32;
    uint8_t *db = t_random_weights(MOAK_FORMAT_Q4_0, 128, 32, 0.1, &bytes, NULL);
    wd.data = db;
    wd.data_size = bytes;
    t_ok(moak_weight_create(ctx, &wd, &d), ctx, "w_down");
    moak_moe_desc md = MOAK_MOE_DESC_INIT;
    int32_t ids[3] = {1, 0, 1};
    float wts[3] = {1.0f, 0.5f, 0.25f}, mx[3 * 64], my[3 * 64];
    t_fill_normal(mx, 3 * 64, 1.0);
    t_ok(moak_moe_ffn(ctx, &md, g, u, d, mx, 3, 1, ids, wts, my), ctx, "moe_ffn");
    after(ctx, "moe_ffn", arg);
    moak_weight_destroy(g);
    moak_weight_destroy(u);
    moak_weight_destroy(d);

    /* route */
    moak_router_desc rd = MOAK_ROUTER_DESC_INIT;
    rd.method = MOAK_ROUTE_SOFTMAX_TOPK;
    rd.n_experts = 8;
    rd.top_k = 2;
    rd.renormalize = 1;
    float logits[2 * 8], rw[4];
    int32_t rids[4];
    t_fill_normal(logits, 16, 1.0);
    t_ok(moak_moe_route(ctx, &rd, logits, 2, rids, rw), ctx, "route");
    after(ctx, "moe_route", arg);

    /* attention */
    moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
    kd.format = MOAK_FORMAT_F16;
    kd.n_kv_heads = 1;
    kd.head_dim_k = kd.head_dim_v = 64;
    kd.max_seqs = 1;
    kd.max_tokens = 64;
    moak_kv_cache *kv = NULL;
    t_ok(moak_kv_cache_create(ctx, &kd, &kv), ctx, "kv cache");
    after(ctx, "kv_cache_create", arg);
    float k[5 * 64], v[5 * 64], q[2 * 64], o[2 * 64];
    t_fill_normal(k, 5 * 64, 1.0);
    t_fill_normal(v, 5 * 64, 1.0);
    t_fill_normal(q, 2 * 64, 1.0);
    t_ok(moak_kv_cache_append(ctx, kv, 0, 5, k, v), ctx, "append");
    moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
    ad.n_heads = 2;
    ad.head_dim_k = ad.head_dim_v = 64;
    ad.causal = 1;
    int32_t sid = 0, ql = 1;
    t_ok(moak_attention(ctx, &ad, kv, &sid, &ql, 1, q, o), ctx, "attention");
    after(ctx, "attention", arg);
    moak_kv_cache_destroy(kv);

    /* rmsnorm, rope */
    float nx[2 * 128];
    t_fill_normal(nx, 256, 1.0);
    t_ok(moak_rmsnorm(ctx, nx, NULL, 2, 128, 1e-6f, nx), ctx, "rmsnorm");
    after(ctx, "rmsnorm", arg);
    moak_rope_desc rp = MOAK_ROPE_DESC_INIT;
    rp.head_dim = 128;
    int32_t pos[2] = {3, 9};
    t_ok(moak_rope(ctx, &rp, nx, 2, 1, pos, nx), ctx, "rope");
    after(ctx, "rope", arg);
    free(wb);
    free(gb);
    free(db);
}

typedef struct verbose_check {
    log_capture *log;
    const char *list;     /* the context's resolved preference list */
} verbose_check;

/* The op just run logged its choice and, before it, a refusal by every
 * backend ahead of the chosen one in the preference list. */
static void check_verbose_op(moak_context *ctx, const char *op, void *arg)
{
    verbose_check *vc = arg;
    const char *chosen = moak_last_backend(ctx);
    if (strcmp(op, "weight_create") == 0 || strcmp(op, "kv_cache_create") == 0)
        chosen = NULL; /* not an op: last_backend is the previous op's */
    char list[256];
    snprintf(list, sizeof(list), "%s", vc->list);
    int ok = vc->log->lines > 0;
    char missing[128] = "";
    if (chosen) {
        ok &= strstr(vc->log->text, chosen) != NULL;
        for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
            if (strcmp(name, chosen) == 0)
                break;
            if (!strstr(vc->log->text, name)) {
                ok = 0;
                snprintf(missing, sizeof(missing), " (%s's refusal not logged)", name);
            }
        }
    }
    t_check(ok, "verbose: %s on %s: %d log lines name the choice and every refusal%s", op,
            chosen ? chosen : "-", vc->log->lines, missing);
    /* Ops on a weight or cache run on its owner, chosen (with the refusals)
     * when it was created: keep that part of the log for the op. */
    if (!chosen)
        return;
    vc->log->used = 0;
    vc->log->text[0] = '\0';
    vc->log->lines = 0;
}

static void count_only(moak_context *ctx, const char *op, void *arg)
{
    (void)ctx;
    (void)op;
    (void)arg;
}

static void check_logging(char names[][32], int n)
{
    /* A list of every available backend, ref last: the ops that the first
     * ones decline show refusals. */
    char list[256] = "";
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], "ref") != 0)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%.31s,", names[i]);
    snprintf(list + strlen(list), sizeof(list) - strlen(list), "ref");

    static log_capture cap;
    memset(&cap, 0, sizeof(cap));
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.backends = list;
    o.log_fn = capture;
    o.log_user = &cap;
    o.verbose = 1;
    o.num_threads = t_max_threads() >= 2 ? 2 : 1;
    moak_context *ctx = NULL;
    t_ok(moak_context_create(&o, &ctx), NULL, "verbose context");
    t_check(strcmp(moak_last_backend(ctx), "") == 0,
            "context: moak_last_backend is \"\" before any op (\"%s\")", moak_last_backend(ctx));
    verbose_check vc = {&cap, moak_context_backends(ctx)};
    cap.used = 0;
    cap.lines = 0;
    run_each_op(ctx, check_verbose_op, &vc);
    moak_context_destroy(ctx);

    /* verbose 0, and -1 with MOAK_VERBOSE unset or 0: no trace. */
    int settings[3][2] = {{0, -2}, {-1, -2}, {-1, 0}}; /* {verbose, MOAK_VERBOSE (-2 = unset)} */
    for (int i = 0; i < 3; i++) {
        if (settings[i][1] == -2)
            unsetenv("MOAK_VERBOSE");
        else
            setenv("MOAK_VERBOSE", "0", 1);
        memset(&cap, 0, sizeof(cap));
        o.verbose = settings[i][0];
        t_ok(moak_context_create(&o, &ctx), NULL, "quiet context");
        run_each_op(ctx, count_only, NULL);
        moak_context_destroy(ctx);
        t_check(cap.lines == 0, "verbose: option %d, MOAK_VERBOSE %s -> %d log lines (expected 0)",
                settings[i][0], settings[i][1] == -2 ? "unset" : "0", cap.lines);
    }
    /* verbose -1 with MOAK_VERBOSE=1: the trace is on. */
    setenv("MOAK_VERBOSE", "1", 1);
    memset(&cap, 0, sizeof(cap));
    o.verbose = -1;
    t_ok(moak_context_create(&o, &ctx), NULL, "MOAK_VERBOSE context");
    run_each_op(ctx, count_only, NULL);
    moak_context_destroy(ctx);
    unsetenv("MOAK_VERBOSE");
    t_check(cap.lines > 0, "verbose: option -1, MOAK_VERBOSE=1 -> %d log lines", cap.lines);

    /* No log callback: the trace goes to stderr, nothing to stdout. */
    fflush(stdout);
    fflush(stderr);
    FILE *out_file = tmpfile(), *err_file = tmpfile();
    if (!out_file || !err_file)
        t_die("tmpfile failed");
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(out_file), 1);
    dup2(fileno(err_file), 2);
    o.log_fn = NULL;
    o.log_user = NULL;
    o.verbose = 1;
    moak_status st = moak_context_create(&o, &ctx);
    if (st == MOAK_OK) {
        run_each_op(ctx, count_only, NULL);
        moak_context_destroy(ctx);
    }
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    long out_bytes = (fseek(out_file, 0, SEEK_END), ftell(out_file));
    long err_bytes = (fseek(err_file, 0, SEEK_END), ftell(err_file));
    fclose(out_file);
    fclose(err_file);
    t_check(st == MOAK_OK && out_bytes == 0 && err_bytes > 0,
            "logging: no log_fn, verbose -> %ld bytes on stdout (expected 0), %ld on stderr", out_bytes,
            err_bytes);
}

/* ---- threads --------------------------------------------------------------------------- */

static void check_threads(void)
{
    unsetenv("MOAK_NUM_THREADS");
    moak_hw_info hw = MOAK_HW_INFO_INIT;
    t_ok(moak_hw_probe(&hw), NULL, "moak_hw_probe");
    int32_t max = t_max_threads();
    /* {num_threads option, MOAK_NUM_THREADS (0 = unset), expected} */
    int32_t rows[5][3] = {{1, 0, 1}, {2, 0, 2}, {3, 0, 3}, {0, 2, 2}, {1, 3, 1}};
    for (int i = 0; i < 5; i++) {
        if (rows[i][2] > max)
            continue;
        char env[16];
        snprintf(env, sizeof(env), "%d", (int)rows[i][1]);
        if (rows[i][1])
            setenv("MOAK_NUM_THREADS", env, 1);
        moak_context *ctx = t_context("ref", rows[i][0]);
        t_check(moak_context_num_threads(ctx) == rows[i][2],
                "threads: num_threads %d, MOAK_NUM_THREADS %s -> %d (expected %d)", (int)rows[i][0],
                rows[i][1] ? env : "unset", (int)moak_context_num_threads(ctx), (int)rows[i][2]);
        moak_context_destroy(ctx);
        unsetenv("MOAK_NUM_THREADS");
    }
    if (max >= hw.n_cores) {
        moak_context *ctx = t_context("ref", 0);
        t_check(moak_context_num_threads(ctx) == hw.n_cores,
                "threads: num_threads 0 -> %d (expected %d, the physical cores hwloc reports)",
                (int)moak_context_num_threads(ctx), (int)hw.n_cores);
        moak_context_destroy(ctx);
    } else {
        t_note("threads: default count not checked (%d cores, at most %d threads here)",
               (int)hw.n_cores, (int)max);
    }
}

/* ---- reproducibility -------------------------------------------------------------------- */

typedef struct outputs {
    float *v[8];
    size_t n[8];
    int count;
} outputs;

static void keep(outputs *o, const float *data, size_t n)
{
    o->v[o->count] = t_alloc_f32(n);
    memcpy(o->v[o->count], data, n * sizeof(float));
    o->n[o->count++] = n;
}

/* Matmul, MoE, route and attention outputs of one context on fixed inputs. */
static void run_fixed(moak_context *ctx, uint64_t seed_base, outputs *o)
{
    (void)seed_base;
    size_t bytes;
    o->count = 0;
    static uint8_t *wb, *gb, *db;
    static float *x, *mx, *logits, *k, *v, *q;
    static int32_t ids[24 * 4];
    static float wts[24 * 4];
    if (!wb) {
        /* Made once: every context sees the same bytes. */
        wb = t_random_weights(MOAK_FORMAT_Q4_0, 48, 2880, 0.02, &bytes, NULL);
        gb = t_random_weights(MOAK_FORMAT_Q8_0, 32 * 96, 160, 0.08, &bytes, NULL);
        db = t_random_weights(MOAK_FORMAT_Q8_0, 32 * 160, 96, 0.1, &bytes, NULL);
        x = t_alloc_f32(64 * 2880);
        t_fill_normal(x, 64 * 2880, 1.0);
        mx = t_alloc_f32(24 * 160);
        t_fill_normal(mx, 24 * 160, 1.0);
        logits = t_alloc_f32(24 * 32);
        t_fill_normal(logits, 24 * 32, 1.0);
        for (int t = 0; t < 24; t++) {
            int32_t perm[32];
            t_shuffle_i32(perm, 32);
            for (int j = 0; j < 4; j++) {
                ids[t * 4 + j] = perm[j];
                wts[t * 4 + j] = (float)t_uniform(0.1, 1.0);
            }
        }
        k = t_alloc_f32(300 * 2 * 64);
        v = t_alloc_f32(300 * 2 * 64);
        q = t_alloc_f32(40 * 16 * 64);
        t_fill_normal(k, 300 * 2 * 64, 1.0);
        t_fill_normal(v, 300 * 2 * 64, 1.0);
        t_fill_normal(q, 40 * 16 * 64, 1.0);
    }
    /* matmul: gpt-oss K 2880, 48 rows, m 64 */
    moak_weight_desc wd = MOAK_WEIGHT_DESC_INIT;
    wd.format = MOAK_FORMAT_Q4_0;
    wd.n_experts = 1;
    wd.rows = 48;
    wd.cols = 2880;
    wd.data = wb;
    wd.data_size = 48 * t_row_bytes(MOAK_FORMAT_Q4_0, 2880);
    moak_weight *w = NULL;
    t_ok(moak_weight_create(ctx, &wd, &w), ctx, "weight");
    float *y = t_alloc_f32(64 * 48);
    t_ok(moak_matmul(ctx, w, x, 64, y), ctx, "matmul");
    keep(o, y, 64 * 48);
    free(y);
    moak_weight_destroy(w);
    /* moe: gpt-oss-20b 32 experts top-4, scaled hidden 160 / inter 96 */
    moak_weight *g = NULL, *u = NULL, *d = NULL;
    wd.format = MOAK_FORMAT_Q8_0;
    wd.n_experts = 32;
    wd.rows = 96;
    wd.cols = 160;
    wd.data = gb;
    wd.data_size = 32 * 96 * t_row_bytes(MOAK_FORMAT_Q8_0, 160);
    t_ok(moak_weight_create(ctx, &wd, &g), ctx, "w_gate");
    t_ok(moak_weight_create(ctx, &wd, &u), ctx, "w_up");
    wd.rows = 160;
    wd.cols = 96;
    wd.data = db;
    wd.data_size = 32 * 160 * t_row_bytes(MOAK_FORMAT_Q8_0, 96);
    t_ok(moak_weight_create(ctx, &wd, &d), ctx, "w_down");
    moak_moe_desc md = MOAK_MOE_DESC_INIT;
    md.activation = MOAK_ACT_SWIGLU_OAI;
    float *my = t_alloc_f32(24 * 160);
    t_ok(moak_moe_ffn(ctx, &md, g, u, d, mx, 24, 4, ids, wts, my), ctx, "moe");
    keep(o, my, 24 * 160);
    free(my);
    moak_weight_destroy(g);
    moak_weight_destroy(u);
    moak_weight_destroy(d);
    /* route */
    moak_router_desc rd = MOAK_ROUTER_DESC_INIT;
    rd.method = MOAK_ROUTE_TOPK_SOFTMAX;
    rd.n_experts = 32;
    rd.top_k = 4;
    float rw[24 * 4];
    int32_t rids[24 * 4];
    t_ok(moak_moe_route(ctx, &rd, logits, 24, rids, rw), ctx, "route");
    keep(o, rw, 24 * 4);
    /* attention: a 300-token sequence, 40 queries, 16/2 heads, window + sinks */
    moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
    kd.format = MOAK_FORMAT_BF16;
    kd.n_kv_heads = 2;
    kd.head_dim_k = kd.head_dim_v = 64;
    kd.max_seqs = 1;
    kd.max_tokens = 300;
    moak_kv_cache *kv = NULL;
    t_ok(moak_kv_cache_create(ctx, &kd, &kv), ctx, "kv");
    t_ok(moak_kv_cache_append(ctx, kv, 0, 300, k, v), ctx, "append");
    moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
    ad.n_heads = 16;
    ad.head_dim_k = ad.head_dim_v = 64;
    ad.causal = 1;
    ad.sliding_window = 128;
    float sinks[16];
    for (int h = 0; h < 16; h++)
        sinks[h] = (float)(h % 5) * 0.5f;
    ad.sinks = sinks;
    int32_t sid = 0, ql = 40;
    float *out = t_alloc_f32(40 * 16 * 64);
    t_ok(moak_attention(ctx, &ad, kv, &sid, &ql, 1, q, out), ctx, "attention");
    keep(o, out, 40 * 16 * 64);
    free(out);
    moak_kv_cache_destroy(kv);
}

static void check_reproducible(char names[][32], int n)
{
    static const char *const what[4] = {"matmul", "moe_ffn", "moe_route", "attention"};
    for (int i = 0; i < n; i++) {
        int32_t lo = t_max_threads() >= 2 ? 2 : 1, hi = t_max_threads() >= 3 ? 3 : lo;
        for (int32_t threads = lo; threads <= hi; threads++) {
            outputs a, b, c;
            moak_context *c1 = t_context(names[i], threads), *c2 = t_context(names[i], threads);
            run_fixed(c1, 0, &a);
            run_fixed(c2, 0, &b);
            run_fixed(c1, 0, &c); /* and again in the same context */
            for (int j = 0; j < a.count; j++) {
                int same = memcmp(a.v[j], b.v[j], a.n[j] * sizeof(float)) == 0 &&
                           memcmp(a.v[j], c.v[j], a.n[j] * sizeof(float)) == 0;
                t_check(same, "%-14s reproducible %-9s %d threads: bitwise identical over 3 runs",
                        names[i], what[j], (int)threads);
                free(a.v[j]);
                free(b.v[j]);
                free(c.v[j]);
            }
            moak_context_destroy(c1);
            moak_context_destroy(c2);
        }
    }
}

int main(void)
{
    t_init("test_context");
    unsetenv("MOAK_BACKENDS");
    unsetenv("MOAK_VERBOSE");
    check_version();
    check_status_strings();
    char names[T_MAX_BACKENDS][32];
    int n = check_registry(names, T_MAX_BACKENDS);
    check_preference_lists(names, n);
    check_logging(names, n);
    check_threads();
    check_reproducible(names, n);
    return t_finish();
}
