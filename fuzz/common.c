/* common.c - helpers shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"

#include <stdlib.h>

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
