/* dense_ref.c — full-matrix reference simulator (see dense_ref.h). Complex numbers are stored as
 * interleaved (re, im) doubles; no code is shared with runtime/qsim.c, and no gate fact is read
 * from the runtime's gate table (qkd_gates.h): only its enum names the gates. */
#include "dense_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

typedef struct { double re, im; } cx;

static cx cx_make(double re, double im) { cx z = {re, im}; return z; }
static cx cx_mul(cx a, cx b) { return cx_make(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re); }
static cx cx_add(cx a, cx b) { return cx_make(a.re + b.re, a.im + b.im); }
static cx cx_scale(cx a, double s) { return cx_make(a.re * s, a.im * s); }

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

/* 2×2 matrices, row-major: m[2*r + c]. */
static void pauli(char which, cx m[4]) {
  switch (which) {
  case 'I': m[0] = cx_make(1, 0); m[1] = cx_make(0, 0); m[2] = cx_make(0, 0); m[3] = cx_make(1, 0); break;
  case 'X': m[0] = cx_make(0, 0); m[1] = cx_make(1, 0); m[2] = cx_make(1, 0); m[3] = cx_make(0, 0); break;
  case 'Y': m[0] = cx_make(0, 0); m[1] = cx_make(0, -1); m[2] = cx_make(0, 1); m[3] = cx_make(0, 0); break;
  default:  m[0] = cx_make(1, 0); m[1] = cx_make(0, 0); m[2] = cx_make(0, 0); m[3] = cx_make(-1, 0); break;
  }
}

/* R_P(θ) = exp(−iθP/2) = cos(θ/2) I − i sin(θ/2) P */
static void rotation(char p, double theta, cx m[4]) {
  cx id[4], pm[4];
  pauli('I', id);
  pauli(p, pm);
  double c = cos(theta / 2), s = sin(theta / 2);
  for (int k = 0; k < 4; k++)
    m[k] = cx_add(cx_scale(id[k], c), cx_mul(cx_make(0, -s), pm[k]));
}

/* Kronecker product: out (ra*rb × ca*cb) = a (ra×ca) ⊗ b (rb×cb). */
static void kron(const cx *a, int ra, int ca, const cx *b, int rb, int cb, cx *out) {
  int cols = ca * cb;
  for (int i = 0; i < ra; i++)
    for (int j = 0; j < ca; j++)
      for (int k = 0; k < rb; k++)
        for (int l = 0; l < cb; l++)
          out[(size_t)(i * rb + k) * cols + (j * cb + l)] = cx_mul(a[i * ca + j], b[k * cb + l]);
}

/* The gates as this file defines them, from the PennyLane/Qiskit definitions (never from the
 * runtime's gate table): qubit count, angle count, and for one-qubit gates / controlled gates
 * the (target) 2×2 matrix, for the others an explicit 4×4. */
typedef enum { R_ONE, R_CONTROLLED, R_FOUR } ref_shape;

static ref_shape shape_of(qkd_gate_kind kind, int *qubits, int *angles) {
  *angles = 0;
  switch (kind) {
  case QKD_GATE_H: case QKD_GATE_X: case QKD_GATE_Y: case QKD_GATE_Z: case QKD_GATE_S: case QKD_GATE_T:
  case QKD_GATE_SX: *qubits = 1; return R_ONE;
  case QKD_GATE_RX: case QKD_GATE_RY: case QKD_GATE_RZ: *qubits = 1; *angles = 1; return R_ONE;
  case QKD_GATE_U3: *qubits = 1; *angles = 3; return R_ONE;
  case QKD_GATE_CNOT: case QKD_GATE_CZ: case QKD_GATE_CY: case QKD_GATE_CH: *qubits = 2; return R_CONTROLLED;
  case QKD_GATE_CRX: case QKD_GATE_CRY: case QKD_GATE_CRZ: case QKD_GATE_CPHASE:
    *qubits = 2; *angles = 1; return R_CONTROLLED;
  case QKD_GATE_SWAP: *qubits = 2; return R_FOUR;
  case QKD_GATE_RXX: case QKD_GATE_RYY: case QKD_GATE_RZZ: *qubits = 2; *angles = 1; return R_FOUR;
  default: break;
  }
  fprintf(stderr, "dense_ref: gate kind %d unknown to the reference\n", (int)kind);
  abort();
}

int dense_ref_gate_qubits(qkd_gate_kind kind) {
  int q, a;
  shape_of(kind, &q, &a);
  return q;
}

int dense_ref_gate_angles(qkd_gate_kind kind) {
  int q, a;
  shape_of(kind, &q, &a);
  return a;
}

/* The one-qubit matrix of a one-qubit gate, or the target matrix of a controlled gate. */
static void one_qubit(qkd_gate_kind kind, const double *th, cx m[4]) {
  const double r = 1.0 / sqrt(2.0);
  switch (kind) {
  case QKD_GATE_H: case QKD_GATE_CH:
    m[0] = cx_make(r, 0); m[1] = cx_make(r, 0); m[2] = cx_make(r, 0); m[3] = cx_make(-r, 0);
    break;
  case QKD_GATE_X: case QKD_GATE_CNOT: pauli('X', m); break;
  case QKD_GATE_Y: case QKD_GATE_CY: pauli('Y', m); break;
  case QKD_GATE_Z: case QKD_GATE_CZ: pauli('Z', m); break;
  case QKD_GATE_S: pauli('I', m); m[3] = cx_make(cos(M_PI / 2), sin(M_PI / 2)); break;
  case QKD_GATE_T: pauli('I', m); m[3] = cx_make(cos(M_PI / 4), sin(M_PI / 4)); break;
  case QKD_GATE_SX:
    m[0] = cx_make(0.5, 0.5); m[1] = cx_make(0.5, -0.5); m[2] = cx_make(0.5, -0.5); m[3] = cx_make(0.5, 0.5);
    break;
  case QKD_GATE_RX: case QKD_GATE_CRX: rotation('X', th[0], m); break;
  case QKD_GATE_RY: case QKD_GATE_CRY: rotation('Y', th[0], m); break;
  case QKD_GATE_RZ: case QKD_GATE_CRZ: rotation('Z', th[0], m); break;
  case QKD_GATE_CPHASE: pauli('I', m); m[3] = cx_make(cos(th[0]), sin(th[0])); break; /* diag(1, e^{iθ}) */
  case QKD_GATE_U3: { /* [[cos θ/2, −e^{iλ} sin θ/2], [e^{iφ} sin θ/2, e^{i(φ+λ)} cos θ/2]] */
    double c = cos(th[0] / 2), s = sin(th[0] / 2), ph = th[1], la = th[2];
    m[0] = cx_make(c, 0);
    m[1] = cx_make(-cos(la) * s, -sin(la) * s);
    m[2] = cx_make(cos(ph) * s, sin(ph) * s);
    m[3] = cx_make(cos(ph + la) * c, sin(ph + la) * c);
    break;
  }
  default: pauli('I', m); break;
  }
}

/* exp(−iθ P⊗P/2) = cos(θ/2) I − i sin(θ/2) P⊗P, index 2·bit_a + bit_b */
static void ising(char p, double th, cx u4[16]) {
  cx pm[4], pp[16];
  pauli(p, pm);
  kron(pm, 2, 2, pm, 2, 2, pp);
  double c = cos(th / 2), s = sin(th / 2);
  for (int k = 0; k < 16; k++) u4[k] = cx_mul(cx_make(0, -s), pp[k]);
  for (int k = 0; k < 4; k++) u4[5 * k] = cx_add(u4[5 * k], cx_make(c, 0));
}

static int bit(size_t idx, int n, int q) { return (int)((idx >> (n - 1 - q)) & 1); }

/* The full matrix of gate g into out[dim*dim]; tmp is scratch of the same size. */
static void gate_full(int n, const qkd_ir_gate *g, const double *theta, cx *out, cx *tmp) {
  size_t dim = (size_t)1 << n;
  int qubits, angles;
  ref_shape shape = shape_of(g->kind, &qubits, &angles);
  if (qubits == 1) {
    /* I ⊗ … ⊗ U (at position q, qubit 0 leftmost) ⊗ … ⊗ I, ping-ponging between out and tmp so
     * that the last product lands in out */
    cx u[4], id[4];
    one_qubit(g->kind, theta, u);
    pauli('I', id);
    cx *src = (n % 2) ? tmp : out, *dst = (n % 2) ? out : tmp;
    src[0] = cx_make(1, 0);
    size_t d = 1;
    for (int q = 0; q < n; q++) {
      kron(src, (int)d, (int)d, q == g->q[0] ? u : id, 2, 2, dst);
      d *= 2;
      cx *t = src; src = dst; dst = t;
    }
    return;
  }
  /* explicit 4×4 on (a, b) with index 2*bit_a + bit_b */
  cx u4[16];
  for (int k = 0; k < 16; k++) u4[k] = cx_make(0, 0);
  if (g->kind == QKD_GATE_SWAP) {
    u4[0 * 4 + 0] = cx_make(1, 0);
    u4[1 * 4 + 2] = cx_make(1, 0);
    u4[2 * 4 + 1] = cx_make(1, 0);
    u4[3 * 4 + 3] = cx_make(1, 0);
  } else if (shape == R_FOUR) {
    ising(g->kind == QKD_GATE_RXX ? 'X' : g->kind == QKD_GATE_RYY ? 'Y' : 'Z', theta[0], u4);
  } else { /* controlled: [[I, 0], [0, U]] with a = control */
    cx u[4];
    one_qubit(g->kind, theta, u);
    u4[0 * 4 + 0] = cx_make(1, 0);
    u4[1 * 4 + 1] = cx_make(1, 0);
    u4[2 * 4 + 2] = u[0];
    u4[2 * 4 + 3] = u[1];
    u4[3 * 4 + 2] = u[2];
    u4[3 * 4 + 3] = u[3];
  }
  int a = g->q[0], b = g->q[1];
  size_t mask = ((size_t)1 << (n - 1 - a)) | ((size_t)1 << (n - 1 - b));
  for (size_t i = 0; i < dim; i++)
    for (size_t j = 0; j < dim; j++) {
      if ((i & ~mask) != (j & ~mask)) { out[i * dim + j] = cx_make(0, 0); continue; }
      int ri = 2 * bit(i, n, a) + bit(i, n, b), cj = 2 * bit(j, n, a) + bit(j, n, b);
      out[i * dim + j] = u4[ri * 4 + cj];
    }
}

void dense_ref_gate_matrix(int n, const qkd_ir_gate *g, const double *theta, double *mat) {
  size_t dim = (size_t)1 << n;
  cx *full = (cx *)xmalloc(dim * dim * sizeof(cx)), *tmp = (cx *)xmalloc(dim * dim * sizeof(cx));
  gate_full(n, g, theta, full, tmp);
  for (size_t k = 0; k < dim * dim; k++) { mat[2 * k] = full[k].re; mat[2 * k + 1] = full[k].im; }
  free(full);
  free(tmp);
}

static double angle_of(const qkd_angle *a, const double *params, const double *features) {
  switch (a->kind) {
  case QKD_ANGLE_CONST: return a->offset;
  case QKD_ANGLE_PARAM: return a->scale * params[a->index] + a->offset;
  case QKD_ANGLE_FEATURE: return a->scale * features[a->index] + a->offset;
  case QKD_ANGLE_BIT: return (features[a->index] != 0.0 ? a->scale : 0.0) + a->offset;
  default: return 0.0;
  }
}

void dense_ref_state(const qkd_ir_circuit *c, const double *params, const double *features,
                     double *state) {
  int n = c->n_qubits;
  size_t dim = (size_t)1 << n;
  cx *psi = (cx *)xmalloc(dim * sizeof(cx)), *nxt = (cx *)xmalloc(dim * sizeof(cx));
  cx *mat = (cx *)xmalloc(dim * dim * sizeof(cx)), *tmp = (cx *)xmalloc(dim * dim * sizeof(cx));
  for (size_t i = 0; i < dim; i++) psi[i] = cx_make(0, 0);
  psi[0] = cx_make(1, 0);
  if (c->encode == QKD_ENCODE_AMPLITUDE) {
    double norm2 = 0;
    for (int i = 0; i < qkd_ir_amplitudes(c); i++) norm2 += features[i] * features[i];
    if (norm2 != 0) {
      double nrm = sqrt(norm2);
      for (int i = 0; i < qkd_ir_amplitudes(c); i++) psi[i] = cx_make(features[i] / nrm, 0);
    }
  }
  for (int k = 0; k < c->n_gates; k++) {
    const qkd_ir_gate *g = &c->gates[k];
    double th[3] = {0, 0, 0};
    for (int a = 0; a < dense_ref_gate_angles(g->kind); a++) th[a] = angle_of(&g->angle[a], params, features);
    gate_full(n, g, th, mat, tmp);
    for (size_t r = 0; r < dim; r++) { /* nxt = mat · psi, every entry of mat */
      cx acc = cx_make(0, 0);
      for (size_t col = 0; col < dim; col++) acc = cx_add(acc, cx_mul(mat[r * dim + col], psi[col]));
      nxt[r] = acc;
    }
    cx *t = psi; psi = nxt; nxt = t;
  }
  for (size_t i = 0; i < dim; i++) { state[2 * i] = psi[i].re; state[2 * i + 1] = psi[i].im; }
  free(psi); free(nxt); free(mat); free(tmp);
}

void dense_ref_measure(const qkd_ir_circuit *c, const double *state, double *z, double *probs) {
  int n = c->n_qubits;
  size_t dim = (size_t)1 << n;
  for (int q = 0; z && q < n; q++) z[q] = 0;
  for (size_t i = 0; i < dim; i++) {
    double p = state[2 * i] * state[2 * i] + state[2 * i + 1] * state[2 * i + 1];
    if (probs) probs[i] = p;
    for (int q = 0; z && q < n; q++) z[q] += bit(i, n, q) ? -p : p;
  }
}

void dense_ref_z_probs(const qkd_ir_circuit *c, const double *params, const double *features,
                       double *z, double *probs) {
  double *st = (double *)xmalloc(((size_t)2 << c->n_qubits) * sizeof(double));
  dense_ref_state(c, params, features, st);
  dense_ref_measure(c, st, z, probs);
  free(st);
}

void dense_ref_outputs(const qkd_ir_circuit *c, const double *params, const double *features,
                       double *out) {
  if (c->measure == QKD_MEASURE_Z) dense_ref_z_probs(c, params, features, out, NULL);
  else dense_ref_z_probs(c, params, features, NULL, out);
}

void dense_ref_fd(const qkd_ir_circuit *c, const double *params, const double *features,
                  dense_wrt wrt, int index, double h, double *d_out) {
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  double *p = (double *)xmalloc((size_t)(np + 1) * sizeof(double));
  double *f = (double *)xmalloc((size_t)(nf + 1) * sizeof(double));
  double *plus = (double *)xmalloc((size_t)no * sizeof(double));
  double *minus = (double *)xmalloc((size_t)no * sizeof(double));
  if (np) memcpy(p, params, (size_t)np * sizeof(double));
  if (nf) memcpy(f, features, (size_t)nf * sizeof(double));
  double *v = wrt == DENSE_WRT_PARAM ? &p[index] : &f[index];
  double x0 = *v;
  *v = x0 + h;
  dense_ref_outputs(c, p, f, plus);
  *v = x0 - h;
  dense_ref_outputs(c, p, f, minus);
  for (int o = 0; o < no; o++) d_out[o] = (plus[o] - minus[o]) / (2 * h);
  free(p); free(f); free(plus); free(minus);
}
