/* Context: options, backends live in this context, worker pool, logging. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwprobe.h"
#include "internal.h"

/* ---- logging ------------------------------------------------------------------ */

static void log_to_stderr(void *user, moak_log_level level, const char *message)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    (void)user;
    fprintf(stderr, "moak: %s: %s\n", names[level <= MOAK_LOG_DEBUG ? level : MOAK_LOG_DEBUG], message);
}

static void vlog(moak_context *ctx, moak_log_level level, const char *fmt, va_list ap)
{
    char message[1024];
    vsnprintf(message, sizeof(message), fmt, ap);
    ctx->log_fn(ctx->log_user, level, message);
}

void moak_log(moak_context *ctx, moak_log_level level, const char *fmt, ...)
{
    /* Debug and info lines are the verbose trace; warnings and errors always go out. */
    if (level >= MOAK_LOG_INFO && !ctx->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, fmt, ap);
    va_end(ap);
}

/* The env->log and env->error entry points handed to backends. */
static void backend_log(void *log_ctx, moak_log_level level, const char *fmt, ...)
{
    moak_context *ctx = log_ctx;
    if (level >= MOAK_LOG_INFO && !ctx->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, fmt, ap);
    va_end(ap);
}

static moak_status backend_error(void *log_ctx, moak_status status, const char *fmt, ...)
{
    moak_context *ctx = log_ctx;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->last_error, sizeof(ctx->last_error), fmt, ap);
    va_end(ap);
    return status;
}

/* ---- options ------------------------------------------------------------------------ */

/* The fields of moak_context_options known to this library: copy what the
 * caller's (possibly older, smaller) struct has; the rest keeps defaults. */
static moak_status read_options(const moak_context_options *in, moak_context_options *out)
{
    moak_context_options defaults = MOAK_CONTEXT_OPTIONS_INIT;
    *out = defaults;
    if (!in)
        return MOAK_OK;
    moak_status st = moak_check_struct_size(NULL, in->struct_size, sizeof(moak_context_options), "opts");
    if (st != MOAK_OK)
        return st;
    memcpy(out, in, sizeof(*out));
    if (out->num_threads < 0)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "opts->num_threads: %d is negative (0 means one per physical core)",
                          (int)out->num_threads);
    if (out->num_threads > 1024)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "opts->num_threads: %d is more than 1024", (int)out->num_threads);
    if (out->verbose < -1 || out->verbose > 1)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "opts->verbose: %d is not -1 (from MOAK_VERBOSE), 0 or 1", (int)out->verbose);
    if (out->flags & ~(MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION | MOAK_CONTEXT_NO_THREAD_BINDING))
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                          "opts->flags: 0x%x has bits that are not MOAK_CONTEXT_* flags", out->flags);
    return MOAK_OK;
}

static int32_t env_threads(void)
{
    const char *s = getenv("MOAK_NUM_THREADS");
    if (!s || !*s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    return (*end == '\0' && v > 0 && v <= 1024) ? (int32_t)v : -1;
}

/* Default preference: every built CPU backend, best first, in registry
 * order, then ref.  A device backend (OpenCL) joins before ref only when the
 * device it would pick is an accelerator; an OpenCL CPU device (PoCL) is
 * just a slower CPU path, so it is used only when a list names it. */
static void default_backends(const char *device, int32_t *indices, int32_t *count)
{
    *count = 0;
    int32_t ref = moak_registry_find("ref");
    for (int32_t i = 0; i < moak_registry_count(); i++) {
        const moak_backend_entry *e = moak_registry_get(i);
        if (!e->ops || i == ref)
            continue;
        if (e->device && !(e->ops->rank_before_ref && e->ops->rank_before_ref(device)))
            continue;
        indices[(*count)++] = i;
    }
    indices[(*count)++] = ref;
}

/* Bring up the backends of the preference list.  A backend named explicitly
 * must be usable (the caller asked for it); from the default list, unusable
 * ones are skipped and say why in the verbose log. */
static moak_status start_backends(moak_context *ctx, const int32_t *indices, int32_t count, bool explicit_list)
{
    size_t used = 0;
    ctx->backends_list[0] = '\0';
    for (int32_t i = 0; i < count; i++) {
        const moak_backend_entry *e = moak_registry_get(indices[i]);
        char why[256];
        if (!e->ops) {
            if (explicit_list)
                return moak_error(NULL, MOAK_ERR_UNSUPPORTED, "backends: '%s' is %s", e->name,
                                  e->not_built_reason);
            continue;
        }
        if (!moak_backend_usable(e->ops, why, sizeof(why))) {
            if (explicit_list)
                return moak_error(NULL, MOAK_ERR_UNSUPPORTED,
                                  "backends: '%s' is not available on this machine: %s", e->name, why);
            moak_log(ctx, MOAK_LOG_INFO, "backend %s skipped: %s", e->name, why);
            continue;
        }
        moak_backend_slot *slot = &ctx->slots[ctx->n_slots];
        slot->ops = e->ops;
        slot->env.struct_size = sizeof(slot->env);
        slot->env.hw = &ctx->hw;
        slot->env.n_threads = ctx->n_threads;
        slot->env.context_flags = ctx->flags;
        slot->env.opencl_device = ctx->opencl_device;
        slot->env.parallel_for = moak_threadpool_run;
        slot->env.pool = ctx->pool;
        slot->env.log = backend_log;
        slot->env.log_ctx = ctx;
        slot->env.error = backend_error;
        ctx->last_error[0] = '\0';
        moak_status st = e->ops->init ? e->ops->init(&slot->env, &slot->state) : MOAK_OK;
        if (st != MOAK_OK) {
            if (explicit_list)
                return moak_error(NULL, st, "backends: '%s' failed to start: %s", e->name,
                                  ctx->last_error[0] ? ctx->last_error : moak_status_str(st));
            moak_log(ctx, MOAK_LOG_WARN, "backend %s failed to start and is skipped: %s", e->name,
                     ctx->last_error[0] ? ctx->last_error : moak_status_str(st));
            continue;
        }
        ctx->n_slots++;
        used += (size_t)snprintf(ctx->backends_list + used, sizeof(ctx->backends_list) - used,
                                 "%s%s", used ? "," : "", e->name);
        if (used >= sizeof(ctx->backends_list))
            used = sizeof(ctx->backends_list) - 1;
    }
    ctx->last_error[0] = '\0';
    return MOAK_OK;
}

static void stop_backends(moak_context *ctx)
{
    for (int32_t i = ctx->n_slots - 1; i >= 0; i--)
        if (ctx->slots[i].ops->fini)
            ctx->slots[i].ops->fini(ctx->slots[i].state);
    ctx->n_slots = 0;
}

MOAK_API moak_status moak_context_create(const moak_context_options *opts, moak_context **out)
{
    if (!out)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_options o;
    moak_status st = read_options(opts, &o);
    if (st != MOAK_OK)
        return st;
    const moak_hw_info *hw = moak_hw_get();
    if (moak_hw_cap_error())
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT, "%s", moak_hw_cap_error());

    moak_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_OUT_OF_MEMORY, "ctx: out of memory");
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->hw = *hw;
    ctx->flags = o.flags;
    ctx->log_fn = o.log_fn ? o.log_fn : log_to_stderr;
    ctx->log_user = o.log_fn ? o.log_user : NULL;
    if (o.verbose >= 0) {
        ctx->verbose = o.verbose == 1;
    } else {
        const char *v = getenv("MOAK_VERBOSE");
        ctx->verbose = v && *v && strcmp(v, "0") != 0;
    }
    const char *device = o.opencl_device ? o.opencl_device : getenv("MOAK_OPENCL_DEVICE");
    if (device && *device && !(ctx->opencl_device = strdup(device))) {
        moak_context_destroy(ctx);
        return moak_error(NULL, MOAK_ERR_OUT_OF_MEMORY, "ctx: out of memory");
    }

    int32_t threads = o.num_threads;
    if (threads == 0) {
        threads = env_threads();
        if (threads < 0) {
            moak_context_destroy(ctx);
            return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT,
                              "MOAK_NUM_THREADS: '%s' is not an integer in 1..1024",
                              getenv("MOAK_NUM_THREADS"));
        }
    }
    if (threads == 0)
        threads = hw->n_cores > 0 ? hw->n_cores : 1;
    ctx->n_threads = threads;

    /* Resolve the preference list before starting threads: a bad list is
     * the most common error and should cost nothing. */
    int32_t indices[MOAK_MAX_BACKENDS];
    int32_t count = 0;
    const char *list = o.backends ? o.backends : getenv("MOAK_BACKENDS");
    bool explicit_list = list && *list;
    if (explicit_list) {
        st = moak_parse_backend_list(ctx, list, indices, &count);
        if (st != MOAK_OK) {
            moak_error(NULL, st, "%s%s", o.backends ? "opts->backends: " : "MOAK_BACKENDS: ", ctx->last_error);
            moak_context_destroy(ctx);
            return st;
        }
    } else {
        default_backends(ctx->opencl_device, indices, &count);
    }

    if (moak_threadpool_create(threads, !(o.flags & MOAK_CONTEXT_NO_THREAD_BINDING), &ctx->pool) != MOAK_OK) {
        moak_context_destroy(ctx);
        return moak_error(NULL, MOAK_ERR_OUT_OF_MEMORY, "ctx: could not start %d worker threads", (int)threads);
    }
    st = start_backends(ctx, indices, count, explicit_list);
    if (st != MOAK_OK) {
        moak_context_destroy(ctx);
        return st;
    }
    moak_log(ctx, MOAK_LOG_INFO, "context: %d threads, backends %s%s", (int)threads, ctx->backends_list,
             hw->isa_cap ? " (ISA capped by MOAK_ISA_MAX)" : "");
    *out = ctx;
    return MOAK_OK;
}

MOAK_API void moak_context_destroy(moak_context *ctx)
{
    if (!ctx)
        return;
    stop_backends(ctx);
    moak_threadpool_destroy(ctx->pool);
    free(ctx->opencl_device);
    while (ctx->records) {
        moak_thread_record *next = ctx->records->next;
        free(ctx->records);
        ctx->records = next;
    }
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

/* The calling thread's record on ctx (ctx locked); NULL if it has none and
 * create is false or memory is short (then the message is lost, not the call). */
static moak_thread_record *thread_record(moak_context *ctx, bool create)
{
    const pthread_t self = pthread_self();
    for (moak_thread_record *r = ctx->records; r; r = r->next)
        if (pthread_equal(r->thread, self))
            return r;
    if (!create)
        return NULL;
    moak_thread_record *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->thread = self;
    r->next = ctx->records;
    ctx->records = r;
    return r;
}

MOAK_API const char *moak_last_error(const moak_context *cctx)
{
    if (!cctx)
        return moak_thread_error();
    /* The lock only guards the walk of the list (another thread may insert);
     * the record itself is written by this thread alone. */
    moak_context *ctx = (moak_context *)cctx;
    pthread_mutex_lock(&ctx->lock);
    const moak_thread_record *r = thread_record(ctx, false);
    pthread_mutex_unlock(&ctx->lock);
    return r ? r->last_error : "";
}

MOAK_API const char *moak_last_backend(const moak_context *cctx)
{
    if (!cctx)
        return "";
    moak_context *ctx = (moak_context *)cctx;
    pthread_mutex_lock(&ctx->lock);
    const moak_thread_record *r = thread_record(ctx, false);
    pthread_mutex_unlock(&ctx->lock);
    return r && r->last_backend ? r->last_backend : "";
}

MOAK_API int32_t moak_context_num_threads(const moak_context *ctx) { return ctx ? ctx->n_threads : 0; }

MOAK_API const char *moak_context_backends(const moak_context *ctx) { return ctx ? ctx->backends_list : ""; }

void moak_context_lock(moak_context *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    ctx->last_error[0] = '\0';
    ctx->last_backend = NULL;
}

void moak_context_unlock(moak_context *ctx)
{
    /* Publish the call's outcome to the calling thread's record only, so a
     * call from another thread cannot overwrite what this one reads. */
    moak_thread_record *r = thread_record(ctx, ctx->last_error[0] || ctx->last_backend);
    if (r) {
        memcpy(r->last_error, ctx->last_error, sizeof(r->last_error));
        if (ctx->last_backend)
            r->last_backend = ctx->last_backend;
    }
    pthread_mutex_unlock(&ctx->lock);
}
