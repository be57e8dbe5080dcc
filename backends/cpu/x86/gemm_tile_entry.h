/* The entry point of a tile kernel, shared by gemm_int_body.h and
 * gemm_float_body.h: picks the instantiation of GEMM_TILE_BODY (the body
 * the including file just defined, taking (w, panels, k0, k1, act, rows,
 * out, S, NT) with S and NT compile-time constants) for the call's panel
 * count and token count, so every register tile has constant bounds.  Token
 * counts above the level's SIMD_MAX_TOKENS_* are never asked for and are
 * compiled out.  Defines GEMM_TILE_FN; undefines GEMM_TILE_BODY. */
void GEMM_TILE_FN(const moak_x86_weight *w, const uint8_t *const *panels, int n_panels,
                  int64_t k0, int64_t k1, const moak_x86_act *act, const int64_t *rows, int nt,
                  float *out);

void GEMM_TILE_FN(const moak_x86_weight *w, const uint8_t *const *panels, int n_panels,
                  int64_t k0, int64_t k1, const moak_x86_act *act, const int64_t *rows, int nt,
                  float *out)
{
    if (n_panels == 2) {
        switch (nt) {
        case 1: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 2, 1); break;
#if SIMD_MAX_TOKENS_2 >= 2
        case 2: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 2, 2); break;
#endif
#if SIMD_MAX_TOKENS_2 >= 3
        case 3: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 2, 3); break;
#endif
        default: break;
        }
        return;
    }
    switch (nt) {
    case 1: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 1, 1); break;
#if SIMD_MAX_TOKENS_1 >= 2
    case 2: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 1, 2); break;
#endif
#if SIMD_MAX_TOKENS_1 >= 3
    case 3: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 1, 3); break;
#endif
#if SIMD_MAX_TOKENS_1 >= 4
    case 4: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 1, 4); break;
#endif
#if SIMD_MAX_TOKENS_1 >= 5
    case 5: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 1, 5); break;
#endif
#if SIMD_MAX_TOKENS_1 >= 6
    case 6: GEMM_TILE_BODY(w, panels, k0, k1, act, rows, out, 1, 6); break;
#endif
    default: break;
    }
}

#undef GEMM_TILE_BODY
