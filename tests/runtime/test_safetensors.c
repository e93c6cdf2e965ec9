/* test_safetensors.c - the safetensors reader against hostile files made
 * here (each must give the right status and reference error name, and
 * never crash or over-allocate), and the writer's round trip and layout.
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "testlib.h"

/* Writes N (little-endian), the header text padded with pad spaces, then
 * data; returns the path. header_len overrides N when non-zero. */
static const char *make(const char *name, const char *header, size_t pad,
                        const void *data, size_t data_len, uint64_t header_len)
{
	size_t hl = strlen(header) + pad, i;
	uint64_t n = header_len ? header_len : hl;
	unsigned char *buf = malloc(8 + hl + data_len + 1);
	const char *path;
	for (i = 0; i < 8; i++)
		buf[i] = (unsigned char)(n >> (8 * i));
	memcpy(buf + 8, header, strlen(header));
	memset(buf + 8 + strlen(header), ' ', pad);
	if (data_len)
		memcpy(buf + 8 + hl, data, data_len);
	path = t_write_file(name, buf, 8 + hl + data_len);
	free(buf);
	return path;
}

/* rt_st_open(path) must fail with want and a message containing sub. */
static void expect(const char *path, SlapoStatus want, const char *sub)
{
	RtStFile f;
	SlapoStatus st = rt_st_open(path, &f);
	const SlapoError *e = rt_last_error();
	if (st != want || (sub && !strstr(e->message, sub))) {
		fprintf(stderr, "%s: got %s \"%s\", want %s \"%s\"\n", path,
		        rt_status_name(st), e->message, rt_status_name(want),
		        sub ? sub : "");
		t_failures++;
	}
	if (st != SLAPO_OK)
		CHECK(!strcmp(e->object_name, path));
	if (st == SLAPO_OK)
		rt_st_close(&f);
}

/* A one-tensor header: name, dtype, shape text, offsets. */
static const char *one(const char *dtype, const char *shape, int b, int e)
{
	static char buf[256];
	snprintf(buf, sizeof buf,
	         "{\"t\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%d,%d]}}",
	         dtype, shape, b, e);
	return buf;
}

static void test_valid(void)
{
	float data[6] = {1, 2, 3, 4, 5, 6};
	const char *hdr =
	        "{\"__metadata__\":{\"format\":\"pt\"},"
	        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
	        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
	        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,24]},"
	        "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[24,24]}}";
	RtStFile f;
	const RtStTensor *t;
	float v;
	/* the scalar "s" needs 4 bytes: give them and shift nothing else */
	const char *hdr2 =
	        "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
	        "\"e\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[4,4]}}";
	const char *p = make("valid2.st", hdr2, 3, data, 4, 0);
	CHECK_ST(NULL, rt_st_open(p, &f), SLAPO_OK);
	CHECK(f.n_tensors == 2 && rt_st_find(&f, "s")->ndim == 0);
	rt_st_close(&f);
	/* hdr's "s" claims 0 bytes for a scalar: TensorInvalidInfo */
	expect(make("scalar0.st", hdr, 0, data, 24, 0), SLAPO_FORMAT,
	       "TensorInvalidInfo: tensor \"s\" is F32 [] (4 bytes)");
	hdr = "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"\"},"
	      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
	      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
	      "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[24,24]}}";
	/* odd data offset (8 + header not a multiple of 4): unaligned data */
	p = make("valid.st", hdr, 1, data, 24, 0);
	CHECK_ST(NULL, rt_st_open(p, &f), SLAPO_OK);
	CHECK(f.n_tensors == 3 && f.n_meta == 2);
	CHECK(!strcmp(f.meta_keys[0], "format") && !strcmp(f.meta_values[0], "pt"));
	t = rt_st_find(&f, "a");
	CHECK(t && t->ndim == 2 && t->shape[1] == 2 && t->end == 16);
	CHECK(t && !strcmp(t->dtype_name, "F32") && t->dtype.bits == 32);
	memcpy(&v, t->data + 12, 4);
	CHECK(v == 4);
	t = rt_st_find(&f, "b");
	memcpy(&v, t->data, 4);
	CHECK(v == 5);
	CHECK(rt_st_find(&f, "z") && rt_st_find(&f, "nope") == NULL);
	rt_st_close(&f);
	/* trailing JSON whitespace in the header is fine */
	expect(make("ws.st", "{}\n\t ", 3, NULL, 0, 0), SLAPO_OK, NULL);
	expect(make("empty.st", "{}", 6, NULL, 0, 0), SLAPO_OK, NULL);
}

static void test_hostile(void)
{
	unsigned char bytes[64] = {0};
	const char *lfs = "version https://git-lfs.github.com/spec/v1\n"
	                  "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258"
	                  "daaa5e2ca24d17e2393\nsize 440473133\n";
	char deep[400];
	int i;
	float data[8] = {0};
	expect(t_write_file("empty", "", 0), SLAPO_FORMAT, "HeaderTooSmall");
	expect(t_write_file("short", bytes, 5), SLAPO_FORMAT, "HeaderTooSmall");
	expect(t_write_file("lfs", lfs, strlen(lfs)), SLAPO_FORMAT,
	       "is a git-lfs pointer file");
	expect(make("toolarge.st", "{}", 0, NULL, 0, UINT64_C(4294967296)), SLAPO_FORMAT,
	       "HeaderTooLarge: header length 4294967296");
	expect(make("max.st", "{}", 0, NULL, 0, UINT64_MAX), SLAPO_FORMAT,
	       "HeaderTooLarge");
	expect(make("limit.st", "{}", 0, NULL, 0, 100000001), SLAPO_FORMAT,
	       "HeaderTooLarge");
	expect(make("pastend.st", "{}", 0, NULL, 0, 100000000), SLAPO_FORMAT,
	       "InvalidHeaderLength");
	expect(make("pastend2.st", "{}", 0, NULL, 0, 3), SLAPO_FORMAT,
	       "InvalidHeaderLength");
	expect(make("utf8.st", "{\"\xff\":1}", 0, NULL, 0, 0), SLAPO_FORMAT,
	       "InvalidHeader: header is not valid UTF-8");
	expect(make("start.st", " {}", 0, NULL, 0, 0), SLAPO_FORMAT,
	       "InvalidHeaderStart");
	expect(make("zerolen.st", "", 0, NULL, 0, 0), SLAPO_FORMAT, "InvalidHeaderStart");
	expect(make("json.st", "{\"a\":", 0, NULL, 0, 0), SLAPO_FORMAT,
	       "InvalidHeaderDeserialization: header JSON at byte 5");
	expect(make("nul.st", "{}", 0, "", 1, 3), SLAPO_FORMAT, /* "{}\0" */
	       "InvalidHeaderDeserialization");
	for (i = 0; i < 100; i++)
		deep[i] = '[';
	deep[100] = '\0';
	{
		char hdr[600];
		snprintf(hdr, sizeof hdr, "{\"__metadata__\":%s", deep);
		expect(make("deep.st", hdr, 0, NULL, 0, 0), SLAPO_FORMAT,
		       "nesting deeper than 64");
	}
	expect(make("dup.st",
	            "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	            "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
	            0, data, 8, 0),
	       SLAPO_FORMAT, "duplicate key \"t\"");
	expect(make("meta.st", "{\"__metadata__\":{\"a\":1}}", 0, NULL, 0, 0),
	       SLAPO_FORMAT, "__metadata__ value of \"a\" is not a string");
	expect(make("meta2.st", "{\"__metadata__\":[\"a\"]}", 0, NULL, 0, 0),
	       SLAPO_FORMAT, "__metadata__ must be a map of strings");
	expect(make("meta3.st",
	            "{\"__metadata__\":{\"dtype\":\"F32\",\"shape\":[1],"
	            "\"data_offsets\":[0,4]}}",
	            0, data, 4, 0),
	       SLAPO_FORMAT, "__metadata__ value of \"shape\"");
	expect(make("dtype.st", one("F33", "[1]", 0, 4), 0, data, 4, 0), SLAPO_FORMAT,
	       "tensor \"t\" has unknown dtype \"F33\"");
	expect(make("dtype2.st", one("f32", "[1]", 0, 4), 0, data, 4, 0), SLAPO_FORMAT,
	       "unknown dtype");
	expect(make("neg.st", one("F32", "[-1]", 0, 4), 0, data, 4, 0), SLAPO_FORMAT,
	       "shape entries must be non-negative integers");
	expect(make("flt.st", one("F32", "[1.0]", 0, 4), 0, data, 4, 0), SLAPO_FORMAT,
	       "shape entries");
	expect(make("str.st", one("F32", "\"1\"", 0, 4), 0, data, 4, 0), SLAPO_FORMAT,
	       "shape is not an array");
	expect(make("off3.st",
	            "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
	            0, data, 4, 0),
	       SLAPO_FORMAT, "data_offsets must be");
	expect(make("offneg.st", one("F32", "[1]", -4, 0), 0, data, 4, 0), SLAPO_FORMAT,
	       "data_offsets must be");
	expect(make("extra.st",
	            "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
	            "\"x\":1}}",
	            0, data, 4, 0),
	       SLAPO_FORMAT, "has unknown field \"x\"");
	expect(make("lacks.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, data, 4,
	            0),
	       SLAPO_FORMAT, "lacks \"data_offsets\"");
	expect(make("notobj.st", "{\"t\":3}", 0, NULL, 0, 0), SLAPO_FORMAT,
	       "entry \"t\" is not an object");
	expect(make("overlap.st",
	            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
	            0, data, 12, 0),
	       SLAPO_FORMAT,
	       "InvalidOffset: tensor \"b\" has data_offsets [4, 12] but must "
	       "begin at 8");
	expect(make("alias.st",
	            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
	            0, data, 8, 0),
	       SLAPO_FORMAT, "InvalidOffset");
	expect(make("gap.st",
	            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	            "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
	            0, data, 12, 0),
	       SLAPO_FORMAT, "InvalidOffset: tensor \"b\"");
	expect(make("first.st", one("F32", "[1]", 4, 8), 0, data, 8, 0), SLAPO_FORMAT,
	       "must begin at 0");
	expect(make("endlt.st", one("F32", "[0]", 0, 0), 0, NULL, 0, 0), SLAPO_OK, NULL);
	expect(make("backwards.st",
	            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	            "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
	            0, data, 4, 0),
	       SLAPO_FORMAT, "InvalidOffset");
	expect(make("size.st", one("F32", "[2,3]", 0, 20), 0, data, 20, 0), SLAPO_FORMAT,
	       "TensorInvalidInfo: tensor \"t\" is F32 [2, 3] (24 bytes) but its "
	       "data_offsets span 20 bytes");
	expect(make("ovf.st", one("F32", "[4611686018427387904,16]", 0, 4), 0, data, 4,
	            0),
	       SLAPO_FORMAT, "ValidationOverflow");
	expect(make("ovf2.st", one("F64", "[2305843009213693952,2]", 0, 4), 0, data, 4,
	            0),
	       SLAPO_FORMAT, "ValidationOverflow");
	expect(make("f4odd.st", one("F4", "[3]", 0, 2), 0, data, 2, 0), SLAPO_FORMAT,
	       "MisalignedSlice");
	expect(make("f4even.st", one("F4", "[4]", 0, 2), 0, data, 2, 0), SLAPO_OK, NULL);
	expect(make("trailing.st", one("F32", "[1]", 0, 4), 0, data, 8, 0), SLAPO_FORMAT,
	       "MetadataIncompleteBuffer: 4 unindexed bytes follow the last tensor");
	expect(make("truncated.st", one("F32", "[2]", 0, 8), 0, data, 5, 0), SLAPO_FORMAT,
	       "MetadataIncompleteBuffer: the file is truncated: tensors need 8 "
	       "bytes of data but only 5");
	expect(make("huge.st", one("U8", "[1000000000000]", 0, 1000000000), 0, data, 4,
	            0),
	       SLAPO_FORMAT, "TensorInvalidInfo");
	expect(make("nulname.st",
	            "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],"
	            "\"data_offsets\":[0,0]}}",
	            0, NULL, 0, 0),
	       SLAPO_FORMAT, "NUL character");
	expect(t_path("missing.st"), SLAPO_IO, "cannot open");
	expect(t_tmpdir(), SLAPO_IO, "not a regular file");
	{
		RtStFile f;
		CHECK_ST(NULL, rt_st_open(NULL, &f), SLAPO_INVALID_ARGUMENT);
	}
}

static void test_writer(void)
{
	float f32[6] = {1, -2, 3.5f, 4, 5, 6};
	int64_t i64[3] = {-1, 0, INT64_MAX};
	uint16_t f16[2] = {0x3c00, 0xc000};
	int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s0[1] = {0};
	RtStWriteTensor ts[4] = {
	        {"weights \"quoted\"\n", RT_F32, 2, s23, f32},
	        {"ids", RT_I64, 1, s3, i64},
	        {"half", {kDLFloat, 16, 1}, 1, s2, f16},
	        {"empty", RT_F32, 1, s0, f32},
	};
	const char *meta[] = {"format", "pt", "note", "a\tb"};
	const char *p = t_path("out.safetensors");
	const RtStTensor *t;
	RtStFile f;
	struct stat sb;
	CHECK_ST(NULL, rt_st_write(p, 4, ts, 2, meta), SLAPO_OK);
	CHECK_ST(NULL, rt_st_open(p, &f), SLAPO_OK);
	CHECK(f.header_len % 8 == 0 && f.n_tensors == 4 && f.n_meta == 2);
	CHECK(!strcmp(f.meta_values[1], "a\tb"));
	t = rt_st_find(&f, "weights \"quoted\"\n");
	CHECK(t && !memcmp(t->data, f32, sizeof f32) && t->begin == 24);
	t = rt_st_find(&f, "ids"); /* widest dtype first */
	CHECK(t && t->begin == 0 && !memcmp(t->data, i64, sizeof i64));
	CHECK(t && ((uintptr_t)t->data % 8) == 0);
	t = rt_st_find(&f, "half");
	CHECK(t && !strcmp(t->dtype_name, "F16") && t->begin == 48);
	CHECK(stat(p, &sb) == 0 && (uint64_t)sb.st_size == 8 + f.header_len + 52);
	rt_st_close(&f);
	ts[1].name = ts[0].name;
	CHECK_ST(NULL, rt_st_write(p, 4, ts, 0, NULL), SLAPO_INVALID_ARGUMENT);
	ts[1].name = "ids";
	ts[1].dtype = (DLDataType){kDLFloat4_e2m1fn, 4, 1};
	CHECK_ST(NULL, rt_st_write(p, 4, ts, 0, NULL), SLAPO_INVALID_ARGUMENT);
	ts[1].dtype = RT_I64;
	CHECK_ST(NULL, rt_st_write(t_path("no/such/dir"), 4, ts, 0, NULL), SLAPO_IO);
	CHECK_ST(NULL, rt_st_write(t_path("none.st"), 0, ts, 0, NULL), SLAPO_OK);
	expect(t_path("none.st"), SLAPO_OK, NULL);
}

int main(void)
{
	test_valid();
	test_hostile();
	test_writer();
	return t_done("test_safetensors");
}
