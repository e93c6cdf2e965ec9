/* link.c - linking the object file into a model library by running the
 * system compiler driver:
 *
 *   cc -shared -o out.so obj.o libslapo_rt.a -Wl,-u,slapo_get_api
 *      -Wl,--version-script=<script> -Wl,-z,defs -lpthread -lm
 * (OpenBLAS and CUDA are opened with dlopen by the runtime when used)
 *
 * ($CC replaces cc; SLAPO_LINK_ZDEFS=0 drops -z defs, for sanitizer
 * builds of the runtime, whose objects need the sanitizer's runtime.)
 *
 * The version script (written to a temporary file) exports slapo_get_api
 * only, so any number of model libraries load into one process. The
 * runtime archive is found as runtime/README.md describes: $SLAPO_RT_LIB,
 * else beside the running executable (build tree: <exe>/../runtime/,
 * install: <exe>/../lib/).
 */
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/codegen.h"

extern char **environ;

static bool is_file(const char *p)
{
	return p && access(p, R_OK) == 0;
}

const char *cg_find_rt_lib(Arena *a, const char *explicit_path)
{
	if (explicit_path && *explicit_path)
		return explicit_path;
	const char *env = getenv("SLAPO_RT_LIB");
	if (env && *env)
		return arena_strdup(a, env);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return NULL;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	static const char *const rel[] = {"/../runtime/libslapo_rt.a", "/../lib/libslapo_rt.a",
	                                  "/runtime/libslapo_rt.a", NULL};
	for (int i = 0; rel[i]; i++) {
		const char *p = arena_printf(a, "%s%s", exe, rel[i]);
		if (is_file(p))
			return p;
	}
	return NULL;
}

static const char SCRIPT[] = "{\n\tglobal:\n\t\tslapo_get_api;\n\tlocal:\n\t\t*;\n};\n";

bool cg_link(Diag *d, const char *obj, const char *out, const char *rt_lib, const char *cc)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	char script[PATH_MAX];
	snprintf(script, sizeof script, "%s/slapoc-XXXXXX.map", dir);
	int fd = mkstemps(script, 4);
	if (fd < 0) {
		diag_plain(d, DIAG_ERROR, "cannot create a temporary file in %s", dir);
		return false;
	}
	bool ok = write(fd, SCRIPT, sizeof SCRIPT - 1) == (ssize_t)(sizeof SCRIPT - 1);
	close(fd);
	if (!ok) {
		diag_plain(d, DIAG_ERROR, "cannot write %s", script);
		unlink(script);
		return false;
	}
	if (!cc || !*cc)
		cc = getenv("CC");
	if (!cc || !*cc)
		cc = "cc";
	/* CC may hold arguments ("gcc -m64") */
	char *ccbuf = strdup(cc);
	char *argv[48];
	int argc = 0;
	for (char *t = strtok(ccbuf, " \t"); t && argc < 16; t = strtok(NULL, " \t"))
		argv[argc++] = t;
	char vs[PATH_MAX + 32];
	snprintf(vs, sizeof vs, "-Wl,--version-script=%s", script);
	/* -z defs catches undefined symbols now rather than at dlopen; a
	 * sanitizer build of the runtime needs it off (SLAPO_LINK_ZDEFS=0) */
	const char *zd = getenv("SLAPO_LINK_ZDEFS");
	bool zdefs = !(zd && strcmp(zd, "0") == 0);
	const char *rest[] = {"-shared", "-o", out, obj, rt_lib, "-Wl,-u,slapo_get_api", vs,
	                      zdefs ? "-Wl,-z,defs" : "-Wl,-z,lazy", "-lpthread", "-lm", NULL};
	for (int i = 0; rest[i]; i++)
		argv[argc++] = (char *)rest[i];
	argv[argc] = NULL;
	pid_t pid;
	int st = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
	if (st != 0) {
		diag_plain(d, DIAG_ERROR, "cannot run the linker '%s': %s", argv[0], strerror(st));
		ok = false;
	} else {
		int ws = 0;
		while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
			;
		ok = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
		if (!ok)
			diag_plain(d, DIAG_ERROR, "linking %s failed (%s exited with status %d)", out,
			           argv[0], WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
	}
	free(ccbuf);
	unlink(script);
	return ok;
}
