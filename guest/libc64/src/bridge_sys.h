/* Private to libc64: the host functions the runtime imports from wasm
 * module "bridge". They are the guest's only way out of the sandbox. */
#ifndef LIBC64_BRIDGE_SYS_H
#define LIBC64_BRIDGE_SYS_H

#include <stddef.h>
#include <stdint.h>

/* Writes len bytes at ptr to host fd 1 or 2; returns the number of bytes
 * written (possibly fewer than len) or a negative value on error. */
__attribute__((import_module("bridge"), import_name("write")))
int32_t __bridge_write(int32_t fd, const void *ptr, size_t len);

/* Reads up to cap bytes of host fd 0 (the guest's stdin) into out; returns
 * the number read, 0 at end of input, or a negative value on error. */
__attribute__((import_module("bridge"), import_name("read")))
int32_t __bridge_read(int32_t fd, void *out, size_t cap);

/* Ends the guest with the given exit code. */
__attribute__((import_module("bridge"), import_name("exit")))
_Noreturn void __bridge_exit(int32_t code);

/* argc, including argv[0]. */
__attribute__((import_module("bridge"), import_name("args_count")))
int32_t __bridge_args_count(void);

/* Returns the byte length of argument `index` (no NUL) and writes its bytes
 * to out only if that length is <= cap; -1 if index is out of range. */
__attribute__((import_module("bridge"), import_name("arg_get")))
int32_t __bridge_arg_get(uint32_t index, char *out, size_t cap);

#endif
