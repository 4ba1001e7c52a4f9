/* probe: forwards any (pointer, length) pair to the host's checksum, for fuzzing from the host side. */
#include <bridge.h>
#include <stdio.h>

BRIDGE_IMPORT(checksum) uint64_t checksum(const uint8_t *data, size_t n);

BRIDGE_EXPORT(probe) uint64_t probe(uintptr_t ptr, size_t n) {
    return checksum((const uint8_t *)ptr, n);
}

int main(void) {
    static const uint8_t bytes[4] = {1, 2, 3, 4};
    printf("%llu\n", (unsigned long long)checksum(bytes, sizeof bytes));
    return 0;
}
