/* ir.c — validation, text dump and fingerprint of the flat circuit IR (qkd_ir.h); gate facts
 * come from the gate table (qkd_gates.h), channel facts from the channel table (qkd_channels.h). */
#include "qkd_ir.h"

#include "qkd_hash.h"

#include <string.h>

int qkd_ir_outputs(const qkd_ir_circuit *c) {
  return c->measure == QKD_MEASURE_Z ? c->n_qubits : 1 << c->n_qubits;
}

double qkd_ir_angle(const qkd_angle *a, const double *params, const double *features) {
  switch (a->kind) {
  case QKD_ANGLE_PARAM: return a->scale * params[a->index] + a->offset;
  case QKD_ANGLE_FEATURE: return a->scale * features[a->index] + a->offset;
  case QKD_ANGLE_BIT: return (features[a->index] != 0.0 ? a->scale : 0.0) + a->offset;
  case QKD_ANGLE_CONST: return a->offset;
  default: return 0.0;
  }
}

void qkd_ir_gate_angles(const qkd_ir_gate *g, const double *params, const double *features, double *a) {
  int na = qkd_gate(g->kind)->angles;
  for (int s = 0; s < QKD_GATE_MAX_ANGLES; s++) a[s] = s < na ? qkd_ir_angle(&g->angle[s], params, features) : 0.0;
}

int qkd_ir_amplitudes(const qkd_ir_circuit *c) {
  if (c->encode != QKD_ENCODE_AMPLITUDE) return 0;
  return c->n_amplitudes ? c->n_amplitudes : c->n_features;
}

int qkd_ir_noisy(const qkd_ir_circuit *c) { return c->n_channels != 0 || c->readout != NULL; }

/* The channels and the read-out of a circuit whose gates are valid. */
static int validate_noise(const qkd_ir_circuit *c, qkd_error *err) {
#define FAIL(...) return qkd_fail(err, QKD_ERR_INTERNAL, NULL, __VA_ARGS__)
  if (c->n_channels < 0) FAIL("negative channel count");
  if (c->n_channels > 0 && !c->channels) FAIL("%d channels but no channel array", c->n_channels);
  for (int i = 0; i < c->n_channels; i++) {
    const qkd_ir_channel *ch = &c->channels[i];
    if (!qkd_chan_is_quantum((int)ch->kind)) FAIL("channel %d: bad kind %d", i, (int)ch->kind);
    const qkd_chan_info *info = qkd_chan(ch->kind);
    if (ch->qubit < 0 || ch->qubit >= c->n_qubits) FAIL("channel %d (%s): qubit %d out of range", i, info->name, ch->qubit);
    if (!qkd_chan_param_ok(ch->kind, ch->p))
      FAIL("channel %d (%s): %s = %g outside [%g, %g]", i, info->name, info->param[0], ch->p, info->lo, info->hi);
    if (ch->after < 0 || ch->after > c->n_gates)
      FAIL("channel %d (%s): after %d outside 0..%d", i, info->name, ch->after, c->n_gates);
    if (i > 0 && ch->after < c->channels[i - 1].after)
      FAIL("channel %d (%s): after %d precedes the previous channel's %d", i, info->name, ch->after,
           c->channels[i - 1].after);
  }
  const qkd_chan_info *ro = qkd_chan(QKD_CHAN_READOUT);
  for (int q = 0; c->readout && q < c->n_qubits; q++) {
    double pr[2] = {c->readout[q].p01, c->readout[q].p10};
    for (int k = 0; k < 2; k++)
      if (!qkd_chan_param_ok(QKD_CHAN_READOUT, pr[k]))
        FAIL("readout of qubit %d: %s = %g outside [%g, %g]", q, ro->param[k], pr[k], ro->lo, ro->hi);
  }
  return 0;
#undef FAIL
}

int qkd_ir_validate(const qkd_ir_circuit *c, qkd_error *err) {
#define FAIL(...) return qkd_fail(err, QKD_ERR_INTERNAL, NULL, __VA_ARGS__)
  if (c->n_qubits < 1 || c->n_qubits > QKD_MAX_QUBITS)
    FAIL("qubit count %d outside 1..%d", c->n_qubits, QKD_MAX_QUBITS);
  if (c->n_params < 0 || c->n_features < 0 || c->n_gates < 0 || c->shots < 0)
    FAIL("negative count");
  if (c->n_encoding_gates < 0 || c->n_encoding_gates > c->n_gates)
    FAIL("encoding gate count %d outside 0..%d", c->n_encoding_gates, c->n_gates);
  if (c->n_amplitudes < 0 || c->n_amplitudes > c->n_features || (c->n_amplitudes && c->encode != QKD_ENCODE_AMPLITUDE))
    FAIL("amplitude count %d with %d features", c->n_amplitudes, c->n_features);
  if (c->encode == QKD_ENCODE_AMPLITUDE && (qkd_ir_amplitudes(c) < 1 || qkd_ir_amplitudes(c) > (1 << c->n_qubits)))
    FAIL("amplitude encoding of %d features on %d qubits", qkd_ir_amplitudes(c), c->n_qubits);
  if (c->trajectories < 0 || (c->trajectories && !qkd_ir_noisy(c)))
    FAIL("%d trajectories on a %s circuit", c->trajectories, qkd_ir_noisy(c) ? "noisy" : "noiseless");
  int next_param = 0;
  for (int i = 0; i < c->n_gates; i++) {
    const qkd_ir_gate *g = &c->gates[i];
    if ((int)g->kind < 0 || g->kind >= QKD_GATE_COUNT) FAIL("gate %d: bad kind %d", i, (int)g->kind);
    const qkd_gate_info *info = &qkd_gate_table[g->kind];
    for (int k = 0; k < info->qubits; k++)
      if (g->q[k] < 0 || g->q[k] >= c->n_qubits) FAIL("gate %d (%s): qubit %d out of range", i, info->name, g->q[k]);
    if (info->qubits == 2 && g->q[0] == g->q[1]) FAIL("gate %d (%s): repeated qubit %d", i, info->name, g->q[0]);
    for (int s = 0; s < QKD_GATE_MAX_ANGLES; s++) {
      const qkd_angle *a = &g->angle[s];
      if ((s < info->angles) != (a->kind != QKD_ANGLE_NONE)) FAIL("gate %d (%s): angle %d mismatch", i, info->name, s);
      if (a->kind == QKD_ANGLE_PARAM) {
        if (a->index != next_param) FAIL("gate %d (%s): parameter %d out of order (expected %d)", i, info->name, a->index, next_param);
        next_param++;
      }
      if ((int)a->kind < 0 || a->kind > QKD_ANGLE_BIT) FAIL("gate %d (%s): bad angle kind %d", i, info->name, (int)a->kind);
      if (a->kind == QKD_ANGLE_FEATURE || a->kind == QKD_ANGLE_BIT) {
        if (a->index < 0) FAIL("gate %d (%s): negative feature index", i, info->name);
        if (a->index >= c->n_features) /* also for AMPLITUDE: the row has n_features */
          FAIL("gate %d (%s): feature %d beyond n_features %d", i, info->name, a->index, c->n_features);
      }
    }
  }
  if (next_param != c->n_params) FAIL("%d parameters used, n_params is %d", next_param, c->n_params);
  return validate_noise(c, err);
#undef FAIL
}

static void dump_angle(const qkd_angle *a, FILE *out) {
  switch (a->kind) {
  case QKD_ANGLE_NONE: return;
  case QKD_ANGLE_CONST: fprintf(out, " %.17g", a->offset); return;
  case QKD_ANGLE_PARAM: fprintf(out, " p%d", a->index); break;
  case QKD_ANGLE_FEATURE: fprintf(out, " x%d", a->index); break;
  case QKD_ANGLE_BIT: fprintf(out, " bit(x%d)", a->index); break;
  }
  if (a->scale != 1.0) fprintf(out, "*%.17g", a->scale);
  if (a->offset != 0.0) fprintf(out, "%+.17g", a->offset);
}

static void dump_channel(const qkd_ir_channel *ch, FILE *out) {
  const qkd_chan_info *info = qkd_chan(ch->kind);
  fprintf(out, "      ~ %s q%d %s=%.17g\n", info->name, ch->qubit, info->param[0], ch->p);
}

void qkd_ir_dump(const qkd_ir_circuit *c, FILE *out) {
  static const char *enc[] = {"none", "amplitude"};
  static const char *meas[] = {"z", "probs"};
  fprintf(out, "circuit %s qubits=%d params=%d features=%d encode=%s measure=%s shots=%d precision=%s",
          c->name ? c->name : "?", c->n_qubits, c->n_params, c->n_features, enc[c->encode],
          meas[c->measure], c->shots, c->precision == QKD_PREC_F32 ? "f32" : "f64");
  if (c->n_amplitudes) fprintf(out, " amplitudes=%d", c->n_amplitudes);
  if (c->trajectories) fprintf(out, " trajectories=%d", c->trajectories);
  fputc('\n', out);
  int ch = 0;
  for (int i = 0; i <= c->n_gates; i++) {
    for (; ch < c->n_channels && c->channels[ch].after == i; ch++) dump_channel(&c->channels[ch], out);
    if (i == c->n_gates) break;
    const qkd_ir_gate *g = &c->gates[i];
    const qkd_gate_info *info = qkd_gate(g->kind);
    fprintf(out, "  %3d %s%-4s", i, i < c->n_encoding_gates ? "enc " : "", info->name);
    for (int k = 0; k < info->qubits; k++) fprintf(out, " q%d", g->q[k]);
    for (int s = 0; s < info->angles; s++) dump_angle(&g->angle[s], out);
    fputc('\n', out);
  }
  for (int q = 0; c->readout && q < c->n_qubits; q++)
    fprintf(out, "  readout q%d p01=%.17g p10=%.17g\n", q, c->readout[q].p01, c->readout[q].p10);
}

uint64_t qkd_ir_hash(const qkd_ir_circuit *ir) {
  uint64_t h = QKD_HASH_INIT;
  int head[7] = {ir->n_qubits, ir->n_params, ir->n_features, (int)ir->encode, (int)ir->measure, ir->shots, ir->n_gates};
  h = qkd_hash_bytes(h, head, sizeof head);
  if (ir->n_amplitudes) h = qkd_hash_bytes(h, &ir->n_amplitudes, sizeof ir->n_amplitudes); /* 0: as before */
  for (int i = 0; i < ir->n_gates; i++) {
    const qkd_ir_gate *g = &ir->gates[i];
    int na = qkd_gate(g->kind)->angles;
    for (int s = 0; s < (na > 1 ? na : 1); s++) { /* slot 0 always: one-angle fingerprints as before */
      int gi[5] = {(int)g->kind, g->q[0], g->q[1], (int)g->angle[s].kind, g->angle[s].index};
      double gd[2] = {g->angle[s].scale, g->angle[s].offset};
      h = qkd_hash_bytes(h, gi, sizeof gi);
      h = qkd_hash_bytes(h, gd, sizeof gd);
    }
  }
  if (!qkd_ir_noisy(ir)) return h; /* noiseless: the fingerprint as before noise existed */
  int nh[2] = {ir->n_channels, ir->readout != NULL};
  h = qkd_hash_bytes(h, nh, sizeof nh);
  if (ir->trajectories) h = qkd_hash_bytes(h, &ir->trajectories, sizeof ir->trajectories); /* 0: as before */
  for (int i = 0; i < ir->n_channels; i++) {
    const qkd_ir_channel *ch = &ir->channels[i];
    int ci[3] = {(int)ch->kind, ch->qubit, ch->after};
    h = qkd_hash_bytes(h, ci, sizeof ci);
    h = qkd_hash_bytes(h, &ch->p, sizeof ch->p);
  }
  for (int q = 0; ir->readout && q < ir->n_qubits; q++) {
    double r[2] = {ir->readout[q].p01, ir->readout[q].p10};
    h = qkd_hash_bytes(h, r, sizeof r);
  }
  return h;
}
