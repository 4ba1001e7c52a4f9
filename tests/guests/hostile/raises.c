/* raises: calls a host function that raises. `raises KIND` prints "before", then calls explode(bytes,
 * 4, KIND): KIND 0 makes the host raise ValueError, 1 a custom exception, 2 return normally. After a
 * raise the guest is trapped, so "not reached" must never print.
 */
#include <bridge.h>
#include <stdio.h>
#include <stdlib.h>

BRIDGE_IMPORT(explode) int32_t explode(const uint8_t *data, size_t n, int32_t kind);

static const uint8_t bytes[4] = {1, 2, 3, 4};

int main(int argc, char **argv) {
    int32_t kind = argc > 1 ? (int32_t)atoi(argv[1]) : 2;
    printf("before\n");
    fflush(stdout);
    int32_t result = explode(bytes, sizeof bytes, kind);
    if (kind == 2) {
        printf("explode returned %d\n", (int)result);
        return 0;
    }
    printf("not reached: %d\n", (int)result);
    return 3;
}
