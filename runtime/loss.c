/* loss.c — see qkd_loss.h.
 * Three phases per batch: (1) every ce / kl term's log-softmaxes and softmaxes, row by row (on
 * the pool's threads when there is one); (2) the terms' values, summed serially in row order, and
 * the expression's value and reverse sweep over the tiny tree, which only records each term's
 * scale; (3) the gradient rows, every term's contribution to d[b][c] added in the sweep's order.
 * Every number is the same expression in the same order whatever the pool, so the results are
 * the same bits for every thread count (and as when each term was recomputed per use). */
#include "qkd_loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOSS_MAX_TERMS 256 /* leaves (ce, kl, mse) an expression may have: NaN past that */
#define LOSS_ROWS 64      /* rows per parallel chunk */

/* log softmax of z/T into out[C]. */
static void log_softmax(const double *z, int C, double T, double *out) {
  double m = -INFINITY;
  for (int c = 0; c < C; c++) m = fmax(m, z[c] / T);
  double s = 0;
  for (int c = 0; c < C; c++) s += exp(z[c] / T - m);
  double lse = m + log(s);
  for (int c = 0; c < C; c++) out[c] = z[c] / T - lse;
}

typedef struct {
  const qkd_loss *node; /* a CE, KL or MSE leaf */
  double *ls, *ps;      /* [B][C] student log-softmax and softmax at the term's T (ce, kl) */
  double *lt, *pt;      /* [B][C] the teacher's (kl) */
  double v;             /* the term's value */
} term_ws;

typedef struct {
  const double *s, *t;
  const int *y;
  int B, C;
  double *d;
  term_ws term[LOSS_MAX_TERMS];
  int n_terms;
  struct { int term; double scale; } order[LOSS_MAX_TERMS]; /* each visit of the reverse sweep to a term, */
  int n_order;                                               /* with its dLoss/d(term), in visiting order */
  int n_leaves;                                              /* leaf occurrences, bounding the visits */
} ctx;

static term_ws *term_of(ctx *x, const qkd_loss *l) {
  for (int i = 0; i < x->n_terms; i++)
    if (x->term[i].node == l) return &x->term[i];
  return NULL;
}

static int collect(ctx *x, const qkd_loss *l) {
  if (!l) return 0;
  if (l->kind == QKD_LOSS_CE || l->kind == QKD_LOSS_KL || l->kind == QKD_LOSS_MSE) {
    if (++x->n_leaves > LOSS_MAX_TERMS) return -1;
    if (term_of(x, l)) return 0; /* a node the expression shares */
    x->term[x->n_terms++].node = l;
    return 0;
  }
  return collect(x, l->a) == 0 && collect(x, l->b) == 0 ? 0 : -1;
}

/* Phase 1 on rows b0..b1-1. */
static void softmax_rows(ctx *x, int b0, int b1) {
  int C = x->C;
  for (int i = 0; i < x->n_terms; i++) {
    term_ws *w = &x->term[i];
    const qkd_loss *l = w->node;
    if (l->kind == QKD_LOSS_MSE) continue;
    double T = l->kind == QKD_LOSS_CE ? 1.0 : l->value;
    for (int b = b0; b < b1; b++) {
      size_t o = (size_t)b * C;
      log_softmax(x->s + o, C, T, w->ls + o);
      for (int c = 0; c < C; c++) w->ps[o + c] = exp(w->ls[o + c]);
      if (l->kind == QKD_LOSS_KL) {
        log_softmax(x->t + o, C, T, w->lt + o);
        for (int c = 0; c < C; c++) w->pt[o + c] = exp(w->lt[o + c]);
      }
    }
  }
}

/* Phase 2: a term's value, summed in row order. */
static double term_value(const ctx *x, const term_ws *w) {
  const qkd_loss *l = w->node;
  int B = x->B, C = x->C;
  double v = 0;
  for (int b = 0; b < B; b++) {
    size_t o = (size_t)b * C;
    switch (l->kind) {
    case QKD_LOSS_CE: v -= w->ls[o + x->y[b]]; break;
    case QKD_LOSS_KL:
      for (int c = 0; c < C; c++) {
        double pt = w->pt[o + c];
        if (pt > 0) v += pt * (w->lt[o + c] - w->ls[o + c]);
      }
      break;
    default: /* MSE */
      for (int c = 0; c < C; c++) {
        double e = x->s[o + c] - x->t[o + c];
        v += e * e / C;
      }
      break;
    }
  }
  return v / B;
}

static double value(ctx *x, const qkd_loss *l) {
  switch (l->kind) {
  case QKD_LOSS_NUM: return l->value;
  case QKD_LOSS_CE: case QKD_LOSS_KL: case QKD_LOSS_MSE: return term_of(x, l)->v;
  case QKD_LOSS_NEG: return -value(x, l->a);
  default: break;
  }
  double a = value(x, l->a), b = value(x, l->b);
  switch (l->kind) {
  case QKD_LOSS_ADD: return a + b;
  case QKD_LOSS_SUB: return a - b;
  case QKD_LOSS_MUL: return a * b;
  case QKD_LOSS_DIV: return a / b;
  default: return pow(a, b);
  }
}

/* Reverse mode: g = dLoss/d(value of l); a term only records its scale (phase 3 applies it). */
static void sweep(ctx *x, const qkd_loss *l, double g) {
  switch (l->kind) {
  case QKD_LOSS_NUM: return;
  case QKD_LOSS_CE: case QKD_LOSS_KL: case QKD_LOSS_MSE: {
    x->order[x->n_order].term = (int)(term_of(x, l) - x->term);
    x->order[x->n_order++].scale = g;
    return;
  }
  case QKD_LOSS_NEG: sweep(x, l->a, -g); return;
  default: break;
  }
  double a = value(x, l->a), b = value(x, l->b);
  switch (l->kind) {
  case QKD_LOSS_ADD: sweep(x, l->a, g); sweep(x, l->b, g); break;
  case QKD_LOSS_SUB: sweep(x, l->a, g); sweep(x, l->b, -g); break;
  case QKD_LOSS_MUL: sweep(x, l->a, g * b); sweep(x, l->b, g * a); break;
  case QKD_LOSS_DIV: sweep(x, l->a, g / b); sweep(x, l->b, -g * a / (b * b)); break;
  default:
    sweep(x, l->a, a == 0 && b < 1 ? 0 : g * b * pow(a, b - 1));
    if (a > 0) sweep(x, l->b, g * pow(a, b) * log(a));
    break;
  }
}

/* Phase 3 on rows b0..b1-1: d[b][c] += each reached term's scaled derivative, in sweep order. */
static void grad_rows(ctx *x, int b0, int b1) {
  int B = x->B, C = x->C;
  for (int k = 0; k < x->n_order; k++) {
    const term_ws *w = &x->term[x->order[k].term];
    const qkd_loss *l = w->node;
    double scale = x->order[k].scale;
    for (int b = b0; b < b1; b++) {
      size_t o = (size_t)b * C;
      double *db = x->d + o;
      switch (l->kind) {
      case QKD_LOSS_CE:
        for (int c = 0; c < C; c++) db[c] += scale * (w->ps[o + c] - (c == x->y[b])) / B;
        break;
      case QKD_LOSS_KL: {
        double T = l->value;
        for (int c = 0; c < C; c++) db[c] += scale * (w->ps[o + c] - w->pt[o + c]) / (T * B);
        break;
      }
      default: /* MSE */
        for (int c = 0; c < C; c++) {
          double e = x->s[o + c] - x->t[o + c];
          db[c] += scale * 2 * e / ((double)B * C);
        }
        break;
      }
    }
  }
}

typedef struct {
  ctx *x;
  int phase; /* 1 softmaxes, 3 gradient */
} rows_job;

static void rows_chunk(void *ud, int c) {
  rows_job *j = ud;
  int b0 = c * LOSS_ROWS, b1 = b0 + LOSS_ROWS < j->x->B ? b0 + LOSS_ROWS : j->x->B;
  if (j->phase == 1) softmax_rows(j->x, b0, b1);
  else grad_rows(j->x, b0, b1);
}

static void for_rows(qkd_par_pool *pool, ctx *x, int phase) {
  rows_job j = {x, phase};
  int n = (x->B + LOSS_ROWS - 1) / LOSS_ROWS;
  if (pool && qkd_par_threads(pool) > 1 && n > 1) qkd_par_for(pool, n, rows_chunk, &j);
  else
    for (int c = 0; c < n; c++) rows_chunk(&j, c);
}

double qkd_loss_eval_par(const qkd_loss *loss, const double *student, const double *teacher, const int *labels,
                         int B, int C, double *d_student, qkd_par_pool *pool) {
  ctx *x = calloc(1, sizeof *x);
  if (!x) return NAN;
  *x = (ctx){.s = student, .t = teacher, .y = labels, .B = B, .C = C, .d = d_student};
  double v = NAN;
  size_t bc = (size_t)(B > 0 ? B : 0) * (size_t)C;
  double *arena = NULL;
  if (collect(x, loss) != 0) goto done;
  arena = malloc(sizeof(double) * (4 * bc * (size_t)x->n_terms + 1));
  if (!arena) goto done;
  for (int i = 0; i < x->n_terms; i++) {
    term_ws *w = &x->term[i];
    w->ls = arena + 4 * bc * (size_t)i, w->ps = w->ls + bc, w->lt = w->ps + bc, w->pt = w->lt + bc;
  }
  for_rows(pool, x, 1);
  for (int i = 0; i < x->n_terms; i++) x->term[i].v = term_value(x, &x->term[i]);
  v = value(x, loss);
  if (d_student) {
    memset(d_student, 0, sizeof(double) * bc);
    sweep(x, loss, 1.0);
    for_rows(pool, x, 3);
  }
done:
  free(arena);
  free(x);
  return v;
}

double qkd_loss_eval(const qkd_loss *loss, const double *student, const double *teacher, const int *labels, int B,
                     int C, double *d_student) {
  return qkd_loss_eval_par(loss, student, teacher, labels, B, C, d_student, NULL);
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
