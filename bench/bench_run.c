/* Timing a workload on a backend (see bench_run.h). */
#include "config.h"

#include "bench_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_support.h"

/* ---- statistics ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_stats(const double *v, int n, double *median, double *min, double *max)
{
    double sorted[BENCH_MAX_REPEATS];
    if (n < 1) {
        *median = *min = *max = 0.0;
        return;
    }
    if (n > BENCH_MAX_REPEATS)
        n = BENCH_MAX_REPEATS;
    memcpy(sorted, v, (size_t)n * sizeof(double));
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    *min = sorted[0];
    *max = sorted[n - 1];
    *median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

/* ---- one workload's state ------------------------------------------------------------------ */

#define LAYER_HEADROOM 1024      /* tokens a layer instance may append while timed */
#define MAX_WEIGHTS 6            /* per instance: the layer has six */

typedef struct runner {
    moak_context *ctx;
    const bench_workload *w;
    moak_format f;
    const bench_options *o;
    bench_result *res;
    tool_rng rng;
    bool failed;

    /* Raw weight bytes (the canonical layout), copied into each instance. */
    int n_weights;
    void *raw[MAX_WEIGHTS];
    size_t raw_size[MAX_WEIGHTS];
    moak_format raw_format[MAX_WEIGHTS];
    int64_t raw_experts[MAX_WEIGHTS], raw_rows[MAX_WEIGHTS], raw_cols[MAX_WEIGHTS];

    /* Instances. */
    moak_weight **weights;       /* [cap][n_weights] */
    int n_inst, cap_inst;
    int64_t *inst_calls;         /* calls each instance has run (layer positions) */
    double inst_bytes;           /* cycled through by one instance */
    double inst_mem;             /* memory of one instance when more than inst_bytes (0 = the same) */
    int64_t calls;

    /* Activations and outputs. */
    float *x, *y;
    /* MoE routing: n_groups groups of [tokens][top_k] ids. */
    int32_t *ids;
    float *route_w;
    int n_groups;
    int64_t experts;             /* allocated per weight */

    /* Attention and layer. */
    moak_kv_cache *kv;
    float *k_src, *v_src;        /* one sequence's K/V, appended to every instance */
    float *q, *out;
    float *sinks;                /* [n_heads] when the workload has sinks */
    /* Sparse attention, indexer, dsa. */
    moak_kv_cache *kv_index;     /* K-only index keys */
    float *idx_k_src, *idx_q, *idx_w;
    int32_t *positions;          /* [sparse_k]: fixed (sparse attention) or the indexer's (dsa) */
    /* Gated delta rule: one state, a sequence per instance; q holds qkv. */
    moak_linear_state *gdn_state;
    float *gdn_w, *gdn_g, *gdn_beta;

    /* Layer buffers. */
    float *xn, *qkv, *att, *o_proj, *x2, *logits, *gamma, *qk_gamma;
    int32_t *layer_ids;
    float *layer_w;
    char ran[48];
} runner;

static bool check(runner *r, moak_status st, const char *call)
{
    if (st == MOAK_OK)
        return true;
    if (!r->failed)
        snprintf(r->res->message, sizeof(r->res->message), "%s: %s; %s", call, moak_status_str(st),
                 moak_last_error(r->ctx));
    r->failed = true;
    return false;
}

static void *alloc_or_fail(runner *r, size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p && !r->failed) {
        snprintf(r->res->message, sizeof(r->res->message), "out of memory (%.0f MiB)", (double)bytes / 1048576.0);
        r->failed = true;
    }
    return p;
}

static float *random_floats(runner *r, int64_t n, float lo, float hi)
{
    float *p = alloc_or_fail(r, (size_t)n * sizeof(float));
    if (p)
        tool_rng_fill(&r->rng, p, n, lo, hi);
    return p;
}

/* Raw weight slot i: `experts` copies of one random expert (rows x cols),
 * quantized to f.  Copies read the same as distinct values would. */
static void make_raw(runner *r, int i, moak_format f, int64_t experts, int64_t rows, int64_t cols)
{
    size_t row_bytes = moak_format_row_bytes(f, cols);
    size_t one = row_bytes * (size_t)rows;
    r->raw_format[i] = f;
    r->raw_experts[i] = experts;
    r->raw_rows[i] = rows;
    r->raw_cols[i] = cols;
    r->raw_size[i] = one * (size_t)experts;
    r->raw[i] = alloc_or_fail(r, r->raw_size[i]);
    enum { CHUNK = 64 };
    float *src = alloc_or_fail(r, (size_t)CHUNK * (size_t)cols * sizeof(float));
    if (r->failed) {
        free(src);
        return;
    }
    float spread = 2.0f / sqrtf((float)cols);
    for (int64_t row = 0; row < rows && !r->failed; row += CHUNK) {
        int64_t n = rows - row < CHUNK ? rows - row : CHUNK;
        tool_rng_fill(&r->rng, src, n * cols, -spread, spread);
        check(r, moak_quantize(f, src, n, cols, (unsigned char *)r->raw[i] + (size_t)row * row_bytes,
                               one - (size_t)row * row_bytes),
              "moak_quantize");
    }
    free(src);
    for (int64_t e = 1; e < experts; e++)
        memcpy((unsigned char *)r->raw[i] + (size_t)e * one, r->raw[i], one);
    if (i + 1 > r->n_weights)
        r->n_weights = i + 1;
}

static double raw_bytes(const runner *r)
{
    double b = 0.0;
    for (int i = 0; i < r->n_weights; i++)
        b += (double)r->raw_size[i];
    return b;
}

/* ---- setup per kind ----------------------------------------------------------------------- */

static double expert_bytes(moak_format f, int64_t hidden, int64_t inter)
{
    return 2.0 * (double)inter * (double)moak_format_row_bytes(f, hidden) +
           (double)hidden * (double)moak_format_row_bytes(f, inter);
}

/* Experts to allocate: the model's, fewer if they would not fit max_mem (never
 * fewer than top_k: a token must find its experts). */
static int64_t experts_to_allocate(const runner *r, int64_t model_experts, int32_t top_k, double per_expert)
{
    int64_t fit = (int64_t)(r->o->max_mem_bytes / 2.0 / per_expert);
    int64_t e = model_experts < fit ? model_experts : fit;
    return e < top_k ? top_k : e;
}

/* ids for MoE: decode walks the experts in groups of top_k (cold) or stays on
 * the first group (hot); more tokens route at random over all experts. */
static void make_routing(runner *r, int64_t tokens, int32_t top_k, int64_t experts)
{
    r->n_groups = tokens == 1 && !r->o->hot ? (int)(experts / top_k) : 1;
    size_t per_group = (size_t)(tokens * top_k);
    r->ids = alloc_or_fail(r, per_group * (size_t)r->n_groups * sizeof(int32_t));
    r->route_w = alloc_or_fail(r, per_group * sizeof(float));
    if (r->failed)
        return;
    for (size_t i = 0; i < per_group; i++)
        r->route_w[i] = 1.0f / (float)top_k;
    if (tokens == 1) {
        for (int g = 0; g < r->n_groups; g++)
            for (int32_t j = 0; j < top_k; j++)
                r->ids[(size_t)g * per_group + (size_t)j] = (int32_t)(g * top_k + j);
        r->res->distinct_experts = top_k;
        return;
    }
    bool *used = calloc((size_t)experts, sizeof(bool));
    for (int64_t t = 0; t < tokens; t++) {
        int32_t *row = r->ids + t * top_k;
        for (int32_t j = 0; j < top_k; j++) {
            bool again;
            do {
                row[j] = (int32_t)tool_rng_range(&r->rng, 0, experts - 1);
                again = false;
                for (int32_t i = 0; i < j; i++)
                    again |= row[i] == row[j];
            } while (again);
            if (used)
                used[row[j]] = true;
        }
    }
    int64_t distinct = 0;
    for (int64_t e = 0; used && e < experts; e++)
        distinct += used[e];
    r->res->distinct_experts = used ? distinct : experts;
    free(used);
}

static void setup_matmul(runner *r)
{
    const bench_workload *w = r->w;
    make_raw(r, 0, r->f, 1, w->n, w->k);
    r->x = random_floats(r, w->m * w->k, -1.0f, 1.0f);
    r->y = alloc_or_fail(r, (size_t)(w->m * w->n) * sizeof(float));
    r->inst_bytes = raw_bytes(r);
}

static void setup_moe(runner *r)
{
    const bench_workload *w = r->w;
    double per_expert = expert_bytes(r->f, w->hidden, w->inter);
    r->experts = experts_to_allocate(r, w->n_experts, w->top_k, per_expert);
    make_raw(r, 0, r->f, r->experts, w->inter, w->hidden);
    make_raw(r, 1, r->f, r->experts, w->inter, w->hidden);
    make_raw(r, 2, r->f, r->experts, w->hidden, w->inter);
    r->x = random_floats(r, w->tokens * w->hidden, -1.0f, 1.0f);
    r->y = alloc_or_fail(r, (size_t)(w->tokens * w->hidden) * sizeof(float));
    make_routing(r, w->tokens, w->top_k, r->experts);
    /* One instance cycles through every allocated expert (decode) or reads
     * them all each call (prefill). */
    r->inst_bytes = raw_bytes(r);
}

static double kv_seq_bytes(moak_format f, int32_t n_kv, int32_t dk, int32_t dv, bool shared_v, int64_t tokens)
{
    double row = (double)moak_format_row_bytes(f, dk) + (shared_v ? 0.0 : (double)moak_format_row_bytes(f, dv));
    return (double)tokens * n_kv * row;
}

static void create_cache(runner *r, moak_format f, int32_t n_kv, int32_t dk, int32_t dv, bool shared_v,
                         int64_t tokens_per_seq)
{
    enum { PAGE = 64 };
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = f;
    d.n_kv_heads = n_kv;
    d.head_dim_k = dk;
    d.head_dim_v = dv;
    d.max_seqs = r->cap_inst;
    d.page_tokens = PAGE;
    d.max_tokens = (int64_t)r->cap_inst * ((tokens_per_seq + PAGE - 1) / PAGE * PAGE);
    d.flags = shared_v ? MOAK_KV_SHARED_V : 0u;
    check(r, moak_kv_cache_create(r->ctx, &d, &r->kv), "moak_kv_cache_create");
}

static void create_index_cache(runner *r, moak_format f, int32_t dim, int64_t tokens_per_seq)
{
    enum { PAGE = 64 };
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = f;
    d.n_kv_heads = 1;
    d.head_dim_k = dim;
    d.max_seqs = r->cap_inst;
    d.page_tokens = PAGE;
    d.max_tokens = (int64_t)r->cap_inst * ((tokens_per_seq + PAGE - 1) / PAGE * PAGE);
    d.flags = MOAK_KV_K_ONLY;
    check(r, moak_kv_cache_create(r->ctx, &d, &r->kv_index), "moak_kv_cache_create(index keys)");
}

static void setup_attention(runner *r)
{
    const bench_workload *w = r->w;
    int64_t L = w->cached;
    r->k_src = random_floats(r, L * w->n_kv_heads * w->head_dim_k, -1.0f, 1.0f);
    if (!w->shared_v)
        r->v_src = random_floats(r, L * w->n_kv_heads * w->head_dim_v, -1.0f, 1.0f);
    r->q = random_floats(r, w->q_len * w->n_heads * w->head_dim_k, -1.0f, 1.0f);
    r->out = alloc_or_fail(r, (size_t)(w->q_len * w->n_heads * w->head_dim_v) * sizeof(float));
    if (w->sinks)
        r->sinks = random_floats(r, w->n_heads, -1.0f, 1.0f);
    r->inst_bytes = kv_seq_bytes(r->f, w->n_kv_heads, w->head_dim_k, w->head_dim_v, w->shared_v, L);
}

/* Gated delta rule: one call's inputs (the same for every instance); an
 * instance is one sequence's state (hv dk dv floats + the conv state). */
static void setup_gated_delta(runner *r)
{
    const bench_workload *w = r->w;
    const int64_t C = 2 * (int64_t)w->n_kv_heads * w->head_dim_k + (int64_t)w->n_heads * w->head_dim_v;
    const int64_t g_per = (int64_t)w->n_heads * (w->gate == MOAK_GATE_PER_KEY ? w->head_dim_k : 1);
    r->q = random_floats(r, w->q_len * C, -1.0f, 1.0f);
    r->gdn_w = random_floats(r, C * w->conv_kernel, -0.5f, 0.5f);
    /* decays of 0.6 .. 0.99 a token, as the models' -exp(A) softplus(.) gives */
    r->gdn_g = random_floats(r, w->q_len * g_per, -0.5f, -0.01f);
    r->gdn_beta = random_floats(r, w->q_len * w->n_heads, 0.1f, 0.9f);
    r->out = alloc_or_fail(r, (size_t)(w->q_len * w->n_heads * w->head_dim_v) * sizeof(float));
    r->inst_bytes = 4.0 * ((double)w->n_heads * w->head_dim_k * w->head_dim_v + (double)(w->conv_kernel - 1) * C);
}

static void create_gated_delta_state(runner *r)
{
    const bench_workload *w = r->w;
    moak_linear_state_desc d = MOAK_LINEAR_STATE_DESC_INIT;
    d.n_qk_heads = w->n_kv_heads;
    d.n_v_heads = w->n_heads;
    d.head_dim_k = w->head_dim_k;
    d.head_dim_v = w->head_dim_v;
    d.conv_kernel = w->conv_kernel;
    d.max_seqs = r->cap_inst;
    check(r, moak_linear_state_create(r->ctx, &d, &r->gdn_state), "moak_linear_state_create");
}

/* Sparse attention: sparse_k distinct positions of the cache in random
 * order (an indexer's list is in score order, unrelated to position). */
static void make_positions(runner *r)
{
    const bench_workload *w = r->w;
    r->positions = alloc_or_fail(r, (size_t)w->sparse_k * sizeof(int32_t));
    int32_t *all = alloc_or_fail(r, (size_t)w->cached * sizeof(int32_t));
    if (!r->failed) {
        for (int64_t j = 0; j < w->cached; j++)
            all[j] = (int32_t)j;
        for (int32_t e = 0; e < w->sparse_k; e++) {
            if (e >= w->cached) {
                r->positions[e] = -1;
                continue;
            }
            int64_t o = tool_rng_range(&r->rng, e, w->cached - 1);
            int32_t t = all[e];
            all[e] = all[o];
            all[o] = t;
            r->positions[e] = all[e];
        }
    }
    free(all);
}

static void setup_indexer(runner *r)
{
    const bench_workload *w = r->w;
    r->idx_k_src = random_floats(r, w->cached * w->index_dim, -1.0f, 1.0f);
    r->idx_q = random_floats(r, (int64_t)w->index_heads * w->index_dim, -1.0f, 1.0f);
    r->idx_w = random_floats(r, w->index_heads, -1.0f, 1.0f);
    r->positions = alloc_or_fail(r, (size_t)w->sparse_k * sizeof(int32_t));
    r->out = alloc_or_fail(r, (size_t)w->sparse_k * sizeof(float)); /* the scores */
    r->inst_bytes = (double)w->cached * (double)moak_format_row_bytes(r->f, w->index_dim);
}

/* dsa: the indexer's index keys and the MLA cache; a call reads all index
 * keys but only sparse_k rows of the MLA cache, so an instance holds more
 * memory than a call cycles through. */
static void setup_dsa(runner *r)
{
    const bench_workload *w = r->w;
    setup_indexer(r);
    free(r->out);
    r->out = NULL;
    setup_attention(r);
    const double index_bytes = (double)w->cached * (double)moak_format_row_bytes(r->f, w->index_dim);
    const double kv_row = kv_seq_bytes(r->f, w->n_kv_heads, w->head_dim_k, w->head_dim_v, w->shared_v, 1);
    const int64_t read = w->sparse_k < w->cached ? w->sparse_k : w->cached;
    r->inst_mem = index_bytes + (double)w->cached * kv_row;
    r->inst_bytes = index_bytes + (double)read * kv_row;
}

static void setup_layer(runner *r)
{
    const bench_workload *w = r->w;
    int64_t q_dim = (int64_t)w->n_heads * w->head_dim_k;
    int64_t kv_dim = (int64_t)w->n_kv_heads * (w->head_dim_k + w->head_dim_v);
    double per_expert = expert_bytes(r->f, w->hidden, w->inter);
    r->experts = experts_to_allocate(r, w->n_experts, w->top_k, per_expert);
    make_raw(r, 0, r->f, 1, q_dim + kv_dim, w->hidden);                      /* qkv */
    make_raw(r, 1, r->f, 1, w->hidden, (int64_t)w->n_heads * w->head_dim_v); /* o */
    make_raw(r, 2, MOAK_FORMAT_F32, 1, r->experts, w->hidden);               /* router */
    make_raw(r, 3, r->f, r->experts, w->inter, w->hidden);                   /* gate */
    make_raw(r, 4, r->f, r->experts, w->inter, w->hidden);                   /* up */
    make_raw(r, 5, r->f, r->experts, w->hidden, w->inter);                   /* down */
    r->x = random_floats(r, w->hidden, -1.0f, 1.0f);
    r->xn = alloc_or_fail(r, (size_t)w->hidden * sizeof(float));
    r->qkv = alloc_or_fail(r, (size_t)(q_dim + kv_dim) * sizeof(float));
    r->att = alloc_or_fail(r, (size_t)w->n_heads * (size_t)w->head_dim_v * sizeof(float));
    r->o_proj = alloc_or_fail(r, (size_t)w->hidden * sizeof(float));
    r->x2 = alloc_or_fail(r, (size_t)w->hidden * sizeof(float));
    r->y = alloc_or_fail(r, (size_t)w->hidden * sizeof(float));
    r->logits = alloc_or_fail(r, (size_t)r->experts * sizeof(float));
    r->gamma = random_floats(r, w->hidden, 0.5f, 1.5f);
    r->qk_gamma = random_floats(r, w->head_dim_k, 0.5f, 1.5f);
    r->layer_ids = alloc_or_fail(r, (size_t)w->top_k * sizeof(int32_t));
    r->layer_w = alloc_or_fail(r, (size_t)w->top_k * sizeof(float));
    r->k_src = random_floats(r, w->cached * w->n_kv_heads * w->head_dim_k, -1.0f, 1.0f);
    r->v_src = random_floats(r, w->cached * w->n_kv_heads * w->head_dim_v, -1.0f, 1.0f);
    r->res->distinct_experts = w->top_k;
    r->inst_bytes = raw_bytes(r) + kv_seq_bytes(w->kv_format, w->n_kv_heads, w->head_dim_k, w->head_dim_v,
                                                false, w->cached);
}

/* One more instance: its weights and (attention, layer) its sequence. */
static void add_instance(runner *r)
{
    const bench_workload *w = r->w;
    int i = r->n_inst;
    if (i >= r->cap_inst || r->failed)
        return;
    for (int k = 0; k < r->n_weights && !r->failed; k++) {
        moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
        d.format = r->raw_format[k];
        d.n_experts = r->raw_experts[k];
        d.rows = r->raw_rows[k];
        d.cols = r->raw_cols[k];
        d.data = r->raw[k];
        d.data_size = r->raw_size[k];
        check(r, moak_weight_create(r->ctx, &d, &r->weights[(size_t)i * MAX_WEIGHTS + (size_t)k]),
              "moak_weight_create");
    }
    if (r->kv_index && !r->failed)
        check(r, moak_kv_cache_append(r->ctx, r->kv_index, i, w->cached, r->idx_k_src, NULL),
              "moak_kv_cache_append(index keys)");
    if (r->kv && !r->failed) {
        /* The same tokens in every sequence: distinct pages, the same reads. */
        if (w->kind == BENCH_ATTENTION || w->kind == BENCH_DSA)
            check(r, moak_kv_cache_append(r->ctx, r->kv, i, w->cached, r->k_src, w->shared_v ? NULL : r->v_src),
                  "moak_kv_cache_append");
        else
            check(r, moak_kv_cache_append(r->ctx, r->kv, i, w->cached, r->k_src, r->v_src), "moak_kv_cache_append");
    }
    if (!r->failed)
        r->n_inst++;
}

/* Note the backend that ran the op just done (first call only). */
static void note_backend(runner *r)
{
    const char *b = moak_last_backend(r->ctx);
    if (strstr(r->ran, b))
        return;
    size_t used = strlen(r->ran);
    snprintf(r->ran + used, sizeof(r->ran) - used, "%s%s", used ? "+" : "", b);
}

/* ---- one call ------------------------------------------------------------------------------ */

static void call_layer(runner *r, int inst, bool first)
{
    const bench_workload *w = r->w;
    moak_weight **ws = &r->weights[(size_t)inst * MAX_WEIGHTS];
    int32_t H = w->n_heads, KV = w->n_kv_heads, d = w->head_dim_k;
    float *q = r->qkv, *k = r->qkv + (size_t)H * d, *v = k + (size_t)KV * d;
    int32_t seq = inst, pos = (int32_t)(w->cached + r->inst_calls[inst]);
    moak_rope_desc rope = MOAK_ROPE_DESC_INIT;
    rope.layout = MOAK_ROPE_NEOX;
    rope.head_dim = d;
    rope.theta_base = w->rope_theta;
    moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
    ad.n_heads = H;
    ad.head_dim_k = d;
    ad.head_dim_v = w->head_dim_v;
    ad.causal = 1;
    moak_router_desc router = MOAK_ROUTER_DESC_INIT;
    router.method = w->route;
    router.n_experts = (int32_t)r->experts;
    router.top_k = w->top_k;
    router.renormalize = 1;
    moak_moe_desc md = MOAK_MOE_DESC_INIT;
    md.activation = w->activation;
    int32_t one = 1;

#define STEP(expr, name)                                                                           \
    do {                                                                                           \
        if (!check(r, (expr), name))                                                               \
            return;                                                                                \
        if (first)                                                                                 \
            note_backend(r);                                                                       \
    } while (0)
    STEP(moak_rmsnorm(r->ctx, r->x, r->gamma, 1, w->hidden, 1e-6f, r->xn), "moak_rmsnorm");
    STEP(moak_matmul(r->ctx, ws[0], r->xn, 1, r->qkv), "moak_matmul(qkv)");
    STEP(moak_rmsnorm(r->ctx, q, r->qk_gamma, H, d, 1e-6f, q), "moak_rmsnorm(q)");
    STEP(moak_rmsnorm(r->ctx, k, r->qk_gamma, KV, d, 1e-6f, k), "moak_rmsnorm(k)");
    STEP(moak_rope(r->ctx, &rope, q, 1, H, &pos, q), "moak_rope(q)");
    STEP(moak_rope(r->ctx, &rope, k, 1, KV, &pos, k), "moak_rope(k)");
    if (!check(r, moak_kv_cache_append(r->ctx, r->kv, seq, 1, k, v), "moak_kv_cache_append"))
        return;
    STEP(moak_attention(r->ctx, &ad, r->kv, &seq, &one, 1, q, r->att), "moak_attention");
    STEP(moak_matmul(r->ctx, ws[1], r->att, 1, r->o_proj), "moak_matmul(o)");
    for (int64_t i = 0; i < w->hidden; i++)
        r->x2[i] = r->x[i] + r->o_proj[i];
    STEP(moak_rmsnorm(r->ctx, r->x2, r->gamma, 1, w->hidden, 1e-6f, r->xn), "moak_rmsnorm");
    STEP(moak_matmul(r->ctx, ws[2], r->xn, 1, r->logits), "moak_matmul(router)");
    STEP(moak_moe_route(r->ctx, &router, r->logits, 1, r->layer_ids, r->layer_w), "moak_moe_route");
    STEP(moak_moe_ffn(r->ctx, &md, ws[3], ws[4], ws[5], r->xn, 1, w->top_k, r->layer_ids, r->layer_w, r->y),
         "moak_moe_ffn");
#undef STEP
    r->inst_calls[inst]++;
}

static void call_once(runner *r, bool first)
{
    const bench_workload *w = r->w;
    int inst = (int)(r->calls % r->n_inst);
    moak_weight **ws = &r->weights[(size_t)inst * MAX_WEIGHTS];
    moak_status st = MOAK_OK;
    switch (w->kind) {
    case BENCH_MATMUL:
        st = moak_matmul(r->ctx, ws[0], r->x, w->m, r->y);
        break;
    case BENCH_MOE: {
        int group = (int)((r->calls / r->n_inst) % r->n_groups);
        moak_moe_desc d = MOAK_MOE_DESC_INIT;
        d.activation = w->activation;
        st = moak_moe_ffn(r->ctx, &d, ws[0], ws[1], ws[2], r->x, w->tokens, w->top_k,
                          r->ids + (size_t)group * (size_t)(w->tokens * w->top_k), r->route_w, r->y);
        break;
    }
    case BENCH_ATTENTION:
    case BENCH_INDEXER:
    case BENCH_DSA: {
        int32_t seq = inst, q_len = (int32_t)w->q_len;
        if (w->kind != BENCH_ATTENTION) {
            moak_indexer_desc x = MOAK_INDEXER_DESC_INIT;
            x.n_heads = w->index_heads;
            x.head_dim = w->index_dim;
            x.top_k = w->sparse_k;
            st = moak_indexer(r->ctx, &x, r->kv_index, &seq, &q_len, 1, r->idx_q, r->idx_w, r->positions,
                              w->kind == BENCH_INDEXER ? r->out : NULL);
            if (w->kind == BENCH_INDEXER || !check(r, st, "moak_indexer"))
                break;
            if (first)
                note_backend(r);
        }
        moak_attention_desc d = MOAK_ATTENTION_DESC_INIT;
        d.n_heads = w->n_heads;
        d.head_dim_k = w->head_dim_k;
        d.head_dim_v = w->head_dim_v;
        d.scale = w->scale;
        d.causal = 1;
        d.sinks = r->sinks;
        if (w->sparse_k > 0) {
            d.sparse_positions = r->positions;
            d.sparse_k = w->sparse_k;
        }
        st = moak_attention(r->ctx, &d, r->kv, &seq, &q_len, 1, r->q, r->out);
        break;
    }
    case BENCH_GATED_DELTA: {
        int32_t seq = inst, q_len = (int32_t)w->q_len;
        moak_gated_delta_desc d = MOAK_GATED_DELTA_DESC_INIT;
        d.n_qk_heads = w->n_kv_heads;
        d.n_v_heads = w->n_heads;
        d.head_dim_k = w->head_dim_k;
        d.head_dim_v = w->head_dim_v;
        d.conv_kernel = w->conv_kernel;
        d.gate = w->gate;
        st = moak_gated_delta_rule(r->ctx, &d, r->gdn_state, &seq, &q_len, 1, r->q, r->gdn_w, r->gdn_g, r->gdn_beta,
                                   r->out);
        break;
    }
    case BENCH_LAYER:
        call_layer(r, inst, first);
        r->calls++;
        return;
    }
    if (check(r, st, "the op") && first)
        note_backend(r);
    r->calls++;
}

static void teardown(runner *r)
{
    for (int i = 0; i < r->n_inst; i++)
        for (int k = 0; k < MAX_WEIGHTS; k++)
            moak_weight_destroy(r->weights[(size_t)i * MAX_WEIGHTS + (size_t)k]);
    free(r->weights);
    free(r->inst_calls);
    moak_kv_cache_destroy(r->kv);
    moak_kv_cache_destroy(r->kv_index);
    moak_linear_state_destroy(r->gdn_state);
    free(r->gdn_w);
    free(r->gdn_g);
    free(r->gdn_beta);
    free(r->idx_k_src);
    free(r->idx_q);
    free(r->idx_w);
    free(r->positions);
    for (int i = 0; i < MAX_WEIGHTS; i++)
        free(r->raw[i]);
    float *floats[] = {r->x, r->y, r->route_w, r->k_src, r->v_src, r->q, r->out, r->xn, r->qkv, r->att,
                       r->o_proj, r->x2, r->logits, r->gamma, r->qk_gamma, r->layer_w, r->sinks};
    for (size_t i = 0; i < sizeof(floats) / sizeof(floats[0]); i++)
        free(floats[i]);
    free(r->ids);
    free(r->layer_ids);
}

/* ---- the protocol ---------------------------------------------------------------------------- */

void bench_run_workload(moak_context *ctx, const char *backend, const bench_workload *w, moak_format f,
                        const bench_options *o, const bench_roofline *roof, bench_result *res)
{
    runner r;
    memset(res, 0, sizeof(*res));
    memset(&r, 0, sizeof(r));
    res->w = w;
    res->format = f;
    res->hot = o->hot;
    res->threads = moak_context_num_threads(ctx);
    snprintf(res->backend, sizeof(res->backend), "%s", backend);
    r.ctx = ctx;
    r.w = w;
    r.f = f;
    r.o = o;
    r.res = res;
    tool_rng_seed(&r.rng, o->seed);
    double t0 = tool_now();

    switch (w->kind) {
    case BENCH_MATMUL: setup_matmul(&r); break;
    case BENCH_MOE: setup_moe(&r); break;
    case BENCH_ATTENTION:
        setup_attention(&r);
        if (w->sparse_k > 0)
            make_positions(&r);
        break;
    case BENCH_LAYER: setup_layer(&r); break;
    case BENCH_INDEXER: setup_indexer(&r); break;
    case BENCH_DSA: setup_dsa(&r); break;
    case BENCH_GATED_DELTA: setup_gated_delta(&r); break;
    }
    res->experts_allocated = r.experts;
    res->instance_bytes = r.inst_bytes;
    /* Instances a cold run wants: enough that the bytes cycled through pass
     * rotate_bytes; never more than max_mem allows. */
    int want = 1, mem_cap = 1;
    if (!o->hot && r.inst_bytes > 0.0) {
        want = (int)ceil(o->rotate_bytes / r.inst_bytes);
        mem_cap = (int)(o->max_mem_bytes / (r.inst_mem > r.inst_bytes ? r.inst_mem : r.inst_bytes));
        want = want < 1 ? 1 : want;
        mem_cap = mem_cap < 1 ? 1 : mem_cap;
        want = want < mem_cap ? want : mem_cap;
    }
    r.cap_inst = want;
    r.weights = calloc((size_t)r.cap_inst * MAX_WEIGHTS, sizeof(moak_weight *));
    r.inst_calls = calloc((size_t)r.cap_inst, sizeof(int64_t));
    if (!r.weights || !r.inst_calls)
        check(&r, MOAK_ERR_OUT_OF_MEMORY, "instances");
    if (!r.failed && (w->kind == BENCH_ATTENTION || w->kind == BENCH_DSA))
        create_cache(&r, f, w->n_kv_heads, w->head_dim_k, w->head_dim_v, w->shared_v, w->cached);
    if (!r.failed && (w->kind == BENCH_INDEXER || w->kind == BENCH_DSA))
        create_index_cache(&r, f, w->index_dim, w->cached);
    if (!r.failed && w->kind == BENCH_GATED_DELTA)
        create_gated_delta_state(&r);
    if (!r.failed && w->kind == BENCH_LAYER)
        create_cache(&r, w->kv_format, w->n_kv_heads, w->head_dim_k, w->head_dim_v, false,
                     w->cached + LAYER_HEADROOM);
    add_instance(&r);
    res->setup_seconds = tool_now() - t0;

    /* First call: warm-up, where it ran, and how long a call takes. */
    double t1 = 0.0;
    if (!r.failed) {
        double c0 = tool_now();
        call_once(&r, true);
        t1 = tool_now() - c0;
        snprintf(res->ran_on, sizeof(res->ran_on), "%s", r.ran);
    }
    /* A named backend must run the op itself; a layer may hand some of its
     * small ops to another backend (shown as "avx512+ref"), not all of them. */
    bool ran_there = w->kind == BENCH_LAYER ? strstr(r.ran, backend) != NULL : strcmp(r.ran, backend) == 0;
    if (!r.failed && strcmp(backend, "auto") != 0 && !ran_there) {
        res->declined = true;
        snprintf(res->message, sizeof(res->message), "%s did not run it (%s did)", backend, r.ran);
        teardown(&r);
        return;
    }
    if (!r.failed) {
        double per_call = t1 > 1e-7 ? t1 : 1e-7;
        double budget_left = o->budget_seconds - t1;
        int64_t iters = (int64_t)ceil(o->min_repeat_seconds / per_call);
        iters = iters < 1 ? 1 : iters;
        /* Instances: as many as a cold run wants when the roofline says the
         * workload is memory-bound (or was not measured); a compute-bound one
         * gets no more than twice the calls the first estimate plans (the
         * margin: the warm-up may find calls faster than the first), since
         * where its bytes come from barely moves its time. */
        bench_count count;
        bench_floor floor;
        bench_count_workload(&count, w, f, res->distinct_experts);
        bench_roofline_floor(roof, &count, o->hot, count.bytes, &floor);
        double planned = 2.0 * (double)iters * (double)(o->repeat + 1) + 1.0;
        bool memory_bound = !roof->measured || floor.memory_seconds >= floor.compute_seconds;
        int target = memory_bound || (double)r.cap_inst < planned ? r.cap_inst : (int)planned;
        while (r.n_inst < target && !r.failed)
            add_instance(&r);
        res->setup_seconds = tool_now() - t0 - t1;
        /* Warm-up: one repeat's worth of calls, when there is time for it and a
         * timed repeat after; it also measures a call better than the first
         * (which may have paid for page faults). */
        if (2.0 * per_call * (double)iters <= budget_left) {
            double w0 = tool_now();
            for (int64_t i = 0; i < iters && !r.failed; i++)
                call_once(&r, false);
            double warm = tool_now() - w0;
            budget_left -= warm;
            per_call = warm / (double)iters > 1e-7 ? warm / (double)iters : 1e-7;
            iters = (int64_t)ceil(o->min_repeat_seconds / per_call);
            iters = iters < 1 ? 1 : iters;
        }
        /* Slow workloads get fewer repeats (at least one call). */
        int repeats = o->repeat;
        int64_t budget_calls = (int64_t)(budget_left / per_call);
        if (budget_calls < iters * (int64_t)repeats) {
            repeats = (int)(budget_calls / iters);
            if (repeats < 1) {
                repeats = 1;
                iters = budget_calls < iters ? budget_calls : iters;
                iters = iters < 1 ? 1 : iters;
            }
        }
        if (w->kind == BENCH_LAYER) {
            /* Each instance's cache has room for LAYER_HEADROOM new tokens. */
            int64_t room = (int64_t)r.n_inst * (LAYER_HEADROOM - 1) - r.calls;
            if (iters * repeats > room) {
                iters = room / repeats;
                iters = iters < 1 ? 1 : iters;
            }
        }
        for (int rep = 0; rep < repeats && !r.failed; rep++) {
            double s0 = tool_now();
            for (int64_t i = 0; i < iters && !r.failed; i++)
                call_once(&r, false);
            res->times[rep] = (tool_now() - s0) / (double)iters;
        }
        res->repeats = repeats;
        res->iterations = iters;
    }
    res->instances = r.n_inst;
    res->ok = !r.failed;
    if (res->ok) {
        bench_stats(res->times, res->repeats, &res->median, &res->min, &res->max);
        bench_count_workload(&res->count, w, f, res->distinct_experts);
        bench_roofline_floor(roof, &res->count, o->hot, res->count.bytes, &res->floor);
        res->pct = bench_roofline_pct(&res->floor, res->median);
    }
    teardown(&r);
}
