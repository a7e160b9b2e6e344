#!/usr/bin/python3
"""bench/ref_dm_torch.py — the PyTorch peer of bench/noise_bench.c: a plain batched density-matrix
simulator of the noisy benchmark workload W(n, L, B), forward + autograd gradient, timed in-process.

Owns: nothing but its own output files. Promises:
  * The circuit is circgen_hea's W(n, L) (tests/unit/circgen.c) with qkd's noise: amplitude
    encoding ρ0 = ψψᵀ, ψ = x/|x|; L layers of [RY(θ) then RZ(θ) on every qubit q = 0..n-1, then
    CNOT q → (q+1) mod n for q = 0..n-1]; parameter index (l·n + q)·2 + (0 for RY, 1 for RZ);
    after EVERY gate, depolarizing(p) on each qubit it touches (control, then target), with
    PennyLane's Kraus operators as in runtime/qkd_channels.h: √(1−p) I, √(p/3) X, √(p/3) Y,
    √(p/3) Z. Qubit 0 is the most significant bit. Outputs: diag(ρ) (real), 2^n per sample.
  * ρ is a (B, 2^n, 2^n) complex128 tensor, viewed as (B, 2,…,2, 2,…,2) (n row axes, then n
    column axes); a gate or Kraus operator M is contracted on its qubits' row axes and conj(M) on
    their column axes (2×2, or 4×4 for CNOT), TorchQuantum-style; a channel is the sum over its
    Kraus operators. Nothing is fused, nothing is hand-differentiated: the gradient is autograd's
    of the scalar loss Σ outputs · d_outputs w.r.t. the 2nL parameters.
  * One repetition = forward + backward over the batch, processed in chunks of --chunk samples
    (each chunk its own autograd graph, gradients accumulated) so memory stays bounded (when one
    sample's graph alone exceeds --mem-mb, each layer is checkpointed: torch.utils.checkpoint);
    the median of --iters repetitions after --warmup untimed ones (default 1) is reported.
  * Data: with --in DIR it reads DIR/params.npy [2nL], DIR/features.npy [≥B][2^n] and
    DIR/d_outputs.npy [≥B][2^n] (float64, written by bench/noise_bench.c from qkd's own RNG) and
    uses the first B rows; without it, its own data from --seed (uniform features, normalised;
    params uniform [0, 2π); d_outputs uniform [−1, 1)).
  * With --out DIR it writes DIR/peer_outputs.npy [B][2^n] (the outputs of the last timed
    repetition) and DIR/peer_d_params.npy [2nL] (their gradient over the B samples), and with
    --check K > 0 also DIR/peer_check_d_params.npy [2nL]: the gradient over the first K samples
    alone (one more, untimed, pass when K < B), to hold against an engine run on K samples.
  * Stdout: one JSON object: peer, qubits, layers, batch, p, threads, chunk, checkpoint, iters,
    warmup, median_s, samples_per_s, loss (Σ outputs·d_outputs), checksums (outputs_sq =
    Σ outputs², d_params_sum, d_params_abs = Σ|d_params|), peak_rss_mb. Exit 0, or nonzero on bad
    arguments or data (message on stderr).
Needs only torch (Debian python3-torch) and numpy; run with /usr/bin/python3.
"""
import argparse, functools, json, math, os, resource, sys, time

import numpy as np
import torch
import torch.utils.checkpoint

CDT = torch.complex128


def contract(rho, m, axes):
    """rho (B, 2,…,2): contract m (2×2, or 4×4 on two axes) with rho on `axes`, m's column index
    summed against rho's axis, the result's axis back in place."""
    k = len(axes)
    mt = m.reshape((2,) * (2 * k))
    out = torch.tensordot(mt, rho, dims=(list(range(k, 2 * k)), list(axes)))
    return torch.movedim(out, tuple(range(k)), tuple(axes))


def apply_op(rho, n, m, qubits):
    """ρ → M ρ M†: M on the row axes of `qubits`, conj(M) on their column axes."""
    rows = [1 + q for q in qubits]
    cols = [1 + n + q for q in qubits]
    return contract(contract(rho, m, rows), m.conj(), cols)


def apply_channel(rho, n, kraus, q):
    """ρ → Σ_k K_k ρ K_k† on qubit q."""
    out = None
    for K in kraus:
        t = apply_op(rho, n, K, [q])
        out = t if out is None else out + t
    return out


def ry(theta):
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    return torch.stack([torch.stack([c, -s]), torch.stack([s, c])]).to(CDT)


def rz(theta):
    e = torch.exp(-0.5j * theta.to(CDT))
    z = torch.zeros((), dtype=CDT)
    return torch.stack([torch.stack([e, z]), torch.stack([z, e.conj()])])


CNOT = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=CDT)


def depolarizing_kraus(p):
    """qkd_channels.h's depolarizing(p) row (PennyLane's DepolarizingChannel)."""
    a, b = math.sqrt(1.0 - p), math.sqrt(p / 3.0)
    I = torch.tensor([[1, 0], [0, 1]], dtype=CDT)
    X = torch.tensor([[0, 1], [1, 0]], dtype=CDT)
    Y = torch.tensor([[0, -1j], [1j, 0]], dtype=CDT)
    Z = torch.tensor([[1, 0], [0, -1]], dtype=CDT)
    return [a * I, b * X, b * Y, b * Z]


def layer(rho, params, n, l, kraus):
    """Layer l of W(n, L) with its channels."""
    for q in range(n):
        for r, gate in ((0, ry), (1, rz)):
            rho = apply_op(rho, n, gate(params[(l * n + q) * 2 + r]), [q])
            rho = apply_channel(rho, n, kraus, q)
    for q in range(n if n > 1 else 0):
        c, t = q, (q + 1) % n
        rho = apply_op(rho, n, CNOT, [c, t])
        rho = apply_channel(rho, n, kraus, c)
        rho = apply_channel(rho, n, kraus, t)
    return rho


def forward(x, params, n, L, kraus, ckpt):
    """x (B, 2^n) float64 features → diag(ρ) (B, 2^n) float64. ckpt: recompute each layer in the
    backward pass (torch.utils.checkpoint) instead of keeping its graph."""
    B, dim = x.shape[0], 1 << n
    psi = x / x.norm(dim=1, keepdim=True)
    rho = (psi[:, :, None] * psi[:, None, :]).to(CDT).reshape((B,) + (2,) * (2 * n))
    for l in range(L):
        if ckpt:
            f = functools.partial(layer, n=n, l=l, kraus=kraus)
            rho = torch.utils.checkpoint.checkpoint(f, rho, params, preserve_rng_state=False)
        else:
            rho = layer(rho, params, n, l, kraus)
    return rho.reshape(B, dim, dim).diagonal(dim1=1, dim2=2).real


def pass_(x, d, params, n, L, kraus, chunk, ckpt):
    """forward + backward over x in chunks; returns (outputs, loss); params.grad accumulates."""
    outs, loss = [], 0.0
    for s in range(0, x.shape[0], chunk):
        o = forward(x[s:s + chunk], params, n, L, kraus, ckpt)
        f = (o * d[s:s + chunk]).sum()
        f.backward()
        outs.append(o.detach())
        loss += float(f)
    return torch.cat(outs), loss


def load(path, shape_tail, rows=None):
    a = np.load(path)
    if a.dtype != np.float64 or a.shape[1:] != shape_tail or (rows is not None and a.shape[0] < rows):
        sys.exit(f"ref_dm_torch.py: {path}: shape {a.shape} dtype {a.dtype}, expected [≥{rows}]{shape_tail} float64")
    return torch.from_numpy(a if rows is None else a[:rows].copy())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qubits", type=int, default=4)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--batch", type=int, default=0, help="samples (default: all rows of --in, else 100)")
    ap.add_argument("--p", type=float, default=0.01, help="depolarizing parameter (0: identity channels, still applied)")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=0, help="samples per autograd pass (default: by --mem-mb)")
    ap.add_argument("--mem-mb", type=float, default=1500, help="memory budget of one chunk's graph")
    ap.add_argument("--checkpoint", choices=("auto", "on", "off"), default="auto",
                    help="torch.utils.checkpoint per layer (auto: when one sample's graph exceeds --mem-mb)")
    ap.add_argument("--in", dest="inp", default=None, help="directory with params/features/d_outputs.npy")
    ap.add_argument("--out", default=None, help="directory for peer_*.npy")
    ap.add_argument("--check", type=int, default=0, help="also the gradient over the first K samples")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    n, L = a.qubits, a.layers
    dim, npar = 1 << n, 2 * n * L
    if not (1 <= n <= 12 and L >= 1 and a.iters >= 1 and 0.0 <= a.p <= 1.0):
        sys.exit("ref_dm_torch.py: bad --qubits/--layers/--iters/--p")
    torch.set_num_threads(max(1, a.threads))
    if a.inp:
        th = load(os.path.join(a.inp, "params.npy"), ())
        if th.shape != (npar,):
            sys.exit(f"ref_dm_torch.py: params.npy has shape {tuple(th.shape)}, expected ({npar},)")
        rows = a.batch if a.batch > 0 else None
        x = load(os.path.join(a.inp, "features.npy"), (dim,), rows)
        d = load(os.path.join(a.inp, "d_outputs.npy"), (dim,), x.shape[0])
    else:
        g = torch.Generator().manual_seed(a.seed)
        B = a.batch if a.batch > 0 else 100
        x = torch.rand(B, dim, dtype=torch.float64, generator=g)
        x = x / x.norm(dim=1, keepdim=True)
        th = torch.rand(npar, dtype=torch.float64, generator=g) * 2 * math.pi
        d = torch.rand(B, dim, dtype=torch.float64, generator=g) * 2 - 1
    B = x.shape[0]
    # autograd keeps ~2.5 ρ-sized tensors per contraction (measured, torch 1.13); a layer has 38n
    # of them (2n gates × (2 + 4·2) + n CNOTs × (2 + 2·4·2)). If one sample's whole graph exceeds
    # the budget, layers are checkpointed: then ρ at every layer boundary plus one layer's graph.
    rho_b = 16.0 * dim * dim
    layer_b = rho_b * 2.5 * 38 * n
    ckpt = a.checkpoint == "on" or (a.checkpoint == "auto" and layer_b * L > a.mem_mb * 2**20)
    per_sample = (rho_b * (L + 2) + layer_b) if ckpt else layer_b * L
    chunk = a.chunk if a.chunk > 0 else max(1, min(B, int(a.mem_mb * 2**20 / per_sample)))
    kraus = depolarizing_kraus(a.p)
    params = th.clone().requires_grad_()
    times = []
    for it in range(max(0, a.warmup) + a.iters):
        t0 = time.perf_counter()
        params.grad = None
        out, loss = pass_(x, d, params, n, L, kraus, chunk, ckpt)
        t1 = time.perf_counter()
        if it >= a.warmup:
            times.append(t1 - t0)
    grad = params.grad.detach().clone()
    times.sort()
    med = times[len(times) // 2]
    if a.out:
        np.save(os.path.join(a.out, "peer_outputs.npy"), out.numpy())
        np.save(os.path.join(a.out, "peer_d_params.npy"), grad.numpy())
        if a.check > 0:
            K = min(a.check, B)
            if K < B:
                params.grad = None
                pass_(x[:K], d[:K], params, n, L, kraus, chunk, ckpt)
            gk = params.grad.detach() if K < B else grad
            np.save(os.path.join(a.out, "peer_check_d_params.npy"), gk.numpy())
    print(json.dumps({"peer": "torch-dm", "qubits": n, "layers": L, "batch": B, "p": a.p,
                      "threads": a.threads, "chunk": chunk, "checkpoint": ckpt, "iters": a.iters,
                      "warmup": a.warmup, "median_s": med,
                      "samples_per_s": B / med, "loss": loss,
                      "outputs_sq": float((out * out).sum()), "d_params_sum": float(grad.sum()),
                      "d_params_abs": float(grad.abs().sum()),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
