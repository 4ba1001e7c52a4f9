/* dtoa.c - exact decimal expansion of doubles for printf.
 *
 * A double is m * 2^e with integer m. For e >= 0 that is an integer; for
 * e < 0 it equals m * 5^-e / 10^-e. Either way one big integer (base 1e9
 * limbs) holds every decimal digit exactly, so %f/%e/%g can round at any
 * position without error. */
#include <stdint.h>

#include "format.h"

#define LIMB_BASE 1000000000u

struct bignum {
    int len;
    uint32_t limb[DECIMAL_LIMBS]; /* little endian, each < LIMB_BASE */
};

/* b *= f for f < 2^31. */
static void big_mul(struct bignum *b, uint32_t f)
{
    uint64_t carry = 0;
    for (int i = 0; i < b->len; i++) {
        uint64_t t = (uint64_t)b->limb[i] * f + carry;
        b->limb[i] = (uint32_t)(t % LIMB_BASE);
        carry = t / LIMB_BASE;
    }
    while (carry) {
        b->limb[b->len++] = (uint32_t)(carry % LIMB_BASE);
        carry /= LIMB_BASE;
    }
}

void __libc64_decimal_from_double(struct decimal *dec, double v)
{
    uint64_t bits = 0;
    __builtin_memcpy(&bits, &v, sizeof bits);
    uint64_t m = bits & ((UINT64_C(1) << 52) - 1);
    int e = (int)(bits >> 52 & 0x7ff);

    dec->n = 0;
    dec->exp10 = 0;
    if (e == 0 && m == 0)
        return;
    if (e == 0) {
        e = -1074; /* subnormal */
    } else {
        m |= UINT64_C(1) << 52;
        e -= 1075;
    }
    /* Fewer factors of two in m means fewer multiplications below. */
    int tz = __builtin_ctzll(m);
    m >>= tz;
    e += tz;

    struct bignum b = {0, {0}};
    while (m) {
        b.limb[b.len++] = (uint32_t)(m % LIMB_BASE);
        m /= LIMB_BASE;
    }
    int scale10 = 0; /* v = b * 10^scale10 */
    if (e > 0) {
        for (; e > 0; e -= 29)
            big_mul(&b, UINT32_C(1) << (e < 29 ? e : 29));
    } else {
        scale10 = e;
        for (int k = -e; k > 0; k -= 13) { /* 5^13 < 2^31 */
            uint32_t f = 1;
            for (int i = 0; i < (k < 13 ? k : 13); i++)
                f *= 5;
            big_mul(&b, f);
        }
    }

    /* Most significant limb without leading zeros, the others 9 digits. */
    char *p = dec->d;
    uint32_t top = b.limb[b.len - 1];
    char tmp[9];
    int t = 0;
    do {
        tmp[t++] = (char)('0' + top % 10);
        top /= 10;
    } while (top);
    while (t)
        *p++ = tmp[--t];
    for (int i = b.len - 2; i >= 0; i--) {
        uint32_t x = b.limb[i];
        for (int j = 8; j >= 0; j--) {
            p[j] = (char)('0' + x % 10);
            x /= 10;
        }
        p += 9;
    }
    int total = (int)(p - dec->d);
    dec->exp10 = total - 1 + scale10;
    while (p[-1] == '0')
        p--;
    dec->n = (int)(p - dec->d);
}

void __libc64_decimal_round(struct decimal *dec, long long keep)
{
    if (keep >= dec->n)
        return;
    int up = 0;
    if (keep >= 0) {
        char r = dec->d[keep];
        if (r != '5')
            up = r > '5';
        else if (keep + 1 < dec->n)
            up = 1; /* more nonzero digits follow: above the half */
        else        /* exactly half: round to even */
            up = keep > 0 && (dec->d[keep - 1] - '0') % 2 == 1;
    }
    int n = keep > 0 ? (int)keep : 0;
    if (up) {
        while (n > 0 && dec->d[n - 1] == '9')
            n--;
        if (n == 0) { /* 99.9 -> 100: one digit, one place higher */
            dec->d[0] = '1';
            n = 1;
            dec->exp10++;
        } else {
            dec->d[n - 1]++;
        }
    } else {
        while (n > 0 && dec->d[n - 1] == '0')
            n--;
    }
    dec->n = n;
}
