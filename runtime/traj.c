/* traj.c — Monte-Carlo trajectories of Pauli-channel noise (qkd_traj.h). */
#include "qkd_traj.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_channels.h"
#include "qkd_dmsim.h"
#include "qkd_kernel.h"
#include "qkd_par.h"
#include "qkd_rng.h"

typedef double complex cplx;

/* I, X, Y, Z, row-major */
static const cplx pauli[4][4] = {{1, 0, 0, 1}, {0, 1, 1, 0}, {0, -I, I, 0}, {1, 0, 0, -1}};

int qkd_traj_pauli(int chan_kind, double param, double p[3]) {
  const qkd_chan_info *info = qkd_chan(chan_kind);
  double K[QKD_CHAN_MAX_KRAUS][4][2];
  qkd_chan_kraus(chan_kind, param, K);
  cplx c[QKD_CHAN_MAX_KRAUS][4]; /* K_k = Σ_P c[k][P] P, c = Tr(P† K) / 2 */
  for (int k = 0; k < info->n_kraus; k++)
    for (int P = 0; P < 4; P++) {
      cplx s = 0;
      for (int e = 0; e < 4; e++) s += conj(pauli[P][e]) * (K[k][e][0] + I * K[k][e][1]);
      c[k][P] = s / 2;
    }
  double chi[4][4][2];
  for (int P = 0; P < 4; P++)
    for (int Q = 0; Q < 4; Q++) {
      cplx s = 0;
      for (int k = 0; k < info->n_kraus; k++) s += c[k][P] * conj(c[k][Q]);
      chi[P][Q][0] = creal(s), chi[P][Q][1] = cimag(s);
    }
  for (int P = 0; P < 4; P++)
    for (int Q = 0; Q < 4; Q++)
      if (P != Q && fabs(chi[P][Q][0]) + fabs(chi[P][Q][1]) > 1e-12) return -1;
  if (p)
    for (int P = 1; P < 4; P++) p[P - 1] = chi[P][P][0] < 0 ? 0 : chi[P][P][0];
  return 0;
}

int qkd_traj_supported(const qkd_ir_circuit *c, qkd_error *err) {
  for (int i = 0; i < c->n_channels; i++)
    if (qkd_traj_pauli(c->channels[i].kind, c->channels[i].p, NULL) != 0)
      return qkd_fail(err, QKD_ERR_INPUT, NULL,
                      "%s is not a Pauli channel, so trajectories cannot run it: use noise_engine: exact",
                      qkd_chan(c->channels[i].kind)->name);
  return 0;
}

/* ---- Clifford gates: the conjugation map of a gate instance, from the gate table's matrix ---- */

/* The image of a Pauli on a gate's qubits under U·P·U†, as x and z bit masks over the gate's
 * qubits (bit j: qubit q[j]). */
typedef struct {
  int x, z;
} pmask;

/* The D×D matrix of the Pauli with masks (x, z) on nq qubits (q[0] the high bit of a pattern),
 * X^x Z^z per qubit (Y up to a phase). */
static void pauli_matrix(int nq, pmask m, cplx *P) {
  int D = 1 << nq;
  for (int r = 0; r < D; r++)
    for (int c = 0; c < D; c++) {
      cplx v = 1;
      for (int j = 0; j < nq; j++) {
        int b = nq - 1 - j, rb = r >> b & 1, cb = c >> b & 1;
        int P1 = (m.x >> j & 1) * 1 + (m.z >> j & 1) * 2; /* 0 I, 1 X, 2 Z, 3 XZ */
        cplx e = P1 == 0 ? (rb == cb) : P1 == 1 ? (rb != cb) : P1 == 2 ? (rb == cb) * (cb ? -1 : 1)
                                                                      : (rb != cb) * (cb ? -1 : 1);
        v *= e;
      }
      P[r * D + c] = v;
    }
}

/* 1 and img[2·j] = image of X_j, img[2·j + 1] = image of Z_j when gate g (no angle or constant
 * angles) maps every Pauli to a Pauli up to a phase; else 0. */
static int clifford_map(const qkd_ir_gate *g, pmask img[2 * QKD_GATE_MAX_QUBITS]) {
  const qkd_gate_info *info = qkd_gate(g->kind);
  for (int s = 0; s < info->angles; s++)
    if (g->angle[s].kind != QKD_ANGLE_CONST) return 0;
  double a[QKD_GATE_MAX_ANGLES];
  qkd_ir_gate_angles(g, NULL, NULL, a);
  int nq = info->qubits, D = 1 << nq;
  double m[QKD_GATE_DIM * QKD_GATE_DIM][2];
  qkd_gate_matrix(g->kind, a, -1, m);
  cplx U[QKD_GATE_DIM * QKD_GATE_DIM], P[QKD_GATE_DIM * QKD_GATE_DIM], M[QKD_GATE_DIM * QKD_GATE_DIM], Q[QKD_GATE_DIM * QKD_GATE_DIM];
  for (int i = 0; i < D * D; i++) U[i] = m[i][0] + I * m[i][1];
  for (int j = 0; j < nq; j++)
    for (int w = 0; w < 2; w++) {
      pauli_matrix(nq, w ? (pmask){0, 1 << j} : (pmask){1 << j, 0}, P);
      for (int r = 0; r < D; r++) /* M = U P U† */
        for (int c = 0; c < D; c++) {
          cplx v = 0;
          for (int k = 0; k < D; k++)
            for (int l = 0; l < D; l++) v += U[r * D + k] * P[k * D + l] * conj(U[c * D + l]);
          M[r * D + c] = v;
        }
      int found = 0;
      for (int x = 0; x < D && !found; x++)
        for (int z = 0; z < D && !found; z++) {
          pauli_matrix(nq, (pmask){x, z}, Q);
          cplx t = 0;
          for (int i = 0; i < D * D; i++) t += conj(Q[i]) * M[i];
          t /= D; /* Tr(Q† M) / D: a phase of modulus 1 when M ∝ Q */
          if (fabs(cabs(t) - 1) < 1e-9) img[2 * j + w] = (pmask){x, z}, found = 1;
        }
      if (!found) return 0;
    }
  return 1;
}

/* ---- building the trajectory circuit -------------------------------------------------------- */

/* The carried Paulis: per qubit, its x and z bits as sets of draw bits (GF(2) combinations),
 * each a bitset of `words` uint64. */
typedef struct {
  int words;
  uint64_t *frame; /* [2 n][words]: x then z of every qubit */
  uint64_t *tmp;   /* [2 · QKD_GATE_MAX_QUBITS][words] */
} frame;

static uint64_t *fx(frame *f, int q) { return f->frame + (size_t)(2 * q) * f->words; }
static uint64_t *fz(frame *f, int q) { return f->frame + (size_t)(2 * q + 1) * f->words; }
static int set_empty(const uint64_t *s, int words) {
  for (int i = 0; i < words; i++)
    if (s[i]) return 0;
  return 1;
}

typedef struct {
  qkd_traj *t;
  qkd_ir_circuit *o;
  frame *f;
  int n_pool, cap_pool, cap_bits;
  int err;
} builder;

/* A new slot bit from set s (a feature index, its sources appended to the pool); -1 on OOM. */
static int add_bit(builder *b, const uint64_t *s) {
  qkd_traj *t = b->t;
  int cnt = 0;
  for (int i = 0; i < b->f->words; i++) cnt += __builtin_popcountll(s[i]);
  if (b->n_pool + cnt > b->cap_pool) {
    int cap = 2 * (b->n_pool + cnt) + 64;
    int *p = realloc(t->pool, sizeof(int) * (size_t)cap);
    if (!p) return b->err = -1;
    t->pool = p, b->cap_pool = cap;
  }
  if (t->n_bits == b->cap_bits) {
    int cap = 2 * b->cap_bits + 16;
    qkd_traj_bit *p = realloc(t->bits, sizeof *p * (size_t)cap);
    if (!p) return b->err = -1;
    t->bits = p, b->cap_bits = cap;
  }
  int at = b->n_pool;
  for (int i = 0; i < b->f->words; i++)
    for (uint64_t w = s[i]; w; w &= w - 1) t->pool[b->n_pool++] = i * 64 + __builtin_ctzll(w);
  t->bits[t->n_bits] = (qkd_traj_bit){t->F + t->n_bits, cnt, NULL};
  t->bits[t->n_bits].src = (const int *)(intptr_t)at; /* an offset until the pool stops moving */
  return t->F + t->n_bits++;
}

/* Applies qubit q's carried Pauli as a slot (RZ(π b), RX(π a)) at the end of o's gates; z
 * dropped when `no_z` (right before the measurement). */
static void emit_slot(builder *b, int q, int line, int no_z) {
  frame *f = b->f;
  int kinds[2] = {QKD_GATE_RZ, QKD_GATE_RX};
  uint64_t *sets[2] = {fz(f, q), fx(f, q)};
  for (int r = 0; r < 2; r++) {
    if ((r == 0 && no_z) || set_empty(sets[r], f->words)) continue;
    int feat = add_bit(b, sets[r]);
    if (feat < 0) return;
    qkd_ir_gate *sg = &b->o->gates[b->o->n_gates++];
    memset(sg, 0, sizeof *sg);
    sg->kind = (qkd_gate_kind)kinds[r];
    sg->q[0] = q;
    sg->angle[0] = (qkd_angle){QKD_ANGLE_BIT, feat, M_PI, 0.0};
    sg->line = line;
  }
  memset(fx(f, q), 0, sizeof(uint64_t) * (size_t)f->words);
  memset(fz(f, q), 0, sizeof(uint64_t) * (size_t)f->words);
}

/* The carried Pauli through Clifford gate g (conjugation map img). */
static void push_through(frame *f, const qkd_ir_gate *g, const pmask *img) {
  int nq = qkd_gate(g->kind)->qubits, W = f->words;
  uint64_t *nx[QKD_GATE_MAX_QUBITS], *nz[QKD_GATE_MAX_QUBITS];
  for (int k = 0; k < nq; k++) {
    nx[k] = f->tmp + (size_t)(2 * k) * W, nz[k] = f->tmp + (size_t)(2 * k + 1) * W;
    memset(nx[k], 0, sizeof(uint64_t) * (size_t)(2 * W));
  }
  for (int j = 0; j < nq; j++)
    for (int w = 0; w < 2; w++) {
      const uint64_t *src = w ? fz(f, g->q[j]) : fx(f, g->q[j]);
      pmask m = img[2 * j + w];
      for (int k = 0; k < nq; k++) {
        if (m.x >> k & 1)
          for (int i = 0; i < W; i++) nx[k][i] ^= src[i];
        if (m.z >> k & 1)
          for (int i = 0; i < W; i++) nz[k][i] ^= src[i];
      }
    }
  for (int k = 0; k < nq; k++) {
    memcpy(fx(f, g->q[k]), nx[k], sizeof(uint64_t) * (size_t)W);
    memcpy(fz(f, g->q[k]), nz[k], sizeof(uint64_t) * (size_t)W);
  }
}

int qkd_traj_init(qkd_traj *t, const qkd_ir_circuit *c, int trajectories, qkd_error *err) {
  memset(t, 0, sizeof *t);
  if (trajectories < 1) return qkd_fail(err, QKD_ERR_INTERNAL, NULL, "%d trajectories", trajectories);
  if (qkd_traj_supported(c, err) != 0) return -1;
  t->noisy = c;
  t->trajectories = trajectories;
  t->F = c->n_features;
  t->O = qkd_ir_outputs(c);
  int n = c->n_qubits;
  frame f = {0, NULL, NULL};
  builder b = {t, &t->circuit, &f, 0, 0, 0, 0};
  t->draws = malloc(sizeof *t->draws * (size_t)(c->n_channels + 1));
  if (!t->draws) goto oom;
  int *draw_of = malloc(sizeof(int) * (size_t)(c->n_channels + 1));
  if (!draw_of) goto oom;
  for (int i = 0; i < c->n_channels; i++) {
    double p[3];
    qkd_traj_pauli(c->channels[i].kind, c->channels[i].p, p);
    draw_of[i] = -1;
    if (p[0] == 0 && p[1] == 0 && p[2] == 0) continue; /* the identity: never drawn */
    draw_of[i] = t->n_draws;
    t->draws[t->n_draws++] = (qkd_traj_draw){i, p[0], p[1], p[2]};
  }
  f.words = (2 * t->n_draws + 63) / 64 + 1;
  f.frame = calloc((size_t)(2 * n) * f.words, sizeof(uint64_t));
  f.tmp = calloc((size_t)(2 * QKD_GATE_MAX_QUBITS) * f.words, sizeof(uint64_t));
  qkd_ir_circuit *o = &t->circuit;
  *o = *c;
  o->n_channels = 0, o->channels = NULL, o->readout = NULL, o->trajectories = 0;
  if (c->shots > 0) o->shots = 0, o->measure = QKD_MEASURE_PROBS; /* rows give the distribution; reduce draws */
  o->n_gates = 0, o->n_encoding_gates = 0;
  /* at most two slot gates per qubit before each gate, and at the end */
  o->gates = malloc(sizeof *o->gates * (size_t)(c->n_gates + 2 * (size_t)n * (c->n_gates + 1) + 1));
  if (!f.frame || !f.tmp || !o->gates) {
    free(draw_of);
    goto oom;
  }
  int ch = 0;
  for (int g = 0; g <= c->n_gates; g++) {
    for (; ch < c->n_channels && c->channels[ch].after == g; ch++) { /* channels acting before gate g */
      int d = draw_of[ch];
      if (d < 0) continue;
      int q = c->channels[ch].qubit;
      fx(&f, q)[(2 * d) / 64] ^= (uint64_t)1 << (2 * d % 64);
      fz(&f, q)[(2 * d + 1) / 64] ^= (uint64_t)1 << ((2 * d + 1) % 64);
    }
    if (g == c->n_gates) {
      for (int q = 0; q < n; q++) emit_slot(&b, q, g > 0 ? c->gates[g - 1].line : 0, 1);
      break;
    }
    const qkd_ir_gate *gt = &c->gates[g];
    pmask img[2 * QKD_GATE_MAX_QUBITS];
    if (clifford_map(gt, img)) {
      push_through(&f, gt, img);
    } else {
      for (int k = 0; k < qkd_gate(gt->kind)->qubits; k++) emit_slot(&b, gt->q[k], gt->line, 0);
    }
    if (g < c->n_encoding_gates) o->n_encoding_gates = o->n_gates + 1;
    o->gates[o->n_gates++] = *gt;
  }
  free(draw_of);
  free(f.frame), free(f.tmp);
  f.frame = f.tmp = NULL;
  if (b.err || !(t->scratch = malloc((size_t)QKD_TRAJ_SLICES * (size_t)(2 * t->n_draws + 1)))) goto oom;
  t->RO = qkd_ir_outputs(o);
  if (c->shots > 0 && !(t->probs = malloc(sizeof(double) * ((size_t)1 << n)))) goto oom;
  for (int i = 0; i < t->n_bits; i++) t->bits[i].src = t->pool + (intptr_t)t->bits[i].src;
  t->W = t->F + t->n_bits;
  o->n_features = t->W;
  if (c->encode == QKD_ENCODE_AMPLITUDE && t->n_bits) o->n_amplitudes = qkd_ir_amplitudes(c);
  if (!t->n_draws) t->trajectories = 1; /* every trajectory would be the same */
  if (qkd_ir_validate(o, err) != 0) {
    qkd_traj_free(t);
    return -1;
  }
  return 0;
oom:
  free(f.frame), free(f.tmp);
  qkd_traj_free(t);
  return qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory building the trajectories of '%s'", c->name ? c->name : "?");
}

void qkd_traj_free(qkd_traj *t) {
  free(t->draws);
  free(t->scratch);
  free(t->probs);
  free(t->bits);
  free(t->pool);
  free(t->circuit.gates);
  memset(t, 0, sizeof *t);
}

/* Samples [b0, b1) of an expansion, with draw scratch bit[2 D]. */
static void expand_range(const qkd_traj *t, const double *features, int b0, int b1, uint64_t seed,
                         uint64_t first_sample, double *rows, unsigned char *bit) {
  int T = t->trajectories, D = t->n_draws;
  for (int b = b0; b < b1; b++) {
    uint64_t key = qkd_rng_u64(seed, QKD_STREAM_TRAJ, first_sample + (uint64_t)b);
    for (int j = 0; j < T; j++) {
      double *r = rows + ((size_t)b * T + j) * (size_t)t->W;
      memcpy(r, features + (size_t)b * t->F, sizeof(double) * (size_t)t->F);
      for (int d = 0; d < D; d++) {
        const qkd_traj_draw *dr = &t->draws[d];
        double u = qkd_rng_uniform(key, QKD_STREAM_TRAJ, (uint64_t)j * (uint64_t)D + (uint64_t)d);
        int P = u < dr->px ? 1 : u < dr->px + dr->py ? 2 : u < dr->px + dr->py + dr->pz ? 3 : 0; /* I X Y Z */
        bit[2 * d] = P == 1 || P == 2;
        bit[2 * d + 1] = P == 2 || P == 3;
      }
      for (int i = 0; i < t->n_bits; i++) {
        const qkd_traj_bit *tb = &t->bits[i];
        int v = 0;
        for (int k = 0; k < tb->n; k++) v ^= bit[tb->src[k]];
        r[tb->feature] = v;
      }
    }
  }
}

typedef struct {
  const qkd_traj *t;
  const double *features;
  int batch, slices;
  uint64_t seed, first_sample;
  double *rows;
} expand_job;

static void expand_slice(void *ud, int c) {
  const expand_job *e = ud;
  int b0 = (int)((long)e->batch * c / e->slices), b1 = (int)((long)e->batch * (c + 1) / e->slices);
  expand_range(e->t, e->features, b0, b1, e->seed, e->first_sample, e->rows,
               e->t->scratch + (size_t)c * (size_t)(2 * e->t->n_draws + 1));
}

void qkd_traj_expand(const qkd_traj *t, qkd_par_pool *pool, const double *features, int batch, uint64_t seed,
                     uint64_t first_sample, double *rows) {
  int slices = pool ? qkd_par_threads(pool) : 1;
  if (slices > QKD_TRAJ_SLICES) slices = QKD_TRAJ_SLICES;
  if (slices > batch) slices = batch;
  expand_job e = {t, features, batch, slices, seed, first_sample, rows};
  if (slices > 1) qkd_par_for(pool, slices, expand_slice, &e);
  else expand_range(t, features, 0, batch, seed, first_sample, rows, t->scratch);
}

/* The read-out of ⟨Z_q⟩: value = c0 + c1 ⟨Z_q⟩ (qkd_dm_readout_z: z given true 0 and 1). */
static void z_affine(const qkd_ir_circuit *c, int q, double *c0, double *c1) {
  double z[2];
  qkd_dm_readout_z(c, q, z);
  *c0 = 0.5 * (z[0] + z[1]), *c1 = 0.5 * (z[0] - z[1]);
}

void qkd_traj_reduce(const qkd_traj *t, const double *row_outputs, int batch, uint64_t seed, uint64_t first_sample,
                     double *outputs) {
  int T = t->trajectories, O = t->O, RO = t->RO;
  const qkd_ir_circuit *c = t->noisy;
  for (int b = 0; b < batch; b++) {
    double *o = outputs + (size_t)b * O, *m = c->shots > 0 ? t->probs : o;
    for (int i = 0; i < RO; i++) {
      double s = 0;
      for (int j = 0; j < T; j++) s += row_outputs[((size_t)b * T + j) * RO + i];
      m[i] = s / T;
    }
    if (c->shots > 0) { /* as the exact engine: the read-bit distribution, then the shots */
      qkd_dm_read_probs_of_diag(c, m);
      qkd_kernel_sample_f64(c->n_qubits, c->measure, c->shots, m, seed, first_sample + (uint64_t)b, o);
      continue;
    }
    if (!c->readout) continue;
    if (c->measure == QKD_MEASURE_PROBS) {
      qkd_dm_read_probs_of_diag(c, o);
    } else {
      for (int q = 0; q < O; q++) {
        double c0, c1;
        z_affine(c, q, &c0, &c1);
        o[q] = c0 + c1 * o[q];
      }
    }
  }
}

void qkd_traj_spread(const qkd_traj *t, const double *d_outputs, int batch, double *row_d_outputs) {
  int T = t->trajectories, O = t->O, RO = t->RO;
  const qkd_ir_circuit *c = t->noisy;
  for (int b = 0; b < batch; b++) {
    double *first = row_d_outputs + (size_t)b * T * RO;
    const double *d = d_outputs + (size_t)b * O;
    if (c->shots > 0 || (c->readout && c->measure == QKD_MEASURE_PROBS)) {
      qkd_dm_observable(c, d, first); /* the rows' distribution weighed by Λ (read-out included) */
    } else {
      for (int q = 0; q < O; q++) {
        double c0 = 0, c1 = 1;
        if (c->readout) z_affine(c, q, &c0, &c1);
        first[q] = c1 * d[q];
      }
    }
    for (int i = 0; i < RO; i++) first[i] /= T;
    for (int j = 1; j < T; j++) memcpy(first + (size_t)j * RO, first, sizeof(double) * (size_t)RO);
  }
}

void qkd_traj_gather(const qkd_traj *t, const double *row_d_features, int batch, double *d_features) {
  int T = t->trajectories;
  for (int b = 0; b < batch; b++) {
    double *d = d_features + (size_t)b * t->F;
    for (int i = 0; i < t->F; i++) {
      double s = 0;
      for (int j = 0; j < T; j++) s += row_d_features[((size_t)b * T + j) * t->W + i];
      d[i] = s;
    }
  }
}
