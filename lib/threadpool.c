/* A small fork-join pool: n-1 workers plus the calling thread.
 *
 * Workers sleep on a condition variable between jobs (no spinning), so an
 * idle context costs nothing.  A job is a range of task indices handed out
 * with an atomic counter; which thread runs a task may vary, so backends
 * make each task's result independent of the thread (see moak_task_fn),
 * which keeps results bitwise reproducible for a given thread count.
 * Workers (never the calling thread) are bound to physical cores (hwloc)
 * when asked. */
#include "config.h"

#include <hwloc.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "hwprobe.h"
#include "internal.h"

struct moak_threadpool {
    int32_t n_threads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;          /* workers wait here for a new generation */
    pthread_cond_t done;          /* the caller waits here for the workers */
    uint64_t generation;          /* bumped per job */
    int32_t running;              /* workers still inside the current job */
    bool stop;
    /* the current job */
    moak_task_fn fn;
    void *arg;
    int64_t n_tasks;
    atomic_int_fast64_t next_task;
    bool bind;
};

typedef struct worker_start {
    moak_threadpool *pool;
    int32_t index;                /* 1..n-1; the caller is 0 */
} worker_start;

static void run_tasks(moak_threadpool *pool, int32_t thread)
{
    for (;;) {
        int64_t task = atomic_fetch_add(&pool->next_task, 1);
        if (task >= pool->n_tasks)
            break;
        pool->fn(pool->arg, task, thread);
    }
}

/* Pin the calling thread to physical core `index` (mod the core count). */
static void bind_to_core(int32_t index)
{
    hwloc_topology_t topo = moak_hw_topology();
    if (!topo)
        return;
    int n_cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (n_cores <= 0)
        return;
    hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)(index % n_cores));
    if (!core || !core->cpuset)
        return;
    /* Failure to bind (e.g. a restricted cpuset) is harmless: run unbound. */
    (void)hwloc_set_cpubind(topo, core->cpuset, HWLOC_CPUBIND_THREAD);
}

static void *worker_main(void *p)
{
    worker_start start = *(worker_start *)p;
    free(p);
    moak_threadpool *pool = start.pool;
    if (pool->bind)
        bind_to_core(start.index);
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        run_tasks(pool, start.index);
        pthread_mutex_lock(&pool->lock);
        if (--pool->running == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

moak_status moak_threadpool_create(int32_t n_threads, bool bind, moak_threadpool **out)
{
    moak_threadpool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return MOAK_ERR_OUT_OF_MEMORY;
    pool->n_threads = n_threads < 1 ? 1 : n_threads;
    pool->bind = bind;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->next_task, 0);
    if (pool->n_threads > 1) {
        pool->threads = calloc((size_t)pool->n_threads, sizeof(pthread_t));
        if (!pool->threads) {
            moak_threadpool_destroy(pool);
            return MOAK_ERR_OUT_OF_MEMORY;
        }
    }
    for (int32_t i = 1; i < pool->n_threads; i++) {
        worker_start *start = malloc(sizeof(*start));
        if (start) {
            start->pool = pool;
            start->index = i;
        }
        if (!start || pthread_create(&pool->threads[i], NULL, worker_main, start) != 0) {
            free(start);
            pool->n_threads = i; /* only join the ones that started */
            moak_threadpool_destroy(pool);
            return MOAK_ERR_OUT_OF_MEMORY;
        }
    }
    /* The calling thread is the application's: it is never pinned (that
     * would also pin every thread it creates later).  Workers take cores
     * 1..n-1 so that the caller, which usually sits on core 0, keeps its own. */
    *out = pool;
    return MOAK_OK;
}

void moak_threadpool_destroy(moak_threadpool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int32_t i = 1; i < pool->n_threads && pool->threads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}

void moak_threadpool_run(void *p, int64_t n_tasks, moak_task_fn fn, void *arg)
{
    moak_threadpool *pool = p;
    if (n_tasks <= 0)
        return;
    if (pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    atomic_store(&pool->next_task, 0);
    pool->running = pool->n_threads - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    run_tasks(pool, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->running > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

int32_t moak_threadpool_size(const moak_threadpool *pool) { return pool->n_threads; }
