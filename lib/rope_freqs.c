/* RoPE's per-pair frequencies after the model's context-extension rule
 * (moak.h, moak_rope_scaling: YaRN and Llama-3's), in double, once for every
 * backend: the backends multiply positions by these and cos/sin by the
 * attention factor, so a rule is never written twice.  The published
 * definitions (the YaRN paper, Meta's Llama-3.1 release; transformers'
 * "yarn" and "llama3" rope types) compute in f32; moak's reference keeps
 * double throughout, as for the unscaled angles. */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ROPE_PI 3.14159265358979323846

/* YaRN's attention-factor term m(F, s) = 0.1 s ln F + 1 (1 for F <= 1). */
static double yarn_mscale(double factor, double s)
{
    return factor <= 1.0 ? 1.0 : 0.1 * s * log(factor) + 1.0;
}

/* The (fractional) rotary dim whose pair turns `rotations` times over the
 * original context. */
static double yarn_correction_dim(double rotations, int32_t rot, double base, double original)
{
    return (double)rot * log(original / (rotations * 2.0 * ROPE_PI)) / (2.0 * log(base));
}

static void yarn_freqs(const moak_rope_desc *d, int32_t rot, double base, double *f, double *attention)
{
    const double factor = d->scaling_factor;
    const double beta_fast = d->beta_fast == 0.0f ? 32.0 : d->beta_fast;
    const double beta_slow = d->beta_slow == 0.0f ? 1.0 : d->beta_slow;
    double lo = yarn_correction_dim(beta_fast, rot, base, d->original_max_position);
    double hi = yarn_correction_dim(beta_slow, rot, base, d->original_max_position);
    if (!d->yarn_exact_range) {
        lo = floor(lo);
        hi = ceil(hi);
    }
    lo = lo > 0.0 ? lo : 0.0;
    hi = hi < (double)(rot - 1) ? hi : (double)(rot - 1);
    if (hi == lo)
        hi += 0.001; /* the published rule's guard against a zero-width ramp */
    for (int32_t i = 0; i < rot / 2; i++) {
        double ramp = ((double)i - lo) / (hi - lo);
        ramp = ramp < 0.0 ? 0.0 : ramp > 1.0 ? 1.0 : ramp;
        /* below lo the pair turns often in the original context: kept
         * (extrapolated); above hi it is interpolated by the factor */
        f[i] = f[i] / factor * ramp + f[i] * (1.0 - ramp);
    }
    if (d->attention_factor != 0.0f)
        *attention = d->attention_factor;
    else if (d->mscale != 0.0f && d->mscale_all_dim != 0.0f)
        *attention = yarn_mscale(factor, d->mscale) / yarn_mscale(factor, d->mscale_all_dim);
    else
        *attention = yarn_mscale(factor, 1.0);
}

static void llama3_freqs(const moak_rope_desc *d, int32_t rot, double *f)
{
    const double factor = d->scaling_factor;
    const double low = d->low_freq_factor == 0.0f ? 1.0 : d->low_freq_factor;
    const double high = d->high_freq_factor == 0.0f ? 4.0 : d->high_freq_factor;
    const double original = d->original_max_position;
    for (int32_t i = 0; i < rot / 2; i++) {
        const double wavelength = 2.0 * ROPE_PI / f[i];
        if (wavelength < original / high)
            continue; /* high frequencies: unchanged */
        if (wavelength > original / low) {
            f[i] /= factor; /* low frequencies: interpolated */
            continue;
        }
        const double smooth = (original / wavelength - low) / (high - low);
        f[i] = (1.0 - smooth) * f[i] / factor + smooth * f[i];
    }
}

/* Each rule's fields: finite, in range, and 0 where the rule does not use
 * them (a field set for another rule is a caller's mix-up, not a no-op). */
static moak_status check_scaling(moak_context *ctx, const moak_rope_desc *d)
{
    if ((unsigned)d->scaling > MOAK_ROPE_SCALING_LLAMA3)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->scaling: %d is not a moak_rope_scaling",
                          (int)d->scaling);
    const bool yarn = d->scaling == MOAK_ROPE_SCALING_YARN, llama3 = d->scaling == MOAK_ROPE_SCALING_LLAMA3;
    const struct {
        const char *name;
        float value;
        bool used;
    } fields[] = {
        {"scaling_factor", d->scaling_factor, yarn || llama3},
        {"beta_fast", d->beta_fast, yarn},
        {"beta_slow", d->beta_slow, yarn},
        {"mscale", d->mscale, yarn},
        {"mscale_all_dim", d->mscale_all_dim, yarn},
        {"attention_factor", d->attention_factor, yarn},
        {"low_freq_factor", d->low_freq_factor, llama3},
        {"high_freq_factor", d->high_freq_factor, llama3},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!fields[i].used && fields[i].value != 0.0f)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "desc->%s: %g is set, but desc->scaling (%d) does not use it (leave it 0)",
                              fields[i].name, fields[i].value, (int)d->scaling);
        if (!moak_finite(fields[i].value) || fields[i].value < 0.0f)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->%s: %g must be finite and >= 0",
                              fields[i].name, fields[i].value);
    }
    if (!yarn && d->yarn_exact_range != 0)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->yarn_exact_range: %d is set, but desc->scaling is not YARN (leave it 0)",
                          (int)d->yarn_exact_range);
    if (!yarn && !llama3) {
        if (d->original_max_position != 0)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "desc->original_max_position: %d is set, but desc->scaling is NONE (leave it 0)",
                              (int)d->original_max_position);
        return MOAK_OK;
    }
    if (d->scaling_factor < 1.0f)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->scaling_factor: %g must be >= 1 (the context extension factor) with YARN or LLAMA3",
                          d->scaling_factor);
    if (d->original_max_position < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->original_max_position: %d must be >= 1 (the pretraining context) with YARN or LLAMA3",
                          (int)d->original_max_position);
    if (yarn) {
        const float fast = d->beta_fast == 0.0f ? 32.0f : d->beta_fast;
        const float slow = d->beta_slow == 0.0f ? 1.0f : d->beta_slow;
        if (slow > fast)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "desc->beta_slow: %g must be <= beta_fast (%g; 0 means 1 and 32)", slow, fast);
        if (d->yarn_exact_range != 0 && d->yarn_exact_range != 1)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->yarn_exact_range: %d must be 0 or 1",
                              (int)d->yarn_exact_range);
    } else {
        const float low = d->low_freq_factor == 0.0f ? 1.0f : d->low_freq_factor;
        const float high = d->high_freq_factor == 0.0f ? 4.0f : d->high_freq_factor;
        if (high <= low)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "desc->high_freq_factor: %g must be > low_freq_factor (%g; 0 means 4 and 1)", high,
                              low);
    }
    return MOAK_OK;
}

moak_status moak_rope_read_desc(moak_context *ctx, const moak_rope_desc *desc, moak_rope_desc *out)
{
    /* The first version ended at position_scale: a caller built against it
     * passes that size and gets no scaling.  Any other size short of the
     * whole struct would cut a field. */
    const size_t first = offsetof(moak_rope_desc, scaling);
    if (desc->struct_size != first) {
        moak_status st = moak_check_struct_size(ctx, desc->struct_size, sizeof(moak_rope_desc), "desc");
        if (st != MOAK_OK)
            return st;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out, desc, desc->struct_size < sizeof(*out) ? desc->struct_size : sizeof(*out));
    return check_scaling(ctx, out);
}

double *moak_rope_freqs(const moak_rope_desc *d, int32_t rot, double base, double *attention_factor)
{
    double *f = malloc((size_t)(rot / 2) * sizeof(double));
    if (!f)
        return NULL;
    for (int32_t i = 0; i < rot / 2; i++)
        f[i] = pow(base, -2.0 * (double)i / (double)rot);
    *attention_factor = 1.0;
    if (d->scaling == MOAK_ROPE_SCALING_YARN)
        yarn_freqs(d, rot, base, f, attention_factor);
    else if (d->scaling == MOAK_ROPE_SCALING_LLAMA3)
        llama3_freqs(d, rot, f);
    return f;
}
