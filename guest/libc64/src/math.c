/* math.c - floating point functions.
 *
 * fabs, sqrt, floor, ceil and trunc are single wasm instructions. exp
 * uses fdlibm's reduction and polynomial (error below 1 ulp); log is
 * computed in double-double (nearly always correctly rounded). pow takes
 * exp(y * log x) with log x and the product in double-double, so it is
 * about as accurate as exp; integer exponents up to 2^20 use repeated
 * squaring in double-double instead, which makes exactly representable
 * results exact (pow(10, 5) == 100000). The float functions go through
 * double, which makes them correctly rounded in practice. sin, cos and tan:
 * see their section. */
#include <math.h>
#include <stdint.h>

#include "fp.h"

double fabs(double x) { return __builtin_fabs(x); }
double sqrt(double x) { return __builtin_sqrt(x); }
double floor(double x) { return __builtin_floor(x); }
double ceil(double x) { return __builtin_ceil(x); }
double trunc(double x) { return __builtin_trunc(x); }
float fabsf(float x) { return __builtin_fabsf(x); }
float sqrtf(float x) { return __builtin_sqrtf(x); }
float floorf(float x) { return __builtin_floorf(x); }
float ceilf(float x) { return __builtin_ceilf(x); }
float truncf(float x) { return __builtin_truncf(x); }

/* ln 2 split so that k * LN2_HI is exact for |k| < 2^21. */
static const double LN2_HI = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
static const double LN2_LO = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */

/* --- exp --- */

/* exp(x + xl) for a tiny correction xl (a double-double argument; exp(x)
 * is exp_dd(x, 0)). fdlibm's method: x + xl = k ln2 + r with |r| <= ln2/2,
 * then exp(r) = 1 + r + r c / (2 - c) with c from a minimax polynomial in
 * r^2. Error below 1 ulp. */
static double exp_dd(double x, double xl)
{
    static const double INV_LN2 = 1.44269504088896338700e+00,
                        P1 = 1.66666666666666019037e-01,
                        P2 = -2.77777777770155933842e-03,
                        P3 = 6.61375632143793436117e-05,
                        P4 = -1.65339022054652515390e-06,
                        P5 = 4.13813679705723846039e-08;
    if (__builtin_isnan(x))
        return x;
    if (x > 709.782712893383973096) /* beyond DBL_MAX, also +inf */
        return HUGE_VAL;
    if (x < -745.13321910194110842) /* below half the least subnormal */
        return 0;
    double k = __builtin_rint(x * INV_LN2);
    double hi = x - k * LN2_HI; /* exact */
    double lo = k * LN2_LO - xl;
    double r = hi - lo;
    double rr = r * r;
    double c = r - rr * (P1 + rr * (P2 + rr * (P3 + rr * (P4 + rr * P5))));
    double y = 1 + (r * c / (2 - c) - lo + hi);
    return scale2(y, (int)k);
}

double exp(double x) { return exp_dd(x, 0); }

/* --- log --- */

/* log(x) as a double-double for finite x > 0, relative error ~2^-64.
 * x = 2^k m with m in [sqrt(1/2), sqrt(2)); with f = m - 1 and
 * s = f / (2 + f), log m = 2 atanh s = 2s + 2s^3/3 + 2s^5/5 + ...
 * (|s| < 0.172). The first two terms are carried in double-double, the
 * rest is small enough for plain double. */
static dd log_dd(double x)
{
    static const dd TWO_THIRDS = {0x1.5555555555555p-1, 0x1.5555555555555p-55};
    int k;
    double m = split_exponent(x, &k);
    if (m < 0.70710678118654752440) {
        m *= 2;
        k--;
    }
    double f = m - 1;         /* exact */
    dd den = two_sum(2, f);   /* 2 + f, exact */
    double s = f / den.hi;
    dd sd = two_prod(s, den.hi);
    double sl = ((f - sd.hi) - sd.lo - s * den.lo) / den.hi; /* s + sl = f / (2 + f) */

    double z = s * s;
    double poly = 0; /* sum over j >= 2 of 2 z^(j-2) / (2j + 1) */
    for (int j = 14; j >= 2; j--)
        poly = poly * z + 2.0 / (2 * j + 1);
    double tail = s * z * z * poly;

    dd s2 = two_prod(s, s);
    dd s3 = two_prod(s2.hi, s);
    s3.lo += s2.lo * s;
    dd t3 = dd_mul(s3, TWO_THIRDS); /* 2s^3/3; its sl part is 2 z sl */

    dd b = two_sum(2 * s, t3.hi);
    dd a = two_sum(k * LN2_HI, b.hi);
    double lo = a.lo + b.lo + (k * LN2_LO + 2 * sl + t3.lo + 2 * z * sl + tail);
    return quick_two_sum(a.hi, lo);
}

double log(double x)
{
    if (__builtin_isnan(x))
        return x;
    if (x < 0)
        return NAN;
    if (x == 0)
        return -HUGE_VAL;
    if (__builtin_isinf(x))
        return x;
    return log_dd(x).hi;
}

/* --- pow --- */

/* x^y for x > 0 and an integer y with |y| <= 2^20, by repeated squaring
 * (of 1/x when y < 0) in double-double. Every value is kept in [0.5, 1)
 * times a separate power of two, so nothing overflows or underflows on the
 * way, and the error stays near |y| 2^-104: results that are doubles come
 * out exact (pow(10, 22) == 1e22) and the rest correctly rounded except
 * in rare near-halfway cases. */
static double pow_int(double x, double y)
{
    int xe, be, re = 0;
    double m = split_exponent(x, &xe);
    dd b = y < 0 ? dd_div_double((dd){1, 0}, m) : (dd){m, 0};
    be = y < 0 ? -xe : xe;
    b = normalize(b, &be);
    dd r = {1, 0}; /* the result is r * 2^re */
    for (uint64_t n = (uint64_t)__builtin_fabs(y);;) {
        if (n & 1) {
            r = normalize(dd_mul(r, b), &re);
            re += be;
        }
        n >>= 1;
        if (!n)
            break;
        be *= 2;
        b = normalize(dd_mul(b, b), &be);
    }
    return scale2(r.hi, re);
}

/* x^y for finite x > 0, x != 1, and finite y != 0, 1. */
static double pow_positive(double x, double y, int y_int)
{
    if (y_int && __builtin_fabs(y) <= 0x1p20)
        return pow_int(x, y);
    if (y == 0.5)
        return __builtin_sqrt(x);
    dd l = log_dd(x);
    double t = y * l.hi;
    /* Far out of range; also keeps two_prod's operands small enough. */
    if (!(__builtin_fabs(t) < 800))
        return t > 0 ? HUGE_VAL : 0;
    dd p = two_prod(y, l.hi);
    return exp_dd(p.hi, p.lo + y * l.lo);
}

double pow(double x, double y)
{
    if (y == 0 || x == 1)
        return 1;
    if (__builtin_isnan(x) || __builtin_isnan(y))
        return x + y;
    if (y == 1)
        return x;
    double ax = __builtin_fabs(x), ay = __builtin_fabs(y);
    if (__builtin_isinf(y)) {
        if (ax == 1) /* pow(-1, +-inf) */
            return 1;
        return (ax < 1) == (y < 0) ? HUGE_VAL : 0;
    }
    int y_int = __builtin_trunc(y) == y;
    /* Doubles >= 2^53 are all even. */
    int y_odd = y_int && ay < 0x1p53 && ((uint64_t)ay & 1);
    double sign = __builtin_signbit(x) && y_odd ? -1 : 1;
    if (ax == 0 || __builtin_isinf(ax)) /* +-0 or +-inf: 0 or inf */
        return sign * ((ax == 0) == (y < 0) ? HUGE_VAL : 0);
    if (x < 0 && !y_int)
        return NAN;
    return sign * pow_positive(ax, y, y_int);
}

/* --- tanh --- */

/* exp(t) - 1 for 0 < t <= 1.1 as a double-double: t + t^2 S with
 * S = 1/2! + t/3! + t^2/4! + ... (20 terms reach double precision). The
 * t^2 S part is at most 45% of the sum, so its rounding errors shrink. */
static dd expm1_small(double t)
{
    double s = 1;
    for (int k = 20; k >= 3; k--)
        s = 1 + s * t / k; /* 2 S = 1 + t/3 (1 + t/4 (1 + ...)) */
    dd t2 = two_prod(t, t);
    return quick_two_sum(t, (t2.hi * s + t2.lo * s) * 0.5);
}

double tanh(double x)
{
    double a = __builtin_fabs(x), r;
    if (__builtin_isnan(x) || a < 0x1p-28) /* tanh x = x(1 - x^2/3 ...) */
        return x;
    if (a < 0.55) {
        /* u / (u + 2) with u = exp(2a) - 1, divided in double-double */
        dd u = expm1_small(2 * a);
        dd den = two_sum(2, u.hi);
        den.lo += u.lo;
        double q = u.hi / den.hi;
        dd p = two_prod(q, den.hi);
        r = q + (((u.hi - p.hi) - p.lo) + u.lo - q * den.lo) / den.hi;
    } else if (a < 22) { /* 1 - 2 / (exp(2a) + 1); no cancellation here */
        r = 1 - 2 / (exp(2 * a) + 1);
    } else { /* within 2^-60 of 1 */
        r = 1;
    }
    return x < 0 ? -r : r;
}

float expf(float x) { return (float)exp(x); }
float logf(float x) { return (float)log(x); }
float powf(float x, float y) { return (float)pow(x, y); }
float tanhf(float x) { return (float)tanh(x); }

/* --- sin, cos, tan ---
 *
 * x is reduced to r = x - k*pi/2, |r| <= pi/4, with pi/2 in three parts
 * (Cody and Waite): k*PIO2_1 is exact while k < 2^20, so results are within
 * about 1 ulp for |x| up to 1e6 (measured against CPython's math); past
 * that the reduction loses bits (relative error near 1e-7 at 1e9, worse
 * beyond). On |r| <= pi/4 the Taylor series to degree 17 (sin) and 18
 * (cos), summed from the small terms up, leave an error near 1e-16. */

static const double PIO2_1 = 0x1.921fb544p+0;          /* pi/2's first 33 bits */
static const double PIO2_2 = 0x1.0b4611a6p-34;         /* its next 33 */
static const double PIO2_3 = 0x1.3198a2e037073p-69;    /* and 53 more */

/* r = x - k*pi/2 with k = round(x * 2/pi); returns k mod 4. */
static int reduce_pio2(double x, double *r)
{
    double k = __builtin_rint(x * 0.63661977236758134308); /* f64.nearest */
    *r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
    return (int)(k - 4.0 * __builtin_floor(k * 0.25)); /* k mod 4, exact for whole k */
}

/* sin r for |r| <= pi/4: r - r^3/3! + r^5/5! - ... - r^17/17! */
static double sin_kernel(double r)
{
    double z = r * r;
    double p = 1.0 / 355687428096000.0;                  /* 1/17! */
    p = p * z - 1.0 / 1307674368000.0;                   /* 1/15! */
    p = p * z + 1.0 / 6227020800.0;                      /* 1/13! */
    p = p * z - 1.0 / 39916800.0;                        /* 1/11! */
    p = p * z + 1.0 / 362880.0;                          /* 1/9! */
    p = p * z - 1.0 / 5040.0;                            /* 1/7! */
    p = p * z + 1.0 / 120.0;                             /* 1/5! */
    p = p * z - 1.0 / 6.0;                               /* 1/3! */
    return r + r * z * p;
}

/* cos r for |r| <= pi/4: 1 - r^2/2! + r^4/4! - ... + r^18/18! */
static double cos_kernel(double r)
{
    double z = r * r;
    double p = -1.0 / 6402373705728000.0;                /* 1/18! */
    p = p * z + 1.0 / 20922789888000.0;                  /* 1/16! */
    p = p * z - 1.0 / 87178291200.0;                     /* 1/14! */
    p = p * z + 1.0 / 479001600.0;                       /* 1/12! */
    p = p * z - 1.0 / 3628800.0;                         /* 1/10! */
    p = p * z + 1.0 / 40320.0;                           /* 1/8! */
    p = p * z - 1.0 / 720.0;                             /* 1/6! */
    p = p * z + 1.0 / 24.0;                              /* 1/4! */
    double h = 0.5 * z;
    return (1.0 - h) + (((1.0 - (1.0 - h)) - h) + z * z * p);
}

double sin(double x)
{
    if (!__builtin_isfinite(x))
        return x - x; /* nan for inf and nan */
    if (__builtin_fabs(x) < 0x1p-26)
        return x;
    double r;
    switch (reduce_pio2(x, &r)) {
    case 0: return sin_kernel(r);
    case 1: return cos_kernel(r);
    case 2: return -sin_kernel(r);
    default: return -cos_kernel(r);
    }
}

double cos(double x)
{
    if (!__builtin_isfinite(x))
        return x - x;
    double r;
    switch (reduce_pio2(x, &r)) {
    case 0: return cos_kernel(r);
    case 1: return -sin_kernel(r);
    case 2: return -cos_kernel(r);
    default: return sin_kernel(r);
    }
}

double tan(double x)
{
    if (!__builtin_isfinite(x))
        return x - x;
    double r;
    int q = reduce_pio2(x, &r);
    double s = sin_kernel(r), c = cos_kernel(r);
    return q & 1 ? -c / s : s / c;
}

float sinf(float x) { return (float)sin(x); }
float cosf(float x) { return (float)cos(x); }
float tanf(float x) { return (float)tan(x); }
