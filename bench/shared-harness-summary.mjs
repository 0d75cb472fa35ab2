// Summary of interleaved shared-harness rounds (bench/shared-harness.sh with ROUNDS): for each figure, the median
// over the rounds of pacsnode's and of Orthanc's value, every round's value, and the ratio pacsnode / Orthanc.
//   node bench/shared-harness-summary.mjs PACSNODE_RESULTS ORTHANC_RESULTS
import { existsSync, readFileSync } from 'node:fs';

function figures(path) {
  const out = new Map();
  if (!existsSync(path)) return out;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const [name, value, unit] = line.split(' ');
    if (!name || name.startsWith('#') || !/^[0-9.]+$/.test(value ?? '')) continue;
    if (!out.has(name)) out.set(name, { unit, values: [] });
    out.get(name).values.push(Number(value));
  }
  return out;
}

const median = (values) => {
  const v = [...values].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

const [pacsnode, orthanc] = process.argv.slice(2).map(figures);
for (const [name, p] of pacsnode) {
  const o = orthanc.get(name);
  const pm = median(p.values);
  const om = o ? median(o.values) : undefined;
  const ratio = om ? ` ratio ${(pm / om).toFixed(2)}` : '';
  console.log(`${name} (${p.unit}): pacsnode ${+pm.toPrecision(4)} [${p.values.join(', ')}]` +
    (o ? `  orthanc ${+om.toPrecision(4)} [${o.values.join(', ')}]` : '') + ratio);
}
