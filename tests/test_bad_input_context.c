/* test_bad_input_context — the context, registry, probe and format functions
 * fed each class of bad input: the right status, the argument named, nothing
 * written; and the NULL-handle accessors answer without crashing. */
#define _POSIX_C_SOURCE 200809L /* unsetenv */

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bad_input.h"

/* ---- moak_context_create ------------------------------------------------------------------- */

typedef struct ctx_fx {
    const moak_context_options *opts_arg;
    moak_context_options opts;
    moak_context **out_arg;
    moak_context *out;
} ctx_fx;

static void ctx_reset(void *p)
{
    ctx_fx *f = p;
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.num_threads = 1;
    o.backends = "ref";
    f->opts = o;
    f->opts_arg = &f->opts;
    f->out_arg = &f->out;
}

static moak_status ctx_call(void *p)
{
    ctx_fx *f = p;
    moak_status st = moak_context_create(f->opts_arg, f->out_arg);
    if (st == MOAK_OK)
        moak_context_destroy(f->out);
    return st;
}

static int ctx_outputs(void *p, t_span *s)
{
    ctx_fx *f = p;
    s[0].p = f->out_arg;
    s[0].n = sizeof(moak_context *);
    return 1;
}

static const moak_context *thread_message(void *p)
{
    (void)p;
    return NULL;
}

static void backends_unknown(void *p) { ((ctx_fx *)p)->opts.backends = "ref,nosuchbackend"; }
static void backends_twice(void *p) { ((ctx_fx *)p)->opts.backends = "ref,ref"; }
static void backends_empty_closed(void *p) { ((ctx_fx *)p)->opts.backends = "!"; }
static void opts_null_is_valid(void *p) { ((ctx_fx *)p)->opts_arg = NULL; }

#define FX ctx_fx
static const t_bad_case ctx_cases[] = {
    BAD_OK("valid (ref, 1 thread)"),
    BAD_FN("opts NULL (all defaults) is valid", opts_null_is_valid, MOAK_OK, NULL),
    BAD_NULL("ctx NULL", out_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_SIZE("struct_size 0", opts.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("struct_size one short", opts.struct_size, sizeof(moak_context_options) - 1,
             MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_I32("num_threads -1", opts.num_threads, -1, MOAK_ERR_INVALID_ARGUMENT, "num_threads"),
    BAD_I32("verbose 7", opts.verbose, 7, MOAK_ERR_INVALID_ARGUMENT, "verbose"),
    BAD_I32("verbose -2", opts.verbose, -2, MOAK_ERR_INVALID_ARGUMENT, "verbose"),
    BAD_U32("flags: unknown bit", opts.flags, 1u << 20, MOAK_ERR_INVALID_ARGUMENT, "flags"),
    BAD_FN("backends \"ref,nosuchbackend\"", backends_unknown, MOAK_ERR_UNKNOWN_BACKEND,
           "nosuchbackend"),
    BAD_FN("backends \"ref,ref\"", backends_twice, MOAK_ERR_INVALID_ARGUMENT, "backends"),
    BAD_FN("backends \"!\" (names none)", backends_empty_closed, MOAK_ERR_INVALID_ARGUMENT,
           "backends"),
};
#undef FX

/* ---- moak_backend_query, moak_hw_probe -------------------------------------------------------- */

typedef struct query_fx {
    int32_t index;
    moak_backend_info *info_arg;
    moak_backend_info info;
} query_fx;

static void query_reset(void *p)
{
    query_fx *f = p;
    f->index = 0;
    moak_backend_info i = MOAK_BACKEND_INFO_INIT;
    f->info = i;
    f->info_arg = &f->info;
}

static moak_status query_call(void *p)
{
    query_fx *f = p;
    return moak_backend_query(f->index, f->info_arg);
}

/* The whole struct but struct_size (which the caller sets as input). */
static int query_outputs(void *p, t_span *s)
{
    query_fx *f = p;
    if (!f->info_arg)
        return 0;
    s[0].p = (char *)f->info_arg + sizeof(size_t);
    s[0].n = sizeof(moak_backend_info) - sizeof(size_t);
    return 1;
}

#define FX query_fx
static const t_bad_case query_cases[] = {
    BAD_OK("valid (index 0)"),
    BAD_I32("index -1", index, -1, MOAK_ERR_OUT_OF_RANGE, "index"),
    BAD_I32("index 1000", index, 1000, MOAK_ERR_OUT_OF_RANGE, "index"),
    BAD_NULL("info NULL", info_arg, MOAK_ERR_NULL_ARGUMENT, "info"),
    BAD_SIZE("struct_size 0", info.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("struct_size 8", info.struct_size, 8, MOAK_ERR_STRUCT_SIZE, "struct_size"),
};
#undef FX

typedef struct probe_fx {
    moak_hw_info *info_arg;
    moak_hw_info info;
} probe_fx;

static void probe_reset(void *p)
{
    probe_fx *f = p;
    moak_hw_info i = MOAK_HW_INFO_INIT;
    f->info = i;
    f->info_arg = &f->info;
}

static moak_status probe_call(void *p) { return moak_hw_probe(((probe_fx *)p)->info_arg); }

static int probe_outputs(void *p, t_span *s)
{
    probe_fx *f = p;
    if (!f->info_arg)
        return 0;
    s[0].p = (char *)f->info_arg + sizeof(size_t);
    s[0].n = sizeof(moak_hw_info) - sizeof(size_t);
    return 1;
}

#define FX probe_fx
static const t_bad_case probe_cases[] = {
    BAD_OK("valid"),
    BAD_NULL("info NULL", info_arg, MOAK_ERR_NULL_ARGUMENT, "info"),
    BAD_SIZE("struct_size 0", info.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("struct_size 16", info.struct_size, 16, MOAK_ERR_STRUCT_SIZE, "struct_size"),
};
#undef FX

/* ---- formats: moak_format_from_name, moak_quantize, moak_dequantize ------------------------------- */

typedef struct name_fx {
    const char *name;
    moak_format *out_arg;
    moak_format out;
} name_fx;

static void name_reset(void *p)
{
    name_fx *f = p;
    f->name = "Q4_0";
    f->out_arg = &f->out;
}

static moak_status name_call(void *p)
{
    name_fx *f = p;
    return moak_format_from_name(f->name, f->out_arg);
}

static int name_outputs(void *p, t_span *s)
{
    name_fx *f = p;
    s[0].p = f->out_arg;
    s[0].n = sizeof(moak_format);
    return 1;
}

static void unknown_name(void *p) { ((name_fx *)p)->name = "q5_k"; }

#define FX name_fx
static const t_bad_case name_cases[] = {
    BAD_OK("valid (\"Q4_0\")"),
    BAD_NULL("name NULL", name, MOAK_ERR_NULL_ARGUMENT, "name"),
    BAD_NULL("format NULL", out_arg, MOAK_ERR_NULL_ARGUMENT, "format"),
    BAD_FN("unknown name \"q5_k\"", unknown_name, MOAK_ERR_INVALID_ARGUMENT, "q5_k"),
};
#undef FX

#define Q_ROWS 3
#define Q_COLS 100

typedef struct quant_fx {
    int32_t format;
    const float *src_arg;
    int64_t rows, cols;
    void *dst_arg;
    size_t dst_size;
    float src[Q_ROWS * Q_COLS];
    uint8_t dst[Q_ROWS * (4 + Q_COLS) + 64];
} quant_fx;

static void quant_reset(void *p)
{
    quant_fx *f = p;
    f->format = MOAK_FORMAT_Q4_0;
    f->src_arg = f->src;
    f->rows = Q_ROWS;
    f->cols = Q_COLS;
    f->dst_arg = f->dst;
    f->dst_size = Q_ROWS * t_row_bytes(MOAK_FORMAT_Q4_0, Q_COLS);
}

static moak_status quant_call(void *p)
{
    quant_fx *f = p;
    return moak_quantize((moak_format)f->format, f->src_arg, f->rows, f->cols, f->dst_arg,
                         f->dst_size);
}

static int quant_outputs(void *p, t_span *s)
{
    quant_fx *f = p;
    s[0].p = f->dst_arg;
    s[0].n = sizeof(f->dst);
    return 1;
}

#define FX quant_fx
static const t_bad_case quant_cases[] = {
    BAD_OK("valid (Q4_0, 3 x 100)"),
    BAD_I32("format 99", format, 99, MOAK_ERR_INVALID_ARGUMENT, "format"),
    BAD_I32("format -1", format, -1, MOAK_ERR_INVALID_ARGUMENT, "format"),
    BAD_NULL("src NULL", src_arg, MOAK_ERR_NULL_ARGUMENT, "src"),
    BAD_NULL("dst NULL", dst_arg, MOAK_ERR_NULL_ARGUMENT, "dst"),
    BAD_I64("rows -1", rows, -1, MOAK_ERR_INVALID_ARGUMENT, "rows"),
    BAD_I64("cols 0", cols, 0, MOAK_ERR_INVALID_ARGUMENT, "cols"),
    BAD_I64("cols -100", cols, -100, MOAK_ERR_INVALID_ARGUMENT, "cols"),
    BAD_SIZE("dst_size one byte short", dst_size, Q_ROWS * 72 - 1, MOAK_ERR_INVALID_ARGUMENT,
             "dst_size"),
    BAD_I64("rows: byte count overflows", rows, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW, "rows"),
};
#undef FX

typedef struct dequant_fx {
    int32_t format;
    const void *src_arg;
    size_t src_size;
    int64_t rows, cols;
    float *dst_arg;
    uint8_t src[Q_ROWS * 72];
    float dst[Q_ROWS * Q_COLS];
} dequant_fx;

static void dequant_reset(void *p)
{
    dequant_fx *f = p;
    f->format = MOAK_FORMAT_Q4_0;
    f->src_arg = f->src;
    f->src_size = sizeof(f->src);
    f->rows = Q_ROWS;
    f->cols = Q_COLS;
    f->dst_arg = f->dst;
}

static moak_status dequant_call(void *p)
{
    dequant_fx *f = p;
    return moak_dequantize((moak_format)f->format, f->src_arg, f->src_size, f->rows, f->cols,
                           f->dst_arg);
}

static int dequant_outputs(void *p, t_span *s)
{
    dequant_fx *f = p;
    s[0].p = f->dst_arg;
    s[0].n = sizeof(f->dst);
    return 1;
}

#define FX dequant_fx
static const t_bad_case dequant_cases[] = {
    BAD_OK("valid (Q4_0, 3 x 100)"),
    BAD_I32("format MOAK_FORMAT_COUNT", format, MOAK_FORMAT_COUNT, MOAK_ERR_INVALID_ARGUMENT, "format"),
    BAD_NULL("src NULL", src_arg, MOAK_ERR_NULL_ARGUMENT, "src"),
    BAD_NULL("dst NULL", dst_arg, MOAK_ERR_NULL_ARGUMENT, "dst"),
    BAD_I64("rows -3", rows, -3, MOAK_ERR_INVALID_ARGUMENT, "rows"),
    BAD_I64("cols 0", cols, 0, MOAK_ERR_INVALID_ARGUMENT, "cols"),
    BAD_SIZE("src_size one byte short", src_size, Q_ROWS * 72 - 1, MOAK_ERR_INVALID_ARGUMENT,
             "src_size"),
    BAD_I64("rows: byte count overflows", rows, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW, "rows"),
};
#undef FX

/* ---- functions without a status ------------------------------------------------------------------ */

static void check_plain_functions(void)
{
    t_check(moak_format_row_bytes((moak_format)99, 32) == 0, "format_row_bytes(unknown format) = 0");
    t_check(moak_format_row_bytes(MOAK_FORMAT_F32, 0) == 0, "format_row_bytes(f32, cols 0) = 0");
    t_check(moak_format_row_bytes(MOAK_FORMAT_Q4_0, -32) == 0, "format_row_bytes(q4_0, cols -32) = 0");
    t_check(moak_format_row_bytes(MOAK_FORMAT_F32, INT64_MAX) == 0,
            "format_row_bytes(f32, INT64_MAX cols): overflow gives 0");
    t_check(moak_format_name((moak_format)99) == NULL && moak_format_name((moak_format)-1) == NULL,
            "format_name(unknown) = NULL");
    /* The row size of every format agrees with the test's reading of moak.h. */
    for (int f = 0; f < MOAK_FORMAT_COUNT; f++)
        for (int64_t cols = 1; cols <= 300; cols += 37)
            if (moak_format_row_bytes((moak_format)f, cols) != t_row_bytes((moak_format)f, cols))
                t_fail("format_row_bytes(%s, %lld) = %zu, moak.h's layout says %zu", t_format_name((moak_format)f),
                       (long long)cols, moak_format_row_bytes((moak_format)f, cols),
                       t_row_bytes((moak_format)f, cols));
    t_check(moak_isa_name(0) == NULL && moak_isa_name(UINT64_C(1) << 63) == NULL &&
                moak_isa_name(MOAK_ISA_AVX2 | MOAK_ISA_FMA) == NULL,
            "isa_name(0, undefined bit, two bits) = NULL");
    const char *s = moak_status_str((moak_status)-1);
    t_check(s != NULL, "status_str(-1) is a string");
    /* NULL handles: destroy is a no-op, accessors answer "" / 0. */
    moak_context_destroy(NULL);
    moak_weight_destroy(NULL);
    moak_kv_cache_destroy(NULL);
    const char *lb = moak_last_backend(NULL), *cb = moak_context_backends(NULL);
    const char *wb = moak_weight_backend(NULL), *kb = moak_kv_cache_backend(NULL);
    t_check(lb && !*lb && cb && !*cb && wb && !*wb && kb && !*kb,
            "NULL handles: last_backend, context_backends, weight_backend, kv_cache_backend give \"\"");
    t_check(moak_context_num_threads(NULL) == 0, "NULL handle: context_num_threads gives 0");
    t_check(moak_last_error(NULL) != NULL, "last_error(NULL) is a string");
}

int main(void)
{
    t_init("test_bad_input_context");
    unsetenv("MOAK_BACKENDS");
    static ctx_fx cf;
    const t_bad_ops cops = {"moak_context_create", ctx_reset, ctx_call, ctx_outputs, thread_message, NULL};
    t_bad_run("-", &cops, &cf, ctx_cases, BAD_COUNT(ctx_cases));

    static query_fx qf;
    const t_bad_ops qops = {"moak_backend_query", query_reset, query_call, query_outputs,
                            thread_message, NULL};
    t_bad_run("-", &qops, &qf, query_cases, BAD_COUNT(query_cases));

    static probe_fx pf;
    const t_bad_ops pops = {"moak_hw_probe", probe_reset, probe_call, probe_outputs, thread_message,
                            NULL};
    t_bad_run("-", &pops, &pf, probe_cases, BAD_COUNT(probe_cases));

    static name_fx nf;
    const t_bad_ops nops = {"moak_format_from_name", name_reset, name_call, name_outputs,
                            thread_message, NULL};
    t_bad_run("-", &nops, &nf, name_cases, BAD_COUNT(name_cases));

    static quant_fx qz;
    t_fill_normal(qz.src, Q_ROWS * Q_COLS, 1.0);
    const t_bad_ops zops = {"moak_quantize", quant_reset, quant_call, quant_outputs, thread_message,
                            NULL};
    t_bad_run("-", &zops, &qz, quant_cases, BAD_COUNT(quant_cases));

    static dequant_fx dq;
    for (int r = 0; r < Q_ROWS; r++)
        t_random_weight_row(MOAK_FORMAT_Q4_0, Q_COLS, 1.0, 0, dq.src + 72 * r);
    const t_bad_ops dops = {"moak_dequantize", dequant_reset, dequant_call, dequant_outputs,
                            thread_message, NULL};
    t_bad_run("-", &dops, &dq, dequant_cases, BAD_COUNT(dequant_cases));

    check_plain_functions();
    return t_finish();
}
