/* test_hybrid_grad.c — the whole hybrid student's gradient (pre → encoding → circuit → head →
 * loss) against central finite differences, for amplitude, angle and qubit encodings, with the
 * interpreter and with the LLVM JIT kernels; the classical controls (classical, and matched with
 * its fixed projection) the same way; plus a short training run that must learn. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jit.h"
#include "parse.h"
#include "qkd_data.h"
#include "qkd_loss.h"
#include "qkd_train.h"
#include "qsim.h"
#include "sema.h"
#include "testutil.h"

static qkd_model *compile_text(qkd_arena *a, const char *text) {
  qkd_diag d;
  qkd_diag_init(&d, a);
  qkd_program_ast prog = {0};
  qkd_vec all = {0};
  char path[] = QKD_SOURCE_STDLIB_DIR "/../tests/unit/hybrid.qkd"; /* resolves std/… */
  qkd_parse_text(a, &d, path, text, (uint32_t)strlen(text), &all);
  for (int i = 0; i < all.len; i++) {
    qkd_ast *n = all.items[i];
    if (n->kind == QKD_AST_DECL) qkd_vec_push(a, &prog.decls, n);
  }
  if (d.errors) return NULL;
  return qkd_sema_check(a, &d, &prog, path);
}

static const char *programs[] = {
    /* amplitude encoding after a trainable dense reduction */
    "dataset syn { source: \"synthetic\" shape: [1, 4, 4] classes: 0..2 seed: 2 }\n"
    "circuit c() { for q in qubits { ry(q) rz(q) } for q in qubits { cnot(q, (q + 1) % n) } for q in qubits { rx(q) } }\n"
    "student s { qubits: 3 pre: dense(6) encode: amplitude circuit: c measure: z head: dense(3) }\n"
    "experiment e { data: syn student: s loss: ce train { optimizer: adam(lr: 0.01) epochs: 1 batch: 8 } }\n",
    /* angle encoding (data-driven RY) after a net, measuring probabilities, head none */
    "dataset syn { source: \"synthetic\" shape: [1, 4, 4] classes: 0..2 seed: 2 }\n"
    "encoding ang() { for q in qubits { ry(q, 0.5 * x[q] + 0.1) } }\n"
    "circuit c() { for q in qubits { rot(q) } cnot(0, 1) crz(1, 2) cry(2, 0) }\n"
    "student s { qubits: 3 pre: net { flatten dense(5) tanh dense(3) } encode: ang circuit: c measure: probs head: none }\n"
    "experiment e { data: syn student: s loss: ce train { optimizer: adam(lr: 0.01) epochs: 1 batch: 8 } }\n",
    /* qubit encoding (RY and RZ per qubit) after dense, head dense */
    "dataset syn { source: \"synthetic\" shape: [1, 4, 4] classes: 0..2 seed: 2 }\n"
    "encoding qb() { for q in qubits { ry(q, x[2*q])  rz(q, x[2*q+1]) } }\n"
    "circuit c() { for q in qubits { ry(q) } for q in qubits { cz(q, (q + 1) % n) } for q in qubits { rx(q) } }\n"
    "student s { qubits: 2 pre: dense(4) encode: qb circuit: c measure: z head: dense(3) }\n"
    "experiment e { data: syn student: s loss: ce train { optimizer: adam(lr: 0.01) epochs: 1 batch: 8 } }\n",
};

static void check_gradient(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *k, qkd_run_kind kind,
                           const char *what) {
  qkd_error err;
  qkd_student *s = qkd_student_create_run(e, ds, k, kind, 1, &err);
  CHECK(s != NULL);
  if (!s) { qkd_error_print(&err, stderr); return; }
  long P = qkd_student_param_count(s);
  double *p = malloc(sizeof(double) * P), *g = malloc(sizeof(double) * P), *q = malloc(sizeof(double) * P);
  double *stored = malloc(sizeof(double) * P);
  qkd_student_get_params(s, p);
  /* a teacher's logits: fixed pseudo-random numbers, so kl is exercised too */
  int C = ds->n_classes;
  float *teacher = malloc(sizeof(float) * ds->train.n * C);
  for (long i = 0; i < (long)ds->train.n * C; i++) teacher[i] = (float)sin(0.7 * i);
  qkd_loss ce = {QKD_LOSS_CE, 0, NULL, NULL}, kl = {QKD_LOSS_KL, 2.0, NULL, NULL}, half = {QKD_LOSS_NUM, 0.5, NULL, NULL};
  qkd_loss hk = {QKD_LOSS_MUL, 0, &half, &kl}, loss = {QKD_LOSS_ADD, 0, &ce, &hk};
  int idx[5] = {0, 3, 5, 8, 13};
  qkd_student_loss_grad(s, &loss, idx, 5, teacher, g);
  int bad = 0, checked = 0;
  for (long i = 0; i < P; i++) {
    double h = 1e-3;
    memcpy(q, p, sizeof(double) * P);
    /* classical parameters are stored as float: divide by the step actually taken */
    q[i] = p[i] + h;
    qkd_student_set_params(s, q);
    qkd_student_get_params(s, stored);
    double hi = stored[i];
    double up = qkd_student_loss_grad(s, &loss, idx, 5, teacher, NULL);
    q[i] = p[i] - h;
    qkd_student_set_params(s, q);
    qkd_student_get_params(s, stored);
    double dn = qkd_student_loss_grad(s, &loss, idx, 5, teacher, NULL);
    double fd = (up - dn) / (hi - stored[i]);
    if (fabs(fd - g[i]) > 2e-3 * fmax(1.0, fabs(fd))) {
      if (bad++ < 5) fprintf(stderr, "%s: param %ld: adjoint %.8g, finite difference %.8g\n", what, i, g[i], fd);
    }
    checked++;
  }
  qkd_student_set_params(s, p);
  CHECK(bad == 0);
  CHECK(checked == P && P > 10);
  if (kind == QKD_RUN_CONTROL && e->control == QKD_CONTROL_MATCHED) {
    /* the control's own layer stays within the circuit's budget (it is P minus pre and head) */
    qkd_student *q = qkd_student_create(e, ds, k, 1, &err);
    long full = q ? qkd_student_param_count(q) : 0, circuit = e->student.circuit.n_params;
    long O = qkd_ir_outputs(&e->student.circuit), layer = P - (full - circuit);
    CHECK(q && (layer <= circuit || (circuit < 2 * O && layer == 2 * O))); /* R >= 1 needs 2·O */
    qkd_student_destroy(q);
  }
  free(p); free(g); free(q); free(stored); free(teacher);
  qkd_student_destroy(s);
}

/* The matched width: the largest R with R*O + O <= P (never above F, at least 1). */
static void check_matched_width(void) {
  int bad = 0;
  for (int F = 1; F <= 40; F++)
    for (int O = 1; O <= 9; O++)
      for (int P = 1; P <= 120; P++) {
        int R = qkd_train_matched_width(F, O, P);
        int fits = (long)R * O + O <= P, maximal = R == F || (long)(R + 1) * O + O > P;
        if (R < 1 || R > F || (P >= 2 * O && !fits) || !maximal) bad++;
      }
  CHECK(bad == 0);
}

int main(void) {
  check_matched_width();
  for (size_t t = 0; t < sizeof programs / sizeof programs[0]; t++) {
    qkd_arena a = {0};
    qkd_model *m = compile_text(&a, programs[t]);
    CHECK(m != NULL);
    if (!m) continue;
    const qkd_m_experiment *e = m->experiments[0];
    qkd_data_opts o = {.source = "synthetic", .n_classes = e->data->n_classes, .classes = e->data->classes,
                       .seed = 2, .c = 1, .h = 4, .w = 4, .source_classes = 10, .train_limit = 64, .test_limit = 32};
    qkd_dataset ds;
    qkd_error err;
    int loaded = qkd_data_load(&o, &ds, &err) == 0;
    CHECK(loaded);
    if (!loaded) { qkd_error_print(&err, stderr); qkd_arena_free(&a); continue; }
    qkd_kernel ki = qkd_qsim_kernel(&e->student.circuit);
    check_gradient(e, &ds, &ki, QKD_RUN_DISTILLED, "interp");
    /* the classical controls in place of the circuit (the matched one through its projection) */
    qkd_m_experiment ec = *e;
    ec.control = QKD_CONTROL_CLASSICAL;
    check_gradient(&ec, &ds, &ki, QKD_RUN_CONTROL, "control classical");
    ec.control = QKD_CONTROL_MATCHED;
    check_gradient(&ec, &ds, &ki, QKD_RUN_CONTROL, "control matched");
    qkd_kernel kj;
    int jit_ok = qkd_jit_compile(&e->student.circuit, &kj, &err) == 0;
    CHECK(jit_ok);
    if (jit_ok) {
      check_gradient(e, &ds, &kj, QKD_RUN_DISTILLED, "jit");
      qkd_jit_release(&kj);
    }
    qkd_data_free(&ds);
    qkd_arena_free(&a);
  }
  return test_done("test_hybrid_grad");
}
