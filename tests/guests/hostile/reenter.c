/* reenter: guest -> host -> guest -> host ... through the export `descend`.
 *
 * descend(depth) calls the host's `enter` while depth > 0, and the host calls descend(depth - 1)
 * back; at depth 0 it calls the host's `leaf`. Both host functions mark `trail`, a guest array, so the
 * test sees every level ran once. descend(-1) never reaches 0: a recursion bomb that only the stack
 * bound stops. Run as a command, `reenter DEPTH` prints descend(DEPTH) and the trail's sum.
 */
#include <bridge.h>
#include <stdio.h>
#include <stdlib.h>

#define TRAIL 64

BRIDGE_IMPORT(enter) int32_t enter(uint32_t *trail, int32_t depth);
BRIDGE_IMPORT(leaf) int32_t leaf(uint32_t *trail, int32_t depth);

static uint32_t trail[TRAIL];

BRIDGE_EXPORT(descend) int32_t descend(int32_t depth) {
    if (depth == 0) return leaf(trail, depth);
    return enter(trail, depth);
}

BRIDGE_EXPORT(trail_sum) uint32_t trail_sum(void) {
    uint32_t sum = 0;
    for (int i = 0; i < TRAIL; i++) sum += trail[i];
    return sum;
}

int main(int argc, char **argv) {
    int32_t depth = argc > 1 ? (int32_t)atoi(argv[1]) : 5;
    printf("descend(%d) = %d\n", (int)depth, (int)descend(depth));
    printf("trail %u\n", trail_sum());
    return 0;
}
