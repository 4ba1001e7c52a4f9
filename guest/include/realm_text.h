/* realm_text.h: small text helpers the realm examples share (header-only).
 *
 *   char *question = realm_join_words(argc, argv, first, "What is the capital of France?");
 *   size_t ready = realm_utf8_complete(pending, n_pending);  // stream only whole characters
 */
#ifndef REALM_TEXT_H
#define REALM_TEXT_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The words argv[first..argc) joined by spaces, or a copy of `fallback` when there are none; malloc'ed
 * (the caller frees it), NULL when out of memory. */
static inline char *realm_join_words(int argc, char **argv, int first, const char *fallback) {
    size_t len = first < argc ? 0 : strlen(fallback);
    for (int i = first; i < argc; i++) len += strlen(argv[i]) + 1;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    strcpy(out, first < argc ? "" : fallback);
    for (int i = first; i < argc; i++) {
        if (i > first) strcat(out, " ");
        strcat(out, argv[i]);
    }
    return out;
}

/* Length of the longest prefix of buf[0..len) that does not end inside a UTF-8 sequence: what can be
 * printed now, tokens' bytes splitting characters as they may. */
static inline size_t realm_utf8_complete(const unsigned char *buf, size_t len) {
    size_t i = len, back = 0;
    while (i > 0 && back < 4 && (buf[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0) return len;
    unsigned char lead = buf[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return (back + 1 >= need) ? len : i - 1;
}

#endif /* REALM_TEXT_H */
