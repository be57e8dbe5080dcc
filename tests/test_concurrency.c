/* test_concurrency — exactly what the thread-safety contract of moak.h
 * allows, done at once from several threads, with every result checked:
 *   1. own contexts: each thread creates its context, weight and KV cache,
 *      runs matmul and attention, and destroys them, while the others do;
 *   2. one shared context: threads run matmul on one shared weight and on
 *      weights of their own, append to their own sequences of one shared KV
 *      cache, read seq_len of the others' sequences, run attention, and make
 *      failing calls; each thread's moak_last_error / moak_last_backend
 *      report its own last call whatever the others do meanwhile;
 *   3. a weight or cache used through another context than its own is
 *      refused (MOAK_ERR_INVALID_ARGUMENT) while its owner computes with it;
 *   4. context-free calls (quantize/dequantize, moak_last_error(NULL)) from
 *      every thread.
 * Oracles are the test's own double-precision sums (F32 weights and an F32
 * cache, so the bounds are the tight float ones).  Threads do not call the
 * test helpers (they are not thread-safe): each keeps its own failure count
 * and first message, reported by the main thread.
 *
 * The CI runs this under ThreadSanitizer (.ci/run); it is small because each
 * context's pool spins while it waits for work. */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define N_THREADS 4
#define ROUNDS 12
#define ROWS 24
#define COLS 40
#define M 3
#define KV_HEADS 2
#define Q_HEADS 4
#define DIM 32
#define TOKENS_PER_ROUND 5
#define PAGE 8

typedef struct shared {
    float w[N_THREADS + 1][ROWS * COLS];   /* [N_THREADS] is the shared weight */
    float x[N_THREADS][M * COLS];
    float k[N_THREADS][ROUNDS * TOKENS_PER_ROUND * KV_HEADS * DIM];
    float v[N_THREADS][ROUNDS * TOKENS_PER_ROUND * KV_HEADS * DIM];
    float q[N_THREADS][Q_HEADS * DIM];
    moak_context *ctx;                      /* part 2 */
    moak_weight *shared_w;
    moak_kv_cache *kv;
    int32_t ctx_threads;
    pthread_barrier_t start;
    atomic_long calls;                      /* calls finished on sh->ctx */
} shared;

typedef struct worker {
    shared *sh;
    int id;
    int failures;
    char first[400];
    long checks;
} worker;

static void fail(worker *w, const char *fmt, ...) T_PRINTF(2, 3);
static void fail(worker *w, const char *fmt, ...)
{
    if (w->failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->first, sizeof(w->first), fmt, ap);
        va_end(ap);
    }
}

static void check(worker *w, int ok, const char *what)
{
    w->checks++;
    if (!ok)
        fail(w, "thread %d: %s", w->id, what);
}

/* max_r max_j |y - ref| / rms(ref row), as moak.h (rows of ROWS >= 16 values). */
static double matmul_error(const float *wt, const float *x, const float *y)
{
    double worst = 0;
    for (int r = 0; r < M; r++) {
        double ss = 0, mx = 0, ref[ROWS];
        for (int n = 0; n < ROWS; n++) {
            double acc = 0;
            for (int c = 0; c < COLS; c++)
                acc += (double)x[r * COLS + c] * wt[n * COLS + c];
            ref[n] = acc;
            ss += acc * acc;
        }
        for (int n = 0; n < ROWS; n++) {
            const double d = isfinite(y[r * ROWS + n]) ? fabs(y[r * ROWS + n] - ref[n]) : INFINITY;
            if (d > mx)
                mx = d;
        }
        const double e = mx / sqrt(ss / ROWS);
        if (e > worst)
            worst = e;
    }
    return worst;
}

static moak_weight *make_weight(moak_context *ctx, const float *data)
{
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = MOAK_FORMAT_F32;
    d.n_experts = 1;
    d.rows = ROWS;
    d.cols = COLS;
    d.data = data;
    d.data_size = sizeof(float) * ROWS * COLS;
    moak_weight *w = NULL;
    return moak_weight_create(ctx, &d, &w) == MOAK_OK ? w : NULL;
}

static moak_kv_cache *make_cache(moak_context *ctx, int32_t seqs)
{
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = MOAK_FORMAT_F32;
    d.n_kv_heads = KV_HEADS;
    d.head_dim_k = DIM;
    d.head_dim_v = DIM;
    d.max_seqs = seqs;
    /* each sequence takes whole pages */
    d.max_tokens = (int64_t)seqs * ((ROUNDS * TOKENS_PER_ROUND + PAGE - 1) / PAGE) * PAGE;
    d.page_tokens = PAGE;
    moak_kv_cache *kv = NULL;
    return moak_kv_cache_create(ctx, &d, &kv) == MOAK_OK ? kv : NULL;
}

static void matmul_checked(worker *w, moak_context *ctx, const moak_weight *wt, const float *data, const float *x)
{
    float y[M * ROWS];
    t_poison_f32(y, M * ROWS);
    moak_status st = moak_matmul(ctx, wt, x, M, y);
    if (ctx == w->sh->ctx)
        atomic_fetch_add(&w->sh->calls, 1);
    if (st != MOAK_OK) {
        fail(w, "thread %d: moak_matmul: %s (%s)", w->id, moak_status_str(st), moak_last_error(ctx));
        return;
    }
    check(w, matmul_error(data, x, y) <= MOAK_BOUND_MATMUL_F32 + 1e-5, "matmul within MOAK_BOUND_MATMUL_F32");
    check(w, moak_last_error(ctx)[0] == '\0', "moak_last_error is \"\" after this thread's successful call");
    check(w, moak_last_backend(ctx)[0] != '\0', "moak_last_backend names a backend after this thread's op");
}

/* Attention of one query (the newest token) of sequence `seq` holding `len`
 * tokens, against the double oracle over k/v as appended (F32 cache). */
static void attention_checked(worker *w, moak_context *ctx, const moak_kv_cache *kv, int32_t seq, int64_t len,
                              const float *k, const float *v, const float *q)
{
    float out[Q_HEADS * DIM];
    t_poison_f32(out, Q_HEADS * DIM);
    moak_attention_desc d = MOAK_ATTENTION_DESC_INIT;
    d.n_heads = Q_HEADS;
    d.head_dim_k = DIM;
    d.head_dim_v = DIM;
    d.causal = 1;
    const int32_t q_len = 1;
    moak_status st = moak_attention(ctx, &d, kv, &seq, &q_len, 1, q, out);
    if (st != MOAK_OK) {
        fail(w, "thread %d: moak_attention: %s (%s)", w->id, moak_status_str(st), moak_last_error(ctx));
        return;
    }
    double ref[Q_HEADS * DIM], ss = 0, mx = 0;
    const double scale = 1.0 / sqrt((double)DIM);
    for (int h = 0; h < Q_HEADS; h++) {
        const int kvh = h / (Q_HEADS / KV_HEADS);
        double s[ROUNDS * TOKENS_PER_ROUND], top = -INFINITY, sum = 0;
        for (int64_t j = 0; j < len; j++) {
            double dot = 0;
            for (int i = 0; i < DIM; i++)
                dot += (double)q[h * DIM + i] * k[(j * KV_HEADS + kvh) * DIM + i];
            s[j] = dot * scale;
            if (s[j] > top)
                top = s[j];
        }
        for (int64_t j = 0; j < len; j++)
            sum += (s[j] = exp(s[j] - top));
        for (int i = 0; i < DIM; i++) {
            double acc = 0;
            for (int64_t j = 0; j < len; j++)
                acc += s[j] * v[(j * KV_HEADS + kvh) * DIM + i];
            ref[h * DIM + i] = acc / sum;
            ss += ref[h * DIM + i] * ref[h * DIM + i];
        }
    }
    for (int i = 0; i < Q_HEADS * DIM; i++) {
        const double dd = isfinite(out[i]) ? fabs(out[i] - ref[i]) : INFINITY;
        if (dd > mx)
            mx = dd;
    }
    check(w, mx / sqrt(ss / (Q_HEADS * DIM)) <= MOAK_BOUND_ATTENTION_FLOAT + 1e-5,
          "attention within MOAK_BOUND_ATTENTION_FLOAT");
}

/* A call that must fail naming `needle`; then this thread's message names it. */
static void failing_call(worker *w, moak_context *ctx, const moak_weight *wt, const float *x)
{
    float y[M * ROWS];
    t_poison_bytes(y, sizeof(y));
    unsigned char before[sizeof(y)];
    memcpy(before, y, sizeof(y));
    /* each thread breaks a different rule, so a message crossing threads shows */
    const int which = w->id % 3;
    moak_status st = which == 0   ? moak_matmul(ctx, wt, x, 0, y)
                     : which == 1 ? moak_matmul(ctx, wt, NULL, M, y)
                                  : moak_matmul(ctx, NULL, x, M, y);
    const char *needle = which == 0 ? "m:" : which == 1 ? "x:" : "w:";
    const moak_status want = which == 0 ? MOAK_ERR_INVALID_ARGUMENT : MOAK_ERR_NULL_ARGUMENT;
    check(w, st == want, "the failing call returns its status");
    check(w, memcmp(before, y, sizeof(y)) == 0, "the failing call wrote nothing");
    /* Let other threads' calls on the same context land between this call
     * and the read (bounded: they may have finished): a message kept per
     * context, not per thread, would be theirs by now. */
    shared *sh = w->sh;
    if (ctx == sh->ctx) {
        const long mark = atomic_fetch_add(&sh->calls, 1) + 1;
        for (long spins = 0; atomic_load(&sh->calls) < mark + 2 && spins < 200000; spins++)
            sched_yield();
    }
    const char *msg = moak_last_error(ctx);
    check(w, strncmp(msg, needle, strlen(needle)) == 0, "moak_last_error names this thread's own argument");
}

/* Part 1: everything owned by the thread. */
static void *own_context(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    pthread_barrier_wait(&sh->start);
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.num_threads = sh->ctx_threads;
    moak_context *ctx = NULL;
    if (moak_context_create(&o, &ctx) != MOAK_OK) {
        fail(w, "thread %d: moak_context_create: %s", w->id, moak_last_error(NULL));
        return NULL;
    }
    moak_weight *wt = make_weight(ctx, sh->w[w->id]);
    moak_kv_cache *kv = make_cache(ctx, 1);
    if (!wt || !kv) {
        fail(w, "thread %d: weight/cache creation: %s", w->id, moak_last_error(ctx));
    } else {
        for (int r = 0; r < ROUNDS; r++) {
            matmul_checked(w, ctx, wt, sh->w[w->id], sh->x[w->id]);
            const size_t off = (size_t)r * TOKENS_PER_ROUND * KV_HEADS * DIM;
            moak_status st = moak_kv_cache_append(ctx, kv, 0, TOKENS_PER_ROUND, sh->k[w->id] + off,
                                                  sh->v[w->id] + off);
            check(w, st == MOAK_OK, "append to an own cache");
            attention_checked(w, ctx, kv, 0, (int64_t)(r + 1) * TOKENS_PER_ROUND, sh->k[w->id], sh->v[w->id],
                              sh->q[w->id]);
            failing_call(w, ctx, wt, sh->x[w->id]);
        }
    }
    moak_kv_cache_destroy(kv);
    moak_weight_destroy(wt);
    moak_context_destroy(ctx);
    return NULL;
}

/* Part 2 and 3: one shared context, shared weight and cache. */
static void *shared_context(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    moak_weight *own = make_weight(sh->ctx, sh->w[w->id]);
    if (!own)
        fail(w, "thread %d: weight on the shared context: %s", w->id, moak_last_error(sh->ctx));
    pthread_barrier_wait(&sh->start);
    for (int r = 0; r < ROUNDS && own; r++) {
        matmul_checked(w, sh->ctx, sh->shared_w, sh->w[N_THREADS], sh->x[w->id]);
        matmul_checked(w, sh->ctx, own, sh->w[w->id], sh->x[w->id]);
        const size_t off = (size_t)r * TOKENS_PER_ROUND * KV_HEADS * DIM;
        moak_status st = moak_kv_cache_append(sh->ctx, sh->kv, w->id, TOKENS_PER_ROUND, sh->k[w->id] + off,
                                              sh->v[w->id] + off);
        check(w, st == MOAK_OK, "append to the thread's sequence of the shared cache");
        /* the others' lengths move meanwhile; ours is ours alone */
        int64_t len = -1, other = -1;
        check(w, moak_kv_cache_seq_len(sh->kv, w->id, &len) == MOAK_OK &&
                     len == (int64_t)(r + 1) * TOKENS_PER_ROUND,
              "seq_len of the thread's own sequence");
        check(w, moak_kv_cache_seq_len(sh->kv, (w->id + 1) % N_THREADS, &other) == MOAK_OK && other >= 0 &&
                     other <= ROUNDS * TOKENS_PER_ROUND,
              "seq_len of another thread's sequence");
        attention_checked(w, sh->ctx, sh->kv, w->id, len, sh->k[w->id], sh->v[w->id], sh->q[w->id]);
        failing_call(w, sh->ctx, own, sh->x[w->id]);
    }
    moak_weight_destroy(own);
    return NULL;
}

/* Part 3 (from a thread with its own context) and part 4. */
static void *foreign_and_context_free(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.num_threads = 1;
    moak_context *mine = NULL;
    if (moak_context_create(&o, &mine) != MOAK_OK) {
        fail(w, "thread %d: moak_context_create: %s", w->id, moak_last_error(NULL));
        pthread_barrier_wait(&sh->start);
        return NULL;
    }
    pthread_barrier_wait(&sh->start);
    for (int r = 0; r < ROUNDS; r++) {
        float y[M * ROWS];
        t_poison_bytes(y, sizeof(y));
        moak_status st = moak_matmul(mine, sh->shared_w, sh->x[0], M, y);
        check(w, st == MOAK_ERR_INVALID_ARGUMENT && strstr(moak_last_error(mine), "another context"),
              "a weight used through another context is refused");
        const int32_t seq = 0, q_len = 1;
        moak_attention_desc d = MOAK_ATTENTION_DESC_INIT;
        d.n_heads = Q_HEADS;
        d.head_dim_k = DIM;
        d.head_dim_v = DIM;
        st = moak_attention(mine, &d, sh->kv, &seq, &q_len, 1, sh->q[0], y);
        check(w, st == MOAK_ERR_INVALID_ARGUMENT, "a cache used through another context is refused");
        /* context-free: quantize and dequantize, and this thread's message */
        unsigned char q8[2 * 34];
        float back[64];
        st = moak_quantize(MOAK_FORMAT_Q8_0, sh->x[0], 2, 32, q8, sizeof(q8));
        check(w, st == MOAK_OK && moak_dequantize(MOAK_FORMAT_Q8_0, q8, sizeof(q8), 2, 32, back) == MOAK_OK,
              "quantize/dequantize Q8_0");
        double mx = 0, amax = 0;
        for (int i = 0; i < 64; i++) {
            mx = fmax(mx, fabs(back[i] - sh->x[0][i]));
            amax = fmax(amax, fabs(sh->x[0][i]));
        }
        check(w, mx <= amax / 127.0, "Q8_0 round trip within one quantization step");
        st = moak_quantize(MOAK_FORMAT_Q8_0, sh->x[0], 2, 32, q8, 1);
        check(w, st != MOAK_OK && strstr(moak_last_error(NULL), "dst_size"),
              "moak_last_error(NULL) names this thread's failed context-free call");
    }
    moak_context_destroy(mine);
    return NULL;
}

int main(void)
{
    t_init("test_concurrency");
    shared *sh = t_calloc(1, sizeof(*sh));
    for (int i = 0; i <= N_THREADS; i++)
        t_fill_normal(sh->w[i], ROWS * COLS, 1.0);
    for (int i = 0; i < N_THREADS; i++) {
        t_fill_normal(sh->x[i], M * COLS, 1.0);
        t_fill_normal(sh->k[i], sizeof(sh->k[i]) / sizeof(float), 1.0);
        t_fill_normal(sh->v[i], sizeof(sh->v[i]) / sizeof(float), 1.0);
        t_fill_normal(sh->q[i], Q_HEADS * DIM, 1.0);
    }
    /* two pool threads per context: the pool runs, and TSan sees its hand-offs */
    sh->ctx_threads = t_max_threads() < 2 ? t_max_threads() : 2;

    /* Part 1: own contexts */
    worker w1[N_THREADS];
    pthread_t th[N_THREADS + 1];
    pthread_barrier_init(&sh->start, NULL, N_THREADS);
    for (int i = 0; i < N_THREADS; i++) {
        w1[i] = (worker){.sh = sh, .id = i};
        if (pthread_create(&th[i], NULL, own_context, &w1[i]) != 0)
            t_die("pthread_create failed");
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&sh->start);
    for (int i = 0; i < N_THREADS; i++)
        t_check(w1[i].failures == 0 && w1[i].checks > 0, "own contexts: thread %d, %ld checks: %s", i, w1[i].checks,
                w1[i].failures ? w1[i].first : "all passed");

    /* Parts 2-4: a shared context, its shared weight and cache */
    sh->ctx = t_context(NULL, sh->ctx_threads);
    sh->shared_w = make_weight(sh->ctx, sh->w[N_THREADS]);
    sh->kv = make_cache(sh->ctx, N_THREADS);
    if (!sh->shared_w || !sh->kv)
        t_die("shared weight/cache: %s", moak_last_error(sh->ctx));
    worker w2[N_THREADS + 1];
    pthread_barrier_init(&sh->start, NULL, N_THREADS + 1);
    for (int i = 0; i < N_THREADS; i++) {
        w2[i] = (worker){.sh = sh, .id = i};
        if (pthread_create(&th[i], NULL, shared_context, &w2[i]) != 0)
            t_die("pthread_create failed");
    }
    w2[N_THREADS] = (worker){.sh = sh, .id = N_THREADS};
    if (pthread_create(&th[N_THREADS], NULL, foreign_and_context_free, &w2[N_THREADS]) != 0)
        t_die("pthread_create failed");
    for (int i = 0; i <= N_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&sh->start);
    for (int i = 0; i < N_THREADS; i++)
        t_check(w2[i].failures == 0 && w2[i].checks > 0, "shared context: thread %d, %ld checks: %s", i,
                w2[i].checks, w2[i].failures ? w2[i].first : "all passed");
    t_check(w2[N_THREADS].failures == 0 && w2[N_THREADS].checks > 0,
            "foreign context + context-free calls: %ld checks: %s", w2[N_THREADS].checks,
            w2[N_THREADS].failures ? w2[N_THREADS].first : "all passed");
    /* every sequence holds exactly what its thread appended */
    for (int i = 0; i < N_THREADS; i++) {
        int64_t len = -1;
        moak_kv_cache_seq_len(sh->kv, i, &len);
        t_check(len == ROUNDS * TOKENS_PER_ROUND, "shared cache: sequence %d holds %lld tokens (want %d)", i,
                (long long)len, ROUNDS * TOKENS_PER_ROUND);
    }
    moak_kv_cache_destroy(sh->kv);
    moak_weight_destroy(sh->shared_w);
    moak_context_destroy(sh->ctx);
    free(sh);
    return t_finish();
}
