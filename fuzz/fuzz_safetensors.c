/* fuzz_safetensors.c - libFuzzer target: bytes into the runtime's
 * safetensors reader (rt_st_parse), its strict JSON parser
 * (rt_json_parse), and, for files the reader accepts, the whole weights
 * loader (rt_weights_load: name lookup, legacy renames, ties, dtype
 * conversion, shape checks) of the fake model of tests/runtime
 * (fake_model.c, linked in). Inputs that start with '{' are also tried as
 * a sharded checkpoint's model.safetensors.index.json (shards.c), in a
 * directory holding one valid shard.
 *
 * Contract checked: every call returns SLAPO_OK or an error status whose
 * last error carries the same code and a message; a parsed file's tensors
 * lie inside the buffer and are found by name; loading either succeeds
 * (then every parameter is set unless ALLOW_MISSING) or fails. Any
 * violation aborts (a finding), as does any crash, sanitizer report or
 * leak.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "rt.h"

enum {
	FUZZ_ST_MAX_INPUT = 1 << 20
};

extern const RtModelDesc slapo_model_desc; /* tests/runtime/fake_model.c */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_safetensors: contract violated: %s\n", what);
	abort();
}

static void check_error(SlapoStatus st, const char *call)
{
	const SlapoError *e = rt_last_error();
	if (st == SLAPO_OK)
		return;
	if (st < 0 || st > SLAPO_INTERNAL || st == SLAPO_INTERNAL) {
		fprintf(stderr, "%s returned status %d\n", call, (int)st);
		fail("unexpected status");
	}
	if (e->code != st || !e->message || !e->message[0]) {
		fprintf(stderr, "%s returned %d, last error %d '%s'\n", call, (int)st, (int)e->code,
		        e->message ? e->message : "(null)");
		fail("the last error does not describe the failure");
	}
}

static SlapoModel *model;
static char dir[64];     /* a private directory under /dev/shm or /tmp */
static char index_path[128];

/* A directory holding "model.safetensors" with every parameter of the
 * fake model, random values (what an index may name). */
static void setup(void)
{
	if (model)
		return;
	if (rt_model_open(&slapo_model_desc, &model) != SLAPO_OK)
		fail("cannot open the fake model");
	snprintf(dir, sizeof dir, "/dev/shm/slapo-fuzz-XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof dir, "/tmp/slapo-fuzz-XXXXXX");
		if (!mkdtemp(dir))
			fail("cannot make a temporary directory");
	}
	snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
	SlapoWeights *w;
	if (rt_weights_create(model, NULL, &w) != SLAPO_OK || rt_weights_init_random(w, 1) != SLAPO_OK)
		fail("cannot make random weights");
	const RtModelDesc *d = &slapo_model_desc;
	RtStWriteTensor *ts = calloc((size_t)d->n_params, sizeof *ts);
	DLManagedTensorVersioned **views = calloc((size_t)d->n_params, sizeof *views);
	int n = 0;
	for (int i = 0; i < d->n_params; i++) {
		if (rt_weights_get(w, d->params[i].name, &views[n]) != SLAPO_OK)
			fail("cannot read a random weight");
		DLTensor *t = &views[n]->dl_tensor;
		ts[n] = (RtStWriteTensor){d->params[i].name, t->dtype, t->ndim, t->shape,
		                          rt_tensor_ptr(t)};
		n++;
	}
	char shard[128];
	snprintf(shard, sizeof shard, "%s/model.safetensors", dir);
	if (rt_st_write(shard, n, ts, 0, NULL) != SLAPO_OK)
		fail("cannot write the shard");
	for (int i = 0; i < n; i++)
		views[i]->deleter(views[i]);
	free(views);
	free(ts);
	rt_weights_free(w);
}

static void cleanup(void)
{
	char p[160];
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	unlink(p);
	unlink(index_path);
	rmdir(dir);
}

static void load(const char *path, uint32_t flags)
{
	SlapoWeights *w;
	SlapoStatus st = rt_weights_create(model, NULL, &w);
	check_error(st, "rt_weights_create");
	if (st != SLAPO_OK)
		return;
	const char *paths[1] = {path};
	st = rt_weights_load(w, paths, 1, flags);
	check_error(st, "rt_weights_load");
	if (st == SLAPO_OK && !(flags & SLAPO_LOAD_ALLOW_MISSING) &&
	    rt_weights_check(w) != SLAPO_OK)
		fail("weights_load succeeded but parameters are missing");
	if (st != SLAPO_OK && rt_weights_check(w) == SLAPO_OK)
		fail("a failed weights_load changed the weights");
	rt_weights_free(w);
}

static void try_index(const uint8_t *data, size_t size, uint32_t flags)
{
	FILE *fp = fopen(index_path, "wb");
	if (!fp)
		return;
	fwrite(data, 1, size, fp);
	fclose(fp);
	load(index_path, flags);
	unlink(index_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_ST_MAX_INPUT)
		return 0;
	if (!model) {
		setup();
		atexit(cleanup);
	}
	/* the flags come from the size, so that the bytes stay a file */
	uint32_t flags = (size & 1 ? SLAPO_LOAD_STRICT : 0) | (size & 2 ? SLAPO_LOAD_ALLOW_MISSING : 0);

	RtJsonDoc doc;
	char err[256];
	SlapoStatus st = rt_json_parse((const char *)data, size, RT_ST_MAX_DEPTH, &doc, err,
	                               sizeof err);
	if (st == SLAPO_OK)
		rt_json_free(&doc);
	else if (st != SLAPO_FORMAT && st != SLAPO_OUT_OF_MEMORY)
		fail("rt_json_parse returned an unexpected status");

	RtStFile f;
	rt_clear_error();
	st = rt_st_parse("fuzz", data, size, &f);
	check_error(st, "rt_st_parse");
	if (st == SLAPO_OK) {
		for (int32_t i = 0; i < f.n_tensors; i++) {
			const RtStTensor *t = &f.tensors[i];
			if (t->end < t->begin || t->data < data || t->end - t->begin > size ||
			    t->data + (t->end - t->begin) > data + size)
				fail("a tensor lies outside the file");
			if (rt_st_find(&f, t->name) != t)
				fail("rt_st_find does not find a tensor by its name");
			int64_t numel = rt_numel(t->ndim, t->shape);
			if (numel < 0)
				fail("a tensor's shape overflows");
		}
		rt_st_close(&f);
		/* the whole loader, through a file in memory */
		int fd = memfd_create("fuzz.safetensors", 0);
		if (fd >= 0) {
			char path[64];
			snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
			if (write(fd, data, size) == (ssize_t)size)
				load(path, flags);
			close(fd);
		}
	}
	if (size > 0 && data[0] == '{')
		try_index(data, size, flags);
	return 0;
}
