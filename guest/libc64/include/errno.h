/* errno.h - error numbers for wasm64 bridge guests (guest/libc64).
 * The values match WASI's, so a program prints the same numbers whether it
 * is built for wasm32-wasi or for wasm64 with this runtime. */
#ifndef LIBC64_ERRNO_H
#define LIBC64_ERRNO_H

/* Guests are single threaded, so one plain global is enough. */
extern int errno;

#define EDOM 18
#define EILSEQ 25
#define EINVAL 28
#define ENOMEM 48
#define EOVERFLOW 61
#define ERANGE 68

#endif
