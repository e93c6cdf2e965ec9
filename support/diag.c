/* diag.c - source files and diagnostics.
 *
 * Every message has one shape:
 *
 *     examples/x.slapo:3:9: error: unknown module 'Lineer'
 *         dense = Lineer(4, 4)
 *                 ^~~~~~
 *
 * Notes and warnings look the same with their own word. After
 * SUP_MAX_ERRORS errors the run stops with a last line saying so.
 */
#include "support/support.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- source files ---- */

static void src_index_lines(Arena *a, SrcFile *f)
{
	int n = 1;
	for (size_t i = 0; i < f->size; i++)
		n += f->text[i] == '\n';
	f->line_start = ARENA_ARRAY(a, int, n + 1);
	f->nlines = 0;
	f->line_start[f->nlines++] = 0;
	for (size_t i = 0; i < f->size; i++)
		if (f->text[i] == '\n')
			f->line_start[f->nlines++] = (int)i + 1;
}

SrcFile *src_from_string(Arena *a, const char *path, const char *text, size_t n)
{
	SrcFile *f = ARENA_NEW(a, SrcFile);
	f->path = arena_strdup(a, path);
	f->text = arena_strndup(a, text, n);
	f->size = n;
	src_index_lines(a, f);
	return f;
}

const char *src_line(const SrcFile *f, int line, int *len)
{
	if (!f || line < 1 || line > f->nlines) {
		*len = 0;
		return "";
	}
	const char *s = f->text + f->line_start[line - 1];
	const char *e = s;
	while (e < f->text + f->size && *e != '\n')
		e++;
	if (e > s && e[-1] == '\r')
		e--;
	*len = (int)(e - s);
	return s;
}

Span span_join(Span a, Span b)
{
	Span s = a;
	if (!a.file)
		return b;
	if (!b.file)
		return a;
	s.last_line = b.last_line;
	s.last_column = b.last_column;
	return s;
}

/* Length of the UTF-8 sequence starting at s (at most n bytes), or 0
 * when it is not well-formed. */
static int utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	int len;
	unsigned min;
	if (c < 0x80)
		return 1;
	else if ((c & 0xE0) == 0xC0)
		len = 2, min = 0x80;
	else if ((c & 0xF0) == 0xE0)
		len = 3, min = 0x800;
	else if ((c & 0xF8) == 0xF0)
		len = 4, min = 0x10000;
	else
		return 0;
	if ((size_t)len > n)
		return 0;
	unsigned cp = c & (0x7F >> len);
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/* Position (line, column) of byte offset off, for errors found before
 * lexing. */
static Span span_at(const SrcFile *f, size_t off)
{
	Span sp = {f, 1, 1, 1, 1};
	int lo = 0, hi = f->nlines - 1;
	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;
		if ((size_t)f->line_start[mid] <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	sp.first_line = sp.last_line = lo + 1;
	sp.first_column = sp.last_column = (int)(off - (size_t)f->line_start[lo]) + 1;
	return sp;
}

bool src_validate(Diag *d, SrcFile *f)
{
	const unsigned char *s = (const unsigned char *)f->text;
	for (size_t i = 0; i < f->size;) {
		if (s[i] == 0) {
			diag_error(d, span_at(f, i), "source contains a NUL byte");
			return false;
		}
		int n = utf8_len(s + i, f->size - i);
		if (!n) {
			diag_error(d, span_at(f, i), "invalid UTF-8 byte 0x%02x", s[i]);
			return false;
		}
		i += (size_t)n;
	}
	return true;
}

SrcFile *diag_load(Diag *d, const char *path, Span from)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		if (from.file)
			diag_error(d, from, "cannot open '%s': %s", path, strerror(errno));
		else
			diag_plain(d, DIAG_ERROR, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	StrBuf b = {0};
	char chunk[65536];
	size_t n;
	bool too_big = false;
	while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
		if (b.len + n > SUP_MAX_FILE_SIZE) {
			too_big = true;
			break;
		}
		sb_putn(&b, chunk, n);
	}
	bool failed = ferror(fp);
	fclose(fp);
	if (too_big || failed) {
		const char *why = too_big ? "file is larger than the 64 MiB limit"
		                          : "read error";
		if (from.file)
			diag_error(d, from, "cannot read '%s': %s", path, why);
		else
			diag_plain(d, DIAG_ERROR, "cannot read '%s': %s", path, why);
		sb_free(&b);
		return NULL;
	}
	SrcFile *f = src_from_string(d->arena, path, b.data ? b.data : "", b.len);
	sb_free(&b);
	if (!src_validate(d, f))
		return NULL;
	return f;
}

/* ---- diagnostics ---- */

void diag_init(Diag *d, FILE *out, Arena *a)
{
	memset(d, 0, sizeof *d);
	d->out = out;
	d->arena = a;
}

static const char *level_name(DiagLevel l)
{
	return l == DIAG_ERROR ? "error" : l == DIAG_WARNING ? "warning" : "note";
}

/* The source line and a ^~~~ under the span (its first line only). */
static void show_span(Diag *d, Span sp)
{
	int len;
	const char *line = src_line(sp.file, sp.first_line, &len);
	if (!sp.file || sp.first_line < 1 || sp.first_line > sp.file->nlines)
		return;
	fprintf(d->out, "%.*s\n", len, line);
	int col = sp.first_column - 1;
	if (col > len)
		col = len;
	int end = sp.last_line == sp.first_line ? sp.last_column : len;
	if (end > len)
		end = len;
	for (int i = 0; i < col; i++)
		fputc(line[i] == '\t' ? '\t' : ' ', d->out);
	fputc('^', d->out);
	for (int i = col + 1; i < end; i++)
		fputc('~', d->out);
	fputc('\n', d->out);
}

void diag_vreport(Diag *d, DiagLevel lvl, Span sp, const char *fmt, va_list ap)
{
	if (lvl == DIAG_ERROR && d->nerrors >= SUP_MAX_ERRORS)
		return;
	if (sp.file)
		fprintf(d->out, "%s:%d:%d: %s: ", sp.file->path, sp.first_line,
		        sp.first_column, level_name(lvl));
	else
		fprintf(d->out, "slapoc: %s: ", level_name(lvl));
	vfprintf(d->out, fmt, ap);
	fputc('\n', d->out);
	if (sp.file)
		show_span(d, sp);
	if (lvl == DIAG_ERROR) {
		if (++d->nerrors == SUP_MAX_ERRORS) {
			fprintf(d->out, "slapoc: error: too many errors, stopping\n");
			if (d->bail)
				longjmp(*d->bail, 1);
		}
	} else if (lvl == DIAG_WARNING) {
		d->nwarnings++;
	}
}

void diag_report(Diag *d, DiagLevel lvl, Span sp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vreport(d, lvl, sp, fmt, ap);
	va_end(ap);
}

void diag_plain(Diag *d, DiagLevel lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	Span none = {0};
	diag_vreport(d, lvl, none, fmt, ap);
	va_end(ap);
}

void diag_push(Diag *d, Span sp, const char *fmt, ...)
{
	if (d->nctx < 16) {
		char buf[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(buf, sizeof buf, fmt, ap);
		va_end(ap);
		d->ctx_msg[d->nctx] = arena_strdup(d->arena, buf);
		d->ctx_span[d->nctx] = sp;
	}
	d->nctx++;
}

void diag_pop(Diag *d)
{
	if (d->nctx > 0)
		d->nctx--;
}

void diag_bail(Diag *d)
{
	int n = d->nctx < 16 ? d->nctx : 16;
	d->nctx = 0;
	for (int i = n - 1; i >= 0; i--)
		diag_report(d, DIAG_NOTE, d->ctx_span[i], "%s", d->ctx_msg[i]);
	if (d->bail)
		longjmp(*d->bail, 1);
	fputs("slapoc: internal error: no recovery point\n", d->out);
	_Exit(2);
}

void diag_fatal(Diag *d, Span sp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vreport(d, DIAG_ERROR, sp, fmt, ap);
	va_end(ap);
	diag_bail(d);
}
