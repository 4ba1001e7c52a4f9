/* oom: allocates 1 MiB blocks, touching each, until the allocator says no; exits 12 then. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every block is linked from here, so the compiler cannot drop the allocations as unused. */
static void *volatile newest;

int main(void) {
    for (int mib = 0;; mib++) {
        void **block = malloc(1 << 20);
        if (!block) {
            fprintf(stderr, "oom: out of memory after %d MiB\n", mib);
            return 12;
        }
        memset(block, 1, 1 << 20);
        block[0] = newest;
        newest = block;
    }
}
