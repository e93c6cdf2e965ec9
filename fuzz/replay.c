/* replay.c - a main() for a fuzz target without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file named, and on every regular
 * file of every directory named (sorted by name, not recursive).
 *
 *   fuzz_replay_X [-v] DIR|FILE...
 *
 * -v prints each file's name before running it (and sets fuzz_verbose,
 * so that a target may describe what it decoded). A crash, a sanitizer
 * report or an abort in the target is the test's failure; the exit
 * status is 0 after the last file, 1 when a file cannot be read or no
 * file was found at all. A path that does not exist is skipped.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return -1;
	}
	size_t cap = 1 << 16, len = 0, n;
	uint8_t *buf = malloc(cap);
	while (buf && (n = fread(buf + len, 1, cap - len, fp)) > 0) {
		len += n;
		if (len == cap) {
			uint8_t *b = realloc(buf, cap *= 2);
			if (!b)
				free(buf);
			buf = b;
		}
	}
	fclose(fp);
	if (!buf) {
		fprintf(stderr, "replay: out of memory reading %s\n", path);
		return -1;
	}
	if (fuzz_verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	/* an exact-size copy, so that ASan sees reads past the end */
	uint8_t *exact = malloc(len ? len : 1);
	if (exact)
		memcpy(exact, buf, len);
	free(buf);
	if (!exact)
		return -1;
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 1;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "replay: cannot open directory %s\n", dir);
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
			if (!nn)
				break;
			names = nn;
		}
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof *names, cmp);
	int count = 0, bad = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			int r = replay_file(path);
			if (r < 0)
				bad = 1;
			else
				count += r;
		}
		free(names[i]);
	}
	free(names);
	return bad ? -1 : count;
}

int main(int argc, char **argv)
{
	int total = 0, bad = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int r;
		if (strcmp(argv[i], "-v") == 0) {
			fuzz_verbose = 1;
			continue;
		}
		if (stat(argv[i], &st) != 0) {
			/* a directory of findings may not exist yet (git keeps no
			 * empty directories): not an error */
			if (fuzz_verbose)
				fprintf(stderr, "replay: no %s, skipped\n", argv[i]);
			continue;
		}
		r = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
		if (r < 0)
			bad = 1;
		else
			total += r;
	}
	printf("replayed %d input%s\n", total, total == 1 ? "" : "s");
	if (total == 0) {
		fprintf(stderr, "replay: no input found\n");
		return 1;
	}
	return bad;
}
