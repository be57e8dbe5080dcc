/* The paged KV cache: the core keeps the page tables and the free-page
 * stack; the pages themselves are either core-owned host memory in the
 * standard layout of moak_backend.h (any host backend can read them) or a
 * device backend's own storage (only that backend runs attention on it). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_PAGE_TOKENS 64

static moak_status check_desc(moak_context *ctx, const moak_kv_cache_desc *d)
{
    moak_status st = moak_check_struct_size(ctx, d->struct_size, sizeof(moak_kv_cache_desc), "desc");
    if (st != MOAK_OK)
        return st;
    if (d->format != MOAK_FORMAT_F32 && d->format != MOAK_FORMAT_F16 && d->format != MOAK_FORMAT_BF16 &&
        d->format != MOAK_FORMAT_Q8_0)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->format: %d is not a KV format (F32, F16, BF16 or Q8_0)", (int)d->format);
    if (d->n_kv_heads < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->n_kv_heads: %d must be >= 1", (int)d->n_kv_heads);
    if (d->head_dim_k < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->head_dim_k: %d must be >= 1", (int)d->head_dim_k);
    if (d->flags & ~(MOAK_KV_SHARED_V | MOAK_KV_K_ONLY))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->flags: 0x%x has bits that are not MOAK_KV_* flags",
                          d->flags);
    if (d->flags & MOAK_KV_K_ONLY) {
        if (d->flags & MOAK_KV_SHARED_V)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "desc->flags: MOAK_KV_K_ONLY and MOAK_KV_SHARED_V exclude each other (a K-only cache has "
                              "no V to share)");
        if (d->head_dim_v != 0)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "desc->head_dim_v: %d must be 0 with MOAK_KV_K_ONLY (the cache holds no V)",
                              (int)d->head_dim_v);
    } else if (d->head_dim_v < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->head_dim_v: %d must be >= 1", (int)d->head_dim_v);
    if ((d->flags & MOAK_KV_SHARED_V) && d->head_dim_v > d->head_dim_k)
        return moak_error(ctx, MOAK_ERR_SHAPE_MISMATCH,
                          "desc->head_dim_v: %d exceeds head_dim_k %d, but MOAK_KV_SHARED_V reads V from K",
                          (int)d->head_dim_v, (int)d->head_dim_k);
    if (d->format == MOAK_FORMAT_Q8_0 && (d->head_dim_k % 32 || d->head_dim_v % 32))
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->head_dim_k/head_dim_v: %d/%d must be multiples of 32 for a Q8_0 cache",
                          (int)d->head_dim_k, (int)d->head_dim_v);
    if (d->max_seqs < 1 || d->max_seqs > MOAK_KV_MAX_SEQS)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->max_seqs: %d must be in 1..%d (MOAK_KV_MAX_SEQS)",
                          (int)d->max_seqs, (int)MOAK_KV_MAX_SEQS);
    if (d->max_tokens < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->max_tokens: %lld must be >= 1",
                          (long long)d->max_tokens);
    if (d->page_tokens < 0 || d->page_tokens > 65536)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->page_tokens: %d must be in 0..65536 (0 = %d)", (int)d->page_tokens,
                          DEFAULT_PAGE_TOKENS);
    return MOAK_OK;
}

/* Page geometry; false on overflow. */
static bool make_layout(const moak_kv_cache_desc *d, moak_kv_layout *l)
{
    memset(l, 0, sizeof(*l));
    l->format = d->format;
    l->n_kv_heads = d->n_kv_heads;
    l->head_dim_k = d->head_dim_k;
    l->head_dim_v = d->head_dim_v;
    /* K-only: shared_v with no V dims, so no V block is laid out */
    l->k_only = (d->flags & MOAK_KV_K_ONLY) != 0;
    l->shared_v = (d->flags & MOAK_KV_SHARED_V) != 0 || l->k_only;
    l->page_tokens = d->page_tokens ? d->page_tokens : DEFAULT_PAGE_TOKENS;
    /* Rounded up without forming max_tokens + page_tokens - 1, which
     * overflows int64_t for max_tokens within page_tokens of INT64_MAX. */
    l->n_pages = d->max_tokens / l->page_tokens + (d->max_tokens % l->page_tokens != 0);
    if (l->n_pages > MOAK_KV_MAX_PAGES)
        return false;
    l->row_bytes_k = moak_format_row_bytes(d->format, d->head_dim_k);
    l->row_bytes_v = l->k_only ? 0 : moak_format_row_bytes(d->format, d->head_dim_v);
    size_t k_block, v_block = 0, page;
    int64_t dims[2] = {l->n_kv_heads, l->page_tokens};
    if (!moak_count_bytes(l->row_bytes_k, 2, dims, &k_block))
        return false;
    if (!l->shared_v && !moak_count_bytes(l->row_bytes_v, 2, dims, &v_block))
        return false;
    if (!moak_add_size(k_block, v_block, &page) || !moak_add_size(page, 63, &page))
        return false;
    l->page_bytes = page & ~(size_t)63;
    l->v_block_offset = l->shared_v ? 0 : k_block;
    size_t total;
    return moak_mul_size(l->page_bytes, (size_t)l->n_pages, &total);
}

static void free_cache(moak_kv_cache *kv)
{
    if (kv->page_tables)
        for (int32_t s = 0; s < kv->max_seqs; s++)
            free(kv->page_tables[s]);
    free(kv->page_tables);
    free(kv->table_caps);
    free(kv->seq_lens);
    free(kv->free_pages);
    free(kv);
}

/* Give the page storage back to its owner (the core or the backend). */
static void release_storage(moak_context *ctx, moak_kv_cache *kv)
{
    if (!kv->storage)
        return;
    if (kv->host_layout) {
        moak_free(kv->storage);
    } else {
        const moak_backend_slot *s = &ctx->slots[kv->slot];
        if (s->ops->kv_free)
            s->ops->kv_free(s->state, kv->storage);
    }
    kv->storage = NULL;
}

static moak_status create_locked(moak_context *ctx, const moak_kv_cache_desc *d, moak_kv_cache **out)
{
    MOAK_CHECK_NULL(ctx, d, "desc");
    MOAK_CHECK_NULL(ctx, out, "kv");
    moak_status st = check_desc(ctx, d);
    if (st != MOAK_OK)
        return st;
    moak_kv_layout layout;
    if (!make_layout(d, &layout))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW,
                          "desc->max_tokens: %lld tokens of %d heads x (%d + %d) dims overflow the page count "
                          "(at most MOAK_KV_MAX_PAGES pages of page_tokens) or size_t",
                          (long long)d->max_tokens, (int)d->n_kv_heads, (int)d->head_dim_k, (int)d->head_dim_v);

    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    /* An index cache goes to a backend that runs the indexer on it. */
    shape.op = layout.k_only ? MOAK_OP_INDEXER : MOAK_OP_ATTENTION;
    shape.format = d->format;
    shape.n_kv_heads = d->n_kv_heads;
    shape.head_dim_k = d->head_dim_k;
    shape.head_dim_v = d->head_dim_v;
    shape.features = layout.shared_v ? MOAK_FEATURE_SHARED_V : 0;
    int32_t slot;
    st = moak_dispatch(ctx, &shape, false, -1, &slot);
    if (st != MOAK_OK)
        return st;
    const moak_backend_slot *s = &ctx->slots[slot];

    moak_kv_cache *kv = calloc(1, sizeof(*kv));
    if (!kv)
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "kv: out of memory");
    kv->ctx = ctx;
    kv->slot = slot;
    kv->layout = layout;

    /* The page storage first: it is the big allocation, so a size the
     * machine cannot hold fails here before any bookkeeping is touched. */
    kv->host_layout = s->ops->kv_create == NULL;
    if (kv->host_layout) {
        /* Attention streams the pages: huge pages where the OS gives them
         * (zeroed here: a page is only read once written, but a cache that
         * starts as zeros is easier to debug and costs one pass). */
        const size_t storage_bytes = layout.page_bytes * (size_t)layout.n_pages;
        kv->storage = moak_alloc_streamed(storage_bytes);
        if (!kv->storage) {
            free_cache(kv);
            return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "desc->max_tokens: out of memory for %lld pages of %zu bytes",
                              (long long)layout.n_pages, layout.page_bytes);
        }
        memset(kv->storage, 0, storage_bytes);
    } else {
        st = s->ops->kv_create(s->state, &kv->layout, &kv->storage);
        if (st != MOAK_OK) {
            kv->storage = NULL;
            free_cache(kv);
            if (!ctx->last_error[0])
                moak_error(ctx, st, "desc: backend %s could not create the cache storage", s->ops->name);
            return st;
        }
    }

    /* Bookkeeping: O(max_seqs) zeroed entries (max_seqs <= MOAK_KV_MAX_SEQS)
     * and an untouched free-page stack; no per-page work until pages are used. */
    kv->max_seqs = d->max_seqs;
    kv->seq_lens = calloc((size_t)d->max_seqs, sizeof(int64_t));
    kv->page_tables = calloc((size_t)d->max_seqs, sizeof(int32_t *));
    kv->table_caps = calloc((size_t)d->max_seqs, sizeof(int32_t));
    kv->free_pages = malloc((size_t)layout.n_pages * sizeof(int32_t));
    if (!kv->seq_lens || !kv->page_tables || !kv->table_caps || !kv->free_pages) {
        release_storage(ctx, kv);
        free_cache(kv);
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "desc: out of memory for %d sequences' page tables",
                          (int)d->max_seqs);
    }
    /* Fresh pages are handed out in order (page 0 first), returned ones LIFO. */
    kv->n_stacked = 0;
    kv->next_fresh = 0;
    kv->n_free = layout.n_pages;
    kv->view.layout = &kv->layout;
    kv->view.storage = kv->storage;
    kv->view.host_layout = kv->host_layout;
    kv->view.seq_lens = kv->seq_lens;
    kv->view.page_tables = (const int32_t *const *)kv->page_tables;
    *out = kv;
    return MOAK_OK;
}

MOAK_API moak_status moak_kv_cache_create(moak_context *ctx, const moak_kv_cache_desc *desc, moak_kv_cache **kv)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = create_locked(ctx, desc, kv);
    moak_context_unlock(ctx);
    return st;
}

MOAK_API void moak_kv_cache_destroy(moak_kv_cache *kv)
{
    if (!kv)
        return;
    moak_context *ctx = kv->ctx;
    pthread_mutex_lock(&ctx->lock);
    release_storage(ctx, kv);
    pthread_mutex_unlock(&ctx->lock);
    free_cache(kv);
}

MOAK_API const char *moak_kv_cache_backend(const moak_kv_cache *kv)
{
    return kv ? kv->ctx->slots[kv->slot].ops->name : "";
}

static moak_status check_seq(moak_context *ctx, const moak_kv_cache *kv, int32_t seq_id)
{
    if (seq_id < 0 || seq_id >= kv->max_seqs)
        return moak_error(ctx, MOAK_ERR_OUT_OF_RANGE, "seq_id: %d is outside 0..%d (max_seqs - 1)", (int)seq_id,
                          (int)kv->max_seqs - 1);
    return MOAK_OK;
}

/* Write rows into the core's host pages, quantizing to the cache format. */
static void host_write(moak_kv_cache *kv, int64_t n, const int32_t *pages, const int32_t *slots, const float *k,
                       const float *v)
{
    const moak_kv_layout *l = &kv->layout;
    for (int64_t i = 0; i < n; i++) {
        unsigned char *page = (unsigned char *)kv->storage + (size_t)pages[i] * l->page_bytes;
        for (int32_t h = 0; h < l->n_kv_heads; h++) {
            size_t row = (size_t)h * (size_t)l->page_tokens + (size_t)slots[i];
            const float *krow = k + ((size_t)i * (size_t)l->n_kv_heads + (size_t)h) * (size_t)l->head_dim_k;
            moak_quantize_row(l->format, krow, l->head_dim_k, page + row * l->row_bytes_k);
            if (!l->shared_v) {
                const float *vrow = v + ((size_t)i * (size_t)l->n_kv_heads + (size_t)h) * (size_t)l->head_dim_v;
                moak_quantize_row(l->format, vrow, l->head_dim_v, page + l->v_block_offset + row * l->row_bytes_v);
            }
        }
    }
}

/* Room for `pages` entries in the sequence's page table (geometric growth,
 * at most the cache's page count); false, with the table unchanged, when
 * out of memory. */
static bool grow_table(moak_kv_cache *kv, int32_t seq_id, int64_t pages)
{
    if (pages <= kv->table_caps[seq_id])
        return true;
    int64_t cap = (int64_t)kv->table_caps[seq_id] * 2;
    if (cap < 16)
        cap = 16;
    if (cap < pages)
        cap = pages;
    if (cap > kv->layout.n_pages)
        cap = kv->layout.n_pages;
    int32_t *t = realloc(kv->page_tables[seq_id], (size_t)cap * sizeof(int32_t));
    if (!t)
        return false;
    kv->page_tables[seq_id] = t;
    kv->table_caps[seq_id] = (int32_t)cap;
    /* The view handed to backends points at the same array of tables. */
    return true;
}

/* One free page (the caller checked n_free > 0). */
static int32_t take_page(moak_kv_cache *kv)
{
    kv->n_free--;
    if (kv->n_stacked > 0)
        return kv->free_pages[--kv->n_stacked];
    return (int32_t)kv->next_fresh++;
}

static void return_page(moak_kv_cache *kv, int32_t page)
{
    kv->free_pages[kv->n_stacked++] = page;
    kv->n_free++;
}

static moak_status append_locked(moak_context *ctx, moak_kv_cache *kv, int32_t seq_id, int64_t n, const float *k,
                                 const float *v)
{
    MOAK_CHECK_NULL(ctx, kv, "kv");
    if (kv->ctx != ctx)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "kv: was created on another context");
    moak_status st = check_seq(ctx, kv, seq_id);
    if (st != MOAK_OK)
        return st;
    if (n < 0)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "n_tokens: %lld is negative", (long long)n);
    MOAK_CHECK_NULL(ctx, k, "k");
    const moak_kv_layout *l = &kv->layout;
    if (l->shared_v && v)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          l->k_only ? "v: must be NULL for a MOAK_KV_K_ONLY cache (it holds no V)"
                                    : "v: must be NULL for a MOAK_KV_SHARED_V cache (V is read from K)");
    if (!l->shared_v)
        MOAK_CHECK_NULL(ctx, v, "v");
    size_t bytes;
    int64_t dims[3] = {n, l->n_kv_heads, l->head_dim_k > l->head_dim_v ? l->head_dim_k : l->head_dim_v};
    if (!moak_count_bytes(sizeof(float), 3, dims, &bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "n_tokens: %lld tokens of K/V overflow size_t", (long long)n);
    if (n == 0)
        return MOAK_OK;

    int64_t len = kv->seq_lens[seq_id];
    int64_t pt = l->page_tokens;
    int64_t have = (len + pt - 1) / pt;
    if (n > l->n_pages * pt - len)
        return moak_error(ctx, MOAK_ERR_CACHE_FULL,
                          "n_tokens: %lld more tokens for sequence %d (holding %lld) exceed the cache's %lld "
                          "tokens", (long long)n, (int)seq_id, (long long)len, (long long)(l->n_pages * pt));
    int64_t need = (len + n + pt - 1) / pt - have;
    if (need > kv->n_free)
        return moak_error(ctx, MOAK_ERR_CACHE_FULL,
                          "n_tokens: %lld tokens for sequence %d need %lld new pages but %lld are free "
                          "(nothing was appended)", (long long)n, (int)seq_id, (long long)need,
                          (long long)kv->n_free);
    if (!grow_table(kv, seq_id, have + need))
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "n_tokens: out of memory for sequence %d's page table",
                          (int)seq_id);
    int32_t *pages = malloc((size_t)n * sizeof(int32_t));
    int32_t *slots = malloc((size_t)n * sizeof(int32_t));
    if (!pages || !slots) {
        free(pages);
        free(slots);
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "n_tokens: out of memory for %lld tokens", (long long)n);
    }
    int32_t *table = kv->page_tables[seq_id];
    for (int64_t p = 0; p < need; p++)
        table[have + p] = take_page(kv);
    for (int64_t i = 0; i < n; i++) {
        pages[i] = table[(len + i) / pt];
        slots[i] = (int32_t)((len + i) % pt);
    }
    if (kv->host_layout) {
        host_write(kv, n, pages, slots, k, v);
    } else {
        const moak_backend_slot *s = &ctx->slots[kv->slot];
        st = s->ops->kv_write(s->state, kv->storage, l, n, pages, slots, k, v);
        if (st != MOAK_OK) {
            /* Give the new pages back: the sequence is as it was. */
            for (int64_t p = need - 1; p >= 0; p--)
                return_page(kv, table[have + p]);
            free(pages);
            free(slots);
            if (!ctx->last_error[0])
                moak_error(ctx, st, "kv: backend %s failed to store the tokens", s->ops->name);
            return st;
        }
    }
    free(pages);
    free(slots);
    kv->seq_lens[seq_id] = len + n;
    return MOAK_OK;
}

MOAK_API moak_status moak_kv_cache_append(moak_context *ctx, moak_kv_cache *kv, int32_t seq_id, int64_t n_tokens,
                                          const float *k, const float *v)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = append_locked(ctx, kv, seq_id, n_tokens, k, v);
    moak_context_unlock(ctx);
    return st;
}

MOAK_API moak_status moak_kv_cache_seq_len(const moak_kv_cache *kv, int32_t seq_id, int64_t *len)
{
    if (!kv)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "kv: must not be NULL");
    if (!len)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "len: must not be NULL");
    if (seq_id < 0 || seq_id >= kv->max_seqs)
        return moak_error(NULL, MOAK_ERR_OUT_OF_RANGE, "seq_id: %d is outside 0..%d (max_seqs - 1)", (int)seq_id,
                          (int)kv->max_seqs - 1);
    /* Under the owning context's lock: an append or clear may run in another
     * thread (see the thread-safety contract in moak.h). */
    pthread_mutex_lock(&kv->ctx->lock);
    *len = kv->seq_lens[seq_id];
    pthread_mutex_unlock(&kv->ctx->lock);
    return MOAK_OK;
}

static moak_status clear_locked(moak_context *ctx, moak_kv_cache *kv, int32_t seq_id)
{
    MOAK_CHECK_NULL(ctx, kv, "kv");
    if (kv->ctx != ctx)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "kv: was created on another context");
    moak_status st = check_seq(ctx, kv, seq_id);
    if (st != MOAK_OK)
        return st;
    int64_t pt = kv->layout.page_tokens;
    int64_t have = (kv->seq_lens[seq_id] + pt - 1) / pt;
    for (int64_t p = have - 1; p >= 0; p--)
        return_page(kv, kv->page_tables[seq_id][p]);
    kv->seq_lens[seq_id] = 0;
    return MOAK_OK;
}

MOAK_API moak_status moak_kv_cache_seq_clear(moak_context *ctx, moak_kv_cache *kv, int32_t seq_id)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = clear_locked(ctx, kv, seq_id);
    moak_context_unlock(ctx);
    return st;
}
