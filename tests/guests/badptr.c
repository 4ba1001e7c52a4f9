/* badptr: hands the host a range that lies outside its memory; the host must trap it, not crash. */
#include <bridge.h>
#include <stdio.h>

BRIDGE_IMPORT(checksum) uint64_t checksum(const uint8_t *data, size_t n);

int main(void) {
    printf("before\n");
    unsigned long long sum = checksum((const uint8_t *)(uintptr_t)0xfffffff0u, 64);
    printf("not reached: %llu\n", sum);
    return 0;
}
