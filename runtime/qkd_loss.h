/* qkd_loss.h — evaluation of a program's loss expression (qkd_model.h, qkd_loss) on one batch,
 * with its gradient with respect to the student's logits.
 * Terms (spec §4): ce = mean over the batch of softmax cross-entropy with the labels;
 * kl(T) = mean over the batch of Σ_c p_t,c · log(p_t,c / p_s,c) with p = softmax(logits / T)
 * (no T² factor: the program writes it); mse = mean over batch and classes of (s − t)².
 * Softmaxes use log-sum-exp. The expression combines terms with + − * / ^ and numbers; the
 * gradient flows through it exactly (reverse mode over the tiny expression tree). */
#ifndef QKD_LOSS_H
#define QKD_LOSS_H
#include "qkd_model.h"
#include "qkd_par.h"

/* student [B][C] logits, teacher [B][C] (NULL when the loss reads no teacher), labels [B] in
 * 0..C-1. Writes d_student [B][C] = dLoss/dstudent (may be NULL) and returns the loss; NaN (and
 * d_student untouched) if memory ran out or the expression has more than 256 terms.
 * Each term's softmaxes are computed once per batch, however often the expression uses its
 * value. The _par form does the per-row work (softmaxes, the gradient rows) on the pool's
 * threads (qkd_par_for; NULL: the caller's): the same bits for every pool and thread count. */
double qkd_loss_eval(const qkd_loss *loss, const double *student, const double *teacher, const int *labels, int B,
                     int C, double *d_student);
double qkd_loss_eval_par(const qkd_loss *loss, const double *student, const double *teacher, const int *labels,
                         int B, int C, double *d_student, qkd_par_pool *pool);
/* Whether the loss reads teacher logits. */
int qkd_loss_uses_teacher(const qkd_loss *loss);
/* Writes the loss in .qkd syntax ("ce + 8.1 * kl(T: 3)") into buf. */
void qkd_loss_format(const qkd_loss *loss, char *buf, size_t n);
#endif
