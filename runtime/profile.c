/* profile.c - per-step profiles of a session's runs (session_profile).
 *
 * Generated forward() code marks the start of each step with
 * rt_prof_step(ex, i), and the end of the last with i = n_steps, when
 * ex->prof is set; nothing else changes, so outputs are bit-identical
 * with and without profiling. A run's marks become each step's time
 * (the gap to the next mark) once the run has succeeded: totals per
 * step, and with SLAPO_PROFILE_EVENTS one event per step run. On the CPU
 * a mark is the monotonic clock; on a GPU, cuda_exec.c records a CUDA
 * event per mark and turns their elapsed times into marks after the run.
 */
#include <string.h>
#include <time.h>

#include "rt.h"

int64_t rt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rt_prof_step(RtExec *ex, int32_t step)
{
	RtProf *p = ex->prof;
	if (!p || step < 0 || step > p->t.n)
		return;
	if (p->mark_fn)
		p->mark_fn(ex, step);
	else
		p->mark[step] = rt_now_ns();
}

RtProf *rt_prof_new(const RtStepTable *t, uint32_t flags, uint32_t device)
{
	RtProf *p = rt_calloc(1, sizeof *p);
	if (!p) {
		rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
		return NULL;
	}
	p->t = *t;
	p->flags = flags;
	p->device = device;
	p->mark = rt_calloc((size_t)t->n + 1, sizeof *p->mark);
	p->cost = rt_calloc(2 * (size_t)t->n + 1, sizeof *p->cost);
	p->rec = rt_calloc((size_t)t->n + 1, sizeof *p->rec);
	if (!p->mark || !p->cost || !p->rec) {
		rt_prof_free(p);
		rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
		return NULL;
	}
	for (int32_t i = 0; i < t->n; i++) {
		const RtStepDesc *d = &t->steps[i];
		p->rec[i].name = d->name;
		p->rec[i].kind = d->kind;
		p->rec[i].source = d->source ? d->source : "";
		p->rec[i].module = d->module ? d->module : "";
	}
	p->t0 = rt_now_ns();
	return p;
}

void rt_prof_free(RtProf *p)
{
	if (!p)
		return;
	rt_free(p->mark);
	rt_free(p->cost);
	rt_free(p->rec);
	rt_free(p->ev);
	rt_free(p);
}

void rt_prof_begin_run(RtProf *p, const int64_t *sym)
{
	for (int32_t i = 0; i <= p->t.n; i++)
		p->mark[i] = -1;
	if (p->t.costs)
		p->t.costs(sym, p->cost);
	p->run_ns = rt_now_ns();
}

/* Room for one more run's events; 0 when none can be had (the run's
 * events are then dropped). */
static int reserve_events(RtProf *p)
{
	int64_t need = p->n_ev + p->t.n, cap = p->cap_ev ? p->cap_ev : 1024;
	SlapoProfileEvent *nv;
	if (need <= p->cap_ev)
		return 1;
	if (need > RT_PROF_MAX_EVENTS)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > RT_PROF_MAX_EVENTS)
		cap = RT_PROF_MAX_EVENTS;
	nv = rt_realloc(p->ev, (size_t)cap * sizeof *nv);
	if (!nv)
		return 0;
	p->ev = nv;
	p->cap_ev = cap;
	return 1;
}

void rt_prof_end_run(RtProf *p)
{
	int keep = (p->flags & SLAPO_PROFILE_EVENTS) && reserve_events(p);
	int32_t i, next;
	for (i = 0; i < p->t.n; i++) {
		SlapoProfileStep *r = &p->rec[i];
		uint64_t dur;
		if (p->mark[i] < 0)
			continue; /* did not run (an early exit) */
		for (next = i + 1; next <= p->t.n && p->mark[next] < 0; next++)
			;
		if (next > p->t.n)
			continue; /* no end mark */
		dur = p->mark[next] > p->mark[i] ? (uint64_t)(p->mark[next] - p->mark[i])
		                                 : 0;
		r->calls++;
		r->total_ns += dur;
		if (r->calls == 1 || dur < r->min_ns)
			r->min_ns = dur;
		if (dur > r->max_ns)
			r->max_ns = dur;
		r->flops = p->t.costs ? p->cost[2 * i] : 0;
		r->bytes = p->t.costs ? p->cost[2 * i + 1] : 0;
		if (keep) {
			SlapoProfileEvent *e = &p->ev[p->n_ev++];
			e->step = i;
			e->run = (int32_t)p->runs;
			e->start_ns =
			        p->mark[i] > p->t0 ? (uint64_t)(p->mark[i] - p->t0) : 0;
			e->dur_ns = dur;
		} else if (p->flags & SLAPO_PROFILE_EVENTS) {
			p->dropped++;
		}
	}
	p->runs++;
}

const SlapoProfile *rt_prof_read(RtProf *p)
{
	SlapoProfile *o = &p->out;
	o->device = p->device;
	o->n_steps = p->t.n;
	o->steps = p->rec;
	o->n_runs = p->runs;
	o->n_events = p->n_ev;
	o->events = p->ev;
	o->dropped_events = p->dropped;
	return o;
}
