/* Private to libc64: floating point helpers for math.c and strtod - bit
 * access, scaling by powers of two, and double-double arithmetic (an
 * unevaluated sum hi + lo with |lo| <= ulp(hi) / 2, about 106 bits). Plain
 * double code: it needs neither FMA nor compiler-rt's soft float. */
#ifndef LIBC64_FP_H
#define LIBC64_FP_H

#include <stdint.h>

/* Every operation below must be rounded on its own. */
#pragma STDC FP_CONTRACT OFF

static inline uint64_t bits_of(double x)
{
    uint64_t u;
    __builtin_memcpy(&u, &x, sizeof u);
    return u;
}

static inline double from_bits(uint64_t u)
{
    double x;
    __builtin_memcpy(&x, &u, sizeof x);
    return x;
}

/* x = m * 2^e with m in [0.5, 1), for finite x > 0. */
static inline double split_exponent(double x, int *e)
{
    int subnormal = x < 0x1p-1022;
    if (subnormal)
        x *= 0x1p54;
    uint64_t u = bits_of(x);
    *e = (int)(u >> 52) - 1022 - (subnormal ? 54 : 0);
    return from_bits((u & ((UINT64_C(1) << 52) - 1)) |
                     UINT64_C(0x3fe0000000000000));
}

/* y * 2^k for y in [0.5, 2), rounding only once, also when the result is
 * subnormal. */
static inline double scale2(double y, int k)
{
    if (k > 1024)
        return __builtin_inf();
    if (k < -1077) /* below half the least subnormal */
        return 0;
    if (k > 1023) { /* split so that each power of two is a double */
        y *= 0x1p1023;
        k -= 1023;
    } else if (k < -1022) {
        y *= 0x1p-969; /* exact: still normal */
        k += 969;
    }
    return y * from_bits((uint64_t)(0x3ff + k) << 52);
}

typedef struct {
    double hi, lo;
} dd;

static inline dd two_sum(double a, double b)
{
    double s = a + b, t = s - a;
    return (dd){s, (a - (s - t)) + (b - t)};
}

static inline dd quick_two_sum(double a, double b) /* needs |a| >= |b| */
{
    double s = a + b;
    return (dd){s, b - (s - a)};
}

/* The exact product (Dekker); needs |a|, |b| < 2^995 so that the split
 * cannot overflow. */
static inline dd two_prod(double a, double b)
{
    const double split = 0x1p27 + 1;
    double p = a * b;
    double ta = split * a, ah = ta - (ta - a), al = a - ah;
    double tb = split * b, bh = tb - (tb - b), bl = b - bh;
    return (dd){p, ((ah * bh - p) + ah * bl + al * bh) + al * bl};
}

static inline dd dd_mul(dd a, dd b)
{
    dd p = two_prod(a.hi, b.hi);
    return quick_two_sum(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi));
}

static inline dd dd_div_double(dd a, double b)
{
    double q = a.hi / b;
    dd p = two_prod(q, b);
    double r = ((a.hi - p.hi) - p.lo) + a.lo; /* a - q b */
    return quick_two_sum(q, r / b);
}

/* v scaled into [0.5, 1) (v.hi must be positive and normal); the power of
 * two taken out is added to *e. */
static inline dd normalize(dd v, int *e)
{
    int x;
    double m = split_exponent(v.hi, &x);
    *e += x;
    return (dd){m, v.lo * from_bits((uint64_t)(1023 - x) << 52)};
}

#endif
