/* draw.c — see draw.h. Every gate's symbols come from its row of the gate table (qkd_gates.h),
 * every channel's from its name in the channel table (qkd_channels.h). */
#include "draw.h"

#include <stdlib.h>
#include <string.h>

static void angle_label(const qkd_angle *a, char *buf, size_t n) {
  char src[16];
  if (a->kind == QKD_ANGLE_CONST) { snprintf(buf, n, "%.4g", a->offset); return; }
  snprintf(src, sizeof src, "%c%d", a->kind == QKD_ANGLE_PARAM ? 'p' : 'x', a->index);
  if (a->scale == 1.0 && a->offset == 0.0) snprintf(buf, n, "%s", src);
  else if (a->offset == 0.0) snprintf(buf, n, "%.4g*%s", a->scale, src);
  else snprintf(buf, n, "%.4g*%s%+.4g", a->scale, src, a->offset);
}

/* A channel's mark: '~' and the initials of its name's words (depolarizing ~D, bit_flip ~BF). */
static void channel_mark(int kind, char *buf, size_t n) {
  const char *name = qkd_chan(kind)->name;
  size_t k = 0;
  if (k + 1 < n) buf[k++] = '~';
  for (const char *p = name; *p && k + 1 < n; p++)
    if (p == name || p[-1] == '_') buf[k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
  buf[k] = 0;
}

/* Appends to cell (64 bytes) the marks of the channels acting on qubit q after `after` gates. */
static void append_channels(const qkd_ir_circuit *c, int after, int q, char *cell) {
  for (int j = 0; j < c->n_channels; j++) {
    if (c->channels[j].after != after || c->channels[j].qubit != q) continue;
    char m[16];
    channel_mark(c->channels[j].kind, m, sizeof m);
    size_t used = strlen(cell);
    snprintf(cell + used, 64 - used, "%s", m);
  }
}

void qkd_draw_circuit(const qkd_ir_circuit *c, FILE *out) {
  int n = c->n_qubits, G = c->n_gates;
  int *col = calloc((size_t)(G ? G : 1), sizeof(int));
  int *busy = calloc((size_t)n, sizeof(int)); /* first free column per wire */
  int ncols = 0;
  for (int i = 0; i < G; i++) {
    const qkd_ir_gate *g = &c->gates[i];
    int lo = g->q[0], hi = g->q[0];
    if (qkd_gate(g->kind)->qubits == 2) {
      lo = g->q[0] < g->q[1] ? g->q[0] : g->q[1];
      hi = g->q[0] < g->q[1] ? g->q[1] : g->q[0];
    }
    int k = 0;
    for (int q = lo; q <= hi; q++) if (busy[q] > k) k = busy[q];
    if (i == c->n_encoding_gates && i > 0) /* keep the encoding visibly first */
      for (int q = 0; q < n; q++) if (busy[q] > k) k = busy[q];
    for (int q = lo; q <= hi; q++) busy[q] = k + 1;
    col[i] = k;
    if (k + 1 > ncols) ncols = k + 1;
  }
  /* cells[q][k]: label of wire q in column k */
  size_t cells_n = (size_t)n * (size_t)(ncols ? ncols : 1);
  char (*cells)[64] = calloc(cells_n, sizeof *cells);
  int *width = calloc((size_t)(ncols ? ncols : 1), sizeof(int));
  for (int i = 0; i < G; i++) {
    const qkd_ir_gate *g = &c->gates[i];
    const qkd_gate_info *info = qkd_gate(g->kind);
    int k = col[i];
    char ang[160] = "";
    for (int a = 0; a < info->angles; a++) {
      char one[48];
      angle_label(&g->angle[a], one, sizeof one);
      size_t used = strlen(ang);
      snprintf(ang + used, sizeof ang - used, "%s%.47s", a ? "," : "", one);
    }
    if (info->qubits == 2) {
      int lo = g->q[0] < g->q[1] ? g->q[0] : g->q[1], hi = g->q[0] < g->q[1] ? g->q[1] : g->q[0];
      for (int q = lo + 1; q < hi; q++) snprintf(cells[q * ncols + k], 64, "|");
    }
    for (int w = 0; w < info->qubits; w++) {
      const char *sym = info->draw[w];
      size_t len = strlen(sym);
      if (len && sym[len - 1] == '(') snprintf(cells[g->q[w] * ncols + k], 64, "%.8s%.40s)", sym, ang);
      else snprintf(cells[g->q[w] * ncols + k], 64, "%.16s", sym);
      append_channels(c, i + 1, g->q[w], cells[g->q[w] * ncols + k]);
    }
  }
  for (int k = 0; k < ncols; k++)
    for (int q = 0; q < n; q++) {
      int w = (int)strlen(cells[q * ncols + k]);
      if (w > width[k]) width[k] = w;
    }
  int label_w = n > 10 ? 3 : 2;
  for (int q = 0; q < n; q++) {
    char first[64] = ""; /* channels on the encoded state, before any gate */
    append_channels(c, 0, q, first);
    fprintf(out, "q%-*d: %s-", label_w - 1, q, first);
    for (int k = 0; k < ncols; k++) {
      const char *s = cells[q * ncols + k];
      int w = (int)strlen(s), pad = width[k] - w;
      for (int p = 0; p < pad / 2; p++) fputc('-', out);
      fputs(s, out);
      for (int p = 0; p < pad - pad / 2; p++) fputc('-', out);
      fputc('-', out);
    }
    int ro = c->readout && (c->readout[q].p01 != 0 || c->readout[q].p10 != 0);
    fprintf(out, "%s  %s\n", !c->readout ? "" : ro ? " ~R" : "   ", c->measure == QKD_MEASURE_Z ? "<Z>" : "");
  }
  fprintf(out, "%d qubits, %d gates (%d encoding), %d trainable parameters, %s%s", n, G, c->n_encoding_gates,
          c->n_params, c->encode == QKD_ENCODE_AMPLITUDE ? "amplitude encoding, " : "",
          c->measure == QKD_MEASURE_Z ? "measure <Z> on every qubit" : "measure basis-state probabilities");
  if (c->shots) fprintf(out, ", %d shots", c->shots);
  fputc('\n', out);
  /* the noise legend: each channel kind and parameter once, then the read-out */
  for (int j = 0; j < c->n_channels; j++) {
    int seen = 0;
    for (int i = 0; i < j && !seen; i++) seen = c->channels[i].kind == c->channels[j].kind && c->channels[i].p == c->channels[j].p;
    if (seen) continue;
    int count = 0;
    for (int i = j; i < c->n_channels; i++) count += c->channels[i].kind == c->channels[j].kind && c->channels[i].p == c->channels[j].p;
    char m[16];
    channel_mark(c->channels[j].kind, m, sizeof m);
    fprintf(out, "%s = %s(%s: %.6g), %d time%s\n", m, qkd_chan(c->channels[j].kind)->name, qkd_chan(c->channels[j].kind)->param[0],
            c->channels[j].p, count, count == 1 ? "" : "s");
  }
  for (int q = 0; c->readout && q < n; q++)
    if (c->readout[q].p01 != 0 || c->readout[q].p10 != 0)
      fprintf(out, "~R on q%d = readout(p01: %.6g, p10: %.6g)\n", q, c->readout[q].p01, c->readout[q].p10);
  free(col);
  free(busy);
  free(cells);
  free(width);
}
