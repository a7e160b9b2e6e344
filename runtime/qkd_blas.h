/* qkd_blas.h — the one BLAS configuration, so that results are the same bits on every machine.
 *
 * OpenBLAS as Debian builds it (DYNAMIC_ARCH) chooses its kernels by the CPU it runs on, and
 * kernels for different CPU types sum in different orders: a conv teacher (im2col + sgemm)
 * trained on an AVX-512 machine differs in its last bits — and so in its accuracies — from the
 * same teacher trained on an AVX2 machine. OpenBLAS reads its kernel type once, from
 * OPENBLAS_CORETYPE, when the library is loaded, before main() runs; so qkd_blas_pin makes the
 * process start again with it set.
 *
 * Owns: the choice of OpenBLAS kernel type (QKD_BLAS_CORE), nothing else.
 * Promises:
 *  - qkd_blas_pin(argv): when OPENBLAS_CORETYPE is unset, OpenBLAS did not choose QKD_BLAS_CORE
 *    itself and the CPU has AVX2 and FMA (every machine qkd runs on here), sets it to
 *    QKD_BLAS_CORE and re-executes /proc/self/exe with the same arguments (once: the variable is
 *    set then; no exec where OpenBLAS chose those kernels anyway, e.g. under valgrind, which
 *    would not follow it); otherwise returns and changes nothing — a
 *    user's own OPENBLAS_CORETYPE is respected, and a CPU without AVX2 keeps OpenBLAS's choice
 *    (its results may then differ in the last bits). If the exec fails it returns, unpinned.
 *  - qkd_blas_core(): the kernel type OpenBLAS is using (results.json's provenance). */
#ifndef QKD_BLAS_H
#define QKD_BLAS_H

#define QKD_BLAS_CORE "Haswell"

void qkd_blas_pin(char **argv);
const char *qkd_blas_core(void);

#endif
