/* stdio.c - the three standard streams. stdout collects output in a buffer
 * that is flushed at '\n', when full, by fflush and at exit; stderr goes
 * straight to the host; stdin is read from the host (bridge.read) a buffer
 * at a time. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bridge_sys.h"
#include "format.h"

enum { STATE_EOF = 1, STATE_ERR = 2 };

struct __libc64_file {
    int fd;             /* host fd; 0 (stdin) cannot be written */
    int state;          /* STATE_EOF | STATE_ERR */
    unsigned char *buf; /* NULL: unbuffered */
    size_t len;         /* bytes waiting in buf */
    size_t cap;
};

static unsigned char stdout_buf[BUFSIZ];
/* stdin's read buffer: bytes [stdin_pos, stdin_len) are yet to be handed out. Not the stream's buf,
 * which flushing writes out. */
static unsigned char stdin_buf[BUFSIZ];
static size_t stdin_pos, stdin_len;
static FILE streams[3] = {
    {.fd = 0},
    {.fd = 1, .buf = stdout_buf, .cap = sizeof stdout_buf},
    {.fd = 2},
};
FILE *const stdin = &streams[0];
FILE *const stdout = &streams[1];
FILE *const stderr = &streams[2];

/* Hands n bytes to the host, flagging the stream on failure; returns how
 * many bytes the host took. */
static size_t write_through(FILE *f, const unsigned char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done;
        if (chunk > (1u << 30)) /* the host answers with an int32 */
            chunk = 1u << 30;
        int32_t r = __bridge_write(f->fd, p + done, chunk);
        if (r <= 0) {
            f->state |= STATE_ERR;
            break;
        }
        done += (size_t)r;
    }
    return done;
}

static int flush_buffer(FILE *f)
{
    size_t n = f->len;
    f->len = 0;
    return write_through(f, f->buf, n) == n ? 0 : EOF;
}

/* Writes n bytes to f; returns how many were accepted. */
static size_t put_bytes(FILE *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (f == stdin) {
        f->state |= STATE_ERR;
        return 0;
    }
    if (!f->buf)
        return write_through(f, p, n);
    if (n > f->cap - f->len) {
        if (flush_buffer(f))
            return 0;
        if (n >= f->cap)
            return write_through(f, p, n);
    }
    memcpy(f->buf + f->len, p, n);
    f->len += n;
    /* Line buffering: a newline anywhere in the new bytes sends it all. */
    if (memchr(p, '\n', n) && flush_buffer(f))
        return 0;
    return n;
}

size_t fwrite(const void *restrict ptr, size_t size, size_t nmemb,
              FILE *restrict stream)
{
    /* The array exists, so size * nmemb cannot overflow. */
    if (size == 0 || nmemb == 0)
        return 0;
    return put_bytes(stream, ptr, size * nmemb) / size;
}

int fputc(int c, FILE *stream)
{
    unsigned char ch = (unsigned char)c;
    return put_bytes(stream, &ch, 1) == 1 ? ch : EOF;
}

int putc(int c, FILE *stream) { return fputc(c, stream); }

int putchar(int c) { return fputc(c, stdout); }

int fputs(const char *restrict s, FILE *restrict stream)
{
    size_t n = strlen(s);
    return put_bytes(stream, s, n) == n ? 0 : EOF;
}

int puts(const char *s)
{
    return fputs(s, stdout) == EOF || fputc('\n', stdout) == EOF ? EOF : 0;
}

int fflush(FILE *stream)
{
    if (stream)
        return stream->buf ? flush_buffer(stream) : 0;
    int result = 0;
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        if (streams[i].buf && flush_buffer(&streams[i]))
            result = EOF;
    return result;
}

/* Only stdin can be read: the other streams are at end of file. */
int fgetc(FILE *stream)
{
    if (stream != stdin || (stream->state & (STATE_EOF | STATE_ERR))) {
        stream->state |= stream == stdin ? 0 : STATE_EOF;
        return EOF;
    }
    if (stdin_pos == stdin_len) {
        int32_t r = __bridge_read(0, stdin_buf, sizeof stdin_buf);
        if (r <= 0) {
            stream->state |= r == 0 ? STATE_EOF : STATE_ERR;
            return EOF;
        }
        stdin_len = (size_t)r;
        stdin_pos = 0;
    }
    return stdin_buf[stdin_pos++];
}

int getc(FILE *stream) { return fgetc(stream); }

int getchar(void) { return fgetc(stdin); }

char *fgets(char *restrict s, int n, FILE *restrict stream)
{
    int i = 0;
    while (i < n - 1) {
        int c = fgetc(stream);
        if (c == EOF)
            break;
        s[i++] = (char)c;
        if (c == '\n')
            break;
    }
    if (i == 0 || n <= 0)
        return NULL;
    s[i] = '\0';
    return s;
}

int feof(FILE *stream) { return (stream->state & STATE_EOF) != 0; }

int ferror(FILE *stream) { return (stream->state & STATE_ERR) != 0; }

void clearerr(FILE *stream) { stream->state = 0; }

/* Gathers formatted output in chunks so that even unbuffered stderr gets
 * few host writes per call. */
struct stream_sink {
    struct fmt_sink base;
    FILE *f;
    int failed;
    size_t len;
    char buf[256];
};

static void stream_drain(struct stream_sink *s)
{
    if (put_bytes(s->f, s->buf, s->len) != s->len)
        s->failed = 1;
    s->len = 0;
}

static void stream_put(struct fmt_sink *sink, const char *p, size_t n)
{
    struct stream_sink *s = (struct stream_sink *)sink;
    if (n > sizeof s->buf - s->len) {
        stream_drain(s);
        if (n >= sizeof s->buf) {
            if (put_bytes(s->f, p, n) != n)
                s->failed = 1;
            return;
        }
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

int vfprintf(FILE *restrict stream, const char *restrict fmt, va_list ap)
{
    struct stream_sink s = {{stream_put}, stream, 0, 0, {0}};
    int r = __libc64_vformat(&s.base, fmt, ap);
    stream_drain(&s);
    return s.failed ? -1 : r;
}

int vprintf(const char *restrict fmt, va_list ap)
{
    return vfprintf(stdout, fmt, ap);
}

int fprintf(FILE *restrict stream, const char *restrict fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(stream, fmt, ap);
    va_end(ap);
    return r;
}

int printf(const char *restrict fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(stdout, fmt, ap);
    va_end(ap);
    return r;
}

/* Stores what fits, keeping one byte for the terminating NUL. */
struct string_sink {
    struct fmt_sink base;
    char *dst;
    size_t room;
};

static void string_put(struct fmt_sink *sink, const char *p, size_t n)
{
    struct string_sink *s = (struct string_sink *)sink;
    size_t k = n < s->room ? n : s->room;
    memcpy(s->dst, p, k);
    s->dst += k;
    s->room -= k;
}

int vsnprintf(char *restrict s, size_t n, const char *restrict fmt,
              va_list ap)
{
    struct string_sink sink = {{string_put}, s, n ? n - 1 : 0};
    int r = __libc64_vformat(&sink.base, fmt, ap);
    if (n)
        *sink.dst = '\0';
    return r;
}

int vsprintf(char *restrict s, const char *restrict fmt, va_list ap)
{
    return vsnprintf(s, SIZE_MAX, fmt, ap);
}

int snprintf(char *restrict s, size_t n, const char *restrict fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(s, n, fmt, ap);
    va_end(ap);
    return r;
}

int sprintf(char *restrict s, const char *restrict fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(s, SIZE_MAX, fmt, ap);
    va_end(ap);
    return r;
}
