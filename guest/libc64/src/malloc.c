/* malloc.c - the heap: malloc, calloc, realloc, free.
 *
 * The heap runs from __heap_base to the end of linear memory and grows with
 * memory.grow. It is a sequence of blocks, each starting with a 16-byte
 * header (so payloads stay 16-byte aligned) that records its own size and
 * that of the block below it; an in-use "epilogue" header closes the
 * sequence. Free blocks are merged with free neighbours at once and kept
 * on doubly linked lists binned by power of two. The allocator assumes it
 * is the only code that grows memory. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern unsigned char __heap_base; /* set by the linker */

#define PAGE 65536u
#define ALIGN 16u
#define INUSE ((size_t)1)
#define MAX_REQUEST (SIZE_MAX / 2) /* keeps size arithmetic from wrapping */

typedef struct block {
    size_t prev_size;         /* size of the block below; 0 for the first */
    size_t size;              /* this block's size, header included | INUSE */
    struct block *next, *prev; /* free-list links, only while free */
} block;

#define HEADER offsetof(block, next)
#define MIN_BLOCK sizeof(block)

/* Bin i holds free blocks with size in [2^(i+5), 2^(i+6)). */
#define NBINS (64 - 5)
static block *bins[NBINS];

static block *top;        /* the epilogue; NULL until the first malloc */
static uintptr_t mem_end; /* end of linear memory */

static size_t size_of(const block *b) { return b->size & ~INUSE; }

static block *at(block *b, size_t offset)
{
    return (block *)((char *)b + offset);
}

static block *below(block *b) { return (block *)((char *)b - b->prev_size); }

static int bin_of(size_t size) { return 63 - __builtin_clzll(size) - 5; }

static void link_free(block *b)
{
    block **head = &bins[bin_of(b->size)];
    b->prev = NULL;
    b->next = *head;
    if (*head)
        (*head)->prev = b;
    *head = b;
}

static void unlink_free(block *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        bins[bin_of(b->size)] = b->next;
    if (b->next)
        b->next->prev = b->prev;
}

/* Frees block b (whose size field is current), merging it with free
 * neighbours. */
static void release(block *b)
{
    size_t size = size_of(b);
    block *next = at(b, size);
    if (!(next->size & INUSE)) {
        unlink_free(next);
        size += next->size;
    }
    if (b->prev_size) {
        block *prev = below(b);
        if (!(prev->size & INUSE)) {
            unlink_free(prev);
            size += prev->size;
            b = prev;
        }
    }
    b->size = size;
    at(b, size)->prev_size = size;
    link_free(b);
}

/* b is in use and at least need bytes: frees the part beyond need if that
 * is big enough to be a block. */
static void trim(block *b, size_t need)
{
    size_t size = size_of(b);
    if (size - need < MIN_BLOCK)
        return;
    block *rest = at(b, need);
    b->size = need | INUSE;
    rest->prev_size = need;
    rest->size = size - need;
    at(rest, size - need)->prev_size = size - need;
    release(rest);
}

static int heap_init(void)
{
    mem_end = __builtin_wasm_memory_size(0) * PAGE;
    uintptr_t start = ((uintptr_t)&__heap_base + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
    if (start + HEADER > mem_end) {
        if (__builtin_wasm_memory_grow(0, 1) == SIZE_MAX)
            return 0;
        mem_end += PAGE;
    }
    top = (block *)start;
    top->prev_size = 0;
    top->size = INUSE;
    return 1;
}

/* Turns at least `bytes` more memory into a free block at the end of the
 * heap (merged with the last block if that is free), growing linear memory
 * as needed. Returns 0 if memory cannot grow. */
static int grow_heap(size_t bytes)
{
    /* Room between the epilogue and the end of memory, keeping space for
     * the epilogue itself; a multiple of 16 as both ends are aligned. */
    size_t avail = mem_end - (uintptr_t)top - HEADER;
    if (bytes < MIN_BLOCK) /* the new block may not merge with another */
        bytes = MIN_BLOCK;
    if (avail < bytes) {
        size_t pages = (bytes - avail + PAGE - 1) / PAGE;
        if (__builtin_wasm_memory_grow(0, pages) == SIZE_MAX)
            return 0;
        mem_end += pages * PAGE;
        avail += pages * PAGE;
    }
    block *b = top;
    b->size = avail | INUSE;
    top = at(b, avail);
    top->prev_size = avail;
    top->size = INUSE;
    release(b);
    return 1;
}

/* Takes a free block of at least need bytes off its list, or NULL. */
static block *take_free(size_t need)
{
    int i = bin_of(need);
    for (block *b = bins[i]; b; b = b->next) {
        if (b->size >= need) {
            unlink_free(b);
            return b;
        }
    }
    /* Any block in a higher bin is big enough. */
    for (i++; i < NBINS; i++) {
        if (bins[i]) {
            block *b = bins[i];
            unlink_free(b);
            return b;
        }
    }
    return NULL;
}

/* Block size for a request of n bytes (n <= MAX_REQUEST). */
static size_t block_size(size_t n)
{
    size_t need = (n + HEADER + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    return need < MIN_BLOCK ? MIN_BLOCK : need;
}

void *malloc(size_t n)
{
    if (n > MAX_REQUEST || (!top && !heap_init())) {
        errno = ENOMEM;
        return NULL;
    }
    size_t need = block_size(n);
    block *b = take_free(need);
    if (!b) {
        /* A free last block gets merged with the new memory. */
        block *last = top->prev_size ? below(top) : NULL;
        size_t have = last && !(last->size & INUSE) ? last->size : 0;
        if (!grow_heap(need - have)) {
            errno = ENOMEM;
            return NULL;
        }
        b = take_free(need);
    }
    b->size |= INUSE;
    trim(b, need);
    return (char *)b + HEADER;
}

void *calloc(size_t nmemb, size_t size)
{
    /* Not SIZE_MAX / size: clang turns that idiom into a 128-bit multiply,
     * which would need compiler-rt. */
    if (size && nmemb > MAX_REQUEST / size) {
        errno = ENOMEM;
        return NULL;
    }
    size_t total = nmemb * size;
    void *p = malloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

static block *block_of(void *p)
{
    block *b = (block *)((char *)p - HEADER);
    if (!(b->size & INUSE)) {
        fputs("free/realloc: pointer not in use (double free?)\n", stderr);
        abort();
    }
    return b;
}

void free(void *p)
{
    if (p)
        release(block_of(p));
}

void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (n == 0) { /* as glibc does */
        free(p);
        return NULL;
    }
    if (n > MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    block *b = block_of(p);
    size_t need = block_size(n);
    size_t size = size_of(b);
    if (need <= size) {
        trim(b, need);
        return p;
    }
    /* Grow in place: into fresh memory at the end of the heap, or into a
     * free block just above. */
    block *next = at(b, size);
    if (next == top && grow_heap(need - size))
        next = at(b, size);
    if (!(next->size & INUSE) && size + next->size >= need) {
        unlink_free(next);
        size += next->size;
        b->size = size | INUSE;
        at(b, size)->prev_size = size;
        trim(b, need);
        return p;
    }
    void *q = malloc(n);
    if (q) {
        memcpy(q, p, size - HEADER);
        free(p);
    }
    return q;
}
