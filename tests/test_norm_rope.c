/* test_norm_rope — moak_rmsnorm and moak_rope against double oracles written
 * here, out of place and in place, at the models' real dims (row counts are
 * small: these ops are elementwise, size adds nothing but time). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ref: double accumulation (rmsnorm) and double angles (rope); only the final
 * rounding to f32 remains (~6e-8).  1e-6 is tight. */
#define REF_BOUND 1e-6

/* ---- rmsnorm ---------------------------------------------------------------------- */

typedef struct norm_case {
    const char *label;
    int64_t n_rows, dim;
    float eps;
    int gamma;
    double x_std;        /* small values make eps matter */
} norm_case;

static const norm_case norm_cases[] = {
    /* Qwen3-30B-A3B input norm: hidden 2048, eps 1e-6. */
    {"qwen3-30b-a3b hidden", 7, 2048, 1e-6f, 1, 1.0},
    /* Qwen3 QK-norm: over head_dim 128, one row per head (32 heads x 2 tokens). */
    {"qwen3 qk-norm", 64, 128, 1e-6f, 1, 1.0},
    /* gpt-oss: hidden 2880, eps 1e-5, without gamma. */
    {"gpt-oss no-gamma", 3, 2880, 1e-5f, 0, 1.0},
    /* DeepSeek-V3 hidden 7168, one decode token. */
    {"deepseek-v3 hidden", 1, 7168, 1e-6f, 1, 1.0},
    /* Tiny activations: mean(x^2) = 1e-6 ~ eps, so a wrong eps shows. */
    {"eps-dominated", 5, 256, 1e-6f, 1, 1e-3},
    /* Odd dim, eps 0. */
    {"edge dim5 eps0", 4, 5, 0.0f, 1, 1.0},
};

static void norm_oracle(const norm_case *c, const float *x, const float *gamma, double *y)
{
    for (int64_t r = 0; r < c->n_rows; r++) {
        double ss = 0.0;
        for (int64_t i = 0; i < c->dim; i++)
            ss += (double)x[r * c->dim + i] * x[r * c->dim + i];
        double inv = 1.0 / sqrt(ss / (double)c->dim + (double)c->eps);
        for (int64_t i = 0; i < c->dim; i++)
            y[r * c->dim + i] = x[r * c->dim + i] * inv * (gamma ? (double)gamma[i] : 1.0);
    }
}

static void run_norm(t_backend *bk, int n_bk, const norm_case *c)
{
    size_t n = (size_t)(c->n_rows * c->dim);
    float *x = t_alloc_f32(n), *y = t_alloc_f32(n), *x_copy = t_alloc_f32(n);
    float *gamma = NULL;
    double *ref = t_alloc_f64(n);
    t_fill_normal(x, n, c->x_std);
    if (c->gamma) {
        gamma = t_alloc_f32((size_t)c->dim);
        for (int64_t i = 0; i < c->dim; i++)
            gamma[i] = (float)(1.0 + 0.3 * t_normal());
    }
    norm_oracle(c, x, gamma, ref);
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        for (int in_place = 0; in_place < 2; in_place++) {
            char shape[96];
            snprintf(shape, sizeof(shape), "%s rows%lld dim%lld%s%s", c->label,
                     (long long)c->n_rows, (long long)c->dim, gamma ? "" : " no-gamma",
                     in_place ? " in-place" : "");
            float *out = in_place ? x_copy : y;
            memcpy(x_copy, x, n * sizeof(float));
            if (!in_place)
                t_poison_f32(y, n);
            moak_status st = moak_rmsnorm(ctx, in_place ? x_copy : x, gamma, c->n_rows, c->dim,
                                          c->eps, out);
            if (st != MOAK_OK) {
                t_fail("%s rmsnorm %s: %s (%s)", bk[b].name, shape, moak_status_str(st),
                       moak_last_error(ctx));
                continue;
            }
            const char *ran = moak_last_backend(ctx);
            t_report(bk[b].name, ran, "rmsnorm", "f32", shape,
                     t_max_row_error(out, ref, c->n_rows, c->dim),
                     t_bound_for(ran, REF_BOUND, MOAK_BOUND_RMSNORM));
        }
    }
    free(x);
    free(y);
    free(x_copy);
    free(gamma);
    free(ref);
}

/* ---- rope ------------------------------------------------------------------------- */

/* A model's context-extension rule, as its config.json states it. */
typedef struct rope_scaling_spec {
    moak_rope_scaling type;
    double factor;
    int32_t original;               /* original_max_position_embeddings */
    double beta_fast, beta_slow;    /* yarn: 0 = the defaults 32 / 1 */
    double mscale, mscale_all_dim;  /* yarn: 0 = absent */
    int no_truncate;                /* yarn: "truncate": false */
    double low, high;               /* llama3 low/high_freq_factor */
} rope_scaling_spec;

/* DeepSeek-V3 (models.json): factor 40 over 4096, betas 32/1, mscale and
 * mscale_all_dim 1 (so cos/sin are not scaled: the mscale goes to the
 * attention's logit scale instead). */
static const rope_scaling_spec deepseek_v3_yarn = {MOAK_ROPE_SCALING_YARN, 40.0, 4096, 32.0, 1.0, 1.0, 1.0, 0, 0, 0};
/* gpt-oss: factor 32 over 4096, betas 32/1, "truncate": false; no mscale:
 * cos/sin times 0.1 ln 32 + 1. */
static const rope_scaling_spec gpt_oss_yarn = {MOAK_ROPE_SCALING_YARN, 32.0, 4096, 32.0, 1.0, 0, 0, 1, 0, 0};
/* Kimi K2 (models.json): factor 32 over 4096, beta_fast = beta_slow = 1 (a
 * ramp of zero width), mscale 1 without mscale_all_dim. */
static const rope_scaling_spec kimi_k2_yarn = {MOAK_ROPE_SCALING_YARN, 32.0, 4096, 1.0, 1.0, 1.0, 0, 0, 0, 0};
/* Llama-3.1: factor 8, low 1, high 4, original 8192. */
static const rope_scaling_spec llama31 = {MOAK_ROPE_SCALING_LLAMA3, 8.0, 8192, 0, 0, 0, 0, 0, 1.0, 4.0};

typedef struct rope_case {
    const char *label;
    moak_rope_layout layout;
    int32_t head_dim, rotary_dim;   /* rotary_dim 0 = head_dim */
    float theta_base;               /* 0 = 10000 */
    float position_scale;           /* 0 = 1 */
    int64_t n_tokens;
    int32_t n_heads;
    int32_t max_position;
    const rope_scaling_spec *scaling; /* NULL = none */
    int first_version;              /* pass the struct_size of moak_rope_desc's first version */
} rope_case;

static const rope_case rope_cases[] = {
    /* Qwen3-30B-A3B: NeoX, head_dim 128, theta 1e6, 40960 positions; 32 heads
     * scaled to 8; called with the first version's struct_size. */
    {"qwen3-30b-a3b", MOAK_ROPE_NEOX, 128, 0, 1e6f, 0.0f, 5, 8, 40959, NULL, 1},
    /* Llama-3.1-8B: NeoX, theta 500000, its llama3 frequency scaling, up to 128K. */
    {"llama-3.1-8b llama3", MOAK_ROPE_NEOX, 128, 128, 500000.0f, 0.0f, 5, 8, 131071, &llama31, 0},
    /* DeepSeek-V3's 64-dim rope part, GPT-J pairs, YaRN, up to 160K. */
    {"deepseek-v3 yarn", MOAK_ROPE_GPTJ, 64, 0, 10000.0f, 0.0f, 6, 16, 163839, &deepseek_v3_yarn, 0},
    /* gpt-oss: head_dim 64, theta 150000, YaRN without truncation, up to 128K. */
    {"gpt-oss yarn", MOAK_ROPE_NEOX, 64, 0, 150000.0f, 0.0f, 5, 8, 131071, &gpt_oss_yarn, 0},
    /* Kimi K2: rope 64 of the MLA head (here alone), theta 50000, YaRN. */
    {"kimi-k2 yarn", MOAK_ROPE_GPTJ, 64, 0, 50000.0f, 0.0f, 4, 8, 131071, &kimi_k2_yarn, 0},
    /* Qwen3-Next-80B-A3B: partial rotary 0.25 of head_dim 256 = 64, theta 1e7. */
    {"qwen3-next partial0.25", MOAK_ROPE_NEOX, 256, 64, 1e7f, 0.0f, 4, 4, 32767},
    /* MiniMax-M2: rotary_dim 64 of head_dim 128, theta 5e6. */
    {"minimax-m2 rot64/128", MOAK_ROPE_NEOX, 128, 64, 5e6f, 0.0f, 4, 6, 196607},
    /* DeepSeek-V3's 64-dim rope part in the interleaved (GPT-J) layout, the
     * default base (0 = 10000) and a linear position scale of 1/4. */
    {"deepseek-v3 rope64 gptj", MOAK_ROPE_GPTJ, 64, 0, 0.0f, 0.25f, 6, 16, 163839},
    /* GPT-J layout with a partial rotary dim (32 of 128). */
    {"gptj partial32/128", MOAK_ROPE_GPTJ, 128, 32, 10000.0f, 0.0f, 3, 4, 4095},
};

/* The frequency of pair i after the model's rule, and the factor on cos/sin,
 * written from the published definitions (the YaRN paper as transformers'
 * "yarn" rope type implements it: a ramp over the pair index between the
 * dims that turn beta_fast and beta_slow times in the original context;
 * Meta's Llama-3.1 rule over the wavelength). */
static double oracle_freq(const rope_case *c, int32_t i, double *attention)
{
    const int32_t R = c->rotary_dim ? c->rotary_dim : c->head_dim;
    const double base = c->theta_base != 0.0f ? c->theta_base : 10000.0;
    const double theta = 1.0 / pow(base, (double)(2 * i) / (double)R);
    const rope_scaling_spec *s = c->scaling;
    *attention = 1.0;
    if (!s)
        return theta;
    const double pi = acos(-1.0);
    if (s->type == MOAK_ROPE_SCALING_LLAMA3) {
        const double lambda = 2.0 * pi / theta;
        if (lambda < s->original / s->high)
            return theta;
        if (lambda > s->original / s->low)
            return theta / s->factor;
        const double mix = (s->original / lambda - s->low) / (s->high - s->low);
        return mix * theta + (1.0 - mix) * theta / s->factor;
    }
    /* dim whose wavelength fits b times into the original context:
     * R/2 * ln(L / (2 pi b)) / ln(base) */
    const double bf = s->beta_fast != 0.0 ? s->beta_fast : 32.0, bs = s->beta_slow != 0.0 ? s->beta_slow : 1.0;
    double low = 0.5 * R * log(s->original / (2.0 * pi * bf)) / log(base);
    double high = 0.5 * R * log(s->original / (2.0 * pi * bs)) / log(base);
    if (!s->no_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = fmax(low, 0.0);
    high = fmin(high, (double)(R - 1));
    if (low == high)
        high = high + 0.001;
    const double t = fmin(1.0, fmax(0.0, ((double)i - low) / (high - low)));
    const double m = s->factor > 1.0 ? 0.1 * log(s->factor) + 1.0 : 1.0;
    if (s->mscale != 0.0 && s->mscale_all_dim != 0.0)
        *attention = (0.1 * s->mscale * log(s->factor) + 1.0) / (0.1 * s->mscale_all_dim * log(s->factor) + 1.0);
    else
        *attention = m;
    /* t = 0: extrapolate (keep theta); t = 1: interpolate (theta / factor) */
    return (1.0 - t) * theta + t * theta / s->factor;
}

static void rope_oracle(const rope_case *c, const float *x, const int32_t *pos, double *y)
{
    int32_t D = c->head_dim, R = c->rotary_dim ? c->rotary_dim : D, half = R / 2;
    double pscale = c->position_scale != 0.0f ? c->position_scale : 1.0;
    for (int64_t t = 0; t < c->n_tokens; t++)
        for (int32_t h = 0; h < c->n_heads; h++) {
            const float *xr = x + (t * c->n_heads + h) * D;
            double *yr = y + (t * c->n_heads + h) * D;
            for (int32_t i = 0; i < D; i++)
                yr[i] = xr[i];
            for (int32_t i = 0; i < half; i++) {
                double attention;
                const double freq = oracle_freq(c, i, &attention);
                double angle = (double)pos[t] * pscale * freq;
                double cs = attention * cos(angle), sn = attention * sin(angle);
                int32_t a = c->layout == MOAK_ROPE_NEOX ? i : 2 * i;
                int32_t b = c->layout == MOAK_ROPE_NEOX ? i + half : 2 * i + 1;
                yr[a] = xr[a] * cs - xr[b] * sn;
                yr[b] = xr[a] * sn + xr[b] * cs;
            }
        }
}

static void run_rope(t_backend *bk, int n_bk, const rope_case *c)
{
    size_t n = (size_t)(c->n_tokens * c->n_heads * c->head_dim);
    float *x = t_alloc_f32(n), *y = t_alloc_f32(n), *x_copy = t_alloc_f32(n);
    double *ref = t_alloc_f64(n);
    int32_t *pos = t_malloc(sizeof(int32_t) * (size_t)c->n_tokens);
    t_fill_normal(x, n, 1.0);
    /* Position 0 (the identity), the largest the model takes, and random ones. */
    for (int64_t t = 0; t < c->n_tokens; t++)
        pos[t] = t == 0 ? 0 : t == 1 ? c->max_position : (int32_t)t_rand_int(1, c->max_position);
    rope_oracle(c, x, pos, ref);
    moak_rope_desc d = MOAK_ROPE_DESC_INIT;
    d.layout = c->layout;
    d.head_dim = c->head_dim;
    d.rotary_dim = c->rotary_dim;
    d.theta_base = c->theta_base;
    d.position_scale = c->position_scale;
    if (c->first_version)
        d.struct_size = offsetof(moak_rope_desc, scaling);
    if (c->scaling) {
        const rope_scaling_spec *s = c->scaling;
        d.scaling = s->type;
        d.scaling_factor = (float)s->factor;
        d.original_max_position = s->original;
        if (s->type == MOAK_ROPE_SCALING_YARN) {
            d.beta_fast = (float)s->beta_fast;
            d.beta_slow = (float)s->beta_slow;
            d.mscale = (float)s->mscale;
            d.mscale_all_dim = (float)s->mscale_all_dim;
            d.yarn_exact_range = s->no_truncate;
        } else {
            d.low_freq_factor = (float)s->low;
            d.high_freq_factor = (float)s->high;
        }
    }
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        for (int in_place = 0; in_place < 2; in_place++) {
            char shape[112];
            snprintf(shape, sizeof(shape), "%s %s hd%d rot%d t%lld h%d pos<=%d%s", c->label,
                     c->layout == MOAK_ROPE_NEOX ? "neox" : "gptj", (int)c->head_dim,
                     (int)(c->rotary_dim ? c->rotary_dim : c->head_dim), (long long)c->n_tokens,
                     (int)c->n_heads, (int)c->max_position, in_place ? " in-place" : "");
            float *out = in_place ? x_copy : y;
            memcpy(x_copy, x, n * sizeof(float));
            if (!in_place)
                t_poison_f32(y, n);
            moak_status st = moak_rope(ctx, &d, in_place ? x_copy : x, c->n_tokens, c->n_heads,
                                       pos, out);
            if (st != MOAK_OK) {
                t_fail("%s rope %s: %s (%s)", bk[b].name, shape, moak_status_str(st),
                       moak_last_error(ctx));
                continue;
            }
            const char *ran = moak_last_backend(ctx);
            t_report(bk[b].name, ran, "rope", "f32", shape,
                     t_max_row_error(out, ref, c->n_tokens * c->n_heads, c->head_dim),
                     t_bound_for(ran, REF_BOUND, MOAK_BOUND_ROPE));
        }
    }
    free(x);
    free(y);
    free(x_copy);
    free(ref);
    free(pos);
}

int main(void)
{
    t_init("test_norm_rope");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (size_t c = 0; c < sizeof(norm_cases) / sizeof(norm_cases[0]); c++)
        run_norm(bk, n_bk, &norm_cases[c]);
    for (size_t c = 0; c < sizeof(rope_cases) / sizeof(rope_cases[0]); c++)
        run_rope(bk, n_bk, &rope_cases[c]);
    t_close_backends(bk, n_bk);
    return t_finish();
}
