/* test_release_formats — the release formats of moak.h (FP8_E4M3_B128, MXFP4,
 * MXFP4_ST, I4_G32_CT, NVFP4), each against this file's own reading of the
 * byte layouts written in moak.h (not lib/'s code):
 *   1. moak_dequantize of random bytes (every code, every scale byte) equals
 *      the reading here bit for bit;
 *   2. moak_matmul and moak_moe_ffn on every backend, weights from
 *      moak_quantize, against a double-precision oracle over the weights as
 *      read here, with separate and fused (w13 concat, gpt-oss interleaved)
 *      gate/up.
 * Byte compatibility with gguf / ml_dtypes is tests/crosscheck_formats.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define REF_BOUND 1e-5

static const moak_format release[] = {MOAK_FORMAT_FP8_E4M3_B128, MOAK_FORMAT_MXFP4, MOAK_FORMAT_MXFP4_ST,
                                      MOAK_FORMAT_I4_G32_CT, MOAK_FORMAT_NVFP4};

/* ---- the layouts of moak.h, read in double ------------------------------------------- */

static double e4m3(uint8_t c)
{
    int e = (c >> 3) & 15, m = c & 7;
    double v = e == 15 && m == 7 ? NAN : e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
    return (c & 0x80) ? -v : v;
}

static double e2m1(int nib)
{
    static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    return (nib & 8) ? -mag[nib & 7] : mag[nib & 7];
}

static double ue4m3(uint8_t c)
{
    if (c == 0x7f)
        return 0.0;
    int e = (c >> 3) & 15, m = c & 7;
    return e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
}

static float rd_f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}

static size_t scales_bytes(moak_format f, int64_t rows, int64_t cols)
{
    switch (f) {
    case MOAK_FORMAT_FP8_E4M3_B128: return (size_t)((rows + 127) / 128 * (cols / 128) * 4);
    case MOAK_FORMAT_MXFP4_ST: return (size_t)(rows * (cols / 32));
    case MOAK_FORMAT_I4_G32_CT: return (size_t)(rows * (cols / 32) * 2);
    case MOAK_FORMAT_NVFP4: return 4;
    default: return 0;
    }
}

/* One expert: data (rows x row bytes) and its scales tensor, into dst[rows][cols]. */
static void read_expert(moak_format f, const uint8_t *data, const uint8_t *sc, int64_t rows, int64_t cols,
                        double *dst)
{
    const size_t rb = t_row_bytes(f, cols);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = data + rb * (size_t)r;
        double *y = dst + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            switch (f) {
            case MOAK_FORMAT_FP8_E4M3_B128:
                y[c] = e4m3(row[c]) * rd_f32(sc + 4 * ((r / 128) * (cols / 128) + c / 128));
                break;
            case MOAK_FORMAT_MXFP4: {
                const uint8_t *b = row + 17 * (c / 32);
                int j = (int)(c % 32), nib = j < 16 ? b[1 + j] & 15 : b[1 + j - 16] >> 4;
                y[c] = (nib == 8 ? 0.0 : e2m1(nib)) * ldexp(1.0, b[0] - 127); /* GGUF: code 8 is +0 */
                break;
            }
            case MOAK_FORMAT_MXFP4_ST: {
                int nib = (row[c / 2] >> (4 * (c % 2))) & 15;
                y[c] = e2m1(nib) * ldexp(1.0, sc[r * (cols / 32) + c / 32] - 127);
                break;
            }
            case MOAK_FORMAT_I4_G32_CT: {
                int nib = (row[c / 2] >> (4 * (c % 2))) & 15;
                const uint8_t *s = sc + 2 * (r * (cols / 32) + c / 32);
                y[c] = (nib - 8) * t_bf16_to_double((uint16_t)(s[0] | (s[1] << 8)));
                break;
            }
            case MOAK_FORMAT_NVFP4: {
                const uint8_t *b = row + 36 * (c / 64);
                int i = (int)(c % 64), s = i / 16, j = i % 16;
                int nib = j < 8 ? b[4 + 8 * s + j] & 15 : b[4 + 8 * s + j - 8] >> 4;
                y[c] = (nib == 8 ? 0.0 : e2m1(nib)) * ue4m3(b[s]) * (double)rd_f32(sc); /* GGUF: +0 */
                break;
            }
            default:
                t_die("read_expert: %s is not a release format", t_format_name(f));
            }
        }
    }
}

/* ---- 1. dequantize: bit for bit -------------------------------------------------------- */

static void test_dequantize(moak_format f)
{
    const int64_t rows = 160, cols = 256;
    const size_t data = t_row_bytes(f, cols) * rows, sb = scales_bytes(f, rows, cols);
    uint8_t *buf = t_malloc(data + sb + 1);
    for (size_t i = 0; i < data + sb; i++)
        buf[i] = (uint8_t)t_rand_u64();
    for (size_t i = 0; i < 256 && i < data; i++)
        buf[i] = (uint8_t)i; /* every code / scale byte at least once */
    if (f == MOAK_FORMAT_FP8_E4M3_B128 || f == MOAK_FORMAT_NVFP4)
        for (size_t i = data; i < data + sb; i += 4) { /* finite f32 scales */
            float s = (float)(t_normal() * 4.0);
            memcpy(buf + i, &s, 4);
        }
    if (f == MOAK_FORMAT_MXFP4_ST)
        for (size_t i = 0; i < 256 && i < sb; i++)
            buf[data + i] = (uint8_t)i;
    float *y = t_alloc_f32((size_t)(rows * cols));
    double *want = t_alloc_f64((size_t)(rows * cols));
    t_poison_f32(y, (size_t)(rows * cols));
    moak_status st = moak_dequantize(f, buf, data + sb, rows, cols, y);
    read_expert(f, buf, buf + data, rows, cols, want);
    int64_t bad = 0;
    for (int64_t i = 0; i < rows * cols; i++) {
        float w = (float)want[i];
        if (!(isnan(w) && isnan(y[i])) && memcmp(&w, &y[i], 4) != 0)
            bad++;
    }
    t_check(st == MOAK_OK && bad == 0, "%s dequantize %lld x %lld: %lld of %lld values differ from moak.h's layout",
            t_format_name(f), (long long)rows, (long long)cols, (long long)bad, (long long)(rows * cols));
    free(buf);
    free(y);
    free(want);
}

/* ---- weights for the ops --------------------------------------------------------------- */

typedef struct tweight {
    uint8_t *data, *scales;
    size_t data_size, scales_size;
    double *deq;                 /* [E][rows][cols] as read here */
} tweight;

/* E experts of rows x cols normal values of rms `rms`, each quantized by moak_quantize. */
static tweight make_weight(moak_format f, int64_t E, int64_t rows, int64_t cols, double rms)
{
    tweight w;
    const size_t rb = t_row_bytes(f, cols), sb = scales_bytes(f, rows, cols), db = rb * (size_t)rows;
    w.data_size = db * (size_t)E;
    w.scales_size = sb * (size_t)E;
    w.data = t_malloc(w.data_size);
    w.scales = sb ? t_malloc(w.scales_size) : NULL;
    w.deq = t_alloc_f64((size_t)(E * rows * cols));
    float *src = t_alloc_f32((size_t)(rows * cols));
    uint8_t *one = t_malloc(db + sb);
    for (int64_t e = 0; e < E; e++) {
        t_fill_normal(src, (size_t)(rows * cols), rms);
        t_ok(moak_quantize(f, src, rows, cols, one, db + sb), NULL, "moak_quantize");
        memcpy(w.data + db * (size_t)e, one, db);
        if (sb)
            memcpy(w.scales + sb * (size_t)e, one + db, sb);
        read_expert(f, one, one + db, rows, cols, w.deq + e * rows * cols);
    }
    free(src);
    free(one);
    return w;
}

static void free_weight(tweight *w)
{
    free(w->data);
    free(w->scales);
    free(w->deq);
}

static moak_weight *create(moak_context *ctx, moak_format f, const tweight *w, int64_t E, int64_t rows,
                           int64_t cols, const char *what)
{
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = f;
    d.n_experts = E;
    d.rows = rows;
    d.cols = cols;
    d.data = w->data;
    d.data_size = w->data_size;
    d.scales = w->scales;
    d.scales_size = w->scales_size;
    moak_weight *out = NULL;
    moak_status st = moak_weight_create(ctx, &d, &out);
    if (st != MOAK_OK)
        t_fail("%s %s: moak_weight_create: %s (%s)", t_format_name(f), what, moak_status_str(st),
               moak_last_error(ctx));
    return out;
}

/* ---- 2a. matmul ------------------------------------------------------------------------ */

static void test_matmul(t_backend *bk, int n_bk, moak_format f)
{
    /* 200 rows: FP8's second 128-row block is partial; 384 cols: 3 FP8 blocks, 6 NVFP4 blocks */
    const int64_t n = 200, k = 384, ms[2] = {1, 5};
    tweight w = make_weight(f, 1, n, k, 1.0 / sqrt((double)k));
    for (int mi = 0; mi < 2; mi++) {
        const int64_t m = ms[mi];
        float *x = t_alloc_f32((size_t)(m * k)), *y = t_alloc_f32((size_t)(m * n));
        double *ref = t_alloc_f64((size_t)(m * n));
        t_fill_normal(x, (size_t)(m * k), 1.0);
        for (int64_t i = 0; i < m; i++)
            for (int64_t r = 0; r < n; r++) {
                double acc = 0.0;
                for (int64_t c = 0; c < k; c++)
                    acc += (double)x[i * k + c] * w.deq[r * k + c];
                ref[i * n + r] = acc;
            }
        for (int b = 0; b < n_bk; b++) {
            moak_weight *mw = create(bk[b].ctx, f, &w, 1, n, k, "matmul");
            if (!mw)
                continue;
            t_poison_f32(y, (size_t)(m * n));
            moak_status st = moak_matmul(bk[b].ctx, mw, x, m, y);
            char shape[64];
            snprintf(shape, sizeof shape, "m%lld n%lld k%lld", (long long)m, (long long)n, (long long)k);
            if (st != MOAK_OK)
                t_fail("%s matmul %s %s: %s (%s)", bk[b].name, t_format_name(f), shape, moak_status_str(st),
                       moak_last_error(bk[b].ctx));
            else
                t_report(bk[b].name, moak_last_backend(bk[b].ctx), "matmul", t_format_name(f), shape,
                         t_max_row_error(y, ref, m, n),
                         t_bound_for(moak_last_backend(bk[b].ctx), REF_BOUND, t_matmul_bound(f)));
            moak_weight_destroy(mw);
        }
        free(x);
        free(y);
        free(ref);
    }
    free_weight(&w);
}

/* ---- 2b. MoE, separate and fused gate/up -------------------------------------------- */

static double act(moak_activation a, double g, double u)
{
    if (a == MOAK_ACT_SILU_GLU)
        return g / (1.0 + exp(-g)) * u;
    g = g > 7.0 ? 7.0 : g;
    u = u > 7.0 ? 7.0 : u < -7.0 ? -7.0 : u;
    return (u + 1.0) * g / (1.0 + exp(-1.702 * g));
}

static void test_moe(t_backend *bk, int n_bk, moak_format f, moak_gate_up_layout layout)
{
    const int64_t E = 6, H = 256, I = 128, T = 9;
    const int32_t K = 2;
    const moak_activation a = layout == MOAK_GATE_UP_INTERLEAVED ? MOAK_ACT_SWIGLU_OAI : MOAK_ACT_SILU_GLU;
    const double rms_gu = a == MOAK_ACT_SWIGLU_OAI ? 4.0 : 1.0;
    tweight g = {0}, u = {0}, gu = {0};
    tweight d = make_weight(f, E, H, I, 1.0 / sqrt((double)I));
    if (layout == MOAK_GATE_UP_SEPARATE) {
        g = make_weight(f, E, I, H, rms_gu / sqrt((double)H));
        u = make_weight(f, E, I, H, rms_gu / sqrt((double)H));
    } else {
        gu = make_weight(f, E, 2 * I, H, rms_gu / sqrt((double)H));
    }
    float *x = t_alloc_f32((size_t)(T * H)), *wts = t_alloc_f32((size_t)(T * K)), *y = t_alloc_f32((size_t)(T * H));
    int32_t *ids = t_malloc(sizeof(int32_t) * (size_t)(T * K));
    double *ref = t_alloc_f64((size_t)(T * H)), *h = t_alloc_f64((size_t)I);
    t_fill_normal(x, (size_t)(T * H), 1.0);
    for (int64_t t = 0; t < T; t++) {
        int32_t first = (int32_t)t_rand_int(0, E - 1), second;
        do
            second = (int32_t)t_rand_int(0, E - 1);
        while (second == first);
        ids[t * K] = first;
        ids[t * K + 1] = second;
        wts[t * K] = (float)t_uniform(0.1, 1.0);
        wts[t * K + 1] = (float)t_uniform(0.1, 1.0);
    }
    for (int64_t t = 0; t < T; t++) {
        for (int64_t j = 0; j < H; j++)
            ref[t * H + j] = 0.0;
        for (int32_t s = 0; s < K; s++) {
            const int64_t e = ids[t * K + s];
            for (int64_t i = 0; i < I; i++) {
                const double *gr, *ur;
                if (layout == MOAK_GATE_UP_SEPARATE) {
                    gr = g.deq + (e * I + i) * H;
                    ur = u.deq + (e * I + i) * H;
                } else if (layout == MOAK_GATE_UP_CONCAT) {
                    gr = gu.deq + (e * 2 * I + i) * H;
                    ur = gu.deq + (e * 2 * I + I + i) * H;
                } else {
                    gr = gu.deq + (e * 2 * I + 2 * i) * H;
                    ur = gu.deq + (e * 2 * I + 2 * i + 1) * H;
                }
                double gs = 0.0, us = 0.0;
                for (int64_t c = 0; c < H; c++) {
                    gs += gr[c] * x[t * H + c];
                    us += ur[c] * x[t * H + c];
                }
                h[i] = (double)(float)act(a, gs, us);
            }
            for (int64_t j = 0; j < H; j++) {
                double acc = 0.0;
                for (int64_t i = 0; i < I; i++)
                    acc += d.deq[(e * H + j) * I + i] * h[i];
                ref[t * H + j] += wts[t * K + s] * acc;
            }
        }
    }
    static const char *const names[] = {"separate", "fused-concat", "fused-interleaved"};
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        moak_weight *wg, *wu = NULL, *wd = create(ctx, f, &d, E, H, I, "down");
        if (layout == MOAK_GATE_UP_SEPARATE) {
            wg = create(ctx, f, &g, E, I, H, "gate");
            wu = create(ctx, f, &u, E, I, H, "up");
        } else {
            wg = create(ctx, f, &gu, E, 2 * I, H, "gate_up");
        }
        moak_moe_desc desc = MOAK_MOE_DESC_INIT;
        desc.activation = a;
        desc.gate_up = layout;
        t_poison_f32(y, (size_t)(T * H));
        char shape[96];
        snprintf(shape, sizeof shape, "%s E%lld h%lld i%lld t%lld k%d", names[layout], (long long)E,
                 (long long)H, (long long)I, (long long)T, (int)K);
        if (wg && wd && (wu || layout != MOAK_GATE_UP_SEPARATE)) {
            moak_status st = moak_moe_ffn(ctx, &desc, wg, wu, wd, x, T, K, ids, wts, y);
            if (st == MOAK_ERR_UNSUPPORTED && layout != MOAK_GATE_UP_SEPARATE &&
                strcmp(moak_weight_backend(wg), "ref") != 0)
                /* fused gate/up runs on ref only so far; the weight's own backend may decline */
                t_note("%s moe %s %s: declined by %s (%s)", bk[b].name, t_format_name(f), shape,
                       moak_weight_backend(wg), moak_last_error(ctx));
            else if (st != MOAK_OK)
                t_fail("%s moe %s %s: %s (%s)", bk[b].name, t_format_name(f), shape, moak_status_str(st),
                       moak_last_error(ctx));
            else
                t_report(bk[b].name, moak_last_backend(ctx), "moe", t_format_name(f), shape,
                         t_max_row_error(y, ref, T, H), t_bound_for(moak_last_backend(ctx), REF_BOUND, t_moe_bound(f)));
        }
        moak_weight_destroy(wg);
        moak_weight_destroy(wu);
        moak_weight_destroy(wd);
    }
    free_weight(&d);
    if (layout == MOAK_GATE_UP_SEPARATE) {
        free_weight(&g);
        free_weight(&u);
    } else {
        free_weight(&gu);
    }
    free(x);
    free(wts);
    free(y);
    free(ids);
    free(ref);
    free(h);
}

int main(void)
{
    t_init("test_release_formats");
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++)
        test_dequantize(release[i]);
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) {
        test_matmul(bk, n_bk, release[i]);
        for (int layout = MOAK_GATE_UP_SEPARATE; layout <= MOAK_GATE_UP_INTERLEAVED; layout++)
            test_moe(bk, n_bk, release[i], (moak_gate_up_layout)layout);
    }
    t_close_backends(bk, n_bk);
    return t_finish();
}
