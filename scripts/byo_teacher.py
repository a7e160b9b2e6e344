#!/usr/bin/python3
"""scripts/byo_teacher.py — bring your own teacher (issue J; docs/python.md).

Trains in PyTorch a teacher qkd does not have — a small ResNet (residual blocks, batch norm,
global average pooling) — on Fashion-MNIST, and writes what examples/byo_teacher.qkd distils
into a 4-qubit student:
    runs/byo_teacher/fmnist/{x_train,y_train,x_test,y_test}.npy   the data set, as arrays
    runs/byo_teacher/resnet_train_logits.npy                      (60000, 10) float32
    runs/byo_teacher/resnet_test_logits.npy                       (10000, 10) float32
    runs/byo_teacher/resnet.json                                  its accuracy and recipe
Row i of each logits file is image i of its split, in file order (qkd selects the rows its
data-set options keep). Then:  ./build/qkdc run examples/byo_teacher.qkd

Usage: /usr/bin/python3 scripts/byo_teacher.py [--epochs 6] [--seed 1] [--out runs/byo_teacher]
       [--data DIR] (the Fashion-MNIST IDX files; default: data/fashion-mnist, then
       /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist)
Uses Debian's python3-torch and python3-numpy; reads the IDX files itself.
"""
import argparse, gzip, json, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    """An IDX file (raw or .gz) as a uint8 array."""
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            b = (gzip.open if p.endswith(".gz") else open)(p, "rb").read()
            nd = b[3]
            dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
            return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)
    sys.exit(f"byo_teacher.py: {path}[.gz]: missing (apt-get install dataset-fashion-mnist, or pass --data)")


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.skip(x))


class ResNet(nn.Module):
    """conv 16 -> blocks 16, 32/2, 64/2 -> global average pool -> dense 10 (about 0.2 M parameters)."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="runs/byo_teacher")
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    data = a.data or next((d for d in (os.path.join(root, "data/fashion-mnist"), "/usr/share/datasets/fashion-mnist")
                           if os.path.exists(os.path.join(d, "t10k-labels-idx1-ubyte"))
                           or os.path.exists(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))), "/usr/share/datasets/fashion-mnist")
    torch.manual_seed(a.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    xtr, ytr = idx(f"{data}/train-images-idx3-ubyte"), idx(f"{data}/train-labels-idx1-ubyte")
    xte, yte = idx(f"{data}/t10k-images-idx3-ubyte"), idx(f"{data}/t10k-labels-idx1-ubyte")
    os.makedirs(f"{a.out}/fmnist", exist_ok=True)
    for name, arr in (("x_train", xtr), ("y_train", ytr.astype(np.int64)), ("x_test", xte), ("y_test", yte.astype(np.int64))):
        np.save(f"{a.out}/fmnist/{name}.npy", arr)

    def tensor(x):  # the same scaling as qkd's `scale: unit`
        return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)

    Xtr, Ytr, Xte = tensor(xtr), torch.from_numpy(ytr.astype(np.int64)), tensor(xte)
    net = ResNet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    steps = a.epochs * ((len(Xtr) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    for epoch in range(a.epochs):
        net.train()
        perm = torch.randperm(len(Xtr), generator=g)
        total = 0.0
        for i in range(0, len(Xtr), 128):
            b = perm[i:i + 128]
            x = Xtr[b]
            x = torch.where(torch.rand(len(b), 1, 1, 1, generator=g) < 0.5, x, x.flip(3))  # random mirror
            loss = F.cross_entropy(net(x), Ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        print(f"byo_teacher: epoch {epoch + 1}/{a.epochs} loss {total / len(Xtr):.4f} ({time.time() - t0:.0f} s)", file=sys.stderr)

    net.eval()
    with torch.no_grad():
        logits = lambda X: torch.cat([net(X[i:i + 1000]) for i in range(0, len(X), 1000)]).numpy().astype(np.float32)
        ltr, lte = logits(Xtr), logits(Xte)
    acc = float((lte.argmax(1) == yte).mean())
    np.save(f"{a.out}/resnet_train_logits.npy", ltr)
    np.save(f"{a.out}/resnet_test_logits.npy", lte)
    info = {"teacher": "ResNet (PyTorch)", "params": sum(p.numel() for p in net.parameters()), "epochs": a.epochs,
            "seed": a.seed, "test_accuracy": acc, "train_accuracy": float((ltr.argmax(1) == ytr).mean()),
            "seconds": round(time.time() - t0, 1), "torch": torch.__version__, "data": data}
    json.dump(info, open(f"{a.out}/resnet.json", "w"), indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
