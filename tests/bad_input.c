/* bad_input.c — the driver of the table-driven bad-input tests (bad_input.h). */
#include "bad_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNAPSHOT_BYTES (1u << 20)

static void apply(void *fixture, const t_bad_case *c)
{
    char *field = (char *)fixture + c->offset;
    switch (c->kind) {
    case T_SET_NONE:
        break;
    case T_SET_I32: {
        int32_t v = (int32_t)c->i;
        memcpy(field, &v, sizeof(v));
        break;
    }
    case T_SET_I64:
        memcpy(field, &c->i, sizeof(c->i));
        break;
    case T_SET_U32: {
        uint32_t v = (uint32_t)c->i;
        memcpy(field, &v, sizeof(v));
        break;
    }
    case T_SET_F32: {
        float v = (float)c->f;
        memcpy(field, &v, sizeof(v));
        break;
    }
    case T_SET_SIZE: {
        size_t v = (size_t)c->i;
        memcpy(field, &v, sizeof(v));
        break;
    }
    case T_SET_NULL: {
        void *v = NULL;
        memcpy(field, &v, sizeof(v));
        break;
    }
    case T_CUSTOM:
        c->custom(fixture);
        break;
    }
}

/* Leave a known message in the thread's slot, so that a call which returns
 * the right status without writing its own message cannot pass on a stale
 * one.  The message must not contain the needle being looked for. */
static void prime_thread_message(const char *needle)
{
    moak_backend_info info = MOAK_BACKEND_INFO_INIT;
    moak_format f;
    if (needle && strstr(needle, "index"))
        moak_format_from_name("zz-priming-zz", &f);
    else
        moak_backend_query(-12345, &info);
}

static void one_case(const char *backend, const t_bad_ops *ops, void *fixture, const t_bad_case *c,
                     unsigned char *snap_before, unsigned char *snap_after)
{
    ops->reset(fixture);
    apply(fixture, c);
    t_span spans[T_MAX_SPANS];
    int n_spans = ops->outputs(fixture, spans);
    unsigned char *copies[T_MAX_SPANS];
    for (int s = 0; s < n_spans; s++) {
        copies[s] = NULL;
        if (!spans[s].p)
            continue;
        t_poison_bytes(spans[s].p, spans[s].n);
        copies[s] = t_malloc(spans[s].n);
        memcpy(copies[s], spans[s].p, spans[s].n);
    }
    size_t snap_n = ops->snapshot ? ops->snapshot(fixture, snap_before, SNAPSHOT_BYTES) : 0;
    prime_thread_message(c->needle);

    moak_status st = ops->call(fixture);
    /* Copied now: the snapshot below runs ops that reset the context's message. */
    char msg[600];
    const char *m = moak_last_error(ops->message_ctx(fixture));
    snprintf(msg, sizeof(msg), "%s", m ? m : "(NULL message)");

    int untouched = 1;
    for (int s = 0; s < n_spans; s++)
        if (copies[s] && memcmp(copies[s], spans[s].p, spans[s].n) != 0)
            untouched = 0;
    if (ops->snapshot && st != MOAK_OK) {
        size_t after_n = ops->snapshot(fixture, snap_after, SNAPSHOT_BYTES);
        if (after_n != snap_n || memcmp(snap_before, snap_after, snap_n) != 0)
            untouched = 0;
    }
    if (c->want == MOAK_OK) {
        t_check(st == MOAK_OK, "%-14s %-22s %-40s -> %s%s%s", backend, ops->function, c->what,
                t_status_name(st), st == MOAK_OK ? "" : ": ", st == MOAK_OK ? "" : msg);
    } else {
        int named = c->needle && strstr(msg, c->needle) != NULL;
        t_check(st == c->want && named && untouched,
                "%-14s %-22s %-40s -> %s \"%s\"%s%s%s", backend, ops->function, c->what,
                t_status_name(st), msg, st == c->want ? "" : " (expected a different status)",
                named ? "" : " (message does not name the argument)",
                untouched ? "" : " (AN OUTPUT WAS WRITTEN)");
        if (st != c->want && st != MOAK_OK)
            printf("#   expected %s, message should contain \"%s\"\n", t_status_name(c->want),
                   c->needle ? c->needle : "");
    }
    for (int s = 0; s < n_spans; s++)
        free(copies[s]);
}

void t_bad_run(const char *backend, const t_bad_ops *ops, void *fixture,
               const t_bad_case *cases, size_t n_cases)
{
    unsigned char *before = t_malloc(SNAPSHOT_BYTES), *after = t_malloc(SNAPSHOT_BYTES);
    for (size_t i = 0; i < n_cases; i++)
        one_case(backend, ops, fixture, &cases[i], before, after);
    /* The valid call again: no failure above damaged the context or objects. */
    if (n_cases > 0 && cases[0].want == MOAK_OK) {
        t_bad_case again = cases[0];
        again.what = "valid call, after all the bad ones";
        one_case(backend, ops, fixture, &again, before, after);
    }
    free(before);
    free(after);
}
