/* indexer_avx2.c — the indexer's scores on ymm registers (indexer_body.h):
 * 2 keys x 4 head vectors = 8 accumulators + 4 query vectors + 1 broadcast
 * of the 16 ymm (3 keys would need 17). */
#include "x86_simd_avx2.h"

#include "x86_indexer.h"

#define INDEXER_KEYS MOAK_X86_INDEXER_KEYS_AVX2
#define INDEXER_FN moak_x86_avx2_indexer_keys
#define INDEXER_ROW_FN moak_x86_avx2_indexer_row
#include "indexer_body.h"
