/* testutil_formats.c — the tests' own reading and writing of moak's formats,
 * written from the byte layouts in moak.h (not from lib/formats.c), so that a
 * mistake in the library's format code cannot hide in the oracle too. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalar conversions ------------------------------------------------------ */

double t_f16_to_double(uint16_t h)
{
    int sign = (h >> 15) & 1;
    int exp = (h >> 10) & 31;
    int mant = h & 1023;
    double v;
    if (exp == 0)
        v = ldexp((double)mant, -24);                 /* subnormal: mant * 2^-24 */
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp((double)(1024 + mant), exp - 25);  /* (1 + mant/1024) * 2^(exp-15) */
    return sign ? -v : v;
}

double t_bf16_to_double(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return (double)f;
}

uint16_t t_double_to_f16(double v)
{
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double a = fabs(v);
    if (isnan(v))
        return (uint16_t)(sign | 0x7E00);
    /* 65520 is half-way between 65504 (largest f16, odd mantissa) and 2^16:
     * ties to even round it up, to infinity. */
    if (a >= 65520.0)
        return (uint16_t)(sign | 0x7C00);
    if (a < ldexp(1.0, -14)) {
        /* Subnormal range, quantum 2^-24; rint rounds ties to even.  A result
         * of 1024 is the encoding of the smallest normal, as it should be. */
        return (uint16_t)(sign | (uint16_t)rint(ldexp(a, 24)));
    }
    int e;
    frexp(a, &e);                     /* a in [2^(e-1), 2^e) */
    double q = rint(ldexp(a, 11 - e)); /* 11 significant bits: [1024, 2048] */
    int exp_field = e - 1 + 15;
    if (q >= 2048.0) {
        q = 1024.0;
        exp_field++;
    }
    if (exp_field >= 31)
        return (uint16_t)(sign | 0x7C00);
    return (uint16_t)(sign | (exp_field << 10) | ((int)q - 1024));
}

uint16_t t_float_to_bf16(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof(bits));
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((bits >> 16) | 0x40); /* keep NaN a (quiet) NaN */
    /* Add just under half an ulp, plus one when the kept lsb is odd: ties to even. */
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* ---- little-endian fields ---------------------------------------------------- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static float rdf32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                 ((uint32_t)p[3] << 24);
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
}

static void wrf32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(u >> (8 * i));
}

/* ---- layouts -------------------------------------------------------------------- */

/* Bytes of one block of each format (moak.h's table). */
static size_t block_bytes(moak_format f)
{
    switch (f) {
    case MOAK_FORMAT_F32: return 4;
    case MOAK_FORMAT_F16: return 2;
    case MOAK_FORMAT_BF16: return 2;
    case MOAK_FORMAT_Q8_0: return 34;
    case MOAK_FORMAT_Q4_0: return 18;
    case MOAK_FORMAT_I4_G32: return 20;
    case MOAK_FORMAT_I4_G128: return 68;
    case MOAK_FORMAT_FP8_E4M3_B128: return 128;
    case MOAK_FORMAT_MXFP4: return 17;
    case MOAK_FORMAT_MXFP4_ST: return 16;
    case MOAK_FORMAT_I4_G32_CT: return 16;
    case MOAK_FORMAT_NVFP4: return 36;
    default: return 0;
    }
}

int64_t t_block_elems(moak_format f, int64_t cols)
{
    switch (f) {
    case MOAK_FORMAT_F32:
    case MOAK_FORMAT_F16:
    case MOAK_FORMAT_BF16: return 1;
    case MOAK_FORMAT_Q8_0:
    case MOAK_FORMAT_Q4_0:
    case MOAK_FORMAT_I4_G32: return 32;
    case MOAK_FORMAT_I4_G128: return 128;
    case MOAK_FORMAT_I8_ROW: return cols;
    case MOAK_FORMAT_FP8_E4M3_B128: return 128;
    case MOAK_FORMAT_MXFP4:
    case MOAK_FORMAT_MXFP4_ST:
    case MOAK_FORMAT_I4_G32_CT: return 32;
    case MOAK_FORMAT_NVFP4: return 64;
    default: return 0;
    }
}

size_t t_row_bytes(moak_format f, int64_t cols)
{
    if (cols < 1)
        return 0;
    if (f == MOAK_FORMAT_I8_ROW)
        return 4 + (size_t)cols;
    int64_t be = t_block_elems(f, cols);
    if (be == 0)
        return 0;
    if (f >= MOAK_FORMAT_FP8_E4M3_B128 && cols % be != 0)
        return 0; /* release formats are not padded */
    return (size_t)((cols + be - 1) / be) * block_bytes(f);
}

const char *t_format_name(moak_format f)
{
    static const char *const names[] = {"f32", "f16", "bf16", "q8_0",
                                        "q4_0", "i8_row", "i4_g32", "i4_g128",
                                        "fp8_e4m3_b128", "mxfp4", "mxfp4_st", "i4_g32_ct", "nvfp4"};
    if ((int)f < 0 || (int)f >= (int)(sizeof(names) / sizeof(names[0])))
        return "?";
    return names[f];
}

/* ---- dequantization ------------------------------------------------------------- */

void t_dequant_row(moak_format f, const uint8_t *row, int64_t cols, double *dst)
{
    switch (f) {
    case MOAK_FORMAT_F32:
        for (int64_t i = 0; i < cols; i++)
            dst[i] = rdf32(row + 4 * i);
        return;
    case MOAK_FORMAT_F16:
        for (int64_t i = 0; i < cols; i++)
            dst[i] = t_f16_to_double(rd16(row + 2 * i));
        return;
    case MOAK_FORMAT_BF16:
        for (int64_t i = 0; i < cols; i++)
            dst[i] = t_bf16_to_double(rd16(row + 2 * i));
        return;
    case MOAK_FORMAT_Q8_0:
        for (int64_t i = 0; i < cols; i++) {
            const uint8_t *blk = row + 34 * (i / 32);
            dst[i] = t_f16_to_double(rd16(blk)) * (double)(int8_t)blk[2 + i % 32];
        }
        return;
    case MOAK_FORMAT_Q4_0:
        for (int64_t i = 0; i < cols; i++) {
            const uint8_t *blk = row + 18 * (i / 32);
            int j = (int)(i % 32);
            int nib = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
            dst[i] = t_f16_to_double(rd16(blk)) * (double)(nib - 8);
        }
        return;
    case MOAK_FORMAT_I8_ROW: {
        double scale = rdf32(row);
        for (int64_t i = 0; i < cols; i++)
            dst[i] = scale * (double)(int8_t)row[4 + i];
        return;
    }
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        int g = f == MOAK_FORMAT_I4_G32 ? 32 : 128;
        size_t bb = block_bytes(f);
        for (int64_t i = 0; i < cols; i++) {
            const uint8_t *blk = row + bb * (size_t)(i / g);
            int j = (int)(i % g);
            int nib = (blk[4 + j / 2] >> (4 * (j % 2))) & 15;
            dst[i] = t_f16_to_double(rd16(blk)) * nib + t_f16_to_double(rd16(blk + 2));
        }
        return;
    }
    default:
        t_die("t_dequant_row: unknown format %d", (int)f);
    }
}

/* ---- random weights --------------------------------------------------------------- */

static uint16_t random_f16(double v)
{
    uint16_t h = t_double_to_f16(v);
    return (h & 0x7FFF) ? h : 0x3C00; /* never a zero scale */
}

static int8_t random_int8(int full_int8)
{
    return (int8_t)t_rand_int(full_int8 ? -128 : -127, 127);
}

void t_random_weight_row(moak_format f, int64_t cols, double rms, int full_int8, uint8_t *row)
{
    size_t bytes = t_row_bytes(f, cols);
    int64_t be = t_block_elems(f, cols);
    int64_t n_blocks = be > 0 ? (cols + be - 1) / be : 0;
    /* rms of q: uniform int8 in [-127, 127] -> 127/sqrt(3) = 73.3;
     * (nibble - 8) for nibbles uniform in 0..15 -> 4.6. */
    switch (f) {
    /* Float weights are uniform in [-sqrt(3), sqrt(3)) * rms (that rms, and
     * cheaper to draw than normal values: MoE tests make millions). */
    case MOAK_FORMAT_F32:
        for (int64_t i = 0; i < cols; i++) {
            float v;
            do
                v = (float)(t_uniform(-1.7320508, 1.7320508) * rms);
            while (v == 0.0f);
            wrf32(row + 4 * i, v);
        }
        return;
    case MOAK_FORMAT_F16:
        for (int64_t i = 0; i < cols; i++) {
            uint16_t h;
            do
                h = t_double_to_f16((float)(t_uniform(-1.7320508, 1.7320508) * rms));
            while ((h & 0x7FFF) == 0);
            wr16(row + 2 * i, h);
        }
        return;
    case MOAK_FORMAT_BF16:
        for (int64_t i = 0; i < cols; i++) {
            uint16_t h;
            do
                h = t_float_to_bf16((float)(t_uniform(-1.7320508, 1.7320508) * rms));
            while ((h & 0x7FFF) == 0);
            wr16(row + 2 * i, h);
        }
        return;
    case MOAK_FORMAT_Q8_0:
        for (int64_t b = 0; b < n_blocks; b++) {
            uint8_t *blk = row + 34 * b;
            wr16(blk, random_f16(rms / 73.3 * t_uniform(0.5, 1.5)));
            for (int j = 0; j < 32; j++)
                blk[2 + j] = (uint8_t)random_int8(full_int8);
        }
        return;
    case MOAK_FORMAT_Q4_0:
        for (int64_t b = 0; b < n_blocks; b++) {
            uint8_t *blk = row + 18 * b;
            /* ggml's d carries the sign of the largest element: both signs occur. */
            double sign = (t_rand_u64() & 1) ? 1.0 : -1.0;
            wr16(blk, random_f16(sign * rms / 4.6 * t_uniform(0.5, 1.5)));
            for (int j = 0; j < 16; j++)
                blk[2 + j] = (uint8_t)t_rand_u64();
        }
        return;
    case MOAK_FORMAT_I8_ROW:
        wrf32(row, (float)(rms / 73.3 * t_uniform(0.5, 1.5)));
        for (int64_t i = 0; i < cols; i++)
            row[4 + i] = (uint8_t)random_int8(full_int8);
        return;
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        size_t bb = block_bytes(f);
        for (int64_t b = 0; b < n_blocks; b++) {
            uint8_t *blk = row + bb * (size_t)b;
            uint16_t scale = random_f16(rms / 4.6 * t_uniform(0.5, 1.5));
            /* min near -7.5 * scale so the group is roughly centred. */
            wr16(blk, scale);
            wr16(blk + 2, random_f16(-t_f16_to_double(scale) * t_uniform(6.0, 9.0)));
            for (size_t j = 4; j < bb; j++)
                blk[j] = (uint8_t)t_rand_u64();
        }
        return;
    }
    default:
        (void)bytes;
        t_die("t_random_weight_row: unknown format %d", (int)f);
    }
}

uint8_t *t_random_weights(moak_format f, int64_t rows, int64_t cols, double rms,
                          size_t *bytes, double **deq)
{
    size_t rb = t_row_bytes(f, cols);
    uint8_t *w = t_malloc(rb * (size_t)rows);
    for (int64_t r = 0; r < rows; r++)
        t_random_weight_row(f, cols, rms, 0, w + rb * (size_t)r);
    if (deq) {
        *deq = t_alloc_f64((size_t)(rows * cols));
        for (int64_t r = 0; r < rows; r++)
            t_dequant_row(f, w + rb * (size_t)r, cols, *deq + r * cols);
    }
    *bytes = rb * (size_t)rows;
    return w;
}

/* ---- KV storage ---------------------------------------------------------------------- */

void t_kv_round_trip(moak_format f, const float *src, int64_t n, double *dst)
{
    switch (f) {
    case MOAK_FORMAT_F32:
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i];
        return;
    case MOAK_FORMAT_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = t_f16_to_double(t_double_to_f16(src[i]));
        return;
    case MOAK_FORMAT_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = t_bf16_to_double(t_float_to_bf16(src[i]));
        return;
    case MOAK_FORMAT_Q8_0:
        if (n % 32)
            t_die("t_kv_round_trip: Q8_0 needs a multiple of 32 values, got %lld", (long long)n);
        for (int64_t b = 0; b < n; b += 32) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++)
                if (fabsf(src[b + j]) > amax)
                    amax = fabsf(src[b + j]);
            /* In float, exactly as ggml's reference quantizer. */
            float d = amax / 127.0f;
            float id = d != 0.0f ? 1.0f / d : 0.0f;
            double d_stored = t_f16_to_double(t_double_to_f16(d));
            for (int j = 0; j < 32; j++) {
                float scaled = src[b + j] * id;
                dst[b + j] = d_stored * (double)roundf(scaled);
            }
        }
        return;
    default:
        t_die("t_kv_round_trip: %s is not a KV format", t_format_name(f));
    }
}
