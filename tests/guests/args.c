/* args: prints its arguments and exits with the count of them, to check argv and exit codes. */
#include <stdio.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    fprintf(stderr, "to stderr\n");
    return argc - 1;
}
