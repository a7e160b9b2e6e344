#!/usr/bin/env bash
# tests/interop/npy.sh NPY_TOOL — runtime/npy.c against NumPy (python3-numpy, the independent side):
#  1. every dtype (|u1 <i4 <i8 <f4 <f8) x format version (1.0, 2.0, 3.0) x shapes (0-d, 1-d, 3-d,
#     empty) written by NumPy and read by qkd, element for element; headers read alone;
#  2. numpy.savez (stored) and savez_compressed (deflated) members, a member larger than zlib's
#     window buffer, and an archive with 70,000 members (zip64 end of central directory);
#  3. qkd's own .npy and .npz (stored and deflated) read by NumPy, against the pattern;
#  4. bad files: truncated, wrong magic, unsupported and big-endian dtypes, object arrays,
#     Fortran order, a header over 10,000 bytes, a corrupt member (CRC), a missing member, a
#     truncated archive: exit 1 with the file named, never a crash.
set -uo pipefail
tool=$1
py=/usr/bin/python3
$py -c "import numpy" 2>/dev/null || { echo "npy.sh: python3-numpy is missing (apt-get install python3-numpy)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$py - "$tool" "$work" <<'PY'
import io, os, struct, subprocess, sys, zipfile
import numpy as np
tool, w = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)

def run(*args):
    return subprocess.run([tool, *args], capture_output=True, text=True)

def check_dump(path, a, member=None):
    r = run("dump", path, *( [member] if member else []))
    assert r.returncode == 0, (path, member, r.stderr)
    lines = r.stdout.split("\n")
    head = lines[0].split()
    assert head[0] == a.dtype.str.replace("=", "<") or (a.dtype == np.uint8 and head[0] == "|u1"), (head, a.dtype.str)
    assert [int(x) for x in head[1:]] == list(a.shape), (head, a.shape)
    vals = lines[1:1 + a.size]
    flat = a.ravel()
    if a.dtype.kind in "ui":
        assert [int(v) for v in vals] == [int(x) for x in flat], path
    else:
        got = np.array([float(v) for v in vals], dtype=np.float64)
        assert np.array_equal(got, flat.astype(np.float64)), path
    h = run("header", path, *( [member] if member else []))
    assert h.returncode == 0 and h.stdout.split("\n")[0] == lines[0], (h.stdout, h.stderr)

def arr(dt, shape):
    if np.dtype(dt).kind == "u":
        return rng.integers(0, 256, size=shape, dtype=dt)
    if np.dtype(dt).kind == "i":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    return (rng.standard_normal(size=shape) * 1e3).astype(dt)

n = 0
# 1: every dtype, version and shape
for dt in ["u1", "<i4", "<i8", "<f4", "<f8"]:
    for ver in [(1, 0), (2, 0), (3, 0)]:
        for shape in [(), (5,), (3, 4, 5), (0, 3)]:
            a = arr(dt, shape)
            p = os.path.join(w, "a.npy")
            with open(p, "wb") as f:
                np.lib.format.write_array(f, a, version=ver)
            check_dump(p, a)
            n += 1
# np.save's own output (its default version) and a non-canonical '=' descr
a = arr("<f8", (4, 4)); np.save(os.path.join(w, "s.npy"), a); check_dump(os.path.join(w, "s.npy"), a)

# 2: archives
arrays = {"x_train": arr("u1", (60, 28, 28)), "y_train": arr("<i8", (60,)), "big": arr("<f4", (300, 1000)),
          "scalar": np.float64(3.25), "empty": np.zeros((0,), dtype="<i4")}
for save, name in [(np.savez, "s.npz"), (np.savez_compressed, "c.npz")]:
    p = os.path.join(w, name)
    save(p, **arrays)
    r = run("members", p)
    assert r.returncode == 0 and sorted(r.stdout.split()) == sorted(arrays), r.stdout + r.stderr
    for k, v in arrays.items():
        check_dump(p, np.asarray(v), k)
p = os.path.join(w, "many.npz")
with zipfile.ZipFile(p, "w", allowZip64=True) as z:
    for i in range(70000):
        b = io.BytesIO(); np.lib.format.write_array(b, np.array([i], dtype="<i4")); z.writestr(f"m{i}.npy", b.getvalue())
with open(p, "rb") as f:
    data = f.read()
assert b"PK\x06\x06" in data[-200:], "the archive has no zip64 end record"
check_dump(p, np.array([69999], dtype="<i4"), "m69999")
check_dump(p, np.array([0], dtype="<i4"), "m0")

# 3: qkd writes, NumPy reads
qd = os.path.join(w, "qkd"); os.mkdir(qd)
r = run("write", qd); assert r.returncode == 0, r.stderr
def pattern(t, count):
    i = np.arange(count, dtype=np.int64)
    if t == "u1": return ((i * 7) % 251).astype(np.uint8)
    if t == "i4": return (i * 7919 - 50000).astype(np.int32)
    if t == "i8": return i * 1000003 - 4000000000
    if t == "f4": return (i * 0.37 - 11.5).astype(np.float32)
    return i * 0.37 - 11.5
shapes = {"u1": (3, 4, 5), "i4": (7,), "i8": (2, 3), "f4": (100, 1000), "f8": (0, 3)}
for t, shape in shapes.items():
    want = pattern(t, int(np.prod(shape))).reshape(shape)
    for src in [np.load(os.path.join(qd, t + ".npy")), np.load(os.path.join(qd, "all.npz"))[t], np.load(os.path.join(qd, "allz.npz"))[t]]:
        assert src.dtype == want.dtype and src.shape == want.shape and np.array_equal(src, want), t
    with open(os.path.join(qd, t + ".npy"), "rb") as f:
        assert f.read(6) == b"\x93NUMPY"
        f.seek(0); major, minor = np.lib.format.read_magic(f); hdr = np.lib.format.read_array_header_1_0(f) if major == 1 else None
        assert (major, minor) == (1, 0) and f.tell() % 64 == 0, (major, minor, f.tell())
assert zipfile.ZipFile(os.path.join(qd, "allz.npz")).testzip() is None

# 4: bad files — exit 1, the file named
def bad(path, member=None, why=""):
    r = run("dump", path, *( [member] if member else []))
    assert r.returncode == 1, (why, r.returncode, r.stdout[:200], r.stderr)
    assert path in r.stderr and "error:" in r.stderr, (why, r.stderr)
    return r.stderr
good = os.path.join(w, "g.npy"); np.save(good, arr("<f4", (10, 10)))
raw = open(good, "rb").read()
def write(name, b):
    p = os.path.join(w, name); open(p, "wb").write(b); return p
bad(write("trunc.npy", raw[:-7]), why="truncated")
assert "truncated or padded" in bad(write("pad.npy", raw + b"\0"), why="padded")
bad(write("trunc_head.npy", raw[:20]), why="truncated header")
assert "magic" in bad(write("magic.npy", b"\x93NUMPX" + raw[6:]), why="magic")
for dt, why in [("<c8", "unsupported"), (">f8", "big-endian"), ("<f2", "unsupported"), ("|b1", "unsupported")]:
    p = os.path.join(w, "dt.npy")
    with open(p, "wb") as f: np.lib.format.write_array(f, np.zeros((2, 2), dtype=dt))
    assert why in bad(p, why=dt), dt
p = os.path.join(w, "obj.npy"); np.save(p, np.array([1, "a"], dtype=object), allow_pickle=True)
assert "object" in bad(p, why="object")
p = os.path.join(w, "fort.npy"); np.save(p, np.asfortranarray(arr("<f8", (3, 4))))
assert "Fortran" in bad(p, why="fortran")
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }" + " " * 10100 + "\n"
p = write("long.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", len(hdr)) + hdr.encode() + b"\0\0\0\0")
assert "10000" in bad(p, why="long header")
s = open(os.path.join(w, "s.npz"), "rb").read()
i = s.find(b"x_train.npy") + len("x_train.npy") + 200        # inside x_train's stored data
p = write("crc.npz", s[:i] + bytes([s[i] ^ 0xFF]) + s[i + 1:])
assert "CRC" in bad(p, "x_train", why="crc")
assert "no array" in bad(os.path.join(w, "s.npz"), "nothere", why="missing member")
bad(write("trunc.npz", s[: len(s) // 2]), "x_train", why="truncated archive")
bad(write("empty.npz", b""), "x_train", why="empty archive")
bad(write("junk.npz", os.urandom(5000)), "x_train", why="junk archive")
bad(os.path.join(w, "does-not-exist.npy"), why="missing file")
print(f"npy: {n} NumPy-written arrays, archives and qkd-written files agree; bad files refused")
PY
