/*
 * moak.h — the public C ABI of moak, hardware-aware kernels for quantized
 * Mixture-of-Experts layers and attention over a paged KV cache.
 *
 * This is the only header an application includes.  Rules that hold for
 * every function below:
 *   - C99, opaque handles, every fallible function returns moak_status.
 *   - On any error nothing is written to any output argument (outputs are
 *     validated completely before the first byte is stored), the context
 *     keeps a message naming the argument and the rule it broke
 *     (moak_last_error), and the library never aborts or prints to stdout.
 *   - Every options/descriptor struct starts with `size_t struct_size`; set
 *     it to sizeof(the struct) (the MOAK_*_INIT macros do).  Fields added in
 *     later versions go at the end, so an older caller's smaller struct
 *     keeps working: missing fields take their documented default.
 *   - Activations, outputs and scales are host float32, row-major, tightly
 *     packed.  Sizes are int64_t; negative sizes are errors.
 *
 * Threads (the contract; tests/test_concurrency.c checks it under ThreadSanitizer):
 *   - Context-free functions (moak_quantize, moak_dequantize, moak_format_*,
 *     moak_hw_probe, moak_backend_*, moak_status_str, moak_version*) may be
 *     called from any number of threads at once.
 *   - Different contexts are independent: any calls on different contexts,
 *     and on weights and caches created on them, may run at the same time.
 *   - One context may be shared by threads.  Calls that take ctx (every op,
 *     moak_weight_create, moak_kv_cache_create/append/seq_clear) are
 *     serialised by the context's lock: they are safe to make at the same
 *     time, and run one after another, each with the context's whole thread
 *     pool.  moak_kv_cache_seq_len takes the owning context's lock too.
 *   - A weight or KV cache belongs to the context that created it and is
 *     used only through that context (another context gets
 *     MOAK_ERR_INVALID_ARGUMENT); threads sharing that context may share it.
 *     Two appends/clears on one cache from two threads are serialised, but
 *     their order is the caller's business.
 *   - moak_last_error(ctx) and moak_last_backend(ctx) report the last call
 *     on ctx made by the calling thread; another thread's calls never change
 *     what they return.  The returned string stays valid until this thread's
 *     next call on ctx (or the context's destruction).
 *   - Immutable after creation, readable from any thread: moak_context_num_threads,
 *     moak_context_backends, moak_weight_backend, moak_kv_cache_backend.
 *   - Not allowed: destroying a context, weight or cache while another thread
 *     uses it (or a weight/cache of that context); calling moak from inside a
 *     log callback (the context's lock is held there).
 *
 * Numerics contract: the reference backend ("ref") computes in f32 with f64
 * accumulation on dequantized weights.  Every other backend must match it
 * within the bound written beside each op (MOAK_BOUND_*); moak-conform
 * enforces exactly those bounds, and a NaN/Inf where the reference is finite
 * always fails.  The error of an output row is max_j |y_j - ref_j| divided by
 * the rms of the reference row; a row of fewer than MOAK_BOUND_MIN_ROW values
 * is divided by the rms of the op's whole output instead (the rms of a short
 * row can vanish by cancellation, which would make any rounding "infinite").
 */
#ifndef MOAK_H
#define MOAK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Rows shorter than this are measured against the whole output's rms (see above). */
#define MOAK_BOUND_MIN_ROW 16

/* The MOAK_*_INIT macros set struct_size (and documented defaults).  C gets
 * designated initializers, so callers built with -Wextra see no
 * missing-field warnings; C++ before C++20 has none, so it gets positional ones. */
#ifdef __cplusplus
#  define MOAK_STRUCT_INIT(type) { sizeof(type) }
#else
#  define MOAK_STRUCT_INIT(type) { .struct_size = sizeof(type) }
#endif

#if defined(_WIN32)
#  define MOAK_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define MOAK_API __attribute__((visibility("default")))
#else
#  define MOAK_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

#define MOAK_VERSION_MAJOR 0
#define MOAK_VERSION_MINOR 1
#define MOAK_VERSION_PATCH 0
/* One integer that orders releases: major*10000 + minor*100 + patch. */
#define MOAK_VERSION \
    (MOAK_VERSION_MAJOR * 10000 + MOAK_VERSION_MINOR * 100 + MOAK_VERSION_PATCH)

/* The version of the library actually loaded (compare with MOAK_VERSION to
 * detect a header/library mismatch). */
MOAK_API int moak_version(void);
/* "0.1.0" */
MOAK_API const char *moak_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum moak_status {
    MOAK_OK = 0,
    MOAK_ERR_NULL_ARGUMENT = 1,    /* a required pointer is NULL */
    MOAK_ERR_INVALID_ARGUMENT = 2, /* a value breaks a documented rule */
    MOAK_ERR_SIZE_OVERFLOW = 3,    /* a byte count does not fit size_t */
    MOAK_ERR_SHAPE_MISMATCH = 4,   /* dimensions/formats of two arguments disagree */
    MOAK_ERR_UNSUPPORTED = 5,      /* no enabled backend can run this case */
    MOAK_ERR_OUT_OF_MEMORY = 6,
    MOAK_ERR_CACHE_FULL = 7,       /* the KV cache has no free page left */
    MOAK_ERR_OUT_OF_RANGE = 8,     /* an index (sequence id, expert id) is outside its range */
    MOAK_ERR_UNKNOWN_BACKEND = 9,  /* a backend name in a preference list is not known */
    MOAK_ERR_BACKEND = 10,         /* the backend's library or device failed */
    MOAK_ERR_STRUCT_SIZE = 11      /* struct_size is smaller than the first version of the struct */
} moak_status;

/* A static English name for a status ("MOAK_ERR_CACHE_FULL: ..."). */
MOAK_API const char *moak_status_str(moak_status status);

/* ------------------------------------------------------------------------ */
/* Formats and their exact byte layouts                                     */
/* ------------------------------------------------------------------------ */
/*
 * A weight tensor is n_experts x rows x cols: expert-major, then row-major;
 * each row is a sequence of bytes whose length is moak_format_row_bytes(f,
 * cols).  Multi-byte fields are little-endian.  "f16" is IEEE-754 binary16,
 * "bf16" the upper 16 bits of an IEEE binary32; conversions from f32 round to
 * nearest, ties to even.
 *
 * format     block (elements)  bytes per block, layout of one block
 * F32        1                 4   float32
 * F16        1                 2   binary16
 * BF16       1                 2   bfloat16
 * Q8_0       32                34  { f16 d; int8 q[32]; }            x[i] = d * q[i]
 * Q4_0       32                18  { f16 d; uint8 qs[16]; }          x[i] = d * (nib(i) - 8),
 *                                  nib(i) = qs[i] & 15 for i < 16, qs[i-16] >> 4 for i >= 16
 * I8_ROW     cols (one row)    4+cols  { float32 scale; int8 q[cols]; }  x[i] = scale * q[i]
 * I4_G32     32                20  { f16 scale; f16 min; uint8 qs[16]; }  x[i] = scale * nib(i) + min,
 *                                  nib(i) = (qs[i/2] >> (4*(i%2))) & 15 (even i in the low nibble)
 * I4_G128    128               68  { f16 scale; f16 min; uint8 qs[64]; }  as I4_G32
 *
 * Q8_0 and Q4_0 are byte-identical to GGUF's block_q8_0 / block_q4_0 and are
 * quantized exactly as ggml's reference quantizer does (Q8_0: d = amax/127,
 * q = round(x * (1/d)); Q4_0: d = (the element of largest magnitude, with its sign)/-8,
 * q = min(15, (int)(x/d + 8.5))).  I8_ROW is symmetric per row: scale = amax/127
 * in f32 (stored as is), q = round(x / scale) with halves away from zero (C's
 * roundf), clamped to [-127, 127]; an all-zero row gets scale 0 and q = 0.
 * I4_G* is asymmetric per group (GPTQ/AWQ style): min = min(x), scale =
 * (max(x) - min)/15, both rounded to f16 (nearest even) first, q =
 * clamp(round((x - min)/scale), 0, 15) with halves away from zero (roundf);
 * a group whose f16 scale is 0 gets q = 0.  NaN inputs give q = 0.
 * When cols is not a multiple of the block, the last block of each row is
 * completed with zeros (they are quantized as zeros and never read back).
 *
 * Release formats: the weights as the leading MoE checkpoints ship them, byte
 * for byte.  For these, cols must be a multiple of the block (no padding;
 * moak_format_row_bytes gives 0 otherwise).  Four of them keep their scales in
 * a separate tensor, as the checkpoint does ("split-scale" formats): a weight
 * gets it through moak_weight_desc.scales, moak_format_scales_bytes gives its
 * size per expert, and moak_quantize / moak_dequantize treat src/dst as one
 * expert's data tensor immediately followed by its scales tensor.
 *
 * E4M3 is OCP FP8 E4M3 "fn" (torch.float8_e4m3fn): sign, 4 exponent bits (bias
 * 7), 3 mantissa bits, subnormals m * 2^-9, max 448, 0x7f/0xff NaN, no Inf.
 * E2M1 is OCP FP4: sign bit 3, magnitude code 0..7 = 0, 0.5, 1, 1.5, 2, 3, 4, 6.
 * E8M0 is an unsigned power-of-two exponent byte, 2^(e - 127) (255 is not NaN here).
 * UE4M3 is E4M3 without the sign bit (bits 6..0).
 *
 * FP8_E4M3_B128  128   128 bytes: int8 e4m3 q[128] (row-major [rows][cols], 1 byte each)
 *                split scales: float32 [ceil(rows/128)][cols/128] per expert (DeepSeek's
 *                weight_scale_inv), x[r][c] = e4m3(q[r][c]) * scales[r/128][c/128].
 *                Quantizer: scale = amax of the 128x128 block / 448 (f32; an all-zero
 *                block gets 1), q = e4m3(x / scale) rounded to nearest, ties to even
 *                (|x/scale| <= 448 by construction; NaN stays NaN).
 * MXFP4          32    17  { uint8 e; uint8 qs[16]; } GGUF's block_mxfp4: element j is the
 *                          low nibble of qs[j], j+16 the high nibble; a nibble is an E2M1
 *                          code, x = e2m1(nib) * 2^(e - 127) (8 = +0.0 here, as ggml reads
 *                          it).  Quantizer = ggml's quantize_row_mxfp4_ref: e =
 *                          floor(log2(amax)) - 2 + 127 (0 for an all-zero block, and
 *                          clamped to 0 where ggml's cast would be undefined, amax < 2^-125),
 *                          each element the nearest table value, ties to the smaller magnitude.
 * MXFP4_ST       32    16  uint8 blocks [rows][cols/32][16] as gpt-oss's safetensors
 *                          (*_blocks): element 2k is the low nibble of byte k, 2k+1 the high.
 *                split scales: uint8 E8M0 [rows][cols/32] per expert (*_scales),
 *                x = e2m1(nib) * 2^(scale - 127), nibble 8 = -0.0.  Same numbers as MXFP4
 *                (the quantizer is MXFP4's, re-laid out), two byte layouts.
 * I4_G32_CT      32    16  compressed-tensors "pack-quantized" INT4, symmetric, group 32
 *                          (Kimi K2.x weight_packed): int32 words [rows][cols/8], element
 *                          8w+i at bits 4i of word w, i.e. element 2k in the low nibble of
 *                          byte k; the nibble stores q + 8.
 *                split scales: bf16 [rows][cols/32] per expert (weight_scale),
 *                x = (nib - 8) * scale, computed exactly in f32 (compressed-tensors itself
 *                multiplies in bf16, which rounds; moak does not).  Quantizer as
 *                compressed-tensors: scale = amax/7.5 rounded to bf16 (nearest even; 0
 *                becomes 2^-7), q = clamp(round-half-even(x / scale), -8, 7).
 * NVFP4          64    36  GGUF's block_nvfp4: { uint8 d[4]; uint8 qs[32]; }; sub-block s
 *                          (elements 16s..16s+15) has the UE4M3 scale d[s] and bytes
 *                          qs[8s..8s+7]: element 16s+j is the low nibble of qs[8s+j], 16s+j+8
 *                          the high nibble; a nibble is an E2M1 code (8 = +0.0, as GGUF reads
 *                          it).  d reads as GGUF reads
 *                          it: bit 7 ignored, except that 0x7f reads as 0.
 *                split scales: one float32 per expert, the per-tensor scale of NVIDIA's
 *                checkpoints (weight_scale_2, which GGUF does not keep in the block):
 *                x = e2m1(nib) * ue4m3(d[s]) * scales[expert].  Quantizer: tensor scale =
 *                amax / (6 * 448) (1 for an all-zero tensor); d[s] = UE4M3 of
 *                (sub-block amax / 6) / tensor scale, rounded as ggml_fp32_to_ue4m3 (round
 *                half up on the mantissa, saturating at 448); each element the nearest
 *                table value of x / (ue4m3(d) * tensor scale), ties to the smaller magnitude.
 *
 * KV caches use F32, F16, BF16 or Q8_0 (Q8_0 needs head dims that are
 * multiples of 32), with each head vector of each token stored as one row.
 */
typedef enum moak_format {
    MOAK_FORMAT_F32 = 0,
    MOAK_FORMAT_F16 = 1,
    MOAK_FORMAT_BF16 = 2,
    MOAK_FORMAT_Q8_0 = 3,
    MOAK_FORMAT_Q4_0 = 4,
    MOAK_FORMAT_I8_ROW = 5,
    MOAK_FORMAT_I4_G32 = 6,
    MOAK_FORMAT_I4_G128 = 7,
    MOAK_FORMAT_FP8_E4M3_B128 = 8,
    MOAK_FORMAT_MXFP4 = 9,
    MOAK_FORMAT_MXFP4_ST = 10,
    MOAK_FORMAT_I4_G32_CT = 11,
    MOAK_FORMAT_NVFP4 = 12,
    MOAK_FORMAT_COUNT
} moak_format;

/* Lower-case name as used on command lines: "f32", "q4_0", "i4_g128", ...;
 * NULL for an unknown value. */
MOAK_API const char *moak_format_name(moak_format format);
/* Parses a name from moak_format_name (case-insensitive); MOAK_ERR_INVALID_ARGUMENT if unknown. */
MOAK_API moak_status moak_format_from_name(const char *name, moak_format *format);
/* Elements per block (1 for F32/F16/BF16; 0 for I8_ROW, whose block is the
 * whole row, and 0 for an unknown format).  For the release formats, what
 * cols must be a multiple of: FP8_E4M3_B128 128, MXFP4/MXFP4_ST/I4_G32_CT 32,
 * NVFP4 64. */
MOAK_API int64_t moak_format_block_elems(moak_format format);
/* Bytes of one row of `cols` elements, including the padding of the last
 * block; 0 if format is unknown, cols < 1, or the count overflows. */
MOAK_API size_t moak_format_row_bytes(moak_format format, int64_t cols);
/* Bytes of one expert's separate scales tensor (see the release formats
 * above) for a rows x cols weight; 0 for formats whose blocks carry their
 * scales, for an unknown format, rows < 1, cols not a multiple of the block,
 * or overflow. */
MOAK_API size_t moak_format_scales_bytes(moak_format format, int64_t rows, int64_t cols);

/* Quantize rows x cols float32 values into dst (dst_size must be at least
 * rows * moak_format_row_bytes(format, cols), plus moak_format_scales_bytes
 * for a split-scale format, whose scales follow the data in dst).
 * Context-free: on error the message is read with moak_last_error(NULL)
 * (thread-local). */
MOAK_API moak_status moak_quantize(moak_format format, const float *src,
                                   int64_t rows, int64_t cols,
                                   void *dst, size_t dst_size);
/* The inverse: src_size must be at least rows * row_bytes (+ the scales). */
MOAK_API moak_status moak_dequantize(moak_format format, const void *src,
                                     size_t src_size, int64_t rows,
                                     int64_t cols, float *dst);

/* ------------------------------------------------------------------------ */
/* Hardware information                                                     */
/* ------------------------------------------------------------------------ */

/* ISA feature bits (one bitmask for every architecture). */
#define MOAK_ISA_SSE42        (UINT64_C(1) << 0)
#define MOAK_ISA_AVX          (UINT64_C(1) << 1)
#define MOAK_ISA_AVX2         (UINT64_C(1) << 2)
#define MOAK_ISA_FMA          (UINT64_C(1) << 3)
#define MOAK_ISA_F16C         (UINT64_C(1) << 4)
#define MOAK_ISA_AVX_VNNI     (UINT64_C(1) << 5)
#define MOAK_ISA_AVX512F      (UINT64_C(1) << 6)
#define MOAK_ISA_AVX512BW     (UINT64_C(1) << 7)
#define MOAK_ISA_AVX512VL     (UINT64_C(1) << 8)
#define MOAK_ISA_AVX512VNNI   (UINT64_C(1) << 9)
#define MOAK_ISA_AVX512BF16   (UINT64_C(1) << 10)
#define MOAK_ISA_AVX512FP16   (UINT64_C(1) << 11)
#define MOAK_ISA_AMX_TILE     (UINT64_C(1) << 12)
#define MOAK_ISA_AMX_INT8     (UINT64_C(1) << 13)
#define MOAK_ISA_AMX_BF16     (UINT64_C(1) << 14)
#define MOAK_ISA_NEON         (UINT64_C(1) << 32) /* aarch64 ASIMD */
#define MOAK_ISA_DOTPROD      (UINT64_C(1) << 33)
#define MOAK_ISA_I8MM         (UINT64_C(1) << 34)
#define MOAK_ISA_SVE          (UINT64_C(1) << 35)
#define MOAK_ISA_NEON_FP16    (UINT64_C(1) << 36)

/* Name of one ISA bit ("avx512vnni"), NULL if the bit is not defined. */
MOAK_API const char *moak_isa_name(uint64_t isa_bit);

#define MOAK_CACHE_LEVELS 4

typedef struct moak_hw_info {
    size_t struct_size;
    const char *arch;            /* "x86_64", "aarch64", ... */
    char cpu_name[96];           /* cpuid brand string or hwloc's CPUModel */
    int32_t n_packages;
    int32_t n_numa_nodes;
    int32_t n_cores;             /* physical cores */
    int32_t n_pus;               /* hardware threads */
    int32_t n_cpu_kinds;         /* hybrid parts report > 1 */
    /* Data/unified cache size of one instance of each level (index 0 = L1d;
     * the smallest instance on hybrid parts), and how many instances hwloc
     * reports; size 0 if the level is absent, count 0 if unknown. */
    uint64_t cache_bytes[MOAK_CACHE_LEVELS];
    int32_t cache_count[MOAK_CACHE_LEVELS];
    uint64_t isa_detected;       /* what the CPU and OS support */
    uint64_t isa;                /* what moak uses: detected, capped by MOAK_ISA_MAX */
    const char *isa_cap;         /* the MOAK_ISA_MAX value in force, or NULL */
} moak_hw_info;

#define MOAK_HW_INFO_INIT MOAK_STRUCT_INIT(moak_hw_info)

/* Probe the machine (hwloc + cpuid/xgetbv or getauxval).  The probe runs once
 * per process; MOAK_ISA_MAX is read then.  Context-free. */
MOAK_API moak_status moak_hw_probe(moak_hw_info *info);

/* ------------------------------------------------------------------------ */
/* Backends                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct moak_backend_info {
    size_t struct_size;
    const char *name;            /* "ref", "avx2", "avx512", "neon", "onednn", "opencl" */
    const char *description;
    int32_t built;               /* compiled into this library */
    int32_t available;           /* built and usable on this machine (ISA, device, library) */
    char reason[160];            /* why not built/available; empty when available */
} moak_backend_info;

#define MOAK_BACKEND_INFO_INIT MOAK_STRUCT_INIT(moak_backend_info)

/* Number of backends moak knows (built or not). */
MOAK_API int32_t moak_backend_count(void);
/* Describe backend `index` (0 <= index < moak_backend_count()). */
MOAK_API moak_status moak_backend_query(int32_t index, moak_backend_info *info);

/* For device backends (opencl): every platform and device the backend can
 * see, one per line, written NUL-terminated into buf (truncated to len).
 * Other backends write "".  Context-free. */
MOAK_API moak_status moak_backend_devices(int32_t index, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Context                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct moak_context moak_context;

typedef enum moak_log_level {
    MOAK_LOG_ERROR = 0,
    MOAK_LOG_WARN = 1,
    MOAK_LOG_INFO = 2,
    MOAK_LOG_DEBUG = 3
} moak_log_level;

typedef void (*moak_log_fn)(void *user, moak_log_level level, const char *message);

/* Context flags. */
/* Let a backend expand weights at creation into a larger format it can
 * compute exactly (oneDNN: F16/Q8_0/Q4_0/I4_* -> f32, 2x to 7.5x the bytes).
 * The growth is logged. */
#define MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION (1u << 0)
/* Do not bind worker threads to cores. */
#define MOAK_CONTEXT_NO_THREAD_BINDING      (1u << 1)

typedef struct moak_context_options {
    size_t struct_size;
    /* Worker threads; 0 = one per physical core that hwloc reports. */
    int32_t num_threads;
    /* Backend preference list, e.g. "avx512,onednn,ref".  NULL = the
     * MOAK_BACKENDS environment variable, or the default order (best
     * hand-written ISA, oneDNN, OpenCL accelerators, ref, OpenCL CPU).
     * An unknown name is MOAK_ERR_UNKNOWN_BACKEND; a known backend that is not
     * built or not usable here (e.g. "avx512" on a CPU without it) is
     * MOAK_ERR_UNSUPPORTED, because a list is a request, not a hint (the
     * default order, by contrast, skips what the machine lacks).  "ref" is
     * appended when absent so every op has a backend, unless the list ends
     * with "!". */
    const char *backends;
    /* Log sink; NULL = stderr.  Never stdout. */
    moak_log_fn log_fn;
    void *log_user;
    /* -1 = from MOAK_VERBOSE (default 0); 1 = log every dispatch choice and
     * why each candidate backend was refused. */
    int32_t verbose;
    uint32_t flags;              /* MOAK_CONTEXT_* */
    /* OpenCL device: "platform:device" indices or a name substring; NULL =
     * MOAK_OPENCL_DEVICE or the first GPU/accelerator, then CPU devices. */
    const char *opencl_device;
} moak_context_options;

#ifdef __cplusplus
#  define MOAK_CONTEXT_OPTIONS_INIT { sizeof(moak_context_options), 0, NULL, NULL, NULL, -1, 0u, NULL }
#else
#  define MOAK_CONTEXT_OPTIONS_INIT { .struct_size = sizeof(moak_context_options), .verbose = -1 }
#endif

/* opts may be NULL (all defaults). */
MOAK_API moak_status moak_context_create(const moak_context_options *opts,
                                         moak_context **ctx);
MOAK_API void moak_context_destroy(moak_context *ctx);

/* The detail message of the last call on ctx made by the calling thread if
 * it failed, "" if it succeeded or there was none (with ctx == NULL: of the
 * last failed context-free call on this thread).  Per thread, so another
 * thread sharing ctx cannot overwrite it; valid until this thread's next
 * call on ctx. */
MOAK_API const char *moak_last_error(const moak_context *ctx);
/* Name of the backend that ran the last successful op on ctx made by the
 * calling thread ("" if none). */
MOAK_API const char *moak_last_backend(const moak_context *ctx);
/* Worker threads of the context. */
MOAK_API int32_t moak_context_num_threads(const moak_context *ctx);
/* The resolved preference list, comma-separated ("avx512,onednn,ref"). */
MOAK_API const char *moak_context_backends(const moak_context *ctx);

/* ------------------------------------------------------------------------ */
/* Weights: created once, packed for the backend that will run them         */
/* ------------------------------------------------------------------------ */

typedef struct moak_weight moak_weight;

typedef struct moak_weight_desc {
    size_t struct_size;
    moak_format format;
    int64_t n_experts;           /* >= 1; experts are stacked in data */
    int64_t rows;                /* N: output features */
    int64_t cols;                /* K: input features */
    const void *data;            /* n_experts*rows*row_bytes(format, cols) bytes */
    size_t data_size;            /* size of data, checked */
    const float *bias;           /* optional [n_experts][rows], added to the output */
    /* Split-scale formats (FP8_E4M3_B128, MXFP4_ST, I4_G32_CT, NVFP4): their
     * scales tensor, n_experts * moak_format_scales_bytes(format, rows, cols)
     * bytes, experts stacked like data; required for them, and must be NULL
     * for every other format. */
    const void *scales;
    size_t scales_size;          /* size of scales, checked */
} moak_weight_desc;

#define MOAK_WEIGHT_DESC_INIT MOAK_STRUCT_INIT(moak_weight_desc)

/* Copies (and re-lays out) data; the caller may free it afterwards.  The
 * backend is the first in the context's preference order that supports
 * matmul and MoE on this format and shape; every later op on the weight runs
 * on that backend. */
MOAK_API moak_status moak_weight_create(moak_context *ctx,
                                        const moak_weight_desc *desc,
                                        moak_weight **weight);
MOAK_API void moak_weight_destroy(moak_weight *weight);
/* Name of the backend that owns the packed weight. */
MOAK_API const char *moak_weight_backend(const moak_weight *weight);

/* ------------------------------------------------------------------------ */
/* Matmul                                                                   */
/* ------------------------------------------------------------------------ */

/* y[m x rows] = x[m x cols] * W^T (+ bias).  w must hold one expert.
 * Bound (per output row r, err = max_j |y[r][j] - ref[r][j]| / rms(ref[r])):
 *   F32 1e-4, F16 5e-3, BF16 2e-2, Q8_0/Q4_0/I8_ROW/I4_G32/I4_G128 5e-2
 *   (integer formats may quantize activations to int8). */
#define MOAK_BOUND_MATMUL_F32   1e-4
#define MOAK_BOUND_MATMUL_F16   5e-3
#define MOAK_BOUND_MATMUL_BF16  2e-2
#define MOAK_BOUND_MATMUL_INT   5e-2
/* Release formats: FP8 5e-2 (a backend may round activations to bf16 and
 * accumulate in f32), MXFP4, MXFP4_ST, I4_G32_CT, NVFP4 5e-2 (a backend may
 * quantize activations to int8 per block, as for the integer formats). */
#define MOAK_BOUND_MATMUL_FP8_E4M3_B128 5e-2
#define MOAK_BOUND_MATMUL_MXFP4         5e-2
#define MOAK_BOUND_MATMUL_MXFP4_ST      5e-2
#define MOAK_BOUND_MATMUL_I4_G32_CT     5e-2
#define MOAK_BOUND_MATMUL_NVFP4         5e-2
MOAK_API moak_status moak_matmul(moak_context *ctx, const moak_weight *w,
                                 const float *x, int64_t m, float *y);

/* ------------------------------------------------------------------------ */
/* MoE routing                                                              */
/* ------------------------------------------------------------------------ */

typedef enum moak_route_method {
    /* p = softmax(logits); top_k of p; if renormalize: w /= sum(w)  (Qwen3, Mixtral) */
    MOAK_ROUTE_SOFTMAX_TOPK = 0,
    /* top_k of logits; w = softmax over the k chosen logits  (gpt-oss) */
    MOAK_ROUTE_TOPK_SOFTMAX = 1,
    /* s = sigmoid(logits); choose on s + bias (group-limited when n_groups > 1:
     * group score = sum of the group's top-2 biased scores, keep topk_groups
     * groups); w = s (unbiased) of the chosen; if renormalize: w /= sum(w);
     * w *= scaling_factor  (DeepSeek-V3, Kimi K2, GLM-4.5, MiniMax-M2) */
    MOAK_ROUTE_SIGMOID_TOPK = 2,
    /* s = sqrt(softplus(logits)), softplus(x) = ln(1 + e^x); then as
     * SIGMOID_TOPK: bias for selection, groups, renormalize, scaling
     * (DeepSeek-V4) */
    MOAK_ROUTE_SQRT_SOFTPLUS_TOPK = 3
} moak_route_method;

typedef struct moak_router_desc {
    size_t struct_size;
    moak_route_method method;
    int32_t n_experts;
    int32_t top_k;               /* 1 <= top_k <= n_experts */
    int32_t renormalize;         /* 0/1 */
    float scaling_factor;        /* multiplies the final weights; 0 means 1.0 */
    const float *bias;           /* [n_experts] selection bias (SIGMOID/SQRT_SOFTPLUS), or NULL */
    int32_t n_groups;            /* 0 or 1 = no groups; else divides n_experts */
    int32_t topk_groups;         /* groups kept, 1..n_groups (with n_groups > 1) */
} moak_router_desc;

#define MOAK_ROUTER_DESC_INIT MOAK_STRUCT_INIT(moak_router_desc)

/* For each token t: ids[t][0..top_k) in decreasing selection score (ties to
 * the lower expert id), weights[t][..] their routing weights.
 * n_groups > 1 and bias are only defined for MOAK_ROUTE_SIGMOID_TOPK and
 * MOAK_ROUTE_SQRT_SOFTPLUS_TOPK.
 * Bound: ids equal the reference's except where the reference's selection
 * scores of the two experts differ by <= 1e-6 of the row's largest |score|;
 * |w - ref_w| <= 1e-5 * max(1, scaling_factor). */
#define MOAK_BOUND_ROUTE_WEIGHT 1e-5
#define MOAK_BOUND_ROUTE_TIE    1e-6
MOAK_API moak_status moak_moe_route(moak_context *ctx,
                                    const moak_router_desc *router,
                                    const float *logits, int64_t n_tokens,
                                    int32_t *ids, float *weights);

/* ------------------------------------------------------------------------ */
/* MoE expert FFN                                                           */
/* ------------------------------------------------------------------------ */

typedef enum moak_activation {
    /* h = silu(g) * u,  silu(g) = g / (1 + exp(-g)) */
    MOAK_ACT_SILU_GLU = 0,
    /* h = gelu(g) * u,  gelu(g) = 0.5 g (1 + erf(g / sqrt(2)))  (exact form) */
    MOAK_ACT_GELU_GLU = 1,
    /* gpt-oss: g = min(g, limit); u = clamp(u, -limit, limit);
     * h = (u + 1) * g * sigmoid(alpha * g) */
    MOAK_ACT_SWIGLU_OAI = 2
} moak_activation;

/* How w_gate holds the up projection too (moak_moe_desc.gate_up). */
typedef enum moak_gate_up_layout {
    MOAK_GATE_UP_SEPARATE = 0,     /* w_gate and w_up are two weights */
    /* w_gate alone, 2*inter rows per expert: gate rows 0..inter-1, then up rows
     * (vLLM / SGLang w13) */
    MOAK_GATE_UP_CONCAT = 1,
    /* w_gate alone, 2*inter rows per expert: gate row i at 2i, up row i at
     * 2i+1 (gpt-oss gate_up_proj) */
    MOAK_GATE_UP_INTERLEAVED = 2
} moak_gate_up_layout;

typedef struct moak_moe_desc {
    size_t struct_size;
    moak_activation activation;
    float swiglu_alpha;          /* 0 means 1.702 */
    float swiglu_limit;          /* 0 means 7.0 */
    /* MOAK_GATE_UP_SEPARATE (default) or a fused layout, with w_up NULL. */
    moak_gate_up_layout gate_up;
} moak_moe_desc;

#define MOAK_MOE_DESC_INIT MOAK_STRUCT_INIT(moak_moe_desc)

/* y[t] = sum_k weights[t][k] * down_e(act(gate_e(x[t]), up_e(x[t]))), e = ids[t][k].
 * w_gate, w_up: E experts x inter rows x hidden cols; w_down: E x hidden x inter;
 * with desc->gate_up fused, w_gate is E x 2*inter x hidden (layout above), w_up NULL;
 * same format, same E, same backend.  x: [n_tokens][hidden]; y: [n_tokens][hidden].
 * Experts that no token chose are not read.
 * Bound (per token, as matmul): F32 2e-4, F16 1e-2, BF16 4e-2, integer formats 1.5e-1
 * (two int8-quantized matmuls in a chain, the second on the GLU output, which is
 * heavy-tailed: 3-7 % on random data, 10.6 % on one row of one draw in ~600). */
#define MOAK_BOUND_MOE_F32   2e-4
#define MOAK_BOUND_MOE_F16   1e-2
#define MOAK_BOUND_MOE_BF16  4e-2
#define MOAK_BOUND_MOE_INT   1.5e-1
/* Release formats: as the integer formats (two chained matmuls with activations
 * that may be quantized, the second on the heavy-tailed GLU output). */
#define MOAK_BOUND_MOE_FP8_E4M3_B128 1.5e-1
#define MOAK_BOUND_MOE_MXFP4         1.5e-1
#define MOAK_BOUND_MOE_MXFP4_ST      1.5e-1
#define MOAK_BOUND_MOE_I4_G32_CT     1.5e-1
#define MOAK_BOUND_MOE_NVFP4         1.5e-1
MOAK_API moak_status moak_moe_ffn(moak_context *ctx, const moak_moe_desc *desc,
                                  const moak_weight *w_gate,
                                  const moak_weight *w_up,
                                  const moak_weight *w_down,
                                  const float *x, int64_t n_tokens,
                                  int32_t top_k, const int32_t *ids,
                                  const float *weights, float *y);

/* ------------------------------------------------------------------------ */
/* Paged KV cache                                                           */
/* ------------------------------------------------------------------------ */

typedef struct moak_kv_cache moak_kv_cache;

/* V is stored as the first head_dim_v dims of K (absorbed MLA: one latent
 * vector per token, stored once; appends pass v = NULL). */
#define MOAK_KV_SHARED_V (1u << 0)
/* K only, no V at all: the index keys of DeepSeek Sparse Attention's
 * indexer (moak_indexer).  head_dim_v must be 0, appends pass v = NULL, and
 * neither MOAK_KV_SHARED_V nor moak_attention may be used with it (attention
 * given a K-only cache is MOAK_ERR_INVALID_ARGUMENT). */
#define MOAK_KV_K_ONLY   (1u << 1)

typedef struct moak_kv_cache_desc {
    size_t struct_size;
    moak_format format;          /* F32, F16, BF16 or Q8_0 */
    int32_t n_kv_heads;
    int32_t head_dim_k;
    int32_t head_dim_v;          /* <= head_dim_k with MOAK_KV_SHARED_V; 0 with MOAK_KV_K_ONLY */
    int32_t max_seqs;            /* sequence ids are 0 .. max_seqs-1; <= MOAK_KV_MAX_SEQS */
    int64_t max_tokens;          /* capacity over all sequences, rounded up to pages
                                  * (at most MOAK_KV_MAX_PAGES pages) */
    int32_t page_tokens;         /* tokens per page; 0 = 64 */
    uint32_t flags;              /* MOAK_KV_* */
} moak_kv_cache_desc;

#define MOAK_KV_CACHE_DESC_INIT MOAK_STRUCT_INIT(moak_kv_cache_desc)

/* Limits checked by moak_kv_cache_create before it allocates anything, so a
 * bad size fails at once: more sequences is MOAK_ERR_INVALID_ARGUMENT, more
 * pages MOAK_ERR_SIZE_OVERFLOW.  The cache's bookkeeping is O(max_seqs) at
 * creation plus O(pages in use); its page storage (page bytes x pages) is
 * allocated first, so a cache the machine cannot hold is
 * MOAK_ERR_OUT_OF_MEMORY before any other work. */
#define MOAK_KV_MAX_SEQS  (1 << 20)
#define MOAK_KV_MAX_PAGES INT32_MAX

MOAK_API moak_status moak_kv_cache_create(moak_context *ctx,
                                          const moak_kv_cache_desc *desc,
                                          moak_kv_cache **kv);
MOAK_API void moak_kv_cache_destroy(moak_kv_cache *kv);
/* Append n_tokens tokens to sequence seq_id.  k: [n_tokens][n_kv_heads][head_dim_k],
 * v: [n_tokens][n_kv_heads][head_dim_v] (NULL with MOAK_KV_SHARED_V).
 * MOAK_ERR_CACHE_FULL (nothing appended) when the free pages cannot hold them. */
MOAK_API moak_status moak_kv_cache_append(moak_context *ctx, moak_kv_cache *kv,
                                          int32_t seq_id, int64_t n_tokens,
                                          const float *k, const float *v);
MOAK_API moak_status moak_kv_cache_seq_len(const moak_kv_cache *kv,
                                           int32_t seq_id, int64_t *len);
/* Forget a sequence's tokens and return its pages to the pool. */
MOAK_API moak_status moak_kv_cache_seq_clear(moak_context *ctx,
                                             moak_kv_cache *kv, int32_t seq_id);
/* Name of the backend that owns the cache storage. */
MOAK_API const char *moak_kv_cache_backend(const moak_kv_cache *kv);

/* ------------------------------------------------------------------------ */
/* Attention                                                                */
/* ------------------------------------------------------------------------ */

typedef struct moak_attention_desc {
    size_t struct_size;
    int32_t n_heads;             /* query heads; a multiple of the cache's n_kv_heads */
    int32_t head_dim_k;          /* must equal the cache's */
    int32_t head_dim_v;          /* must equal the cache's */
    /* Every finite scale > 0 and soft-cap >= 0 is honoured on every backend,
     * up to FLT_MAX: no backend forms scale * q.k or softcap * log2(e) where
     * it could overflow f32, and a cap far above the logits leaves them as
     * they are (tanh is not taken by a form that cancels for small x). */
    float scale;                 /* logit scale; 0 means 1/sqrt(head_dim_k), except with a
                                  * MOAK_KV_SHARED_V cache, where it must be given (absorbed
                                  * MLA scales by the unabsorbed q/k head: DeepSeek-V3
                                  * 1/sqrt(192) times its YaRN mscale squared) */
    int32_t causal;              /* 1: query at position p sees keys 0..p */
    int32_t sliding_window;      /* 0 = none; else also requires p - j < sliding_window;
                                  * only with causal = 1 (else an error: the window would
                                  * not hide later tokens) */
    float softcap;               /* 0 = none; else s = softcap * tanh(s / softcap) */
    const float *sinks;          /* [n_heads] sink logits joined to each softmax, or NULL */
    /* ---- added after the first version: sparse attention (DeepSeek Sparse Attention) ---- */
    /* NULL = dense.  Else [sum q_lens][sparse_k] cached-token positions of
     * each query's sequence: the query attends to exactly the keys listed,
     * through the same mask (a listed position the mask hides, e.g. after
     * the query's own under causal, is skipped, not an error), and -1 marks
     * an unused slot.  Any other value outside 0 .. L-1 (L = the sequence's
     * cached length) is an error.  A position listed twice in one query's
     * list counts twice: it is one more term of the softmax, as if that key
     * were cached twice (moak_indexer never lists one twice).  The order of
     * a list does not matter.  Cost grows with sparse_k, not with L. */
    const int32_t *sparse_positions;
    int32_t sparse_k;            /* >= 1 with sparse_positions; ignored without */
} moak_attention_desc;

#define MOAK_ATTENTION_DESC_INIT MOAK_STRUCT_INIT(moak_attention_desc)

/* For each sequence i, its q_lens[i] newest cached tokens are the queries:
 * query r of sequence i sits at position L - q_lens[i] + r (L = its cached
 * length; q_lens[i] <= L) and attends to the cached keys its mask admits.
 * s_j = scale * q.k_j, soft-capped, masked; out = sum_j softmax(s)_j v_j, the
 * softmax's denominator including exp(sink) when sinks are given.
 * q: [sum q_lens][n_heads][head_dim_k]; out: [sum q_lens][n_heads][head_dim_v].
 * Sequence ids must be distinct.  A query whose mask (and, sparse, whose
 * list) admits no key gets zeros.  A K-only cache (MOAK_KV_K_ONLY) is an error.
 * Bound (per query token over all heads, as matmul): F32/F16/BF16 KV 1e-3, Q8_0 KV 3e-2;
 * the same bounds hold for sparse attention. */
#define MOAK_BOUND_ATTENTION_FLOAT 1e-3
#define MOAK_BOUND_ATTENTION_Q8_0  3e-2
MOAK_API moak_status moak_attention(moak_context *ctx,
                                    const moak_attention_desc *desc,
                                    const moak_kv_cache *kv,
                                    const int32_t *seq_ids,
                                    const int32_t *q_lens, int32_t n_seqs,
                                    const float *q, float *out);

/* ------------------------------------------------------------------------ */
/* The indexer of DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5)          */
/* ------------------------------------------------------------------------ */

typedef struct moak_indexer_desc {
    size_t struct_size;
    int32_t n_heads;             /* index heads (64 in DeepSeek-V3.2) */
    int32_t head_dim;            /* must equal the index cache's head_dim_k (128) */
    int32_t top_k;               /* positions kept per query (2048), >= 1 */
} moak_indexer_desc;

#define MOAK_INDEXER_DESC_INIT MOAK_STRUCT_INIT(moak_indexer_desc)

/* The "lightning indexer": for each query token t (placed as in
 * moak_attention: query r of sequence i sits at position p = L - q_lens[i] + r,
 * L = the sequence's cached length in index_kv) and each cached position
 * j <= p (causal; a query sees its own position),
 *     score(t, j) = sum_h w[t][h] * relu(q[t][h] . k[j])
 * where k[j] is the index key of position j.  The model's own scale factors
 * (head_dim^-0.5 on the dot product, n_heads^-0.5 on w) belong in w.
 * positions[t][0..top_k) receives the top_k positions in decreasing score,
 * ties to the lower position; with fewer than top_k candidates (p + 1 <
 * top_k) the remaining slots are -1.  scores (optional, NULL = not wanted)
 * receives each chosen position's score, -INFINITY beside a -1.
 * index_kv: a MOAK_KV_K_ONLY cache of one KV head (one index key per token),
 * any KV format.  q: [sum q_lens][n_heads][head_dim]; w: [sum q_lens][n_heads];
 * positions, scores: [sum q_lens][top_k].  The positions feed
 * moak_attention's sparse_positions directly.
 * Bound: |score - ref| <= 1e-4 of the largest |ref score| of the query (F32/
 * F16/BF16/Q8_0 keys alike: both read the same stored keys); a position may
 * differ from the reference's only where the two scores it is ranked by are
 * within 1e-5 of that largest |ref score| of one another (ranking by near-ties). */
#define MOAK_BOUND_INDEXER_SCORE 1e-4
#define MOAK_BOUND_INDEXER_TIE   1e-5
MOAK_API moak_status moak_indexer(moak_context *ctx, const moak_indexer_desc *desc,
                                  const moak_kv_cache *index_kv,
                                  const int32_t *seq_ids, const int32_t *q_lens,
                                  int32_t n_seqs, const float *q, const float *w,
                                  int32_t *positions, float *scores);

/* ------------------------------------------------------------------------ */
/* Gated delta-rule linear attention (Gated DeltaNet, Kimi's KDA)           */
/* ------------------------------------------------------------------------ */
/*
 * Qwen3-Next / Qwen3.5 (Gated DeltaNet) and Kimi Linear (KDA) keep, per
 * sequence, a fixed-size state instead of a KV cache:
 *   - per value head h a d_k x d_v matrix S_h in f32, laid out
 *     [n_v_heads][d_k][d_v] (row i of S_h belongs to key channel i);
 *   - the short convolution's state: the last conv_kernel - 1 raw (pre-conv)
 *     inputs of the conv channels, [conv_kernel - 1][channels], oldest first,
 *     channels = 2 * n_qk_heads * d_k + n_v_heads * d_v (q, k, v concatenated).
 * A new or cleared sequence's state is all zeros (a prefill shorter than the
 * kernel sees zeros to its left).  The state lives in host memory owned by the
 * core for every backend: a host backend updates it in place, a device
 * backend (opencl) copies the sequences a call touches in and back.
 */
typedef struct moak_linear_state moak_linear_state;

typedef struct moak_linear_state_desc {
    size_t struct_size;
    int32_t n_qk_heads;          /* q and k heads (Qwen3-Next 16, Kimi Linear 32) */
    int32_t n_v_heads;           /* value heads, a multiple of n_qk_heads (Qwen3-Next 32) */
    int32_t head_dim_k;          /* d_k (128) */
    int32_t head_dim_v;          /* d_v (128) */
    int32_t conv_kernel;         /* 0 means 4; 1 = no convolution state; at most 16 */
    int32_t max_seqs;            /* sequence ids are 0 .. max_seqs-1 */
} moak_linear_state_desc;

#define MOAK_LINEAR_STATE_DESC_INIT MOAK_STRUCT_INIT(moak_linear_state_desc)

MOAK_API moak_status moak_linear_state_create(moak_context *ctx,
                                              const moak_linear_state_desc *desc,
                                              moak_linear_state **state);
MOAK_API void moak_linear_state_destroy(moak_linear_state *state);
/* Zero one sequence's state (both parts): the next call starts it afresh. */
MOAK_API moak_status moak_linear_state_seq_clear(moak_context *ctx,
                                                 moak_linear_state *state,
                                                 int32_t seq_id);
/* Read one sequence's delta-rule state, [n_v_heads][d_k][d_v] f32, into s
 * (and, when conv is not NULL, its conv state [conv_kernel-1][channels]). */
MOAK_API moak_status moak_linear_state_read(const moak_linear_state *state,
                                            int32_t seq_id, float *s, float *conv);

typedef enum moak_gate_kind {
    /* Gated DeltaNet: g[t][h], one log-decay per token and value head */
    MOAK_GATE_PER_HEAD = 0,
    /* KDA: g[t][h][d_k], one log-decay per key channel (row of S) */
    MOAK_GATE_PER_KEY = 1
} moak_gate_kind;

/* The op's shape must equal the state's (a state made for another layer
 * shape is refused with MOAK_ERR_SHAPE_MISMATCH). */
typedef struct moak_gated_delta_desc {
    size_t struct_size;
    int32_t n_qk_heads;
    int32_t n_v_heads;           /* a multiple of n_qk_heads */
    int32_t head_dim_k;
    int32_t head_dim_v;
    int32_t conv_kernel;         /* 0 means 4 */
    moak_gate_kind gate;
    float scale;                 /* applied to q after its L2 norm; 0 means 1/sqrt(d_k) */
} moak_gated_delta_desc;

#define MOAK_GATED_DELTA_DESC_INIT MOAK_STRUCT_INIT(moak_gated_delta_desc)

/* For each sequence i, q_lens[i] new tokens continue its stored state
 * (q_len 1 = decode, > 1 = prefill, 0 = untouched).  Per token t:
 *   x = qkv[t] (channels: q [n_qk_heads][d_k], k [n_qk_heads][d_k],
 *       v [n_v_heads][d_v]);
 *   c = silu(sum_j conv_w[c][j] * x_{t - (kernel-1) + j}[c])  (depthwise,
 *       no bias; x before this call's first token comes from the conv state;
 *       conv_w: [channels][conv_kernel], the checkpoint's [C][1][K] squeezed);
 *   q_h, k_h = their conv outputs * rsqrt(sum x^2 + 1e-6); q_h *= scale;
 *   for value head j (its q/k head j / (n_v_heads / n_qk_heads)):
 *     S_j <- exp(g) * S_j       (g[t][j] scalar, or g[t][j][i] on row i; g <= 0)
 *     u = beta[t][j] * (v_j - S_j^T k)
 *     S_j <- S_j + k u^T
 *     out[t][j] = S_j^T q        ([d_v]; the current token included).
 * qkv: [sum q_lens][channels]; g: [sum q_lens][n_v_heads] (PER_HEAD) or
 * [sum q_lens][n_v_heads][d_k] (PER_KEY), finite and <= 0; beta:
 * [sum q_lens][n_v_heads]; out: [sum q_lens][n_v_heads][d_v].  Sequence ids
 * distinct.  Prefill may run in the chunked (WY) form, decode recurrently.
 * On error neither out nor the state is changed.
 * Bound (per token over all heads, as matmul, against the recurrence in
 * double): 1e-3; the stored state after the call, per sequence and head,
 * max |S - S_ref| / rms(S_ref): 1e-3. */
#define MOAK_BOUND_GATED_DELTA 1e-3
MOAK_API moak_status moak_gated_delta_rule(moak_context *ctx,
                                           const moak_gated_delta_desc *desc,
                                           moak_linear_state *state,
                                           const int32_t *seq_ids,
                                           const int32_t *q_lens, int32_t n_seqs,
                                           const float *qkv, const float *conv_w,
                                           const float *g, const float *beta,
                                           float *out);

/* ------------------------------------------------------------------------ */
/* Around the two: RMSNorm and RoPE                                         */
/* ------------------------------------------------------------------------ */

/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * gamma (gamma NULL = ones).
 * y may equal x (in place); other overlap is an error.  eps >= 0.
 * Bound: 1e-5 of rms(ref row). */
#define MOAK_BOUND_RMSNORM 1e-5
MOAK_API moak_status moak_rmsnorm(moak_context *ctx, const float *x,
                                  const float *gamma, int64_t n_rows,
                                  int64_t dim, float eps, float *y);

typedef enum moak_rope_layout {
    /* rotate pairs (i, i + rotary_dim/2)  (GPT-NeoX, Llama, Qwen) */
    MOAK_ROPE_NEOX = 0,
    /* rotate pairs (2i, 2i + 1)  (GPT-J, DeepSeek's rope part in some ports) */
    MOAK_ROPE_GPTJ = 1
} moak_rope_layout;

/* How the model rescales RoPE's frequencies for a longer context than it was
 * pretrained on.  With f = base^(-2i/rotary_dim), i < rotary_dim/2, and the
 * fields of moak_rope_desc below (factor F, original context L):
 *
 * YARN (DeepSeek-V3/V3.2, Kimi K2, gpt-oss; the YaRN paper):
 *   d(b) = rotary_dim * ln(L / (2 pi b)) / (2 ln base)   (the dim turning b times in L)
 *   lo = d(beta_fast), hi = d(beta_slow), rounded down/up to whole dims unless
 *   yarn_exact_range; lo = max(lo, 0), hi = min(hi, rotary_dim - 1), hi += 0.001 if equal;
 *   r = clamp((i - lo) / (hi - lo), 0, 1);  f' = f / F * r + f * (1 - r);
 *   cos and sin are multiplied by the attention factor A: attention_factor
 *   when given, else m(F, mscale) / m(F, mscale_all_dim) when both are given,
 *   else m(F, 1), with m(F, s) = 0.1 s ln F + 1 (1 when F <= 1).
 * LLAMA3 (Llama-3.1 / 3.2 / 3.3): with the wavelength w = 2 pi / f,
 *   f' = f where w < L / high_freq_factor, f / F where w > L / low_freq_factor,
 *   else (1 - s) f / F + s f with s = (L / w - low) / (high - low).
 * These are transformers' "yarn" and "llama3" rope types. */
typedef enum moak_rope_scaling {
    MOAK_ROPE_SCALING_NONE = 0,
    MOAK_ROPE_SCALING_YARN = 1,
    MOAK_ROPE_SCALING_LLAMA3 = 2
} moak_rope_scaling;

typedef struct moak_rope_desc {
    size_t struct_size;
    moak_rope_layout layout;
    int32_t head_dim;
    int32_t rotary_dim;          /* even, <= head_dim; 0 = head_dim; the rest passes through */
    float theta_base;            /* 0 means 10000 */
    float position_scale;        /* angle = position * position_scale * f_i; 0 means 1 */
    /* Optional (added later: a shorter struct_size leaves them 0 = no scaling). */
    moak_rope_scaling scaling;   /* MOAK_ROPE_SCALING_NONE: the fields below must stay 0 */
    float scaling_factor;        /* F, "factor": finite, >= 1 (YARN, LLAMA3) */
    int32_t original_max_position; /* L, "original_max_position_embeddings": >= 1 (YARN, LLAMA3) */
    float beta_fast;             /* YARN: 0 means 32 */
    float beta_slow;             /* YARN: 0 means 1; 0 < beta_slow <= beta_fast */
    float mscale;                /* YARN: 0 = not given */
    float mscale_all_dim;        /* YARN: 0 = not given */
    float attention_factor;      /* YARN: 0 = derived as above; else > 0 */
    int32_t yarn_exact_range;    /* YARN: 1 = lo/hi not rounded (gpt-oss's "truncate": false) */
    float low_freq_factor;       /* LLAMA3: 0 means 1 */
    float high_freq_factor;      /* LLAMA3: 0 means 4; > low_freq_factor */
} moak_rope_desc;

#define MOAK_ROPE_DESC_INIT MOAK_STRUCT_INIT(moak_rope_desc)

/* x, y: [n_tokens][n_heads][head_dim]; positions: [n_tokens] (>= 0).  In place allowed.
 * Bound: 1e-5 of rms(ref row) times the attention factor (angles are computed
 * in double by the reference). */
#define MOAK_BOUND_ROPE 1e-5
MOAK_API moak_status moak_rope(moak_context *ctx, const moak_rope_desc *desc,
                               const float *x, int64_t n_tokens,
                               int32_t n_heads, const int32_t *positions,
                               float *y);

#ifdef __cplusplus
}
#endif

#endif /* MOAK_H */
