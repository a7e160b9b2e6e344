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
 *   - Each trajectory draws one Pauli per channel (with the channel's probabilities) and is the
 *     circuit with those Paulis applied: an unbiased estimate of the noisy outputs. The Paulis are
 *     not applied where they are drawn: each is carried forward (its "frame", x and z bits per
 *     qubit, linear over GF(2) in the draws) through every Clifford gate (a gate with no angle
 *     or constant angles that maps every Pauli to a Pauli: CNOT, CZ, SWAP, H, X, S, …, decided
 *     from the gate table's matrix, not the gate's kind) by its conjugation map, and applied as
 *     a slot right before the next non-Clifford gate on that qubit, all the Paulis carried there
 *     merged into one (P·Q ∝ the Pauli of XOR'd bits: every sign is a global phase). A slot is
 *     RZ(π b) then RX(π a) (either left out where its bit is never set), X^a Z^b up to a global
 *     phase, with a and b extra features read by BIT angles (qkd_ir.h: the engines select
 *     between the two angles, no sin/cos, no gradient). Before the measurement, z bits change
 *     no outcome and are dropped; x bits become a last slot. So the slots fuse into the gates'
 *     passes instead of adding their own.
 *   - The trajectory circuit (t->circuit) has the noisy circuit's gates with those slots. Its
 *     features are the noisy circuit's F, then one per slot bit (n_amplitudes keeps amplitude
 *     encoding on the first F); it has no channels and no read-out. A channel whose Pauli
 *     probabilities are all 0 is never drawn, so a circuit with every parameter 0 is exactly the
 *     noiseless circuit (and runs one trajectory per sample: t->trajectories is then 1).
 *   - qkd_traj_expand: T = t->trajectories rows per sample (row b·T + j is trajectory j of
 *     sample b): the sample's features, then its slot bits, from the Paulis of the drawn
 *     channels (t->draws) chosen with qkd_rng keyed by (seed, first_sample + b), stream
 *     QKD_STREAM_TRAJ, counter j·draws + d. Results never depend on how a batch is split or on
 *     the thread count.
 *   - qkd_traj_reduce: each sample's outputs are the mean of its T rows (summed in row order),
 *     then the read-out confusion (qkd_channels.h): MEASURE_Z maps ⟨Z_q⟩ to the read-out value
 *     (affine), MEASURE_PROBS applies ⊗_q C_q. Each trajectory's outputs are an unbiased
 *     estimate of the exact ones (Tr(O Φ(ρ)) = Σ_P p_P Tr(O P ρ P) channel by channel).
 *   - Shots: with c->shots = S > 0 the rows run without shots and measure the 2^n probabilities
 *     (t->RO of them); qkd_traj_reduce averages a sample's T rows, applies the read-out ⊗_q C_q
 *     and draws S shots from that read-bit distribution (qkd_kernel_sample_f64, keyed as the
 *     noiseless kernel's shots), so a sample sees S shots whatever T is, with read-out on each.
 *     The expected sampled outputs are the reduce's exact ones.
 *   - qkd_traj_spread / qkd_traj_gather: the backward of reduce and of the feature copy: a
 *     sample's output cotangent goes through the read-out's transpose (with shots: the diagonal
 *     of the observable it weighs, qkd_dm_observable), divided by T, to each of its rows; the
 *     gradient is that of the exact (expected) outputs, as every kernel's with shots;
 *     d_features sums a sample's rows over its first F columns. The kernel's VJP on the rows is
 *     exact for each trajectory, so the gradient is unbiased in expectation.
 * Nothing here allocates per call; t owns its gates, draws and bits. One t is used by one thread
 * at a time (qkd_traj_expand writes t->scratch, qkd_traj_reduce t->probs). */
#ifndef QKD_TRAJ_H
#define QKD_TRAJ_H

#include "qkd_err.h"
#include "qkd_ir.h"

typedef struct {
  int channel;       /* index into the noisy circuit's channels */
  double px, py, pz; /* the probabilities of X, Y, Z (I: the rest) */
} qkd_traj_draw;

/* One slot bit: a feature of the trajectory circuit = XOR of draw bits (2d: draw d's x, 2d + 1:
 * its z). */
typedef struct {
  int feature;
  int n;
  const int *src; /* n draw bits (into t->pool) */
} qkd_traj_bit;

typedef struct {
  const qkd_ir_circuit *noisy; /* not owned */
  qkd_ir_circuit circuit;      /* the trajectory circuit (gates owned) */
  int trajectories;            /* T ≥ 1 per sample (1 when nothing is drawn) */
  int n_draws;
  qkd_traj_draw *draws;        /* owned: the channels with a non-identity Pauli, in order */
  int n_bits;
  qkd_traj_bit *bits;          /* owned */
  int *pool;                   /* owned: the bits' sources */
  int F, W, O;                 /* features of the noisy circuit, of the trajectory circuit, outputs */
  int RO;                      /* outputs of a row: O, or 2^n when the noisy circuit has shots */
  unsigned char *scratch;      /* owned: qkd_traj_expand's draws, QKD_TRAJ_SLICES × (2 draws + 1) (so it is not reentrant on one t) */
  double *probs;               /* owned: qkd_traj_reduce's mean distribution [2^n] with shots, else NULL */
} qkd_traj;

/* 0 if every channel of c is a Pauli channel, else -1 with err (INPUT) naming the first that is
 * not. p (may be NULL) receives its probabilities (X, Y, Z) when it is one. */
int qkd_traj_pauli(int chan_kind, double param, double p[3]);
int qkd_traj_supported(const qkd_ir_circuit *c, qkd_error *err);

/* Builds t for noisy circuit c (which must outlive t) with `trajectories` ≥ 1 per sample. 0, or
 * -1 with err (INPUT: a channel that is not a Pauli channel; MEMORY). */
int qkd_traj_init(qkd_traj *t, const qkd_ir_circuit *c, int trajectories, qkd_error *err);
void qkd_traj_free(qkd_traj *t);

/* features [batch][F] → rows [batch·T][W], on the pool's threads (NULL: the caller's), in at
 * most QKD_TRAJ_SLICES contiguous slices of samples: every row is a function of its sample's
 * key alone, so the bits do not depend on the pool. */
#define QKD_TRAJ_SLICES 16
typedef struct qkd_par_pool qkd_par_pool;
void qkd_traj_expand(const qkd_traj *t, qkd_par_pool *pool, const double *features, int batch, uint64_t seed,
                     uint64_t first_sample, double *rows);
/* row outputs [batch·T][RO] → outputs [batch][O]; with shots, sample b's are drawn with
 * qkd_rng keyed by (seed, first_sample + b), as a noiseless kernel's. */
void qkd_traj_reduce(const qkd_traj *t, const double *row_outputs, int batch, uint64_t seed, uint64_t first_sample,
                     double *outputs);
/* d_outputs [batch][O] → row cotangents [batch·T][RO]. */
void qkd_traj_spread(const qkd_traj *t, const double *d_outputs, int batch, double *row_d_outputs);
/* row d_features [batch·T][W] → d_features [batch][F] (overwritten). */
void qkd_traj_gather(const qkd_traj *t, const double *row_d_features, int batch, double *d_features);

#endif
