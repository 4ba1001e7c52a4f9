/* writer: reads data/in.txt, then tries to write data/out.txt; exits 3 when the write is refused. */
#include <stdio.h>

int main(void) {
    char line[128];
    FILE *in = fopen("data/in.txt", "r");
    if (!in || !fgets(line, sizeof line, in)) {
        printf("cannot read data/in.txt\n");
        return 2;
    }
    fclose(in);
    printf("read: %s", line);
    FILE *out = fopen("data/out.txt", "w");
    if (!out) {
        printf("cannot write data/out.txt\n");
        return 3;
    }
    fputs("written\n", out);
    fclose(out);
    printf("wrote data/out.txt\n");
    return 0;
}
