/* qkd_traj.h — Monte-Carlo trajectories: a noisy circuit whose channels are Pauli channels, run
 * as a noiseless circuit with one random Pauli per channel and sample, on any state-vector kernel
 * (the JIT, a built executable's, the interpreter).
 *
 * Owns: deciding which channels are Pauli channels (from the channel table's Kraus operators,
 * never from a channel's kind), the trajectory circuit, the draws, and the averaging and
 * read-out around the kernel.
 * Promises:
 *   - A channel is a Pauli channel when its χ matrix in the Pauli basis is diagonal: then
 *     ρ → Σ_P p_P P ρ P with p_P = χ_PP. depolarizing, bit_flip, phase_flip and phase_damping
 *     are (phase_damping(γ) is phase_flip((1 − √(1−γ))/2)); amplitude_damping is not, and a
 *     circuit carrying it is refused (kind INPUT): it needs the exact engine (qkd_dmk.h).
 *   - The trajectory circuit (t->circuit) has the noisy circuit's gates with a slot after each
 *     channel's position: RZ(π b) then RX(π a) on the channel's qubit, a and b ∈ {0, 1} two extra
 *     features per slot (I: 0 0, X: 1 0, Z: 0 1, Y: 1 1, equal to P up to a global phase). Its
 *     features are the noisy circuit's F, then 2 per slot (n_amplitudes keeps amplitude
 *     encoding on the first F); it has no channels and no read-out. A channel whose Pauli
 *     probabilities are all 0 gets no slot, so a circuit with every parameter 0 is exactly the
 *     noiseless circuit (and runs one trajectory per sample: t->trajectories is then 1).
 *   - qkd_traj_expand: T = t->trajectories rows per sample (row b·T + j is trajectory j of
 *     sample b): the sample's features, then its Pauli choices, drawn from qkd_rng keyed by
 *     (seed, first_sample + b), stream QKD_STREAM_TRAJ, counter j·slots + s. Results never depend
 *     on how a batch is split or on the thread count.
 *   - qkd_traj_reduce: each sample's outputs are the mean of its T rows (summed in row order),
 *     then the read-out confusion (qkd_channels.h): MEASURE_Z maps ⟨Z_q⟩ to the read-out value
 *     (affine), MEASURE_PROBS applies ⊗_q C_q. Each trajectory's outputs are an unbiased
 *     estimate of the exact ones (Tr(O Φ(ρ)) = Σ_P p_P Tr(O P ρ P) channel by channel).
 *   - qkd_traj_spread / qkd_traj_gather: the backward of reduce and of the feature copy: a
 *     sample's output cotangent goes through the read-out's transpose, divided by T, to each of
 *     its rows; d_features sums a sample's rows over its first F columns. The kernel's VJP on
 *     the rows is exact for each trajectory, so the gradient is unbiased in expectation.
 * Nothing here allocates per call; t owns its gates and slots. */
#ifndef QKD_TRAJ_H
#define QKD_TRAJ_H

#include "qkd_err.h"
#include "qkd_ir.h"

typedef struct {
  int channel;       /* index into the noisy circuit's channels */
  double px, py, pz; /* the probabilities of X, Y, Z (I: the rest) */
} qkd_traj_slot;

typedef struct {
  const qkd_ir_circuit *noisy; /* not owned */
  qkd_ir_circuit circuit;      /* the trajectory circuit (gates owned) */
  int trajectories;            /* T ≥ 1 per sample (1 when there is no slot) */
  int n_slots;
  qkd_traj_slot *slots;        /* owned, in the noisy circuit's channel order */
  int F, W, O;                 /* features of the noisy circuit, of the trajectory circuit, outputs */
} qkd_traj;

/* 0 if every channel of c is a Pauli channel, else -1 with err (INPUT) naming the first that is
 * not. p (may be NULL) receives its probabilities (X, Y, Z) when it is one. */
int qkd_traj_pauli(int chan_kind, double param, double p[3]);
int qkd_traj_supported(const qkd_ir_circuit *c, qkd_error *err);

/* Builds t for noisy circuit c (which must outlive t) with `trajectories` ≥ 1 per sample. 0, or
 * -1 with err (INPUT: a channel that is not a Pauli channel; MEMORY). */
int qkd_traj_init(qkd_traj *t, const qkd_ir_circuit *c, int trajectories, qkd_error *err);
void qkd_traj_free(qkd_traj *t);

/* features [batch][F] → rows [batch·T][W]. */
void qkd_traj_expand(const qkd_traj *t, const double *features, int batch, uint64_t seed, uint64_t first_sample,
                     double *rows);
/* row outputs [batch·T][O] → outputs [batch][O]. */
void qkd_traj_reduce(const qkd_traj *t, const double *row_outputs, int batch, double *outputs);
/* d_outputs [batch][O] → row cotangents [batch·T][O]. */
void qkd_traj_spread(const qkd_traj *t, const double *d_outputs, int batch, double *row_d_outputs);
/* row d_features [batch·T][W] → d_features [batch][F] (overwritten). */
void qkd_traj_gather(const qkd_traj *t, const double *row_d_features, int batch, double *d_features);

#endif
