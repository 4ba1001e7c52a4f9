/* oob: hands host functions pointer ranges that lie outside its memory, one case per run.
 *
 * `oob CASE` prints "case CASE", then "memory N" (its memory size in bytes, measured after its own
 * output buffers exist, so the call sees the same size), then makes the one hostile call. Every case
 * but zero-length-at-end must trap in the host, so nothing after the call may print. The host side is
 * oob_host.py. The same source builds for wasm32 and wasm64: pointers and size_t follow the target.
 */
#include <bridge.h>
#include <stdio.h>
#include <string.h>

BRIDGE_IMPORT(checksum) uint64_t checksum(const uint8_t *data, size_t n);
BRIDGE_IMPORT(fill) void fill(uint8_t *dst, size_t n, uint32_t value);
BRIDGE_IMPORT(sum_f64) double sum_f64(const double *xs, size_t n);
BRIDGE_IMPORT(sum_grid) double sum_grid(const double *xs, uint32_t rows, uint32_t cols);
BRIDGE_IMPORT(copy_u32) void copy_u32(const uint32_t *src, uint32_t *dst, size_t n);
BRIDGE_IMPORT(peek) uint32_t peek(const void *p, size_t n);
BRIDGE_IMPORT(head) uint32_t head(const uint8_t *xs, int32_t n);
BRIDGE_IMPORT(shout) int32_t shout(const char *text, size_t len);

#define BITS (sizeof(uintptr_t) * 8)
#define TOP ((uintptr_t)-1)                   /* 0xffffffff, or 0xffffffffffffffff on wasm64 */
#define HIGH ((uintptr_t)1 << (BITS - 1))     /* only the high bit: negative as a signed int */
#define AT(address) ((void *)(uintptr_t)(address))

static uint32_t words[8] = {1, 2, 3, 4, 5, 6, 7, 8};

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: oob CASE\n");
        return 2;
    }
    const char *c = argv[1];
    printf("case %s\n", c);
    fflush(stdout);
    uintptr_t size = (uintptr_t)__builtin_wasm_memory_size(0) * 65536;
    printf("memory %llu\n", (unsigned long long)size);
    fflush(stdout);

    if (!strcmp(c, "past-end")) {
        checksum(AT(size), 1);
    } else if (!strcmp(c, "straddle-end")) {
        checksum(AT(size - 8), 16);
    } else if (!strcmp(c, "wrap")) {
        checksum(AT(TOP - 15), 32); /* ptr + n wraps around to 16 */
    } else if (!strcmp(c, "high-bit")) {
        checksum(AT(HIGH), 4);
    } else if (!strcmp(c, "pointer-minus-1")) {
        checksum(AT(TOP), 1); /* the pointer -1 */
    } else if (!strcmp(c, "huge-length")) {
        checksum(AT(16), TOP);
    } else if (!strcmp(c, "length-times-itemsize-overflow")) {
        sum_f64(AT(64), (size_t)1 << (BITS - 3)); /* n * 8 bytes wraps around to 0 */
    } else if (!strcmp(c, "count-expression-overflow")) {
        sum_grid(AT(64), 0x10000u, 0x10000u); /* rows * cols wraps around to 0 in u32 */
    } else if (!strcmp(c, "zero-length-past-end")) {
        checksum(AT(size + 1), 0);
    } else if (!strcmp(c, "output-past-end")) {
        memset(AT(size - 4), 0x11, 4);
        fill(AT(size - 4), 8, 0xAA); /* half inside: nothing may be written */
    } else if (!strcmp(c, "ptr-via-ctx-view")) {
        peek(AT(size - 2), 4);
    } else if (!strcmp(c, "negative-count")) {
        head(AT(16), -1);
    } else if (!strcmp(c, "utf8-past-end")) {
        shout(AT(size - 2), 4);
    } else if (!strcmp(c, "overlap")) {
        copy_u32(words, words + 1, 4);
    } else if (!strcmp(c, "zero-length-at-end")) {
        /* Allowed: an empty range that ends exactly at the end of memory. */
        printf("checksum %llu\n", (unsigned long long)checksum(AT(size), 0));
        printf("head %u\n", head(AT(size), 0));
        return 0;
    } else {
        printf("unknown case %s\n", c);
        return 2;
    }
    printf("not reached\n");
    return 3;
}
