/* common.c - helpers shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#ifndef SLAPO_SOURCE_ROOT
#define SLAPO_SOURCE_ROOT "."
#endif

int fuzz_verbose;

FILE *fuzz_devnull(void)
{
	static FILE *null;
	if (!null)
		null = fopen("/dev/null", "w");
	return null;
}

const char *fuzz_lang_dir(void)
{
	static char dir[4096];
	if (!dir[0]) {
		const char *root = getenv("SLAPO_ROOT");
		snprintf(dir, sizeof dir, "%s/lang", root && *root ? root : SLAPO_SOURCE_ROOT);
	}
	return dir;
}

/* Whether line[0..n) is "PATH:LINE:COL: " + rest (PATH without blanks);
 * *rest set to what follows. */
static bool diag_header(const char *line, size_t n, const char **rest)
{
	const char *end = line + n, *p = line;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	/* back up over ":LINE:COL:" */
	const char *q = p;
	if (q - line < 6 || q[-1] != ':')
		return false;
	q--;
	for (int field = 0; field < 2; field++) {
		const char *d = q;
		while (d > line && d[-1] >= '0' && d[-1] <= '9')
			d--;
		if (d == q || d == line || d[-1] != ':')
			return false;
		q = d - 1;
	}
	*rest = p;
	return p < end;
}

bool fuzz_internal_error(const char *diag)
{
	static const char key[] = " error: internal error";
	for (const char *line = diag; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		const char *rest;
		if (diag_header(line, n, &rest) || (n > 7 && memcmp(line, "slapoc:", 7) == 0 &&
		                                    (rest = line + 7))) {
			if ((size_t)(line + n - rest) >= sizeof key - 1 &&
			    memcmp(rest, key, sizeof key - 1) == 0)
				return true;
			const char *r2;
			const char *next = nl ? nl + 1 : NULL;
			const char *nnl = next ? strchr(next, '\n') : NULL;
			if (diag_header(line, n, &rest) && next &&
			    !diag_header(next, nnl ? (size_t)(nnl - next) : strlen(next), &r2)) {
				/* skip the echoed source line and its caret line */
				line = next;
				nl = nnl;
				if (nl && nl[1] && strspn(nl + 1, " ^~") == strcspn(nl + 1, "\n"))
					nl = strchr(nl + 1, '\n');
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}
