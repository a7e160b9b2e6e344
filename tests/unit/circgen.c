/* circgen.c — seeded random circuits (see circgen.h). */
#include "circgen.h"

#include "qkd_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CIRCGEN_STREAM 0x63697263ull /* "circ": this generator's own qkd_rng stream */
#define CG_PI 3.14159265358979323846

typedef struct { uint64_t seed, ctr; } cg_rng;

static double cg_unif(cg_rng *r) { return qkd_rng_uniform(r->seed, CIRCGEN_STREAM, r->ctr++); }
/* uniform integer in lo..hi (inclusive) */
static int cg_int(cg_rng *r, int lo, int hi) {
  if (hi <= lo) return lo;
  return lo + (int)(qkd_rng_u64(r->seed, CIRCGEN_STREAM, r->ctr++) % (uint64_t)(hi - lo + 1));
}

circgen_opts circgen_defaults(void) {
  circgen_opts o;
  o.min_qubits = 1;
  o.max_qubits = 10;
  o.min_gates = 1;
  o.max_gates = 30;
  o.p_amplitude = 0.35;
  o.p_gate_encoding = 0.7;
  o.p_probs = 0.5;
  o.p_shots = 0.0;
  o.max_shots = 2000;
  o.p_param = 0.6;
  o.p_feature = 0.2;
  o.amp_feature_angles = 1;
  o.p_extra_features = 0.0;
  o.precision = QKD_PREC_F64;
  return o;
}

static qkd_ir_circuit *cg_alloc(int max_gates) {
  size_t bytes = sizeof(qkd_ir_circuit) + (size_t)(max_gates > 0 ? max_gates : 1) * sizeof(qkd_ir_gate);
  qkd_ir_circuit *c = calloc(1, bytes);
  if (!c) abort();
  c->gates = (qkd_ir_gate *)(void *)(c + 1);
  c->name = "circgen";
  return c;
}

static qkd_angle cg_angle(cg_rng *r, qkd_angle_kind kind, int index) {
  qkd_angle a;
  a.kind = kind;
  a.index = kind == QKD_ANGLE_PARAM || kind == QKD_ANGLE_FEATURE ? index : 0;
  double mag = 0.25 + 1.75 * cg_unif(r);
  a.scale = kind == QKD_ANGLE_CONST ? 1.0 : (cg_unif(r) < 0.5 ? -mag : mag);
  a.offset = (2.0 * cg_unif(r) - 1.0) * CG_PI;
  if (kind == QKD_ANGLE_CONST) a.offset *= 2.0;
  return a;
}

qkd_ir_circuit *circgen_random(uint64_t seed, const circgen_opts *opts) {
  circgen_opts o = opts ? *opts : circgen_defaults();
  cg_rng r = {seed, 0};
  int n = cg_int(&r, o.min_qubits < 1 ? 1 : o.min_qubits,
                 o.max_qubits > QKD_MAX_QUBITS ? QKD_MAX_QUBITS : o.max_qubits);
  int n_ansatz = cg_int(&r, o.min_gates < 0 ? 0 : o.min_gates, o.max_gates);
  qkd_ir_circuit *c = cg_alloc(2 * n + n_ansatz);
  c->n_qubits = n;
  c->precision = o.precision;
  c->measure = cg_unif(&r) < o.p_probs ? QKD_MEASURE_PROBS : QKD_MEASURE_Z;
  c->shots = cg_unif(&r) < o.p_shots ? cg_int(&r, 1, o.max_shots > 0 ? o.max_shots : 1) : 0;

  int pool = 0; /* features the angles may read */
  int ng = 0, next_param = 0;
  if (cg_unif(&r) < o.p_amplitude) {
    c->encode = QKD_ENCODE_AMPLITUDE;
    c->n_features = cg_int(&r, 1, 1 << n);
    if (o.p_extra_features > 0 && cg_unif(&r) < o.p_extra_features) {
      c->n_amplitudes = c->n_features;
      c->n_features += cg_int(&r, 1, 3);
    }
    pool = o.amp_feature_angles ? c->n_features : 0;
  } else if (cg_unif(&r) < o.p_gate_encoding) {
    c->encode = QKD_ENCODE_NONE;
    pool = cg_int(&r, 1, n + 2);
    static const qkd_gate_kind enc_rot[3] = {QKD_GATE_RX, QKD_GATE_RY, QKD_GATE_RZ};
    for (int q = 0; q < n; q++) {
      if (cg_unif(&r) < 0.5) {
        qkd_ir_gate *g = &c->gates[ng++];
        g->kind = QKD_GATE_H;
        g->q[0] = q;
        g->q[1] = 0;
      }
      qkd_ir_gate *g = &c->gates[ng++];
      g->kind = enc_rot[cg_int(&r, 0, 2)];
      g->q[0] = q;
      g->q[1] = 0;
      g->angle[0] = cg_angle(&r, QKD_ANGLE_FEATURE, cg_int(&r, 0, pool - 1));
    }
    c->n_encoding_gates = ng;
  } else {
    c->encode = QKD_ENCODE_NONE;
    pool = cg_unif(&r) < 0.3 ? cg_int(&r, 1, 3) : 0;
  }

  for (int i = 0; i < n_ansatz; i++) {
    qkd_gate_kind kind;
    do kind = (qkd_gate_kind)cg_int(&r, 0, QKD_GATE_COUNT - 1);
    while (n == 1 && qkd_gate(kind)->qubits == 2);
    qkd_ir_gate *g = &c->gates[ng++];
    g->kind = kind;
    g->q[0] = cg_int(&r, 0, n - 1);
    g->q[1] = 0;
    if (qkd_gate(kind)->qubits == 2) {
      g->q[1] = cg_int(&r, 0, n - 2);
      if (g->q[1] >= g->q[0]) g->q[1]++;
    }
    for (int s = 0; s < qkd_gate(kind)->angles; s++) { /* each angle its own kind */
      double u = cg_unif(&r);
      if (u < o.p_param) g->angle[s] = cg_angle(&r, QKD_ANGLE_PARAM, next_param++);
      else if (u < o.p_param + o.p_feature && pool > 0)
        g->angle[s] = cg_angle(&r, QKD_ANGLE_FEATURE, cg_int(&r, 0, pool - 1));
      else g->angle[s] = cg_angle(&r, QKD_ANGLE_CONST, 0);
    }
  }
  c->n_gates = ng;
  c->n_params = next_param;
  if (c->encode != QKD_ENCODE_AMPLITUDE) {
    int top = -1;
    for (int i = 0; i < ng; i++)
      for (int s = 0; s < QKD_GATE_MAX_ANGLES; s++)
        if (c->gates[i].angle[s].kind == QKD_ANGLE_FEATURE && c->gates[i].angle[s].index > top)
          top = c->gates[i].angle[s].index;
    c->n_features = top + 1;
  }
  qkd_error err;
  if (qkd_ir_validate(c, &err) != 0) abort();
  return c;
}

qkd_ir_circuit *circgen_copy(const qkd_ir_circuit *c) {
  qkd_ir_circuit *d = cg_alloc(c->n_gates);
  qkd_ir_gate *gates = d->gates;
  *d = *c;
  d->gates = gates;
  if (c->n_gates) memcpy(gates, c->gates, (size_t)c->n_gates * sizeof(qkd_ir_gate));
  return d;
}

void circgen_free(qkd_ir_circuit *c) { free(c); }

qkd_ir_circuit *circgen_hea(int n, int L, qkd_measure_kind measure, qkd_precision precision) {
  int ng = L * 3 * n;
  qkd_ir_circuit *c = calloc(1, sizeof *c + (size_t)(ng + 1) * sizeof(qkd_ir_gate));
  if (!c) abort();
  c->gates = (qkd_ir_gate *)(void *)(c + 1);
  c->name = "hea";
  c->n_qubits = n;
  c->n_features = 1 << n;
  c->encode = QKD_ENCODE_AMPLITUDE;
  c->measure = measure;
  c->precision = precision;
  int k = 0, p = 0;
  for (int l = 0; l < L; l++) {
    for (int q = 0; q < n; q++)
      for (int r = 0; r < 2; r++) {
        qkd_ir_gate *g = &c->gates[k++];
        g->kind = r ? QKD_GATE_RZ : QKD_GATE_RY;
        g->q[0] = q;
        g->angle[0] = (qkd_angle){QKD_ANGLE_PARAM, p++, 1.0, 0.0};
      }
    for (int q = 0; q < n && n > 1; q++) {
      qkd_ir_gate *g = &c->gates[k++];
      g->kind = QKD_GATE_CNOT;
      g->q[0] = q;
      g->q[1] = (q + 1) % n;
    }
  }
  c->n_gates = k;
  c->n_params = p;
  return c;
}

void circgen_hea_data(const qkd_ir_circuit *c, int batch, double *features, double *params) {
  int dim = 1 << c->n_qubits;
  for (int b = 0; b < batch; b++) {
    double *x = features + (size_t)b * dim, ss = 0.0;
    for (int j = 0; j < dim; j++) {
      x[j] = qkd_rng_uniform(12345, QKD_STREAM_DATA, (uint64_t)b * dim + j);
      ss += x[j] * x[j];
    }
    for (int j = 0; j < dim; j++) x[j] /= sqrt(ss);
  }
  for (int i = 0; i < c->n_params; i++) params[i] = 6.283185307179586 * qkd_rng_uniform(12345, QKD_STREAM_INIT, (uint64_t)i);
}

void circgen_inputs(const qkd_ir_circuit *c, uint64_t seed, int batch, double *params,
                    double *features) {
  cg_rng r = {seed ^ 0x696e70757473ull, 0};
  if (params)
    for (int p = 0; p < c->n_params; p++) params[p] = (2.0 * cg_unif(&r) - 1.0) * CG_PI;
  if (features)
    for (size_t i = 0; i < (size_t)batch * (size_t)c->n_features; i++)
      features[i] = 2.0 * cg_unif(&r) - 1.0;
}

int circgen_has_feature_angles(const qkd_ir_circuit *c) {
  for (int i = 0; i < c->n_gates; i++)
    for (int s = 0; s < QKD_GATE_MAX_ANGLES; s++)
      if (c->gates[i].angle[s].kind == QKD_ANGLE_FEATURE) return 1;
  return 0;
}

void circgen_pshift_tolerances(const qkd_ir_circuit *c, const double *dout, int batch, double *tol_params,
                               double *tol_features) {
  int no = qkd_ir_outputs(c);
  double D = 0, S = c->shots > 0 ? c->shots : 1;
  for (int b = 0; b < batch; b++) {
    double d = 0;
    for (int o = 0; o < no; o++)
      d = c->measure == QKD_MEASURE_Z ? d + fabs(dout[(size_t)b * no + o]) : fmax(d, fabs(dout[(size_t)b * no + o]));
    D = fmax(D, d);
  }
  for (int j = 0; tol_features && j < c->n_features; j++) tol_features[j] = 0;
  for (int i = 0; i < c->n_gates; i++)
    for (int s = 0; s < QKD_GATE_MAX_ANGLES; s++) {
      const qkd_angle *a = &c->gates[i].angle[s];
      if (a->kind == QKD_ANGLE_PARAM) tol_params[a->index] = 6 * D * sqrt(0.5 * a->scale * a->scale * batch / S);
      if (a->kind == QKD_ANGLE_FEATURE && tol_features) tol_features[a->index] += 0.5 * a->scale * a->scale;
    }
  for (int j = 0; tol_features && j < c->n_features; j++) tol_features[j] = 6 * D * sqrt(tol_features[j] / S);
}
