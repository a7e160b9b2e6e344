/* qkd_ir.h — the flat circuit IR: the one program that the reference interpreter (qsim.c),
 * the LLVM backend (compiler/jit*.c) and the trainer share.
 *
 * Owns: the angle sources, the circuit struct, its validation and text dump (the gates
 * themselves, their matrices and every fact about them are the gate table, qkd_gates.h).
 * Promises:
 *   - A circuit is a straight list of gates (loops unrolled, constants folded by lowering).
 *   - Qubit 0 is the most significant bit of a basis-state index: |q0 q1 … q(n-1)>, so qubit q
 *     has stride 2^(n-1-q) in the state vector.
 *   - Trainable parameters are numbered 0..n_params-1 in order of appearance; every PARAM index
 *     appears exactly once (parameters are never shared between gates).
 *   - An angle is `scale * source + offset`, source = params[index] (PARAM), features[index]
 *     (FEATURE), 1 or 0 as features[index] is non-zero or not (BIT) or nothing (CONST: the angle
 *     is `offset`). A BIT angle has no gradient: d_features gets nothing through it.
 *   - A gate acts on q[0..qubits) and reads angle[0..angles) of its row in qkd_gates.h (u3's
 *     angles in the order θ, φ, λ); controlled gates take (control, target).
 *   - Encoding: AMPLITUDE L2-normalises the amplitudes features[0..qkd_ir_amplitudes(c)) and
 *     zero-pads to 2^n (an all-zero vector becomes |0…0>); NONE starts at |0…0>. Gate encodings
 *     (angle, qubit, …) are ordinary gates with FEATURE angles at the front of the list. The
 *     amplitudes are all n_features unless n_amplitudes says fewer: the features past them are
 *     read by gates only (the Pauli choices of Monte-Carlo trajectories, qkd_traj.h).
 *   - Outputs per sample: MEASURE_Z → n numbers <Z_q>; MEASURE_PROBS → 2^n probabilities.
 *   - Noise (optional): n_channels one-qubit channels (qkd_channels.h) in `channels`, each
 *     with `after` = the number of gates applied before it: it acts between gates[after-1] and
 *     gates[after] (after = 0: on the encoded state, after = n_gates: after the last gate);
 *     `after` is non-decreasing along the list and channels of equal `after` act in list order.
 *     `readout` (NULL: perfect) holds one (p01, p10) per qubit: each measured bit is flipped
 *     classically, 0 → 1 with probability p01 and 1 → 0 with p10, independently per qubit, so
 *     MEASURE_PROBS reports the distribution of the bits as read and MEASURE_Z the mean of
 *     (−1)^(bit as read). Only the density-matrix engines (qkd_dmsim.h, qkd_dmk.h) run noise; the
 *     state-vector interpreter and the JIT run the gates alone (qkd_ir_noisy tells them apart).
 *     A circuit without channels and without readout is exactly the noiseless circuit: same
 *     validation, dump and qkd_ir_hash as before noise existed.
 *   - qkd_ir_validate reports the first broken invariant in a qkd_error (qkd_err.h): kind
 *     INTERNAL (a circuit that reaches it invalid is a bug of whoever built it), no path.
 * The gates, channels and readout arrays are owned by whoever built the circuit (the compiler's
 * arena, or a test). */
#ifndef QKD_IR_H
#define QKD_IR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qkd_channels.h"
#include "qkd_gates.h"

#define QKD_MAX_QUBITS 20

typedef enum {
  QKD_ANGLE_NONE = 0, /* the gate has no angle */
  QKD_ANGLE_CONST,    /* offset */
  QKD_ANGLE_PARAM,    /* scale * params[index] + offset */
  QKD_ANGLE_FEATURE,  /* scale * features[index] + offset */
  QKD_ANGLE_BIT       /* scale * (features[index] != 0) + offset: a per-sample choice between two
                         angles (trajectories' Pauli slots, qkd_traj.h); never differentiated */
} qkd_angle_kind;

typedef struct {
  qkd_angle_kind kind;
  int index;
  double scale;
  double offset;
} qkd_angle;

typedef struct {
  qkd_gate_kind kind;
  int q[2];        /* q[0] (control for controlled gates) and q[1] (target); q[1] unused for 1-qubit */
  qkd_angle angle[QKD_GATE_MAX_ANGLES]; /* kind NONE iff slot >= the row's angle count */
  int line;        /* source line of the gate call, for messages (0 if none) */
} qkd_ir_gate;

/* A noise channel on one qubit: kind a quantum channel of qkd_channels.h (not READOUT), p its
 * parameter (in the row's range), acting after `after` gates (0..n_gates). */
typedef struct {
  qkd_chan_kind kind;
  int qubit;
  double p;
  int after;
} qkd_ir_channel;

/* The read-out confusion of one qubit's measured bit: P(read 1 | 0), P(read 0 | 1), in [0, 1]. */
typedef struct {
  double p01, p10;
} qkd_ir_readout;

typedef enum { QKD_ENCODE_NONE = 0, QKD_ENCODE_AMPLITUDE } qkd_encode_kind;
typedef enum { QKD_MEASURE_Z = 0, QKD_MEASURE_PROBS } qkd_measure_kind;
typedef enum { QKD_PREC_F64 = 0, QKD_PREC_F32 } qkd_precision;

typedef struct {
  const char *name;          /* the student (or circuit) name, for dumps and symbol names */
  int n_qubits;              /* 1..QKD_MAX_QUBITS */
  int n_params;              /* trainable parameters */
  int n_features;            /* features read per sample: AMPLITUDE → the amplitude count (≤ 2^n);
                                otherwise 1 + the largest FEATURE index (0 if none) */
  int n_amplitudes;          /* AMPLITUDE: 0 (every feature is an amplitude) or the amplitude
                                count, 1..n_features; must be 0 for other encodings */
  qkd_encode_kind encode;
  qkd_measure_kind measure;
  int shots;                 /* 0 = exact outputs; N > 0 = sampled from N measurements */
  qkd_precision precision;
  int n_gates;
  int n_encoding_gates;      /* gates[0..n_encoding_gates) came from a gate encoding */
  qkd_ir_gate *gates;
  int n_channels;            /* noise channels (0: none) */
  qkd_ir_channel *channels;  /* [n_channels], `after` non-decreasing */
  qkd_ir_readout *readout;   /* NULL: perfect read-out; else [n_qubits] */
  int trajectories;          /* a noisy circuit's engine: 0 = exact (density matrix, qkd_dmk.h),
                                N > 0 = N Monte-Carlo trajectories per sample (qkd_traj.h);
                                0 for a noiseless circuit */
} qkd_ir_circuit;

/* Number of outputs per sample: n (Z) or 2^n (PROBS). */
/* AMPLITUDE: the number of leading features that are amplitudes (n_amplitudes, or n_features
 * when it is 0); 0 for other encodings. */
int qkd_ir_amplitudes(const qkd_ir_circuit *c);
int qkd_ir_outputs(const qkd_ir_circuit *c);
/* The value of one angle for one sample (0 for NONE). */
double qkd_ir_angle(const qkd_angle *a, const double *params, const double *features);
/* The angles of gate g for one sample into a[QKD_GATE_MAX_ANGLES] (0 past its angle count). */
void qkd_ir_gate_angles(const qkd_ir_gate *g, const double *params, const double *features, double *a);
/* 1 if the circuit carries noise: channels or a read-out confusion (even one of zeros). */
int qkd_ir_noisy(const qkd_ir_circuit *c);
/* Checks every invariant above; on failure fills err (kind INTERNAL, no path) and returns -1,
 * else 0. */
int qkd_ir_validate(const qkd_ir_circuit *c, qkd_error *err);
/* A 64-bit fingerprint of every field that shapes a circuit's kernels (precision aside); noise
 * enters it only when the circuit has some (qkd_ir_noisy), so noiseless fingerprints are stable. */
uint64_t qkd_ir_hash(const qkd_ir_circuit *c);
/* Text dump, one gate per line, each channel on its own line where it acts, then the read-out
 * (qkdc check --dump-ir). */
void qkd_ir_dump(const qkd_ir_circuit *c, FILE *out);

#endif
