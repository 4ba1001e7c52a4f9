/* string.c - memory and C string functions. */
#include <stdlib.h>
#include <string.h>

/* With bulk memory (on by default for zig's wasm cpu) the builtins compile
 * to single memory.copy / memory.fill instructions; memory.copy handles
 * overlap, so it serves memmove too. Without it they would compile back
 * into calls to these very functions, hence the plain loops. */
#if defined(__wasm_bulk_memory__) || defined(__wasm_bulk_memory_opt__)
#define HAVE_BULK_MEMORY 1
#else
#define HAVE_BULK_MEMORY 0
#endif

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
#if HAVE_BULK_MEMORY
    __builtin_memcpy(dst, src, n);
#else
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
#endif
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
#if HAVE_BULK_MEMORY
    __builtin_memmove(dst, src, n);
#else
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
#endif
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
#if HAVE_BULK_MEMORY
    __builtin_memset(dst, c, n);
#else
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
#endif
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

void *memchr(const void *s, int c, size_t n)
{
    const unsigned char *p = s;
    for (; n; n--, p++)
        if (*p == (unsigned char)c)
            return (void *)p;
    return NULL;
}

size_t strlen(const char *s)
{
    const char *p = s;
    while (*p)
        p++;
    return (size_t)(p - s);
}

int strcmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;
    while (*x && *x == *y) {
        x++;
        y++;
    }
    return *x - *y;
}

int strncmp(const char *a, const char *b, size_t n)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;
    for (; n; n--, x++, y++)
        if (*x != *y || !*x)
            return *x - *y;
    return 0;
}

char *strchr(const char *s, int c)
{
    for (;; s++) {
        if (*s == (char)c)
            return (char *)s;
        if (!*s)
            return NULL;
    }
}

char *strrchr(const char *s, int c)
{
    const char *found = NULL;
    for (;; s++) {
        if (*s == (char)c)
            found = s;
        if (!*s)
            return (char *)found;
    }
}

char *strstr(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    for (;; haystack++) {
        if (strncmp(haystack, needle, n) == 0)
            return (char *)haystack;
        if (!*haystack)
            return NULL;
    }
}

char *strcpy(char *restrict dst, const char *restrict src)
{
    char *d = dst;
    while ((*d++ = *src++))
        ;
    return dst;
}

char *strncpy(char *restrict dst, const char *restrict src, size_t n)
{
    size_t i = 0;
    for (; i < n && src[i]; i++)
        dst[i] = src[i];
    for (; i < n; i++)
        dst[i] = '\0';
    return dst;
}

char *strcat(char *restrict dst, const char *restrict src)
{
    strcpy(dst + strlen(dst), src);
    return dst;
}

char *strncat(char *restrict dst, const char *restrict src, size_t n)
{
    char *d = dst + strlen(dst);
    for (; n && *src; n--)
        *d++ = *src++;
    *d = '\0';
    return dst;
}

char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}
