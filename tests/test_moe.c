/* test_moe — moak_moe_ffn against a double-precision oracle written here.
 *
 * Expert counts and top_k are the models' real ones (they drive the grouping
 * of tokens by expert); hidden and inter sizes are scaled down so the file
 * runs in well under a second per backend.  Every expert that no token chose
 * has its weight bytes set to 0xFF (NaN scales/values in every format) and a
 * NaN bias: a backend that computes such an expert and multiplies it by a zero
 * weight, or mixes it into a chosen expert's rows, produces NaN and fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ref: f32 activations between the projections (h rounded to f32 once),
 * f64 accumulation; against the double oracle that is ~1e-7 of a row's rms.
 * erf/exp in f32 add ~1e-7 more.  1e-5 keeps a wide margin. */
#define REF_BOUND 1e-5

enum { ALL_FORMATS = 0xFF };
#define FMT(f) (1u << (f))

typedef struct moe_case {
    const char *label;       /* the model the shape comes from and what was scaled */
    moak_activation act;
    float alpha, limit;      /* desc fields (0 = defaults) */
    int64_t n_experts;
    int32_t top_k;
    int64_t hidden, inter;
    int64_t n_tokens;
    int bias;                /* gate/up/down biases (gpt-oss) */
    double gate_rms;         /* size of g and u: > 7 sometimes exercises the clamp */
    enum { ROUTE_RANDOM, ROUTE_ONE_FOR_ALL } routing;
    unsigned formats;        /* bit mask of moak_format */
} moe_case;

static const moe_case cases[] = {
    /* Mixtral-8x7B: 8 experts, top-2, SiLU-GLU; hidden 4096 -> 128, inter
     * 14336 -> 160 (not a multiple of 128: I4_G128 rows of the down
     * projection end in a padded group).  Every format. */
    {"mixtral-8x7b h128 i160", MOAK_ACT_SILU_GLU, 0, 0, 8, 2, 128, 160, 24, 0, 1.0,
     ROUTE_RANDOM, ALL_FORMATS},
    {"mixtral-8x7b h128 i160", MOAK_ACT_SILU_GLU, 0, 0, 8, 2, 128, 160, 1, 0, 1.0,
     ROUTE_RANDOM, FMT(MOAK_FORMAT_Q4_0) | FMT(MOAK_FORMAT_F32)},
    /* Mixtral shape with top_k = n_experts: every expert is every token's. */
    {"mixtral-8x7b top_k=E h128 i160", MOAK_ACT_SILU_GLU, 0, 0, 8, 8, 128, 160, 12, 0, 1.0,
     ROUTE_RANDOM, FMT(MOAK_FORMAT_I8_ROW) | FMT(MOAK_FORMAT_F16)},
    /* GELU-GLU (Gemma's activation; no model of models.json uses it) on the
     * Mixtral shape. */
    {"mixtral-8x7b gelu h128 i160", MOAK_ACT_GELU_GLU, 0, 0, 8, 2, 128, 160, 17, 0, 1.0,
     ROUTE_RANDOM, FMT(MOAK_FORMAT_F32) | FMT(MOAK_FORMAT_Q8_0) | FMT(MOAK_FORMAT_I4_G32)},
    /* Qwen3-30B-A3B: 128 experts, top-8, SiLU-GLU; hidden 2048 -> 128, inter 768 -> 64. */
    {"qwen3-30b-a3b h128 i64", MOAK_ACT_SILU_GLU, 0, 0, 128, 8, 128, 64, 40, 0, 1.0,
     ROUTE_RANDOM, FMT(MOAK_FORMAT_BF16) | FMT(MOAK_FORMAT_Q4_0) | FMT(MOAK_FORMAT_I4_G128)},
    {"qwen3-30b-a3b h128 i64", MOAK_ACT_SILU_GLU, 0, 0, 128, 8, 128, 64, 1, 0, 1.0,
     ROUTE_RANDOM, FMT(MOAK_FORMAT_Q8_0) | FMT(MOAK_FORMAT_I4_G32)},
    /* Qwen3-30B-A3B with one expert chosen by every token (slot 0 of each). */
    {"qwen3-30b-a3b one-for-all h128 i64", MOAK_ACT_SILU_GLU, 0, 0, 128, 8, 128, 64, 32, 0,
     1.0, ROUTE_ONE_FOR_ALL, FMT(MOAK_FORMAT_Q4_0) | FMT(MOAK_FORMAT_F16)},
    /* gpt-oss-20b: 32 experts, top-4, clamped SwiGLU (alpha 1.702, limit 7 by
     * default), biases on all three; hidden = inter = 2880 -> 160 and 96 (like
     * 2880, multiples of 32 but not of 128).  g, u of rms 4 so that the clamp
     * at 7 bites on a good share of elements. */
    {"gpt-oss-20b h160 i96", MOAK_ACT_SWIGLU_OAI, 0, 0, 32, 4, 160, 96, 37, 1, 4.0,
     ROUTE_RANDOM,
     FMT(MOAK_FORMAT_Q4_0) | FMT(MOAK_FORMAT_BF16) | FMT(MOAK_FORMAT_I4_G32) |
         FMT(MOAK_FORMAT_F32)},
    /* gpt-oss-120b: 128 experts, top-4; explicit alpha/limit that differ from
     * the defaults, to catch a backend that hard-codes 1.702 and 7. */
    {"gpt-oss-120b a1.0 l3.0 h160 i96", MOAK_ACT_SWIGLU_OAI, 1.0f, 3.0f, 128, 4, 160, 96, 9, 1,
     4.0, ROUTE_RANDOM, FMT(MOAK_FORMAT_Q8_0) | FMT(MOAK_FORMAT_F32)},
    {"gpt-oss-120b h160 i96", MOAK_ACT_SWIGLU_OAI, 1.702f, 7.0f, 128, 4, 160, 96, 1, 1, 4.0,
     ROUTE_RANDOM, FMT(MOAK_FORMAT_Q4_0)},
    /* DeepSeek-V3: 256 experts, top-8; hidden 7168 -> 96, inter 2048 -> 64. */
    {"deepseek-v3 h96 i64", MOAK_ACT_SILU_GLU, 0, 0, 256, 8, 96, 64, 16, 0, 1.0, ROUTE_RANDOM,
     FMT(MOAK_FORMAT_Q8_0) | FMT(MOAK_FORMAT_I8_ROW)},
};

static double activation(const moe_case *c, double g, double u)
{
    switch (c->act) {
    case MOAK_ACT_SILU_GLU:
        return g / (1.0 + exp(-g)) * u;
    case MOAK_ACT_GELU_GLU:
        return 0.5 * g * (1.0 + erf(g / sqrt(2.0))) * u;
    case MOAK_ACT_SWIGLU_OAI: {
        double alpha = c->alpha != 0.0f ? c->alpha : 1.702;
        double limit = c->limit != 0.0f ? c->limit : 7.0;
        if (g > limit)
            g = limit;
        if (u > limit)
            u = limit;
        if (u < -limit)
            u = -limit;
        return (u + 1.0) * g / (1.0 + exp(-alpha * g));
    }
    }
    t_die("unknown activation");
}

/* One projection of expert e: out[rows] = W_e[rows][cols] . in + b_e. */
static void project(const double *w, const float *bias, int64_t e, int64_t rows, int64_t cols,
                    const double *in, double *out)
{
    const double *we = w + e * rows * cols;
    for (int64_t r = 0; r < rows; r++) {
        double acc = bias ? (double)bias[e * rows + r] : 0.0;
        for (int64_t i = 0; i < cols; i++)
            acc += we[r * cols + i] * in[i];
        out[r] = acc;
    }
}

typedef struct moe_data {
    uint8_t *bytes[3];       /* gate, up, down */
    size_t size[3];
    double *deq[3];          /* dequantized, [E][rows][cols]; unchosen experts untouched */
    float *bias[3];
    float *x;
    int32_t *ids;
    float *weights;
    double *ref;
} moe_data;

static void choose_routes(const moe_case *c, int32_t *ids, float *weights, unsigned char *chosen)
{
    int32_t E = (int32_t)c->n_experts;
    /* Experts a token may pick: all of them when top_k = E, else a random
     * three quarters, so some experts are chosen by no token. */
    int32_t *perm = t_malloc(sizeof(int32_t) * (size_t)E);
    t_shuffle_i32(perm, E);
    int32_t n_allowed = c->top_k == E ? E : (3 * E) / 4;
    if (n_allowed < c->top_k)
        n_allowed = c->top_k;
    int32_t special = perm[0]; /* for ROUTE_ONE_FOR_ALL */
    int32_t *pick = t_malloc(sizeof(int32_t) * (size_t)n_allowed);
    for (int64_t t = 0; t < c->n_tokens; t++) {
        /* A random ordering of the allowed experts, the first top_k taken. */
        int32_t *order = t_malloc(sizeof(int32_t) * (size_t)n_allowed);
        t_shuffle_i32(order, n_allowed);
        for (int32_t i = 0; i < n_allowed; i++)
            pick[i] = perm[order[i]];
        free(order);
        if (c->routing == ROUTE_ONE_FOR_ALL) {
            for (int32_t i = 0; i < n_allowed; i++)
                if (pick[i] == special) {
                    pick[i] = pick[0];
                    pick[0] = special;
                }
        }
        double sum = 0.0;
        float raw[512];
        for (int32_t k = 0; k < c->top_k; k++) {
            raw[k] = (float)exp(t_normal());
            sum += raw[k];
        }
        for (int32_t k = 0; k < c->top_k; k++) {
            ids[t * c->top_k + k] = pick[k];
            weights[t * c->top_k + k] = (float)(raw[k] / sum);
            chosen[pick[k]] = 1;
        }
    }
    free(pick);
    free(perm);
}

static void make_data(const moe_case *c, moak_format f, moe_data *d)
{
    int64_t E = c->n_experts, H = c->hidden, I = c->inter, T = c->n_tokens;
    int64_t rows[3] = {I, I, H}, cols[3] = {H, H, I};
    double rms[3] = {c->gate_rms / sqrt((double)H), c->gate_rms / sqrt((double)H),
                     1.0 / sqrt((double)I)};
    memset(d, 0, sizeof(*d));
    d->ids = t_malloc(sizeof(int32_t) * (size_t)(T * c->top_k));
    d->weights = t_alloc_f32((size_t)(T * c->top_k));
    unsigned char *chosen = t_calloc((size_t)E, 1);
    choose_routes(c, d->ids, d->weights, chosen);
    for (int p = 0; p < 3; p++) {
        size_t rb = t_row_bytes(f, cols[p]);
        size_t expert_bytes = rb * (size_t)rows[p];
        d->size[p] = expert_bytes * (size_t)E;
        d->bytes[p] = t_malloc(d->size[p]);
        d->deq[p] = t_alloc_f64((size_t)(E * rows[p] * cols[p]));
        if (c->bias) {
            d->bias[p] = t_alloc_f32((size_t)(E * rows[p]));
            t_fill_normal(d->bias[p], (size_t)(E * rows[p]), p < 2 ? 0.5 : 0.1);
        }
        for (int64_t e = 0; e < E; e++) {
            uint8_t *eb = d->bytes[p] + expert_bytes * (size_t)e;
            if (!chosen[e]) {
                memset(eb, 0xFF, expert_bytes);
                if (d->bias[p])
                    t_poison_f32(d->bias[p] + e * rows[p], (size_t)rows[p]);
                continue;
            }
            for (int64_t r = 0; r < rows[p]; r++) {
                t_random_weight_row(f, cols[p], rms[p], 0, eb + rb * (size_t)r);
                t_dequant_row(f, eb + rb * (size_t)r, cols[p],
                              d->deq[p] + (e * rows[p] + r) * cols[p]);
            }
        }
    }
    free(chosen);
    d->x = t_alloc_f32((size_t)(T * H));
    t_fill_normal(d->x, (size_t)(T * H), 1.0);

    /* The oracle. */
    d->ref = t_alloc_f64((size_t)(T * H));
    double *xin = t_alloc_f64((size_t)H), *g = t_alloc_f64((size_t)I), *u = t_alloc_f64((size_t)I);
    double *h = t_alloc_f64((size_t)I), *down = t_alloc_f64((size_t)H);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < H; i++) {
            xin[i] = d->x[t * H + i];
            d->ref[t * H + i] = 0.0;
        }
        for (int32_t k = 0; k < c->top_k; k++) {
            int64_t e = d->ids[t * c->top_k + k];
            double wk = d->weights[t * c->top_k + k];
            project(d->deq[0], d->bias[0], e, I, H, xin, g);
            project(d->deq[1], d->bias[1], e, I, H, xin, u);
            for (int64_t i = 0; i < I; i++)
                h[i] = activation(c, g[i], u[i]);
            project(d->deq[2], d->bias[2], e, H, I, h, down);
            for (int64_t i = 0; i < H; i++)
                d->ref[t * H + i] += wk * down[i];
        }
    }
    free(xin);
    free(g);
    free(u);
    free(h);
    free(down);
}

static void free_data(moe_data *d)
{
    for (int p = 0; p < 3; p++) {
        free(d->bytes[p]);
        free(d->deq[p]);
        free(d->bias[p]);
    }
    free(d->x);
    free(d->ids);
    free(d->weights);
    free(d->ref);
}

static const char *act_name(moak_activation a)
{
    return a == MOAK_ACT_SILU_GLU ? "silu" : a == MOAK_ACT_GELU_GLU ? "gelu" : "swiglu-oai";
}

static void run_backend(const t_backend *bk, const moe_case *c, moak_format f, const moe_data *d)
{
    moak_context *ctx = bk->ctx;
    int64_t E = c->n_experts, H = c->hidden, I = c->inter, T = c->n_tokens;
    int64_t rows[3] = {I, I, H}, cols[3] = {H, H, I};
    char shape[128];
    snprintf(shape, sizeof(shape), "%s %s E%lld k%d t%lld%s", c->label, act_name(c->act),
             (long long)E, (int)c->top_k, (long long)T, c->bias ? " bias" : "");
    moak_weight *w[3] = {NULL, NULL, NULL};
    for (int p = 0; p < 3; p++) {
        moak_weight_desc desc = MOAK_WEIGHT_DESC_INIT;
        desc.format = f;
        desc.n_experts = E;
        desc.rows = rows[p];
        desc.cols = cols[p];
        desc.data = d->bytes[p];
        desc.data_size = d->size[p];
        desc.bias = d->bias[p];
        moak_status st = moak_weight_create(ctx, &desc, &w[p]);
        if (st != MOAK_OK) {
            t_fail("%s moe %s %s: moak_weight_create: %s (%s)", bk->name, t_format_name(f), shape,
                   moak_status_str(st), moak_last_error(ctx));
            goto out;
        }
    }
    moak_moe_desc md = MOAK_MOE_DESC_INIT;
    md.activation = c->act;
    md.swiglu_alpha = c->alpha;
    md.swiglu_limit = c->limit;
    float *y = t_alloc_f32((size_t)(T * H));
    float *x_copy = t_alloc_f32((size_t)(T * H));
    memcpy(x_copy, d->x, sizeof(float) * (size_t)(T * H));
    t_poison_f32(y, (size_t)(T * H));
    moak_status st = moak_moe_ffn(ctx, &md, w[0], w[1], w[2], d->x, T, c->top_k, d->ids,
                                  d->weights, y);
    if (st != MOAK_OK) {
        t_fail("%s moe %s %s: %s (%s)", bk->name, t_format_name(f), shape, moak_status_str(st),
               moak_last_error(ctx));
    } else {
        const char *ran = moak_last_backend(ctx);
        double err = t_max_row_error(y, d->ref, T, H);
        t_report(bk->name, ran, "moe_ffn", t_format_name(f), shape, err,
                 t_bound_for(ran, REF_BOUND, t_moe_bound(f)));
        if (memcmp(x_copy, d->x, sizeof(float) * (size_t)(T * H)) != 0)
            t_fail("%s moe %s %s: x was modified", bk->name, t_format_name(f), shape);
    }
    free(y);
    free(x_copy);
out:
    for (int p = 0; p < 3; p++)
        moak_weight_destroy(w[p]);
}

int main(void)
{
    t_init("test_moe");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const moe_case *c = &cases[ci];
        for (int f = 0; f < MOAK_FORMAT_COUNT; f++) {
            if (!(c->formats & FMT(f)))
                continue;
            moe_data d;
            make_data(c, (moak_format)f, &d);
            for (int b = 0; b < n_bk; b++)
                run_backend(&bk[b], c, (moak_format)f, &d);
            free_data(&d);
        }
    }
    t_close_backends(bk, n_bk);
    return t_finish();
}
