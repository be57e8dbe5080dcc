/* test_kv_cache_limits — a KV cache of a bad or huge size fails fast, and
 * its bookkeeping costs memory in proportion to what is used (issue 16,
 * defects 1 and 5):
 *   - max_seqs above MOAK_KV_MAX_SEQS is refused before anything is
 *     allocated (the old code spent 21 s on 50 M sequences);
 *   - a cache of MOAK_KV_MAX_SEQS sequences over a few pages touches almost
 *     no memory at creation (the old code allocated a page table of every
 *     page for every sequence: ~300 MB here), and still appends and clears
 *     at both ends of the id range;
 *   - a cache whose page storage cannot exist (2^27 pages of 2 MB) is
 *     MOAK_ERR_OUT_OF_MEMORY with no memory touched (the old code filled a
 *     free-page stack of 2^27 entries, 512 MB, before trying the storage).
 * "Touched" is the growth of the resident set (/proc/self/statm), which,
 * unlike a time, does not depend on the machine's load.
 * Runs on every backend this machine has (the limits are checked in the
 * core; the storage is the backend's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#  define UNDER_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define UNDER_ASAN 1
#  endif
#endif
#ifndef UNDER_ASAN
#  define UNDER_ASAN 0
#endif

#define MIB (1024.0 * 1024.0)

/* Resident bytes now, or -1 where /proc is absent. */
static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long pages_total = 0, pages_resident = 0;
    int n = fscanf(f, "%ld %ld", &pages_total, &pages_resident);
    fclose(f);
    return n == 2 ? (double)pages_resident * 4096.0 : -1;
}

/* The peak resident set so far (getrusage), or -1.  A failed creation
 * frees what it touched, so only the peak shows it. */
static double peak_resident_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)ru.ru_maxrss * 1024.0;
}

static moak_kv_cache_desc small_desc(void)
{
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = MOAK_FORMAT_F16;
    d.n_kv_heads = 2;
    d.head_dim_k = 32;
    d.head_dim_v = 32;
    d.max_seqs = 4;
    d.max_tokens = 1024;
    d.page_tokens = 16;
    return d;
}

static void too_many_sequences(const t_backend *b)
{
    moak_kv_cache_desc d = small_desc();
    d.max_seqs = MOAK_KV_MAX_SEQS + 1;
    moak_kv_cache *kv = (moak_kv_cache *)&d; /* poison: must stay as it is */
    moak_kv_cache *const before = kv;
    moak_status st = moak_kv_cache_create(b->ctx, &d, &kv);
    t_check(st == MOAK_ERR_INVALID_ARGUMENT && strstr(moak_last_error(b->ctx), "max_seqs") && kv == before,
            "%s: max_seqs MOAK_KV_MAX_SEQS+1 -> %s \"%s\", output untouched", b->name, t_status_name(st),
            moak_last_error(b->ctx));
    if (st == MOAK_OK)
        moak_kv_cache_destroy(kv);
}

static void page_count_near_int64_max(const t_backend *b)
{
    /* max_tokens + page_tokens - 1 overflowed int64_t (undefined behaviour,
     * caught by UBSan in the sanitizer build); the count is now rounded up
     * without the sum. */
    moak_kv_cache_desc d = small_desc();
    d.max_tokens = INT64_MAX - 3;
    d.page_tokens = 65536;
    moak_kv_cache *kv = NULL;
    moak_status st = moak_kv_cache_create(b->ctx, &d, &kv);
    t_check(st == MOAK_ERR_SIZE_OVERFLOW && strstr(moak_last_error(b->ctx), "max_tokens") && kv == NULL,
            "%s: max_tokens INT64_MAX-3, page_tokens 65536 -> %s \"%s\"", b->name, t_status_name(st),
            moak_last_error(b->ctx));
}

static void append_ok(const t_backend *b, moak_kv_cache *kv, int32_t seq, int64_t n, int64_t expect_len)
{
    float *k = t_alloc_f32((size_t)n * 2 * 32), *v = t_alloc_f32((size_t)n * 2 * 32);
    t_fill_normal(k, (size_t)n * 2 * 32, 1.0);
    t_fill_normal(v, (size_t)n * 2 * 32, 1.0);
    moak_status st = moak_kv_cache_append(b->ctx, kv, seq, n, k, v);
    int64_t len = -1;
    moak_kv_cache_seq_len(kv, seq, &len);
    t_check(st == MOAK_OK && len == expect_len, "%s: append %lld tokens to sequence %d -> %s, length %lld (want %lld)",
            b->name, (long long)n, (int)seq, t_status_name(st), (long long)len, (long long)expect_len);
    free(k);
    free(v);
}

static void max_sequences_cost_little(const t_backend *b)
{
    moak_kv_cache_desc d = small_desc();
    d.max_seqs = MOAK_KV_MAX_SEQS;
    const double before = resident_bytes();
    moak_kv_cache *kv = NULL;
    moak_status st = moak_kv_cache_create(b->ctx, &d, &kv);
    const double grown = resident_bytes() - before;
    if (st != MOAK_OK) {
        t_fail("%s: cache of MOAK_KV_MAX_SEQS sequences -> %s \"%s\"", b->name, t_status_name(st),
               moak_last_error(b->ctx));
        return;
    }
    /* The page storage is 64 pages of 4 KB (256 KB); the rest is 20 bytes
     * of zeroed entries per sequence (20 MiB, resident or not as the
     * allocator's calloc decides).  The old per-sequence page tables of every
     * page cost ~270 bytes per sequence here, 280 MiB. */
    if (before >= 0)
        t_check(grown < 32 * MIB, "%s: creating a cache of %d sequences grew the resident set by %.1f MiB (< 32)",
                b->name, (int)MOAK_KV_MAX_SEQS, grown / MIB);
    /* Both ends of the id range work; a full cache refuses, a clear frees:
     * 1000 tokens take 63 of the 64 pages, so 24 more (2 pages) do not fit
     * and 16 (1 page) do. */
    append_ok(b, kv, MOAK_KV_MAX_SEQS - 1, 1000, 1000);
    float k[24 * 2 * 32], v[24 * 2 * 32];
    t_fill_normal(k, 24 * 2 * 32, 1.0);
    t_fill_normal(v, 24 * 2 * 32, 1.0);
    st = moak_kv_cache_append(b->ctx, kv, 0, 24, k, v);
    t_check(st == MOAK_ERR_CACHE_FULL, "%s: 24 tokens into the last free page -> %s", b->name, t_status_name(st));
    append_ok(b, kv, 0, 16, 16);
    st = moak_kv_cache_seq_clear(b->ctx, kv, MOAK_KV_MAX_SEQS - 1);
    t_check(st == MOAK_OK, "%s: clear sequence %d -> %s", b->name, (int)MOAK_KV_MAX_SEQS - 1, t_status_name(st));
    append_ok(b, kv, MOAK_KV_MAX_SEQS / 2, 1000, 1000);
    moak_kv_cache_destroy(kv);
}

static void storage_that_cannot_exist(const t_backend *b)
{
    /* 2^27 pages of 1 head x (4096 + 4096) f32 x 64 tokens = 2 MB each:
     * 2^48 bytes, more than any machine here can map. */
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = MOAK_FORMAT_F32;
    d.n_kv_heads = 1;
    d.head_dim_k = 4096;
    d.head_dim_v = 4096;
    d.max_seqs = 2;
    d.page_tokens = 64;
    d.max_tokens = ((int64_t)1 << 27) * 64;
    const double before = peak_resident_bytes();
    moak_kv_cache *kv = NULL;
    moak_status st = moak_kv_cache_create(b->ctx, &d, &kv);
    const double grown = peak_resident_bytes() - before;
    /* Out of memory where the core allocates the pages; a device backend
     * may refuse the size itself (opencl: beyond CL_DEVICE_MAX_MEM_ALLOC_SIZE). */
    t_check((st == MOAK_ERR_OUT_OF_MEMORY || st == MOAK_ERR_BACKEND) && kv == NULL,
            "%s: 2^27 pages of 2 MB -> %s \"%s\"", b->name,
            t_status_name(st), moak_last_error(b->ctx));
    if (st == MOAK_OK)
        moak_kv_cache_destroy(kv);
    if (before >= 0)
        t_check(grown < 32 * MIB, "%s: the failed creation raised the peak resident set by %.1f MiB (< 32)", b->name,
                grown / MIB);
}

int main(void)
{
    t_init("test_kv_cache_limits");
    t_backend backends[T_MAX_BACKENDS];
    int n = t_open_backends(backends, T_MAX_BACKENDS, 1);
    /* First, while the peak resident set is still low: ASan's allocator
     * reports a 2^48-byte request as an error of its own instead of
     * returning NULL, so the plain build runs this one. */
    for (int i = 0; i < n && !UNDER_ASAN; i++)
        storage_that_cannot_exist(&backends[i]);
    for (int i = 0; i < n; i++) {
        too_many_sequences(&backends[i]);
        page_count_near_int64_max(&backends[i]);
        max_sequences_cost_little(&backends[i]);
    }
    t_close_backends(backends, n);
    return t_finish();
}
