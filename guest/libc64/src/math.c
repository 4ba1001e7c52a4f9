/* math.c - floating point functions.
 *
 * fabs, sqrt, floor, ceil and trunc are single wasm instructions. exp and
 * log follow the classic fdlibm reductions; pow evaluates exp(y * log x)
 * with log x and the product carried in double-double, so the result is
 * about as accurate as exp itself (within 1 ulp), and integer powers of
 * moderate size are computed by exact-ish repeated squaring (so pow(10, 5)
 * is exactly 100000). The float functions go through double. */
#include <math.h>
#include <stdint.h>

/* The double-double code needs every operation rounded on its own. */
#pragma STDC FP_CONTRACT OFF

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

static uint64_t bits_of(double x)
{
    uint64_t u;
    __builtin_memcpy(&u, &x, sizeof u);
    return u;
}

static double from_bits(uint64_t u)
{
    double x;
    __builtin_memcpy(&x, &u, sizeof x);
    return x;
}

/* --- double-double: the unevaluated sum hi + lo, |lo| <= ulp(hi) / 2 --- */

typedef struct {
    double hi, lo;
} dd;

static dd two_sum(double a, double b)
{
    double s = a + b, t = s - a;
    return (dd){s, (a - (s - t)) + (b - t)};
}

static dd quick_two_sum(double a, double b) /* needs |a| >= |b| */
{
    double s = a + b;
    return (dd){s, b - (s - a)};
}

/* The exact product (Dekker); needs |a|, |b| < 2^995 so that the split
 * cannot overflow. */
static dd two_prod(double a, double b)
{
    const double split = 0x1p27 + 1;
    double p = a * b;
    double ta = split * a, ah = ta - (ta - a), al = a - ah;
    double tb = split * b, bh = tb - (tb - b), bl = b - bh;
    return (dd){p, ((ah * bh - p) + ah * bl + al * bh) + al * bl};
}

static dd dd_mul(dd a, dd b)
{
    dd p = two_prod(a.hi, b.hi);
    return quick_two_sum(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi));
}

/* ln 2 split so that k * LN2_HI is exact for |k| < 2^21. */
static const double LN2_HI = 6.93147180369123816490e-01; /* 0x3fe62e42fee00000 */
static const double LN2_LO = 1.90821492927058770002e-10; /* 0x3dea39ef35793c76 */

/* --- exp --- */

/* y * 2^k for y near 1 and |k| <= 1100, rounding only once even when the
 * result is subnormal. */
static double scale2(double y, int k)
{
    if (k > 1023) {
        y *= 0x1p1023;
        k -= 1023;
    } else if (k < -1022) {
        y *= 0x1p-969; /* still normal; the final multiply rounds */
        k += 969;
    }
    return y * from_bits((uint64_t)(0x3ff + k) << 52);
}

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
    int k = 0;
    if (x < 0x1p-1022) { /* subnormal: scale into the normal range */
        x *= 0x1p54;
        k = -54;
    }
    uint64_t u = bits_of(x);
    k += (int)(u >> 52) - 1022; /* x = 2^k m, m in [0.5, 1) */
    double m = from_bits((u & ((UINT64_C(1) << 52) - 1)) | UINT64_C(0x3fe0000000000000));
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

/* x^n for x > 0 and integer n = |y|, by repeated squaring in double-double;
 * the caller keeps every intermediate within 2^-990..2^990. A negative y
 * takes the reciprocal with one Newton step, again to ~100 bits. */
static double pow_int(double x, double y)
{
    uint64_t n = (uint64_t)__builtin_fabs(y);
    dd r = {1, 0}, b = {x, 0};
    for (;;) {
        if (n & 1)
            r = dd_mul(r, b);
        n >>= 1;
        if (!n)
            break;
        b = dd_mul(b, b);
    }
    if (y > 0)
        return r.hi;
    double q = 1 / r.hi;
    dd p = two_prod(q, r.hi);
    double e = ((1 - p.hi) - p.lo) - q * r.lo; /* 1 - q r */
    return q + q * e;
}

/* x^y for finite x > 0, x != 1, and finite y != 0, 1. */
static double pow_positive(double x, double y, int y_int)
{
    double ay = __builtin_fabs(y);
    if (y_int && ay <= 990) {
        /* x in [2^(e-1), 2^e), so |log2 x| <= max(|e|, |e - 1|). */
        int e = (int)(bits_of(x) >> 52) - 1022;
        int mag = e > 0 ? e : 1 - e;
        if (ay * mag <= 990)
            return pow_int(x, y);
    }
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

/* exp(t) - 1 for 0 < t <= 1.1 from its Taylor series; 20 terms are
 * enough for double precision, and there is no cancellation. */
static double expm1_taylor(double t)
{
    double sum = 1;
    for (int k = 20; k >= 2; k--)
        sum = 1 + sum * t / k;
    return t * sum;
}

double tanh(double x)
{
    double a = __builtin_fabs(x), r;
    if (__builtin_isnan(x) || a < 0x1p-28) /* tanh x = x(1 - x^2/3 ...) */
        return x;
    if (a < 0.55) { /* tanh a = u / (u + 2) with u = exp(2a) - 1 */
        double u = expm1_taylor(2 * a);
        r = u / (u + 2);
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
