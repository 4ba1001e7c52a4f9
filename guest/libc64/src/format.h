/* Private to libc64: the printf engine (printf.c) and the exact decimal
 * expansion of doubles it uses (dtoa.c). */
#ifndef LIBC64_FORMAT_H
#define LIBC64_FORMAT_H

#include <stdarg.h>
#include <stddef.h>

/* Receives the engine's output piece by piece. Callers embed it as the first
 * member of a struct that holds their own state. */
struct fmt_sink {
    void (*put)(struct fmt_sink *sink, const char *s, size_t n);
};

/* Formats like vprintf, sending the output to sink. Returns the number of
 * bytes produced, or -1 with errno = EOVERFLOW if that exceeds INT_MAX. */
int __libc64_vformat(struct fmt_sink *sink, const char *fmt, va_list ap);

/* Base-1e9 limbs needed for the largest exact expansion, that of
 * m * 5^1074 with m < 2^53 (the smallest doubles): 767 digits. */
#define DECIMAL_LIMBS 86

/* A finite non-negative double as decimal digits:
 * value = d[0].d[1]d[2]...d[n-1] x 10^exp10, with d[0] != '0' and no
 * trailing '0' in d. n == 0 means the value is zero. */
struct decimal {
    int n;
    int exp10;
    char d[DECIMAL_LIMBS * 9];
};

/* Exact expansion of v, which must be finite and >= 0. */
void __libc64_decimal_from_double(struct decimal *dec, double v);

/* Rounds to `keep` significant digits (half to even, like glibc), which
 * may drop every digit (keep <= 0) and leave zero. */
void __libc64_decimal_round(struct decimal *dec, long long keep);

/* The digit ('0'..'9') with place value 10^pos. */
static inline char __libc64_decimal_digit(const struct decimal *dec,
                                          long long pos)
{
    long long i = dec->exp10 - pos;
    return i >= 0 && i < dec->n ? dec->d[i] : '0';
}

#endif
