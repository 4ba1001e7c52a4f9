/* assert.h - assert() for wasm64 bridge guests (guest/libc64).
 * A failed assertion prints "file:line: function: Assertion `expr' failed."
 * to stderr and aborts (exit code 134).
 *
 * Deliberately no include guard: like every assert.h, each inclusion
 * re-reads NDEBUG. Note that `zig cc -O2` defines NDEBUG. */

#undef assert

#ifdef NDEBUG
#define assert(expr) ((void)0)
#else
_Noreturn void __assert_fail(const char *expr, const char *file, int line,
                             const char *func);
#define assert(expr) \
    ((expr) ? (void)0 : __assert_fail(#expr, __FILE__, __LINE__, __func__))
#endif

#ifndef __cplusplus
#undef static_assert
#define static_assert _Static_assert
#endif
