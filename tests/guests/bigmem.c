/* bigmem: a wasm64 guest that grows its memory past 6 GiB and uses addresses on both sides of 4 GiB.
 *
 * At the first byte, just below and just above 4 GiB, and at the last byte, it writes a byte and
 * reads it back, then hands the host a range straddling that address: the host (bigmem_host.py) sums
 * the bytes through its view and overwrites them, and the guest checks both. Only the pages around
 * those addresses are touched, so the process's resident memory stays small.
 */
#include <bridge.h>
#include <stdio.h>

BRIDGE_IMPORT(sum_and_fill) uint64_t sum_and_fill(uint8_t *bytes, size_t n, uint32_t value);

#define PAGE 65536ull
#define GiB (1ull << 30)

static int check(uint64_t address, uint64_t size) {
    /* A range of 16 bytes around `address`, kept inside memory. */
    uint64_t start = address >= 8 ? address - 8 : 0;
    if (start + 16 > size) start = size - 16;
    volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)start;
    uint64_t expected = 0;
    for (int i = 0; i < 16; i++) {
        p[i] = (uint8_t)(i + 1);
        expected += (uint64_t)(i + 1);
    }
    volatile uint8_t *at = (volatile uint8_t *)(uintptr_t)address;
    if (*at != (uint8_t)(address - start + 1)) {
        printf("FAIL read back at %#llx\n", (unsigned long long)address);
        return 1;
    }
    uint64_t sum = sum_and_fill((uint8_t *)(uintptr_t)start, 16, 0xA5);
    for (int i = 0; i < 16; i++) {
        if (p[i] != 0xA5) {
            printf("FAIL host write at %#llx\n", (unsigned long long)(start + i));
            return 1;
        }
    }
    if (sum != expected) {
        printf("FAIL host read at %#llx: %llu\n", (unsigned long long)start, (unsigned long long)sum);
        return 1;
    }
    printf("ok %#llx\n", (unsigned long long)address);
    return 0;
}

int main(void) {
    uint64_t want = 6 * GiB + 16 * PAGE;
    uint64_t have = __builtin_wasm_memory_size(0) * PAGE;
    if (__builtin_wasm_memory_grow(0, (want - have) / PAGE) == (size_t)-1) {
        printf("FAIL memory.grow to %llu bytes\n", (unsigned long long)want);
        return 2;
    }
    uint64_t size = __builtin_wasm_memory_size(0) * PAGE;
    printf("memory %llu bytes\n", (unsigned long long)size);
    /* The first byte: saved and restored, since the runtime's data may live there. */
    volatile uint8_t *first = (volatile uint8_t *)(uintptr_t)(size - size);
    uint8_t saved = *first;
    *first = 0x5A;
    int failures = *first != 0x5A;
    *first = saved;
    printf("%s 0x0\n", failures ? "FAIL" : "ok");
    uint64_t addresses[] = {4 * GiB - 1, 4 * GiB, 4 * GiB + 1, size - 1};
    for (unsigned i = 0; i < sizeof addresses / sizeof addresses[0]; i++) failures += check(addresses[i], size);
    return failures;
}
