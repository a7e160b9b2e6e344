// qasm_check.js DIR NODE_MODULES — the independent side of tests/interop/qasm.sh: reads the cases
// qasm_tool wrote (NAME.qasm2, NAME.qasm3, NAME.in.qasm3, NAME.json) and checks, for each:
//  1. NAME.qasm2 is well formed OpenQASM 2 (header, include, registers, known or defined gates,
//     qubits in range, every qubit measured) and npm's quantum-circuit (importQASM, its own
//     gate matrices) simulates it to qkd's state within 1e-9 up to a global phase — once as
//     written (the simulator uses its built-in gates where it has them) and once with every
//     `gate` the file defines renamed, so that the file's own definitions are what runs;
//  2. NAME.qasm3 is well formed OpenQASM 3 (header, stdgates.inc, qubit/bit declarations, known
//     or defined gates, `c = measure q;`) and describes the same gates as NAME.qasm2 (names
//     through stdgates.inc → qelib1.inc, qubits, angles within 1e-12), and its translation to
//     OpenQASM 2 simulates to qkd's state too;
//  3. NAME.in.qasm3 declares `input float[64] x_I;` once for each feature it reads, before the
//     qubits, reads no undeclared input, and with the features substituted describes the same
//     gates as NAME.qasm3.
// quantum-circuit conventions (checked by reading its gate table): rz(φ) = diag(e^{-iφ/2},
// e^{iφ/2}), u1 = diag(1, e^{iλ}), u3 = Qiskit's; q[0] is the least significant bit of a basis
// index; its "rxx"/"ryy" alias xx/yy are exp(-iθ XX) (twice qkd's angle), so an undefined rxx
// would be wrong — the files define them.
'use strict';
const fs = require('fs');
const path = require('path');
const [dir, modules] = process.argv.slice(2);
const QC = require(path.resolve(modules, 'quantum-circuit'));

const QELIB1 = new Set(['u3', 'u2', 'u1', 'cx', 'id', 'x', 'y', 'z', 'h', 's', 'sdg', 't', 'tdg', 'rx', 'ry', 'rz',
  'cz', 'cy', 'ch', 'ccx', 'crz', 'cu1', 'cu3']);
const STDGATES = new Set(['p', 'x', 'y', 'z', 'h', 's', 'sdg', 't', 'tdg', 'sx', 'rx', 'ry', 'rz', 'cx', 'cy', 'cz',
  'cp', 'crx', 'cry', 'crz', 'ch', 'swap', 'ccx', 'cswap', 'cu', 'CX', 'phase', 'cphase', 'id', 'u1', 'u2', 'u3']);
const Q3_TO_Q2 = {cp: 'cu1'}; // the only stdgates.inc name the exports use that qelib1.inc spells otherwise

let failures = 0, checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) { failures++; console.error('FAIL: ' + what); }
  return cond;
}

// Statements of a program, comments removed; gate definitions kept whole.
function statements(text) {
  const src = text.replace(/\/\/[^\n]*/g, '');
  const out = [];
  let cur = '', depth = 0;
  for (const ch of src) {
    if (ch === '{') depth++;
    if (ch === '}') { depth--; if (depth === 0) { out.push((cur + '}').trim()); cur = ''; continue; } }
    if (ch === ';' && depth === 0) { out.push(cur.trim()); cur = ''; continue; }
    cur += ch;
  }
  if (cur.trim()) out.push(cur.trim() + ' <unterminated>');
  return out.filter((s) => s.length);
}

function evalAngle(expr, inputs, where) {
  const e = expr.replace(/\bx_(\d+)\b/g, (m, i) => {
    if (!check(inputs && i in inputs, `${where}: input x_${i} is not declared`)) return 'NaN';
    inputs.used.add(+i);
    return `(${inputs[i]})`;
  }).replace(/\bpi\b/g, '(Math.PI)');
  if (!check(/^[-+*/0-9.eE\s()MathPI]+$/.test(e), `${where}: angle '${expr}' is not an affine expression`)) return NaN;
  return Function(`"use strict"; return (${e});`)();
}

// Reads a program: {n, gates: [{name, angles, qubits}], defs: Set, body: [statements], inputs}.
function read(file, version, features) {
  const st = statements(fs.readFileSync(file, 'utf8'));
  const where = path.basename(file);
  const r = {n: -1, gates: [], defs: new Set(), inputs: null, decls: []};
  check(st[0] === `OPENQASM ${version}.0`, `${where}: the first statement is '${st[0]}'`);
  check(st[1] === (version === 3 ? 'include "stdgates.inc"' : 'include "qelib1.inc"'), `${where}: include '${st[1]}'`);
  const known = version === 3 ? STDGATES : QELIB1;
  let measured = false, cdecl = false;
  const inputs = {used: new Set()};
  for (const s of st.slice(2)) {
    let m;
    check(!measured, `${where}: '${s}' after the measurement`);
    if ((m = /^gate\s+([A-Za-z_]\w*)\s*(\(([^)]*)\))?\s*([^{]*)\{(.*)\}$/s.exec(s))) {
      check(!known.has(m[1]) && !r.defs.has(m[1]), `${where}: gate '${m[1]}' defined twice or over the include's`);
      for (const b of m[5].split(';').map((x) => x.trim()).filter((x) => x)) {
        const g = /^([A-Za-z_]\w*)/.exec(b)[1];
        check(known.has(g) || r.defs.has(g), `${where}: definition of ${m[1]} uses unknown gate '${g}'`);
      }
      check(r.n < 0, `${where}: gate definition after the qubits`);
      r.defs.add(m[1]);
    } else if ((m = /^input\s+float\[64\]\s+x_(\d+)$/.exec(s))) {
      check(version === 3 && r.n < 0, `${where}: input declaration '${s}' misplaced`);
      check(!(m[1] in inputs), `${where}: x_${m[1]} declared twice`);
      inputs[m[1]] = features[+m[1]];
      r.inputs = inputs;
    } else if ((m = version === 3 ? /^qubit\[(\d+)\]\s+q$/.exec(s) : /^qreg\s+q\[(\d+)\]$/.exec(s))) {
      check(r.n < 0, `${where}: qubits declared twice`);
      r.n = +m[1];
    } else if ((m = version === 3 ? /^bit\[(\d+)\]\s+c$/.exec(s) : /^creg\s+c\[(\d+)\]$/.exec(s))) {
      check(!cdecl && +m[1] === r.n, `${where}: '${s}' (qubits: ${r.n})`);
      cdecl = true;
    } else if (s === (version === 3 ? 'c = measure q' : 'measure q -> c')) {
      check(cdecl, `${where}: measured before c is declared`);
      measured = true;
    } else if ((m = /^([A-Za-z_]\w*)\s*(\((.*)\))?\s+(q\[\d+\](\s*,\s*q\[\d+\])*)$/s.exec(s))) {
      check(known.has(m[1]) || r.defs.has(m[1]), `${where}: unknown gate '${m[1]}'`);
      check(r.n > 0 && cdecl, `${where}: a gate before the registers`);
      const qubits = m[4].split(',').map((q) => +/\[(\d+)\]/.exec(q)[1]);
      check(qubits.every((q) => q < r.n) && new Set(qubits).size === qubits.length, `${where}: qubits of '${s}'`);
      const angles = m[3] === undefined ? [] : m[3].split(',').map((a) => evalAngle(a.trim(), r.inputs, where));
      r.gates.push({name: m[1], angles, qubits});
    } else {
      check(false, `${where}: cannot read '${s}'`);
    }
  }
  check(measured, `${where}: no measurement`);
  if (r.inputs) for (const i of Object.keys(r.inputs).filter((k) => k !== 'used'))
    check(r.inputs.used.has(+i), `${where}: x_${i} declared but never read`);
  return r;
}

function sameGates(a, b, map, what) {
  if (!check(a.n === b.n && a.gates.length === b.gates.length, `${what}: ${a.gates.length} gates against ${b.gates.length}`)) return;
  a.gates.forEach((g, i) => {
    const h = b.gates[i];
    check((map[g.name] || g.name) === h.name && g.qubits.join() === h.qubits.join() &&
          g.angles.length === h.angles.length && g.angles.every((x, k) => Math.abs(x - h.angles[k]) <= 1e-12),
          `${what}: gate ${i}: ${JSON.stringify(g)} against ${JSON.stringify(h)}`);
  });
}

// quantum-circuit's state of an OpenQASM 2 text (the measurement left out: it would collapse it).
function simulate(text, where) {
  const c = new QC();
  let errors = [];
  c.importQASM(text.replace(/measure q -> c;/, ''), (e) => { errors = e; });
  check(errors.length === 0, `${where}: quantum-circuit cannot import it: ${JSON.stringify(errors)}`);
  c.run();
  const out = [];
  for (let i = 0; i < c.numAmplitudes(); i++) { const a = c.state[i]; out.push(a ? [a.re, a.im] : [0, 0]); }
  return out;
}

function closeUpToPhase(got, want, where) {
  if (!check(got.length === want.length, `${where}: ${got.length} amplitudes, qkd has ${want.length}`)) return;
  let k = 0;
  want.forEach((w, i) => { if (Math.hypot(...w) > Math.hypot(...want[k])) k = i; });
  const [wr, wi] = want[k], [gr, gi] = got[k], g2 = gr * gr + gi * gi;
  if (!check(g2 > 0, `${where}: amplitude ${k} is 0 in quantum-circuit's state`)) return;
  const pr = (wr * gr + wi * gi) / g2, pi = (wi * gr - wr * gi) / g2; // want / got
  let worst = Math.abs(Math.hypot(pr, pi) - 1);
  got.forEach(([a, b], i) => {
    worst = Math.max(worst, Math.hypot(a * pr - b * pi - want[i][0], a * pi + b * pr - want[i][1]));
  });
  check(worst <= 1e-9, `${where}: states differ by ${worst} (up to a global phase)`);
  return worst;
}

// The definitions' names renamed, so that quantum-circuit runs the file's definitions.
function renameDefs(text, defs) {
  let t = text.replace(/\/\/[^\n]*/g, '');
  for (const d of defs) t = t.replace(new RegExp(`\\b${d}\\b(?=\\s*[( ])`, 'g'), `${d}_qkddef`);
  return t;
}

const names = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
let worst = 0, definedRuns = 0;
for (const name of names) {
  const ref = JSON.parse(fs.readFileSync(path.join(dir, name + '.json'), 'utf8'));
  const file2 = path.join(dir, name + '.qasm2'), text2 = fs.readFileSync(file2, 'utf8');
  const r2 = read(file2, 2, ref.features), r3 = read(path.join(dir, name + '.qasm3'), 3, ref.features);
  check(r2.n === ref.n, `${name}: ${r2.n} qubits, qkd has ${ref.n}`);
  worst = Math.max(worst, closeUpToPhase(simulate(text2, name + '.qasm2'), ref.state, name + '.qasm2') || 0);
  if (r2.defs.size) {
    closeUpToPhase(simulate(renameDefs(text2, r2.defs), name), ref.state, name + '.qasm2 (its own definitions)');
    definedRuns++;
  }
  sameGates(r3, r2, Q3_TO_Q2, `${name}: qasm3 against qasm2`);
  // the OpenQASM 3 program, as OpenQASM 2: its gates, with the file's definitions for what qelib1 lacks
  const defs3 = fs.readFileSync(path.join(dir, name + '.qasm3'), 'utf8').match(/^gate [^\n]*$/gm) || [];
  const defs2 = text2.match(/^gate [^\n]*$/gm) || [];
  const body = r3.gates.map((g) => `${Q3_TO_Q2[g.name] || g.name}${g.angles.length ? '(' + g.angles.map((a) => a.toPrecision(17)).join(', ') + ')' : ''} ${g.qubits.map((q) => `q[${q}]`).join(', ')};`);
  const t3as2 = ['OPENQASM 2.0;', 'include "qelib1.inc";', ...new Set([...defs3, ...defs2]), `qreg q[${r3.n}];`, ...body].join('\n');
  closeUpToPhase(simulate(t3as2, name + '.qasm3'), ref.state, name + '.qasm3 (as OpenQASM 2)');
  const fin = path.join(dir, name + '.in.qasm3');
  if (fs.existsSync(fin)) {
    const ri = read(fin, 3, ref.features);
    const reads = new Set(fs.readFileSync(fin, 'utf8').replace(/\/\/[^\n]*/g, '').split('\n')
      .filter((l) => !/^input/.test(l)).join('\n').match(/\bx_\d+\b/g) || []);
    check(ri.inputs ? reads.size === Object.keys(ri.inputs).length - 1 : reads.size === 0, `${name}.in.qasm3: inputs`);
    sameGates(ri, r3, {}, `${name}: inputs substituted against bound`);
  }
}
check(names.length > 0, 'no cases');
console.log(`qasm: ${names.length} cases, ${definedRuns} also through their own gate definitions; worst ${worst.toExponential(2)}`);
console.log(`${checks - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
