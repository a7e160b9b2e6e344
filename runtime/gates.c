/* gates.c — the gate table and its evaluation, analysis and self-check (qkd_gates.h). */
#include "qkd_gates.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_rng.h"

const qkd_gate_info qkd_gate_table[QKD_GATE_COUNT] = {
#define QKD_GATE_ROW(e, ...) [QKD_GATE_##e] = {__VA_ARGS__},
    QKD_GATE_LIST(QKD_GATE_ROW)
#undef QKD_GATE_ROW
};

const qkd_gate_info *qkd_gate(int k) {
  if (k < 0 || k >= QKD_GATE_COUNT) {
    fprintf(stderr, "qkd: internal error: gate kind %d is not in the gate table\n", k);
    exit(2);
  }
  return &qkd_gate_table[k];
}

int qkd_gate_lookup(const char *name) {
  for (int g = 0; g < QKD_GATE_COUNT; g++)
    if (strcmp(qkd_gate_table[g].name, name) == 0) return g;
  return -1;
}

int qkd_gate_entry_zero(const qkd_gate_entry *e) { return e->re == 0.0 && e->im == 0.0; }

int qkd_gate_entry_same(const qkd_gate_entry *a, const qkd_gate_entry *b) {
  if (qkd_gate_entry_zero(a) || qkd_gate_entry_zero(b)) return qkd_gate_entry_zero(a) && qkd_gate_entry_zero(b);
  return a->re == b->re && a->im == b->im && a->trig == b->trig && memcmp(a->w, b->w, sizeof a->w) == 0;
}

static int is_one(const qkd_gate_entry *e) {
  static const qkd_gate_entry one = QG_1;
  return qkd_gate_entry_same(e, &one);
}

void qkd_gate_entry_eval(const qkd_gate_entry *e, const double *a, int d, double out[2]) {
  out[0] = out[1] = 0.0;
  if (qkd_gate_entry_zero(e)) return;
  double t = 1.0, dt = 0.0; /* T(a0) and dT/da0 */
  if (e->trig == QKD_TRIG_COS) { t = cos(0.5 * a[0]); dt = -0.5 * sin(0.5 * a[0]); }
  else if (e->trig == QKD_TRIG_SIN) { t = sin(0.5 * a[0]); dt = 0.5 * cos(0.5 * a[0]); }
  /* the phase exp(i Φ), Φ = ½ Σ w_k a_k; one half-angle weight ±1 reads cos/sin(a_k/2) directly */
  double pr = 1.0, pi = 0.0;
  int nw = 0, last = 0;
  for (int k = 0; k < QKD_GATE_MAX_ANGLES; k++)
    if (e->w[k]) nw++, last = k;
  if (nw == 1 && (e->w[last] == 1 || e->w[last] == -1)) {
    pr = cos(0.5 * a[last]);
    pi = e->w[last] * sin(0.5 * a[last]);
  } else if (nw) {
    double phi = 0.0;
    for (int k = 0; k < QKD_GATE_MAX_ANGLES; k++) phi += e->w[k] * a[k];
    pr = cos(0.5 * phi);
    pi = sin(0.5 * phi);
  }
  /* value = coef · s · e^{iΦ} with s = T (value) or dT/da_d + T · i w_d / 2 (derivative) */
  double sr = t, si = 0.0;
  if (d >= 0) {
    sr = d == 0 ? dt : 0.0;
    si = 0.5 * e->w[d] * t;
  }
  double cr = e->re * sr - e->im * si, ci = e->re * si + e->im * sr;
  out[0] = cr * pr - ci * pi;
  out[1] = cr * pi + ci * pr;
}

void qkd_gate_matrix(int k, const double *a, int d, double (*m)[2]) {
  const qkd_gate_info *g = qkd_gate(k);
  int D = 1 << g->qubits;
  for (int i = 0; i < D * D; i++) qkd_gate_entry_eval(&g->m[i], a, d, m[i]);
}

int qkd_gate_pairs(int k, int first[QKD_GATE_DIM], int second[QKD_GATE_DIM]) {
  const qkd_gate_info *g = qkd_gate(k);
  int D = 1 << g->qubits, n = 0, paired[QKD_GATE_DIM] = {0};
  if (D == 2) {
    first[0] = 0, second[0] = 1;
    return 1;
  }
  for (int i = 0; i < D; i++)
    for (int j = i + 1; j < D; j++) {
      if (qkd_gate_entry_zero(&g->m[i * D + j]) && qkd_gate_entry_zero(&g->m[j * D + i])) continue;
      if (paired[i] || paired[j]) return -1; /* a block larger than 2×2 */
      paired[i] = paired[j] = 1;
      first[n] = i, second[n++] = j;
    }
  for (int i = 0; i < D; i++) {
    if (paired[i] || is_one(&g->m[i * D + i])) continue;
    int j = !paired[i ^ 1] ? i ^ 1 : !paired[i ^ 2] ? i ^ 2 : -1;
    if (j < 0) return -1;
    paired[i] = paired[j] = 1;
    first[n] = i < j ? i : j, second[n++] = i < j ? j : i;
  }
  return n;
}

int qkd_gate_linear_perm(int k, int map[QKD_GATE_MAX_QUBITS]) {
  const qkd_gate_info *g = qkd_gate(k);
  if (g->structure != QKD_GS_PERMUTATION) return -1;
  int D = 1 << g->qubits, perm[QKD_GATE_DIM];
  for (int c = 0; c < D; c++) {
    perm[c] = -1;
    for (int r = 0; r < D; r++)
      if (!qkd_gate_entry_zero(&g->m[r * D + c])) perm[c] = r;
  }
  for (int i = 0; i < g->qubits; i++) map[i] = perm[1 << i];
  for (int c = 0; c < D; c++) {
    int lin = 0;
    for (int i = 0; i < g->qubits; i++)
      if (c >> i & 1) lin ^= map[i];
    if (perm[c] != lin) return -1;
  }
  return 0;
}

/* ---- self-check --------------------------------------------------------------------------- */

typedef struct { double re, im; } cnum;
static cnum cmul(cnum a, cnum b) { return (cnum){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re}; }

/* C = A B for D×D matrices */
static void matmul(int D, double (*A)[2], double (*B)[2], double (*C)[2]) {
  for (int r = 0; r < D; r++)
    for (int c = 0; c < D; c++) {
      cnum s = {0, 0};
      for (int j = 0; j < D; j++) {
        cnum p = cmul((cnum){A[r * D + j][0], A[r * D + j][1]}, (cnum){B[j * D + c][0], B[j * D + c][1]});
        s.re += p.re, s.im += p.im;
      }
      C[r * D + c][0] = s.re, C[r * D + c][1] = s.im;
    }
}

static double maxdiff(int n, double (*A)[2], double (*B)[2]) {
  double e = 0;
  for (int i = 0; i < n; i++) e = fmax(e, fmax(fabs(A[i][0] - B[i][0]), fabs(A[i][1] - B[i][1])));
  return e;
}

/* f(a) = <ψ|U† Dg U|ψ> and f'(a) wrt slot d, for a fixed random ψ and diagonal Dg */
static void fval(int k, const double *a, int d, const cnum *psi, const double *dg, double *f, double *df) {
  int D = 1 << qkd_gate(k)->qubits;
  double U[16][2], dU[16][2];
  qkd_gate_matrix(k, a, -1, U);
  qkd_gate_matrix(k, a, d, dU);
  double v = 0, dv = 0;
  for (int r = 0; r < D; r++) {
    cnum u = {0, 0}, du = {0, 0};
    for (int c = 0; c < D; c++) {
      cnum p = cmul((cnum){U[r * D + c][0], U[r * D + c][1]}, psi[c]);
      cnum q = cmul((cnum){dU[r * D + c][0], dU[r * D + c][1]}, psi[c]);
      u.re += p.re, u.im += p.im, du.re += q.re, du.im += q.im;
    }
    v += dg[r] * (u.re * u.re + u.im * u.im);
    dv += 2 * dg[r] * (u.re * du.re + u.im * du.im);
  }
  *f = v;
  *df = dv;
}

static double shift_rule(int k, qkd_shift_rule rule, const double *a0, int d, const cnum *psi, const double *dg) {
  const double pi = 3.14159265358979323846;
  const double c1 = (sqrt(2.0) + 1.0) / (4.0 * sqrt(2.0)), c2 = (sqrt(2.0) - 1.0) / (4.0 * sqrt(2.0));
  double sh[4] = {pi / 2, -pi / 2, 3 * pi / 2, -3 * pi / 2};
  double co[4] = {0.5, -0.5, 0, 0};
  if (rule == QKD_SHIFT_FOUR) co[0] = c1, co[1] = -c1, co[2] = -c2, co[3] = c2;
  double r = 0;
  for (int t = 0; t < 4; t++) {
    if (co[t] == 0) continue;
    double a[QKD_GATE_MAX_ANGLES], f, df;
    memcpy(a, a0, sizeof a);
    a[d] += sh[t];
    fval(k, a, d, psi, dg, &f, &df);
    r += co[t] * f;
  }
  return r;
}

/* "gate table row 'NAME': message" into err (an internal error); returns -1. */
static int check_fail(qkd_error *err, const char *name, const char *fmt, ...) {
  char what[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return qkd_fail(err, QKD_ERR_INTERNAL, NULL, "gate table row '%s': %s", name ? name : "?", what);
}

int qkd_gate_table_check(qkd_error *err) {
#define FAIL(...) return check_fail(err, g->name, __VA_ARGS__)
  for (int k = 0; k < QKD_GATE_COUNT; k++) {
    const qkd_gate_info *g = &qkd_gate_table[k];
    if (!g->name || qkd_gate_lookup(g->name) != k) FAIL("missing or repeated name");
    if (g->qubits < 1 || g->qubits > QKD_GATE_MAX_QUBITS) FAIL("qubit count %d", g->qubits);
    if (g->angles < 0 || g->angles > QKD_GATE_MAX_ANGLES) FAIL("angle count %d", g->angles);
    if (!g->qasm) FAIL("no OpenQASM name");
    const char *q2 = g->qasm2 ? g->qasm2 : g->qasm, *defs[2] = {g->qasm_def, g->qasm2_def}, *names[2] = {g->qasm, q2};
    for (int f = 0; f < 2; f++) { /* a definition defines the gate's own name */
      size_t len = strlen(names[f]);
      if (defs[f] && (strncmp(defs[f], "gate ", 5) || strncmp(defs[f] + 5, names[f], len) ||
                      (defs[f][5 + len] != ' ' && defs[f][5 + len] != '(')))
        FAIL("its OpenQASM %d definition does not define '%s'", 3 - f, names[f]);
    }
    int has_paren = 0;
    for (int q = 0; q < g->qubits; q++) {
      if (!g->draw[q] || !*g->draw[q]) FAIL("no drawing symbol for qubit %d", q);
      has_paren |= g->draw[q][strlen(g->draw[q]) - 1] == '(';
    }
    if (has_paren != (g->angles > 0)) FAIL("drawing symbols and angles disagree");
    int D = 1 << g->qubits, N = D * D;
    /* the matrix only reads angles the gate has, and trig only of slot 0 */
    for (int i = 0; i < N; i++) {
      const qkd_gate_entry *e = &g->m[i];
      if (qkd_gate_entry_zero(e)) continue;
      if (e->trig != QKD_TRIG_ONE && g->angles < 1) FAIL("entry %d reads an angle the gate lacks", i);
      for (int s = g->angles; s < QKD_GATE_MAX_ANGLES; s++)
        if (e->w[s]) FAIL("entry %d reads angle slot %d", i, s);
    }
    for (int i = N; i < QKD_GATE_DIM * QKD_GATE_DIM; i++)
      if (!qkd_gate_entry_zero(&g->m[i]) || !qkd_gate_entry_zero(&g->gen[i])) FAIL("entries past the matrix");
    /* structure and control claims */
    int diag = 1, perm = 1, ctl_shape = D == 4;
    for (int r = 0; r < D; r++)
      for (int c = 0; c < D; c++) {
        const qkd_gate_entry *e = &g->m[r * D + c];
        if (r != c && !qkd_gate_entry_zero(e)) diag = 0;
        if (!qkd_gate_entry_zero(e) && !is_one(e)) perm = 0;
        if (D == 4 && (r < 2 || c < 2) && (r == c ? !is_one(e) : !qkd_gate_entry_zero(e))) ctl_shape = 0;
      }
    qkd_gate_structure st = diag ? QKD_GS_DIAGONAL : perm ? QKD_GS_PERMUTATION : QKD_GS_GENERAL;
    if (st != g->structure) FAIL("structure class %d, but the matrix is of class %d", (int)g->structure, (int)st);
    if (ctl_shape != g->controlled) FAIL("controlled is %d, the matrix says %d", g->controlled, ctl_shape);
    int fs[QKD_GATE_DIM], ss[QKD_GATE_DIM], np = qkd_gate_pairs(k, fs, ss);
    if (np < 0) FAIL("the matrix is not a sum of 2×2 blocks and identities");
    int in_pair[QKD_GATE_DIM] = {0};
    for (int p = 0; p < np; p++) in_pair[fs[p]] = in_pair[ss[p]] = 1;
    for (int i = 0; i < D; i++)
      for (int j = 0; j < D && !in_pair[i]; j++)
        if (!qkd_gate_entry_zero(&g->gen[i * D + j]) || !qkd_gate_entry_zero(&g->gen[j * D + i]))
          FAIL("the generator acts on pattern %d outside the gate's pairs", i);
    /* the rules for each angle count */
    if (g->angles == 0 && (g->shift != QKD_SHIFT_NONE || g->n_steps)) FAIL("a shift rule or steps without angles");
    if (g->angles > 0 && g->shift == QKD_SHIFT_NONE) FAIL("no shift rule");
    if (g->angles != 1)
      for (int i = 0; i < N; i++)
        if (!qkd_gate_entry_zero(&g->gen[i])) FAIL("a generator for a gate of %d angles", g->angles);
    if (g->angles == 1 && g->n_steps) FAIL("steps for a one-angle gate");
    if (g->angles > 1) {
      int used[QKD_GATE_MAX_ANGLES] = {0};
      if (g->n_steps != g->angles) FAIL("%d steps for %d angles", g->n_steps, g->angles);
      for (int s = 0; s < g->n_steps; s++) {
        const qkd_gate_step *t = &g->steps[s];
        if ((int)t->kind < 0 || t->kind >= QKD_GATE_COUNT || qkd_gate_table[t->kind].angles != 1 ||
            qkd_gate_table[t->kind].qubits != g->qubits || t->slot < 0 || t->slot >= g->angles || used[t->slot]++)
          FAIL("step %d is not a one-angle gate on the same qubits reading a fresh slot", s);
      }
    }
    for (int r = 0; r < D; r++) /* the generator: constant and Hermitian */
      for (int c = 0; c < D; c++) {
        const qkd_gate_entry *e = &g->gen[r * D + c], *t = &g->gen[c * D + r];
        if (!qkd_gate_entry_zero(e) && (e->trig != QKD_TRIG_ONE || e->w[0] || e->w[1] || e->w[2]))
          FAIL("the generator is not constant");
        if (e->re != t->re || e->im != -t->im) FAIL("the generator is not Hermitian");
      }
    /* numerics at random angles */
    for (int trial = 0; trial < 8; trial++) {
      double a[QKD_GATE_MAX_ANGLES] = {0, 0, 0};
      for (int s = 0; s < g->angles; s++)
        a[s] = trial == 0 ? 0.0 : 12.0 * (qkd_rng_uniform(0x6761746573ull, (uint64_t)k, (uint64_t)(3 * trial + s)) - 0.5);
      double U[16][2], Ud[16][2], P[16][2];
      qkd_gate_matrix(k, a, -1, U);
      for (int r = 0; r < D; r++) /* Ud = U† */
        for (int c = 0; c < D; c++) Ud[r * D + c][0] = U[c * D + r][0], Ud[r * D + c][1] = -U[c * D + r][1];
      matmul(D, U, Ud, P);
      double I[16][2] = {{0}};
      for (int i = 0; i < D; i++) I[i * D + i][0] = 1;
      if (maxdiff(N, P, I) > 1e-12) FAIL("not unitary at trial %d", trial);
      if (g->angles == 1) {
        if (trial == 0 && maxdiff(N, U, I) > 1e-15) FAIL("U(0) is not the identity");
        double dU[16][2], G[16][2], GU[16][2];
        qkd_gate_matrix(k, a, 0, dU);
        for (int i = 0; i < N; i++) { /* −i/2 G */
          G[i][0] = 0.5 * g->gen[i].im, G[i][1] = -0.5 * g->gen[i].re;
        }
        matmul(D, G, U, GU);
        if (maxdiff(N, dU, GU) > 1e-12) FAIL("dU/da is not -i/2 G U at trial %d", trial);
      }
      if (g->angles > 1) { /* e^{iΦ} · step_n ⋯ step_1 = U */
        double A[16][2] = {{0}}, S[16][2], T[16][2];
        for (int i = 0; i < D; i++) A[i * D + i][0] = 1;
        for (int s = 0; s < g->n_steps; s++) {
          qkd_gate_matrix(g->steps[s].kind, &a[g->steps[s].slot], -1, S);
          matmul(D, S, A, T);
          memcpy(A, T, sizeof T);
        }
        double phi = 0;
        for (int s = 0; s < g->angles; s++) phi += 0.5 * g->phase[s] * a[s];
        for (int i = 0; i < N; i++) {
          cnum v = cmul((cnum){A[i][0], A[i][1]}, (cnum){cos(phi), sin(phi)});
          A[i][0] = v.re, A[i][1] = v.im;
        }
        if (maxdiff(N, A, U) > 1e-12) FAIL("the steps do not multiply to the matrix at trial %d", trial);
      }
      /* the shift rule reproduces the derivative of an expectation, for every angle */
      for (int d = 0; d < g->angles; d++) {
        cnum psi[QKD_GATE_DIM];
        double dg[QKD_GATE_DIM], nrm = 0, f, df;
        for (int i = 0; i < D; i++) {
          psi[i].re = qkd_rng_normal(0x7073ull, (uint64_t)k, (uint64_t)(64 * trial + 4 * i));
          psi[i].im = qkd_rng_normal(0x7073ull, (uint64_t)k, (uint64_t)(64 * trial + 4 * i + 1));
          dg[i] = qkd_rng_normal(0x7073ull, (uint64_t)k, (uint64_t)(64 * trial + 4 * i + 2));
          nrm += psi[i].re * psi[i].re + psi[i].im * psi[i].im;
        }
        for (int i = 0; i < D; i++) psi[i].re /= sqrt(nrm), psi[i].im /= sqrt(nrm);
        fval(k, a, d, psi, dg, &f, &df);
        double r = shift_rule(k, g->shift, a, d, psi, dg);
        if (fabs(r - df) > 1e-10 * (1 + fabs(df))) FAIL("the shift rule misses the derivative of angle %d (%.3g vs %.3g)", d, r, df);
      }
    }
  }
  return 0;
#undef FAIL
}
