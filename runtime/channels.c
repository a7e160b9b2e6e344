/* channels.c — the channel table, its evaluation and self-check (qkd_channels.h). */
#include "qkd_channels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const qkd_chan_info qkd_chan_table[QKD_CHAN_COUNT] = {
#define QKD_CHAN_ROW(e, ...) [QKD_CHAN_##e] = {__VA_ARGS__},
    QKD_CHAN_LIST(QKD_CHAN_ROW)
#undef QKD_CHAN_ROW
};

static void internal(const char *what, int k) {
  fprintf(stderr, "qkd: internal error: %s (channel kind %d)\n", what, k);
  exit(2);
}

const qkd_chan_info *qkd_chan(int k) {
  if (k < 0 || k >= QKD_CHAN_COUNT) internal("not in the channel table", k);
  return &qkd_chan_table[k];
}

int qkd_chan_lookup(const char *name) {
  for (int k = 0; k < QKD_CHAN_COUNT; k++)
    if (strcmp(qkd_chan_table[k].name, name) == 0) return k;
  return -1;
}

int qkd_chan_is_quantum(int k) { return k >= 0 && k < QKD_CHAN_COUNT && qkd_chan_table[k].n_kraus > 0; }

int qkd_chan_param_ok(int k, double p) {
  const qkd_chan_info *c = qkd_chan(k);
  return p >= c->lo && p <= c->hi; /* false for NaN */
}

static int entry_zero(const qkd_chan_entry *e) { return e->re == 0.0 && e->im == 0.0; }

static void entry_eval(const qkd_chan_entry *e, double p, double out[2]) {
  double s = entry_zero(e) ? 0.0 : sqrt(e->a + e->b * p);
  out[0] = e->re * s;
  out[1] = e->im * s;
}

void qkd_chan_kraus(int k, double p, double (*kraus)[4][2]) {
  const qkd_chan_info *c = qkd_chan(k);
  if (c->n_kraus < 1) internal("read-out has no Kraus operators", k);
  if (!qkd_chan_param_ok(k, p)) internal("parameter outside its range", k);
  for (int i = 0; i < c->n_kraus; i++)
    for (int e = 0; e < 4; e++) entry_eval(&c->k[i][e], p, kraus[i][e]);
}

void qkd_chan_readout_matrix(double p01, double p10, double m[2][2]) {
  m[0][0] = 1.0 - p01; /* read 0 | true 0 */
  m[1][0] = p01;       /* read 1 | true 0 */
  m[0][1] = p10;       /* read 0 | true 1 */
  m[1][1] = 1.0 - p10; /* read 1 | true 1 */
}

/* ---- self-check --------------------------------------------------------------------------- */

/* max |Σ_i K_i† K_i − I| and max |K_0 − I| + Σ_{i>0} max |K_i| (the distance from the identity
 * channel, in Kraus form) of row k at p. */
static void completeness(int k, double p, double *unit_err, double *ident_err) {
  const qkd_chan_info *c = &qkd_chan_table[k];
  double K[QKD_CHAN_MAX_KRAUS][4][2];
  qkd_chan_kraus(k, p, K);
  *unit_err = *ident_err = 0.0;
  for (int r = 0; r < 2; r++)
    for (int col = 0; col < 2; col++) {
      double sr = 0.0, si = 0.0; /* (Σ K† K)[r][col] = Σ_i Σ_j conj(K[j][r]) K[j][col] */
      for (int i = 0; i < c->n_kraus; i++)
        for (int j = 0; j < 2; j++) {
          const double *a = K[i][j * 2 + r], *b = K[i][j * 2 + col];
          sr += a[0] * b[0] + a[1] * b[1];
          si += a[0] * b[1] - a[1] * b[0];
        }
      double d = fabs(sr - (r == col)) + fabs(si);
      if (d > *unit_err) *unit_err = d;
    }
  for (int i = 0; i < c->n_kraus; i++)
    for (int e = 0; e < 4; e++) {
      double want = i == 0 && (e == 0 || e == 3) ? 1.0 : 0.0;
      *ident_err += fabs(K[i][e][0] - want) + fabs(K[i][e][1]);
    }
}

int qkd_chan_table_check(qkd_error *err) {
#define FAIL(...)                                                                                \
  do {                                                                                             \
    char what_[256];                                                                               \
    snprintf(what_, sizeof what_, __VA_ARGS__);                                                    \
    return qkd_fail(err, QKD_ERR_INTERNAL, NULL, "channel table row '%s': %s", c->name ? c->name : "?", what_); \
  } while (0)
  for (int k = 0; k < QKD_CHAN_COUNT; k++) {
    const qkd_chan_info *c = &qkd_chan_table[k];
    if (!c->name || qkd_chan_lookup(c->name) != k) FAIL("missing or repeated name");
    if (c->n_params < 1 || c->n_params > QKD_CHAN_MAX_PARAMS) FAIL("parameter count %d", c->n_params);
    for (int i = 0; i < c->n_params; i++)
      if (!c->param[i] || !*c->param[i]) FAIL("parameter %d has no name", i);
    if (!(c->lo >= 0.0 && c->lo < c->hi && c->hi <= 1.0)) FAIL("range [%g, %g] is not within [0, 1]", c->lo, c->hi);
    if (c->n_kraus < 0 || c->n_kraus > QKD_CHAN_MAX_KRAUS) FAIL("Kraus count %d", c->n_kraus);
    if (c->n_kraus == 0) { /* read-out: classical, two parameters */
      if (c->n_params != 2) FAIL("a classical row takes two parameters, not %d", c->n_params);
      continue;
    }
    if (c->n_params != 1) FAIL("a quantum channel takes one parameter, not %d", c->n_params);
    if (!c->pennylane) FAIL("no PennyLane name");
    for (int i = 0; i < QKD_CHAN_MAX_KRAUS; i++)
      for (int e = 0; e < 4; e++) {
        const qkd_chan_entry *x = &c->k[i][e];
        if (entry_zero(x)) continue;
        if (i >= c->n_kraus) FAIL("Kraus operator %d beyond the count", i);
        if (x->a + x->b * c->lo < 0.0 || x->a + x->b * c->hi < 0.0)
          FAIL("an entry of K%d is the square root of a negative number", i);
      }
    for (int t = 0; t <= 8; t++) {
      double p = c->lo + (c->hi - c->lo) * t / 8.0, ue, ie;
      completeness(k, p, &ue, &ie);
      if (ue > 1e-14) FAIL("Σ K†K differs from I by %g", ue);
      if (t == 0 && c->lo == 0.0 && ie > 0.0) FAIL("not the identity at p = 0 (off by %g)", ie);
      if (t > 0 && ie == 0.0) FAIL("the identity at p = %g", p);
    }
  }
  return 0;
#undef FAIL
}
