/* err.c - the thread-local last error, status names, logging through the
 * user's callback, and the allocation wrappers every part of the runtime
 * uses (with the "fail the n-th allocation" hook for out-of-memory tests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

/* The last error of this thread; pub's strings point into the buffers. */
typedef struct TlsError {
	SlapoError pub;
	char message[RT_MSG_MAX];
	char object[RT_NAME_MAX];
} TlsError;

static _Thread_local TlsError tls_err;

/* > 0: allocations left before the one that fails. */
static atomic_llong fail_countdown;

static const char *const status_names[] = {
        "SLAPO_OK",
        "SLAPO_INVALID_ARGUMENT",
        "SLAPO_SHAPE_MISMATCH",
        "SLAPO_DTYPE_MISMATCH",
        "SLAPO_DEVICE_MISMATCH",
        "SLAPO_NOT_FOUND",
        "SLAPO_MISSING_PARAMS",
        "SLAPO_IO",
        "SLAPO_FORMAT",
        "SLAPO_UNSUPPORTED",
        "SLAPO_OUT_OF_MEMORY",
        "SLAPO_DEVICE",
        "SLAPO_DEVICE_LOST",
        "SLAPO_ABI_MISMATCH",
        "SLAPO_CANCELLED",
        "SLAPO_BUSY",
        "SLAPO_INTERNAL",
};

const char *rt_status_name(SlapoStatus status)
{
	size_t n = sizeof status_names / sizeof status_names[0];
	if (status < 0 || (size_t)status >= n)
		return "SLAPO_UNKNOWN";
	return status_names[status];
}

void rt_clear_error(void)
{
	tls_err.pub.code = SLAPO_OK;
	tls_err.pub.device_error = 0;
	tls_err.message[0] = '\0';
	tls_err.object[0] = '\0';
}

const SlapoError *rt_last_error(void)
{
	tls_err.pub.message = tls_err.message;
	tls_err.pub.object_name = tls_err.object;
	return &tls_err.pub;
}

SlapoStatus rt_verror(SlapoStatus code, const char *object, const char *fmt, va_list ap)
{
	tls_err.pub.code = code;
	tls_err.pub.device_error = 0;
	vsnprintf(tls_err.message, sizeof tls_err.message, fmt, ap);
	snprintf(tls_err.object, sizeof tls_err.object, "%s", object ? object : "");
	return code;
}

SlapoStatus rt_error(SlapoStatus code, const char *object, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rt_verror(code, object, fmt, ap);
	va_end(ap);
	return code;
}

SlapoStatus rt_error_device(SlapoStatus code, int32_t device_error, const char *object,
                            const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rt_verror(code, object, fmt, ap);
	va_end(ap);
	tls_err.pub.device_error = device_error;
	return code;
}

void rt_log(SlapoLogFn fn, void *user_data, int32_t level, const char *fmt, ...)
{
	char buf[2 * RT_MSG_MAX];
	va_list ap;
	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fn(level, buf, user_data);
}

char *rt_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return buf;
}

/* ---- allocation ------------------------------------------------------ */

int64_t rt_testing_fail_alloc(int64_t n)
{
	return atomic_exchange(&fail_countdown, (long long)(n > 0 ? n : 0));
}

/* Whether this allocation is the one the test hook makes fail. */
static int should_fail(void)
{
	if (atomic_load_explicit(&fail_countdown, memory_order_relaxed) <= 0)
		return 0;
	return atomic_fetch_sub(&fail_countdown, 1) == 1;
}

void *rt_malloc(size_t size)
{
	if (should_fail())
		return NULL;
	return malloc(size ? size : 1);
}

void *rt_calloc(size_t n, size_t size)
{
	if (should_fail())
		return NULL;
	if (n == 0 || size == 0)
		n = size = 1;
	return calloc(n, size);
}

void *rt_realloc(void *p, size_t size)
{
	if (should_fail())
		return NULL;
	return realloc(p, size ? size : 1);
}

void *rt_aligned_alloc(size_t size)
{
	void *p = NULL;
	if (should_fail())
		return NULL;
	if (posix_memalign(&p, RT_ALIGN, size ? size : RT_ALIGN) != 0)
		return NULL;
	return p;
}

char *rt_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = rt_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void rt_free(void *p)
{
	free(p);
}

/* ---- errors raised by generated code --------------------------------- */

SlapoStatus rt_fail(RtExec *ex, SlapoStatus code, const char *object, const char *fmt,
                    ...)
{
	RtErrorSlot *e = ex ? ex->err : NULL;
	int expect = 0;
	va_list ap;
	if (code == SLAPO_OK)
		code = SLAPO_INTERNAL;
	if (!e || !atomic_compare_exchange_strong(&e->taken, &expect, 1))
		return code; /* an earlier error stands */
	e->code = code;
	snprintf(e->object, sizeof e->object, "%s", object ? object : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	return code;
}

int32_t rt_failed(const RtExec *ex)
{
	return ex && ex->err && atomic_load(&ex->err->taken) != 0;
}
