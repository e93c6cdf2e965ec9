/* profile_out.c - slapo-run --profile: a session's profile (the public
 * SlapoProfile) as a table of kernels, and as a Chrome trace.
 *
 * The table has one row per kernel name (steps of one name merged),
 * sorted by total time: kernel, the .slapo line that made it (file name
 * and line), its module path, calls, total ms, mean us per call and its
 * share of all the steps' time; then a total line (calls: the runs,
 * mean: per run). The trace is the
 * Trace Event Format chrome://tracing and Perfetto read: one complete
 * ("X") event per step run, times in microseconds since profiling
 * started, with the source, module, kind, FLOPs and bytes in its args.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slapo/slapo.h"

/* What slapo-run.c calls. */
void profile_print(FILE *f, const SlapoProfile *p);
int profile_write_trace(FILE *f, const SlapoProfile *p, const char *model);

typedef struct Row {
	const SlapoProfileStep *s; /* the first step of that name */
	uint64_t calls, total_ns;
} Row;

static int by_total(const void *a, const void *b)
{
	const Row *x = a, *y = b;
	if (x->total_ns != y->total_ns)
		return x->total_ns < y->total_ns ? 1 : -1;
	return strcmp(x->s->name, y->s->name);
}

/* "bert.slapo:63" from "/path/to/bert.slapo:63" */
static const char *short_source(const char *src)
{
	const char *slash = strrchr(src, '/');
	return *src ? (slash ? slash + 1 : src) : "-";
}

static int imax(int a, int b)
{
	return a > b ? a : b;
}

void profile_print(FILE *f, const SlapoProfile *p)
{
	Row *rows = calloc((size_t)p->n_steps + 1, sizeof *rows);
	int32_t i, j, n = 0;
	int wn = 6, ws = 11, wm = 6;
	uint64_t all = 0;
	if (!rows) {
		fprintf(f, "profile: out of memory\n");
		return;
	}
	for (i = 0; i < p->n_steps; i++) {
		const SlapoProfileStep *s = &p->steps[i];
		for (j = 0; j < n && strcmp(rows[j].s->name, s->name); j++)
			;
		if (j == n)
			rows[n++].s = s;
		rows[j].calls += s->calls;
		rows[j].total_ns += s->total_ns;
		all += s->total_ns;
	}
	qsort(rows, (size_t)n, sizeof *rows, by_total);
	for (i = 0; i < n; i++) {
		wn = imax(wn, (int)strlen(rows[i].s->name));
		ws = imax(ws, (int)strlen(short_source(rows[i].s->source)));
		wm = imax(wm, (int)strlen(*rows[i].s->module ? rows[i].s->module : "-"));
	}
	fprintf(f, "profile: %d kernels, %lld run%s on the %s (%s)\n", (int)n,
	        (long long)p->n_runs, p->n_runs == 1 ? "" : "s",
	        p->device == SLAPO_DEVICE_BIT_CUDA ? "GPU" : "CPU",
	        p->device == SLAPO_DEVICE_BIT_CUDA
	                ? "CUDA events, runs eager: no CUDA graphs"
	                : "monotonic clock, a kernel's threads counted once");
	fprintf(f, "%-*s  %-*s  %-*s  %6s  %10s  %10s  %6s\n", wn, "kernel", ws,
	        ".slapo line", wm, "module", "calls", "total ms", "mean us", "share");
	for (i = 0; i < n; i++) {
		const Row *r = &rows[i];
		fprintf(f, "%-*s  %-*s  %-*s  %6llu  %10.3f  %10.2f  %5.1f%%\n", wn,
		        r->s->name, ws, short_source(r->s->source), wm,
		        *r->s->module ? r->s->module : "-", (unsigned long long)r->calls,
		        (double)r->total_ns / 1e6,
		        r->calls ? (double)r->total_ns / 1e3 / (double)r->calls : 0.0,
		        all ? 100.0 * (double)r->total_ns / (double)all : 0.0);
	}
	fprintf(f, "%-*s  %-*s  %-*s  %6lld  %10.3f  %10.2f  %5.1f%%\n", wn, "total", ws,
	        "", wm, "", (long long)p->n_runs, (double)all / 1e6,
	        p->n_runs ? (double)all / 1e3 / (double)p->n_runs : 0.0,
	        all ? 100.0 : 0.0);
	free(rows);
}

/* A JSON string. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

int profile_write_trace(FILE *f, const SlapoProfile *p, const char *model)
{
	int64_t i;
	const char *dev = p->device == SLAPO_DEVICE_BIT_CUDA ? "GPU" : "CPU";
	fprintf(f, "{\"traceEvents\":[\n");
	fprintf(f,
	        "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{"
	        "\"name\":");
	json_str(f, model);
	fprintf(f,
	        "}},\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{"
	        "\"name\":\"forward (%s)\"}}",
	        dev);
	for (i = 0; i < p->n_events; i++) {
		const SlapoProfileEvent *e = &p->events[i];
		const SlapoProfileStep *s = &p->steps[e->step];
		fprintf(f, ",\n{\"name\":");
		json_str(f, s->name);
		fprintf(f, ",\"cat\":");
		json_str(f, s->kind);
		fprintf(f,
		        ",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":1,\"tid\":1,\"args\":{",
		        (double)e->start_ns / 1e3, (double)e->dur_ns / 1e3);
		fprintf(f, "\"source\":");
		json_str(f, s->source);
		fprintf(f, ",\"module\":");
		json_str(f, s->module);
		fprintf(f, ",\"run\":%d,\"flops\":%.17g,\"bytes\":%.17g}}", (int)e->run,
		        s->flops, s->bytes);
	}
	fprintf(f, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"model\":");
	json_str(f, model);
	fprintf(f, ",\"device\":\"%s\",\"runs\":%lld,\"dropped_events\":%lld}}\n", dev,
	        (long long)p->n_runs, (long long)p->dropped_events);
	return ferror(f) ? -1 : 0;
}
