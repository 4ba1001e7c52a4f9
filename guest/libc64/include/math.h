/* math.h - floating point functions for wasm64 bridge guests
 * (guest/libc64). sqrt, fabs, floor, ceil and trunc are single wasm
 * instructions; exp, log, pow, tanh, sin, cos and tan are small software
 * implementations
 * (float versions are computed in double). Functions do not set errno. */
#ifndef LIBC64_MATH_H
#define LIBC64_MATH_H

#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define HUGE_VAL __builtin_huge_val()
#define HUGE_VALF __builtin_huge_valf()

/* Not ISO C but expected by much ordinary code (POSIX XSI). */
#define M_E 2.7182818284590452354
#define M_LN2 0.69314718055994530942
#define M_LN10 2.30258509299404568402
#define M_PI 3.14159265358979323846
#define M_SQRT2 1.41421356237309504880

#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
#define isfinite(x) __builtin_isfinite(x)
#define signbit(x) __builtin_signbit(x)

double fabs(double x);
double sqrt(double x);
double floor(double x);
double ceil(double x);
double trunc(double x);
double exp(double x);
double log(double x);
double pow(double x, double y);
double tanh(double x);
double sin(double x);
double cos(double x);
double tan(double x);

float fabsf(float x);
float sqrtf(float x);
float floorf(float x);
float ceilf(float x);
float truncf(float x);
float expf(float x);
float logf(float x);
float powf(float x, float y);
float tanhf(float x);
float sinf(float x);
float cosf(float x);
float tanf(float x);

#endif
