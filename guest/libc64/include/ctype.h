/* ctype.h - character classification for wasm64 bridge guests
 * (guest/libc64). Only the "C" locale exists: ASCII, nothing above 127 is
 * classified. */
#ifndef LIBC64_CTYPE_H
#define LIBC64_CTYPE_H

int isalnum(int c);
int isalpha(int c);
int iscntrl(int c);
int isdigit(int c);
int isgraph(int c);
int islower(int c);
int isprint(int c);
int ispunct(int c);
int isspace(int c);
int isupper(int c);
int isxdigit(int c);
int tolower(int c);
int toupper(int c);

#endif
