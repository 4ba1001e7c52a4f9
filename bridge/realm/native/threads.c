/* The process-wide compute pool: worker threads shared by every tenant and every kernel call.
 *
 * Why not OpenMP: libgomp keeps its workers hot only for the process's first thread; a parallel region
 * started from any other thread (every tenant runs on its own) paid about 50 µs to wake them, four times
 * a small matrix product. Here any thread can submit, and the workers behave the same for all.
 *
 * A worker spins for SPIN_NS after its last part (a decode step's next region comes within
 * microseconds), yielding the core to any other runnable thread as it spins, then sleeps on a condition
 * variable, so an idle process leaves the cores to others.
 * Jobs are split statically into contiguous parts, as `omp for schedule(static)` did: each row or head is
 * computed whole by one thread, so results do not depend on the thread count.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "threads.h"

#define MAX_WORKERS 255
#define SPIN_NS 200000 /* 0.2 ms */

static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static atomic_uint_fast64_t generation; /* bumped once per job, after the job is written */
static atomic_int remaining;            /* workers yet to finish the current job */
static int n_workers;                   /* started so far; only grows (under submit_lock) */
static bridge_task job_task;
static void *job_ctx;
static int64_t job_n;
static int job_parts;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void run_part(int part) {
    const int64_t begin = job_n * part / job_parts, end = job_n * (part + 1) / job_parts;
    if (begin < end) job_task(job_ctx, begin, end);
}

/* The generation each worker was started at: read before any job it must take part in is published. */
static uint_fast64_t start_generation[MAX_WORKERS];

static void *worker(void *arg) {
    const int index = (int)(intptr_t)arg; /* the caller does part 0; worker i does part i + 1 */
    uint_fast64_t seen = start_generation[index];
    for (;;) {
        uint_fast64_t gen;
        const int64_t spin_until = now_ns() + SPIN_NS;
        for (int k = 1; (gen = atomic_load_explicit(&generation, memory_order_acquire)) == seen; k++) {
            if (k % 64 == 0) sched_yield(); /* other runnable threads (tenants) get the core first */
            if (k % 256 == 0 && now_ns() > spin_until) {
                pthread_mutex_lock(&sleep_lock);
                while ((gen = atomic_load_explicit(&generation, memory_order_acquire)) == seen)
                    pthread_cond_wait(&wake, &sleep_lock);
                pthread_mutex_unlock(&sleep_lock);
                break;
            }
            cpu_relax();
        }
        seen = gen;
        if (index + 1 < job_parts) run_part(index + 1);
        atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel);
    }
    return NULL;
}

/* A child of fork() has none of the parent's threads: it starts its own pool when it needs one. */
static void after_fork_in_child(void) {
    pthread_mutex_init(&submit_lock, NULL);
    pthread_mutex_init(&sleep_lock, NULL);
    pthread_cond_init(&wake, NULL);
    n_workers = 0;
}

static void register_fork_handler(void) { pthread_atfork(NULL, NULL, after_fork_in_child); }

static void start_workers(int wanted) {
    if (wanted > MAX_WORKERS) wanted = MAX_WORKERS;
    if (n_workers >= wanted) return;
    pthread_once(&fork_once, register_fork_handler);
    /* Workers take no signals: Python handles them on its main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (n_workers < wanted) {
        pthread_t thread;
        pthread_attr_t attr;
        start_generation[n_workers] = atomic_load_explicit(&generation, memory_order_acquire);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int failed = pthread_create(&thread, &attr, worker, (void *)(intptr_t)n_workers);
        pthread_attr_destroy(&attr);
        if (failed) break; /* fewer workers: the jobs still run, in fewer parts */
        n_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void bridge_parallel_for(bridge_task task, void *ctx, int64_t n, int n_threads) {
    if (n_threads <= 1 || n <= 1) {
        if (n > 0) task(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&submit_lock);
    start_workers(n_threads - 1);
    int parts = n_threads < n_workers + 1 ? n_threads : n_workers + 1;
    if (parts > n) parts = (int)n;
    job_task = task;
    job_ctx = ctx;
    job_n = n;
    job_parts = parts;
    atomic_store_explicit(&remaining, n_workers, memory_order_relaxed);
    pthread_mutex_lock(&sleep_lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
    run_part(0);
    for (int k = 1; atomic_load_explicit(&remaining, memory_order_acquire) > 0; k++) {
        if (k % 64 == 0) sched_yield(); /* a worker that lost its core gets it back */
        cpu_relax();
    }
    pthread_mutex_unlock(&submit_lock);
}
