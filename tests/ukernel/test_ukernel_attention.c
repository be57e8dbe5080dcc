/* test_ukernel_attention — every entry of every attention kernel table this
 * machine can run (cpu_attn_kernels_<isa>, backends/cpu/attention_body.h),
 * called directly, against a double-precision oracle written here:
 *   load_rows  every KV format, head dims with and without a tail
 *              (exact: the widening is exact, Q8_0 is one f32 product)
 *   qk_dot, qk_gemm  every row count up to 20, key counts 1..64
 *   softmax    random visibility per row, a second block on the first's
 *              state, a soft-cap of 20, a cap of 1e30 (issue 16: the result
 *              is the uncapped logit) and exp_mul 2^100 (a scale near
 *              FLT_MAX, issue 16)
 *   pv         every row count up to 13, dims with a partial register tile
 *   fused      every padded row count (1 .. lanes), every KV format, masked
 *              and unmasked blocks, two blocks in a row
 * The tables are the library's internal symbols: this test links the ISA
 * convenience libraries, not libmoak.  A table runs when the library's probe
 * (capped by MOAK_ISA_MAX) says its backend is available, so
 * tests/run-levels.sh covers each ISA level; a table the CPU cannot run is
 * skipped and said so. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../backends/cpu/cpu_attention.h"
#include "../testutil.h"

#define KEYS CPU_ATTN_KEYS_PER_TILE
#define LOG2E 1.44269504088896340736
#define BOUND 2e-6 /* relative to the oracle's scale: f32 sums of <= 576 terms */

static int backend_available(const char *name)
{
    for (int32_t i = 0; i < moak_backend_count(); i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        if (moak_backend_query(i, &info) == MOAK_OK && strcmp(info.name, name) == 0)
            return info.available;
    }
    return 0;
}

static void *zalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        abort();
    memset(p, 0, bytes);
    return p;
}

static int32_t round_up(int32_t v, int32_t unit) { return (v + unit - 1) / unit * unit; }

/* Random KV rows of `dim` elements in format f: bytes and the values in double. */
static unsigned char *kv_rows(moak_format f, int32_t n, int32_t dim, size_t *stride, double *deq)
{
    *stride = t_row_bytes(f, dim);
    unsigned char *bytes = zalloc((size_t)n * *stride);
    for (int32_t j = 0; j < n; j++) {
        t_random_weight_row(f, dim, 1.0, 0, bytes + (size_t)j * *stride);
        t_dequant_row(f, bytes + (size_t)j * *stride, dim, deq + (size_t)j * dim);
    }
    return bytes;
}

static void test_load_rows(const cpu_attn_kernels *kt, moak_format f, int32_t dim)
{
    const int32_t dim_pad = round_up(dim, kt->lanes), n = (int32_t)t_rand_int(1, KEYS);
    double *deq = t_alloc_f64((size_t)n * dim);
    size_t stride;
    unsigned char *bytes = kv_rows(f, n, dim, &stride, deq);
    const unsigned char *rows[KEYS];
    for (int32_t j = 0; j < n; j++)
        rows[j] = bytes + (size_t)j * stride;
    float *dst = zalloc((size_t)KEYS * dim_pad * sizeof(float));
    t_poison_f32(dst, (size_t)KEYS * dim_pad);
    kt->load_rows(f, rows, n, dim, dim_pad, dst);
    double worst = 0.0;
    for (int32_t j = 0; j < n; j++)
        for (int32_t d = 0; d < dim_pad; d++) {
            const double want = d < dim ? deq[(size_t)j * dim + d] : 0.0;
            const double got = dst[(size_t)j * dim_pad + d];
            const double e = isfinite(got) ? fabs(got - want) / (fabs(want) + 1e-30) : INFINITY;
            worst = e > worst ? e : worst;
        }
    t_check(worst <= 1.2e-7, "%-6s attn_load_rows %-5s dim %3d n %2d: rel err %.3g", kt->isa, t_format_name(f),
            (int)dim, (int)n, worst);
    free(dst);
    free(bytes);
    free(deq);
}

/* q [rows_pad][dk_pad] (rows >= rows and dims >= dk zero), its transpose, K tile. */
static void test_scores(const cpu_attn_kernels *kt, int32_t rows, int32_t dk, int gemm)
{
    const int32_t rows_pad = round_up(rows, 16), dk_pad = round_up(dk, kt->lanes);
    const int32_t n = (int32_t)t_rand_int(1, KEYS);
    float *q = zalloc((size_t)rows_pad * dk_pad * sizeof(float));
    float *qt = zalloc((size_t)rows_pad * dk_pad * sizeof(float));
    float *k = zalloc((size_t)KEYS * dk_pad * sizeof(float));
    float *s = zalloc((size_t)KEYS * rows_pad * sizeof(float));
    for (int32_t r = 0; r < rows; r++)
        t_fill_normal(q + (size_t)r * dk_pad, (size_t)dk, 1.0);
    for (int32_t r = 0; r < rows_pad; r++)
        for (int32_t d = 0; d < dk_pad; d++)
            qt[(size_t)d * rows_pad + r] = q[(size_t)r * dk_pad + d];
    for (int32_t j = 0; j < KEYS; j++)
        t_fill_normal(k + (size_t)j * dk_pad, (size_t)dk, 1.0);
    t_poison_f32(s, (size_t)KEYS * rows_pad);
    if (gemm)
        kt->qk_gemm(qt, rows_pad, dk_pad, k, n, s);
    else
        kt->qk_dot(q, rows, rows_pad, dk_pad, k, n, s);
    double worst = 0.0;
    for (int32_t j = 0; j < n; j++)
        for (int32_t r = 0; r < rows; r++) {
            double dot = 0.0, mag = 0.0;
            for (int32_t d = 0; d < dk; d++) {
                const double t = (double)q[(size_t)r * dk_pad + d] * k[(size_t)j * dk_pad + d];
                dot += t;
                mag += fabs(t);
            }
            /* an f32 sum of dk products in any order: within dk u sum |t| */
            const double got = s[(size_t)j * rows_pad + r];
            const double e = isfinite(got) ? fabs(got - dot) / (mag * (double)dk * 0x1p-24) : INFINITY;
            worst = e > worst ? e : worst;
        }
    t_check(worst <= 1.0, "%-6s %s rows %2d dk %3d n %2d: err / (dk u sum|qk|) %.3g", kt->isa,
            gemm ? "attn_qk_gemm" : "attn_qk_dot ", (int)rows, (int)dk, (int)n, worst);
    free(q);
    free(qt);
    free(k);
    free(s);
}

/* The oracle's logit of score s (cpu_attn_logits, in double). */
static double logit_of(double s, const cpu_attn_logits *lg)
{
    if (lg->cap_in == 0.0f)
        return s;
    const double t = s * lg->cap_in;
    if (fabs(t) < 1e-4)
        return s * lg->small_mul * (1.0 - t * t / 3.0);
    return lg->cap_out * tanh(t);
}

/* Two online-softmax blocks on one state against the oracle's m, l, p. */
static void test_softmax(const cpu_attn_kernels *kt, int32_t rows, const cpu_attn_logits *lg,
                         double score_std, const char *what)
{
    const int32_t rows_pad = round_up(rows, 16);
    float *s = zalloc((size_t)KEYS * rows_pad * sizeof(float));
    float *m = zalloc(sizeof(float) * rows_pad), *l = zalloc(sizeof(float) * rows_pad);
    float *corr = zalloc(sizeof(float) * rows_pad);
    int32_t *lo = zalloc(sizeof(int32_t) * rows_pad), *hi = zalloc(sizeof(int32_t) * rows_pad);
    double *m_ref = t_alloc_f64((size_t)rows_pad), *l_ref = t_alloc_f64((size_t)rows_pad);
    for (int32_t r = 0; r < rows_pad; r++) {
        m[r] = -INFINITY;
        m_ref[r] = -INFINITY;
        l_ref[r] = 0.0;
    }
    double worst = 0.0;
    for (int block = 0; block < 2; block++) {
        const int32_t n = (int32_t)t_rand_int(1, KEYS);
        for (int32_t r = 0; r < rows_pad; r++) {
            lo[r] = r < rows ? (int32_t)t_rand_int(0, n / 2) : 0;
            hi[r] = r < rows ? (int32_t)t_rand_int(lo[r], n) : 0; /* may see nothing */
        }
        t_fill_normal(s, (size_t)KEYS * rows_pad, score_std);
        float *s0 = malloc((size_t)KEYS * rows_pad * sizeof(float));
        memcpy(s0, s, (size_t)KEYS * rows_pad * sizeof(float));
        kt->softmax(s, rows_pad, n, lo, hi, lg, m, l, corr);
        for (int32_t r = 0; r < rows; r++) {
            double mx = m_ref[r];
            for (int32_t j = lo[r]; j < hi[r]; j++) {
                const double x = logit_of(s0[(size_t)j * rows_pad + r], lg);
                mx = x > mx ? x : mx;
            }
            const double c = m_ref[r] == -INFINITY ? 0.0 : exp2((m_ref[r] - mx) * lg->exp_mul);
            double sum = 0.0;
            for (int32_t j = 0; j < n; j++) {
                const int vis = j >= lo[r] && j < hi[r];
                const double p = vis ? exp2((logit_of(s0[(size_t)j * rows_pad + r], lg) - mx) * lg->exp_mul) : 0.0;
                /* the kernel flushes p below 2^-64 to 0 */
                const double got = s[(size_t)j * rows_pad + r];
                const double e = isfinite(got) ? fabs(got - (p < 0x1p-64 ? 0.0 : p)) : INFINITY;
                worst = e > worst ? e : worst;
                sum += p;
            }
            if (mx != -INFINITY) {
                const double em = fabs((double)m[r] - mx) / (fabs(mx) + 1.0);
                const double ec = m_ref[r] == -INFINITY ? 0.0 : fabs(corr[r] - c);
                worst = em > worst ? em : worst;
                worst = ec > worst ? ec : worst;
            }
            l_ref[r] = l_ref[r] * c + sum;
            m_ref[r] = mx;
            const double el = fabs(l[r] - l_ref[r]) / (l_ref[r] + 1.0);
            worst = el > worst ? el : worst;
        }
        free(s0);
    }
    t_check(worst <= 4e-6, "%-6s attn_softmax rows %2d %-22s: err %.3g", kt->isa, (int)rows, what, worst);
    free(s);
    free(m);
    free(l);
    free(corr);
    free(lo);
    free(hi);
    free(m_ref);
    free(l_ref);
}

static void test_pv(const cpu_attn_kernels *kt, int32_t rows, int32_t dv)
{
    const int32_t rows_pad = round_up(rows, 16), dv_pad = round_up(dv, kt->lanes);
    const int32_t n = (int32_t)t_rand_int(1, KEYS);
    float *p = zalloc((size_t)KEYS * rows_pad * sizeof(float));
    float *v = zalloc((size_t)KEYS * dv_pad * sizeof(float));
    float *o = zalloc((size_t)rows_pad * dv_pad * sizeof(float));
    float *corr = zalloc(sizeof(float) * rows_pad);
    for (size_t i = 0; i < (size_t)KEYS * rows_pad; i++)
        p[i] = (float)t_rand_int(1, 1000) / 1000.0f;
    for (int32_t j = 0; j < KEYS; j++)
        t_fill_normal(v + (size_t)j * dv_pad, (size_t)dv, 1.0);
    for (int32_t r = 0; r < rows_pad; r++) {
        t_fill_normal(o + (size_t)r * dv_pad, (size_t)dv_pad, 1.0);
        corr[r] = (float)t_rand_int(1, 1000) / 1000.0f;
    }
    double *want = t_alloc_f64((size_t)rows * dv_pad);
    for (int32_t r = 0; r < rows; r++)
        for (int32_t d = 0; d < dv_pad; d++) {
            double acc = (double)o[(size_t)r * dv_pad + d] * corr[r];
            for (int32_t j = 0; j < n; j++)
                acc += (double)p[(size_t)j * rows_pad + r] * v[(size_t)j * dv_pad + d];
            want[(size_t)r * dv_pad + d] = acc;
        }
    kt->pv(p, rows, rows_pad, n, v, dv_pad, corr, o);
    const double err = t_max_row_error(o, want, rows, dv_pad);
    t_check(err <= BOUND, "%-6s attn_pv rows %2d dv %3d n %2d: err %.3g", kt->isa, (int)rows, (int)dv,
            (int)n, err);
    free(p);
    free(v);
    free(o);
    free(corr);
    free(want);
}

/* Two fused blocks of one tile (rows <= rp), K and V rows of format f. */
static void test_fused(const cpu_attn_kernels *kt, moak_format f, int32_t rows, int32_t dk, int32_t dv,
                       int masked)
{
    const int32_t lanes = kt->lanes;
    int32_t rp = 1;
    while (rp < rows)
        rp *= 2;
    cpu_attn_fused *fs = zalloc(sizeof(*fs));
    float *q = zalloc((size_t)dk * rp * sizeof(float)); /* chunk-major [dk/lanes][rp][lanes] */
    double *qd = t_alloc_f64((size_t)rows * dk);
    const int32_t dv_pad = round_up(dv, lanes);
    float *o = zalloc((size_t)rp * dv_pad * sizeof(float));
    t_fill_normal(q, (size_t)dk * rp, 0.3);
    for (int32_t c = 0; c < dk / lanes; c++)
        for (int32_t r = 0; r < rp; r++)
            for (int32_t i = 0; i < lanes; i++) {
                float *x = &q[((size_t)c * rp + r) * lanes + i];
                if (r >= rows)
                    *x = 0.0f;
                else
                    qd[(size_t)r * dk + c * lanes + i] = *x;
            }
    fs->q = q;
    fs->o = o;
    fs->rows = rows;
    fs->rp = rp;
    fs->dk = dk;
    fs->dv = dv;
    fs->dv_pad = dv_pad;
    fs->format = f;
    fs->logits.exp_mul = 1.0f;
    for (int i = 0; i < CPU_ATTN_MAX_LANES; i++) {
        fs->m[i] = -INFINITY;
        fs->l[i] = 0.0f;
    }
    double *m_ref = t_alloc_f64((size_t)rows), *l_ref = t_alloc_f64((size_t)rows);
    double *o_ref = t_alloc_f64((size_t)rows * dv);
    memset(o_ref, 0, (size_t)rows * dv * sizeof(double));
    for (int32_t r = 0; r < rows; r++) {
        m_ref[r] = -INFINITY;
        l_ref[r] = 0.0;
    }
    for (int block = 0; block < 2; block++) {
        const int32_t n = (int32_t)t_rand_int(1, KEYS);
        double *kd = t_alloc_f64((size_t)n * dk), *vd = t_alloc_f64((size_t)n * dv);
        size_t ks, vs;
        unsigned char *kb = kv_rows(f, n, dk, &ks, kd);
        unsigned char *vb = kv_rows(f, n, dv, &vs, vd);
        bool all = !masked;
        for (int32_t r = 0; r < rp; r++) {
            fs->lo[r] = masked && r < rows ? (int32_t)t_rand_int(0, n / 2) : 0;
            fs->hi[r] = masked && r < rows ? (int32_t)t_rand_int(fs->lo[r] + 1, n) : n;
        }
        kt->fused_block(fs, kb, ks, vb, vs, n, all);
        for (int32_t r = 0; r < rows; r++) {
            double mx = m_ref[r];
            double *sc = t_alloc_f64((size_t)n);
            for (int32_t j = fs->lo[r]; j < fs->hi[r]; j++) {
                double dot = 0.0;
                for (int32_t d = 0; d < dk; d++)
                    dot += qd[(size_t)r * dk + d] * kd[(size_t)j * dk + d];
                sc[j] = dot;
                mx = dot > mx ? dot : mx;
            }
            const double c = m_ref[r] == -INFINITY ? 0.0 : exp2(m_ref[r] - mx);
            l_ref[r] *= c;
            for (int32_t d = 0; d < dv; d++)
                o_ref[(size_t)r * dv + d] *= c;
            for (int32_t j = fs->lo[r]; j < fs->hi[r]; j++) {
                const double p = exp2(sc[j] - mx);
                l_ref[r] += p;
                for (int32_t d = 0; d < dv; d++)
                    o_ref[(size_t)r * dv + d] += p * vd[(size_t)j * dv + d];
            }
            m_ref[r] = mx;
            free(sc);
        }
        free(kd);
        free(vd);
        free(kb);
        free(vb);
    }
    double worst = 0.0;
    for (int32_t r = 0; r < rows; r++) {
        /* lane r holds row r's m and l (lane layout: lane i is row i % rp) */
        const double em = fabs(fs->m[r] - m_ref[r]) / (fabs(m_ref[r]) + 1.0);
        const double el = fabs(fs->l[r] - l_ref[r]) / l_ref[r];
        worst = em > worst ? em : worst;
        worst = el > worst ? el : worst;
        float *orow = o + (size_t)r * dv_pad;
        double *want = o_ref + (size_t)r * dv;
        const double eo = t_row_error(orow, want, dv);
        worst = eo > worst ? eo : worst;
    }
    t_check(worst <= 1e-5, "%-6s attn_fused_decode_%s_r%d rows %2d dk %3d dv %3d %s: err %.3g", kt->isa,
            t_format_name(f), (int)rp, (int)rows, (int)dk, (int)dv, masked ? "masked" : "all   ", worst);
    free(fs);
    free(q);
    free(qd);
    free(o);
    free(m_ref);
    free(l_ref);
    free(o_ref);
}

static void test_table(const cpu_attn_kernels *kt)
{
    const moak_format formats[] = {MOAK_FORMAT_F32, MOAK_FORMAT_F16, MOAK_FORMAT_BF16, MOAK_FORMAT_Q8_0};
    for (int fi = 0; fi < 4; fi++) {
        test_load_rows(kt, formats[fi], 576);
        test_load_rows(kt, formats[fi], 64);
        if (formats[fi] != MOAK_FORMAT_Q8_0) {
            test_load_rows(kt, formats[fi], 72);
            test_load_rows(kt, formats[fi], 3);
        }
    }
    for (int32_t rows = 1; rows <= 20; rows++) {
        test_scores(kt, rows, rows % 3 == 0 ? 72 : 128, 0);
        test_scores(kt, rows, rows % 3 == 0 ? 72 : 192, 1);
    }
    test_scores(kt, 131, 576, 1);
    const cpu_attn_logits plain = {0.0f, 0.0f, 0.0f, 1.0f};
    /* soft-cap 20 on logits in base 2: cap2 = 20 log2 e */
    const cpu_attn_logits cap20 = {(float)(1.0 / (20.0 * LOG2E)), (float)(20.0 * LOG2E), 1.0f, 1.0f};
    /* cap 1e30: cap2 beyond 2^64 leaves 2^99 as the unit (the driver's rule) */
    const cpu_attn_logits cap_huge = {(float)(1.0 / (1e30 * LOG2E)), (float)(1e30 * LOG2E / 0x1p99),
                                      (float)0x1p-99, (float)0x1p99};
    /* scale near FLT_MAX: q carries scale log2 e / 2^127, exp_mul 2^127 */
    const cpu_attn_logits big_scale = {0.0f, 0.0f, 0.0f, (float)0x1p127};
    for (int32_t rows = 1; rows <= 17; rows += 4) {
        test_softmax(kt, rows, &plain, 3.0, "plain");
        test_softmax(kt, rows, &cap20, 40.0, "softcap 20");
        test_softmax(kt, rows, &cap_huge, 3.0, "softcap 1e30");
        test_softmax(kt, rows, &big_scale, 1e-37, "exp_mul 2^127");
    }
    for (int32_t rows = 1; rows <= 13; rows++)
        test_pv(kt, rows, rows % 2 ? 128 : 72 + 8 * (rows % 3));
    test_pv(kt, 128, 512);
    if (!kt->fused_block)
        return;
    for (int fi = 0; fi < 4; fi++)
        for (int32_t rows = 1; rows <= kt->fused_max_rows; rows++) {
            const int masked = rows % 2;
            if (rows == 1 || rows == kt->fused_max_rows || (rows & (rows - 1)) == 0 || rows == 3)
                test_fused(kt, formats[fi], rows, 128, 128, masked);
        }
    test_fused(kt, MOAK_FORMAT_F16, 1, 576, 512, 1);
    test_fused(kt, MOAK_FORMAT_Q8_0, 2, 576, 512, 0);
}

int main(void)
{
    t_init("test_ukernel_attention");
    int ran = 0;
#ifdef MOAK_UKERNEL_AVX2
    if (backend_available("avx2")) {
        test_table(&cpu_attn_kernels_avx2);
        ran++;
    } else
        t_note("avx2: not run (the CPU or MOAK_ISA_MAX rules it out)");
#endif
#ifdef MOAK_UKERNEL_AVX512
    if (backend_available("avx512")) {
        test_table(&cpu_attn_kernels_avx512);
        ran++;
    } else
        t_note("avx512: not run (the CPU or MOAK_ISA_MAX rules it out)");
#endif
#ifdef MOAK_UKERNEL_NEON
    if (backend_available("neon")) {
        test_table(&cpu_attn_kernels_neon);
        ran++;
    } else
        t_note("neon: not run (the CPU or MOAK_ISA_MAX rules it out)");
#endif
    if (!ran)
        return T_EXIT_SKIP;
    return t_finish();
}
