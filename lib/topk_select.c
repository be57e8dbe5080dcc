/* Top-k selection for the indexer (moak_select_top_k in moak_backend.h).
 *
 * Each score becomes an unsigned key that orders as the score does (NaN
 * below every number, -0 as +0), so the k-th best key T is found by a
 * quickselect in O(n); then every key above T is kept, and of the keys equal
 * to T the lowest positions fill what is left: exactly "ties to the lower
 * position".  The k kept are sorted by (key descending, position ascending).
 * n + k log k steps, against n log k for a heap: at the indexer's n = 32768
 * and k = 2048 the heap cost about 1 ms a query (x86, measured), most of it
 * in replacing its root. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static uint64_t order_key(double s)
{
    if (s != s)
        return 0;
    if (s == 0.0)
        s = 0.0; /* -0 ties with +0 */
    uint64_t bits;
    memcpy(&bits, &s, sizeof(bits));
    return (bits >> 63) ? ~bits : bits | (UINT64_C(1) << 63);
}

/* The element that would sit at index `want` if v[0..n) were sorted in
 * descending order (v is reordered). */
static uint64_t select_descending(uint64_t *v, int64_t n, int64_t want)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        /* median of three as the pivot */
        const int64_t mid = lo + (hi - lo) / 2;
        uint64_t a = v[lo], b = v[mid], c = v[hi];
        const uint64_t pivot = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot)
                i++;
            while (v[j] < pivot)
                j--;
            if (i <= j) {
                const uint64_t t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return v[want];
    }
    return v[want];
}

typedef struct chosen {
    uint64_t key;
    int32_t pos;
} chosen;

static int chosen_order(const void *pa, const void *pb)
{
    const chosen *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

size_t moak_select_top_k_scratch(int64_t n, int32_t k)
{
    return (size_t)n * sizeof(uint64_t) + (size_t)k * sizeof(chosen);
}

void moak_select_top_k(const double *score, int64_t n, int32_t k, void *scratch, int32_t *positions, float *scores)
{
    uint64_t *keys = scratch;
    chosen *out = (chosen *)(void *)(keys + n);
    const int64_t m = n < k ? n : k;
    int64_t count = 0;
    if (m > 0) {
        for (int64_t j = 0; j < n; j++)
            keys[j] = order_key(score[j]);
        const uint64_t threshold = select_descending(keys, n, m - 1);
        int64_t above = 0;
        for (int64_t j = 0; j < n; j++)
            above += order_key(score[j]) > threshold;
        /* above < m: every key above T, then the lowest positions equal to it */
        int64_t ties_left = m - above;
        for (int64_t j = 0; j < n && count < m; j++) {
            const uint64_t key = order_key(score[j]);
            if (key > threshold || (key == threshold && ties_left-- > 0)) {
                out[count].key = key;
                out[count++].pos = (int32_t)j;
            }
        }
        qsort(out, (size_t)count, sizeof(chosen), chosen_order);
    }
    for (int64_t i = 0; i < count; i++) {
        positions[i] = out[i].pos;
        if (scores)
            scores[i] = (float)score[out[i].pos];
    }
    for (int32_t i = (int32_t)count; i < k; i++) {
        positions[i] = -1;
        if (scores)
            scores[i] = -INFINITY;
    }
}
