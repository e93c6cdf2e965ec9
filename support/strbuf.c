/* strbuf.c - growable strings, and Python-style float formatting. */
#include "support/support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void sb_grow(StrBuf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		fputs("slapoc: fatal: out of memory\n", stderr);
		_Exit(2);
	}
	b->data = p;
	b->cap = cap;
}

void sb_putn(StrBuf *b, const char *s, size_t n)
{
	sb_grow(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
}

void sb_putc(StrBuf *b, char c)
{
	sb_putn(b, &c, 1);
}

void sb_puts(StrBuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

void sb_vprintf(StrBuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	sb_grow(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void sb_printf(StrBuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_vprintf(b, fmt, ap);
	va_end(ap);
}

void sb_free(StrBuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* repr(float) in Python: the shortest digit string that reads back as
 * the same double, written positionally when the decimal exponent is in
 * [-4, 16), otherwise as d.ddde±XX. */
void sb_pyfloat(StrBuf *b, double v)
{
	if (isnan(v)) {
		sb_puts(b, "nan");
		return;
	}
	if (isinf(v)) {
		sb_puts(b, v < 0 ? "-inf" : "inf");
		return;
	}
	char buf[64];
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* buf = [-]d.ddde[+-]XX: take the digits and the exponent apart */
	char digits[32];
	int nd = 0, neg = 0;
	const char *p = buf;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[nd++] = *p;
	int exp = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = 0;
	if (neg)
		sb_putc(b, '-');
	if (exp >= -4 && exp < 16) {
		if (exp < 0) {
			sb_puts(b, "0.");
			for (int i = -1; i > exp; i--)
				sb_putc(b, '0');
			sb_puts(b, digits);
		} else {
			for (int i = 0; i <= exp || i < nd; i++) {
				if (i == exp + 1)
					sb_putc(b, '.');
				sb_putc(b, i < nd ? digits[i] : '0');
			}
			if (nd <= exp + 1)
				sb_puts(b, ".0");
		}
	} else {
		sb_putc(b, digits[0]);
		if (nd > 1) {
			sb_putc(b, '.');
			sb_puts(b, digits + 1);
		}
		sb_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
	}
}
