/* net_shape.c — the layer table and shape rules of qkd_net.h. */
#include "qkd_net.h"

#include <stdio.h>
#include <string.h>

const qkd_layer_info qkd_layer_table[QKD_LAYER_COUNT] = {
#define QKD_LAYER_ROW(e, name, lo, hi) {name, lo, hi},
    QKD_LAYER_LIST(QKD_LAYER_ROW)
#undef QKD_LAYER_ROW
};

int qkd_layer_lookup(const char *name) {
  for (int i = 0; i < QKD_LAYER_COUNT; i++)
    if (strcmp(qkd_layer_table[i].name, name) == 0) return i;
  return -1;
}

long qkd_shape_size(qkd_shape s) { return (long)s.c * s.h * s.w; }

static qkd_shape flat(long n) { return (qkd_shape){(int)n, 1, 1, 1}; }

int qkd_net_shapes(const qkd_layer_spec *layers, int n, qkd_shape in, int implicit_flatten,
                   qkd_shape *out, qkd_shape *result, qkd_error *err) {
  qkd_shape s = in;
  for (int i = 0; i < n; i++) {
    const qkd_layer_spec *l = &layers[i];
    switch (l->kind) {
    case QKD_LAYER_CONV: {
      if (s.flat) { qkd_fail(err, QKD_ERR_INPUT, NULL, "conv needs an image input, but its input is a flat vector of %d", s.c); return i; }
      if (l->units < 1 || l->kernel < 1 || l->stride < 1 || l->padding < 0) {
        qkd_fail(err, QKD_ERR_INPUT, NULL, "conv needs filters, kernel and stride >= 1 and padding >= 0"); return i;
      }
      int hp = s.h + 2 * l->padding, wp = s.w + 2 * l->padding;
      if (l->kernel > hp || l->kernel > wp) {
        qkd_fail(err, QKD_ERR_INPUT, NULL, "conv kernel %d is larger than its %dx%d input%s", l->kernel, s.h, s.w,
                 l->padding ? " (after padding)" : ""); return i;
      }
      s = (qkd_shape){l->units, (hp - l->kernel) / l->stride + 1, (wp - l->kernel) / l->stride + 1, 0};
      break;
    }
    case QKD_LAYER_MAXPOOL:
    case QKD_LAYER_AVGPOOL:
      if (s.flat) { qkd_fail(err, QKD_ERR_INPUT, NULL, "%s needs an image input, but its input is a flat vector of %d", qkd_layer_table[l->kind].name, s.c); return i; }
      if (l->units < 1) { qkd_fail(err, QKD_ERR_INPUT, NULL, "%s window must be >= 1", qkd_layer_table[l->kind].name); return i; }
      if (l->units > s.h || l->units > s.w) {
        qkd_fail(err, QKD_ERR_INPUT, NULL, "%s window %d is larger than its %dx%d input", qkd_layer_table[l->kind].name, l->units, s.h, s.w); return i;
      }
      s = (qkd_shape){s.c, s.h / l->units, s.w / l->units, 0};
      break;
    case QKD_LAYER_DENSE:
      if (l->units < 1) { qkd_fail(err, QKD_ERR_INPUT, NULL, "dense needs at least 1 unit"); return i; }
      if (!s.flat && !implicit_flatten) {
        qkd_fail(err, QKD_ERR_INPUT, NULL, "dense needs a flattened input, but its input is %dx%dx%d (add 'flatten' before it)", s.c, s.h, s.w); return i;
      }
      s = flat(l->units);
      break;
    case QKD_LAYER_FLATTEN: s = flat(qkd_shape_size(s)); break;
    case QKD_LAYER_DROPOUT:
      if (!(l->value >= 0.0 && l->value < 1.0)) { qkd_fail(err, QKD_ERR_INPUT, NULL, "dropout probability %g is outside [0, 1)", l->value); return i; }
      break;
    default: break; /* element-wise: shape unchanged */
    }
    if (out) out[i] = s;
  }
  if (result) *result = s;
  return -1;
}

/* trainable parameters (state = 0) or state values (state = 1) of a layer list */
static long count_values(const qkd_layer_spec *layers, int n, qkd_shape in, int implicit_flatten, int state) {
  qkd_shape s = in;
  long count = 0;
  for (int i = 0; i < n; i++) {
    const qkd_layer_spec *l = &layers[i];
    if (!state && l->kind == QKD_LAYER_CONV) count += (long)l->units * s.c * l->kernel * l->kernel + l->units;
    if (!state && l->kind == QKD_LAYER_DENSE) count += (long)l->units * qkd_shape_size(s) + l->units;
    if (l->kind == QKD_LAYER_BATCHNORM) count += 2L * s.c; /* gamma, beta / running mean, variance */
    qkd_shape next;
    if (qkd_net_shapes(l, 1, s, implicit_flatten, NULL, &next, NULL) >= 0) return -1;
    s = next;
  }
  return count;
}

long qkd_net_param_count(const qkd_layer_spec *layers, int n, qkd_shape in, int implicit_flatten) {
  return count_values(layers, n, in, implicit_flatten, 0);
}

long qkd_net_state_count(const qkd_layer_spec *layers, int n, qkd_shape in, int implicit_flatten) {
  return count_values(layers, n, in, implicit_flatten, 1);
}
