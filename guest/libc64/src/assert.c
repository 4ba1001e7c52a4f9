/* assert.c - the failure path of assert(). */
#undef NDEBUG /* for the prototype in assert.h */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

_Noreturn void __assert_fail(const char *expr, const char *file, int line,
                             const char *func)
{
    fprintf(stderr, "%s:%d: %s: Assertion `%s' failed.\n", file, line, func,
            expr);
    abort();
}
