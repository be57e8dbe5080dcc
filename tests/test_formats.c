/* test_formats: the weight/KV formats through the public API, checked
 * against implementations written here and nowhere else:
 *   - f16/bf16: all 65536 bit patterns decoded against ldexp() and encoded
 *     back; f32 -> f16/bf16 rounding of random and tie values against a
 *     nearest-value search over every finite half (ties to the even code);
 *   - Q8_0/Q4_0: bytes equal a re-implementation of ggml's reference
 *     quantizer; dequantized values equal the bytes decoded here;
 *   - I4_G32/I4_G128/I8_ROW: bytes equal the rules of moak.h applied here,
 *     codes decoded here, and the reconstruction error within its bound;
 *   - row sizes, names, and every bad-input class: the status, a message
 *     naming the argument, and output bytes left untouched.
 * Data is fresh random data each run (seed printed; MOAK_TEST_SEED repeats
 * a run).  Row lengths come from real models (gpt-oss 2880, DeepSeek-V3
 * 7168, Qwen3-30B-A3B expert 768, MLA latent 576, head dims 64/128) plus
 * lengths that end in a partial block. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moak.h"

/* The formats this file checks; the release formats (FP8_E4M3_B128 on) are
 * checked by test_release_formats and the Python cross-check. */
#define T_CLASSIC_FORMATS (MOAK_FORMAT_I4_G128 + 1)

/* ------------------------------------------------------------------------ */
/* Reporting                                                                */
/* ------------------------------------------------------------------------ */

static long failures;
static long checks;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        checks++;                                                              \
        if (!(cond)) {                                                         \
            if (++failures <= 40) {                                            \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
                fprintf(stderr, __VA_ARGS__);                                  \
                fputc('\n', stderr);                                           \
            }                                                                  \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Random data                                                              */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double rng_uniform(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * 0x1p-53;
}

static float rng_gauss(void)
{
    double u = rng_uniform(), v = rng_uniform();
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ------------------------------------------------------------------------ */
/* Half-float oracles                                                       */
/* ------------------------------------------------------------------------ */

/* IEEE binary16 value of a code, by its definition. */
static double half_value(uint16_t h)
{
    const int e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static double bf16_value(uint16_t h)
{
    const int e = (h >> 7) & 255, m = h & 127;
    double v;
    if (e == 0)
        v = ldexp(m, -133);
    else if (e == 255)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(128 + m, e - 134);
    return (h & 0x8000) ? -v : v;
}

/* The magnitude of positive code h where the infinity code stands for the
 * next power of two, as IEEE rounding treats overflow. */
static double half_magnitude(uint32_t h) { return h == 0x7c00 ? 65536.0 : half_value((uint16_t)h); }
static double bf16_magnitude(uint32_t h) { return h == 0x7f80 ? ldexp(1, 128) : bf16_value((uint16_t)h); }

/* Nearest code to |x| (x finite) among 0..inf_code by bisection over the
 * monotonic codes; ties go to the even code. */
static uint16_t nearest_code(double a, uint32_t inf_code, double (*magnitude)(uint32_t))
{
    uint32_t lo = 0, hi = inf_code; /* magnitude(lo) <= a < magnitude(hi) or a >= max */
    if (a >= magnitude(inf_code))
        return (uint16_t)inf_code;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (magnitude(mid) <= a)
            lo = mid;
        else
            hi = mid;
    }
    const double below = a - magnitude(lo), above = magnitude(hi) - a;
    if (below < above)
        return (uint16_t)lo;
    if (above < below)
        return (uint16_t)hi;
    return (uint16_t)((lo & 1) ? hi : lo);
}

static uint16_t oracle_f16(float x)
{
    const uint16_t sign = signbit(x) ? 0x8000 : 0;
    if (isinf(x))
        return sign | 0x7c00;
    return sign | nearest_code(fabs((double)x), 0x7c00, half_magnitude);
}

static uint16_t oracle_bf16(float x)
{
    const uint16_t sign = signbit(x) ? 0x8000 : 0;
    if (isinf(x))
        return sign | 0x7f80;
    return sign | nearest_code(fabs((double)x), 0x7f80, bf16_magnitude);
}

/* ------------------------------------------------------------------------ */
/* Helpers around the API                                                   */
/* ------------------------------------------------------------------------ */

static size_t row_bytes(moak_format f, int64_t cols)
{
    return moak_format_row_bytes(f, cols);
}

/* Quantize / dequantize one buffer through the public API, checking the status. */
static uint8_t *quantize_rows(moak_format f, const float *x, int64_t rows, int64_t cols)
{
    const size_t bytes = (size_t)rows * row_bytes(f, cols);
    uint8_t *q = malloc(bytes);
    memset(q, 0xA5, bytes);
    moak_status st = moak_quantize(f, x, rows, cols, q, bytes);
    CHECK(st == MOAK_OK, "quantize %s %" PRId64 "x%" PRId64 ": status %d (%s)",
          moak_format_name(f), rows, cols, (int)st, moak_last_error(NULL));
    return q;
}

static float *dequantize_rows(moak_format f, const uint8_t *q, int64_t rows, int64_t cols)
{
    float *y = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++)
        y[i] = NAN; /* an element left unwritten fails every comparison */
    moak_status st = moak_dequantize(f, q, (size_t)rows * row_bytes(f, cols), rows, cols, y);
    CHECK(st == MOAK_OK, "dequantize %s: status %d (%s)", moak_format_name(f), (int)st,
          moak_last_error(NULL));
    return y;
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static float get_f32(const uint8_t *p)
{
    return bits_to_float((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24);
}

/* ------------------------------------------------------------------------ */
/* Names and sizes                                                          */
/* ------------------------------------------------------------------------ */

static void test_names(void)
{
    static const char *const expected[MOAK_FORMAT_COUNT] = {
        "f32", "f16", "bf16", "q8_0", "q4_0", "i8_row", "i4_g32", "i4_g128",
        "fp8_e4m3_b128", "mxfp4", "mxfp4_st", "i4_g32_ct", "nvfp4"};
    for (int f = 0; f < MOAK_FORMAT_COUNT; f++) {
        const char *name = moak_format_name((moak_format)f);
        CHECK(name && strcmp(name, expected[f]) == 0, "name of %d: %s", f, name ? name : "NULL");
        char upper[24];
        size_t i;
        for (i = 0; expected[f][i] && i + 1 < sizeof upper; i++)
            upper[i] = (char)(expected[f][i] >= 'a' && expected[f][i] <= 'z'
                                  ? expected[f][i] - 32 : expected[f][i]);
        upper[i] = '\0';
        moak_format parsed = (moak_format)-1;
        CHECK(moak_format_from_name(upper, &parsed) == MOAK_OK && parsed == (moak_format)f,
              "from_name(%s)", upper);
    }
    CHECK(moak_format_name(MOAK_FORMAT_COUNT) == NULL, "name of COUNT");
    CHECK(moak_format_name((moak_format)-1) == NULL, "name of -1");

    moak_format out = MOAK_FORMAT_Q4_0;
    CHECK(moak_format_from_name("q5_k", &out) == MOAK_ERR_INVALID_ARGUMENT, "unknown name status");
    CHECK(strstr(moak_last_error(NULL), "name") && strstr(moak_last_error(NULL), "q5_k"),
          "unknown name message: %s", moak_last_error(NULL));
    CHECK(out == MOAK_FORMAT_Q4_0, "unknown name wrote the output");
    CHECK(moak_format_from_name("", &out) == MOAK_ERR_INVALID_ARGUMENT && out == MOAK_FORMAT_Q4_0,
          "empty name");
    CHECK(moak_format_from_name(NULL, &out) == MOAK_ERR_NULL_ARGUMENT &&
              strstr(moak_last_error(NULL), "name"), "NULL name: %s", moak_last_error(NULL));
    CHECK(moak_format_from_name("f32", NULL) == MOAK_ERR_NULL_ARGUMENT &&
              strstr(moak_last_error(NULL), "format"), "NULL format: %s", moak_last_error(NULL));
}

static void test_sizes(void)
{
    /* bytes per block and elements per block, from the table in moak.h */
    static const struct {
        moak_format f;
        int64_t block;
        size_t bytes;
    } table[] = {
        {MOAK_FORMAT_F32, 1, 4},     {MOAK_FORMAT_F16, 1, 2},      {MOAK_FORMAT_BF16, 1, 2},
        {MOAK_FORMAT_Q8_0, 32, 34},  {MOAK_FORMAT_Q4_0, 32, 18},   {MOAK_FORMAT_I4_G32, 32, 20},
        {MOAK_FORMAT_I4_G128, 128, 68},
    };
    static const int64_t cols_list[] = {1, 2, 17, 31, 32, 33, 64, 127, 128, 129, 576, 768, 2880, 7168};
    for (size_t t = 0; t < sizeof table / sizeof table[0]; t++) {
        CHECK(moak_format_block_elems(table[t].f) == table[t].block, "block_elems %s",
              moak_format_name(table[t].f));
        for (size_t c = 0; c < sizeof cols_list / sizeof cols_list[0]; c++) {
            const int64_t cols = cols_list[c];
            const size_t blocks = (size_t)((cols + table[t].block - 1) / table[t].block);
            CHECK(row_bytes(table[t].f, cols) == blocks * table[t].bytes, "row_bytes %s %" PRId64
                  ": %zu", moak_format_name(table[t].f), cols, row_bytes(table[t].f, cols));
        }
        CHECK(row_bytes(table[t].f, 0) == 0 && row_bytes(table[t].f, -1) == 0,
              "row_bytes of cols < 1 must be 0");
    }
    CHECK(moak_format_block_elems(MOAK_FORMAT_I8_ROW) == 0, "I8_ROW block is the row (0)");
    for (size_t c = 0; c < sizeof cols_list / sizeof cols_list[0]; c++)
        CHECK(row_bytes(MOAK_FORMAT_I8_ROW, cols_list[c]) == 4 + (size_t)cols_list[c],
              "row_bytes i8_row %" PRId64, cols_list[c]);
    CHECK(row_bytes(MOAK_FORMAT_COUNT, 32) == 0, "row_bytes of an unknown format");
    CHECK(row_bytes((moak_format)-1, 32) == 0, "row_bytes of format -1");
    CHECK(moak_format_block_elems(MOAK_FORMAT_COUNT) == 0, "block_elems of an unknown format");
    /* counts that do not fit size_t */
    CHECK(row_bytes(MOAK_FORMAT_F32, INT64_MAX) == 0, "f32 INT64_MAX cols must overflow");
    /* ... and counts just below SIZE_MAX that do fit */
    if (SIZE_MAX >= UINT64_MAX) {
        CHECK(row_bytes(MOAK_FORMAT_F16, INT64_MAX) == (size_t)INT64_MAX * 2,
              "f16 INT64_MAX cols fits a 64-bit size_t");
        CHECK(row_bytes(MOAK_FORMAT_Q8_0, INT64_MAX) == (size_t)(INT64_MAX / 32 + 1) * 34,
              "q8_0 INT64_MAX cols fits a 64-bit size_t");
        CHECK(row_bytes(MOAK_FORMAT_I8_ROW, INT64_MAX) == (size_t)INT64_MAX + 4,
              "i8_row INT64_MAX cols fits a 64-bit size_t");
    }
}

/* ------------------------------------------------------------------------ */
/* F16 and BF16                                                             */
/* ------------------------------------------------------------------------ */

/* Every code decodes to its value and encodes back to itself (NaNs: to a
 * quiet NaN of the same sign and top payload bits). */
static void test_half_all_codes(moak_format f, double (*value)(uint16_t), uint16_t quiet_bit)
{
    const char *name = moak_format_name(f);
    uint8_t *codes = malloc(65536 * 2);
    for (uint32_t h = 0; h < 65536; h++) {
        codes[2 * h] = (uint8_t)h;
        codes[2 * h + 1] = (uint8_t)(h >> 8);
    }
    float *y = dequantize_rows(f, codes, 1, 65536);
    uint8_t *back = quantize_rows(f, y, 1, 65536);
    for (uint32_t h = 0; h < 65536; h++) {
        const double v = value((uint16_t)h);
        const uint16_t b = get_u16(back + 2 * h);
        if (isnan(v)) {
            CHECK(isnan(y[h]) && (bool)signbit(y[h]) == (bool)(h & 0x8000) &&
                      (float_to_bits(y[h]) & 0x00400000u),
                  "%s %04x must decode to a quiet NaN of its sign", name, h);
            CHECK(b == (h | quiet_bit), "%s NaN %04x re-encodes as %04x", name, h, b);
        } else {
            CHECK((double)y[h] == v && (bool)signbit(y[h]) == (bool)(h & 0x8000),
                  "%s %04x decodes to %.9g, want %.9g", name, h, y[h], v);
            CHECK(b == h, "%s %04x round-trips to %04x", name, h, b);
        }
    }
    free(codes);
    free(y);
    free(back);
}

/* Encodes a set of floats and compares with the oracle. */
static void check_encode(moak_format f, const float *x, size_t n, uint16_t (*oracle)(float))
{
    uint8_t *q = quantize_rows(f, x, 1, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        const uint16_t got = get_u16(q + 2 * i);
        if (isnan(x[i])) {
            const double v = f == MOAK_FORMAT_F16 ? half_value(got) : bf16_value(got);
            CHECK(isnan(v) && (bool)(got & 0x8000) == (bool)signbit(x[i]),
                  "%s(NaN %08x) = %04x is not a NaN of that sign", moak_format_name(f),
                  float_to_bits(x[i]), got);
            continue;
        }
        const uint16_t want = oracle(x[i]);
        CHECK(got == want, "%s(%a = %08x) = %04x, want %04x", moak_format_name(f), x[i],
              float_to_bits(x[i]), got, want);
    }
    free(q);
}

static void test_half_rounding(moak_format f)
{
    const bool is_f16 = f == MOAK_FORMAT_F16;
    uint16_t (*oracle)(float) = is_f16 ? oracle_f16 : oracle_bf16;
    const size_t n_random = 200000;
    float *x = malloc(n_random * sizeof(float));

    /* any bit pattern: every class (NaN, Inf, subnormal, huge) */
    for (size_t i = 0; i < n_random; i++)
        x[i] = bits_to_float((uint32_t)rng_next());
    check_encode(f, x, n_random, oracle);

    /* magnitudes across the target format's own range and just beyond */
    for (size_t i = 0; i < n_random; i++) {
        const int e = is_f16 ? (int)(rng_next() % 46) - 28 : (int)(rng_next() % 270) - 140;
        const double m = 1.0 + rng_uniform();
        x[i] = (float)((rng_next() & 1 ? -1 : 1) * ldexp(m, e));
    }
    check_encode(f, x, n_random, oracle);
    free(x);

    /* every exact tie between two neighbouring positive codes (including
     * the one between the largest finite value and infinity), its
     * negative, and the floats just below and above it */
    const uint32_t last = is_f16 ? 0x7c00 : 0x7f80;
    float *ties = malloc((size_t)last * 6 * sizeof(float));
    size_t n = 0;
    for (uint32_t h = 0; h < last; h++) {
        const double mid = is_f16 ? (half_magnitude(h) + half_magnitude(h + 1)) / 2
                                  : (bf16_magnitude(h) + bf16_magnitude(h + 1)) / 2;
        const float t = (float)mid;
        if ((double)t != mid || isinf(t))
            continue; /* not representable in f32 (bf16's last gap) */
        const float around[3] = {nextafterf(t, 0.0f), t, nextafterf(t, INFINITY)};
        for (int k = 0; k < 3; k++) {
            ties[n++] = around[k];
            ties[n++] = -around[k];
        }
    }
    check_encode(f, ties, n, oracle);
    free(ties);
}

/* ------------------------------------------------------------------------ */
/* ggml's reference quantizers, re-implemented from their definition        */
/* ------------------------------------------------------------------------ */

static void ggml_q8_0_block(const float *x, uint8_t *out)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float v = x[j];
        amax = amax > fabsf(v) ? amax : fabsf(v);
    }
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = oracle_f16(d);
    out[0] = (uint8_t)dh;
    out[1] = (uint8_t)(dh >> 8);
    for (int j = 0; j < 32; j++)
        out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

static void ggml_q4_0_block(const float *x, uint8_t *out)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) {
            amax = fabsf(v);
            max = v;
        }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = oracle_f16(d);
    out[0] = (uint8_t)dh;
    out[1] = (uint8_t)(dh >> 8);
    for (int j = 0; j < 16; j++) {
        /* volatile: the product is rounded before the add, as in ggml's C */
        volatile float x0 = x[j] * id;
        volatile float x1 = x[16 + j] * id;
        int8_t c0 = (int8_t)(x0 + 8.5f), c1 = (int8_t)(x1 + 8.5f);
        const uint8_t xi0 = (uint8_t)(c0 < 15 ? c0 : 15);
        const uint8_t xi1 = (uint8_t)(c1 < 15 ? c1 : 15);
        out[2 + j] = (uint8_t)(xi0 | (xi1 << 4));
    }
}

/* The rules of moak.h for I4_G*, written out again here. */
static void i4_group(const float *x, int g, uint8_t *out)
{
    float mn = x[0], mx = x[0];
    for (int j = 1; j < g; j++) {
        if (x[j] < mn)
            mn = x[j];
        if (x[j] > mx)
            mx = x[j];
    }
    const uint16_t sh = oracle_f16((mx - mn) / 15.0f), mh = oracle_f16(mn);
    const float s = (float)half_value(sh), m = (float)half_value(mh);
    out[0] = (uint8_t)sh;
    out[1] = (uint8_t)(sh >> 8);
    out[2] = (uint8_t)mh;
    out[3] = (uint8_t)(mh >> 8);
    memset(out + 4, 0, (size_t)g / 2);
    for (int j = 0; j < g; j++) {
        float r = s == 0.0f ? 0.0f : roundf((x[j] - m) / s);
        const int q = r < 0 ? 0 : r > 15 ? 15 : (int)r;
        out[4 + j / 2] |= (uint8_t)(q << (4 * (j % 2)));
    }
}

static void i8_row(const float *x, int64_t cols, uint8_t *out)
{
    float amax = 0.0f;
    for (int64_t j = 0; j < cols; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float scale = amax / 127.0f;
    memcpy(out, &scale, 4);
    for (int64_t j = 0; j < cols; j++)
        out[4 + j] = (uint8_t)(int8_t)(scale == 0.0f ? 0.0f : roundf(x[j] / scale));
}

/* Reference bytes of one row: blocks completed with zeros. */
static void reference_row(moak_format f, const float *x, int64_t cols, uint8_t *out)
{
    if (f == MOAK_FORMAT_I8_ROW) {
        i8_row(x, cols, out);
        return;
    }
    const int g = f == MOAK_FORMAT_I4_G128 ? 128 : 32;
    const size_t block_bytes = f == MOAK_FORMAT_Q8_0 ? 34 : f == MOAK_FORMAT_Q4_0 ? 18
                             : (size_t)(4 + g / 2);
    float block[128];
    for (int64_t b = 0; b < cols; b += g, out += block_bytes) {
        for (int j = 0; j < g; j++)
            block[j] = b + j < cols ? x[b + j] : 0.0f;
        if (f == MOAK_FORMAT_Q8_0)
            ggml_q8_0_block(block, out);
        else if (f == MOAK_FORMAT_Q4_0)
            ggml_q4_0_block(block, out);
        else
            i4_group(block, g, out);
    }
}

/* The most that rounding a value to f16 moved it, given the f16 result:
 * half an ulp, which is 2^-25 for the subnormals (a small value alone in a
 * partial block has a subnormal scale). */
static double f16_rounding_error(double h)
{
    return fmax(fabs(h) * ldexp(1, -11), ldexp(1, -25));
}

/* Element i of a row decoded from its bytes (in double), and the bound on
 * |x - decoded| that the format's rule guarantees for that element. */
static double decode_element(moak_format f, const uint8_t *row, int64_t i, double *bound,
                             const float *x, int64_t cols)
{
    switch (f) {
    case MOAK_FORMAT_Q8_0: {
        const uint8_t *blk = row + (i / 32) * 34;
        const double d = half_value(get_u16(blk));
        /* half a step, plus 127 times the f16 rounding of d */
        *bound = fabs(d) * 0.5 * (1 + 1e-6) + 127.0 * f16_rounding_error(d);
        return d * (int8_t)blk[2 + i % 32];
    }
    case MOAK_FORMAT_Q4_0: {
        const uint8_t *blk = row + (i / 32) * 18;
        const double d = half_value(get_u16(blk));
        const int j = (int)(i % 32);
        const int nib = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
        /* the opposite extreme is clamped from code 16 to 15: one step */
        *bound = fabs(d) * (1 + 1e-6) + 8.0 * f16_rounding_error(d);
        return d * (nib - 8);
    }
    case MOAK_FORMAT_I8_ROW: {
        const double s = get_f32(row);
        *bound = s * 0.5 * (1 + 1e-5);
        return s * (int8_t)row[4 + i];
    }
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        const int g = f == MOAK_FORMAT_I4_G128 ? 128 : 32;
        const uint8_t *blk = row + (i / g) * (size_t)(4 + g / 2);
        const double s = half_value(get_u16(blk)), m = half_value(get_u16(blk + 2));
        const int j = (int)(i % g);
        const int nib = (blk[4 + j / 2] >> (4 * (j % 2))) & 15;
        /* half a step, plus what rounding min and scale to f16 moved */
        double mn = 0, mx = 0;
        const int64_t start = i - j;
        for (int k = 0; k < g; k++) {
            const double v = start + k < cols ? x[start + k] : 0.0;
            if (k == 0 || v < mn)
                mn = v;
            if (k == 0 || v > mx)
                mx = v;
        }
        *bound = 0.5 * s + fabs(m - mn) + 15 * fabs(s - (mx - mn) / 15) + 1e-6 * (fabs(mn) + fabs(mx));
        return s * nib + m;
    }
    default:
        *bound = 0;
        return NAN;
    }
}

/* Quantize random rows; bytes must equal the reference bytes, dequantized
 * values must equal the bytes decoded here, and each element must be within
 * the bound of its rule. */
static void test_quantized(moak_format f, int64_t rows, int64_t cols, int data_kind)
{
    const char *name = moak_format_name(f);
    const size_t rb = row_bytes(f, cols);
    float *x = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++)
        x[i] = rng_gauss() * (data_kind == 1 ? 0.02f : 1.0f);
    if (data_kind == 1) /* an outlier per row, as real weight rows have */
        for (int64_t r = 0; r < rows; r++)
            x[r * cols + (int64_t)(rng_next() % (uint64_t)cols)] = 3.0f * (rng_next() & 1 ? 1 : -1);
    if (data_kind == 2 && cols >= 32) /* equal magnitudes of both signs: Q4_0's "first wins" */
        for (int64_t r = 0; r < rows; r++) {
            x[r * cols + 3] = 5.0f * (r % 2 ? 1 : -1);
            x[r * cols + 20] = -x[r * cols + 3];
        }

    uint8_t *q = quantize_rows(f, x, rows, cols);
    uint8_t *want = malloc(rb);
    for (int64_t r = 0; r < rows; r++) {
        reference_row(f, x + r * cols, cols, want);
        const uint8_t *got = q + (size_t)r * rb;
        size_t first = rb;
        for (size_t b = 0; b < rb && first == rb; b++)
            if (got[b] != want[b])
                first = b;
        CHECK(first == rb, "%s %" PRId64 "x%" PRId64 " kind %d row %" PRId64
              ": byte %zu is %02x, want %02x", name, rows, cols, data_kind, r, first,
              first < rb ? got[first] : 0, first < rb ? want[first] : 0);
    }

    float *y = dequantize_rows(f, q, rows, cols);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = q + (size_t)r * rb;
        double err2 = 0, ref2 = 0;
        for (int64_t i = 0; i < cols; i++) {
            double bound;
            const double v = decode_element(f, row, i, &bound, x + r * cols, cols);
            const float yi = y[r * cols + i];
            /* single rounding of an exact product (plus min for I4) */
            CHECK(fabs((double)yi - v) <= fabs(v) * 0x1p-23, "%s dequant [%" PRId64 "][%" PRId64
                  "] = %.9g, bytes say %.9g", name, r, i, yi, v);
            const double e = fabs((double)x[r * cols + i] - yi);
            CHECK(e <= bound, "%s [%" PRId64 "][%" PRId64 "]: |%.7g - %.7g| = %.3g > bound %.3g",
                  name, r, i, x[r * cols + i], yi, e, bound);
            err2 += e * e;
            ref2 += (double)x[r * cols + i] * x[r * cols + i];
        }
        /* Gaussian rows only (kinds 1 and 2 plant +-5 values, which by
         * design cost the row or group its resolution; their elements are
         * still held to the per-element bound above): the error a format
         * of that width gives. */
        const double limit = f == MOAK_FORMAT_Q8_0 || f == MOAK_FORMAT_I8_ROW ? 0.02 : 0.2;
        CHECK(data_kind != 0 || sqrt(err2 / ref2) < limit, "%s row %" PRId64 " cols %" PRId64 " kind %d: relative rms error %.4f",
              name, r, cols, data_kind, sqrt(err2 / ref2));
    }
    free(x);
    free(q);
    free(want);
    free(y);
}

/* Blocks of zeros (scale 0): the rules give fixed bytes and exact zeros. */
static void test_zero_rows(void)
{
    float x[64] = {0};
    for (int f = MOAK_FORMAT_Q8_0; f < T_CLASSIC_FORMATS; f++) {
        uint8_t *q = quantize_rows((moak_format)f, x, 1, 64);
        uint8_t want[200];
        reference_row((moak_format)f, x, 64, want);
        CHECK(memcmp(q, want, row_bytes((moak_format)f, 64)) == 0, "%s of zeros",
              moak_format_name((moak_format)f));
        float *y = dequantize_rows((moak_format)f, q, 1, 64);
        for (int i = 0; i < 64; i++)
            CHECK(y[i] == 0.0f, "%s of zeros decodes [%d] = %g", moak_format_name((moak_format)f),
                  i, y[i]);
        free(q);
        free(y);
    }
}

static void test_f32(void)
{
    float x[77];
    for (int i = 0; i < 77; i++)
        x[i] = rng_gauss();
    x[5] = bits_to_float(0x7fa12345u); /* a signalling NaN's payload survives F32 */
    uint8_t *q = quantize_rows(MOAK_FORMAT_F32, x, 7, 11);
    CHECK(memcmp(q, x, sizeof x) == 0, "f32 quantize is a copy");
    float *y = dequantize_rows(MOAK_FORMAT_F32, q, 7, 11);
    CHECK(memcmp(y, x, sizeof x) == 0, "f32 dequantize is a copy");
    free(q);
    free(y);
}

/* ------------------------------------------------------------------------ */
/* Bad input                                                                */
/* ------------------------------------------------------------------------ */

#define POISON 0xA5
#define BUF_BYTES 4096

static bool untouched(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != POISON)
            return false;
    return true;
}

static void expect_quantize(moak_status want, const char *arg, moak_format f, bool src_null,
                            int64_t rows, int64_t cols, bool dst_null, size_t dst_size)
{
    static float src[BUF_BYTES / sizeof(float)];
    static uint8_t dst[BUF_BYTES];
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
        src[i] = rng_gauss();
    memset(dst, POISON, sizeof dst);
    moak_status st = moak_quantize(f, src_null ? NULL : src, rows, cols, dst_null ? NULL : dst,
                                   dst_size);
    const char *msg = moak_last_error(NULL);
    CHECK(st == want, "quantize(%s, rows %" PRId64 ", cols %" PRId64 ", dst_size %zu): status %d, want %d",
          arg, rows, cols, dst_size, (int)st, (int)want);
    if (want != MOAK_OK)
        CHECK(strstr(msg, arg) != NULL, "quantize: message \"%s\" does not name %s", msg, arg);
    CHECK(untouched(dst, sizeof dst), "quantize(%s): dst was written", arg);
}

static void expect_dequantize(moak_status want, const char *arg, moak_format f, bool src_null,
                              size_t src_size, int64_t rows, int64_t cols, bool dst_null)
{
    static uint8_t src[BUF_BYTES];
    static float dst[BUF_BYTES / sizeof(float)];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)rng_next();
    memset(dst, POISON, sizeof dst);
    moak_status st = moak_dequantize(f, src_null ? NULL : src, src_size, rows, cols,
                                     dst_null ? NULL : dst);
    const char *msg = moak_last_error(NULL);
    CHECK(st == want, "dequantize(%s, rows %" PRId64 ", cols %" PRId64 ", src_size %zu): status %d, want %d",
          arg, rows, cols, src_size, (int)st, (int)want);
    if (want != MOAK_OK)
        CHECK(strstr(msg, arg) != NULL, "dequantize: message \"%s\" does not name %s", msg, arg);
    CHECK(untouched((const uint8_t *)dst, sizeof dst), "dequantize(%s): dst was written", arg);
}

static void test_bad_input(void)
{
    const int64_t big = INT64_MAX / 2;
    for (int fi = 0; fi < T_CLASSIC_FORMATS; fi++) {
        const moak_format f = (moak_format)fi;
        const size_t need = 3 * row_bytes(f, 40);
        expect_quantize(MOAK_ERR_NULL_ARGUMENT, "src", f, true, 3, 40, false, BUF_BYTES);
        expect_quantize(MOAK_ERR_NULL_ARGUMENT, "dst", f, false, 3, 40, true, BUF_BYTES);
        expect_quantize(MOAK_ERR_INVALID_ARGUMENT, "cols", f, false, 3, 0, false, BUF_BYTES);
        expect_quantize(MOAK_ERR_INVALID_ARGUMENT, "cols", f, false, 3, -7, false, BUF_BYTES);
        expect_quantize(MOAK_ERR_INVALID_ARGUMENT, "rows", f, false, -1, 40, false, BUF_BYTES);
        expect_quantize(MOAK_ERR_INVALID_ARGUMENT, "dst_size", f, false, 3, 40, false, need - 1);
        expect_quantize(MOAK_ERR_INVALID_ARGUMENT, "dst_size", f, false, 3, 40, false, 0);
        expect_quantize(MOAK_ERR_SIZE_OVERFLOW, "rows", f, false, big, 40, false, BUF_BYTES);
        expect_quantize(MOAK_ERR_SIZE_OVERFLOW, "cols", f, false, 2, INT64_MAX, false, BUF_BYTES);
        expect_quantize(MOAK_OK, "rows", f, false, 0, 40, false, BUF_BYTES);

        expect_dequantize(MOAK_ERR_NULL_ARGUMENT, "src", f, true, BUF_BYTES, 3, 40, false);
        expect_dequantize(MOAK_ERR_NULL_ARGUMENT, "dst", f, false, BUF_BYTES, 3, 40, true);
        expect_dequantize(MOAK_ERR_INVALID_ARGUMENT, "cols", f, false, BUF_BYTES, 3, 0, false);
        expect_dequantize(MOAK_ERR_INVALID_ARGUMENT, "cols", f, false, BUF_BYTES, 3, -1, false);
        expect_dequantize(MOAK_ERR_INVALID_ARGUMENT, "rows", f, false, BUF_BYTES, INT64_MIN, 40, false);
        expect_dequantize(MOAK_ERR_INVALID_ARGUMENT, "src_size", f, false, need - 1, 3, 40, false);
        expect_dequantize(MOAK_ERR_SIZE_OVERFLOW, "rows", f, false, BUF_BYTES, big, 40, false);
        expect_dequantize(MOAK_ERR_SIZE_OVERFLOW, "cols", f, false, BUF_BYTES, 2, INT64_MAX, false);
        expect_dequantize(MOAK_OK, "rows", f, false, BUF_BYTES, 0, 40, false);
    }
    /* Q4_0's row of INT64_MAX elements fits size_t; the float side does not */
    expect_dequantize(MOAK_ERR_SIZE_OVERFLOW, "cols", MOAK_FORMAT_Q4_0, false, BUF_BYTES, 1,
                      INT64_MAX, false);
    expect_quantize(MOAK_ERR_SIZE_OVERFLOW, "cols", MOAK_FORMAT_Q4_0, false, 1, INT64_MAX, false,
                    BUF_BYTES);
    const moak_format unknown[] = {MOAK_FORMAT_COUNT, (moak_format)-1, (moak_format)1000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        expect_quantize(MOAK_ERR_INVALID_ARGUMENT, "format", unknown[i], false, 2, 32, false, BUF_BYTES);
        expect_dequantize(MOAK_ERR_INVALID_ARGUMENT, "format", unknown[i], false, BUF_BYTES, 2, 32, false);
    }
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    const char *seed_env = getenv("MOAK_TEST_SEED");
    const uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0)
                                   : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    rng_state = seed;
    printf("test_formats: seed %" PRIu64 " (MOAK_TEST_SEED=%" PRIu64 " repeats this run)\n", seed, seed);

    test_names();
    test_sizes();
    test_f32();
    test_half_all_codes(MOAK_FORMAT_F16, half_value, 0x0200);
    test_half_all_codes(MOAK_FORMAT_BF16, bf16_value, 0x0040);
    test_half_rounding(MOAK_FORMAT_F16);
    test_half_rounding(MOAK_FORMAT_BF16);

    static const int64_t cols_list[] = {1, 17, 31, 33, 64, 128, 576, 768, 2880, 7168};
    for (int f = MOAK_FORMAT_Q8_0; f < T_CLASSIC_FORMATS; f++)
        for (size_t c = 0; c < sizeof cols_list / sizeof cols_list[0]; c++)
            for (int kind = 0; kind < 3; kind++)
                test_quantized((moak_format)f, cols_list[c] >= 2880 ? 3 : 5, cols_list[c], kind);
    test_zero_rows();
    test_bad_input();

    printf("test_formats: %ld checks, %ld failed\n", checks, failures);
    return failures ? 1 : 0;
}
