/* printf.c - the formatting engine behind the printf family.
 *
 * Supports flags "-+ #0", width and precision (also as '*'), length
 * modifiers hh h l ll z j t L and conversions d i u o x X c s p % f F e E
 * g G a A. Floating point output is exact (see dtoa.c; %a in hexadecimal);
 * long double arguments are rounded to double first. Anything else (%n,
 * %lc, %ls, positional %1$d) ends formatting: the rest of the format is
 * copied verbatim, so no argument is read with the wrong type. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "format.h"

enum { FL_LEFT = 1, FL_PLUS = 2, FL_SPACE = 4, FL_ZERO = 8, FL_ALT = 16 };

enum length { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_Z, LEN_J, LEN_T,
              LEN_BIG_L };

struct spec {
    unsigned flags;
    size_t width;
    int prec; /* -1 when absent */
    enum length len;
};

struct out {
    struct fmt_sink *sink;
    size_t count;
};

static void emit(struct out *o, const char *s, size_t n)
{
    if (n) {
        o->sink->put(o->sink, s, n);
        o->count += n;
    }
}

static void pad(struct out *o, char c, size_t n)
{
    char buf[32];
    memset(buf, c, sizeof buf);
    while (n) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        emit(o, buf, k);
        n -= k;
    }
}

/* Emits the padding that goes before a field and its prefix (sign, "0x");
 * the caller then emits body_len bytes of body and, for left-justified
 * fields, the returned number of trailing spaces. */
static size_t field_start(struct out *o, const struct spec *sp,
                          const char *prefix, size_t body_len, int zero_ok)
{
    size_t plen = strlen(prefix);
    size_t len = plen + body_len;
    size_t fill = sp->width > len ? sp->width - len : 0;
    if (sp->flags & FL_LEFT) {
        emit(o, prefix, plen);
        return fill;
    }
    if ((sp->flags & FL_ZERO) && zero_ok) {
        emit(o, prefix, plen);
        pad(o, '0', fill);
    } else {
        pad(o, ' ', fill);
        emit(o, prefix, plen);
    }
    return 0;
}

static void fmt_string(struct out *o, const struct spec *sp, const char *s,
                       size_t n)
{
    size_t trail = field_start(o, sp, "", n, 0);
    emit(o, s, n);
    pad(o, ' ', trail);
}

static void fmt_integer(struct out *o, const struct spec *sp, uintmax_t v,
                        const char *prefix, unsigned base, int upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char buf[sizeof v * 3]; /* enough for octal */
    char *end = buf + sizeof buf, *p = end;
    /* An explicit precision of 0 prints no digits for 0. */
    if (v || sp->prec != 0) {
        do {
            *--p = digits[v % base];
            v /= base;
        } while (v);
    }
    size_t n = (size_t)(end - p);
    size_t zeros = sp->prec > 0 && (size_t)sp->prec > n ? sp->prec - n : 0;
    /* '#' with 'o' makes the first digit a 0. */
    if ((sp->flags & FL_ALT) && base == 8 && zeros == 0 && (n == 0 || *p != '0'))
        zeros = 1;
    size_t trail = field_start(o, sp, prefix, zeros + n, sp->prec < 0);
    pad(o, '0', zeros);
    emit(o, p, n);
    pad(o, ' ', trail);
}

/* Emits count digits of dec, starting at place value 10^pos downwards. */
static void emit_digits(struct out *o, const struct decimal *dec,
                        long long pos, long long count)
{
    char buf[64];
    size_t k = 0;
    for (; count > 0; count--) {
        buf[k++] = __libc64_decimal_digit(dec, pos--);
        if (k == sizeof buf) {
            emit(o, buf, k);
            k = 0;
        }
    }
    emit(o, buf, k);
}

/* The sign a float conversion shows: '-', or '+' / ' ' as the flags ask. */
static const char *float_sign(const struct spec *sp, double v)
{
    return __builtin_signbit(v)        ? "-"
           : (sp->flags & FL_PLUS)  ? "+"
           : (sp->flags & FL_SPACE) ? " "
                                    : "";
}

/* inf and nan, padded as the field asks; returns 0 (nothing written) for a finite v. */
static int fmt_nonfinite(struct out *o, const struct spec *sp, const char *sign, double v, int upper)
{
    if (__builtin_isfinite(v))
        return 0;
    const char *s = __builtin_isnan(v) ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf");
    size_t trail = field_start(o, sp, sign, 3, 0);
    emit(o, s, 3);
    pad(o, ' ', trail);
    return 1;
}

static void fmt_float(struct out *o, const struct spec *sp, double v,
                      char conv)
{
    int upper = conv >= 'A' && conv <= 'Z';
    int alt = (sp->flags & FL_ALT) != 0;
    const char *sign = float_sign(sp, v);
    if (fmt_nonfinite(o, sp, sign, v, upper))
        return;

    struct decimal dec;
    __libc64_decimal_from_double(&dec, __builtin_fabs(v));
    long long prec = sp->prec < 0 ? 6 : sp->prec; /* digits after '.' */
    int exp_style;
    switch (conv | 0x20) {
    case 'f':
        exp_style = 0;
        __libc64_decimal_round(&dec, dec.exp10 + 1 + prec);
        break;
    case 'e':
        exp_style = 1;
        __libc64_decimal_round(&dec, prec + 1);
        break;
    default: { /* g: prec significant digits, style by exponent */
        long long p = prec ? prec : 1;
        __libc64_decimal_round(&dec, p);
        long long x = dec.exp10;
        exp_style = !(x < p && x >= -4);
        prec = exp_style ? p - 1 : p - 1 - x;
        if (!alt) { /* drop trailing zeros */
            long long needed = dec.n - 1 - (exp_style ? 0 : x);
            if (prec > needed)
                prec = needed > 0 ? needed : 0;
        }
        break;
    }
    }
    int dot = prec > 0 || alt;

    if (exp_style) {
        int e = dec.exp10;
        char ebuf[8];
        char *ep = ebuf + sizeof ebuf;
        unsigned ue = e < 0 ? -(unsigned)e : (unsigned)e;
        do {
            *--ep = (char)('0' + ue % 10);
            ue /= 10;
        } while (ue || ebuf + sizeof ebuf - ep < 2);
        *--ep = e < 0 ? '-' : '+';
        *--ep = upper ? 'E' : 'e';
        size_t elen = (size_t)(ebuf + sizeof ebuf - ep);
        size_t trail = field_start(o, sp, sign, 1 + dot + prec + elen, 1);
        emit_digits(o, &dec, e, 1);
        emit(o, ".", dot);
        emit_digits(o, &dec, (long long)e - 1, prec);
        emit(o, ep, elen);
        pad(o, ' ', trail);
    } else {
        long long int_digits = dec.exp10 >= 0 ? dec.exp10 + 1 : 1;
        size_t trail =
            field_start(o, sp, sign, (size_t)(int_digits + dot + prec), 1);
        emit_digits(o, &dec, int_digits - 1, int_digits);
        emit(o, ".", dot);
        emit_digits(o, &dec, -1, prec);
        pad(o, ' ', trail);
    }
}

/* long double is IEEE binary128 on wasm, and a plain cast to double would
 * need compiler-rt's soft float, which is not linked; so round the bits by
 * hand (to nearest, ties to even, subnormal results included). */
/* %a: [-]0xh.hhhp±d, the 52-bit fraction in 13 hex digits (trailing zeros
 * dropped without a precision; rounded half to even with one), the leading
 * digit 1 (0 for zero and subnormals), the exponent in decimal. */
static void fmt_hex_float(struct out *o, const struct spec *sp, double v,
                          char conv)
{
    int upper = conv == 'A';
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    const char *sign = float_sign(sp, v);
    if (fmt_nonfinite(o, sp, sign, v, upper))
        return;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int biased = (int)((bits >> 52) & 0x7FF);
    uint64_t frac = bits & ((1ULL << 52) - 1);
    int lead = biased != 0;
    int exp2 = biased ? biased - 1023 : (frac ? -1022 : 0);
    int ndig = 13;
    if (sp->prec >= 0 && sp->prec < 13) { /* round the fraction to prec digits */
        int drop = 4 * (13 - sp->prec);
        uint64_t half = 1ULL << (drop - 1), rest = frac & ((1ULL << drop) - 1);
        frac >>= drop;
        if (rest > half || (rest == half && (frac & 1)))
            frac++;
        if (frac >> (4 * sp->prec)) { /* carried into the leading digit */
            frac = 0;
            lead++;
        }
        ndig = sp->prec;
    } else if (sp->prec < 0) {
        while (ndig > 0 && (frac & 0xF) == 0) {
            frac >>= 4;
            ndig--;
        }
    }
    char body[64];
    size_t n = 0;
    body[n++] = (char)('0' + lead);
    int extra = sp->prec > 13 ? sp->prec - 13 : 0;
    if (ndig > 0 || extra > 0 || (sp->flags & FL_ALT))
        body[n++] = '.';
    for (int i = ndig - 1; i >= 0; i--)
        body[n++] = digits[(frac >> (4 * i)) & 0xF];
    for (int i = 0; i < extra && n < sizeof body - 8; i++)
        body[n++] = '0';
    body[n++] = upper ? 'P' : 'p';
    body[n++] = exp2 < 0 ? '-' : '+';
    char e[8];
    int en = 0, ea = exp2 < 0 ? -exp2 : exp2;
    do {
        e[en++] = (char)('0' + ea % 10);
        ea /= 10;
    } while (ea);
    while (en)
        body[n++] = e[--en];
    char prefix[4];
    size_t plen = strlen(sign);
    memcpy(prefix, sign, plen);
    prefix[plen++] = '0';
    prefix[plen++] = upper ? 'X' : 'x';
    prefix[plen] = '\0';
    size_t trail = field_start(o, sp, prefix, n, 1);
    emit(o, body, n);
    pad(o, ' ', trail);
}

static double long_double_to_double(long double v)
{
    _Static_assert(sizeof v == 16 && LDBL_MANT_DIG == 113, "binary128");
    uint64_t w[2]; /* little endian: w[1] holds sign, exponent, top bits */
    memcpy(w, &v, sizeof w);
    int e = (int)(w[1] >> 48 & 0x7fff) - 16383;
    uint64_t frac_hi = w[1] & ((UINT64_C(1) << 48) - 1);
    /* The top 64 significand bits, the other 49 folded into a sticky bit 0
     * so that rounding sig rounds the whole value: v = sig * 2^(e - 63). */
    uint64_t sig = UINT64_C(1) << 63 | frac_hi << 15 | w[0] >> 49;
    sig |= (w[0] & ((UINT64_C(1) << 49) - 1)) != 0;
    double r;
    if (e == 0x4000) { /* exponent all ones */
        r = frac_hi | w[0] ? __builtin_nan("") : __builtin_inf();
    } else if (e > 1023) {
        r = __builtin_inf();
    } else if (e >= -1022) {
        /* (double)sig is the only rounding; both scalings are exact. */
        uint64_t pow2 = (uint64_t)(e + 1023) << 52;
        double scale;
        memcpy(&scale, &pow2, sizeof scale);
        r = (double)sig * 0x1p-63 * scale;
    } else if (e >= -1011 - 64) { /* subnormal: round to units of 2^-1074 */
        int shift = -1011 - e; /* v = sig / 2^shift units, shift in 12..64 */
        uint64_t q = shift == 64 ? 0 : sig >> shift;
        uint64_t rem = shift == 64 ? sig : sig & ((UINT64_C(1) << shift) - 1);
        uint64_t half = UINT64_C(1) << (shift - 1);
        q += rem > half || (rem == half && (q & 1));
        r = (double)q * 0x1p-1074;
    } else { /* zero, or far below the smallest double */
        r = 0;
    }
    return w[1] >> 63 ? -r : r;
}

static intmax_t signed_arg(va_list *ap, enum length len)
{
    switch (len) {
    case LEN_HH: return (signed char)va_arg(*ap, int);
    case LEN_H: return (short)va_arg(*ap, int);
    case LEN_L: return va_arg(*ap, long);
    case LEN_LL:
    case LEN_BIG_L: return va_arg(*ap, long long);
    case LEN_Z: /* the signed type of size_t's width */
    case LEN_T: return va_arg(*ap, ptrdiff_t);
    case LEN_J: return va_arg(*ap, intmax_t);
    default: return va_arg(*ap, int);
    }
}

static uintmax_t unsigned_arg(va_list *ap, enum length len)
{
    switch (len) {
    case LEN_HH: return (unsigned char)va_arg(*ap, unsigned);
    case LEN_H: return (unsigned short)va_arg(*ap, unsigned);
    case LEN_L: return va_arg(*ap, unsigned long);
    case LEN_LL:
    case LEN_BIG_L: return va_arg(*ap, unsigned long long);
    case LEN_Z: return va_arg(*ap, size_t);
    case LEN_T: return (size_t)va_arg(*ap, ptrdiff_t);
    case LEN_J: return va_arg(*ap, uintmax_t);
    default: return va_arg(*ap, unsigned);
    }
}

/* Reads a decimal number, saturating at INT_MAX. */
static int read_number(const char **s)
{
    int v = 0;
    for (; **s >= '0' && **s <= '9'; (*s)++) {
        int d = **s - '0';
        v = v > (INT_MAX - d) / 10 ? INT_MAX : v * 10 + d;
    }
    return v;
}

static enum length read_length(const char **s)
{
    switch (*(*s)++) {
    case 'h':
        if (**s != 'h')
            return LEN_H;
        (*s)++;
        return LEN_HH;
    case 'l':
        if (**s != 'l')
            return LEN_L;
        (*s)++;
        return LEN_LL;
    case 'z': return LEN_Z;
    case 'j': return LEN_J;
    case 't': return LEN_T;
    case 'L': return LEN_BIG_L;
    default:
        (*s)--;
        return LEN_NONE;
    }
}

int __libc64_vformat(struct fmt_sink *sink, const char *fmt, va_list ap)
{
    struct out o = {sink, 0};
    va_list args;
    va_copy(args, ap);

    while (*fmt) {
        if (*fmt != '%') {
            const char *start = fmt;
            while (*fmt && *fmt != '%')
                fmt++;
            emit(&o, start, (size_t)(fmt - start));
            continue;
        }
        const char *directive = fmt++;

        struct spec sp = {0, 0, -1, LEN_NONE};
        for (;; fmt++) {
            if (*fmt == '-') sp.flags |= FL_LEFT;
            else if (*fmt == '+') sp.flags |= FL_PLUS;
            else if (*fmt == ' ') sp.flags |= FL_SPACE;
            else if (*fmt == '0') sp.flags |= FL_ZERO;
            else if (*fmt == '#') sp.flags |= FL_ALT;
            else break;
        }
        if (*fmt == '*') {
            fmt++;
            int w = va_arg(args, int);
            if (w < 0) { /* a negative width means '-' */
                sp.flags |= FL_LEFT;
                sp.width = (size_t)-(long long)w;
            } else {
                sp.width = (size_t)w;
            }
        } else {
            sp.width = (size_t)read_number(&fmt);
        }
        if (*fmt == '.') {
            fmt++;
            if (*fmt == '*') {
                fmt++;
                int p = va_arg(args, int);
                sp.prec = p < 0 ? -1 : p; /* negative: as if omitted */
            } else {
                sp.prec = read_number(&fmt);
            }
        }
        sp.len = read_length(&fmt);

        char conv = *fmt++;
        switch (conv) {
        case 'd':
        case 'i': {
            intmax_t v = signed_arg(&args, sp.len);
            const char *prefix = v < 0                    ? "-"
                                 : (sp.flags & FL_PLUS)  ? "+"
                                 : (sp.flags & FL_SPACE) ? " "
                                                         : "";
            uintmax_t mag = v < 0 ? -(uintmax_t)v : (uintmax_t)v;
            fmt_integer(&o, &sp, mag, prefix, 10, 0);
            break;
        }
        case 'u':
            fmt_integer(&o, &sp, unsigned_arg(&args, sp.len), "", 10, 0);
            break;
        case 'o':
            fmt_integer(&o, &sp, unsigned_arg(&args, sp.len), "", 8, 0);
            break;
        case 'x':
        case 'X': {
            uintmax_t v = unsigned_arg(&args, sp.len);
            const char *prefix = "";
            if ((sp.flags & FL_ALT) && v)
                prefix = conv == 'x' ? "0x" : "0X";
            fmt_integer(&o, &sp, v, prefix, 16, conv == 'X');
            break;
        }
        case 'p':
            fmt_integer(&o, &sp, (uintptr_t)va_arg(args, void *), "0x", 16, 0);
            break;
        case 'c': {
            char c = (char)va_arg(args, int);
            fmt_string(&o, &sp, &c, 1);
            break;
        }
        case 's': {
            const char *s = va_arg(args, const char *);
            if (!s)
                s = "(null)";
            size_t n = 0; /* never read past the precision */
            while ((sp.prec < 0 || n < (size_t)sp.prec) && s[n])
                n++;
            fmt_string(&o, &sp, s, n);
            break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G':
        case 'a':
        case 'A': {
            double v = sp.len == LEN_BIG_L
                           ? long_double_to_double(va_arg(args, long double))
                           : va_arg(args, double);
            if ((conv | 0x20) == 'a')
                fmt_hex_float(&o, &sp, v, conv);
            else
                fmt_float(&o, &sp, v, conv);
            break;
        }
        case '%':
            emit(&o, "%", 1);
            break;
        default: /* unsupported: copy the rest and stop */
            emit(&o, directive, strlen(directive));
            fmt = "";
            break;
        }
    }
    va_end(args);

    if (o.count > INT_MAX) {
        errno = EOVERFLOW;
        return -1;
    }
    return (int)o.count;
}
