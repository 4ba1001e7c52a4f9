/* The process-wide compute pool behind the native kernels (threads.c). */
#include <stdint.h>

typedef void (*bridge_task)(void *ctx, int64_t begin, int64_t end);

/* Runs task(ctx, begin, end) over [0, n) in at most n_threads contiguous parts, the calling thread doing
 * the first; returns when every part is done. One job runs at a time in the process. */
void bridge_parallel_for(bridge_task task, void *ctx, int64_t n, int n_threads);
