/* Weight and KV formats: names, row sizes, quantize and dequantize.
 *
 * The byte layouts and rounding rules are the ones written in moak.h; this
 * file is their only implementation, and every backend reads rows through
 * moak_dequantize_row or its own kernels checked against it.  Q8_0 and Q4_0
 * reproduce ggml's reference quantizer bit for bit (quantize_row_q8_0_ref,
 * quantize_row_q4_0_ref), so weights quantized here equal GGUF files.
 *
 * Everything is scalar C: half-float conversions are done on the bits so the
 * result is the same on every machine and needs no F16C/FP16 flags.  The
 * per-row helpers switch once per row and run plain loops inside, since the
 * reference backend calls them for every row it touches.
 *
 * Multi-byte fields are stored with memcpy in host order, so moak requires a
 * little-endian host (x86-64 and aarch64 are). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "formats_release.h"
#include "internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "moak's formats are little-endian and are stored in host order: big-endian hosts are not supported"
#endif

#define QK8_0 32
#define QK4_0 32
#define Q8_0_BLOCK_BYTES (2 + QK8_0)         /* f16 d; int8 q[32] */
#define Q4_0_BLOCK_BYTES (2 + QK4_0 / 2)     /* f16 d; uint8 qs[16] */
#define I4_GROUP_MAX 128
#define I4_HEADER_BYTES 4                    /* f16 scale; f16 min */
#define I8_ROW_HEADER_BYTES 4                /* float32 scale */

/* ------------------------------------------------------------------------ */
/* The table of formats                                                     */
/* ------------------------------------------------------------------------ */

typedef struct format_desc {
    const char *name;
    int64_t block_elems;   /* 0 for I8_ROW: the block is the whole row */
    size_t block_bytes;    /* for I8_ROW: bytes per element after the header */
} format_desc;

static const format_desc formats[MOAK_FORMAT_COUNT] = {
    [MOAK_FORMAT_F32] = {"f32", 1, 4},
    [MOAK_FORMAT_F16] = {"f16", 1, 2},
    [MOAK_FORMAT_BF16] = {"bf16", 1, 2},
    [MOAK_FORMAT_Q8_0] = {"q8_0", QK8_0, Q8_0_BLOCK_BYTES},
    [MOAK_FORMAT_Q4_0] = {"q4_0", QK4_0, Q4_0_BLOCK_BYTES},
    [MOAK_FORMAT_I8_ROW] = {"i8_row", 0, 1},
    [MOAK_FORMAT_I4_G32] = {"i4_g32", 32, I4_HEADER_BYTES + 32 / 2},
    [MOAK_FORMAT_I4_G128] = {"i4_g128", 128, I4_HEADER_BYTES + 128 / 2},
    /* the release formats (formats_release.h): cols a multiple of the block */
    [MOAK_FORMAT_FP8_E4M3_B128] = {"fp8_e4m3_b128", 128, 128},
    [MOAK_FORMAT_MXFP4] = {"mxfp4", 32, 17},
    [MOAK_FORMAT_MXFP4_ST] = {"mxfp4_st", 32, 16},
    [MOAK_FORMAT_I4_G32_CT] = {"i4_g32_ct", 32, 16},
    [MOAK_FORMAT_NVFP4] = {"nvfp4", 64, 36},
};

static bool format_known(moak_format format)
{
    return (int)format >= 0 && (int)format < MOAK_FORMAT_COUNT;
}

MOAK_API const char *moak_format_name(moak_format format)
{
    return format_known(format) ? formats[format].name : NULL;
}

MOAK_API moak_status moak_format_from_name(const char *name, moak_format *format)
{
    MOAK_CHECK_NULL(NULL, name, "name");
    MOAK_CHECK_NULL(NULL, format, "format");
    for (int f = 0; f < MOAK_FORMAT_COUNT; f++) {
        if (strcasecmp(name, formats[f].name) == 0) {
            *format = (moak_format)f;
            return MOAK_OK;
        }
    }
    return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                      "name: unknown format '%.40s' (expected f32, f16, bf16, q8_0, "
                      "q4_0, i8_row, i4_g32, i4_g128, fp8_e4m3_b128, mxfp4, mxfp4_st, "
                      "i4_g32_ct or nvfp4)",
                      name);
}

MOAK_API int64_t moak_format_block_elems(moak_format format)
{
    return format_known(format) ? formats[format].block_elems : 0;
}

/* Bytes of one row, or false when format is unknown, cols < 1 or the count
 * does not fit size_t. */
static bool row_bytes_checked(moak_format format, int64_t cols, size_t *bytes)
{
    if (!format_known(format) || cols < 1 || (uint64_t)cols > SIZE_MAX)
        return false;
    const format_desc *fd = &formats[format];
    if (fd->block_elems == 0)
        return moak_add_size(I8_ROW_HEADER_BYTES, (size_t)cols, bytes);
    if (moak_format_is_release(format) && cols % fd->block_elems != 0)
        return false; /* no padding in the release formats */
    /* ceil(cols / block) without forming cols + block - 1, which can overflow */
    const int64_t blocks = cols / fd->block_elems + (cols % fd->block_elems != 0);
    return moak_mul_size((size_t)blocks, fd->block_bytes, bytes);
}

MOAK_API size_t moak_format_row_bytes(moak_format format, int64_t cols)
{
    size_t bytes;
    return row_bytes_checked(format, cols, &bytes) ? bytes : 0;
}

MOAK_API size_t moak_format_scales_bytes(moak_format format, int64_t rows, int64_t cols)
{
    size_t row_bytes, data_bytes;
    /* rows * row_bytes bounds the scales (every format's scales are smaller
     * than its data), so that product not overflowing keeps them in range */
    if (!moak_format_has_split_scales(format) || rows < 1 || !row_bytes_checked(format, cols, &row_bytes) ||
        (uint64_t)rows > SIZE_MAX || !moak_mul_size((size_t)rows, row_bytes, &data_bytes))
        return 0;
    return moak_release_scales_bytes(format, rows, cols);
}

size_t moak_format_local_row_bytes(moak_format format, int64_t cols)
{
    size_t bytes = moak_format_row_bytes(format, cols);
    return bytes ? bytes + moak_release_row_scale_bytes(format, cols) : 0;
}

/* ------------------------------------------------------------------------ */
/* Half floats                                                              */
/* ------------------------------------------------------------------------ */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    const uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
        /* zero or subnormal: mantissa * 2^-24, exact in f32 */
        float magnitude = (float)mantissa * 0x1p-24f;
        return f32_from_bits(f32_bits(magnitude) | sign);
    }
    if (exponent == 0x1f) {
        /* Inf, or NaN made quiet (payload kept) */
        uint32_t quiet = mantissa ? 0x00400000u : 0;
        return f32_from_bits(sign | 0x7f800000u | quiet | (mantissa << 13));
    }
    /* normal: rebias the exponent from 15 to 127 */
    return f32_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

static inline uint16_t float_to_half(float f)
{
    const uint32_t bits = f32_bits(f);
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7fffffffu;

    if (magnitude >= 0x7f800000u) {
        if (magnitude > 0x7f800000u) /* NaN: quiet, top payload bits kept */
            return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);
    }
    /* 65520 is halfway between 65504 (the largest half, odd mantissa) and
     * 2^16: it and everything above round to infinity. */
    if (magnitude >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    if (magnitude >= 0x38800000u) {
        /* normal half (>= 2^-14): drop 13 mantissa bits, ties to even; a
         * carry out of the mantissa correctly bumps the exponent */
        const uint32_t odd = (magnitude >> 13) & 1u;
        const uint32_t rounded = magnitude + 0xfffu + odd;
        return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
    }
    /* <= 2^-25 (half the smallest subnormal, a tie to the even 0): zero */
    if (magnitude <= 0x33000000u)
        return sign;
    /* subnormal half: the value in units of 2^-24, ties to even */
    const uint32_t exponent = magnitude >> 23;               /* 103 .. 112 */
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;                   /* 14 .. 23 */
    uint32_t q = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u)))
        q++; /* may become 0x400, the smallest normal: still correct */
    return (uint16_t)(sign | q);
}

static inline float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu))
        bits |= 0x00400000u; /* quiet NaN */
    return f32_from_bits(bits);
}

static inline uint16_t float_to_bf16(float f)
{
    const uint32_t bits = f32_bits(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: quiet, sign kept */
        return (uint16_t)((bits >> 16) | 0x0040u);
    /* ties to even on the 16 dropped bits; overflow rounds to Inf correctly */
    const uint32_t odd = (bits >> 16) & 1u;
    return (uint16_t)((bits + 0x7fffu + odd) >> 16);
}

float moak_f16_to_f32(uint16_t h) { return half_to_float(h); }
uint16_t moak_f32_to_f16(float f) { return float_to_half(f); }
float moak_bf16_to_f32(uint16_t h) { return bf16_to_float(h); }
uint16_t moak_f32_to_bf16(float f) { return float_to_bf16(f); }

/* ------------------------------------------------------------------------ */
/* Little helpers for the block codecs                                      */
/* ------------------------------------------------------------------------ */

static inline void store_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline uint16_t load_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* roundf() (halves away from zero) for |v| < 2^30, without a libm call:
 * v +- 0.5 is exact in double, so truncating it is exact too.  copysign
 * compiles to bit operations: no branch on the sign, which is random for
 * weights and would be mispredicted half of the time. */
static inline int32_t round_half_away(float v)
{
    const double d = v;
    return (int32_t)(d + copysign(0.5, d));
}

/* roundf(v) clamped to [lo, hi]; NaN gives 0, so inputs holding Inf or NaN
 * give defined (if meaningless) bytes instead of undefined conversions. */
static inline int32_t round_clamped(float v, int32_t lo, int32_t hi)
{
    if (!(v == v))
        return 0;
    if (v <= (float)lo)
        return lo;
    if (v >= (float)hi)
        return hi;
    return round_half_away(v);
}

/* A block's input: the row's own elements, or, for the last partial block,
 * a copy completed with zeros (which take part in the block's scale). */
static inline const float *block_input(const float *src, int64_t start, int64_t cols,
                                       int64_t block, float *pad)
{
    if (start + block <= cols)
        return src + start;
    const int64_t have = cols - start;
    memcpy(pad, src + start, (size_t)have * sizeof(float));
    memset(pad + have, 0, (size_t)(block - have) * sizeof(float));
    return pad;
}

/* ------------------------------------------------------------------------ */
/* Q8_0: { f16 d; int8 q[32] }                                             */
/* ------------------------------------------------------------------------ */

static void quantize_block_q8_0(const float *x, uint8_t *out)
{
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(out, float_to_half(d));
    int8_t *q = (int8_t *)(out + 2);
    for (int j = 0; j < QK8_0; j++)
        q[j] = (int8_t)round_clamped(x[j] * id, -128, 127);
}

static void dequantize_block_q8_0(const uint8_t *in, int n, float *y)
{
    const float d = half_to_float(load_u16(in));
    const int8_t *q = (const int8_t *)(in + 2);
    for (int j = 0; j < n; j++)
        y[j] = d * (float)q[j];
}

/* ------------------------------------------------------------------------ */
/* Q4_0: { f16 d; uint8 qs[16] }, element j in qs[j] low, j+16 in qs[j] high */
/* ------------------------------------------------------------------------ */

/* MIN(15, (int8_t)v) of ggml for v = x/d + 8.5, which lies in [0.5, 16.5]
 * for finite input; NaN gives 0 as ggml's conversion does on x86. */
static inline uint8_t q4_0_code(float v)
{
    if (!(v > 0.0f))
        return 0;
    if (v >= 15.0f)
        return 15;
    return (uint8_t)v; /* truncation, as the cast in ggml */
}

static void quantize_block_q4_0(const float *x, uint8_t *out)
{
    /* the element of largest magnitude, with its sign; the first on ties */
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK4_0; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(out, float_to_half(d));
    uint8_t *qs = out + 2;
    for (int j = 0; j < QK4_0 / 2; j++) {
        /* The product goes through a volatile so that no compiler fuses
         * x*id + 8.5 into one FMA: ggml's definition rounds the product
         * first, and one ulp decides the truncated code near an integer. */
        volatile float lo = x[j] * id;
        volatile float hi = x[j + QK4_0 / 2] * id;
        qs[j] = (uint8_t)(q4_0_code(lo + 8.5f) | (q4_0_code(hi + 8.5f) << 4));
    }
}

static void dequantize_block_q4_0(const uint8_t *in, int n, float *y)
{
    const float d = half_to_float(load_u16(in));
    const uint8_t *qs = in + 2;
    for (int j = 0; j < n; j++) {
        const int nib = j < QK4_0 / 2 ? (qs[j] & 15) : (qs[j - QK4_0 / 2] >> 4);
        y[j] = d * (float)(nib - 8);
    }
}

/* ------------------------------------------------------------------------ */
/* I4_G32 / I4_G128: { f16 scale; f16 min; uint8 qs[G/2] }, even i low      */
/* ------------------------------------------------------------------------ */

static void quantize_group_i4(const float *x, int group, uint8_t *out)
{
    float mn = x[0], mx = x[0];
    for (int j = 1; j < group; j++) {
        mn = x[j] < mn ? x[j] : mn;
        mx = x[j] > mx ? x[j] : mx;
    }
    /* Scale and min are rounded to f16 before the codes are chosen, so the
     * codes fit the values that dequantization will actually use. */
    const uint16_t scale_h = float_to_half((mx - mn) / 15);
    const uint16_t min_h = float_to_half(mn);
    const float scale = half_to_float(scale_h);
    const float min = half_to_float(min_h);
    store_u16(out, scale_h);
    store_u16(out + 2, min_h);
    uint8_t *qs = out + I4_HEADER_BYTES;
    for (int j = 0; j < group; j += 2) {
        int32_t q0 = 0, q1 = 0;
        if (scale != 0.0f) {
            q0 = round_clamped((x[j] - min) / scale, 0, 15);
            q1 = round_clamped((x[j + 1] - min) / scale, 0, 15);
        }
        qs[j / 2] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void dequantize_group_i4(const uint8_t *in, int n, float *y)
{
    const float scale = half_to_float(load_u16(in));
    const float min = half_to_float(load_u16(in + 2));
    const uint8_t *qs = in + I4_HEADER_BYTES;
    for (int j = 0; j < n; j++) {
        const int nib = (qs[j / 2] >> (4 * (j % 2))) & 15;
        y[j] = scale * (float)nib + min;
    }
}

/* ------------------------------------------------------------------------ */
/* I8_ROW: { float32 scale; int8 q[cols] }                                  */
/* ------------------------------------------------------------------------ */

static void quantize_row_i8(const float *x, int64_t cols, uint8_t *out)
{
    float amax = 0.0f;
    for (int64_t j = 0; j < cols; j++) {
        const float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    const float scale = amax / 127;
    memcpy(out, &scale, sizeof scale);
    int8_t *q = (int8_t *)(out + I8_ROW_HEADER_BYTES);
    if (scale == 0.0f) {
        memset(q, 0, (size_t)cols);
        return;
    }
    for (int64_t j = 0; j < cols; j++)
        q[j] = (int8_t)round_clamped(x[j] / scale, -127, 127);
}

static void dequantize_row_i8(const uint8_t *in, int64_t cols, float *y)
{
    float scale;
    memcpy(&scale, in, sizeof scale);
    const int8_t *q = (const int8_t *)(in + I8_ROW_HEADER_BYTES);
    for (int64_t j = 0; j < cols; j++)
        y[j] = scale * (float)q[j];
}

/* ------------------------------------------------------------------------ */
/* Rows                                                                     */
/* ------------------------------------------------------------------------ */

void moak_quantize_row(moak_format format, const float *src, int64_t cols, void *dst)
{
    uint8_t *out = dst;
    float pad[I4_GROUP_MAX];
    switch (format) {
    case MOAK_FORMAT_F32:
        memcpy(out, src, (size_t)cols * sizeof(float));
        return;
    case MOAK_FORMAT_F16:
        for (int64_t j = 0; j < cols; j++)
            store_u16(out + 2 * j, float_to_half(src[j]));
        return;
    case MOAK_FORMAT_BF16:
        for (int64_t j = 0; j < cols; j++)
            store_u16(out + 2 * j, float_to_bf16(src[j]));
        return;
    case MOAK_FORMAT_Q8_0:
        for (int64_t b = 0; b < cols; b += QK8_0, out += Q8_0_BLOCK_BYTES)
            quantize_block_q8_0(block_input(src, b, cols, QK8_0, pad), out);
        return;
    case MOAK_FORMAT_Q4_0:
        for (int64_t b = 0; b < cols; b += QK4_0, out += Q4_0_BLOCK_BYTES)
            quantize_block_q4_0(block_input(src, b, cols, QK4_0, pad), out);
        return;
    case MOAK_FORMAT_I8_ROW:
        quantize_row_i8(src, cols, out);
        return;
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        const int group = (int)formats[format].block_elems;
        const size_t group_bytes = formats[format].block_bytes;
        for (int64_t b = 0; b < cols; b += group, out += group_bytes)
            quantize_group_i4(block_input(src, b, cols, group, pad), group, out);
        return;
    }
    case MOAK_FORMAT_MXFP4:
        moak_mxfp4_quantize_row(src, cols, out);
        return;
    default:
        /* the split-scale formats choose scales over whole tensors
         * (moak_quantize); backends never quantize weights row by row */
        return;
    }
}

int moak_row_quant(moak_format format, const void *row, int64_t cols, int64_t k)
{
    const uint8_t *r = (const uint8_t *)row;
    switch (format) {
    case MOAK_FORMAT_Q8_0:
        return (int8_t)r[(size_t)(k / QK8_0) * Q8_0_BLOCK_BYTES + 2 + (size_t)(k % QK8_0)];
    case MOAK_FORMAT_I8_ROW:
        return k < cols ? (int8_t)r[I8_ROW_HEADER_BYTES + (size_t)k] : 0;
    case MOAK_FORMAT_Q4_0: {
        const uint8_t *qs = r + (size_t)(k / QK4_0) * Q4_0_BLOCK_BYTES + 2;
        const int i = (int)(k % QK4_0);
        return i < QK4_0 / 2 ? (qs[i] & 15) : (qs[i - QK4_0 / 2] >> 4);
    }
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        const int group = (int)formats[format].block_elems;
        const uint8_t *qs = r + (size_t)(k / group) * formats[format].block_bytes + I4_HEADER_BYTES;
        const int i = (int)(k % group);
        return (qs[i / 2] >> (4 * (i % 2))) & 15;
    }
    default:
        return 0;
    }
}

void moak_dequantize_row(moak_format format, const void *row, int64_t cols, float *dst)
{
    const uint8_t *in = row;
    switch (format) {
    case MOAK_FORMAT_F32:
        memcpy(dst, in, (size_t)cols * sizeof(float));
        return;
    case MOAK_FORMAT_F16:
        for (int64_t j = 0; j < cols; j++)
            dst[j] = half_to_float(load_u16(in + 2 * j));
        return;
    case MOAK_FORMAT_BF16:
        for (int64_t j = 0; j < cols; j++)
            dst[j] = bf16_to_float(load_u16(in + 2 * j));
        return;
    case MOAK_FORMAT_Q8_0:
        for (int64_t b = 0; b < cols; b += QK8_0, in += Q8_0_BLOCK_BYTES)
            dequantize_block_q8_0(in, cols - b < QK8_0 ? (int)(cols - b) : QK8_0, dst + b);
        return;
    case MOAK_FORMAT_Q4_0:
        for (int64_t b = 0; b < cols; b += QK4_0, in += Q4_0_BLOCK_BYTES)
            dequantize_block_q4_0(in, cols - b < QK4_0 ? (int)(cols - b) : QK4_0, dst + b);
        return;
    case MOAK_FORMAT_I8_ROW:
        dequantize_row_i8(in, cols, dst);
        return;
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        const int64_t group = formats[format].block_elems;
        const size_t group_bytes = formats[format].block_bytes;
        for (int64_t b = 0; b < cols; b += group, in += group_bytes)
            dequantize_group_i4(in, cols - b < group ? (int)(cols - b) : (int)group, dst + b);
        return;
    }
    default:
        /* release formats, in the row-local form: the row's scales follow it */
        moak_release_dequantize_row(format, in, in + moak_format_row_bytes(format, cols), cols, dst);
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* Whole tensors: validate everything, then convert row by row              */
/* ------------------------------------------------------------------------ */

/* Checks the arguments common to both directions and computes the byte
 * count of the encoded rows and of the float rows. */
static moak_status check_tensor(moak_format format, int64_t rows, int64_t cols,
                                size_t *row_bytes, size_t *encoded_bytes,
                                size_t *float_bytes)
{
    if (!format_known(format))
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "format: unknown value %d (expected 0..%d)", (int)format,
                          MOAK_FORMAT_COUNT - 1);
    if (rows < 0)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "rows: must be >= 0 (got %" PRId64 ")", rows);
    if (cols < 1)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "cols: must be >= 1 (got %" PRId64 ")", cols);
    if (moak_format_is_release(format) && cols % formats[format].block_elems != 0)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "cols: %" PRId64 " is not a multiple of %s's block of %" PRId64
                          " (release formats are not padded)",
                          cols, formats[format].name, formats[format].block_elems);
    const int64_t dims[2] = {rows, cols};
    if (!row_bytes_checked(format, cols, row_bytes) ||
        (uint64_t)rows > SIZE_MAX ||
        !moak_mul_size((size_t)rows, *row_bytes, encoded_bytes) ||
        (rows > 0 && !moak_add_size(*encoded_bytes, moak_format_scales_bytes(format, rows, cols),
                                    encoded_bytes)) ||
        !moak_count_bytes(sizeof(float), 2, dims, float_bytes))
        return moak_error(NULL, MOAK_ERR_SIZE_OVERFLOW,
                          "rows x cols: %" PRId64 " x %" PRId64
                          " elements of %s need more bytes than size_t can count",
                          rows, cols, formats[format].name);
    return MOAK_OK;
}

MOAK_API moak_status moak_quantize(moak_format format, const float *src, int64_t rows,
                                   int64_t cols, void *dst, size_t dst_size)
{
    MOAK_CHECK_NULL(NULL, src, "src");
    MOAK_CHECK_NULL(NULL, dst, "dst");
    size_t row_bytes, needed, float_bytes;
    moak_status status = check_tensor(format, rows, cols, &row_bytes, &needed, &float_bytes);
    if (status != MOAK_OK)
        return status;
    if (dst_size < needed)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "dst_size: %zu bytes is too small: %" PRId64 " rows of %" PRId64
                          " %s elements need %zu",
                          dst_size, rows, cols, formats[format].name, needed);
    uint8_t *out = dst;
    if (moak_format_is_release(format)) {
        /* the scales tensor follows the data */
        moak_release_quantize(format, src, rows, cols, out, out + (size_t)rows * row_bytes);
        return MOAK_OK;
    }
    for (int64_t r = 0; r < rows; r++)
        moak_quantize_row(format, src + r * cols, cols, out + (size_t)r * row_bytes);
    return MOAK_OK;
}

MOAK_API moak_status moak_dequantize(moak_format format, const void *src, size_t src_size,
                                     int64_t rows, int64_t cols, float *dst)
{
    MOAK_CHECK_NULL(NULL, src, "src");
    MOAK_CHECK_NULL(NULL, dst, "dst");
    size_t row_bytes, needed, float_bytes;
    moak_status status = check_tensor(format, rows, cols, &row_bytes, &needed, &float_bytes);
    if (status != MOAK_OK)
        return status;
    if (src_size < needed)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "src_size: %zu bytes is too small: %" PRId64 " rows of %" PRId64
                          " %s elements need %zu",
                          src_size, rows, cols, formats[format].name, needed);
    const uint8_t *in = src;
    if (moak_format_is_release(format)) {
        const uint8_t *scales = in + (size_t)rows * row_bytes;
        for (int64_t r = 0; r < rows; r++)
            moak_release_dequantize_row(format, in + (size_t)r * row_bytes,
                                        moak_release_row_scales(format, scales, cols, r), cols, dst + r * cols);
        return MOAK_OK;
    }
    for (int64_t r = 0; r < rows; r++)
        moak_dequantize_row(format, in + (size_t)r * row_bytes, cols, dst + r * cols);
    return MOAK_OK;
}
