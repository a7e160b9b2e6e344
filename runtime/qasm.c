/* qasm.c — OpenQASM 3 / 2 export of a flat circuit and the Möttönen state preparation (qkd_qasm.h). */
#include "qkd_qasm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_file.h"
#include "qkd_json.h"

/* ---- state preparation ------------------------------------------------------------------------ */

static unsigned gray(unsigned i) { return i ^ (i >> 1); }

/* The uniformly controlled RY with angles alpha[0..2^k) on target qubit k, controlled by qubits
 * 0..k-1 (the control value j has qubit 0 as its most significant bit): 2^k RY, 2^k CNOT (k > 0).
 * RY(θ_i), then a CNOT from the control whose bit changes between gray(i) and gray(i+1): before
 * RY(θ_i) the target has been flipped by the controls of gray(i), so control value x sees
 * Σ_i (-1)^{x·gray(i)} θ_i = α_x when θ = 2^{-k} Mᵀ α, M_xi = (-1)^{x·gray(i)}. */
static int uniformly_controlled_ry(int k, const double *alpha, qkd_ir_gate *out) {
  unsigned K = 1u << k;
  int n = 0;
  for (unsigned i = 0; i < K; i++) {
    double th = 0;
    for (unsigned x = 0; x < K; x++) th += (__builtin_popcount(x & gray(i)) & 1) ? -alpha[x] : alpha[x];
    out[n++] = (qkd_ir_gate){.kind = QKD_GATE_RY, .q = {k, 0},
                             .angle = {{QKD_ANGLE_CONST, 0, 0.0, th / K}}};
    if (k == 0) break;
    unsigned changed = gray(i) ^ gray((i + 1) & (K - 1));
    int bit = __builtin_ctz(changed);
    out[n++] = (qkd_ir_gate){.kind = QKD_GATE_CNOT, .q = {k - 1 - bit, k}};
  }
  return n;
}

int qkd_qasm_state_prep(int n, const double *amp, int n_amp, qkd_ir_gate *out) {
  unsigned D = 1u << n;
  double *v = calloc(D, sizeof *v), *alpha = calloc(D, sizeof *alpha);
  qkd_ir_gate *tmp = malloc(sizeof *tmp * (size_t)QKD_QASM_PREP_MAX(n));
  int count = 0;
  if (!v || !alpha || !tmp) { free(v); free(alpha); free(tmp); return -1; }
  for (int i = 0; i < n_amp && i < (int)D; i++) v[i] = amp[i];
  /* levels from the last qubit up: target n-1 splits signed pairs, the ones above split norms */
  int at = QKD_QASM_PREP_MAX(n);
  for (int k = n - 1; k >= 0; k--) {
    unsigned K = 1u << k;
    for (unsigned j = 0; j < K; j++) {
      alpha[j] = 2.0 * atan2(v[2 * j + 1], v[2 * j]);
      v[j] = hypot(v[2 * j], v[2 * j + 1]);
    }
    int m = uniformly_controlled_ry(k, alpha, out); /* level k goes before the levels below it */
    at -= m;
    memcpy(tmp + at, out, sizeof *out * (size_t)m);
  }
  count = QKD_QASM_PREP_MAX(n) - at;
  memcpy(out, tmp + at, sizeof *out * (size_t)count);
  free(v); free(alpha); free(tmp);
  return count;
}

/* ---- writing ---------------------------------------------------------------------------------- */

int qkd_qasm_check(const qkd_ir_circuit *c, const qkd_qasm_opts *o, qkd_error *err) {
  if (o->features) return 0;
  if (c->encode == QKD_ENCODE_AMPLITUDE)
    return qkd_fail(err, QKD_ERR_INPUT, NULL, "amplitude encoding is a state preparation of one sample's features: "
                                              "give the sample (--sample K or --features F)");
  for (int i = 0; o->format == QKD_QASM2 && i < c->n_gates; i++)
    for (int a = 0; a < QKD_GATE_MAX_ANGLES; a++)
      if (c->gates[i].angle[a].kind == QKD_ANGLE_FEATURE)
        return qkd_fail(err, QKD_ERR_INPUT, NULL, "OpenQASM 2 has no inputs and the circuit reads features: "
                                                  "give the sample (--sample K or --features F)");
  return 0;
}

/* A number as an OpenQASM real: the shortest round-trip form, with a decimal point. */
static void put_num(FILE *f, double v) {
  char b[40];
  qkd_fmt_num(b, sizeof b, v);
  char *e = strchr(b, 'e');
  if (strchr(b, '.')) fputs(b, f);
  else if (e) fprintf(f, "%.*s.0%s", (int)(e - b), b, e);
  else fprintf(f, "%s.0", b);
}

static void put_angle(FILE *f, const qkd_angle *a, const qkd_qasm_opts *o) {
  if (a->kind != QKD_ANGLE_FEATURE || o->features) {
    put_num(f, qkd_ir_angle(a, o->params, o->features));
    return;
  }
  if (a->scale != 1.0) {
    put_num(f, a->scale);
    fputs(" * ", f);
  }
  fprintf(f, "x_%d", a->index);
  if (a->offset != 0.0) {
    fputs(a->offset < 0 ? " - " : " + ", f);
    put_num(f, fabs(a->offset));
  }
}

static const char *gate_name(const qkd_gate_info *g, qkd_qasm_format fmt) {
  return fmt == QKD_QASM2 && g->qasm2 ? g->qasm2 : g->qasm;
}

static void put_gate(FILE *f, const qkd_ir_gate *g, int n, const qkd_qasm_opts *o) {
  const qkd_gate_info *info = qkd_gate(g->kind);
  fputs(gate_name(info, o->format), f);
  for (int a = 0; a < info->angles; a++) {
    fputs(a ? ", " : "(", f);
    put_angle(f, &g->angle[a], o);
  }
  fputs(info->angles ? ") " : " ", f);
  for (int q = 0; q < info->qubits; q++) fprintf(f, "%sq[%d]", q ? ", " : "", n - 1 - g->q[q]);
  fputs(";\n", f);
}

static void put_comment(FILE *f, const char *text) {
  while (text && *text) {
    const char *nl = strchr(text, '\n');
    int len = nl ? (int)(nl - text) : (int)strlen(text);
    fprintf(f, "// %.*s\n", len, text);
    text += len + (nl != NULL);
  }
}

int qkd_qasm_write(FILE *f, const qkd_ir_circuit *c, const qkd_qasm_opts *o, qkd_error *err) {
  if (qkd_qasm_check(c, o, err) != 0) return -1;
  int n = c->n_qubits, q3 = o->format == QKD_QASM3, amp = c->encode == QKD_ENCODE_AMPLITUDE;
  qkd_ir_gate *prep = NULL;
  int n_prep = 0;
  if (amp) {
    prep = malloc(sizeof *prep * (size_t)QKD_QASM_PREP_MAX(n));
    if (!prep || (n_prep = qkd_qasm_state_prep(n, o->features, c->n_features, prep)) < 0) {
      free(prep);
      return qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory for the state preparation");
    }
  }
  fprintf(f, "OPENQASM %s;\ninclude \"%s\";\n", q3 ? "3.0" : "2.0", q3 ? "stdgates.inc" : "qelib1.inc");
  fprintf(f, "// %s: the circuit of student '%s' (written by qkdc %s)\n", q3 ? "OpenQASM 3" : "OpenQASM 2",
          c->name ? c->name : "?", QKD_VERSION);
  put_comment(f, o->comment);
  fprintf(f, "// qubit order: qkd's qubit j is q[%d-j]; a basis index (bits c[%d]..c[0]) is the same number as\n"
             "// qkd's (its qubit 0 the most significant bit). The state before measurement is qkd's up to a\n"
             "// global phase.\n", n - 1, n - 1);
  if (c->measure == QKD_MEASURE_Z)
    fprintf(f, "// outputs: <Z_j> = P(c[%d-j] = 0) - P(c[%d-j] = 1) for j = 0..%d\n", n - 1, n - 1, n - 1);
  else
    fprintf(f, "// outputs: the %d basis-state probabilities, from the counts of each bit string c\n", 1 << n);
  if (o->features && c->n_features) {
    fprintf(f, "// features (after pre), x_0..x_%d:", c->n_features - 1);
    for (int i = 0; i < c->n_features; i++) {
      if (i % 8 == 0) fputs("\n//  ", f);
      fputc(' ', f);
      put_num(f, o->features[i]);
    }
    fputc('\n', f);
  }
  /* definitions of the gates the include lacks, each once, in table order */
  int used[QKD_GATE_COUNT] = {0};
  for (int i = 0; i < c->n_gates; i++) used[c->gates[i].kind] = 1;
  for (int i = 0; i < n_prep; i++) used[prep[i].kind] = 1;
  for (int k = 0; k < QKD_GATE_COUNT; k++) {
    const char *def = q3 ? qkd_gate(k)->qasm_def : qkd_gate(k)->qasm2_def;
    if (used[k] && def) fprintf(f, "%s\n", def);
  }
  if (q3 && !o->features) {
    char *seen = calloc((size_t)c->n_features + 1, 1);
    if (!seen) return qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory");
    for (int i = 0; i < c->n_gates; i++)
      for (int a = 0; a < QKD_GATE_MAX_ANGLES; a++)
        if (c->gates[i].angle[a].kind == QKD_ANGLE_FEATURE) seen[c->gates[i].angle[a].index] = 1;
    for (int i = 0; i < c->n_features; i++)
      if (seen[i]) fprintf(f, "input float[64] x_%d;\n", i);
    free(seen);
  }
  fprintf(f, q3 ? "qubit[%d] q;\nbit[%d] c;\n" : "qreg q[%d];\ncreg c[%d];\n", n, n);
  if (amp) {
    int ry = 0;
    for (int i = 0; i < n_prep; i++) ry += prep[i].kind == QKD_GATE_RY;
    fprintf(f, "// amplitude encoding: state preparation of the %d features (Mottonen et al.): %d RY, %d CNOT\n",
            c->n_features, ry, n_prep - ry);
    for (int i = 0; i < n_prep; i++) put_gate(f, &prep[i], n, o);
  }
  for (int i = 0; i < c->n_gates; i++) {
    if (i == 0 && c->n_encoding_gates) fputs("// encoding\n", f);
    if (i == c->n_encoding_gates) fputs("// circuit\n", f);
    put_gate(f, &c->gates[i], n, o);
  }
  fputs(q3 ? "c = measure q;\n" : "measure q -> c;\n", f);
  free(prep);
  return 0;
}

typedef struct {
  const qkd_ir_circuit *c;
  const qkd_qasm_opts *o;
  qkd_error *err;
  int failed;
} emit_ctx;

static int emit(FILE *f, const void *p) {
  emit_ctx *x = (emit_ctx *)p;
  if (qkd_qasm_write(f, x->c, x->o, x->err) != 0) return x->failed = 1, -1;
  return 0;
}

int qkd_qasm_write_file(const char *path, const qkd_ir_circuit *c, const qkd_qasm_opts *o, qkd_error *err) {
  if (qkd_qasm_check(c, o, err) != 0) return qkd_error_about(err, path), -1;
  emit_ctx x = {c, o, err, 0};
  qkd_error werr;
  if (qkd_file_write_atomic(path, emit, &x, &werr) == 0) return 0;
  if (x.failed) return qkd_error_about(err, path), -1;
  *err = werr;
  return -1;
}
