/**
 * How much of the shared harness's WADO-RS study figure is its client: fetches one answer from each server given,
 * serves the same bytes (same headers, one write, nothing else) from a null server in this process, then measures
 * the servers and the null server alternately, in rounds, with the harness's own client (`lib/httpbench.mjs get`,
 * a fresh Node process: one warm-up request, then 5) and with curl (one process, 6 requests on one kept-alive
 * connection, the first dropped). Prints the median of the per-round medians of each, in ms.
 *
 *   node bench/wado-floor.mjs [--rounds 12] [--harness /work/shared/bench] URL...
 *   e.g. node bench/wado-floor.mjs http://127.0.0.1:8044/dicom-web/studies/UID http://127.0.0.1:8043/dicom-web/studies/UID
 */
import { execFile } from 'node:child_process';
import http from 'node:http';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i === -1) return fallback;
  const [, value] = args.splice(i, 2);
  return value;
};
const rounds = Number(option('--rounds', '12'));
const harness = option('--harness', '/work/shared/bench');
const urls = args;
if (urls.length === 0) {
  console.error('usage: node bench/wado-floor.mjs [--rounds N] [--harness DIR] URL...');
  process.exit(2);
}
const ACCEPT = 'multipart/related; type="application/dicom"';

// The first server's answer, as the null server's.
const sample = await globalThis.fetch(urls[0], { headers: { Accept: ACCEPT } });
if (sample.status !== 200) throw new Error(`${urls[0]}: HTTP ${sample.status}`);
const body = Buffer.from(await sample.arrayBuffer());
const type = sample.headers.get('content-type');
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length });
  res.end(body);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const floor = `http://127.0.0.1:${server.address().port}${new URL(urls[0]).pathname}`;

// The clients run in child processes: this process's event loop must be free to serve the null server.
const run = (file, argv) =>
  new Promise((resolve, reject) => {
    execFile(file, argv, { maxBuffer: 64 << 20 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
  });
const viaHarness = async (url) => {
  const u = new URL(url);
  const out = await run('node', [`${harness}/lib/httpbench.mjs`, 'get', '--url', u.origin, '--path', u.pathname + u.search, '--n', '5', '--accept', ACCEPT]);
  return JSON.parse(out).median;
};
const viaCurl = async (url) => {
  const argv = ['-s', '-H', `Accept: ${ACCEPT}`, '-w', '%{time_total}\\n'];
  for (let i = 0; i < 6; i++) argv.push('-o', '/dev/null', url);
  const times = (await run('curl', argv)).trim().split('\n').slice(1).map((s) => Number(s) * 1000);
  return median(times);
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const targets = [...urls, floor];
const results = new Map(targets.map((t) => [t, { harness: [], curl: [] }]));
for (let r = 0; r < rounds; r++) {
  for (const t of targets) {
    results.get(t).harness.push(await viaHarness(t));
    results.get(t).curl.push(await viaCurl(t));
  }
}
server.close();
console.log(`${body.length} bytes per answer, ${rounds} rounds; medians of the per-round medians, ms`);
console.log('harness client (httpbench)   curl (kept alive)   target');
for (const t of targets) {
  const { harness: h, curl: c } = results.get(t);
  console.log(`${median(h).toFixed(2).padStart(10)}   ${median(c).toFixed(2).padStart(22)}   ${t === floor ? 'null server (same bytes, one write)' : t}`);
}
