/* The GLU activations of the MoE FFN (moak.h's moak_activation), written in
 * the x86_simd_*.h vocabulary; moe_glu_<isa>.c instantiates it as GLU_FN.
 *
 * exp: Cody-Waite range reduction to r in [-ln2/2, ln2/2] and a degree-6
 * polynomial (Cephes' expf coefficients), about 2 ulp; arguments clamped to
 * [-87.3, 88.7] so 2^n stays a normal float.  erf: Abramowitz & Stegun
 * 7.1.26, absolute error below 1.5e-7.  Both are far inside the MoE bounds
 * (the f32 one is 2e-4 of the row's rms). */
static inline simd_f glu_exp(simd_f x)
{
    x = simd_f_min(simd_f_max(x, simd_f_set1(-87.3f)), simd_f_set1(88.7f));
    simd_f n = simd_f_round(simd_f_mul(x, simd_f_set1(1.44269504f)));
    simd_f r = simd_f_fma(n, simd_f_set1(-0.693359375f), x);
    r = simd_f_fma(n, simd_f_set1(2.12194440e-4f), r);
    simd_f p = simd_f_set1(1.9875691500e-4f);
    p = simd_f_fma(p, r, simd_f_set1(1.3981999507e-3f));
    p = simd_f_fma(p, r, simd_f_set1(8.3334519073e-3f));
    p = simd_f_fma(p, r, simd_f_set1(4.1665795894e-2f));
    p = simd_f_fma(p, r, simd_f_set1(1.6666665459e-1f));
    p = simd_f_fma(p, r, simd_f_set1(5.0000001201e-1f));
    p = simd_f_fma(simd_f_mul(p, r), r, simd_f_add(r, simd_f_set1(1.0f)));
    return simd_f_mul(p, simd_f_exp2_int(n));
}

/* x * sigmoid(a * x) = x / (1 + exp(-a x)) */
static inline simd_f glu_swish(simd_f x, simd_f a)
{
    simd_f e = glu_exp(simd_f_mul(simd_f_sub(simd_f_zero(), a), x));
    return simd_f_div(x, simd_f_add(simd_f_set1(1.0f), e));
}

static inline simd_f glu_erf(simd_f x)
{
    simd_f ax = simd_f_abs(x);
    simd_f t = simd_f_div(simd_f_set1(1.0f), simd_f_fma(simd_f_set1(0.3275911f), ax, simd_f_set1(1.0f)));
    simd_f p = simd_f_set1(1.061405429f);
    p = simd_f_fma(p, t, simd_f_set1(-1.453152027f));
    p = simd_f_fma(p, t, simd_f_set1(1.421413741f));
    p = simd_f_fma(p, t, simd_f_set1(-0.284496736f));
    p = simd_f_fma(p, t, simd_f_set1(0.254829592f));
    p = simd_f_mul(p, t);
    simd_f e = glu_exp(simd_f_mul(simd_f_sub(simd_f_zero(), ax), ax));
    simd_f y = simd_f_sub(simd_f_set1(1.0f), simd_f_mul(p, e));
    return simd_f_copysign(y, x);
}

static inline simd_f glu_one(moak_activation act, simd_f alpha, simd_f limit, simd_f g, simd_f u)
{
    switch (act) {
    case MOAK_ACT_GELU_GLU: {
        simd_f e = glu_erf(simd_f_mul(g, simd_f_set1(0.70710678118654752f)));
        simd_f gelu = simd_f_mul(simd_f_mul(simd_f_set1(0.5f), g), simd_f_add(simd_f_set1(1.0f), e));
        return simd_f_mul(gelu, u);
    }
    case MOAK_ACT_SWIGLU_OAI: {
        g = simd_f_min(g, limit);
        u = simd_f_max(simd_f_min(u, limit), simd_f_sub(simd_f_zero(), limit));
        return simd_f_mul(simd_f_add(u, simd_f_set1(1.0f)), glu_swish(g, alpha));
    }
    default:
        return simd_f_mul(glu_swish(g, simd_f_set1(1.0f)), u);
    }
}

void GLU_FN(moak_activation act, float alpha, float limit, const float *g, const float *u,
            int64_t n, float *h);

void GLU_FN(moak_activation act, float alpha, float limit, const float *g, const float *u,
            int64_t n, float *h)
{
    const simd_f va = simd_f_set1(alpha), vl = simd_f_set1(limit);
    int64_t i = 0;
    for (; i + SIMD_LANES <= n; i += SIMD_LANES)
        simd_f_store(h + i, glu_one(act, va, vl, simd_f_load(g + i), simd_f_load(u + i)));
    if (i < n) {
        float gt[SIMD_LANES] = {0}, ut[SIMD_LANES] = {0}, ht[SIMD_LANES];
        for (int64_t j = i; j < n; j++) {
            gt[j - i] = g[j];
            ut[j - i] = u[j];
        }
        simd_f_store(ht, glu_one(act, va, vl, simd_f_load(gt), simd_f_load(ut)));
        for (int64_t j = i; j < n; j++)
            h[j] = ht[j - i];
    }
}
