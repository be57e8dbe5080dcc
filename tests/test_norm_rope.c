/* test_norm_rope — moak_rmsnorm and moak_rope against double oracles written
 * here, out of place and in place, at the models' real dims (row counts are
 * small: these ops are elementwise, size adds nothing but time). */
#include <math.h>
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

typedef struct rope_case {
    const char *label;
    moak_rope_layout layout;
    int32_t head_dim, rotary_dim;   /* rotary_dim 0 = head_dim */
    float theta_base;               /* 0 = 10000 */
    float position_scale;           /* 0 = 1 */
    int64_t n_tokens;
    int32_t n_heads;
    int32_t max_position;
} rope_case;

static const rope_case rope_cases[] = {
    /* Qwen3-30B-A3B: NeoX, head_dim 128, theta 1e6, 40960 positions; 32 heads scaled to 8. */
    {"qwen3-30b-a3b", MOAK_ROPE_NEOX, 128, 0, 1e6f, 0.0f, 5, 8, 40959},
    /* Llama-3.1-8B: NeoX, theta 500000 (its llama3 frequency scaling is not a moak feature). */
    {"llama-3.1-8b", MOAK_ROPE_NEOX, 128, 128, 500000.0f, 0.0f, 3, 8, 8191},
    /* Qwen3-Next-80B-A3B: partial rotary 0.25 of head_dim 256 = 64, theta 1e7. */
    {"qwen3-next partial0.25", MOAK_ROPE_NEOX, 256, 64, 1e7f, 0.0f, 4, 4, 32767},
    /* MiniMax-M2: rotary_dim 64 of head_dim 128, theta 5e6. */
    {"minimax-m2 rot64/128", MOAK_ROPE_NEOX, 128, 64, 5e6f, 0.0f, 4, 6, 196607},
    /* DeepSeek-V3's 64-dim rope part in the interleaved (GPT-J) layout, the
     * default base (0 = 10000) and a linear position scale of 1/4. */
    {"deepseek-v3 rope64 gptj", MOAK_ROPE_GPTJ, 64, 0, 0.0f, 0.25f, 6, 16, 163839},
    /* GPT-J layout with a partial rotary dim (32 of 128). */
    {"gptj partial32/128", MOAK_ROPE_GPTJ, 128, 32, 10000.0f, 0.0f, 3, 4, 4095},
    /* gpt-oss: head_dim 64, theta 150000, positions up to 131071 (its yarn is not a moak feature). */
    {"gpt-oss", MOAK_ROPE_NEOX, 64, 0, 150000.0f, 0.0f, 4, 8, 131071},
};

static void rope_oracle(const rope_case *c, const float *x, const int32_t *pos, double *y)
{
    int32_t D = c->head_dim, R = c->rotary_dim ? c->rotary_dim : D, half = R / 2;
    double base = c->theta_base != 0.0f ? c->theta_base : 10000.0;
    double pscale = c->position_scale != 0.0f ? c->position_scale : 1.0;
    for (int64_t t = 0; t < c->n_tokens; t++)
        for (int32_t h = 0; h < c->n_heads; h++) {
            const float *xr = x + (t * c->n_heads + h) * D;
            double *yr = y + (t * c->n_heads + h) * D;
            for (int32_t i = 0; i < D; i++)
                yr[i] = xr[i];
            for (int32_t i = 0; i < half; i++) {
                double angle = (double)pos[t] * pscale * pow(base, -2.0 * i / (double)R);
                double cs = cos(angle), sn = sin(angle);
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
