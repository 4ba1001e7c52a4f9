/* stdio.h - standard I/O for wasm64 bridge guests (guest/libc64).
 *
 * stdout is line buffered, stderr is unbuffered, and both end up in the
 * host's bridge.write; stdin reads what the host gives the guest as its
 * stdin (bridge.read). There is no file system: no fopen. */
#ifndef LIBC64_STDIO_H
#define LIBC64_STDIO_H

#include <stddef.h>

#define EOF (-1)
#define BUFSIZ 1024

typedef struct __libc64_file FILE;

extern FILE *const stdin;
extern FILE *const stdout;
extern FILE *const stderr;
/* The standard requires these to be macros. */
#define stdin (stdin)
#define stdout (stdout)
#define stderr (stderr)

int fputc(int c, FILE *stream);
int putc(int c, FILE *stream);
int putchar(int c);
int fputs(const char *restrict s, FILE *restrict stream);
int puts(const char *s);
size_t fwrite(const void *restrict ptr, size_t size, size_t nmemb,
              FILE *restrict stream);
int fflush(FILE *stream);

int fgetc(FILE *stream);
int getc(FILE *stream);
int getchar(void);
char *fgets(char *restrict s, int n, FILE *restrict stream);
int feof(FILE *stream);
int ferror(FILE *stream);
void clearerr(FILE *stream);

/* No file system on wasm64 (WASI preview 1, which gives one, is 32-bit only): naming these is a compile
 * error that says so. Build for wasm32 to use files (`--dir` grants them). */
#define LIBC64_NO_FILES __attribute__((unavailable("wasm64 guests have no file system; build for wasm32")))
FILE *fopen(const char *restrict path, const char *restrict mode) LIBC64_NO_FILES;
FILE *freopen(const char *restrict path, const char *restrict mode, FILE *restrict stream) LIBC64_NO_FILES;
int fclose(FILE *stream) LIBC64_NO_FILES;
int remove(const char *path) LIBC64_NO_FILES;
int rename(const char *from, const char *to) LIBC64_NO_FILES;

int printf(const char *restrict fmt, ...)
    __attribute__((format(printf, 1, 2)));
int fprintf(FILE *restrict stream, const char *restrict fmt, ...)
    __attribute__((format(printf, 2, 3)));
int sprintf(char *restrict s, const char *restrict fmt, ...)
    __attribute__((format(printf, 2, 3)));
int snprintf(char *restrict s, size_t n, const char *restrict fmt, ...)
    __attribute__((format(printf, 3, 4)));
int vprintf(const char *restrict fmt, __builtin_va_list ap)
    __attribute__((format(printf, 1, 0)));
int vfprintf(FILE *restrict stream, const char *restrict fmt,
             __builtin_va_list ap) __attribute__((format(printf, 2, 0)));
int vsprintf(char *restrict s, const char *restrict fmt, __builtin_va_list ap)
    __attribute__((format(printf, 2, 0)));
int vsnprintf(char *restrict s, size_t n, const char *restrict fmt,
              __builtin_va_list ap) __attribute__((format(printf, 3, 0)));

#endif
