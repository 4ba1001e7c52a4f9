/* stdlib.c - errno, number parsing (ato*, strto*) and abs. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "fp.h"

int errno;

/* Value of digit c in bases up to 36, or 36 if c is not a digit. */
static int digit_value(int c)
{
    if (isdigit(c))
        return c - '0';
    if (isalpha(c))
        return (c | 0x20) - 'a' + 10;
    return 36;
}

/* The common part of strto[u]l[l]: skips space, reads a sign, a base
 * prefix and digits. Returns the magnitude; *overflow is set if it does not
 * fit in unsigned long long. */
static unsigned long long scan_integer(const char *s, char **end, int base,
                                       int *negative, int *overflow)
{
    const char *p = s;
    *negative = 0;
    *overflow = 0;
    if (base < 0 || base == 1 || base > 36) {
        errno = EINVAL;
        if (end)
            *end = (char *)s;
        return 0;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '+' || *p == '-')
        *negative = *p++ == '-';
    /* "0x" only counts as a prefix if a hex digit follows. */
    if ((base == 0 || base == 16) && p[0] == '0' && (p[1] | 0x20) == 'x' &&
        isxdigit((unsigned char)p[2])) {
        p += 2;
        base = 16;
    } else if (base == 0) {
        base = *p == '0' ? 8 : 10;
    }
    const char *digits = p;
    unsigned long long v = 0;
    for (int d; (d = digit_value((unsigned char)*p)) < base; p++) {
        if (v > (ULLONG_MAX - (unsigned)d) / (unsigned)base)
            *overflow = 1;
        else
            v = v * (unsigned)base + (unsigned)d;
    }
    if (end)
        *end = (char *)(p == digits ? s : p);
    return v;
}

/* Range-checks a magnitude for a signed result in [-max-1, max]. */
static long long to_signed(unsigned long long v, int negative, int overflow,
                           long long max)
{
    unsigned long long limit = (unsigned long long)max + negative;
    if (overflow || v > limit) {
        errno = ERANGE;
        return negative ? -max - 1 : max;
    }
    return negative ? (long long)(0 - v) : (long long)v;
}

/* As C requires, "-n" gives the unsigned negation of n. */
static unsigned long long to_unsigned(unsigned long long v, int negative,
                                      int overflow, unsigned long long max)
{
    if (overflow || v > max) {
        errno = ERANGE;
        return max;
    }
    return negative ? (0 - v) & max : v;
}

long strtol(const char *restrict s, char **restrict end, int base)
{
    int neg, ovf;
    unsigned long long v = scan_integer(s, end, base, &neg, &ovf);
    return (long)to_signed(v, neg, ovf, LONG_MAX);
}

long long strtoll(const char *restrict s, char **restrict end, int base)
{
    int neg, ovf;
    unsigned long long v = scan_integer(s, end, base, &neg, &ovf);
    return to_signed(v, neg, ovf, LLONG_MAX);
}

unsigned long strtoul(const char *restrict s, char **restrict end, int base)
{
    int neg, ovf;
    unsigned long long v = scan_integer(s, end, base, &neg, &ovf);
    return (unsigned long)to_unsigned(v, neg, ovf, ULONG_MAX);
}

unsigned long long strtoull(const char *restrict s, char **restrict end,
                            int base)
{
    int neg, ovf;
    unsigned long long v = scan_integer(s, end, base, &neg, &ovf);
    return to_unsigned(v, neg, ovf, ULLONG_MAX);
}

int atoi(const char *s) { return (int)strtol(s, NULL, 10); }
long atol(const char *s) { return strtol(s, NULL, 10); }
long long atoll(const char *s) { return strtoll(s, NULL, 10); }

/* Case-insensitive match of the lowercase word w at s. */
static int match_word(const char *s, const char *w)
{
    for (; *w; s++, w++)
        if ((*s | 0x20) != *w)
            return 0;
    return 1;
}

/* mant * 10^e10 with |e10| <= 400, scaled in double-double (~104 bits),
 * which makes the result correctly rounded except in rare near-halfway
 * cases. The value is kept in [0.5, 1) times a separate power of two so
 * that nothing overflows on the way. */
static double scale_by_ten(uint64_t mant, int e10)
{
    uint64_t rounded = (uint64_t)(double)mant; /* mant < 10^19 < 2^64 */
    dd v = {(double)mant, (double)(int64_t)(mant - rounded)};
    if (e10 == 0)
        return v.hi;
    int e2 = 0;
    for (int k = e10 < 0 ? -e10 : e10; k > 0;) {
        int step = k < 22 ? k : 22;
        double p = 1;
        for (int i = 0; i < step; i++) /* exact up to 10^22 */
            p *= 10;
        v = normalize(e10 < 0 ? dd_div_double(v, p) : dd_mul(v, (dd){p, 0}), &e2);
        k -= step;
    }
    return scale2(v.hi, e2);
}

/* Decimal and inf/nan input; no hexadecimal floats. Up to 19 significant
 * digits are used (later ones are ignored). */
double strtod(const char *restrict s, char **restrict end)
{
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    int negative = 0;
    if (*p == '+' || *p == '-')
        negative = *p++ == '-';

    double v;
    if (match_word(p, "inf")) {
        p += match_word(p, "infinity") ? 8 : 3;
        v = __builtin_inf();
    } else if (match_word(p, "nan")) {
        p += 3;
        if (*p == '(') { /* nan(n-char-sequence) */
            const char *q = p + 1;
            while (isalnum((unsigned char)*q) || *q == '_')
                q++;
            if (*q == ')')
                p = q + 1;
        }
        v = __builtin_nan("");
    } else {
        unsigned long long mant = 0;
        int ndigits = 0, any = 0;
        long exp10 = 0;
        for (int seen_point = 0;; p++) {
            if (*p == '.' && !seen_point) {
                seen_point = 1;
                continue;
            }
            if (!isdigit((unsigned char)*p))
                break;
            any = 1;
            if (ndigits < 19) {
                mant = mant * 10 + (unsigned)(*p - '0');
                ndigits += mant != 0; /* leading zeros are not significant */
                exp10 -= seen_point;
            } else {
                exp10 += !seen_point;
            }
        }
        if (!any) {
            if (end)
                *end = (char *)s;
            return 0;
        }
        if ((*p | 0x20) == 'e') {
            const char *q = p + 1;
            int eneg = 0;
            if (*q == '+' || *q == '-')
                eneg = *q++ == '-';
            if (isdigit((unsigned char)*q)) {
                long e = 0;
                for (; isdigit((unsigned char)*q); q++)
                    if (e < 100000) /* far beyond any double */
                        e = e * 10 + (*q - '0');
                exp10 += eneg ? -e : e;
                p = q;
            }
        }
        if (mant == 0 || exp10 < -400) {
            v = 0;
        } else if (exp10 > 400) {
            v = __builtin_inf();
        } else {
            v = scale_by_ten(mant, (int)exp10);
        }
        if ((v == 0 && mant != 0) || __builtin_isinf(v))
            errno = ERANGE;
    }
    if (end)
        *end = (char *)p;
    return negative ? -v : v;
}

float strtof(const char *restrict s, char **restrict end)
{
    return (float)strtod(s, end);
}

double atof(const char *s) { return strtod(s, NULL); }

int abs(int x) { return x < 0 ? -x : x; }
long labs(long x) { return x < 0 ? -x : x; }
long long llabs(long long x) { return x < 0 ? -x : x; }
