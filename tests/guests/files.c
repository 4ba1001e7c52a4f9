/* files: reads data/in.txt and prints $GREETING; only works with --dir and --env. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *greeting = getenv("GREETING");
    printf("greeting: %s\n", greeting ? greeting : "(unset)");
    FILE *f = fopen("data/in.txt", "r");
    if (!f) {
        printf("cannot open data/in.txt\n");
        return 1;
    }
    char line[128];
    if (fgets(line, sizeof line, f)) printf("read: %s", line);
    fclose(f);
    return 0;
}
