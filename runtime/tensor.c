/* tensor.c - dtype helpers (sizes, names), element conversions between
 * f16/bf16/f32/f64 and the integer types, and N-d strided copies, all
 * safe for unaligned buffers (elements are moved with memcpy).
 */
#include <stdio.h>
#include <string.h>

#include "rt.h"

int rt_dtype_eq(DLDataType a, DLDataType b)
{
	return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

size_t rt_dtype_size(DLDataType t)
{
	if (t.lanes == 0 || t.bits == 0 || t.bits % 8 != 0)
		return 0;
	return (size_t)(t.bits / 8) * t.lanes;
}

const char *rt_dtype_name(DLDataType t, char buf[24])
{
	const char *base = NULL;
	if (t.lanes == 1) {
		switch (t.code) {
		case kDLFloat:
			base = t.bits == 16   ? "f16"
			       : t.bits == 32 ? "f32"
			       : t.bits == 64 ? "f64"
			                      : NULL;
			break;
		case kDLBfloat:
			base = t.bits == 16 ? "bf16" : NULL;
			break;
		case kDLInt:
			base = t.bits == 8    ? "i8"
			       : t.bits == 16 ? "i16"
			       : t.bits == 32 ? "i32"
			       : t.bits == 64 ? "i64"
			                      : NULL;
			break;
		case kDLUInt:
			base = t.bits == 8    ? "u8"
			       : t.bits == 16 ? "u16"
			       : t.bits == 32 ? "u32"
			       : t.bits == 64 ? "u64"
			                      : NULL;
			break;
		case kDLBool:
			base = t.bits == 8 ? "bool" : NULL;
			break;
		default:
			break;
		}
	}
	if (base)
		snprintf(buf, 24, "%s", base);
	else
		snprintf(buf, 24, "dl(%u,%u,%u)", t.code, t.bits, t.lanes);
	return buf;
}

/* ---- scalar conversions ---------------------------------------------- */

float rt_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
	float f;
	if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else { /* subnormal: renormalise */
			int e = -1;
			do {
				e++;
				man <<= 1;
			} while (!(man & 0x400u));
			man &= 0x3ffu;
			bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
		}
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | (man << 13);
	} else {
		bits = sign | ((exp + 112u) << 23) | (man << 13);
	}
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t rt_f32_to_f16(float f)
{
	uint32_t x, sign, exp, man, r, rem, shift, half;
	int32_t e;
	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000u;
	exp = (x >> 23) & 0xffu;
	man = x & 0x7fffffu;
	if (exp == 0xff) /* inf, or a quiet NaN */
		return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
	e = (int32_t)exp - 127 + 15;
	if (e >= 31)
		return (uint16_t)(sign | 0x7c00u);
	if (e <= 0) { /* subnormal half, or zero */
		if (e < -10)
			return (uint16_t)sign;
		man |= 0x800000u;
		shift = (uint32_t)(14 - e);
		half = 1u << (shift - 1);
		r = man >> shift;
		rem = man & ((1u << shift) - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		return (uint16_t)(sign | r);
	}
	r = ((uint32_t)e << 10) | (man >> 13);
	rem = man & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) /* nearest even */
		r++;
	return (uint16_t)(sign | r);
}

float rt_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t rt_f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN stays a quiet NaN */
		return (uint16_t)((x >> 16) | 0x40u);
	x += 0x7fffu + ((x >> 16) & 1u);
	return (uint16_t)(x >> 16);
}

/* ---- element conversions --------------------------------------------- */

DLDataType rt_cpu_dtype(DLDataType t)
{
	return rt_dtype_is_float(t) && t.bits == 16 ? RT_F32 : t;
}

int rt_dtype_is_float(DLDataType t)
{
	if (t.lanes != 1)
		return 0;
	if (t.code == kDLFloat)
		return t.bits == 16 || t.bits == 32 || t.bits == 64;
	return t.code == kDLBfloat && t.bits == 16;
}

static int is_int(DLDataType t)
{
	if (t.lanes != 1)
		return 0;
	if (t.code == kDLInt || t.code == kDLUInt)
		return t.bits == 8 || t.bits == 16 || t.bits == 32 || t.bits == 64;
	return t.code == kDLBool && t.bits == 8;
}

int rt_can_convert(DLDataType dst, DLDataType src)
{
	if (rt_dtype_eq(dst, src))
		return rt_dtype_size(dst) != 0;
	if (rt_dtype_is_float(dst))
		return rt_dtype_is_float(src) || is_int(src);
	return is_int(dst) && is_int(src);
}

static double load_float(DLDataType t, const unsigned char *p)
{
	uint16_t h;
	float f;
	double d;
	if (t.bits == 16) {
		memcpy(&h, p, 2);
		return t.code == kDLBfloat ? rt_bf16_to_f32(h) : rt_f16_to_f32(h);
	}
	if (t.bits == 32) {
		memcpy(&f, p, 4);
		return f;
	}
	memcpy(&d, p, 8);
	return d;
}

static void store_float(DLDataType t, unsigned char *p, double v)
{
	uint16_t h;
	float f = (float)v;
	if (t.bits == 16) {
		h = t.code == kDLBfloat ? rt_f32_to_bf16(f) : rt_f32_to_f16(f);
		memcpy(p, &h, 2);
	} else if (t.bits == 32) {
		memcpy(p, &f, 4);
	} else {
		memcpy(p, &v, 8);
	}
}

static int64_t load_int(DLDataType t, const unsigned char *p)
{
	int8_t i8;
	int16_t i16;
	int32_t i32;
	int64_t i64;
	uint16_t u16;
	uint32_t u32;
	if (t.code == kDLBool)
		return p[0] != 0;
	switch (t.bits) {
	case 8:
		if (t.code == kDLUInt)
			return p[0];
		memcpy(&i8, p, 1);
		return i8;
	case 16:
		if (t.code == kDLUInt) {
			memcpy(&u16, p, 2);
			return u16;
		}
		memcpy(&i16, p, 2);
		return i16;
	case 32:
		if (t.code == kDLUInt) {
			memcpy(&u32, p, 4);
			return u32;
		}
		memcpy(&i32, p, 4);
		return i32;
	default:
		memcpy(&i64, p, 8); /* u64 beyond INT64_MAX wraps */
		return i64;
	}
}

static void store_int(DLDataType t, unsigned char *p, int64_t v)
{
	int8_t i8 = (int8_t)v;
	int16_t i16 = (int16_t)v;
	int32_t i32 = (int32_t)v;
	if (t.code == kDLBool) {
		p[0] = v != 0;
		return;
	}
	switch (t.bits) {
	case 8:
		memcpy(p, &i8, 1);
		break;
	case 16:
		memcpy(p, &i16, 2);
		break;
	case 32:
		memcpy(p, &i32, 4);
		break;
	default:
		memcpy(p, &v, 8);
		break;
	}
}

void rt_convert(DLDataType dst_t, void *dst, DLDataType src_t, const void *src, int64_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	size_t dz = rt_dtype_size(dst_t), sz = rt_dtype_size(src_t);
	int64_t i;
	if (n <= 0)
		return;
	if (rt_dtype_eq(dst_t, src_t)) {
		memcpy(d, s, (size_t)n * dz);
		return;
	}
	if (dst_t.code == kDLFloat && dst_t.bits == 32 && src_t.bits == 16 &&
	    rt_dtype_is_float(src_t)) { /* the common checkpoint case, kept tight */
		for (i = 0; i < n; i++) {
			uint16_t h;
			float f;
			memcpy(&h, s + 2 * i, 2);
			f = src_t.code == kDLBfloat ? rt_bf16_to_f32(h)
			                            : rt_f16_to_f32(h);
			memcpy(d + 4 * i, &f, 4);
		}
		return;
	}
	for (i = 0; i < n; i++) {
		const unsigned char *sp = s + (size_t)i * sz;
		unsigned char *dp = d + (size_t)i * dz;
		if (rt_dtype_is_float(dst_t))
			store_float(dst_t, dp,
			            rt_dtype_is_float(src_t)
			                    ? load_float(src_t, sp)
			                    : (double)load_int(src_t, sp));
		else
			store_int(dst_t, dp, load_int(src_t, sp));
	}
}

/* ---- shapes and N-d copies ------------------------------------------- */

int64_t rt_numel(int32_t ndim, const int64_t *shape)
{
	int64_t n = 1;
	int32_t d;
	for (d = 0; d < ndim; d++) {
		if (shape[d] < 0)
			return -1;
		if (shape[d] != 0 && n > INT64_MAX / shape[d])
			return -1;
		n *= shape[d];
	}
	return n;
}

char *rt_shape_str(char *buf, size_t size, int32_t ndim, const int64_t *shape,
                   const char *const *names)
{
	size_t at = 0;
	int32_t d;
	if (size == 0)
		return buf;
	at += (size_t)snprintf(buf, size, "[");
	for (d = 0; d < ndim && at < size; d++) {
		const char *sep = d ? ", " : "";
		if (names && names[d])
			at += (size_t)snprintf(buf + at, size - at, "%s%s", sep,
			                       names[d]);
		else
			at += (size_t)snprintf(buf + at, size - at, "%s%lld", sep,
			                       (long long)shape[d]);
	}
	if (at < size)
		snprintf(buf + at, size - at, "]");
	return buf;
}

int rt_tensor_compact(const DLTensor *t)
{
	int64_t expect = 1;
	int32_t d;
	if (!t->strides)
		return 1;
	for (d = t->ndim - 1; d >= 0; d--) {
		if (t->shape[d] == 0)
			return 1;
		if (t->shape[d] != 1 && t->strides[d] != expect)
			return 0;
		expect *= t->shape[d];
	}
	return 1;
}

void *rt_tensor_ptr(const DLTensor *t)
{
	return (char *)t->data + t->byte_offset;
}

static void compact_strides(int32_t ndim, const int64_t *shape, int64_t *st)
{
	int64_t s = 1;
	int32_t d;
	for (d = ndim - 1; d >= 0; d--) {
		st[d] = s;
		s *= shape[d];
	}
}

void rt_copy_nd(DLDataType dst_t, void *dst, const int64_t *dst_strides, DLDataType src_t,
                const void *src, const int64_t *src_strides, int32_t ndim,
                const int64_t *shape)
{
	int64_t n = rt_numel(ndim, shape), ds[RT_MAX_NDIM], ss[RT_MAX_NDIM];
	int64_t idx[RT_MAX_NDIM], inner, rows, r, j;
	int64_t dz = (int64_t)rt_dtype_size(dst_t);
	int64_t sz = (int64_t)rt_dtype_size(src_t);
	int32_t d, last = ndim - 1;
	if (n <= 0 || ndim > RT_MAX_NDIM)
		return;
	if ((!dst_strides && !src_strides) || ndim == 0) {
		rt_convert(dst_t, dst, src_t, src, n);
		return;
	}
	compact_strides(ndim, shape, ds);
	compact_strides(ndim, shape, ss);
	for (d = 0; d < ndim; d++) {
		if (dst_strides)
			ds[d] = dst_strides[d];
		if (src_strides)
			ss[d] = src_strides[d];
		idx[d] = 0;
	}
	inner = shape[last];
	rows = n / inner;
	for (r = 0; r < rows; r++) {
		int64_t doff = 0, soff = 0;
		for (d = 0; d < last; d++) {
			doff += idx[d] * ds[d];
			soff += idx[d] * ss[d];
		}
		if (ds[last] == 1 && ss[last] == 1) {
			rt_convert(dst_t, (char *)dst + doff * dz, src_t,
			           (const char *)src + soff * sz, inner);
		} else {
			for (j = 0; j < inner; j++)
				rt_convert(dst_t,
				           (char *)dst + (doff + j * ds[last]) * dz,
				           src_t,
				           (const char *)src + (soff + j * ss[last]) * sz,
				           1);
		}
		for (d = last - 1; d >= 0; d--) { /* odometer over outer dims */
			if (++idx[d] < shape[d])
				break;
			idx[d] = 0;
		}
	}
}
