/* The oneDNN backend's row kernels with AVX-512 (F, BW, VL, DQ, VNNI, FMA):
 * the same body as the generic file, 16 floats per vector.  Used only when
 * the probe reports the ISA (onednn_row_kernels_for). */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "onednn_row_kernels_avx512.c must be compiled with the AVX-512 flags (AVX512_CFLAGS)"
#endif
#define ONEDNN_ROW_KERNELS_TABLE onednn_row_kernels_avx512
#define ONEDNN_ROW_KERNELS_NAME "avx512"
#include "onednn_row_kernels_body.h"
