/* qkd_dmk.h — the fast exact density-matrix kernel ("dmk"): what the trainer runs for noisy
 * circuits. Same promises as the reference engine (qkd_dmsim.h: encoding, gates, channels,
 * read-out, outputs, VJP, shots), which the tests hold it against; this one is built for speed:
 *   - a plan made once per kernel: every gate and channel as a small operator on its qubits;
 *     gates whose angles are fixed or PARAM get their matrices once per kernel call, FEATURE
 *     angles per sample;
 *   - QKD_DMK_LANES samples side by side (structure of arrays: every matrix entry is a row of
 *     lanes), so every loop is a fixed-width vector loop whatever the qubit;
 *   - the VJP keeps ρ after every gate with an angle (no uncomputing, no restoring) and walks
 *     the cotangent backwards through the dual maps once.
 * Memory per thread: (3 + G) · 16 · 4^n · QKD_DMK_LANES bytes, G the gates with PARAM or FEATURE
 * angles (allocated per call); when that exceeds QKD_DMK_MEM MiB (default 1024) the ops are cut
 * into about √G segments (ρ kept at each start, each segment re-run once more before its
 * backward walk); QKD_DMK_SEGMENT=k forces segments of k such ops (for the tests).
 * n_qubits above QKD_DM_MAX_QUBITS is refused. Results equal the reference's to rounding, and
 * are the same bits for every thread count (qkd_par's fixed chunks are multiples of the lanes)
 * and every instruction set the hot loops are cloned for. */
#ifndef QKD_DMK_H
#define QKD_DMK_H

#include "qkd_kernel.h"

#define QKD_DMK_LANES 8

/* The fast density-matrix kernel for `ir` into *k (engine "dmk"; ir must outlive it; free with
 * qkd_dmk_free). 0, or -1 with err (INPUT: too many qubits; MEMORY). */
int qkd_dmk_kernel(const qkd_ir_circuit *ir, qkd_kernel *k, qkd_error *err);
void qkd_dmk_free(qkd_kernel *k);

#endif
