/* sema_noise.c — `noise:` (a student's) and `eval_noise:` (an experiment's): channel calls from
 * the channel table (qkd_channels.h) checked and lowered onto a lowered circuit (sema_int.h).
 *
 * A value is `none`, one channel call or a list of them. A call takes its parameters by
 * position or by name (the table's names: p, gamma, p01, p10), and, for a quantum channel,
 * `after:` (all [default], one_qubit, two_qubit, or a list of gate names) and `on:` (a qubit, a
 * list, or a half-open range such as 0..2 or `qubits`; default all). The channel acts after
 * every matching gate on each qubit that gate touches and `on:` admits, calls in the order
 * written, so the lowered list is sorted by gate as qkd_ir.h requires. `readout(p01, p10)` takes
 * `on:` only and sets the read-out confusion of those qubits. An amplitude encoding prepares the
 * state with no gate, so no channel acts on it; a gate encoding's gates count like the
 * circuit's. */
#include <math.h>
#include <string.h>

#include "qkd_dmsim.h"
#include "qkd_traj.h"
#include "sema_int.h"

enum { AFTER_ALL, AFTER_ONE, AFTER_TWO, AFTER_LIST };

typedef struct {
  const qkd_ast *call;
  int kind;
  double p[QKD_CHAN_MAX_PARAMS];
  int after;
  unsigned char gates[QKD_GATE_COUNT]; /* AFTER_LIST: the gate kinds named */
  uint32_t on;                         /* qubit mask */
} channel_spec;

static const char *channel_names(sema *S) {
  const char *names[QKD_CHAN_COUNT + 1];
  for (int k = 0; k < QKD_CHAN_COUNT; k++) names[k] = qkd_chan(k)->name;
  names[QKD_CHAN_COUNT] = NULL;
  return sema_join(S, names);
}

/* `after:` into sp; 0 or -1 (reported). */
static int bind_after(sema *S, const qkd_ast *v, channel_spec *sp) {
  if (v->kind == QKD_AST_IDENT && !strcmp(v->name, "all")) sp->after = AFTER_ALL;
  else if (v->kind == QKD_AST_IDENT && !strcmp(v->name, "one_qubit")) sp->after = AFTER_ONE;
  else if (v->kind == QKD_AST_IDENT && !strcmp(v->name, "two_qubit")) sp->after = AFTER_TWO;
  else if (v->kind == QKD_AST_LIST && v->items.len > 0) {
    sp->after = AFTER_LIST;
    for (int i = 0; i < v->items.len; i++) {
      const qkd_ast *g = v->items.items[i];
      int k = g->kind == QKD_AST_IDENT ? qkd_gate_lookup(g->name) : -1;
      if (k < 0) {
        qkd_diag_error(S->D, g->span, "after: names gates (cnot, rz, …): '%s' is not a gate of the gate table",
                       g->kind == QKD_AST_IDENT ? g->name : "this");
        return -1;
      }
      sp->gates[k] = 1;
    }
  } else {
    qkd_diag_error(S->D, v->span, "after: must be all, one_qubit, two_qubit or a list of gate names such as [cnot, rz]");
    return -1;
  }
  return 0;
}

/* `on:` into sp->on; 0 or -1 (reported). */
static int bind_on(sema *S, const qkd_env *env, const qkd_ast *v, int n, channel_spec *sp) {
  qkd_value x = qkd_eval_expr(&S->ev, env, v);
  if (x.kind == QKD_V_ERR) return -1;
  double q[QKD_MAX_QUBITS + 1];
  int m = 0;
  if (x.kind == QKD_V_NUM) q[m++] = x.num;
  else if (x.kind == QKD_V_RANGE && x.hi - x.lo <= QKD_MAX_QUBITS) /* half-open, as `qubits` = 0..n */
    for (double t = x.lo; t < x.hi; t++) q[m++] = t;
  else if (x.kind == QKD_V_LIST && x.n <= QKD_MAX_QUBITS)
    for (int i = 0; i < x.n; i++) q[m++] = x.items[i].kind == QKD_V_NUM ? x.items[i].num : NAN;
  else {
    qkd_diag_error(S->D, v->span, "on: must be a qubit, a list of qubits or a range such as 0..2 (half-open)");
    return -1;
  }
  sp->on = 0;
  for (int i = 0; i < m; i++) {
    if (!(q[i] == floor(q[i]) && q[i] >= 0 && q[i] < n)) {
      qkd_diag_error(S->D, v->span, "on: qubits are integers from 0 to %d (the student has %d)", n - 1, n);
      return -1;
    }
    sp->on |= 1u << (int)q[i];
  }
  return 0;
}

/* One channel call into sp; 0 or -1 (reported). */
static int bind_channel(sema *S, const qkd_env *env, const qkd_ast *call, int n, channel_spec *sp) {
  memset(sp, 0, sizeof *sp);
  sp->call = call;
  sp->on = n >= 32 ? ~0u : (1u << n) - 1;
  if (call->kind != QKD_AST_CALL && call->kind != QKD_AST_IDENT) {
    qkd_diag_error(S->D, call->span, "a noise channel is a call such as depolarizing(0.01) (channels: %s)", channel_names(S));
    return -1;
  }
  if ((sp->kind = qkd_chan_lookup(call->name)) < 0) {
    qkd_diag_error(S->D, call->name_span, "unknown noise channel '%s' (channels: %s)", call->name, channel_names(S));
    return -1;
  }
  const qkd_chan_info *ch = qkd_chan(sp->kind);
  /* the parameters through the built-in binder; after: and on: here */
  qkd_ast params = *call;
  params.items = (qkd_vec){0};
  const qkd_ast *after = NULL, *on = NULL;
  for (int i = 0; call->kind == QKD_AST_CALL && i < call->items.len; i++) {
    qkd_ast *a = call->items.items[i];
    const qkd_ast **opt = !a->name ? NULL : !strcmp(a->name, "after") ? &after : !strcmp(a->name, "on") ? &on : NULL;
    if (!opt) {
      qkd_vec_push(S->A, &params.items, a);
    } else if (*opt) {
      qkd_diag_error(S->D, a->span, "argument '%s' given twice", a->name);
      return -1;
    } else {
      *opt = a;
    }
  }
  const char *names[QKD_CHAN_MAX_PARAMS + 1] = {0};
  double def[QKD_CHAN_MAX_PARAMS];
  for (int i = 0; i < ch->n_params; i++) names[i] = ch->param[i], def[i] = NAN;
  if (sema_bind_builtin(S, env, &params, names, def, sp->p) != 0) return -1;
  for (int i = 0; i < ch->n_params; i++)
    if (!(sp->p[i] >= ch->lo && sp->p[i] <= ch->hi)) {
      qkd_diag_error(S->D, call->span, "%s: %s = %g is outside [%g, %g]", ch->name, ch->param[i], sp->p[i], ch->lo, ch->hi);
      return -1;
    }
  if (after && !qkd_chan_is_quantum(sp->kind)) {
    qkd_diag_error(S->D, after->span, "%s acts on the measured bits, not after gates: it takes on: but no after:", ch->name);
    return -1;
  }
  if (after && bind_after(S, after->a, sp) != 0) return -1;
  if (on && bind_on(S, env, on->a, n, sp) != 0) return -1;
  return 0;
}

static int gate_matches(const channel_spec *sp, const qkd_ir_gate *g) {
  int nq = qkd_gate(g->kind)->qubits;
  switch (sp->after) {
    case AFTER_ONE: return nq == 1;
    case AFTER_TWO: return nq == 2;
    case AFTER_LIST: return sp->gates[g->kind];
    default: return 1;
  }
}

int sema_lower_noise(sema *S, const qkd_ast *value, qkd_ir_circuit *c) {
  c->n_channels = 0;
  c->channels = NULL;
  c->readout = NULL;
  if (!value || ((value->kind == QKD_AST_IDENT || value->kind == QKD_AST_CALL) && !strcmp(value->name, "none") &&
                 !value->items.len))
    return 0;
  int n = c->n_qubits;
  const qkd_env qubits_env = {"qubits", {.kind = QKD_V_NUM, .num = n}, NULL};
  int m = value->kind == QKD_AST_LIST ? value->items.len : 1;
  if (m == 0) return 0; /* [] : no noise */
  channel_spec *sp = qkd_arena_alloc(S->A, (size_t)m * sizeof *sp);
  int rc = 0;
  for (int i = 0; i < m; i++)
    if (bind_channel(S, &qubits_env, value->kind == QKD_AST_LIST ? value->items.items[i] : value, n, &sp[i]) != 0) rc = -1;
  if (rc) return -1;
  /* read-out: one confusion per qubit */
  for (int i = 0; i < m; i++) {
    if (qkd_chan_is_quantum(sp[i].kind)) continue;
    if (!c->readout) {
      c->readout = qkd_arena_alloc(S->A, (size_t)n * sizeof *c->readout);
      memset(c->readout, 0, (size_t)n * sizeof *c->readout);
    }
    for (int j = 0; j < i; j++)
      if (!qkd_chan_is_quantum(sp[j].kind) && (sp[j].on & sp[i].on)) {
        qkd_diag_error(S->D, sp[i].call->span, "a second readout for a qubit that an earlier readout already covers");
        return -1;
      }
    for (int q = 0; q < n; q++)
      if (sp[i].on >> q & 1) c->readout[q] = (qkd_ir_readout){sp[i].p[0], sp[i].p[1]};
  }
  /* channels: gate by gate, calls in order, the gate's qubits in order */
  int count = 0, *acts = qkd_arena_alloc(S->A, (size_t)m * sizeof *acts);
  memset(acts, 0, (size_t)m * sizeof *acts);
  for (int pass = 0; pass < 2; pass++) {
    for (int g = 0; g < c->n_gates; g++)
      for (int i = 0; i < m; i++) {
        if (!qkd_chan_is_quantum(sp[i].kind) || !gate_matches(&sp[i], &c->gates[g])) continue;
        for (int t = 0; t < qkd_gate(c->gates[g].kind)->qubits; t++) {
          int q = c->gates[g].q[t];
          if (!(sp[i].on >> q & 1)) continue;
          if (pass) c->channels[c->n_channels++] = (qkd_ir_channel){(qkd_chan_kind)sp[i].kind, q, sp[i].p[0], g + 1};
          else count++, acts[i]++;
        }
      }
    if (!pass) c->channels = qkd_arena_alloc(S->A, (size_t)(count + 1) * sizeof *c->channels);
  }
  for (int i = 0; i < m; i++)
    if (qkd_chan_is_quantum(sp[i].kind) && !acts[i])
      qkd_diag_warning(S->D, sp[i].call->span, "%s never acts: no gate of the circuit matches its after: and on:",
                       qkd_chan(sp[i].kind)->name);
  return 0;
}

int sema_noise_engine(sema *S, const qkd_m_student *st, qkd_ir_circuit *c, qkd_span site) {
  c->trajectories = 0;
  if (!qkd_ir_noisy(c)) return 0;
  qkd_error err;
  int pauli = qkd_traj_supported(c, &err) == 0, n = c->n_qubits;
  int traj = st->noise_engine == QKD_NOISE_TRAJECTORIES || (st->noise_engine == QKD_NOISE_AUTO && pauli && n >= QKD_TRAJ_AUTO_QUBITS);
  if (!traj) {
    if (n <= QKD_DM_MAX_QUBITS) return 0;
    qkd_diag_error(S->D, site, "the exact density-matrix engine takes at most %d qubits, not %d (16·4^n bytes a sample)%s",
                   QKD_DM_MAX_QUBITS, n, pauli ? ": use noise_engine: trajectories" : "");
    return -1;
  }
  if (!pauli) {
    qkd_diag_error(S->D, site, "noise_engine: trajectories: %s", err.msg);
    return -1;
  }
  c->trajectories = st->n_trajectories > 0 ? st->n_trajectories : 1;
  return 0;
}
