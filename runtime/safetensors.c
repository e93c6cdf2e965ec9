/* safetensors.c - reading and writing HuggingFace safetensors files.
 *
 * The reader maps the file read-only and validates it with the rules of
 * the reference implementation (huggingface/safetensors tensor.rs), in
 * its order, naming the reference error in each message:
 *
 *   git-lfs pointer       "version https://git-lfs..." (said plainly)
 *   HeaderTooSmall        fewer than 8 bytes
 *   HeaderTooLarge        N > 100,000,000 (checked before anything else
 *                         is read or allocated)
 *   InvalidHeaderLength   N > file size - 8
 *   InvalidHeader         header not UTF-8
 *   InvalidHeaderStart    header does not start with '{'
 *   InvalidHeaderDeserialization   bad JSON, nesting, duplicate keys,
 *                         non-string __metadata__, bad tensor entries,
 *                         unknown dtype
 *   InvalidOffset         tensors sorted by offsets are not contiguous
 *                         from 0 (gap, overlap, end < begin)
 *   ValidationOverflow    shape x dtype size overflows
 *   MisalignedSlice       sub-byte tensor not a whole number of bytes
 *   TensorInvalidInfo     data_offsets span != shape x dtype size
 *   MetadataIncompleteBuffer  data does not end exactly at end of file
 *
 * Tensor data is never assumed aligned: users copy/convert with memcpy.
 * The writer lays tensors out as the reference writer does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

static const struct {
	const char *name;
	DLDataType type;
} st_dtypes[] = {
        {"BOOL", {kDLBool, 8, 1}},
        {"U8", {kDLUInt, 8, 1}},
        {"I8", {kDLInt, 8, 1}},
        {"F8_E5M2", {kDLFloat8_e5m2, 8, 1}},
        {"F8_E4M3", {kDLFloat8_e4m3fn, 8, 1}},
        {"F8_E8M0", {kDLFloat8_e8m0fnu, 8, 1}},
        {"F8_E4M3FNUZ", {kDLFloat8_e4m3fnuz, 8, 1}},
        {"F8_E5M2FNUZ", {kDLFloat8_e5m2fnuz, 8, 1}},
        {"I16", {kDLInt, 16, 1}},
        {"U16", {kDLUInt, 16, 1}},
        {"F16", {kDLFloat, 16, 1}},
        {"BF16", {kDLBfloat, 16, 1}},
        {"I32", {kDLInt, 32, 1}},
        {"U32", {kDLUInt, 32, 1}},
        {"F32", {kDLFloat, 32, 1}},
        {"I64", {kDLInt, 64, 1}},
        {"U64", {kDLUInt, 64, 1}},
        {"F64", {kDLFloat, 64, 1}},
        {"C64", {kDLComplex, 64, 1}},
        {"F4", {kDLFloat4_e2m1fn, 4, 1}},
        {"F6_E2M3", {kDLFloat6_e2m3fn, 6, 1}},
        {"F6_E3M2", {kDLFloat6_e3m2fn, 6, 1}},
};

#define N_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

int rt_st_dtype(const char *name, size_t len, DLDataType *out, const char **canonical)
{
	size_t i;
	for (i = 0; i < N_DTYPES; i++) {
		if (strlen(st_dtypes[i].name) == len &&
		    memcmp(st_dtypes[i].name, name, len) == 0) {
			*out = st_dtypes[i].type;
			if (canonical)
				*canonical = st_dtypes[i].name;
			return 1;
		}
	}
	return 0;
}

const char *rt_st_dtype_name(DLDataType t)
{
	size_t i;
	for (i = 0; i < N_DTYPES; i++)
		if (rt_dtype_eq(st_dtypes[i].type, t))
			return st_dtypes[i].name;
	return NULL;
}

/* ---- reading --------------------------------------------------------- */

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;
	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static int cmp_offsets(const void *a, const void *b)
{
	const RtStTensor *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_names(const void *a, const void *b)
{
	const RtStTensor *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* Fills t from the JSON entry {"dtype", "shape", "data_offsets"}. */
static SlapoStatus read_entry(RtStFile *f, const char *name, const RtJson *v,
                              RtStTensor *t, int64_t **shape_at)
{
	const RtJson *dt, *sh, *off;
	uint64_t u;
	size_t i;
	const char *path = f->path;
	if (v->type != RT_JSON_OBJECT)
		return rt_error(SLAPO_FORMAT, path,
		                "%s: InvalidHeaderDeserialization: entry \"%s\" is "
		                "not an object",
		                path, name);
	for (i = 0; i < v->len; i++) {
		const char *k = v->keys[i];
		if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
			return rt_error(SLAPO_FORMAT, path,
			                "%s: InvalidHeaderDeserialization: tensor \"%s\" "
			                "has unknown field \"%s\"",
			                path, name, k);
	}
	dt = rt_json_get(v, "dtype");
	sh = rt_json_get(v, "shape");
	off = rt_json_get(v, "data_offsets");
	if (!dt || !sh || !off)
		return rt_error(SLAPO_FORMAT, path,
		                "%s: InvalidHeaderDeserialization: tensor \"%s\" "
		                "lacks \"%s\"",
		                path, name,
		                !dt   ? "dtype"
		                : !sh ? "shape"
		                      : "data_offsets");
	if (dt->type != RT_JSON_STRING ||
	    !rt_st_dtype(dt->str, dt->len, &t->dtype, &t->dtype_name))
		return rt_error(SLAPO_FORMAT, path,
		                "%s: InvalidHeaderDeserialization: tensor \"%s\" has "
		                "unknown dtype %s%.40s%s",
		                path, name, dt->type == RT_JSON_STRING ? "\"" : "",
		                dt->type == RT_JSON_STRING ? dt->str : "(not a string)",
		                dt->type == RT_JSON_STRING ? "\"" : "");
	if (sh->type != RT_JSON_ARRAY)
		return rt_error(SLAPO_FORMAT, path,
		                "%s: InvalidHeaderDeserialization: tensor \"%s\": "
		                "shape is not an array",
		                path, name);
	t->ndim = (int32_t)sh->len;
	t->shape = *shape_at;
	for (i = 0; i < sh->len; i++) {
		if (!rt_json_u64(&sh->items[i], &u) || u > (uint64_t)INT64_MAX)
			return rt_error(
			        SLAPO_FORMAT, path,
			        "%s: InvalidHeaderDeserialization: tensor \"%s\": "
			        "shape entries must be non-negative integers",
			        path, name);
		(*shape_at)[i] = (int64_t)u;
	}
	*shape_at += sh->len;
	if (off->type != RT_JSON_ARRAY || off->len != 2 ||
	    !rt_json_u64(&off->items[0], &t->begin) ||
	    !rt_json_u64(&off->items[1], &t->end))
		return rt_error(SLAPO_FORMAT, path,
		                "%s: InvalidHeaderDeserialization: tensor \"%s\": "
		                "data_offsets must be [begin, end] non-negative "
		                "integers",
		                path, name);
	t->name = name;
	return SLAPO_OK;
}

static SlapoStatus read_metadata(RtStFile *f, const RtJson *v)
{
	size_t i;
	if (v->type != RT_JSON_OBJECT)
		return rt_error(SLAPO_FORMAT, f->path,
		                "%s: InvalidHeaderDeserialization: __metadata__ must "
		                "be a map of strings to strings",
		                f->path);
	f->meta_keys = rt_calloc(v->len, sizeof *f->meta_keys);
	f->meta_values = rt_calloc(v->len, sizeof *f->meta_values);
	if (!f->meta_keys || !f->meta_values)
		return rt_error(SLAPO_OUT_OF_MEMORY, f->path, "out of memory");
	for (i = 0; i < v->len; i++) {
		if (v->items[i].type != RT_JSON_STRING)
			return rt_error(SLAPO_FORMAT, f->path,
			                "%s: InvalidHeaderDeserialization: __metadata__ "
			                "value of \"%s\" is not a string",
			                f->path, v->keys[i]);
		f->meta_keys[i] = v->keys[i];
		f->meta_values[i] = v->items[i].str;
	}
	f->n_meta = (int32_t)v->len;
	return SLAPO_OK;
}

/* The offset rules, on tensors sorted by (begin, end). */
static SlapoStatus check_offsets(RtStFile *f, uint64_t data_len)
{
	uint64_t expect = 0;
	int32_t i;
	const char *path = f->path;
	for (i = 0; i < f->n_tensors; i++) {
		RtStTensor *t = &f->tensors[i];
		uint64_t elems = 1, bits;
		int32_t d;
		if (t->begin != expect || t->end < t->begin)
			return rt_error(SLAPO_FORMAT, path,
			                "%s: InvalidOffset: tensor \"%s\" has "
			                "data_offsets [%llu, %llu] but must begin at "
			                "%llu: tensors must tile the data with no gap or "
			                "overlap",
			                path, t->name, (unsigned long long)t->begin,
			                (unsigned long long)t->end,
			                (unsigned long long)expect);
		for (d = 0; d < t->ndim; d++) {
			uint64_t s = (uint64_t)t->shape[d];
			if (s != 0 && elems > UINT64_MAX / s)
				return rt_error(
				        SLAPO_FORMAT, path,
				        "%s: ValidationOverflow: tensor \"%s\" has "
				        "too many elements",
				        path, t->name);
			elems *= s;
		}
		if (elems > UINT64_MAX / t->dtype.bits)
			return rt_error(SLAPO_FORMAT, path,
			                "%s: ValidationOverflow: tensor \"%s\" is too "
			                "large",
			                path, t->name);
		bits = elems * t->dtype.bits;
		if (bits % 8 != 0)
			return rt_error(SLAPO_FORMAT, path,
			                "%s: MisalignedSlice: tensor \"%s\" is not a "
			                "whole number of bytes",
			                path, t->name);
		if (bits / 8 != t->end - t->begin) {
			char sh[256];
			rt_shape_str(sh, sizeof sh, t->ndim, t->shape, NULL);
			return rt_error(SLAPO_FORMAT, path,
			                "%s: TensorInvalidInfo: tensor \"%s\" is %s %s "
			                "(%llu bytes) but its data_offsets span %llu "
			                "bytes",
			                path, t->name, t->dtype_name, sh,
			                (unsigned long long)(bits / 8),
			                (unsigned long long)(t->end - t->begin));
		}
		expect = t->end;
	}
	if (expect > data_len)
		return rt_error(SLAPO_FORMAT, path,
		                "%s: MetadataIncompleteBuffer: the file is truncated: "
		                "tensors need %llu bytes of data but only %llu follow "
		                "the header",
		                path, (unsigned long long)expect,
		                (unsigned long long)data_len);
	if (expect < data_len)
		return rt_error(SLAPO_FORMAT, path,
		                "%s: MetadataIncompleteBuffer: %llu unindexed bytes "
		                "follow the last tensor",
		                path, (unsigned long long)(data_len - expect));
	return SLAPO_OK;
}

static SlapoStatus parse_header(RtStFile *f, const uint8_t *data, uint64_t n,
                                uint64_t data_len)
{
	const RtJson *root = &f->json.root;
	const uint8_t *base = data + 8 + n;
	size_t i, n_dims = 0;
	int64_t *shape_at;
	int32_t k = 0;
	SlapoStatus st;
	/* Size the tensor and shape arrays first. */
	for (i = 0; i < root->len; i++) {
		const RtJson *sh = rt_json_get(&root->items[i], "shape");
		if (sh && sh->type == RT_JSON_ARRAY)
			n_dims += sh->len;
	}
	f->tensors = rt_calloc(root->len, sizeof *f->tensors);
	f->shapes = rt_calloc(n_dims, sizeof *f->shapes);
	if (!f->tensors || !f->shapes)
		return rt_error(SLAPO_OUT_OF_MEMORY, f->path, "out of memory");
	shape_at = f->shapes;
	for (i = 0; i < root->len; i++) {
		const char *name = root->keys[i];
		if (strcmp(name, "__metadata__") == 0) {
			st = read_metadata(f, &root->items[i]);
		} else if (strlen(name) != root->key_lens[i]) {
			st = rt_error(SLAPO_FORMAT, f->path,
			              "%s: InvalidHeaderDeserialization: a tensor name "
			              "contains a NUL character",
			              f->path);
		} else {
			st = read_entry(f, name, &root->items[i], &f->tensors[k],
			                &shape_at);
			k++;
		}
		if (st != SLAPO_OK)
			return st;
	}
	f->n_tensors = k;
	qsort(f->tensors, (size_t)k, sizeof *f->tensors, cmp_offsets);
	st = check_offsets(f, data_len);
	if (st != SLAPO_OK)
		return st;
	for (k = 0; k < f->n_tensors; k++)
		f->tensors[k].data = base + f->tensors[k].begin;
	qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_names);
	return SLAPO_OK;
}

SlapoStatus rt_st_parse(const char *name, const uint8_t *data, size_t len, RtStFile *f)
{
	static const char lfs[] = "version https://git-lfs";
	char err[RT_MSG_MAX - 128];
	uint64_t n;
	SlapoStatus st;
	memset(f, 0, sizeof *f);
	f->path = name;
	if (len >= sizeof lfs - 1 && memcmp(data, lfs, sizeof lfs - 1) == 0)
		return rt_error(SLAPO_FORMAT, name,
		                "%s is a git-lfs pointer file, not the tensors: "
		                "fetch the real file (git lfs pull, or download it "
		                "again)",
		                name);
	if (len < 8)
		return rt_error(SLAPO_FORMAT, name,
		                "%s: HeaderTooSmall: %zu bytes is too short for a "
		                "safetensors file",
		                name, len);
	n = le64(data);
	if (n > RT_ST_MAX_HEADER)
		return rt_error(SLAPO_FORMAT, name,
		                "%s: HeaderTooLarge: header length %llu exceeds the "
		                "%u-byte limit (not a safetensors file?)",
		                name, (unsigned long long)n, RT_ST_MAX_HEADER);
	if (n > len - 8)
		return rt_error(SLAPO_FORMAT, name,
		                "%s: InvalidHeaderLength: header length %llu runs "
		                "past the end of the %zu-byte file",
		                name, (unsigned long long)n, len);
	f->header_len = n;
	if (!rt_utf8_valid(data + 8, (size_t)n))
		return rt_error(SLAPO_FORMAT, name,
		                "%s: InvalidHeader: header is not valid UTF-8", name);
	if (n == 0 || data[8] != '{')
		return rt_error(SLAPO_FORMAT, name,
		                "%s: InvalidHeaderStart: header does not start with "
		                "'{'",
		                name);
	st = rt_json_parse((const char *)data + 8, (size_t)n, RT_ST_MAX_DEPTH, &f->json,
	                   err, sizeof err);
	if (st == SLAPO_OUT_OF_MEMORY)
		return rt_error(st, name, "out of memory");
	if (st != SLAPO_OK)
		return rt_error(st, name,
		                "%s: InvalidHeaderDeserialization: header JSON %s", name,
		                err);
	st = parse_header(f, data, n, len - 8 - n);
	if (st != SLAPO_OK)
		rt_st_close(f);
	return st;
}

SlapoStatus rt_st_open(const char *path, RtStFile *f)
{
	struct stat sb;
	void *map;
	size_t size;
	SlapoStatus st;
	int fd;
	memset(f, 0, sizeof *f);
	f->path = path;
	if (!path)
		return rt_error(SLAPO_INVALID_ARGUMENT, "", "file path is NULL");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rt_error(SLAPO_IO, path, "cannot open %s: %s", path,
		                strerror(errno));
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return rt_error(SLAPO_IO, path, "%s is not a regular file", path);
	}
	size = (size_t)sb.st_size;
	if (size == 0) { /* nothing to map; fails as HeaderTooSmall */
		close(fd);
		return rt_st_parse(path, (const uint8_t *)"", 0, f);
	}
	map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return rt_error(SLAPO_IO, path, "cannot map %s: %s", path,
		                strerror(errno));
	st = rt_st_parse(path, map, size, f);
	if (st != SLAPO_OK) {
		munmap(map, size);
		return st;
	}
	f->map = map;
	f->map_len = size;
	return SLAPO_OK;
}

void rt_st_close(RtStFile *f)
{
	if (f->map)
		munmap(f->map, f->map_len);
	rt_json_free(&f->json);
	rt_free(f->tensors);
	rt_free(f->shapes);
	rt_free(f->meta_keys);
	rt_free(f->meta_values);
	f->map = NULL;
	f->tensors = NULL;
	f->shapes = NULL;
	f->meta_keys = f->meta_values = NULL;
	f->n_tensors = f->n_meta = 0;
}

const RtStTensor *rt_st_find(const RtStFile *f, const char *name)
{
	RtStTensor key;
	memset(&key, 0, sizeof key);
	key.name = name;
	if (f->n_tensors == 0)
		return NULL;
	return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof *f->tensors,
	               cmp_names);
}

/* ---- writing --------------------------------------------------------- */

typedef struct Buf {
	char *p;
	size_t len, cap;
	int oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;
		while (cap < b->len + n + 1)
			cap *= 2;
		np = rt_realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void buf_str(Buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/* A JSON string literal. */
static void buf_json(Buf *b, const char *s)
{
	char esc[8];
	buf_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			buf_put(b, esc, 6);
		} else {
			buf_put(b, (const char *)&c, 1);
		}
	}
	buf_put(b, "\"", 1);
}

/* The tensors being ordered by qsort in rt_st_write. */
static _Thread_local const RtStWriteTensor *sort_base;

static int cmp_write(const void *a, const void *b)
{
	const RtStWriteTensor *x = &sort_base[*(const int32_t *)a];
	const RtStWriteTensor *y = &sort_base[*(const int32_t *)b];
	size_t ax = rt_dtype_size(x->dtype), ay = rt_dtype_size(y->dtype);
	if (ax != ay)
		return ax > ay ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_write_names(const void *a, const void *b)
{
	return strcmp(sort_base[*(const int32_t *)a].name,
	              sort_base[*(const int32_t *)b].name);
}

SlapoStatus rt_st_write(const char *path, int32_t n, const RtStWriteTensor *tensors,
                        int32_t n_meta, const char *const *meta_kv)
{
	Buf b = {NULL, 0, 0, 0};
	int32_t *order, i;
	uint64_t off = 0, hlen;
	uint8_t lenb[8];
	char num[32];
	FILE *fp;
	SlapoStatus st = SLAPO_OK;
	int j;
	for (i = 0; i < n; i++)
		if (!tensors[i].name || !rt_st_dtype_name(tensors[i].dtype) ||
		    rt_dtype_size(tensors[i].dtype) == 0 ||
		    rt_numel(tensors[i].ndim, tensors[i].shape) < 0)
			return rt_error(SLAPO_INVALID_ARGUMENT,
			                tensors[i].name ? tensors[i].name : "",
			                "cannot write tensor %d to %s", (int)i, path);
	order = rt_malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
	if (!order)
		return rt_error(SLAPO_OUT_OF_MEMORY, path, "out of memory");
	for (i = 0; i < n; i++)
		order[i] = i;
	sort_base = tensors;
	qsort(order, (size_t)n, sizeof *order, cmp_write_names);
	for (i = 1; i < n; i++)
		if (strcmp(tensors[order[i]].name, tensors[order[i - 1]].name) == 0) {
			const char *dup = tensors[order[i]].name;
			rt_free(order);
			return rt_error(SLAPO_INVALID_ARGUMENT, dup,
			                "tensor \"%s\" given twice", dup);
		}
	qsort(order, (size_t)n, sizeof *order, cmp_write);
	buf_str(&b, "{");
	if (n_meta > 0) {
		buf_str(&b, "\"__metadata__\":{");
		for (i = 0; i < n_meta; i++) {
			if (i)
				buf_str(&b, ",");
			buf_json(&b, meta_kv[2 * i]);
			buf_str(&b, ":");
			buf_json(&b, meta_kv[2 * i + 1]);
		}
		buf_str(&b, "}");
	}
	for (i = 0; i < n; i++) {
		const RtStWriteTensor *t = &tensors[order[i]];
		uint64_t bytes =
		        (uint64_t)rt_numel(t->ndim, t->shape) * rt_dtype_size(t->dtype);
		if (i || n_meta > 0)
			buf_str(&b, ",");
		buf_json(&b, t->name);
		buf_str(&b, ":{\"dtype\":\"");
		buf_str(&b, rt_st_dtype_name(t->dtype));
		buf_str(&b, "\",\"shape\":[");
		for (j = 0; j < t->ndim; j++) {
			snprintf(num, sizeof num, "%s%lld", j ? "," : "",
			         (long long)t->shape[j]);
			buf_str(&b, num);
		}
		snprintf(num, sizeof num, "%llu", (unsigned long long)off);
		buf_str(&b, "],\"data_offsets\":[");
		buf_str(&b, num);
		off += bytes;
		snprintf(num, sizeof num, ",%llu]}", (unsigned long long)off);
		buf_str(&b, num);
	}
	buf_str(&b, "}");
	while (!b.oom && b.len % 8 != 0)
		buf_str(&b, " ");
	if (b.oom) {
		rt_free(b.p);
		rt_free(order);
		return rt_error(SLAPO_OUT_OF_MEMORY, path, "out of memory");
	}
	hlen = b.len;
	for (j = 0; j < 8; j++)
		lenb[j] = (uint8_t)(hlen >> (8 * j));
	fp = fopen(path, "wb");
	if (!fp) {
		st = rt_error(SLAPO_IO, path, "cannot create %s: %s", path,
		              strerror(errno));
	} else {
		fwrite(lenb, 1, 8, fp);
		fwrite(b.p, 1, b.len, fp);
		for (i = 0; i < n; i++) {
			const RtStWriteTensor *t = &tensors[order[i]];
			size_t bytes = (size_t)rt_numel(t->ndim, t->shape) *
			               rt_dtype_size(t->dtype);
			if (bytes)
				fwrite(t->data, 1, bytes, fp);
		}
		if (ferror(fp) | fclose(fp))
			st = rt_error(SLAPO_IO, path, "cannot write %s: %s", path,
			              strerror(errno));
	}
	rt_free(b.p);
	rt_free(order);
	return st;
}
