/*
 * moak-soak — a serving loop run for minutes, to show that nothing drifts or
 * grows over time (issue 16).  Not part of `make check`: a run is long.
 *
 *   moak-soak [--minutes M] [--clients N] [--ctx-threads T] [--check-seconds S]
 *             [--warmup-seconds W] [--seed X] [--backends LIST]
 *
 * Each client is a thread with its own context (LIST, default: the default
 * order) and its own reference context (backends "ref"), with the same
 * weights and the same KV cache geometry on both.  At random it
 *   - appends 1..64 tokens to a random sequence (the reference cache gets the
 *     same tokens; a full cache must fail on both, and then a random
 *     sequence is cleared and reused),
 *   - clears a random sequence,
 *   - runs attention over a random set of sequences (q_len 1..4),
 *   - routes and runs the MoE FFN over a random batch of 1..32 tokens (1..4
 *     when checked).
 * Every --check-seconds a client runs its next attention and MoE on both
 * contexts and compares them within the bounds of moak.h, and runs the
 * default context twice to check that the result is bitwise the same.
 * The main thread samples the resident set (/proc/self/statm) every second.
 *
 * Shapes: Qwen3-30B-A3B's (hidden 2048, expert intermediate 768, top-8
 * softmax routing renormalised; 32 query heads, 4 KV heads of 128) with 16
 * of its 128 experts, so a check against the scalar reference stays short.
 *
 * Exit status 0 when every call succeeded (or failed exactly as the model
 * of the cache predicted), every check was within its bound and bitwise
 * repeatable, and the resident set grew by less than 1 MiB after warm-up;
 * 1 otherwise.  Prints a summary line per client and one for memory.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__GLIBC__)
#  include <malloc.h>
#endif

#include "moak.h"

#define HIDDEN 2048
#define INTER 768
#define N_EXPERTS 16
#define TOP_K 8
#define MAX_BATCH 32
#define MAX_CHECK_BATCH 4
#define Q_HEADS 32
#define KV_HEADS 4
#define HEAD_DIM 128
#define MAX_SEQS 16
#define PAGE_TOKENS 64
#define CACHE_TOKENS 4096
#define MAX_APPEND 64
#define MAX_Q_LEN 4
#define MIB (1024.0 * 1024.0)

typedef struct options {
    double minutes;
    int clients;
    int ctx_threads;
    double check_seconds;
    double warmup_seconds;
    uint64_t seed;
    const char *backends;
} options;

typedef struct client {
    int id;
    const options *opt;
    uint64_t rng;
    moak_context *ctx, *ref;
    moak_weight *gate[2], *up[2], *down[2]; /* [0] on ctx, [1] on ref */
    moak_kv_cache *kv[2];
    int64_t len[MAX_SEQS];                  /* the model of the cache */
    /* counters */
    long appends, full, clears, attentions, moes, checks;
    double worst_attention, worst_moe;      /* err / bound, over every check */
    double worst_first_half, worst_second_half;
    int failures;
    char first_failure[512];
    const char *backend_attention, *backend_moe;
} client;

/* Clients whose buffers have reached their largest shapes (grow_to_largest). */
static atomic_int clients_warm;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t next_u64(uint64_t *s)
{
    /* splitmix64: plenty for choosing actions and filling data */
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int64_t rand_int(uint64_t *s, int64_t lo, int64_t hi) { return lo + (int64_t)(next_u64(s) % (uint64_t)(hi - lo + 1)); }

static void fill(uint64_t *s, float *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++) {
        double u = (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = (float)((u * 2.0 - 1.0) * scale);
        if (x[i] == 0.0f)
            x[i] = (float)(scale * 1e-3);
    }
}

static void fail(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(client *c, const char *fmt, ...)
{
    if (c->failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->first_failure, sizeof(c->first_failure), fmt, ap);
        va_end(ap);
        fprintf(stderr, "moak-soak: client %d: %s\n", c->id, c->first_failure);
    }
}

static int ok(client *c, moak_status st, moak_context *ctx, const char *what)
{
    if (st == MOAK_OK)
        return 1;
    fail(c, "%s: %s (%s)", what, moak_status_str(st), moak_last_error(ctx));
    return 0;
}

/* moak.h's error: max |y - ref| over a row / rms of the reference row (of
 * the whole output for rows shorter than MOAK_BOUND_MIN_ROW).  +inf for a
 * non-finite y where ref is finite. */
static double row_error(const float *y, const float *ref, int64_t rows, int64_t n)
{
    double whole = 0;
    for (int64_t i = 0; i < rows * n; i++)
        whole += (double)ref[i] * ref[i];
    whole = sqrt(whole / (double)(rows * n));
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0, mx = 0;
        for (int64_t j = 0; j < n; j++) {
            const double a = y[r * n + j], b = ref[r * n + j];
            if (!isfinite(a) && isfinite(b))
                return INFINITY;
            ss += b * b;
            if (fabs(a - b) > mx)
                mx = fabs(a - b);
        }
        const double rms = n < MOAK_BOUND_MIN_ROW ? whole : sqrt(ss / (double)n);
        const double e = rms > 0 ? mx / rms : mx;
        if (e > worst)
            worst = e;
    }
    return worst;
}

static moak_weight *make_weight(client *c, moak_context *ctx, const void *data, size_t bytes, int64_t rows,
                                int64_t cols)
{
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = MOAK_FORMAT_Q4_0;
    d.n_experts = N_EXPERTS;
    d.rows = rows;
    d.cols = cols;
    d.data = data;
    d.data_size = bytes;
    moak_weight *w = NULL;
    ok(c, moak_weight_create(ctx, &d, &w), ctx, "moak_weight_create");
    return w;
}

static int setup(client *c)
{
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.num_threads = c->opt->ctx_threads;
    o.backends = c->opt->backends;
    o.flags = MOAK_CONTEXT_NO_THREAD_BINDING; /* several contexts share the cores */
    if (!ok(c, moak_context_create(&o, &c->ctx), NULL, "moak_context_create"))
        return 0;
    o.backends = "ref";
    if (!ok(c, moak_context_create(&o, &c->ref), NULL, "moak_context_create(ref)"))
        return 0;
    /* Q4_0 experts: quantized from random floats by the library (the soak
     * checks backends against ref, not quantization). */
    const int64_t shapes[3][2] = {{INTER, HIDDEN}, {INTER, HIDDEN}, {HIDDEN, INTER}};
    moak_weight **slots[3] = {c->gate, c->up, c->down};
    for (int w = 0; w < 3; w++) {
        const int64_t rows = N_EXPERTS * shapes[w][0], cols = shapes[w][1];
        const size_t bytes = (size_t)rows * moak_format_row_bytes(MOAK_FORMAT_Q4_0, cols);
        float *src = malloc((size_t)rows * (size_t)cols * sizeof(float));
        void *q = malloc(bytes);
        if (!src || !q) {
            fail(c, "out of memory for weights");
            free(src);
            free(q);
            return 0;
        }
        fill(&c->rng, src, (size_t)rows * (size_t)cols, 1.0 / sqrt((double)cols));
        ok(c, moak_quantize(MOAK_FORMAT_Q4_0, src, rows, cols, q, bytes), NULL, "moak_quantize");
        slots[w][0] = make_weight(c, c->ctx, q, bytes, shapes[w][0], cols);
        slots[w][1] = make_weight(c, c->ref, q, bytes, shapes[w][0], cols);
        free(src);
        free(q);
    }
    moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
    kd.format = MOAK_FORMAT_F16;
    kd.n_kv_heads = KV_HEADS;
    kd.head_dim_k = HEAD_DIM;
    kd.head_dim_v = HEAD_DIM;
    kd.max_seqs = MAX_SEQS;
    kd.max_tokens = CACHE_TOKENS;
    kd.page_tokens = PAGE_TOKENS;
    ok(c, moak_kv_cache_create(c->ctx, &kd, &c->kv[0]), c->ctx, "moak_kv_cache_create");
    ok(c, moak_kv_cache_create(c->ref, &kd, &c->kv[1]), c->ref, "moak_kv_cache_create(ref)");
    return c->failures == 0;
}

static void teardown(client *c)
{
    for (int i = 0; i < 2; i++) {
        moak_weight_destroy(c->gate[i]);
        moak_weight_destroy(c->up[i]);
        moak_weight_destroy(c->down[i]);
        moak_kv_cache_destroy(c->kv[i]);
    }
    moak_context_destroy(c->ctx);
    moak_context_destroy(c->ref);
}

static int64_t pages_of(int64_t tokens) { return (tokens + PAGE_TOKENS - 1) / PAGE_TOKENS; }

static int64_t free_pages(const client *c)
{
    int64_t used = 0;
    for (int s = 0; s < MAX_SEQS; s++)
        used += pages_of(c->len[s]);
    return CACHE_TOKENS / PAGE_TOKENS - used;
}

static void do_clear(client *c, int32_t seq)
{
    for (int i = 0; i < 2; i++)
        ok(c, moak_kv_cache_seq_clear(i ? c->ref : c->ctx, c->kv[i], seq), i ? c->ref : c->ctx, "seq_clear");
    c->len[seq] = 0;
    c->clears++;
}

static void do_append(client *c, float *k, float *v)
{
    const int32_t seq = (int32_t)rand_int(&c->rng, 0, MAX_SEQS - 1);
    const int64_t n = rand_int(&c->rng, 1, MAX_APPEND);
    fill(&c->rng, k, (size_t)(n * KV_HEADS * HEAD_DIM), 1.0);
    fill(&c->rng, v, (size_t)(n * KV_HEADS * HEAD_DIM), 1.0);
    const int fits = pages_of(c->len[seq] + n) - pages_of(c->len[seq]) <= free_pages(c);
    for (int i = 0; i < 2; i++) {
        moak_context *ctx = i ? c->ref : c->ctx;
        moak_status st = moak_kv_cache_append(ctx, c->kv[i], seq, n, k, v);
        if (fits ? st != MOAK_OK : st != MOAK_ERR_CACHE_FULL)
            fail(c, "append %lld tokens to sequence %d (len %lld, %lld pages free) on %s: %s, expected %s (%s)",
                 (long long)n, (int)seq, (long long)c->len[seq], (long long)free_pages(c), i ? "ref" : "ctx",
                 moak_status_str(st), fits ? "MOAK_OK" : "MOAK_ERR_CACHE_FULL", moak_last_error(ctx));
        int64_t len = -1;
        moak_kv_cache_seq_len(c->kv[i], seq, &len);
        if (len != c->len[seq] + (fits ? n : 0))
            fail(c, "sequence %d holds %lld tokens, the model says %lld", (int)seq, (long long)len,
                 (long long)(c->len[seq] + (fits ? n : 0)));
    }
    if (fits) {
        c->len[seq] += n;
        c->appends++;
    } else {
        c->full++;
        do_clear(c, (int32_t)rand_int(&c->rng, 0, MAX_SEQS - 1));
    }
}

static void note_check(client *c, double ratio, int first_half, double *worst_op)
{
    if (ratio > *worst_op)
        *worst_op = ratio;
    double *half = first_half ? &c->worst_first_half : &c->worst_second_half;
    if (ratio > *half)
        *half = ratio;
}

/* The serving model's attention: causal GQA, default scale. */
static moak_attention_desc attention_desc(void)
{
    moak_attention_desc d = MOAK_ATTENTION_DESC_INIT;
    d.n_heads = Q_HEADS;
    d.head_dim_k = HEAD_DIM;
    d.head_dim_v = HEAD_DIM;
    d.causal = 1;
    return d;
}

static void do_attention(client *c, int check, int first_half, float *q, float *out, float *out2, float *out_ref)
{
    int32_t ids[MAX_SEQS], q_lens[MAX_SEQS], n = 0;
    int64_t rows = 0;
    for (int32_t s = 0; s < MAX_SEQS; s++)
        if (c->len[s] > 0 && (next_u64(&c->rng) & 1)) {
            ids[n] = s;
            q_lens[n] = (int32_t)rand_int(&c->rng, 1, c->len[s] < MAX_Q_LEN ? c->len[s] : MAX_Q_LEN);
            rows += q_lens[n++];
        }
    if (n == 0)
        return;
    const size_t q_n = (size_t)rows * Q_HEADS * HEAD_DIM;
    fill(&c->rng, q, q_n, 1.0);
    const moak_attention_desc d = attention_desc();
    if (!ok(c, moak_attention(c->ctx, &d, c->kv[0], ids, q_lens, n, q, out), c->ctx, "moak_attention"))
        return;
    c->backend_attention = moak_last_backend(c->ctx);
    c->attentions++;
    if (!check)
        return;
    if (!ok(c, moak_attention(c->ctx, &d, c->kv[0], ids, q_lens, n, q, out2), c->ctx, "moak_attention (again)") ||
        !ok(c, moak_attention(c->ref, &d, c->kv[1], ids, q_lens, n, q, out_ref), c->ref, "moak_attention (ref)"))
        return;
    if (memcmp(out, out2, q_n * sizeof(float)) != 0)
        fail(c, "attention over %d sequences is not bitwise repeatable", (int)n);
    const double err = row_error(out, out_ref, rows, (int64_t)Q_HEADS * HEAD_DIM);
    const double ratio = err / MOAK_BOUND_ATTENTION_FLOAT;
    note_check(c, ratio, first_half, &c->worst_attention);
    if (!(ratio <= 1.0))
        fail(c, "attention: error %.3g against ref exceeds the bound %.1e", err, MOAK_BOUND_ATTENTION_FLOAT);
    c->checks++;
}

/* Route and run the MoE over `batch` tokens (0: a random batch). */
static void do_moe(client *c, int64_t batch, int check, int first_half, float *x, float *logits, int32_t *ids,
                   float *weights, float *y, float *y2, float *y_ref)
{
    /* A checked batch is small: the scalar reference runs it too. */
    const int64_t t = batch ? batch : rand_int(&c->rng, 1, check ? MAX_CHECK_BATCH : MAX_BATCH);
    fill(&c->rng, x, (size_t)(t * HIDDEN), 1.0);
    fill(&c->rng, logits, (size_t)(t * N_EXPERTS), 3.0);
    moak_router_desc r = MOAK_ROUTER_DESC_INIT;
    r.method = MOAK_ROUTE_SOFTMAX_TOPK;
    r.n_experts = N_EXPERTS;
    r.top_k = TOP_K;
    r.renormalize = 1;
    moak_moe_desc m = MOAK_MOE_DESC_INIT;
    m.activation = MOAK_ACT_SILU_GLU;
    if (!ok(c, moak_moe_route(c->ctx, &r, logits, t, ids, weights), c->ctx, "moak_moe_route") ||
        !ok(c, moak_moe_ffn(c->ctx, &m, c->gate[0], c->up[0], c->down[0], x, t, TOP_K, ids, weights, y), c->ctx,
            "moak_moe_ffn"))
        return;
    c->backend_moe = moak_last_backend(c->ctx);
    c->moes++;
    if (!check)
        return;
    /* The reference runs on the same routing, so the check is the FFN's. */
    if (!ok(c, moak_moe_ffn(c->ctx, &m, c->gate[0], c->up[0], c->down[0], x, t, TOP_K, ids, weights, y2), c->ctx,
            "moak_moe_ffn (again)") ||
        !ok(c, moak_moe_ffn(c->ref, &m, c->gate[1], c->up[1], c->down[1], x, t, TOP_K, ids, weights, y_ref), c->ref,
            "moak_moe_ffn (ref)"))
        return;
    if (memcmp(y, y2, (size_t)(t * HIDDEN) * sizeof(float)) != 0)
        fail(c, "MoE over %lld tokens is not bitwise repeatable", (long long)t);
    const double err = row_error(y, y_ref, t, HIDDEN);
    const double ratio = err / MOAK_BOUND_MOE_INT;
    note_check(c, ratio, first_half, &c->worst_moe);
    if (!(ratio <= 1.0))
        fail(c, "MoE: error %.3g against ref exceeds the bound %.2g", err, MOAK_BOUND_MOE_INT);
    c->checks++;
}

/* Drive every buffer that grows with the shapes it sees (backend scratch,
 * page tables, allocator arenas) to its largest size once, so that what the
 * resident set does after warm-up is the steady state: one sequence holding
 * the whole cache, then every sequence holding an equal share, each attended
 * with the largest q_len, and the largest MoE batch. */
static void grow_to_largest(client *c, float *k, float *v, float *q, float *out, float *x, float *logits,
                            int32_t *ids, float *weights, float *y)
{
    const int64_t shares[2][2] = {{1, CACHE_TOKENS}, {MAX_SEQS, CACHE_TOKENS / MAX_SEQS}};
    for (int pass = 0; pass < 2; pass++) {
        const int64_t n_seqs = shares[pass][0], per_seq = shares[pass][1];
        for (int32_t s = 0; s < n_seqs; s++)
            for (int64_t done = 0; done < per_seq; done += MAX_APPEND) {
                fill(&c->rng, k, (size_t)(MAX_APPEND * KV_HEADS * HEAD_DIM), 1.0);
                fill(&c->rng, v, (size_t)(MAX_APPEND * KV_HEADS * HEAD_DIM), 1.0);
                for (int i = 0; i < 2; i++)
                    ok(c, moak_kv_cache_append(i ? c->ref : c->ctx, c->kv[i], s, MAX_APPEND, k, v),
                       i ? c->ref : c->ctx, "append (warm-up)");
            }
        int32_t ids_s[MAX_SEQS], q_lens[MAX_SEQS];
        for (int32_t s = 0; s < n_seqs; s++) {
            ids_s[s] = s;
            q_lens[s] = MAX_Q_LEN;
        }
        fill(&c->rng, q, (size_t)(n_seqs * MAX_Q_LEN * Q_HEADS * HEAD_DIM), 1.0);
        const moak_attention_desc d = attention_desc();
        ok(c, moak_attention(c->ctx, &d, c->kv[0], ids_s, q_lens, (int32_t)n_seqs, q, out), c->ctx,
           "attention (warm-up)");
        for (int32_t s = 0; s < n_seqs; s++)
            for (int i = 0; i < 2; i++)
                ok(c, moak_kv_cache_seq_clear(i ? c->ref : c->ctx, c->kv[i], s), i ? c->ref : c->ctx,
                   "seq_clear (warm-up)");
    }
    do_moe(c, MAX_BATCH, 0, 1, x, logits, ids, weights, y, NULL, NULL);
}

static void *client_main(void *arg)
{
    client *c = arg;
    const double start = now_seconds(), end = start + c->opt->minutes * 60.0;
    float *k = malloc(sizeof(float) * MAX_APPEND * KV_HEADS * HEAD_DIM);
    float *v = malloc(sizeof(float) * MAX_APPEND * KV_HEADS * HEAD_DIM);
    const size_t att_n = (size_t)MAX_SEQS * MAX_Q_LEN * Q_HEADS * HEAD_DIM;
    float *q = malloc(sizeof(float) * att_n), *out = malloc(sizeof(float) * att_n);
    float *out2 = malloc(sizeof(float) * att_n), *out_ref = malloc(sizeof(float) * att_n);
    float *x = malloc(sizeof(float) * MAX_BATCH * HIDDEN), *y = malloc(sizeof(float) * MAX_BATCH * HIDDEN);
    float *y2 = malloc(sizeof(float) * MAX_BATCH * HIDDEN), *y_ref = malloc(sizeof(float) * MAX_BATCH * HIDDEN);
    float *logits = malloc(sizeof(float) * MAX_BATCH * N_EXPERTS), *weights = malloc(sizeof(float) * MAX_BATCH * TOP_K);
    int32_t *ids = malloc(sizeof(int32_t) * MAX_BATCH * TOP_K);
    if (!k || !v || !q || !out || !out2 || !out_ref || !x || !y || !y2 || !y_ref || !logits || !weights || !ids) {
        fail(c, "out of memory for buffers");
    } else if (setup(c)) {
        grow_to_largest(c, k, v, q, out, x, logits, ids, weights, y);
        atomic_fetch_add(&clients_warm, 1);
        double next_check = start; /* check at once, then every check_seconds */
        for (double t = start; t < end && c->failures == 0; t = now_seconds()) {
            const int check = t >= next_check;
            if (check)
                next_check = t + c->opt->check_seconds;
            const int first_half = t < start + (end - start) / 2;
            const int64_t action = rand_int(&c->rng, 0, 9);
            if (action < 5)
                do_append(c, k, v);
            else if (action == 5)
                do_clear(c, (int32_t)rand_int(&c->rng, 0, MAX_SEQS - 1));
            if (action >= 6 || check) {
                do_attention(c, check, first_half, q, out, out2, out_ref);
                do_moe(c, 0, check, first_half, x, logits, ids, weights, y, y2, y_ref);
            }
        }
    }
    teardown(c);
    free(k), free(v), free(q), free(out), free(out2), free(out_ref);
    free(x), free(y), free(y2), free(y_ref), free(logits), free(weights), free(ids);
    return NULL;
}

static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long total = 0, resident = -1;
    if (f) {
        if (fscanf(f, "%ld %ld", &total, &resident) != 2)
            resident = -1;
        fclose(f);
    }
    return resident < 0 ? -1 : (double)resident * (double)sysconf(_SC_PAGESIZE);
}

/* Bytes malloc has handed out and not had back (glibc), or -1: tells a
 * leak (this grows) from allocator fragmentation (only the RSS grows). */
static double heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    const struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
#else
    return -1;
#endif
}

static void usage(void)
{
    fprintf(stderr, "usage: moak-soak [--minutes M] [--clients N] [--ctx-threads T] [--check-seconds S]\n"
                    "                 [--warmup-seconds W] [--seed X] [--backends LIST]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    options opt = {1.0, 3, 1, 10.0, -1.0, 0, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            usage();
        if (!strcmp(a, "--minutes"))
            opt.minutes = atof(val);
        else if (!strcmp(a, "--clients"))
            opt.clients = atoi(val);
        else if (!strcmp(a, "--ctx-threads"))
            opt.ctx_threads = atoi(val);
        else if (!strcmp(a, "--check-seconds"))
            opt.check_seconds = atof(val);
        else if (!strcmp(a, "--warmup-seconds"))
            opt.warmup_seconds = atof(val);
        else if (!strcmp(a, "--seed"))
            opt.seed = strtoull(val, NULL, 0);
        else if (!strcmp(a, "--backends"))
            opt.backends = val;
        else
            usage();
        i++;
    }
    if (!(opt.minutes > 0) || opt.clients < 1 || opt.clients > 64 || opt.ctx_threads < 0 || !(opt.check_seconds > 0))
        usage();
    if (opt.seed == 0)
        opt.seed = (uint64_t)time(NULL);
#if defined(__GLIBC__)
    /* glibc raises its mmap threshold to the size of each large block freed,
     * so later blocks of varying sizes come from the heap, where freed
     * pages stay resident: the resident set then creeps while the bytes in
     * use stay flat, which says nothing about moak.  A fixed threshold (the
     * default value) turns that adjustment off, so RSS follows what is in
     * use; the bytes malloc has out are printed beside it. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    /* One arena: mallinfo2 (the "in use" figure) counts the main arena only,
     * and per-thread arenas fragment on their own. */
    mallopt(M_ARENA_MAX, 1);
#endif
    /* Warm-up: every client has run its largest shapes (grow_to_largest),
     * and then served for W more seconds (default a sixth of the run, at
     * least 60 s) so its cache has filled and been reused at random: the
     * buffers it allocated are then touched as far as the shapes reach
     * (an earlier 30-minute run, with 120 s, still grew 2 MiB in the next
     * five minutes while the bytes malloc had out stayed flat, then stayed
     * within 0.25 MiB for fifteen). */
    const double run_seconds = opt.minutes * 60.0;
    if (opt.warmup_seconds < 0)
        opt.warmup_seconds = run_seconds / 6 > 60 ? run_seconds / 6 : 60;
    printf("moak-soak: %g minutes, %d clients x (context of %d threads + ref context), backends %s, seed %llu, "
           "check every %g s, warm-up %g s\n",
           opt.minutes, opt.clients, opt.ctx_threads, opt.backends ? opt.backends : "(default)",
           (unsigned long long)opt.seed, opt.check_seconds, opt.warmup_seconds);
    fflush(stdout);

    client *clients = calloc((size_t)opt.clients, sizeof(client));
    pthread_t *threads = calloc((size_t)opt.clients, sizeof(pthread_t));
    if (!clients || !threads)
        return 1;
    const double start = now_seconds();
    for (int i = 0; i < opt.clients; i++) {
        clients[i].id = i;
        clients[i].opt = &opt;
        clients[i].rng = opt.seed * 1000003u + (uint64_t)i;
        if (pthread_create(&threads[i], NULL, client_main, &clients[i]) != 0) {
            fprintf(stderr, "moak-soak: cannot start client %d\n", i);
            return 1;
        }
    }
    /* RSS: the value when warm-up ends, the largest after it, the last. */
    double rss_warm = -1, rss_max_after = -1, rss_last = -1, rss_first = resident_bytes();
    double heap_warm = -1, heap_last = -1, all_warm_at = -1, warm_end = -1;
    for (double t = now_seconds(); t < start + run_seconds; t = now_seconds()) {
        sleep(1);
        const double r = resident_bytes();
        rss_last = r;
        if (all_warm_at < 0 && atomic_load(&clients_warm) == opt.clients)
            all_warm_at = now_seconds();
        if (all_warm_at >= 0 && now_seconds() - all_warm_at >= opt.warmup_seconds) {
            if (rss_warm < 0) {
                warm_end = now_seconds() - start;
                rss_warm = r;
                heap_warm = heap_in_use();
            }
            heap_last = heap_in_use();
            if (r > rss_max_after)
                rss_max_after = r;
        }
        const long minute = (long)((now_seconds() - start) / 60.0);
        static long reported = 0;
        if (minute > reported) {
            reported = minute;
            printf("moak-soak: minute %ld: rss %.3f MiB, malloc in use %.3f MiB\n", minute, r / MIB,
                   heap_in_use() / MIB);
            fflush(stdout);
        }
    }
    for (int i = 0; i < opt.clients; i++)
        pthread_join(threads[i], NULL);

    int failed = 0;
    for (int i = 0; i < opt.clients; i++) {
        const client *c = &clients[i];
        printf("client %d: %ld appends, %ld full (cleared and reused), %ld clears, %ld attentions (%s), %ld MoE (%s), "
               "%ld checks against ref; worst err/bound attention %.3f, MoE %.3f (first half %.3f, second half %.3f)"
               "; %s\n",
               i, c->appends, c->full, c->clears, c->attentions, c->backend_attention ? c->backend_attention : "-",
               c->moes, c->backend_moe ? c->backend_moe : "-", c->checks, c->worst_attention, c->worst_moe,
               c->worst_first_half, c->worst_second_half, c->failures ? c->first_failure : "ok");
        if (c->failures || c->checks == 0)
            failed = 1;
    }
    const double growth = rss_max_after - rss_warm;
    const int rss_ok = rss_warm >= 0 && growth < 1.0 * MIB;
    printf("memory: warm-up ended %.0f s into the run (largest shapes done at %.0f s), %.0f s measured after it\n",
           warm_end, all_warm_at >= 0 ? all_warm_at - start : -1.0, warm_end >= 0 ? run_seconds - warm_end : 0.0);
    printf("memory: rss at start %.2f MiB, after warm-up %.2f MiB, largest after warm-up %.2f MiB, at end %.2f MiB; "
           "growth after warm-up %.3f MiB (< 1 MiB): %s; malloc in use after warm-up %.3f MiB, at the last "
           "sample %.3f MiB\n",
           rss_first / MIB, rss_warm / MIB, rss_max_after / MIB, rss_last / MIB, growth / MIB,
           rss_ok ? "ok" : "FAIL", heap_warm / MIB, heap_last / MIB);
    if (!rss_ok)
        failed = 1;
    printf("moak-soak: %s\n", failed ? "FAIL" : "PASS");
    free(clients);
    free(threads);
    return failed;
}
