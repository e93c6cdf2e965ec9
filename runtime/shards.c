/* shards.c - sharded HF checkpoints: expands a path to
 * "model.safetensors.index.json" into the shard files its weight_map
 * names (in the index's directory, each once, in first-seen order), so
 * weights_load_safetensors can be given either the index or the shards.
 *
 * The index is read whole (at most RT_ST_MAX_HEADER bytes) and parsed by
 * the strict JSON parser; weight_map must map names to plain file names
 * (no '/', not "." or ".."), so an index cannot point outside its
 * directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

static int is_index(const char *path)
{
	size_t n = strlen(path);
	return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

/* Reads path whole into a new buffer. */
static SlapoStatus read_all(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long size;
	if (!f)
		return rt_error(SLAPO_IO, path, "cannot open %s: %s", path,
		                strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return rt_error(SLAPO_IO, path, "cannot read %s", path);
	}
	if ((unsigned long)size > RT_ST_MAX_HEADER) {
		fclose(f);
		return rt_error(SLAPO_FORMAT, path, "%s: index file too large", path);
	}
	buf = rt_malloc((size_t)size + 1);
	if (!buf) {
		fclose(f);
		return rt_error(SLAPO_OUT_OF_MEMORY, path, "out of memory");
	}
	if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
		fclose(f);
		rt_free(buf);
		return rt_error(SLAPO_IO, path, "cannot read %s", path);
	}
	fclose(f);
	*out = buf;
	*len = (size_t)size;
	return SLAPO_OK;
}

/* Appends a copy of s to list unless present. */
static SlapoStatus add_path(RtPathList *l, const char *s)
{
	char **np;
	int32_t i;
	for (i = 0; i < l->n; i++)
		if (strcmp(l->paths[i], s) == 0)
			return SLAPO_OK;
	np = rt_realloc(l->paths, (size_t)(l->n + 1) * sizeof *np);
	if (!np)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	l->paths = np;
	if (!(l->paths[l->n] = rt_strdup(s)))
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	l->n++;
	return SLAPO_OK;
}

static SlapoStatus expand_index(const char *path, RtPathList *l)
{
	const char *slash = strrchr(path, '/');
	size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0, len = 0, i;
	char *text = NULL, err[RT_MSG_MAX / 2], *full;
	const RtJson *map;
	RtJsonDoc doc;
	SlapoStatus st = read_all(path, &text, &len);
	if (st != SLAPO_OK)
		return st;
	st = rt_json_parse(text, len, RT_ST_MAX_DEPTH, &doc, err, sizeof err);
	rt_free(text);
	if (st != SLAPO_OK)
		return rt_error(st, path, "%s: invalid index JSON %s", path, err);
	map = rt_json_get(&doc.root, "weight_map");
	if (!map || map->type != RT_JSON_OBJECT) {
		rt_json_free(&doc);
		return rt_error(SLAPO_FORMAT, path, "%s: no \"weight_map\" object", path);
	}
	for (i = 0; i < map->len && st == SLAPO_OK; i++) {
		const RtJson *v = &map->items[i];
		if (v->type != RT_JSON_STRING || !v->len || strchr(v->str, '/') ||
		    strlen(v->str) != v->len || !strcmp(v->str, ".") ||
		    !strcmp(v->str, "..")) {
			st = rt_error(SLAPO_FORMAT, path,
			              "%s: weight_map entry \"%s\" is not a file name in "
			              "the index's directory",
			              path, map->keys[i]);
			break;
		}
		full = rt_malloc(dir_len + v->len + 1);
		if (!full) {
			st = rt_error(SLAPO_OUT_OF_MEMORY, path, "out of memory");
			break;
		}
		memcpy(full, path, dir_len);
		memcpy(full + dir_len, v->str, v->len + 1);
		st = add_path(l, full);
		rt_free(full);
	}
	rt_json_free(&doc);
	return st;
}

SlapoStatus rt_expand_paths(const char *const *paths, int32_t n, RtPathList *out)
{
	SlapoStatus st = SLAPO_OK;
	int32_t i;
	memset(out, 0, sizeof *out);
	for (i = 0; i < n && st == SLAPO_OK; i++)
		st = is_index(paths[i]) ? expand_index(paths[i], out)
		                        : add_path(out, paths[i]);
	if (st != SLAPO_OK)
		rt_free_paths(out);
	return st;
}

void rt_free_paths(RtPathList *l)
{
	int32_t i;
	for (i = 0; i < l->n; i++)
		rt_free(l->paths[i]);
	rt_free(l->paths);
	l->paths = NULL;
	l->n = 0;
}
