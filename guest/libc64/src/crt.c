/* crt.c - program start and end: _start gathers the host's arguments into
 * argv and runs main; exit() runs atexit handlers and flushes stdio before
 * handing the status to the host. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bridge_sys.h"

/* Where main lives depends on how the program was compiled:
 *  - freestanding (the default for wasm64-freestanding): the symbol is
 *    `main` and always has the (argc, argv) signature, because for
 *    `int main(void)` the wasm backend adds a `main` wrapper that takes and
 *    ignores them;
 *  - hosted (-fhosted): clang renames `int main(int, char **)` to
 *    __main_argc_argv (and `int main(void)` still gets the wrapper).
 * Both are weak references so that whichever exists gets called. The asm
 * label keeps clang from treating the declaration as main itself. */
extern int __main_argc_argv(int argc, char **argv) __attribute__((weak));
extern int __libc64_main(int argc, char **argv) __asm__("main")
    __attribute__((weak));

/* Synthesized by the linker: runs __attribute__((constructor)) functions. */
extern void __wasm_call_ctors(void);

#define ATEXIT_MAX 32
static void (*atexit_funcs[ATEXIT_MAX])(void);
static int atexit_count;

/* Like wasi-libc, report a start-up failure with EX_SOFTWARE. */
static _Noreturn void startup_failure(const char *why)
{
    fputs(why, stderr);
    _Exit(70);
}

static char **collect_args(int *argc_out)
{
    int32_t argc = __bridge_args_count();
    if (argc < 0)
        argc = 0;
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    if (!argv)
        startup_failure("libc64: out of memory for argv\n");
    for (int32_t i = 0; i < argc; i++) {
        int32_t len = __bridge_arg_get((uint32_t)i, NULL, 0);
        char *s = len < 0 ? NULL : malloc((size_t)len + 1);
        if (!s || __bridge_arg_get((uint32_t)i, s, (size_t)len) != len)
            startup_failure("libc64: cannot read program arguments\n");
        s[len] = '\0';
        argv[i] = s;
    }
    *argc_out = argc;
    return argv;
}

void _start(void);

__attribute__((export_name("_start"))) void _start(void)
{
    __wasm_call_ctors();
    int argc;
    char **argv = collect_args(&argc);
    exit(__main_argc_argv ? __main_argc_argv(argc, argv)
                          : __libc64_main(argc, argv));
}

int atexit(void (*func)(void))
{
    if (atexit_count == ATEXIT_MAX)
        return -1;
    atexit_funcs[atexit_count++] = func;
    return 0;
}

_Noreturn void exit(int status)
{
    /* Reverse order of registration; a handler may register another. */
    while (atexit_count > 0)
        atexit_funcs[--atexit_count]();
    fflush(NULL);
    __bridge_exit(status);
}

_Noreturn void _Exit(int status) { __bridge_exit(status); }

/* Bypasses stdio so that it works whatever state stdio is in. */
_Noreturn void abort(void)
{
    __bridge_write(2, "abort\n", 6);
    __bridge_exit(134);
}
