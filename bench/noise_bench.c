/* noise_bench.c — forward + gradient throughput of the exact density-matrix engines on the noisy
 * benchmark workload W(n, L, B) with depolarizing(p), next to a plain PyTorch density-matrix peer
 * (bench/ref_dm_torch.py) run on the same data in the same run, and a check that all of them
 * compute the same outputs and gradients.
 *
 * The workload: circgen_hea(n, L) (amplitude encoding of 2^n features, L layers of [RY then RZ on
 * every qubit, each its own parameter; CNOT ring q → (q+1) mod n], MEASURE_PROBS, f64) plus a
 * depolarizing(p) channel on every qubit of every gate (control, then target) with `after` = the
 * gate's index + 1, i.e. right after that gate (qkd_ir.h). Data from qkd_rng, seed 12345, as
 * qsim_bench: features uniform [0, 1) normalised, params uniform [0, 2π), and a fixed upstream
 * gradient d_outputs uniform [−1, 1) (stream DATA, counters from 3·10^9), so the loss is
 * Σ outputs · d_outputs. One repetition = qkd_par_fwd_f64 then qkd_par_bwd_f64 over the batch on a
 * pool of THREADS threads, as qsim_bench (the batch cut into qkd_par_chunk(circuit, batch)-sample chunks: a
 * batch of fewer chunks than threads leaves threads idle, and the row's note says so).
 *
 * Engines: "dm" (qkd_dm_kernel, the reference: slow, so it is timed on max(1, B/50) samples:
 * timed_batch) and "dmk" (qkd_dmk_kernel, the fast one the trainer runs). The peer gets the same params, features and d_outputs as .npy files in
 * a temporary directory (ref_dm_torch.py --in/--out) and hands its outputs and gradient back there.
 *
 * Checks (every row), untimed: the first K = min(B, max(dm's timed batch, 16; 2 above 6 qubits))
 * samples on the engine and on dm (check_samples), and the first K' = min(K, the peer's batch) on
 * the engine and in the peer (peer_check_samples): max |Δ| of the K × 2^n outputs and of d_params
 * (the gradient over those K samples) vs dm, and the same over K' vs the peer, are fields. dm's
 * own values are the reference, computed once per (n, L, B, p) (qkd_par.h: they do not depend on
 * the thread count). A row is "ok" when every difference is within tol (1e-10 for outputs,
 * 1e-10 · max(1, max |d_params|) for the gradient); else "ok": false and "check" names what
 * disagreed. Without the peer (QKD_BENCH_NO_PEER=1, torch missing, the peer failing) its fields
 * are null, peer_note says why, and only the engines are checked.
 *
 * Usage: noise_bench                       the default table: W(4,10,1000) and W(8,10,128), p 0.01,
 *                                          threads 2 then 1 (each row a few seconds a repetition)
 *        noise_bench N L B THREADS P       one row per engine
 * Environment: QKD_BENCH_REPS (≥ 3; default 5, 3 above 6 qubits) timed repetitions after one
 * warm-up; QKD_BENCH_NO_PEER=1; QKD_NOISE_PEER (the peer script; default ref_dm_torch.py beside
 * this source); QKD_NOISE_PEER_BATCH (default min(B, 200) up to 6 qubits, else 1: plain autograd
 * takes tens of seconds a sample at 8), QKD_NOISE_PEER_ITERS (its timed repetitions: default 5
 * after a warm-up up to 6 qubits, else 1 without), QKD_NOISE_PEER_THREADS (default "1 2": the
 * peer is reported at its best). The peer runs once per (n, L, B, p).
 * Stdout: one JSON object per (engine, n, L, B, threads), nothing else: samples_per_s =
 * timed_batch / median repetition; ratio = samples_per_s / peer_samples_per_s. Progress on
 * stderr. Exits 0 unless the arguments are wrong (1). */
#include "benchutil.h"
#include "circgen.h"
#include "qkd_dmsim.h"
#include "qkd_npy.h"
#include "qkd_par.h"
#include "qkd_rng.h"
#include "qkd_time.h"
#include "qkd_dmk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef QKD_BENCH_DIR
#define QKD_BENCH_DIR "bench"
#endif

#define DM_DIV 50 /* dm is timed on B / DM_DIV samples */
#define TOL 1e-10

static int env_int(const char *name, int dflt, int lo) {
  const char *s = getenv(name);
  return s && *s && atoi(s) >= lo ? atoi(s) : dflt;
}

static double max_abs_diff(const double *a, const double *b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(a[i] - b[i]);
    if (!(d <= m)) m = d; /* NaN wins */
  }
  return m;
}

static double max_abs(const double *a, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++)
    if (fabs(a[i]) > m) m = fabs(a[i]);
  return m;
}

/* ---- the workload ------------------------------------------------------------------------- */

typedef struct {
  int n, L, B, dim, np;
  double p;
  qkd_ir_circuit *c;
  qkd_ir_channel *ch;
  double *x, *th, *d; /* features [B][dim], params [np], d_outputs [B][dim] */
} workload;

static void workload_free(workload *w) {
  if (w->c) circgen_free(w->c);
  free(w->ch); free(w->x); free(w->th); free(w->d);
}

static int workload_make(workload *w, int n, int L, int B, double p) {
  memset(w, 0, sizeof *w);
  w->n = n, w->L = L, w->B = B, w->p = p;
  w->c = circgen_hea(n, L, QKD_MEASURE_PROBS, QKD_PREC_F64);
  qkd_ir_circuit *c = w->c;
  int nc = 0;
  for (int g = 0; g < c->n_gates; g++) nc += qkd_gate(c->gates[g].kind)->qubits;
  w->ch = malloc((size_t)(nc + 1) * sizeof *w->ch);
  if (!w->ch) abort();
  nc = 0;
  for (int g = 0; g < c->n_gates; g++)
    for (int k = 0; k < qkd_gate(c->gates[g].kind)->qubits; k++)
      w->ch[nc++] = (qkd_ir_channel){QKD_CHAN_DEPOLARIZING, c->gates[g].q[k], p, g + 1};
  c->n_channels = nc;
  c->channels = w->ch;
  qkd_error err;
  if (qkd_ir_validate(c, &err) != 0) {
    qkd_error_print(&err, stderr);
    return -1;
  }
  w->dim = 1 << n, w->np = c->n_params;
  size_t bd = (size_t)B * w->dim;
  w->x = malloc(bd * sizeof(double)), w->d = malloc(bd * sizeof(double));
  w->th = malloc((size_t)w->np * sizeof(double));
  if (!w->x || !w->d || !w->th) abort();
  circgen_hea_data(c, B, w->x, w->th);
  for (size_t i = 0; i < bd; i++) w->d[i] = 2.0 * qkd_rng_uniform(12345, QKD_STREAM_DATA, 3000000000ull + i) - 1.0;
  return 0;
}

/* ---- the engines -------------------------------------------------------------------------- */

/* fwd + bwd of the first `batch` samples: outputs [batch][dim], d_params (zeroed first). */
static int fwd_bwd(qkd_par_pool *pool, const qkd_kernel *k, const workload *w, int batch, double *out,
                   double *gp) {
  if (qkd_par_fwd_f64(pool, k, w->th, w->x, batch, 1, 0, out) != 0) return -1;
  memset(gp, 0, (size_t)w->np * sizeof(double));
  return qkd_par_bwd_f64(pool, k, w->th, w->x, batch, w->d, gp, NULL);
}

/* Median seconds of `reps` repetitions of fwd_bwd over `batch` samples, after one warm-up. */
static double time_engine(qkd_par_pool *pool, const qkd_kernel *k, const workload *w, int batch, int reps,
                          double *tmin, double *tmax) {
  double *out = malloc((size_t)batch * w->dim * sizeof(double)), *gp = malloc((size_t)w->np * sizeof(double));
  double *t = malloc((size_t)reps * sizeof(double));
  if (!out || !gp || !t) abort();
  double med = -1;
  int r;
  for (r = -1; r < reps; r++) {
    double s = qkd_now_s();
    if (fwd_bwd(pool, k, w, batch, out, gp) != 0) break;
    if (r >= 0) t[r] = qkd_now_s() - s;
  }
  if (r == reps) {
    qsort(t, (size_t)reps, sizeof *t, bench_cmp_double);
    med = t[reps / 2], *tmin = t[0], *tmax = t[reps - 1];
  }
  free(out); free(gp); free(t);
  return med;
}

/* ---- the peer ----------------------------------------------------------------------------- */

typedef struct {
  int n, L, B;
  double p;
  int batch, iters, warmup;     /* the peer's batch, timed and untimed repetitions */
  int threads, K;               /* its best thread count, its check samples */
  double sps;                   /* -1: unavailable */
  double *out, *gp;             /* [K][dim] outputs and d_params over the first K samples */
  char why[160];
} peer_result;

static peer_result peers[8];
static int npeers;

static int save_f64(const char *dir, const char *name, const double *a, int ndim, long d0, long d1,
                    qkd_error *err) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  qkd_npy v = {.type = QKD_NPY_F64, .ndim = ndim, .shape = {d0, d1}, .count = ndim == 1 ? d0 : d0 * d1,
               .data = (void *)a};
  return qkd_npy_save(path, &v, err);
}

/* Loads dir/name, float64 of `count` elements, into a new buffer (NULL on any mismatch). */
static double *load_f64(const char *dir, const char *name, long count, char *why, size_t whyn) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  qkd_npy a;
  qkd_error err;
  if (qkd_npy_load(path, NULL, 0, &a, &err) != 0) {
    snprintf(why, whyn, "cannot read the peer's %s", name);
    return NULL;
  }
  if (a.type != QKD_NPY_F64 || a.count != count) {
    snprintf(why, whyn, "the peer's %s has %ld elements, expected %ld", name, a.count, count);
    qkd_npy_free(&a);
    return NULL;
  }
  double *v = a.data; /* ownership moves to the caller */
  return v;
}

/* One peer run at `threads`: samples/s, or -1 (why filled). The check arrays stay in dir. */
static double peer_once(const char *dir, const workload *w, const peer_result *r, int threads, char *why,
                        size_t whyn) {
  const char *script = getenv("QKD_NOISE_PEER");
  if (!script || !*script) script = QKD_BENCH_DIR "/ref_dm_torch.py";
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 '%s' --qubits %d --layers %d --p %.17g --batch %d --threads %d --iters %d "
           "--warmup %d --in '%s' --out '%s' --check %d 2>'%s/peer.stderr'",
           script, w->n, w->L, w->p, r->batch, threads, r->iters, r->warmup, dir, dir, r->K, dir);
  FILE *p = popen(cmd, "r");
  if (!p) {
    snprintf(why, whyn, "cannot start the peer");
    return -1;
  }
  char line[8192];
  double sps = -1;
  while (fgets(line, sizeof line, p)) {
    const char *s = strstr(line, "\"samples_per_s\":");
    if (s) sps = atof(s + strlen("\"samples_per_s\":"));
  }
  if (pclose(p) != 0 || sps <= 0) {
    snprintf(why, whyn, "the peer failed (python3-torch missing? see stderr)");
    char path[512];
    snprintf(path, sizeof path, "%s/peer.stderr", dir);
    FILE *e = fopen(path, "r");
    while (e && fgets(line, sizeof line, e)) fprintf(stderr, "noise_bench: peer: %s", line);
    if (e) fclose(e);
    return -1;
  }
  return sps;
}

/* The peer for w (cached per n, L, B, p), at its best of QKD_NOISE_PEER_THREADS (default 1 and
 * 2 threads), with its check arrays over the first min(K, its batch) samples. */
static const peer_result *peer_get(const workload *w, int K) {
  for (int i = 0; i < npeers; i++)
    if (peers[i].n == w->n && peers[i].L == w->L && peers[i].B == w->B && peers[i].p == w->p) return &peers[i];
  peer_result *r = &peers[npeers < 8 ? npeers++ : 7];
  if (r->out) free(r->out);
  if (r->gp) free(r->gp);
  memset(r, 0, sizeof *r);
  r->n = w->n, r->L = w->L, r->B = w->B, r->p = w->p, r->sps = -1;
  r->batch = env_int("QKD_NOISE_PEER_BATCH", w->n <= 6 ? 200 : 1, 1);
  if (r->batch > w->B) r->batch = w->B;
  r->iters = env_int("QKD_NOISE_PEER_ITERS", w->n <= 6 ? 5 : 1, 1);
  r->warmup = w->n <= 6 ? 1 : 0;
  r->K = K < r->batch ? K : r->batch;
  const char *skip = getenv("QKD_BENCH_NO_PEER");
  if (skip && *skip == '1') {
    snprintf(r->why, sizeof r->why, "skipped (QKD_BENCH_NO_PEER=1)");
    return r;
  }
  char dir[] = "/tmp/noise_bench_XXXXXX";
  if (!mkdtemp(dir)) {
    snprintf(r->why, sizeof r->why, "no temporary directory");
    return r;
  }
  qkd_error err;
  if (save_f64(dir, "params.npy", w->th, 1, w->np, 0, &err) != 0 ||
      save_f64(dir, "features.npy", w->x, 2, r->batch, w->dim, &err) != 0 ||
      save_f64(dir, "d_outputs.npy", w->d, 2, r->batch, w->dim, &err) != 0) {
    qkd_error_print(&err, stderr);
    snprintf(r->why, sizeof r->why, "cannot write the peer's inputs");
  } else {
    const char *ts = getenv("QKD_NOISE_PEER_THREADS");
    if (!ts || !*ts) ts = "1 2";
    for (;;) {
      while (*ts == ' ' || *ts == ',') ts++;
      char *e;
      int t = (int)strtol(ts, &e, 10);
      if (e == ts) break;
      ts = e;
      if (t < 1) continue;
      fprintf(stderr, "noise_bench: peer W(%d,%d,%d) p=%g threads %d …\n", w->n, w->L, r->batch, w->p, t);
      double s = peer_once(dir, w, r, t, r->why, sizeof r->why);
      if (s < 0) break;
      if (s > r->sps) r->sps = s, r->threads = t;
    }
    if (r->sps > 0) {
      double *out = load_f64(dir, "peer_outputs.npy", (long)r->batch * w->dim, r->why, sizeof r->why);
      r->gp = load_f64(dir, "peer_check_d_params.npy", w->np, r->why, sizeof r->why);
      if (out && r->gp) {
        r->out = malloc((size_t)r->K * w->dim * sizeof(double));
        if (!r->out) abort();
        memcpy(r->out, out, (size_t)r->K * w->dim * sizeof(double));
      } else {
        r->sps = -1;
      }
      free(out);
    }
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "noise_bench: cannot remove %s\n", dir);
  return r;
}

/* ---- rows ---------------------------------------------------------------------------------- */

static void num(char *buf, size_t n, const char *fmt, double v, int valid) {
  if (valid && isfinite(v)) snprintf(buf, n, fmt, v);
  else snprintf(buf, n, "null");
}

typedef struct {
  const char *name;
  int (*make)(const qkd_ir_circuit *, qkd_kernel *, qkd_error *);
  void (*release)(qkd_kernel *);
} engine;

/* The check values of one engine: outputs over the first K samples, d_params over K and over Kp. */
typedef struct {
  double *out, *gp, *gpp;
} check_vals;

static int check_run(qkd_par_pool *pool, const qkd_kernel *k, const workload *w, int K, int Kp, check_vals *v) {
  if (fwd_bwd(pool, k, w, K, v->out, v->gp) != 0) return -1;
  if (Kp <= 0 || Kp == K) {
    memcpy(v->gpp, v->gp, (size_t)w->np * sizeof(double));
    return 0;
  }
  memset(v->gpp, 0, (size_t)w->np * sizeof(double));
  return qkd_par_bwd_f64(pool, k, w->th, w->x, Kp, w->d, v->gpp, NULL);
}

/* One JSON line per (engine, thread count) of W(n, L, B) with depolarizing(p). */
static void rows(int n, int L, int B, double p, const int *threads, int nt) {
  workload w;
  if (workload_make(&w, n, L, B, p) != 0) {
    workload_free(&w);
    return;
  }
  int reps = env_int("QKD_BENCH_REPS", n <= 6 ? 5 : 3, 3);
  int Bdm = B / DM_DIV > 0 ? B / DM_DIV : 1;
  int K = Bdm > (n <= 6 ? 16 : 2) ? Bdm : (n <= 6 ? 16 : 2); /* the check samples against dm */
  if (K > B) K = B;
  engine engines[2] = {{"dm", qkd_dm_kernel, NULL}, {"dmk", qkd_dmk_kernel, qkd_dmk_free}};
  int ne = 2;
  const peer_result *peer = peer_get(&w, K);
  int Kp = peer->sps > 0 ? peer->K : 0; /* … and against the peer (≤ K) */
  size_t ko = (size_t)K * w.dim, kpo = (size_t)Kp * w.dim, npb = (size_t)w.np * sizeof(double);
  check_vals ref = {malloc(ko * sizeof(double)), malloc(npb), malloc(npb)};
  check_vals ev = {malloc(ko * sizeof(double)), malloc(npb), malloc(npb)};
  if (!ref.out || !ref.gp || !ref.gpp || !ev.out || !ev.gp || !ev.gpp) abort();
  /* the reference: dm on the first K (and Kp) samples, once for every thread count */
  qkd_kernel kdm;
  qkd_error err;
  qkd_par_pool *rpool = qkd_par_create(threads[0]);
  if (!rpool) abort();
  fprintf(stderr, "noise_bench: dm reference W(%d,%d,%d) …\n", n, L, K);
  int have_ref = qkd_dm_kernel(w.c, &kdm, &err) == 0 && check_run(rpool, &kdm, &w, K, Kp, &ref) == 0;
  qkd_par_destroy(rpool);
  if (!have_ref) fprintf(stderr, "noise_bench: the dm reference failed on W(%d,%d,%d)\n", n, L, K);
  double gscale = have_ref && max_abs(ref.gp, (size_t)w.np) > 1.0 ? max_abs(ref.gp, (size_t)w.np) : 1.0;
  for (int ti = 0; ti < nt; ti++) {
    int T = threads[ti];
    qkd_par_pool *pool = qkd_par_create(T);
    if (!pool) abort();
    for (int e = 0; e < ne; e++) {
      qkd_kernel k;
      if (engines[e].make(w.c, &k, &err) != 0) {
        qkd_error_print(&err, stderr);
        continue;
      }
      int is_dm = strcmp(engines[e].name, "dm") == 0, Bt = is_dm ? Bdm : B;
      double tmin = 0, tmax = 0, l0 = bench_load_1m();
      double med = time_engine(pool, &k, &w, Bt, reps, &tmin, &tmax);
      double sps = med > 0 ? Bt / med : -1;
      fprintf(stderr, "noise_bench: %s W(%d,%d,%d) p=%g T=%d median %.3f s (min %.3f, max %.3f)\n",
              engines[e].name, n, L, Bt, p, T, med, tmin, tmax);
      /* the checks, untimed (dm's values are the reference itself: its results do not depend on
         the thread count, qkd_par.h) */
      int ran = med > 0 && (is_dm ? have_ref : check_run(pool, &k, &w, K, Kp, &ev) == 0);
      const check_vals *v = is_dm ? &ref : &ev;
      double o_dm = NAN, g_dm = NAN, o_pe = NAN, g_pe = NAN;
      if (ran && have_ref) {
        o_dm = max_abs_diff(v->out, ref.out, ko);
        g_dm = max_abs_diff(v->gp, ref.gp, (size_t)w.np);
      }
      if (ran && Kp > 0) {
        o_pe = max_abs_diff(v->out, peer->out, kpo);
        g_pe = max_abs_diff(v->gpp, peer->gp, (size_t)w.np);
      }
      char check[256] = "";
      size_t cl = 0;
#define WHY(...) cl += (size_t)snprintf(check + cl, cl < sizeof check ? sizeof check - cl : 0, __VA_ARGS__)
      if (!ran) WHY("%sthe engine failed", cl ? "; " : "");
      if (!have_ref) WHY("%sno dm reference", cl ? "; " : "");
      if (ran && have_ref && !(o_dm <= TOL)) WHY("%soutputs differ from dm by %.3g", cl ? "; " : "", o_dm);
      if (ran && have_ref && !(g_dm <= TOL * gscale)) WHY("%sd_params differ from dm by %.3g", cl ? "; " : "", g_dm);
      if (ran && Kp > 0 && !(o_pe <= TOL)) WHY("%soutputs differ from the peer by %.3g", cl ? "; " : "", o_pe);
      if (ran && Kp > 0 && !(g_pe <= TOL * gscale)) WHY("%sd_params differ from the peer by %.3g", cl ? "; " : "", g_pe);
#undef WHY
      int ok = cl == 0;
      if (ok) snprintf(check, sizeof check, "%s", Kp > 0 ? "ok" : "ok (engines only: no peer)");
      char note[256] = "";
      int chunk = qkd_par_chunk(w.c, Bt), chunks = (Bt + chunk - 1) / chunk;
      if (is_dm)
        snprintf(note, sizeof note, "reference engine, timed on max(1, B/%d) = %d samples%s", DM_DIV, Bt,
                 chunks < T ? "; fewer qkd_par chunks than threads: some threads idle" : "");
      else if (chunks < T)
        snprintf(note, sizeof note, "fewer qkd_par chunks (%d samples each) than threads: some threads idle",
                 chunk);
      char s_sps[32], s_psps[32], s_ratio[32], s_od[32], s_gd[32], s_op[32], s_gp[32], s_pb[16], s_pt[16],
          s_pr[16], s_l[16];
      num(s_sps, sizeof s_sps, "%.3f", sps, sps > 0);
      num(s_psps, sizeof s_psps, "%.4f", peer->sps, peer->sps > 0);
      num(s_ratio, sizeof s_ratio, "%.2f", sps / peer->sps, sps > 0 && peer->sps > 0);
      num(s_od, sizeof s_od, "%.3g", o_dm, 1);
      num(s_gd, sizeof s_gd, "%.3g", g_dm, 1);
      num(s_op, sizeof s_op, "%.3g", o_pe, 1);
      num(s_gp, sizeof s_gp, "%.3g", g_pe, 1);
      num(s_pb, sizeof s_pb, "%.0f", peer->batch, peer->sps > 0);
      num(s_pt, sizeof s_pt, "%.0f", peer->threads, peer->sps > 0);
      num(s_pr, sizeof s_pr, "%.0f", peer->iters, peer->sps > 0);
      num(s_l, sizeof s_l, "%.2f", l0, l0 >= 0);
      printf("{\"engine\": \"%s\", \"qubits\": %d, \"layers\": %d, \"batch\": %d, \"timed_batch\": %d, "
             "\"threads\": %d, \"p\": %g, \"channels\": %d, \"reps\": %d, \"median_s\": %.6f, "
             "\"samples_per_s\": %s, \"peer\": \"torch-dm\", \"peer_batch\": %s, \"peer_threads\": %s, "
             "\"peer_reps\": %s, \"peer_samples_per_s\": %s, \"ratio\": %s, \"check_samples\": %d, "
             "\"peer_check_samples\": %d, \"max_abs_out_vs_dm\": %s, \"max_abs_dparams_vs_dm\": %s, "
             "\"max_abs_out_vs_peer\": %s, \"max_abs_dparams_vs_peer\": %s, \"tol_out\": %g, "
             "\"tol_dparams\": %g, \"ok\": %s, \"check\": \"%s\", \"peer_note\": \"%s\", \"note\": \"%s\", "
             "\"load_avg_1m\": %s}\n",
             engines[e].name, n, L, B, Bt, T, p, w.c->n_channels, reps, med, s_sps, s_pb, s_pt, s_pr, s_psps,
             s_ratio, K, Kp, s_od, s_gd, s_op, s_gp, TOL, TOL * gscale, ok ? "true" : "false", check,
             peer->sps > 0 ? "" : peer->why, note, s_l);
      fflush(stdout);
      if (engines[e].release) engines[e].release(&k);
    }
    qkd_par_destroy(pool);
  }
  free(ref.out); free(ref.gp); free(ref.gpp); free(ev.out); free(ev.gp); free(ev.gpp);
  workload_free(&w);
}

int main(int argc, char **argv) {
  if (argc == 6) {
    int n = atoi(argv[1]), L = atoi(argv[2]), B = atoi(argv[3]), T = atoi(argv[4]);
    double p = atof(argv[5]);
    if (n < 1 || n > QKD_DM_MAX_QUBITS || L < 1 || B < 1 || T < 1 || !(p >= 0.0 && p <= 1.0)) {
      fprintf(stderr, "noise_bench: error: want N (1..%d) L (≥ 1) B (≥ 1) THREADS (≥ 1) P (0..1)\n",
              QKD_DM_MAX_QUBITS);
      return 1;
    }
    rows(n, L, B, p, &T, 1);
    return 0;
  }
  if (argc != 1) {
    fprintf(stderr, "usage: noise_bench [N L B THREADS P]\n");
    return 1;
  }
  static const int threads[2] = {2, 1};
  rows(4, 10, 1000, 0.01, threads, 2);
  rows(8, 10, 128, 0.01, threads, 2); /* two of qkd_par's chunks: both threads busy */
  return 0;
}
