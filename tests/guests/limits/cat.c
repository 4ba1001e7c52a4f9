/* cat: copies stdin to stdout and says how many bytes it read. */
#include <stdio.h>

int main(void) {
    char buf[256];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        fwrite(buf, 1, n, stdout);
        total += n;
    }
    printf("[%zu bytes]\n", total);
    return 0;
}
