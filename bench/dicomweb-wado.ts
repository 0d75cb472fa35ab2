/**
 * DICOMweb benchmark: STOW-RS ingest rate (10 instances per request, concurrency 4) and WADO-RS study retrieval
 * throughput (MB/s), against a real pacsnode child process and, when installed, a real Orthanc with its DICOMweb
 * plugin in the same run. Prints instances/s, MB/s and the server's peak RSS (VmHWM).
 *
 *   npm run bench:stow -- [--n 1000] [--per-request 10] [--concurrency 4] [--kb 28] [--study-instances 100]
 *                         [--study-kb 512] [--runs 3] [--no-orthanc] [--built] [--compare DIR] [--cpu-prof DIR]
 *                         [--node-client]
 *
 * `--compare DIR` also runs the pacsnode of another checkout (its sources through tsx, e.g. an unpacked
 * `git archive` of the previous commit, with a node_modules link) in the same alternation: before/after figures
 * under the same machine load. `--cpu-prof DIR` starts the pacsnode under test with `node --cpu-prof` into DIR.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { closeDelimiter, partHead } from '../src/dicomweb/multipart.js';
import { generateUid } from '../src/dicom/uids.js';
import { makeInstance, makeTree } from '../test/helpers/factory.js';
import { ROOT, startServer } from '../test/helpers/process.js';

function stringOption(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const N = option('n', 1000);
const PER_REQUEST = option('per-request', 10);
const CONCURRENCY = option('concurrency', 4);
const KB = option('kb', 28);
const STUDY_INSTANCES = option('study-instances', 100);
const STUDY_KB = option('study-kb', 512);
const RUNS = option('runs', 3);
const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
const WITH_ORTHANC = !process.argv.includes('--no-orthanc') && existsSync('/usr/sbin/Orthanc') && existsSync(DICOMWEB_PLUGIN);
const BOUNDARY = 'bench-boundary-7d1f0c2a';

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function request(url: string, method: string, headers: http.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*';
/** curl reads the answer unless `--node-client`: it costs the machine (two cores here) much less CPU per MB than Node. */
const CURL = !process.argv.includes('--node-client') && spawnSync('curl', ['--version']).status === 0;

/** One WADO-RS retrieval: status, bytes received, time from the request to the last byte. */
async function retrieve(url: string): Promise<{ status: number; bytes: number; ms: number }> {
  if (!CURL) {
    const t0 = performance.now();
    const { status, bytes } = await request(url, 'GET', { accept: WADO_ACCEPT });
    return { status, bytes, ms: performance.now() - t0 };
  }
  const child = spawn('curl', ['-s', '-o', '/dev/null', '-H', `Accept: ${WADO_ACCEPT}`, '-w', '%{http_code} %{size_download} %{time_total}', url]);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.on('exit', r));
  const [status, bytes, seconds] = out.trim().split(' ').map(Number);
  return { status: status!, bytes: bytes!, ms: seconds! * 1000 };
}

function multipart(files: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  files.forEach((f, i) => parts.push(partHead(BOUNDARY, { 'Content-Type': 'application/dicom' }, i === 0), f));
  parts.push(closeDelimiter(BOUNDARY));
  return Buffer.concat(parts);
}

async function stow(root: string, bodies: readonly Buffer[]): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const headers = { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, 'content-length': body.length };
        const { status } = await request(`${root}studies`, 'POST', headers, body);
        if (status !== 200) throw new Error(`STOW-RS answered ${status}`);
      }
    }),
  );
  return performance.now() - t0;
}

/** CPU time (user + system, all threads) of a process, in ms: less sensitive than wall time to a busy machine. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (100 Hz)
}

/** Peak resident memory of a process (VmHWM), in MB. */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

interface Target {
  name: string;
  url: string;
  /** The DICOMweb root, ending with '/'. */
  root: string;
  pid: number;
  stop(): Promise<void>;
}

async function startPacsnode(dir: string, checkout?: string): Promise<Target> {
  const name = checkout ? 'baseline' : 'pacsnode';
  const config = join(dir, `${name}.json`);
  writeFileSync(config, JSON.stringify({ HttpPort: 0, DicomPort: 0, StorageDirectory: join(dir, `${name}-storage`) }));
  const profile = stringOption('cpu-prof');
  // The built CLI when `--built` (run `npm run build` first), else the sources through tsx (same code at run time).
  if (checkout || profile) return startSources(name, config, checkout ?? ROOT, profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []);
  const server = await startServer(config, { useBin: process.argv.includes('--built') });
  return {
    name,
    url: server.url,
    root: `${server.url}/dicom-web/`,
    pid: server.child.pid!,
    stop: async () => {
      server.child.kill('SIGTERM');
      await server.exited;
    },
  };
}

/** `pacsnode serve` from the sources of a checkout, with extra node options. */
async function startSources(name: string, config: string, checkout: string, nodeArgs: string[]): Promise<Target> {
  const args = [...nodeArgs, '--import', 'tsx', join(checkout, 'src/cli/main.ts'), 'serve', '--config', config];
  const child = spawn(process.execPath, args, { cwd: checkout, env: { ...process.env, PACSNODE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.on('exit', r));
  const port = await new Promise<number>((ok, fail) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /pacsnode ready: http=(\d+)/.exec(out);
      if (m) ok(Number(m[1]));
    });
    void exited.then(() => fail(new Error(`${name} exited early`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    name,
    url,
    root: `${url}/dicom-web/`,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function startOrthanc(dir: string): Promise<Target> {
  const port = 22000 + Math.floor(Math.random() * 2000);
  const config = join(dir, 'orthanc.json');
  writeFileSync(
    config,
    JSON.stringify({
      HttpPort: port,
      DicomPort: port + 1,
      StorageDirectory: join(dir, 'orthanc-storage'),
      Plugins: [DICOMWEB_PLUGIN],
      RemoteAccessAllowed: false,
      DicomWeb: { Enable: true, Root: '/dicom-web/' },
    }),
  );
  const child = spawn('/usr/sbin/Orthanc', [config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    const up = await fetch(`${url}/system`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: 'orthanc',
    url,
    root: `${url}/dicom-web/`,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
    },
  };
}

async function clear(url: string): Promise<void> {
  const ids = (await (await fetch(`${url}/patients`)).json()) as string[];
  for (const id of ids) await fetch(`${url}/patients/${id}`, { method: 'DELETE' });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const files = [...makeTree({ patients: Math.max(1, Math.ceil(N / 100)), studies: 2, series: 5, instances: 10, pixelBytes: KB * 1024 - 1500 })].slice(0, N);
  const bodies: Buffer[] = [];
  for (let i = 0; i < files.length; i += PER_REQUEST) bodies.push(multipart(files.slice(i, i + PER_REQUEST)));
  const study = generateUid();
  const studyFiles = Array.from({ length: STUDY_INSTANCES }, (_, i) =>
    makeInstance({ studyInstanceUid: study, seriesInstanceUid: `${study}.${i % 4}`, instanceNumber: i, pixelBytes: STUDY_KB * 1024 }),
  );
  const studyMb = studyFiles.reduce((n, f) => n + f.length, 0) / 1e6;
  const studyBodies: Buffer[] = [];
  for (let i = 0; i < studyFiles.length; i += PER_REQUEST) studyBodies.push(multipart(studyFiles.slice(i, i + PER_REQUEST)));
  const mb = files.reduce((n, f) => n + f.length, 0) / 1e6;
  console.log(
    `DICOMweb benchmark: STOW-RS of ${files.length} instances (${(mb * 1000 / files.length).toFixed(1)} KB each), ${PER_REQUEST} per request, ` +
      `concurrency ${CONCURRENCY}; WADO-RS of a ${studyFiles.length}-instance study (${studyMb.toFixed(1)} MB, read by ${CURL ? 'curl' : 'Node'}); ${RUNS} runs`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-bench-dicomweb-'));
  const rates: Record<string, number> = {};
  const throughputs: Record<string, number> = {};
  try {
    // Both servers run side by side and the runs alternate between them, so that both see the same machine load
    // (the machine is shared): the ratio is the figure to read.
    const targets: Target[] = [await startPacsnode(dir)];
    const checkout = stringOption('compare');
    if (checkout) targets.push(await startPacsnode(dir, resolve(checkout) + sep));
    if (WITH_ORTHANC) targets.push(await startOrthanc(dir));
    try {
      const stowRates = new Map<Target, number[]>(targets.map((t) => [t, []]));
      const wadoRates = new Map<Target, number[]>(targets.map((t) => [t, []]));
      const stowCpu = new Map<Target, number[]>(targets.map((t) => [t, []]));
      const wadoCpu = new Map<Target, number[]>(targets.map((t) => [t, []]));
      for (let run = 0; run < RUNS; run++) {
        for (const target of targets) {
          await clear(target.url);
          const cpu0 = cpuMs(target.pid);
          stowRates.get(target)!.push((files.length * 1000) / (await stow(target.root, bodies)));
          stowCpu.get(target)!.push((cpuMs(target.pid) - cpu0) / files.length);
        }
      }
      for (const target of targets) await stow(target.root, studyBodies);
      for (let run = 0; run < RUNS; run++) {
        for (const target of targets) {
          const cpu0 = cpuMs(target.pid);
          const { status, bytes, ms } = await retrieve(`${target.root}studies/${study}`);
          if (status !== 200 || bytes < studyMb * 1e6) throw new Error(`${target.name}: WADO-RS answered ${status} with ${bytes} bytes`);
          wadoRates.get(target)!.push(bytes / 1e6 / (ms / 1000));
          wadoCpu.get(target)!.push(((cpuMs(target.pid) - cpu0) * 1e6) / bytes);
        }
      }
      for (const target of targets) {
        const st = stowRates.get(target)!;
        const wa = wadoRates.get(target)!;
        rates[target.name] = median(st);
        throughputs[target.name] = median(wa);
        console.log(
          `${target.name.padEnd(9)} STOW-RS: median ${rates[target.name]!.toFixed(0)} instances/s [${st.map((r) => r.toFixed(0)).join(', ')}]; ` +
            `WADO-RS study: median ${throughputs[target.name]!.toFixed(0)} MB/s [${wa.map((r) => r.toFixed(0)).join(', ')}]; ` +
            `server CPU ${median(stowCpu.get(target)!).toFixed(2)} ms/instance stored, ${median(wadoCpu.get(target)!).toFixed(2)} ms/MB sent; ` +
            `peak RSS ${peakRssMb(target.pid).toFixed(0)} MB`,
        );
      }
    } finally {
      for (const target of targets) await target.stop();
    }
    for (const other of ['baseline', 'orthanc']) {
      if (!rates.pacsnode || !rates[other]) continue;
      console.log(
        `ratio pacsnode / ${other}: STOW-RS ${(rates.pacsnode / rates[other]).toFixed(2)}x, WADO-RS ${(throughputs.pacsnode! / throughputs[other]!).toFixed(2)}x`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    agent.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
