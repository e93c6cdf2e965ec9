/* pool.c - the thread pool behind rt_parallel_for.
 *
 * Each session owns one pool of n_threads - 1 workers; the thread calling
 * session_run is the n-th. A job splits [0, n) into at most n_threads
 * contiguous chunks (the split depends only on n, grain and n_threads);
 * the caller and the workers take chunks from an atomic counter until
 * none are left, and the caller waits until every worker is done.
 * A session runs one job at a time, so a pool never sees two at once.
 *
 * Waiting spins briefly before sleeping on a condition variable, since a
 * model's kernels come back to back: a worker that just finished a job
 * usually sees the next one while spinning. Workers block all signals,
 * so the process's handlers run elsewhere.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"

struct RtPool {
	int32_t n_threads; /* workers + the calling thread */
	int32_t n_workers;
	pthread_t *workers;
	pthread_mutex_t mu;
	pthread_cond_t wake;  /* workers: a new job, or stop */
	pthread_cond_t done;  /* caller: the last worker left the job */
	atomic_ullong job_id; /* bumped for each job (written under mu) */
	atomic_int stop;      /* workers exit (written under mu) */
	atomic_int active;    /* workers still inside the job */
	RtRangeFn fn;         /* the job, stable while it runs */
	void *ctx;
	int64_t n, chunk, n_chunks;
	atomic_llong next; /* next chunk to take */
};

/* Polls of a spin before a thread sleeps (a few microseconds). */
#define SPIN 2000

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Set while a thread runs chunks: nested jobs then run serially. */
static _Thread_local int in_job;

int32_t rt_cpu_count(void)
{
	cpu_set_t set;
	long n;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int32_t)n : 1;
}

static void run_chunks(RtPool *p)
{
	int64_t c;
	in_job = 1;
	while ((c = atomic_fetch_add(&p->next, 1)) < p->n_chunks) {
		int64_t b = c * p->chunk;
		int64_t e = b + p->chunk < p->n ? b + p->chunk : p->n;
		p->fn(p->ctx, b, e);
	}
	in_job = 0;
}

static void *worker_main(void *arg)
{
	RtPool *p = arg;
	unsigned long long seen = 0;
	int k;
	for (;;) {
		for (k = 0; k < SPIN && atomic_load(&p->job_id) == seen &&
		            !atomic_load(&p->stop);
		     k++)
			cpu_relax();
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->job_id) == seen && !atomic_load(&p->stop))
			pthread_cond_wait(&p->wake, &p->mu);
		pthread_mutex_unlock(&p->mu);
		if (atomic_load(&p->stop))
			break;
		seen = atomic_load(&p->job_id);
		run_chunks(p);
		if (atomic_fetch_sub(&p->active, 1) == 1) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

static void stop_workers(RtPool *p, int32_t started)
{
	int32_t i;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, 1);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < started; i++)
		pthread_join(p->workers[i], NULL);
}

RtPool *rt_pool_new(int32_t n_threads)
{
	RtPool *p;
	sigset_t all, old;
	int32_t i;
	int rc = 0;
	if (n_threads < 1)
		n_threads = 1;
	p = rt_calloc(1, sizeof *p);
	if (!p) {
		rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory (thread pool)");
		return NULL;
	}
	p->n_threads = n_threads;
	p->n_workers = n_threads - 1;
	atomic_init(&p->job_id, 0);
	atomic_init(&p->stop, 0);
	atomic_init(&p->active, 0);
	atomic_init(&p->next, 0);
	p->workers =
	        rt_calloc((size_t)(p->n_workers ? p->n_workers : 1), sizeof *p->workers);
	if (!p->workers) {
		rt_free(p);
		rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory (thread pool)");
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < p->n_workers; i++) {
		rc = pthread_create(&p->workers[i], NULL, worker_main, p);
		if (rc != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		stop_workers(p, i);
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->wake);
		pthread_cond_destroy(&p->done);
		rt_free(p->workers);
		rt_free(p);
		rt_error(SLAPO_OUT_OF_MEMORY, "", "cannot start %d worker threads: %s",
		         (int)(n_threads - 1), strerror(rc));
		return NULL;
	}
	return p;
}

void rt_pool_free(RtPool *p)
{
	if (!p)
		return;
	stop_workers(p, p->n_workers);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	rt_free(p->workers);
	rt_free(p);
}

int32_t rt_pool_threads(const RtPool *p)
{
	return p ? p->n_threads : 1;
}

void rt_pool_run(RtPool *p, int64_t n, int64_t grain, RtRangeFn fn, void *ctx)
{
	int64_t n_chunks, chunk;
	int k;
	if (n <= 0)
		return;
	if (grain < 1)
		grain = 1;
	n_chunks = (n + grain - 1) / grain;
	if (p && n_chunks > p->n_threads)
		n_chunks = p->n_threads;
	if (!p || n_chunks <= 1 || p->n_workers == 0 || in_job) {
		fn(ctx, 0, n);
		return;
	}
	chunk = (n + n_chunks - 1) / n_chunks;
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->ctx = ctx;
	p->n = n;
	p->chunk = chunk;
	p->n_chunks = (n + chunk - 1) / chunk;
	atomic_store(&p->next, 0);
	atomic_store(&p->active, p->n_workers);
	atomic_fetch_add(&p->job_id, 1); /* publishes the job */
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	run_chunks(p);
	for (k = 0; k < SPIN && atomic_load(&p->active) > 0; k++)
		cpu_relax();
	if (atomic_load(&p->active) > 0) {
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->active) > 0)
			pthread_cond_wait(&p->done, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
}

void rt_parallel_for(RtExec *ex, int64_t n, int64_t grain, RtRangeFn fn, void *ctx)
{
	rt_pool_run(ex ? ex->pool : NULL, n, grain, fn, ctx);
}
