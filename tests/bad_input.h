/*
 * bad_input.h — a table-driven driver for the bad-input tests.
 *
 * A test keeps the arguments of one public function in a fixture struct.
 * reset() makes them valid; each table row then breaks exactly one thing
 * (sets one field, or runs a custom function) and says which status the
 * function must return and which text its message must contain (the name of
 * the argument).  The driver poisons every output byte first and checks
 * afterwards that none changed: moak.h promises that a failed call writes
 * nothing.
 *
 * Row 0 of every table is the valid call (MOAK_OK); it runs first, so a
 * fixture that is itself wrong is caught, and once more at the end, so a
 * failed call that corrupted the context or an object is caught too.
 */
#ifndef MOAK_BAD_INPUT_H
#define MOAK_BAD_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "testutil.h"

typedef enum t_set_kind {
    T_SET_NONE,   /* the valid call */
    T_SET_I32,
    T_SET_I64,
    T_SET_U32,
    T_SET_F32,
    T_SET_SIZE,
    T_SET_NULL,   /* a pointer field */
    T_CUSTOM      /* custom(fixture) */
} t_set_kind;

typedef struct t_bad_case {
    const char *what;
    t_set_kind kind;
    size_t offset;          /* of the field in the fixture */
    int64_t i;              /* for I32/I64/U32/SIZE */
    double f;               /* for F32 */
    void (*custom)(void *fixture);
    moak_status want;
    const char *needle;     /* must occur in moak_last_error; NULL for MOAK_OK */
} t_bad_case;

/* Row constructors; FX must name the fixture type where they are used. */
#define BAD_OK(what) {what, T_SET_NONE, 0, 0, 0.0, NULL, MOAK_OK, NULL}
#define BAD_I32(what, field, v, st, needle) \
    {what, T_SET_I32, offsetof(FX, field), (v), 0.0, NULL, st, needle}
#define BAD_I64(what, field, v, st, needle) \
    {what, T_SET_I64, offsetof(FX, field), (v), 0.0, NULL, st, needle}
#define BAD_U32(what, field, v, st, needle) \
    {what, T_SET_U32, offsetof(FX, field), (v), 0.0, NULL, st, needle}
#define BAD_F32(what, field, v, st, needle) \
    {what, T_SET_F32, offsetof(FX, field), 0, (v), NULL, st, needle}
#define BAD_SIZE(what, field, v, st, needle) \
    {what, T_SET_SIZE, offsetof(FX, field), (int64_t)(v), 0.0, NULL, st, needle}
#define BAD_NULL(what, field, st, needle) \
    {what, T_SET_NULL, offsetof(FX, field), 0, 0.0, NULL, st, needle}
#define BAD_FN(what, fn, st, needle) {what, T_CUSTOM, 0, 0, 0.0, fn, st, needle}
#define BAD_COUNT(table) (sizeof(table) / sizeof((table)[0]))

typedef struct t_span {
    void *p;                /* NULL = nothing here */
    size_t n;
} t_span;

#define T_MAX_SPANS 4

typedef struct t_bad_ops {
    const char *function;
    /* All arguments valid (and output handles set to a sentinel). */
    void (*reset)(void *fixture);
    /* Call the function with the fixture's arguments.  On MOAK_OK it also
     * releases whatever the call created. */
    moak_status (*call)(void *fixture);
    /* The output regions of the current arguments (at most T_MAX_SPANS). */
    int (*outputs)(void *fixture, t_span *spans);
    /* The context whose moak_last_error holds the message (NULL: the
     * thread's, for context-free calls and a NULL ctx). */
    const moak_context *(*message_ctx)(void *fixture);
    /* Optional: state that must not change on failure (a KV cache's
     * contents); writes up to cap bytes into buf, returns the count. */
    size_t (*snapshot)(void *fixture, void *buf, size_t cap);
} t_bad_ops;

/* Runs every row; one result line per row. */
void t_bad_run(const char *backend, const t_bad_ops *ops, void *fixture,
               const t_bad_case *cases, size_t n_cases);

/* A value of which `bytes` overflows size_t when multiplied by small dims. */
#define T_HUGE_I64 (INT64_MAX / 2)

#endif
