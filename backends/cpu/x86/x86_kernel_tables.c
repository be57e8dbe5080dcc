/* The kernel table of each x86 level: which tile kernel runs each weight
 * format, how tall a panel is, how many tokens one register tile holds.
 * Plain data, compiled without ISA flags; the functions it names are in the
 * per-ISA convenience libraries and are only called once available() said
 * the CPU has that ISA. */
#include "config.h"

#include "x86_kernels.h"

#define DECLARE_TILE(name)                                                                     \
    void name(const moak_x86_weight *, const uint8_t *const *, int, int64_t, int64_t,           \
              const moak_x86_act *, const int64_t *, int, float *)

#define DECLARE_PANEL(name)                                                                    \
    void name(const moak_x86_weight *, const uint8_t *const *, const uint8_t *const *, int,    \
              const moak_x86_act *, const int64_t *, int64_t, const float *const *,            \
              float *const *, int64_t, void *)

#define DECLARE_LEVEL(pre)                                                                     \
    DECLARE_TILE(moak_x86_##pre##_tile_q8_0);                                                  \
    DECLARE_TILE(moak_x86_##pre##_tile_q4_0);                                                  \
    DECLARE_TILE(moak_x86_##pre##_tile_i8_row);                                                \
    DECLARE_TILE(moak_x86_##pre##_tile_i4_g32);                                                \
    DECLARE_TILE(moak_x86_##pre##_tile_i4_g128);                                               \
    DECLARE_PANEL(moak_x86_##pre##_panel_q8_0);                                                \
    DECLARE_PANEL(moak_x86_##pre##_panel_q4_0);                                                \
    DECLARE_PANEL(moak_x86_##pre##_panel_i8_row);                                              \
    DECLARE_PANEL(moak_x86_##pre##_panel_i4_g32);                                              \
    DECLARE_PANEL(moak_x86_##pre##_panel_i4_g128)

#define PANELS(pre)                                                                            \
    .panel = {                                                                                 \
        [MOAK_FORMAT_Q8_0] = moak_x86_##pre##_panel_q8_0,                                      \
        [MOAK_FORMAT_Q4_0] = moak_x86_##pre##_panel_q4_0,                                      \
        [MOAK_FORMAT_I8_ROW] = moak_x86_##pre##_panel_i8_row,                                  \
        [MOAK_FORMAT_I4_G32] = moak_x86_##pre##_panel_i4_g32,                                  \
        [MOAK_FORMAT_I4_G128] = moak_x86_##pre##_panel_i4_g128,                                \
    }

#define DECLARE_FLOAT(pre)                                                                     \
    DECLARE_TILE(moak_x86_##pre##_tile_f32);                                                   \
    DECLARE_TILE(moak_x86_##pre##_tile_f16);                                                   \
    DECLARE_TILE(moak_x86_##pre##_tile_bf16);                                                  \
    void moak_x86_##pre##_quantize(const float *, int64_t, int64_t, int64_t, int64_t, int32_t, \
                                   int8_t *, float *, int32_t *, float *);                     \
    void moak_x86_##pre##_glu(moak_activation, float, float, const float *, const float *,     \
                              int64_t, float *)

#ifdef MOAK_BUILD_AVX512
DECLARE_LEVEL(avx512);
DECLARE_FLOAT(avx512);
const moak_x86_kernels moak_x86_kernels_avx512 = {
    .name = "avx512-vnni",
    .panel_rows = 32,
    .max_tokens = {6, 3},
    .panel_min_tokens = 12,
    .dot8_offset = 128,
    .tile = {
        [MOAK_FORMAT_F32] = moak_x86_avx512_tile_f32,
        [MOAK_FORMAT_F16] = moak_x86_avx512_tile_f16,
        [MOAK_FORMAT_BF16] = moak_x86_avx512_tile_bf16,
        [MOAK_FORMAT_Q8_0] = moak_x86_avx512_tile_q8_0,
        [MOAK_FORMAT_Q4_0] = moak_x86_avx512_tile_q4_0,
        [MOAK_FORMAT_I8_ROW] = moak_x86_avx512_tile_i8_row,
        [MOAK_FORMAT_I4_G32] = moak_x86_avx512_tile_i4_g32,
        [MOAK_FORMAT_I4_G128] = moak_x86_avx512_tile_i4_g128,
    },
    PANELS(avx512),
    .quantize = moak_x86_avx512_quantize,
    .glu = moak_x86_avx512_glu,
};
#endif

#ifdef MOAK_BUILD_AVX2
DECLARE_LEVEL(avx2);
DECLARE_FLOAT(avx2);
const moak_x86_kernels moak_x86_kernels_avx2 = {
    .name = "avx2",
    .panel_rows = 16,
    .max_tokens = {2, 1},
    .panel_min_tokens = 4,
    .dot8_offset = 0,
    .tile = {
        [MOAK_FORMAT_F32] = moak_x86_avx2_tile_f32,
        [MOAK_FORMAT_F16] = moak_x86_avx2_tile_f16,
        [MOAK_FORMAT_BF16] = moak_x86_avx2_tile_bf16,
        [MOAK_FORMAT_Q8_0] = moak_x86_avx2_tile_q8_0,
        [MOAK_FORMAT_Q4_0] = moak_x86_avx2_tile_q4_0,
        [MOAK_FORMAT_I8_ROW] = moak_x86_avx2_tile_i8_row,
        [MOAK_FORMAT_I4_G32] = moak_x86_avx2_tile_i4_g32,
        [MOAK_FORMAT_I4_G128] = moak_x86_avx2_tile_i4_g128,
    },
    PANELS(avx2),
    .quantize = moak_x86_avx2_quantize,
    .glu = moak_x86_avx2_glu,
};

#ifdef MOAK_HAVE_AVXVNNI_FLAGS
DECLARE_LEVEL(avx2_vnni);
/* Same panels and float kernels as avx2; only the int8 dots change. */
const moak_x86_kernels moak_x86_kernels_avx2_vnni = {
    .name = "avx2-vnni",
    .panel_rows = 16,
    .max_tokens = {2, 1},
    .panel_min_tokens = 4,
    .dot8_offset = 128,
    .tile = {
        [MOAK_FORMAT_F32] = moak_x86_avx2_tile_f32,
        [MOAK_FORMAT_F16] = moak_x86_avx2_tile_f16,
        [MOAK_FORMAT_BF16] = moak_x86_avx2_tile_bf16,
        [MOAK_FORMAT_Q8_0] = moak_x86_avx2_vnni_tile_q8_0,
        [MOAK_FORMAT_Q4_0] = moak_x86_avx2_vnni_tile_q4_0,
        [MOAK_FORMAT_I8_ROW] = moak_x86_avx2_vnni_tile_i8_row,
        [MOAK_FORMAT_I4_G32] = moak_x86_avx2_vnni_tile_i4_g32,
        [MOAK_FORMAT_I4_G128] = moak_x86_avx2_vnni_tile_i4_g128,
    },
    PANELS(avx2_vnni),
    .quantize = moak_x86_avx2_quantize,
    .glu = moak_x86_avx2_glu,
};
#endif
#endif
