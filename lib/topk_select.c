/* Top-k selection for the indexer (moak_select_top_k in moak_backend.h).
 *
 * A min-heap of the k best seen so far, keyed by "worse": its root is the
 * weakest kept candidate, which a new candidate replaces only when strictly
 * better.  Candidates arrive in increasing index, so an equal score never
 * displaces an earlier (lower) index: ties go to the lower position without
 * any extra key.  Finally the heap is sorted best-first.  n log k compares:
 * the indexer's cost grows with the cached length, the selection's with its
 * log of k. */
#include "config.h"

#include <math.h>

#include "internal.h"

/* a ranks strictly before b: higher score, then lower index; NaN last. */
static bool better(const double *score, int32_t a, int32_t b)
{
    const double sa = score[a], sb = score[b];
    if (sa != sa)
        return sb != sb && a < b;
    if (sb != sb)
        return true;
    return sa > sb || (sa == sb && a < b);
}

/* Restore the heap property below slot i (the root is the worst). */
static void sift_down(const double *score, int32_t *heap, int32_t size, int32_t i)
{
    for (;;) {
        int32_t worst = i;
        const int32_t l = 2 * i + 1, r = l + 1;
        if (l < size && better(score, heap[worst], heap[l]))
            worst = l;
        if (r < size && better(score, heap[worst], heap[r]))
            worst = r;
        if (worst == i)
            return;
        const int32_t t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

static void sift_up(const double *score, int32_t *heap, int32_t i)
{
    while (i > 0) {
        const int32_t parent = (i - 1) / 2;
        if (!better(score, heap[parent], heap[i]))
            return;
        const int32_t t = heap[i];
        heap[i] = heap[parent];
        heap[parent] = t;
        i = parent;
    }
}

void moak_select_top_k(const double *score, int64_t n, int32_t k, int32_t *heap, int32_t *positions,
                       float *scores)
{
    int32_t size = 0;
    for (int64_t j = 0; j < n; j++) {
        if (size < k) {
            heap[size] = (int32_t)j;
            sift_up(score, heap, size++);
        } else if (better(score, (int32_t)j, heap[0])) {
            heap[0] = (int32_t)j;
            sift_down(score, heap, size, 0);
        }
    }
    /* Pop the worst into the last free slot: positions ends best-first. */
    for (int32_t i = k - 1; i >= size; i--) {
        positions[i] = -1;
        if (scores)
            scores[i] = -INFINITY;
    }
    for (int32_t i = size - 1; i >= 0; i--) {
        positions[i] = heap[0];
        if (scores)
            scores[i] = (float)score[heap[0]];
        heap[0] = heap[i];
        sift_down(score, heap, i, 0);
    }
}
