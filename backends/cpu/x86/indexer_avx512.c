/* indexer_avx512.c — the indexer's scores on zmm registers (indexer_body.h):
 * 6 keys x 4 head vectors = 24 accumulators + 4 query vectors + 1 broadcast
 * of the 32 zmm. */
#include "x86_simd_avx512.h"

#include "x86_indexer.h"

#define INDEXER_KEYS MOAK_X86_INDEXER_KEYS_AVX512
#define INDEXER_FN moak_x86_avx512_indexer_keys
#define INDEXER_ROW_FN moak_x86_avx512_indexer_row
#include "indexer_body.h"
