/* test_rt_loss.c — loss expressions against hand-computed values, and their gradients against
 * central finite differences. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "qkd_loss.h"
#include "testutil.h"

static qkd_loss N(double v) { return (qkd_loss){QKD_LOSS_NUM, v, NULL, NULL}; }

int main(void) {
  /* B = 2, C = 3 */
  double s[6] = {1.0, 2.0, 0.5, -1.0, 0.0, 3.0};
  double t[6] = {0.2, 1.5, -0.3, 0.0, 0.5, 2.0};
  int y[2] = {1, 2};
  qkd_loss ce = {QKD_LOSS_CE, 0, NULL, NULL}, mse = {QKD_LOSS_MSE, 0, NULL, NULL};
  qkd_loss kl3 = {QKD_LOSS_KL, 3, NULL, NULL};

  /* ce by hand: -log softmax */
  double ce0 = -(2.0 - log(exp(1.0) + exp(2.0) + exp(0.5)));
  double ce1 = -(3.0 - log(exp(-1.0) + exp(0.0) + exp(3.0)));
  CHECK_NEAR(qkd_loss_eval(&ce, s, NULL, y, 2, 3, NULL), (ce0 + ce1) / 2, 1e-12);
  /* mse by hand */
  double m = 0;
  for (int i = 0; i < 6; i++) m += (s[i] - t[i]) * (s[i] - t[i]);
  CHECK_NEAR(qkd_loss_eval(&mse, s, t, y, 2, 3, NULL), m / 6, 1e-12);
  /* kl by hand with T = 3 */
  double kl = 0;
  for (int b = 0; b < 2; b++) {
    double zs = 0, zt = 0;
    for (int c = 0; c < 3; c++) zs += exp(s[b * 3 + c] / 3), zt += exp(t[b * 3 + c] / 3);
    for (int c = 0; c < 3; c++) {
      double ps = exp(s[b * 3 + c] / 3) / zs, pt = exp(t[b * 3 + c] / 3) / zt;
      kl += pt * log(pt / ps);
    }
  }
  CHECK_NEAR(qkd_loss_eval(&kl3, s, t, y, 2, 3, NULL), kl / 2, 1e-12);
  CHECK(kl > 0);

  /* kd(T: 3, alpha: 0.9) = (1 - 0.9) * ce + 0.9 * 3^2 * kl(T: 3), built as sema folds it */
  qkd_loss a = N(0.1), b = N(8.1);
  qkd_loss l1 = {QKD_LOSS_MUL, 0, &a, &ce}, l2 = {QKD_LOSS_MUL, 0, &b, &kl3};
  qkd_loss kd = {QKD_LOSS_ADD, 0, &l1, &l2};
  CHECK_NEAR(qkd_loss_eval(&kd, s, t, y, 2, 3, NULL), 0.1 * (ce0 + ce1) / 2 + 8.1 * kl / 2, 1e-12);
  char buf[128];
  qkd_loss_format(&kd, buf, sizeof buf);
  CHECK(strcmp(buf, "((0.1 * ce) + (8.1 * kl(T: 3)))") == 0);

  /* a loss with every operator: (ce - mse / 2)^2 * -kl(T: 2) */
  qkd_loss two = N(2), kl2 = {QKD_LOSS_KL, 2, NULL, NULL};
  qkd_loss div = {QKD_LOSS_DIV, 0, &mse, &two}, sub = {QKD_LOSS_SUB, 0, &ce, &div};
  qkd_loss pw = {QKD_LOSS_POW, 0, &sub, &two}, neg = {QKD_LOSS_NEG, 0, &kl2, NULL};
  qkd_loss all = {QKD_LOSS_MUL, 0, &pw, &neg};
  const qkd_loss *losses[] = {&ce, &mse, &kl3, &kd, &all};
  for (size_t k = 0; k < sizeof losses / sizeof losses[0]; k++) {
    double d[6], sp[6];
    qkd_loss_eval(losses[k], s, t, y, 2, 3, d);
    for (int i = 0; i < 6; i++) {
      double h = 1e-5;
      memcpy(sp, s, sizeof sp);
      sp[i] += h;
      double up = qkd_loss_eval(losses[k], sp, t, y, 2, 3, NULL);
      sp[i] -= 2 * h;
      double dn = qkd_loss_eval(losses[k], sp, t, y, 2, 3, NULL);
      CHECK_NEAR(d[i], (up - dn) / (2 * h), 1e-7);
    }
  }
  CHECK(qkd_loss_uses_teacher(&kd) && !qkd_loss_uses_teacher(&ce));

  /* a node the expression shares (a DAG): ce + ce is twice ce, value and gradient */
  qkd_loss twice = {QKD_LOSS_ADD, 0, &ce, &ce};
  double d1[6], d2[6];
  CHECK_NEAR(qkd_loss_eval(&twice, s, t, y, 2, 3, d2), 2 * qkd_loss_eval(&ce, s, t, y, 2, 3, d1), 1e-15);
  for (int i = 0; i < 6; i++) CHECK_NEAR(d2[i], 2 * d1[i], 1e-15);

  /* the rows on a pool: the same bits as on the caller's thread, for every thread count and a
   * batch that is not a whole number of chunks */
  enum { BB = 333, CC = 10 };
  static double S[BB * CC], Tt[BB * CC], D0[BB * CC], D1[BB * CC];
  static int Y[BB];
  uint64_t r = 12345;
  for (int i = 0; i < BB * CC; i++) {
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    S[i] = (double)(r >> 11) / 9007199254740992.0 * 8 - 4;
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    Tt[i] = (double)(r >> 11) / 9007199254740992.0 * 8 - 4;
  }
  for (int b = 0; b < BB; b++) Y[b] = (b * 7) % CC;
  for (size_t k = 0; k < sizeof losses / sizeof losses[0]; k++) {
    double v0 = qkd_loss_eval_par(losses[k], S, Tt, Y, BB, CC, D0, NULL);
    CHECK(isfinite(v0));
    for (int threads = 1; threads <= 3; threads++) {
      qkd_par_pool *pool = qkd_par_create(threads);
      CHECK(pool != NULL);
      if (!pool) continue;
      double v1 = qkd_loss_eval_par(losses[k], S, Tt, Y, BB, CC, D1, pool);
      CHECK(memcmp(&v0, &v1, sizeof v0) == 0);
      CHECK(memcmp(D0, D1, sizeof D0) == 0);
      qkd_par_destroy(pool);
    }
  }
  return test_done("test_rt_loss");
}
