/* traj.c — Monte-Carlo trajectories of Pauli-channel noise (qkd_traj.h). */
#include "qkd_traj.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_channels.h"
#include "qkd_dmsim.h"
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

int qkd_traj_init(qkd_traj *t, const qkd_ir_circuit *c, int trajectories, qkd_error *err) {
  memset(t, 0, sizeof *t);
  if (trajectories < 1) return qkd_fail(err, QKD_ERR_INTERNAL, NULL, "%d trajectories", trajectories);
  if (qkd_traj_supported(c, err) != 0) return -1;
  t->noisy = c;
  t->trajectories = trajectories;
  t->F = c->n_features;
  t->O = qkd_ir_outputs(c);
  t->slots = malloc(sizeof *t->slots * (size_t)(c->n_channels + 1));
  if (!t->slots) goto oom;
  for (int i = 0; i < c->n_channels; i++) {
    double p[3];
    qkd_traj_pauli(c->channels[i].kind, c->channels[i].p, p);
    if (p[0] == 0 && p[1] == 0 && p[2] == 0) continue; /* the identity: no slot */
    t->slots[t->n_slots++] = (qkd_traj_slot){i, p[0], p[1], p[2]};
  }
  t->W = t->F + 2 * t->n_slots;
  if (!t->n_slots) t->trajectories = 1; /* every trajectory would be the same */
  qkd_ir_circuit *o = &t->circuit;
  *o = *c;
  o->n_channels = 0, o->channels = NULL, o->readout = NULL, o->trajectories = 0;
  o->n_features = t->W;
  if (c->encode == QKD_ENCODE_AMPLITUDE && t->n_slots) o->n_amplitudes = qkd_ir_amplitudes(c);
  o->n_gates = c->n_gates + 2 * t->n_slots;
  o->gates = malloc(sizeof *o->gates * (size_t)(o->n_gates + 1));
  if (!o->gates) goto oom;
  int k = 0, s = 0;
  for (int g = 0; g <= c->n_gates; g++) {
    for (; s < t->n_slots && c->channels[t->slots[s].channel].after == g; s++) {
      const qkd_ir_channel *ch = &c->channels[t->slots[s].channel];
      int line = g > 0 ? c->gates[g - 1].line : 0;
      for (int r = 0; r < 2; r++) { /* RZ(π b), then RX(π a) */
        qkd_ir_gate *sg = &o->gates[k++];
        memset(sg, 0, sizeof *sg);
        sg->kind = r == 0 ? QKD_GATE_RZ : QKD_GATE_RX;
        sg->q[0] = ch->qubit;
        sg->angle[0] = (qkd_angle){QKD_ANGLE_FEATURE, t->F + 2 * s + (r == 0 ? 1 : 0), M_PI, 0.0};
        sg->line = line;
      }
      if (g < c->n_encoding_gates) o->n_encoding_gates += 2;
    }
    if (g < c->n_gates) o->gates[k++] = c->gates[g];
  }
  if (qkd_ir_validate(o, err) != 0) {
    qkd_traj_free(t);
    return -1;
  }
  return 0;
oom:
  qkd_traj_free(t);
  return qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory building the trajectories of '%s'", c->name ? c->name : "?");
}

void qkd_traj_free(qkd_traj *t) {
  free(t->slots);
  free(t->circuit.gates);
  memset(t, 0, sizeof *t);
}

void qkd_traj_expand(const qkd_traj *t, const double *features, int batch, uint64_t seed, uint64_t first_sample,
                     double *rows) {
  int T = t->trajectories, S = t->n_slots;
  for (int b = 0; b < batch; b++) {
    uint64_t key = qkd_rng_u64(seed, QKD_STREAM_TRAJ, first_sample + (uint64_t)b);
    for (int j = 0; j < T; j++) {
      double *r = rows + ((size_t)b * T + j) * (size_t)t->W;
      memcpy(r, features + (size_t)b * t->F, sizeof(double) * (size_t)t->F);
      for (int s = 0; s < S; s++) {
        const qkd_traj_slot *sl = &t->slots[s];
        double u = qkd_rng_uniform(key, QKD_STREAM_TRAJ, (uint64_t)j * (uint64_t)S + (uint64_t)s);
        int P = u < sl->px ? 1 : u < sl->px + sl->py ? 2 : u < sl->px + sl->py + sl->pz ? 3 : 0;
        r[t->F + 2 * s] = P == 1 || P == 2;     /* a: RX(π) */
        r[t->F + 2 * s + 1] = P == 2 || P == 3; /* b: RZ(π) */
      }
    }
  }
}

/* The read-out of ⟨Z_q⟩: value = c0 + c1 ⟨Z_q⟩ (from the confusion matrix C[r][t]). */
static void z_affine(const qkd_ir_circuit *c, int q, double *c0, double *c1) {
  double m[2][2];
  qkd_chan_readout_matrix(c->readout ? c->readout[q].p01 : 0.0, c->readout ? c->readout[q].p10 : 0.0, m);
  double z0 = m[0][0] - m[1][0], z1 = m[0][1] - m[1][1]; /* read-out Z given true 0, 1 */
  *c0 = 0.5 * (z0 + z1), *c1 = 0.5 * (z0 - z1);
}

void qkd_traj_reduce(const qkd_traj *t, const double *row_outputs, int batch, double *outputs) {
  int T = t->trajectories, O = t->O;
  const qkd_ir_circuit *c = t->noisy;
  for (int b = 0; b < batch; b++) {
    double *o = outputs + (size_t)b * O;
    for (int i = 0; i < O; i++) {
      double s = 0;
      for (int j = 0; j < T; j++) s += row_outputs[((size_t)b * T + j) * O + i];
      o[i] = s / T;
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
  int T = t->trajectories, O = t->O;
  const qkd_ir_circuit *c = t->noisy;
  for (int b = 0; b < batch; b++) {
    double *first = row_d_outputs + (size_t)b * T * O;
    const double *d = d_outputs + (size_t)b * O;
    if (c->readout && c->measure == QKD_MEASURE_PROBS) {
      qkd_dm_observable(c, d, first); /* (⊗ C_q)ᵀ d */
    } else {
      for (int q = 0; q < O; q++) {
        double c0 = 0, c1 = 1;
        if (c->readout) z_affine(c, q, &c0, &c1);
        first[q] = c1 * d[q];
      }
    }
    for (int i = 0; i < O; i++) first[i] /= T;
    for (int j = 1; j < T; j++) memcpy(first + (size_t)j * O, first, sizeof(double) * (size_t)O);
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
