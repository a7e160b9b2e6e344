/* pshift.c — parameter shift through the kernel interface (qkd_par.h: qkd_par_pshift): the
 * shifted circuits are rows of ordinary forward calls of the kernel, run by the thread pool. */
#include "qkd_par.h"

#include <stdlib.h>
#include <string.h>

#include "qkd_rng.h"
#include "qsim.h"

#define PSHIFT_BLOCK ((size_t)1 << 20) /* doubles of stacked rows (features + outputs) at a time */

typedef struct {
  double shift[4], coef[4];
  int terms;
} rule;

static rule rule_of(qkd_shift_rule r) {
  const double pi = 3.14159265358979323846;
  if (r == QKD_SHIFT_FOUR) {
    const double c1 = (sqrt(2.0) + 1.0) / (4.0 * sqrt(2.0)), c2 = (sqrt(2.0) - 1.0) / (4.0 * sqrt(2.0));
    return (rule){{pi / 2, -pi / 2, 3 * pi / 2, -3 * pi / 2}, {c1, -c1, -c2, c2}, 4};
  }
  return (rule){{pi / 2, -pi / 2, 0, 0}, {0.5, -0.5, 0, 0}, 2};
}

/* One forward of `rows` rows through kc in the circuit's precision; out in double. */
static int forward(qkd_par_pool *pool, const qkd_kernel *kc, int f32, const double *params, const double *feat,
                   int rows, uint64_t seed, uint64_t first, double *out, float *p32, float *x32, float *o32) {
  const qkd_ir_circuit *ir = kc->ir;
  if (!f32) return qkd_par_fwd_f64(pool, kc, params, feat, rows, seed, first, out);
  size_t nx = (size_t)rows * (size_t)ir->n_features, no = (size_t)rows * (size_t)qkd_ir_outputs(ir);
  for (int p = 0; p < ir->n_params; p++) p32[p] = (float)params[p];
  for (size_t i = 0; i < nx; i++) x32[i] = (float)feat[i];
  if (qkd_par_fwd_f32(pool, kc, p32, feat ? x32 : NULL, rows, seed, first, o32) != 0) return -1;
  for (size_t i = 0; i < no; i++) out[i] = o32[i];
  return 0;
}

int qkd_par_pshift(qkd_par_pool *pool, const qkd_kernel *k, const double *params,
                   const double *features, int batch, const double *d_outputs, uint64_t seed,
                   uint64_t first_sample, double *d_params, double *d_features) {
  const qkd_ir_circuit *ir = k->ir;
  int np = ir->n_params, nf = ir->n_features, no = qkd_ir_outputs(ir), ng = ir->n_gates;
  int f32 = ir->precision == QKD_PREC_F32;
  if (batch <= 0) return 0;
  qkd_kernel kc = *k;
  if (ir->shots > 0) kc.sample = qkd_kernel_sample_counts_f64;
  int rc = -1;
  /* which features one angle alone reads (shifted through their column) */
  int *reads = calloc((size_t)nf + 1, sizeof(int));
  unsigned char *shared = calloc((size_t)nf + 1, 1);
  int *fslot = malloc(sizeof(int) * 2 * ((size_t)ng * QKD_GATE_MAX_ANGLES + 1)); /* stacked (gate, slot) */
  double *pbuf = malloc(sizeof(double) * ((size_t)np + 1)), *obuf = NULL, *xbuf = NULL;
  float *p32 = NULL, *x32 = NULL, *o32 = NULL;
  if (!reads || !shared || !fslot || !pbuf) goto out;
  /* (a feature that is also an amplitude is never shifted through its column) */
  for (int i = 0; d_features && i < ng; i++)
    for (int s = 0; s < qkd_gate(ir->gates[i].kind)->angles; s++) {
      const qkd_angle *a = &ir->gates[i].angle[s];
      if (a->kind == QKD_ANGLE_FEATURE && a->scale != 0.0) reads[a->index] += a->index < qkd_ir_amplitudes(ir) ? 2 : 1;
    }
  int nfs = 0, E = 0, any_shared = 0;
  for (int i = 0; i < ng; i++)
    for (int s = 0; s < qkd_gate(ir->gates[i].kind)->angles; s++) {
      const qkd_angle *a = &ir->gates[i].angle[s];
      if (a->kind != QKD_ANGLE_FEATURE || a->scale == 0.0 || !reads[a->index]) continue;
      if (reads[a->index] > 1) { shared[a->index] = 1, any_shared = 1; continue; }
      fslot[2 * nfs] = i, fslot[2 * nfs + 1] = s, nfs++;
      E += rule_of(qkd_gate(ir->gates[i].kind)->shift).terms;
    }
  if (d_features) memset(d_features, 0, sizeof(double) * (size_t)batch * (size_t)nf);
  /* rows of the largest forward call: the batch (parameters) or a block of stacked samples */
  size_t per = (size_t)E * (size_t)(nf + no) + 1;
  int cb = E ? (int)(PSHIFT_BLOCK / per > 0 ? PSHIFT_BLOCK / per : 1) : 0;
  if (cb > batch) cb = batch;
  size_t rows = (size_t)cb * (size_t)E > (size_t)batch ? (size_t)cb * (size_t)E : (size_t)batch;
  obuf = malloc(sizeof(double) * rows * (size_t)no + 8);
  xbuf = malloc(sizeof(double) * ((size_t)cb * (size_t)E * (size_t)nf + 1));
  if (!obuf || !xbuf) goto out;
  if (f32) {
    p32 = malloc(sizeof(float) * ((size_t)np + 1));
    x32 = malloc(sizeof(float) * (rows * (size_t)nf + 1));
    o32 = malloc(sizeof(float) * (rows * (size_t)no + 1));
    if (!p32 || !x32 || !o32) goto out;
  }

  /* parameters: one forward of the whole batch per (parameter, term) */
  for (int i = 0; d_params && i < ng; i++) {
    const qkd_gate_info *info = qkd_gate(ir->gates[i].kind);
    for (int s = 0; s < info->angles; s++) {
      const qkd_angle *a = &ir->gates[i].angle[s];
      if (a->kind != QKD_ANGLE_PARAM || a->scale == 0.0) continue;
      rule r = rule_of(info->shift);
      double dth = 0.0;
      for (int t = 0; t < r.terms; t++) {
        memcpy(pbuf, params, sizeof(double) * (size_t)np);
        pbuf[a->index] = params[a->index] + r.shift[t] / a->scale;
        uint64_t e = 4 * ((uint64_t)i + (uint64_t)ng * (uint64_t)s) + (uint64_t)t;
        uint64_t es = qkd_rng_u64(seed, QKD_STREAM_SHOTS | ((uint64_t)2 << 32), e);
        if (forward(pool, &kc, f32, pbuf, features, batch, es, first_sample, obuf, p32, x32, o32) != 0) goto out;
        double v = 0.0;
        for (int b = 0; b < batch; b++)
          for (int o = 0; o < no; o++) v += d_outputs[(size_t)b * no + o] * obuf[(size_t)b * no + o];
        dth += r.coef[t] * v;
      }
      d_params[a->index] += a->scale * dth;
    }
  }

  /* features read by one angle: (sample, feature, term) rows of stacked forwards */
  uint64_t fseed = qkd_rng_u64(seed, QKD_STREAM_SHOTS | ((uint64_t)3 << 32), 0);
  for (int b0 = 0; E && b0 < batch; b0 += cb) {
    int nb = batch - b0 < cb ? batch - b0 : cb;
    for (int b = 0; b < nb; b++) {
      const double *x = features + (size_t)(b0 + b) * nf;
      int e = 0;
      for (int j = 0; j < nfs; j++) {
        const qkd_ir_gate *g = &ir->gates[fslot[2 * j]];
        const qkd_angle *a = &g->angle[fslot[2 * j + 1]];
        rule r = rule_of(qkd_gate(g->kind)->shift);
        for (int t = 0; t < r.terms; t++, e++) {
          double *row = xbuf + ((size_t)b * E + (size_t)e) * nf;
          memcpy(row, x, sizeof(double) * (size_t)nf);
          row[a->index] = x[a->index] + r.shift[t] / a->scale;
        }
      }
    }
    if (forward(pool, &kc, f32, params, xbuf, nb * E, fseed, (first_sample + (uint64_t)b0) * (uint64_t)E, obuf, p32,
                x32, o32) != 0)
      goto out;
    for (int b = 0; b < nb; b++) {
      const double *dout = d_outputs + (size_t)(b0 + b) * no;
      double *dx = d_features + (size_t)(b0 + b) * nf;
      int e = 0;
      for (int j = 0; j < nfs; j++) {
        const qkd_ir_gate *g = &ir->gates[fslot[2 * j]];
        const qkd_angle *a = &g->angle[fslot[2 * j + 1]];
        rule r = rule_of(qkd_gate(g->kind)->shift);
        double dth = 0.0;
        for (int t = 0; t < r.terms; t++, e++) {
          const double *out = obuf + ((size_t)b * E + (size_t)e) * no;
          double v = 0.0;
          for (int o = 0; o < no; o++) v += dout[o] * out[o];
          dth += r.coef[t] * v;
        }
        dx[a->index] += a->scale * dth;
      }
    }
  }

  /* features read by several angles: the interpreter, per angle */
  if (any_shared)
    qkd_qsim_grad_pshift_select(ir, params, features, batch, d_outputs, seed, first_sample, NULL, d_features, shared);
  rc = 0;
out:
  free(reads); free(shared); free(fslot); free(pbuf); free(obuf); free(xbuf); free(p32); free(x32); free(o32);
  return rc;
}
