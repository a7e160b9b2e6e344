/* par.c — the persistent thread pool and batch splitting of qkd_par.h.
 * A job is published under the mutex with a new generation number; every participant (worker
 * threads and the caller, as participant 0) takes chunk numbers from an atomic counter until
 * none are left, then the last one to finish signals the caller. */
#include "qkd_par.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef enum { JOB_FWD64, JOB_BWD64, JOB_FWD32, JOB_BWD32, JOB_FOR } job_kind;

typedef struct {
  job_kind kind;
  const qkd_kernel *k;
  const void *params, *features, *d_outputs;
  void *outputs, *d_features;
  int batch, nf, nout, np;
  uint64_t seed, first;
  void *partials; /* [n_chunks][np] of double or float */
  int n_chunks;
  int chunk;      /* samples per chunk, qkd_par_chunk(k->ir, batch) */
  void (*fn)(void *ud, int c); /* JOB_FOR: the work of chunk c */
  void *ud;
} job;

typedef struct {
  void *ws;
  size_t size;
} workspace;

struct qkd_par_pool {
  int threads;
  pthread_t *tids;
  pthread_mutex_t mu;
  pthread_cond_t start, done;
  unsigned long generation;
  int active; /* workers still running the current job */
  int shutdown;
  job cur;
  atomic_int next_chunk;
  workspace *ws;          /* [threads] */
  void *partials;
  size_t partials_size;
};

typedef struct {
  qkd_par_pool *pool;
  int id;
} worker_arg;

int qkd_par_chunk(const qkd_ir_circuit *ir, int batch) {
  int bits = qkd_ir_noisy(ir) ? 2 * ir->n_qubits : ir->n_qubits;
  long long dim = 1LL << bits;
  if (dim <= QKD_PAR_SMALL_DIM) return QKD_PAR_CHUNK;
  if (dim <= QKD_PAR_LARGE_DIM) return batch >= 2 * QKD_PAR_CHUNK ? QKD_PAR_CHUNK : QKD_PAR_CHUNK_MID;
  return QKD_PAR_CHUNK_LARGE;
}

static void run_chunk(const job *j, int c, void *ws) {
  if (j->kind == JOB_FOR) {
    j->fn(j->ud, c);
    return;
  }
  int b0 = c * j->chunk;
  int len = j->batch - b0 < j->chunk ? j->batch - b0 : j->chunk;
  int f32 = j->kind == JOB_FWD32 || j->kind == JOB_BWD32;
  size_t es = f32 ? sizeof(float) : sizeof(double);
  size_t fo = (size_t)b0 * (size_t)j->nf * es, oo = (size_t)b0 * (size_t)j->nout * es;
  const void *f = j->features ? (const char *)j->features + fo : NULL;
  void *df = j->d_features ? (char *)j->d_features + fo : NULL;
  void *part = NULL; /* backward: this chunk's zeroed partial d_params */
  if (j->kind == JOB_BWD64 || j->kind == JOB_BWD32) {
    part = (char *)j->partials + (size_t)c * (size_t)j->np * es;
    memset(part, 0, (size_t)j->np * es);
  }
  const qkd_kernel *k = j->k;
  uint64_t first = j->first + (uint64_t)b0;
  switch (j->kind) {
  case JOB_FWD64: k->fwd_f64(k, j->params, f, len, j->seed, first, (double *)((char *)j->outputs + oo), ws); break;
  case JOB_FWD32: k->fwd_f32(k, j->params, f, len, j->seed, first, (float *)((char *)j->outputs + oo), ws); break;
  case JOB_BWD64: k->bwd_f64(k, j->params, f, len, (const double *)((const char *)j->d_outputs + oo), part, df, ws); break;
  case JOB_BWD32: k->bwd_f32(k, j->params, f, len, (const float *)((const char *)j->d_outputs + oo), part, df, ws); break;
  case JOB_FOR: break; /* handled above */
  }
}

static void participate(qkd_par_pool *p, int id) {
  for (;;) {
    int c = atomic_fetch_add(&p->next_chunk, 1);
    if (c >= p->cur.n_chunks) break;
    run_chunk(&p->cur, c, p->ws[id].ws);
  }
}

static void *worker(void *v) {
  worker_arg *a = v;
  qkd_par_pool *p = a->pool;
  int id = a->id;
  free(a);
  unsigned long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->generation == seen && !p->shutdown) pthread_cond_wait(&p->start, &p->mu);
    if (p->shutdown) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    participate(p, id);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

qkd_par_pool *qkd_par_create(int threads) {
  if (threads < 1) threads = 1;
  qkd_par_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->threads = threads;
  p->ws = calloc((size_t)threads, sizeof(workspace));
  p->tids = calloc((size_t)threads, sizeof(pthread_t));
  if (!p->ws || !p->tids) { free(p->ws); free(p->tids); free(p); return NULL; }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->start, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->next_chunk, 0);
  for (int i = 1; i < threads; i++) {
    worker_arg *a = malloc(sizeof *a);
    if (!a || (a->pool = p, a->id = i, pthread_create(&p->tids[i], NULL, worker, a) != 0)) {
      free(a);
      p->threads = i; /* workers 1..i-1 exist */
      qkd_par_destroy(p);
      return NULL;
    }
  }
  return p;
}

void qkd_par_destroy(qkd_par_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->shutdown = 1;
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->threads; i++) pthread_join(p->tids[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->start);
  pthread_cond_destroy(&p->done);
  for (int i = 0; i < p->threads; i++) free(p->ws[i].ws);
  free(p->ws);
  free(p->tids);
  free(p->partials);
  free(p);
}

int qkd_par_threads(const qkd_par_pool *p) { return p ? p->threads : 1; }

static void dispatch(qkd_par_pool *p, const job *j);

/* Workspaces for every participant and the partials buffer, then the job itself. */
static int run_job(qkd_par_pool *p, job *j, size_t elem) {
  if (j->batch <= 0) return 0;
  size_t need = qkd_kernel_workspace_bytes(j->k->ir);
  for (int i = 0; i < p->threads; i++)
    if (p->ws[i].size < need) {
      void *w = qkd_kernel_alloc(need);
      if (!w) return -1;
      free(p->ws[i].ws);
      p->ws[i].ws = w;
      p->ws[i].size = need;
    }
  j->chunk = qkd_par_chunk(j->k->ir, j->batch);
  j->n_chunks = (j->batch + j->chunk - 1) / j->chunk;
  size_t psize = (size_t)j->n_chunks * (size_t)(j->np > 0 ? j->np : 1) * elem;
  if (elem && p->partials_size < psize) {
    void *b = malloc(psize);
    if (!b) return -1;
    free(p->partials);
    p->partials = b;
    p->partials_size = psize;
  }
  j->partials = p->partials;
  dispatch(p, j);
  return 0;
}

/* Publishes j and runs its chunks on every participant; returns when all are done. */
static void dispatch(qkd_par_pool *p, const job *j) {
  p->cur = *j;
  atomic_store(&p->next_chunk, 0);
  int wake = p->threads > 1 && j->n_chunks > 1;
  if (wake) { /* every worker wakes; one finding no chunk left just reports back */
    pthread_mutex_lock(&p->mu);
    p->active = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
  }
  participate(p, 0);
  if (wake) {
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
}

void qkd_par_for(qkd_par_pool *p, int n, void (*fn)(void *ud, int c), void *ud) {
  job j;
  memset(&j, 0, sizeof j);
  j.kind = JOB_FOR, j.fn = fn, j.ud = ud, j.n_chunks = n;
  if (!p)
    for (int c = 0; c < n; c++) fn(ud, c);
  else if (n > 0)
    dispatch(p, &j);
}

static job base_job(job_kind kind, const qkd_kernel *k, int batch) {
  job j;
  memset(&j, 0, sizeof j);
  j.kind = kind;
  j.k = k;
  j.batch = batch;
  j.nf = k->ir->n_features;
  j.nout = qkd_ir_outputs(k->ir);
  j.np = k->ir->n_params;
  return j;
}

static int par_fwd(qkd_par_pool *p, job_kind kind, const qkd_kernel *k, const void *params,
                   const void *features, int batch, uint64_t seed, uint64_t first_sample, void *outputs) {
  job j = base_job(kind, k, batch);
  j.params = params; j.features = features; j.seed = seed; j.first = first_sample; j.outputs = outputs;
  return run_job(p, &j, 0);
}

int qkd_par_fwd_f64(qkd_par_pool *p, const qkd_kernel *k, const double *params,
                    const double *features, int batch, uint64_t seed, uint64_t first_sample,
                    double *outputs) {
  return par_fwd(p, JOB_FWD64, k, params, features, batch, seed, first_sample, outputs);
}

int qkd_par_fwd_f32(qkd_par_pool *p, const qkd_kernel *k, const float *params,
                    const float *features, int batch, uint64_t seed, uint64_t first_sample,
                    float *outputs) {
  return par_fwd(p, JOB_FWD32, k, params, features, batch, seed, first_sample, outputs);
}

/* Backward of either precision: the chunks' partials, then d_params += them in chunk order. */
static int par_bwd(qkd_par_pool *p, job_kind kind, const qkd_kernel *k, const void *params,
                   const void *features, int batch, const void *d_outputs, void *d_params,
                   void *d_features) {
  size_t es = kind == JOB_BWD32 ? sizeof(float) : sizeof(double);
  job j = base_job(kind, k, batch);
  j.params = params; j.features = features; j.d_outputs = d_outputs; j.d_features = d_features;
  if (run_job(p, &j, es) != 0) return -1;
  for (int c = 0; c < p->cur.n_chunks && batch > 0; c++)
    for (int i = 0; i < j.np; i++) {
      size_t at = (size_t)c * (size_t)j.np + (size_t)i;
      if (kind == JOB_BWD32) ((float *)d_params)[i] += ((const float *)p->partials)[at];
      else ((double *)d_params)[i] += ((const double *)p->partials)[at];
    }
  return 0;
}

int qkd_par_bwd_f64(qkd_par_pool *p, const qkd_kernel *k, const double *params,
                    const double *features, int batch, const double *d_outputs, double *d_params,
                    double *d_features) {
  return par_bwd(p, JOB_BWD64, k, params, features, batch, d_outputs, d_params, d_features);
}

int qkd_par_bwd_f32(qkd_par_pool *p, const qkd_kernel *k, const float *params,
                    const float *features, int batch, const float *d_outputs, float *d_params,
                    float *d_features) {
  return par_bwd(p, JOB_BWD32, k, params, features, batch, d_outputs, d_params, d_features);
}
