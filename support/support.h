/* support.h - the base layer every part of the compiler stands on.
 *
 * Arenas (allocate many, free whole), growable string buffers, source
 * files and spans, and diagnostics in one format:
 *
 *     file:line:col: error: message
 *      12 |     x = foo(bar
 *         |             ^~~
 *
 * Fatal errors unwind to the entry point through a jmp_buf held in the
 * Diag context; nothing here calls exit() or abort().
 */
#ifndef SLAPO_SUPPORT_H
#define SLAPO_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define SUP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SUP_NORETURN __attribute__((noreturn))
#else
#define SUP_PRINTF(f, a)
#define SUP_NORETURN
#endif

/* ---- arena.c ---------------------------------------------------------- */

typedef struct ArenaBlock ArenaBlock;

/* A bump allocator. Memory is zeroed; it is freed only by arena_free. */
typedef struct Arena {
	ArenaBlock *head; /* newest block; older ones chained behind it */
	size_t used;      /* bytes used in head */
	size_t total;     /* bytes handed out, all blocks */
} Arena;

void *arena_alloc(Arena *a, size_t size);
void *arena_dup(Arena *a, const void *p, size_t size);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) SUP_PRINTF(2, 3);
void arena_free(Arena *a);

#define ARENA_NEW(a, T) ((T *)arena_alloc((a), sizeof(T)))
#define ARENA_ARRAY(a, T, n) ((T *)arena_alloc((a), sizeof(T) * (size_t)(n)))

/* A growable array of pointers, carved from an arena. */
typedef struct PtrVec {
	void **items;
	int len, cap;
} PtrVec;

void ptrvec_push(Arena *a, PtrVec *v, void *p);

/* ---- strbuf.c --------------------------------------------------------- */

/* A heap string buffer (malloc'd); sb_free releases it. */
typedef struct StrBuf {
	char *data;
	size_t len, cap;
} StrBuf;

void sb_putc(StrBuf *b, char c);
void sb_puts(StrBuf *b, const char *s);
void sb_putn(StrBuf *b, const char *s, size_t n);
void sb_printf(StrBuf *b, const char *fmt, ...) SUP_PRINTF(2, 3);
void sb_vprintf(StrBuf *b, const char *fmt, va_list ap);
void sb_free(StrBuf *b);
/* Python's repr() of a float: shortest digits that round-trip (1e-12, 0.1). */
void sb_pyfloat(StrBuf *b, double v);

/* ---- source.c --------------------------------------------------------- */

/* A source file held in memory. */
typedef struct SrcFile {
	const char *path; /* as given on the command line or in import */
	const char *text; /* NUL-terminated copy of the contents */
	size_t size;      /* bytes, not counting the added NUL */
	int *line_start;  /* byte offset of each line's first char */
	int nlines;
} SrcFile;

/* A region of source text: 1-based lines and columns, end inclusive.
 * Its field names match bison's YYLTYPE so it can serve as one. */
typedef struct Span {
	const SrcFile *file;
	int first_line, first_column;
	int last_line, last_column;
} Span;

/* The source line `line` (1-based) of f, without its newline. */
const char *src_line(const SrcFile *f, int line, int *len);
Span span_join(Span a, Span b);

/* ---- diag.c ----------------------------------------------------------- */

typedef enum { DIAG_NOTE, DIAG_WARNING, DIAG_ERROR } DiagLevel;

/* Limits that guard the front end against hostile input. */
enum {
	SUP_MAX_FILE_SIZE = 64 << 20, /* bytes in one source file */
	SUP_MAX_NESTING = 256,        /* bracket/brace depth */
	SUP_MAX_ERRORS = 20,          /* errors reported before giving up */
};

/* Diagnostic context: where messages go and how many were reported. */
typedef struct Diag {
	FILE *out;        /* usually stderr */
	int nerrors, nwarnings;
	bool color;       /* unused for now: output is always plain */
	jmp_buf *bail;    /* where diag_fatal unwinds to; NULL = return */
	Arena *arena;     /* owns SrcFiles loaded through diag_load */
	/* what the compiler was doing, printed as notes when it bails out:
	 * "note: while tracing 'blocks.0' for trace()" */
	const char *ctx_msg[16];
	Span ctx_span[16];
	int nctx;
} Diag;

void diag_init(Diag *d, FILE *out, Arena *a);
void diag_report(Diag *d, DiagLevel lvl, Span sp, const char *fmt, ...)
    SUP_PRINTF(4, 5);
void diag_vreport(Diag *d, DiagLevel lvl, Span sp, const char *fmt, va_list ap);
#define diag_error(d, sp, ...) diag_report((d), DIAG_ERROR, (sp), __VA_ARGS__)
#define diag_warning(d, sp, ...) diag_report((d), DIAG_WARNING, (sp), __VA_ARGS__)
#define diag_note(d, sp, ...) diag_report((d), DIAG_NOTE, (sp), __VA_ARGS__)
/* An error with no source position: "slapoc: error: message". */
void diag_plain(Diag *d, DiagLevel lvl, const char *fmt, ...) SUP_PRINTF(3, 4);
/* Report an error, then unwind to d->bail (which must be set). */
SUP_NORETURN void diag_fatal(Diag *d, Span sp, const char *fmt, ...)
    SUP_PRINTF(3, 4);
/* Unwind after errors were already reported (printing the context). */
SUP_NORETURN void diag_bail(Diag *d);
/* Say what is being done, for the notes of a later error; pop when done. */
void diag_push(Diag *d, Span sp, const char *fmt, ...) SUP_PRINTF(3, 4);
void diag_pop(Diag *d);

/* Read a file into a SrcFile; NULL (and an error reported) on failure,
 * when it is too large, contains NUL bytes or is not valid UTF-8. */
SrcFile *diag_load(Diag *d, const char *path, Span from);
/* Make a SrcFile from a string (tests, fuzzers). */
SrcFile *src_from_string(Arena *a, const char *path, const char *text, size_t n);
/* Check a loaded buffer: NUL bytes, invalid UTF-8, size. */
bool src_validate(Diag *d, SrcFile *f);

#endif
