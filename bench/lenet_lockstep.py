#!/usr/bin/python3
"""bench/lenet_lockstep.py — qkd's LeNet-5 training step against PyTorch's from the same start.

For each seed: PyTorch draws LeNet-5's initial parameters (torch.manual_seed(seed)) and the batch
order of every epoch (torch.randperm, as ../shared/bench/ref_kd_torch.py does); both go to
teacher_bench (--init/--order/--losses), which trains qkd's net from exactly that start in exactly
that order. PyTorch then trains the same start in the same order twice: in float32 (the peer) and
in float64 (a yardstick: how far rounding alone moves a run). One JSON line per seed: the test
accuracy after every epoch for qkd, torch-f32 and torch-f64; the relative difference of the
first step's loss; the first step at which the losses differ by more than 1 % relative; and the
mean loss over the last epoch. A last line sums up the accuracy differences over seeds.

If qkd's step were a different function from PyTorch's (initialisation layout, Adam, the loss,
the pooling), the first losses would already differ and qkd-vs-f32 would part much earlier
than f32-vs-f64. If it is the same function, qkd and torch-f32 part only as rounding makes them
part, and no accuracy gap follows the start or the order.

With --native, each side draws its own start and order instead (teacher_bench --seed S against
../shared/bench/ref_lenet_torch.py --seed S): one JSON line per seed with both accuracies after
the last epoch, then the means, sample stds and the standard error of their difference. That
tells a gap in training from the luck of a few draws.

  /usr/bin/python3 bench/lenet_lockstep.py [--bin build/bench/teacher_bench] [--dataset fashion-mnist]
      [--seeds 1,2,3 | --seeds 1-20] [--epochs 3] [--threads 1] [--data ROOT] [--peer-dir ../shared/bench]
      [--native]
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import torch
import torch.nn.functional as F


def train(model, xtr, ytr, orders, bs, lr, xte, yte, R):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses, accs = [], []
    for perm in orders:
        perm = torch.from_numpy(perm.astype(np.int64))
        for i in range(0, len(xtr), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(); loss.backward(); opt.step()
            losses.append(loss.item())
        accs.append(R.evaluate(model, xte, yte))
    return np.array(losses), accs


def parted(a, b, tol=0.01):
    d = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
    over = np.nonzero(d > tol)[0]
    return int(over[0]) if len(over) else None


def native(a, root, seeds):
    q, t = [], []
    for seed in seeds:
        out = subprocess.run([a.bin, "--model", "lenet5", "--dataset", a.dataset, "--epochs", str(a.epochs),
                              "--batch", str(a.batch), "--lr", str(a.lr), "--threads", str(a.threads),
                              "--seed", str(seed)], check=True, capture_output=True, text=True).stdout
        qa = json.loads(out.strip().splitlines()[-1])[f"acc_epoch{a.epochs}"]
        out = subprocess.run([sys.executable, os.path.join(a.peer_dir, "ref_lenet_torch.py"), "--data", root,
                              "--dataset", a.dataset, "--epochs", str(a.epochs), "--threads", str(a.threads),
                              "--seed", str(seed)], check=True, capture_output=True, text=True).stdout
        ta = json.loads(out.strip().splitlines()[-1])[f"acc_epoch{a.epochs}"]
        q.append(100 * qa); t.append(100 * ta)
        print(json.dumps({"bench": "lenet_native", "dataset": a.dataset, "seed": seed, "epochs": a.epochs,
                          "acc_qkd": qa, "acc_torch": ta}), flush=True)
    q, t = np.array(q), np.array(t)
    summ = {"bench": "lenet_native", "dataset": a.dataset, "seeds": a.seeds, "summary": True,
            "qkd_mean": round(float(q.mean()), 3), "torch_mean": round(float(t.mean()), 3),
            "diff_points": round(float(q.mean() - t.mean()), 3)}
    if len(q) > 1:
        summ.update(qkd_std=round(float(q.std(ddof=1)), 3), torch_std=round(float(t.std(ddof=1)), 3),
                    diff_se=round(float(np.sqrt(q.var(ddof=1) / len(q) + t.var(ddof=1) / len(t))), 3))
    print(json.dumps(summ))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bench/teacher_bench")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None, help="root holding mnist/ and fashion-mnist/ (IDX files)")
    ap.add_argument("--native", action="store_true", help="each side its own draws (see above)")
    ap.add_argument("--peer-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
    a = ap.parse_args()
    sys.path.insert(0, a.peer_dir)
    import ref_kd_torch as R
    root = a.data
    if root is None:
        for r in os.environ.get("QKD_DATA", "").split(":") + ["data", "/usr/share/datasets"]:
            if r and os.path.isdir(os.path.join(r, a.dataset)):
                root = r
                break
    if "-" in a.seeds:
        lo, hi = a.seeds.split("-")
        seeds = list(range(int(lo), int(hi) + 1))
    else:
        seeds = [int(s) for s in a.seeds.split(",")]
    if a.native:
        return native(a, root, seeds)
    torch.set_num_threads(a.threads)
    xtr, ytr, xte, yte = R.load(root, a.dataset)
    n = len(xtr)
    diffs = {"qkd-f32": [], "f64-f32": []}
    tmp = tempfile.mkdtemp(prefix="qkd-lockstep-")
    for seed in seeds:
        torch.manual_seed(seed)
        net = R.LeNet5()
        init = np.concatenate([p.detach().numpy().ravel() for p in net.parameters()]).astype(np.float32)
        g = torch.Generator().manual_seed(seed)
        orders = np.stack([torch.randperm(n, generator=g).numpy() for _ in range(a.epochs)]).astype(np.int32)
        ip, op, lp = (os.path.join(tmp, f"{k}-{seed}.npy") for k in ("init", "order", "losses"))
        np.save(ip, init)
        np.save(op, orders)
        out = subprocess.run([a.bin, "--model", "lenet5", "--dataset", a.dataset, "--epochs", str(a.epochs),
                              "--batch", str(a.batch), "--lr", str(a.lr), "--threads", str(a.threads),
                              "--init", ip, "--order", op, "--losses", lp],
                             check=True, capture_output=True, text=True).stdout
        q = json.loads(out.strip().splitlines()[-1])
        ql = np.load(lp)
        l32, a32 = train(net, xtr, ytr, orders, a.batch, a.lr, xte, yte, R)
        net64 = R.LeNet5().double()
        with torch.no_grad():
            off = 0
            for p in net64.parameters():
                k = p.numel()
                p.copy_(torch.from_numpy(init[off:off + k].astype(np.float64)).view_as(p))
                off += k
        l64, a64 = train(net64, xtr.double(), ytr, orders, a.batch, a.lr, xte.double(), yte, R)
        qa = [q[f"acc_epoch{e + 1}"] for e in range(a.epochs)]
        spe = (n + a.batch - 1) // a.batch
        row = {"bench": "lenet_lockstep", "dataset": a.dataset, "seed": seed, "epochs": a.epochs, "steps": len(l32),
               "acc_qkd": qa, "acc_torch_f32": a32, "acc_torch_f64": a64,
               "first_loss_rel_diff_qkd_f32": abs(ql[0] - l32[0]) / l32[0],
               "first_loss_rel_diff_f64_f32": abs(l64[0] - l32[0]) / l32[0],
               "parted_at_qkd_f32": parted(ql, l32), "parted_at_f64_f32": parted(l64, l32),
               "last_epoch_loss_qkd": float(ql[-spe:].mean()), "last_epoch_loss_torch_f32": float(l32[-spe:].mean()),
               "last_epoch_loss_torch_f64": float(l64[-spe:].mean())}
        diffs["qkd-f32"].append(qa[-1] - a32[-1])
        diffs["f64-f32"].append(a64[-1] - a32[-1])
        print(json.dumps(row), flush=True)
    summ = {"bench": "lenet_lockstep", "dataset": a.dataset, "seeds": a.seeds, "summary": True}
    for k, v in diffs.items():
        v = np.array(v) * 100
        summ[f"last_acc_diff_points_{k}_mean"] = round(float(v.mean()), 3)
        summ[f"last_acc_diff_points_{k}_std"] = round(float(v.std(ddof=1)), 3) if len(v) > 1 else None
    print(json.dumps(summ))


if __name__ == "__main__":
    main()
