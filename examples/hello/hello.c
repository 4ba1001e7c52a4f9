/* hello: a guest that hands arrays to host functions written in Python (examples/hello/host.py). */
#include <bridge.h>
#include <stdio.h>
#include <stdlib.h>

BRIDGE_IMPORT(sum_i32) int64_t sum_i32(const int32_t *xs, size_t n);
BRIDGE_IMPORT(reverse_i32) void reverse_i32(const int32_t *src, int32_t *dst, size_t n);

int main(void) {
    size_t n = 10;
    int32_t *xs = malloc(n * sizeof *xs);
    int32_t *ys = malloc(n * sizeof *ys);
    if (!xs || !ys) return 1;
    for (size_t i = 0; i < n; i++) xs[i] = (int32_t)(i + 1);

    printf("sum of 1..%zu = %lld\n", n, (long long)sum_i32(xs, n));
    reverse_i32(xs, ys, n);
    printf("reversed:");
    for (size_t i = 0; i < n; i++) printf(" %d", (int)ys[i]);
    printf("\n");
    free(xs);
    free(ys);
    return 0;
}
