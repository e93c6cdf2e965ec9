/* json.c - a small strict JSON parser for safetensors headers.
 *
 * Recursive descent over a byte buffer (not NUL-terminated) into a tree
 * allocated from blocks owned by the document. Strict where the
 * safetensors reference (serde_json) is strict, and stricter where the
 * format asks for it: the whole text must be UTF-8, nesting is limited,
 * duplicate keys in an object are an error, \u escapes must pair their
 * surrogates, strings may not hold raw control characters, and nothing
 * may follow the value but whitespace.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

struct RtJsonBlock {
	RtJsonBlock *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

typedef struct Parser {
	const char *s;
	size_t len, pos;
	int depth, max_depth;
	RtJsonDoc *doc;
	SlapoStatus st;
	char *err;
	size_t err_size;
} Parser;

/* ---- memory ---------------------------------------------------------- */

static void *doc_alloc(Parser *p, size_t size)
{
	RtJsonBlock *b = p->doc->blocks;
	size = (size + 15) & ~(size_t)15;
	if (!b || b->cap - b->used < size) {
		size_t cap = size > 65536 ? size : 65536;
		b = rt_malloc(sizeof *b + cap);
		if (!b) {
			p->st = SLAPO_OUT_OF_MEMORY;
			snprintf(p->err, p->err_size, "out of memory");
			return NULL;
		}
		b->next = p->doc->blocks;
		b->used = 0;
		b->cap = cap;
		p->doc->blocks = b;
	}
	b->used += size;
	return b->data + b->used - size;
}

void rt_json_free(RtJsonDoc *doc)
{
	RtJsonBlock *b, *next;
	for (b = doc->blocks; b; b = next) {
		next = b->next;
		rt_free(b);
	}
	doc->blocks = NULL;
	memset(&doc->root, 0, sizeof doc->root);
}

static int fail(Parser *p, const char *what)
{
	if (p->st == SLAPO_OK) {
		p->st = SLAPO_FORMAT;
		snprintf(p->err, p->err_size, "at byte %zu: %s", p->pos, what);
	}
	return -1;
}

static int oom(Parser *p)
{
	p->st = SLAPO_OUT_OF_MEMORY;
	snprintf(p->err, p->err_size, "out of memory");
	return -1;
}

/* ---- UTF-8 ----------------------------------------------------------- */

int rt_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i], lo = 0x80, hi = 0xbf, n, k;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* no overlongs */
			if (c == 0xed)
				hi = 0x9f; /* no surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f; /* <= U+10FFFF */
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += n + 1;
	}
	return 1;
}

/* ---- lexing helpers -------------------------------------------------- */

static void skip_ws(Parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static int peek(Parser *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int hex4(Parser *p, size_t at, unsigned *out)
{
	unsigned v = 0;
	size_t i;
	if (p->len - at < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char c = p->s[at + i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Parses a string at p->pos (the opening quote) into a NUL-terminated
 * decoded copy. Decoding never grows the text, so the raw span (found
 * first) bounds the copy's size. */
static int parse_string(Parser *p, const char **out, size_t *out_len)
{
	size_t start = ++p->pos, end = start, n = 0;
	char *o;
	while (end < p->len && p->s[end] != '"') {
		if ((unsigned char)p->s[end] < 0x20)
			return p->pos = end, fail(p, "control character in string");
		end += p->s[end] == '\\' ? 2 : 1;
	}
	if (end >= p->len)
		return fail(p, "unterminated string");
	o = doc_alloc(p, end - start + 1);
	if (!o)
		return -1;
	while (p->pos < end) {
		char c = p->s[p->pos];
		unsigned cp, lo;
		if (c != '\\') {
			o[n++] = c;
			p->pos++;
			continue;
		}
		c = p->s[p->pos + 1];
		p->pos += 2;
		switch (c) {
		case '"':
			o[n++] = '"';
			break;
		case '\\':
			o[n++] = '\\';
			break;
		case '/':
			o[n++] = '/';
			break;
		case 'b':
			o[n++] = '\b';
			break;
		case 'f':
			o[n++] = '\f';
			break;
		case 'n':
			o[n++] = '\n';
			break;
		case 'r':
			o[n++] = '\r';
			break;
		case 't':
			o[n++] = '\t';
			break;
		case 'u':
			if (hex4(p, p->pos, &cp) != 0)
				return fail(p, "bad \\u escape");
			p->pos += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(p, "lone low surrogate in \\u escape");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (p->pos + 6 > end || p->s[p->pos] != '\\' ||
				    p->s[p->pos + 1] != 'u' ||
				    hex4(p, p->pos + 2, &lo) != 0 || lo < 0xdc00 ||
				    lo > 0xdfff)
					return fail(p,
					            "lone high surrogate in \\u escape");
				p->pos += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			n += put_utf8(o + n, cp);
			break;
		default:
			p->pos -= 2;
			return fail(p, "bad escape in string");
		}
	}
	o[n] = '\0';
	p->pos = end + 1;
	*out = o;
	*out_len = n;
	return 0;
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int parse_number(Parser *p, RtJson *v)
{
	size_t start = p->pos;
	if (peek(p) == '-')
		p->pos++;
	if (peek(p) == '0') {
		p->pos++;
	} else if (is_digit(peek(p))) {
		while (is_digit(peek(p)))
			p->pos++;
	} else {
		return fail(p, "bad number");
	}
	if (peek(p) == '.') {
		p->pos++;
		if (!is_digit(peek(p)))
			return fail(p, "bad number");
		while (is_digit(peek(p)))
			p->pos++;
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (!is_digit(peek(p)))
			return fail(p, "bad number");
		while (is_digit(peek(p)))
			p->pos++;
	}
	v->type = RT_JSON_NUMBER;
	v->str = p->s + start;
	v->len = p->pos - start;
	return 0;
}

static int parse_literal(Parser *p, const char *word, RtJsonType t, RtJson *v)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return fail(p, "unexpected character");
	p->pos += n;
	v->type = t;
	return 0;
}

/* ---- arrays and objects ---------------------------------------------- */

static int parse_value(Parser *p, RtJson *v);

/* A growable buffer of n elements of size sz, freed by the caller. */
static int grow(Parser *p, void **buf, size_t *cap, size_t n, size_t sz)
{
	void *nb;
	size_t ncap;
	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	nb = rt_realloc(*buf, ncap * sz);
	if (!nb)
		return oom(p);
	*buf = nb;
	*cap = ncap;
	return 0;
}

static int enter(Parser *p)
{
	if (++p->depth > p->max_depth) {
		char what[64];
		snprintf(what, sizeof what, "nesting deeper than %d", p->max_depth);
		return fail(p, what);
	}
	p->pos++;
	return 0;
}

static int parse_array(Parser *p, RtJson *v)
{
	RtJson *items = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;
	if (enter(p) != 0)
		return -1;
	skip_ws(p);
	if (peek(p) == ']') {
		p->pos++;
		rc = 0;
		goto done;
	}
	for (;;) {
		if (grow(p, (void **)&items, &cap, n, sizeof *items) != 0)
			goto done;
		memset(&items[n], 0, sizeof items[n]);
		if (parse_value(p, &items[n]) != 0)
			goto done;
		n++;
		skip_ws(p);
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) == ']') {
			p->pos++;
			rc = 0;
			break;
		}
		fail(p, "expected ',' or ']' in array");
		goto done;
	}
done:
	if (rc == 0 && n > 0) {
		v->items = doc_alloc(p, n * sizeof *items);
		if (v->items)
			memcpy(v->items, items, n * sizeof *items);
		else
			rc = -1;
	}
	rt_free(items);
	v->type = RT_JSON_ARRAY;
	v->len = n;
	p->depth--;
	return rc;
}

static int key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

/* The object being checked for duplicate keys by qsort. */
static _Thread_local const RtJson *dup_obj;

static int idx_cmp(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	return key_cmp(dup_obj->keys[i], dup_obj->key_lens[i], dup_obj->keys[j],
	               dup_obj->key_lens[j]);
}

/* Fails on the first key that appears twice. */
static int check_dups(Parser *p, const RtJson *v)
{
	size_t *idx, i;
	if (v->len < 2)
		return 0;
	idx = rt_malloc(v->len * sizeof *idx);
	if (!idx)
		return oom(p);
	for (i = 0; i < v->len; i++)
		idx[i] = i;
	dup_obj = v;
	qsort(idx, v->len, sizeof *idx, idx_cmp);
	for (i = 1; i < v->len; i++) {
		if (idx_cmp(&idx[i - 1], &idx[i]) == 0) {
			char what[RT_NAME_MAX + 40];
			snprintf(what, sizeof what, "duplicate key \"%.200s\"",
			         v->keys[idx[i]]);
			rt_free(idx);
			return fail(p, what);
		}
	}
	rt_free(idx);
	return 0;
}

static int parse_object(Parser *p, RtJson *v)
{
	RtJson *vals = NULL;
	const char **keys = NULL;
	size_t *lens = NULL, n = 0, vcap = 0, kcap = 0, lcap = 0;
	int rc = -1;
	if (enter(p) != 0)
		return -1;
	skip_ws(p);
	if (peek(p) == '}') {
		p->pos++;
		rc = 0;
		goto done;
	}
	for (;;) {
		if (grow(p, (void **)&vals, &vcap, n, sizeof *vals) != 0 ||
		    grow(p, (void **)&keys, &kcap, n, sizeof *keys) != 0 ||
		    grow(p, (void **)&lens, &lcap, n, sizeof *lens) != 0)
			goto done;
		skip_ws(p);
		if (peek(p) != '"') {
			fail(p, "expected a string key in object");
			goto done;
		}
		if (parse_string(p, &keys[n], &lens[n]) != 0)
			goto done;
		skip_ws(p);
		if (peek(p) != ':') {
			fail(p, "expected ':' after object key");
			goto done;
		}
		p->pos++;
		memset(&vals[n], 0, sizeof vals[n]);
		if (parse_value(p, &vals[n]) != 0)
			goto done;
		n++;
		skip_ws(p);
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) == '}') {
			p->pos++;
			rc = 0;
			break;
		}
		fail(p, "expected ',' or '}' in object");
		goto done;
	}
done:
	v->type = RT_JSON_OBJECT;
	v->len = n;
	if (rc == 0 && n > 0) {
		v->items = doc_alloc(p, n * sizeof *vals);
		v->keys = doc_alloc(p, n * sizeof *keys);
		v->key_lens = doc_alloc(p, n * sizeof *lens);
		if (!v->items || !v->keys || !v->key_lens) {
			rc = -1;
		} else {
			memcpy(v->items, vals, n * sizeof *vals);
			memcpy(v->keys, keys, n * sizeof *keys);
			memcpy(v->key_lens, lens, n * sizeof *lens);
			rc = check_dups(p, v);
		}
	}
	rt_free(vals);
	rt_free(keys);
	rt_free(lens);
	p->depth--;
	return rc;
}

static int parse_value(Parser *p, RtJson *v)
{
	skip_ws(p);
	switch (peek(p)) {
	case '{':
		return parse_object(p, v);
	case '[':
		return parse_array(p, v);
	case '"':
		v->type = RT_JSON_STRING;
		return parse_string(p, &v->str, &v->len);
	case 't':
		return parse_literal(p, "true", RT_JSON_TRUE, v);
	case 'f':
		return parse_literal(p, "false", RT_JSON_FALSE, v);
	case 'n':
		return parse_literal(p, "null", RT_JSON_NULL, v);
	case -1:
		return fail(p, "unexpected end of input");
	default:
		if (peek(p) == '-' || is_digit(peek(p)))
			return parse_number(p, v);
		return fail(p, "unexpected character");
	}
}

SlapoStatus rt_json_parse(const char *text, size_t len, int max_depth, RtJsonDoc *doc,
                          char *err, size_t err_size)
{
	Parser p;
	memset(doc, 0, sizeof *doc);
	memset(&p, 0, sizeof p);
	p.s = text;
	p.len = len;
	p.max_depth = max_depth;
	p.doc = doc;
	p.st = SLAPO_OK;
	p.err = err;
	p.err_size = err_size;
	if (err_size)
		err[0] = '\0';
	if (!rt_utf8_valid((const unsigned char *)text, len)) {
		snprintf(err, err_size, "not valid UTF-8");
		return SLAPO_FORMAT;
	}
	if (parse_value(&p, &doc->root) == 0) {
		skip_ws(&p);
		if (p.pos != p.len)
			fail(&p, "unexpected characters after the JSON value");
	}
	if (p.st != SLAPO_OK)
		rt_json_free(doc);
	return p.st;
}

/* ---- accessors ------------------------------------------------------- */

int rt_json_u64(const RtJson *v, uint64_t *out)
{
	uint64_t x = 0;
	size_t i;
	if (v->type != RT_JSON_NUMBER || v->len == 0)
		return 0;
	for (i = 0; i < v->len; i++) {
		unsigned d;
		if (!is_digit((unsigned char)v->str[i]))
			return 0; /* sign, fraction or exponent */
		d = (unsigned)(v->str[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return 0;
		x = x * 10 + d;
	}
	*out = x;
	return 1;
}

const RtJson *rt_json_get(const RtJson *obj, const char *key)
{
	size_t i, n = strlen(key);
	if (obj->type != RT_JSON_OBJECT)
		return NULL;
	for (i = 0; i < obj->len; i++)
		if (obj->key_lens[i] == n && memcmp(obj->keys[i], key, n) == 0)
			return &obj->items[i];
	return NULL;
}
