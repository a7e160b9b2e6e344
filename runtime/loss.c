/* loss.c — see qkd_loss.h. */
#include "qkd_loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* log softmax of z/T into out[C]. */
static void log_softmax(const double *z, int C, double T, double *out) {
  double m = -INFINITY;
  for (int c = 0; c < C; c++) m = fmax(m, z[c] / T);
  double s = 0;
  for (int c = 0; c < C; c++) s += exp(z[c] / T - m);
  double lse = m + log(s);
  for (int c = 0; c < C; c++) out[c] = z[c] / T - lse;
}

/* Value of one term; adds scale * dterm/dstudent into d (when d != NULL). */
static double term(const qkd_loss *l, const double *s, const double *t, const int *y, int B, int C, double scale,
                   double *d, double *ls, double *lt) {
  double v = 0;
  for (int b = 0; b < B; b++) {
    const double *sb = s + (size_t)b * C, *tb = t ? t + (size_t)b * C : NULL;
    double *db = d ? d + (size_t)b * C : NULL;
    switch (l->kind) {
    case QKD_LOSS_CE:
      log_softmax(sb, C, 1.0, ls);
      v -= ls[y[b]];
      if (db)
        for (int c = 0; c < C; c++) db[c] += scale * (exp(ls[c]) - (c == y[b])) / B;
      break;
    case QKD_LOSS_KL: {
      double T = l->value;
      log_softmax(sb, C, T, ls);
      log_softmax(tb, C, T, lt);
      for (int c = 0; c < C; c++) {
        double pt = exp(lt[c]);
        if (pt > 0) v += pt * (lt[c] - ls[c]);
        if (db) db[c] += scale * (exp(ls[c]) - pt) / (T * B);
      }
      break;
    }
    default: /* MSE */
      for (int c = 0; c < C; c++) {
        double e = sb[c] - tb[c];
        v += e * e / C;
        if (db) db[c] += scale * 2 * e / ((double)B * C);
      }
      break;
    }
  }
  return v / B;
}

typedef struct {
  const double *s, *t;
  const int *y;
  int B, C;
  double *d, *ls, *lt;
} ctx;

static double value(const qkd_loss *l, const ctx *x) {
  switch (l->kind) {
  case QKD_LOSS_NUM: return l->value;
  case QKD_LOSS_CE: case QKD_LOSS_KL: case QKD_LOSS_MSE: return term(l, x->s, x->t, x->y, x->B, x->C, 0, NULL, x->ls, x->lt);
  case QKD_LOSS_NEG: return -value(l->a, x);
  default: break;
  }
  double a = value(l->a, x), b = value(l->b, x);
  switch (l->kind) {
  case QKD_LOSS_ADD: return a + b;
  case QKD_LOSS_SUB: return a - b;
  case QKD_LOSS_MUL: return a * b;
  case QKD_LOSS_DIV: return a / b;
  default: return pow(a, b);
  }
}

/* Reverse mode: g = dLoss/d(value of l). */
static void grad(const qkd_loss *l, const ctx *x, double g) {
  switch (l->kind) {
  case QKD_LOSS_NUM: return;
  case QKD_LOSS_CE: case QKD_LOSS_KL: case QKD_LOSS_MSE:
    term(l, x->s, x->t, x->y, x->B, x->C, g, x->d, x->ls, x->lt);
    return;
  case QKD_LOSS_NEG: grad(l->a, x, -g); return;
  default: break;
  }
  double a = value(l->a, x), b = value(l->b, x);
  switch (l->kind) {
  case QKD_LOSS_ADD: grad(l->a, x, g); grad(l->b, x, g); break;
  case QKD_LOSS_SUB: grad(l->a, x, g); grad(l->b, x, -g); break;
  case QKD_LOSS_MUL: grad(l->a, x, g * b); grad(l->b, x, g * a); break;
  case QKD_LOSS_DIV: grad(l->a, x, g / b); grad(l->b, x, -g * a / (b * b)); break;
  default:
    grad(l->a, x, a == 0 && b < 1 ? 0 : g * b * pow(a, b - 1));
    if (a > 0) grad(l->b, x, g * pow(a, b) * log(a));
    break;
  }
}

double qkd_loss_eval(const qkd_loss *loss, const double *student, const double *teacher, const int *labels, int B,
                     int C, double *d_student) {
  double *buf = malloc(sizeof(double) * 2 * (size_t)C);
  ctx x = {student, teacher, labels, B, C, d_student, buf, buf + C};
  if (d_student) memset(d_student, 0, sizeof(double) * (size_t)B * C);
  double v = value(loss, &x);
  if (d_student) grad(loss, &x, 1.0);
  free(buf);
  return v;
}

int qkd_loss_uses_teacher(const qkd_loss *l) {
  if (!l) return 0;
  if (l->kind == QKD_LOSS_KL || l->kind == QKD_LOSS_MSE) return 1;
  return qkd_loss_uses_teacher(l->a) || qkd_loss_uses_teacher(l->b);
}

static size_t fmt(const qkd_loss *l, char *buf, size_t n, size_t at) {
#define P(...) (at += (size_t)snprintf(buf + (at < n ? at : n), at < n ? n - at : 0, __VA_ARGS__))
  static const char ops[] = {[QKD_LOSS_ADD] = '+', [QKD_LOSS_SUB] = '-', [QKD_LOSS_MUL] = '*', [QKD_LOSS_DIV] = '/', [QKD_LOSS_POW] = '^'};
  switch (l->kind) {
  case QKD_LOSS_NUM: P("%g", l->value); break;
  case QKD_LOSS_CE: P("ce"); break;
  case QKD_LOSS_MSE: P("mse"); break;
  case QKD_LOSS_KL: P("kl(T: %g)", l->value); break;
  case QKD_LOSS_NEG: P("-("); at = fmt(l->a, buf, n, at); P(")"); break;
  default:
    P("(");
    at = fmt(l->a, buf, n, at);
    P(" %c ", ops[l->kind]);
    at = fmt(l->b, buf, n, at);
    P(")");
  }
  return at;
#undef P
}

void qkd_loss_format(const qkd_loss *loss, char *buf, size_t n) {
  if (n) buf[0] = 0;
  fmt(loss, buf, n, 0);
}
