/**
 * Ingest benchmark: POST /instances of N generated instances with concurrency C (keep-alive), against a real
 * pacsnode child process, then (if installed and not disabled) against a real Orthanc in the same run.
 * Prints instances/s, MB/s and the server's peak RSS (VmHWM).
 *
 *   npm run bench -- [--n 1000] [--concurrency 4] [--kb 28] [--runs 3] [--no-orthanc] [--ceiling]
 *
 * `--ceiling` adds bench/ceiling-server.ts, a minimal Node ingest server, as a calibration point.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTree } from '../test/helpers/factory.js';
import { startServer } from '../test/helpers/process.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const N = option('n', 1000);
const CONCURRENCY = option('concurrency', 4);
const KB = option('kb', 28);
const RUNS = option('runs', 3);
const WITH_ORTHANC = !process.argv.includes('--no-orthanc') && existsSync('/usr/sbin/Orthanc');
const WITH_CEILING = process.argv.includes('--ceiling');
/** `--src`: run pacsnode from the sources (tsx) even when `dist/` exists (e.g. to compare two source trees). */
const USE_BIN = !process.argv.includes('--src') && existsSync(new URL('../dist/cli/main.js', import.meta.url));

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function post(url: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/instances`, { method: 'POST', agent, headers: { 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function vmHwmMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU time (user + system, all threads) of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (100 Hz)
}

function resetHwm(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // not permitted here: the figure is then the peak since start
  }
}

async function ingest(url: string, files: Buffer[]): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < files.length) {
        const file = files[next++]!;
        const status = await post(url, file);
        if (status !== 200) throw new Error(`POST /instances answered ${status}`);
      }
    }),
  );
  return performance.now() - t0;
}

async function clear(url: string): Promise<void> {
  const ids = (await (await fetch(`${url}/patients`)).json()) as string[];
  for (const id of ids) await fetch(`${url}/patients/${id}`, { method: 'DELETE' });
}

async function count(url: string): Promise<number> {
  return ((await (await fetch(`${url}/statistics`)).json()) as { CountInstances: number }).CountInstances;
}

interface Target {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startPacsnode(dir: string): Promise<Target> {
  const config = join(dir, 'pacsnode.json');
  writeFileSync(config, JSON.stringify({ HttpPort: 0, DicomPort: 0, StorageDirectory: join(dir, 'pacsnode-storage') }));
  const server = await startServer(config, { useBin: USE_BIN });
  return {
    name: 'pacsnode',
    url: server.url,
    pid: server.child.pid!,
    stop: async () => {
      server.child.kill('SIGTERM');
      await server.exited;
    },
  };
}

async function startOrthanc(dir: string): Promise<Target> {
  const port = 18000 + Math.floor(Math.random() * 2000);
  const config = join(dir, 'orthanc.json');
  writeFileSync(
    config,
    JSON.stringify({ HttpPort: port, DicomPort: port + 1, StorageDirectory: join(dir, 'orthanc-storage'), Plugins: [], RemoteAccessAllowed: false }),
  );
  const child: ChildProcess = spawn('/usr/sbin/Orthanc', [config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/system`)).ok) break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    name: 'orthanc',
    url,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
    },
  };
}

/** The calibration server (bench/ceiling-server.ts): Node's floor for this workload, not pacsnode. */
async function startCeiling(dir: string): Promise<Target> {
  const port = 20000 + Math.floor(Math.random() * 2000);
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', new URL('./ceiling-server.ts', import.meta.url).pathname, String(port), join(dir, 'ceiling')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return {
    name: 'ceiling',
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
    },
  };
}

async function measure(target: Target, files: Buffer[]): Promise<{ rate: number; rss: number; cpu: number }[]> {
  const results: { rate: number; rss: number; cpu: number }[] = [];
  for (let run = 0; run < RUNS; run++) {
    await clear(target.url);
    resetHwm(target.pid);
    const cpu0 = cpuMs(target.pid);
    const ms = await ingest(target.url, files);
    const cpu = (cpuMs(target.pid) - cpu0) / files.length;
    const stored = await count(target.url);
    if (stored !== files.length) throw new Error(`${target.name}: ${stored} instances stored, expected ${files.length}`);
    results.push({ rate: (files.length * 1000) / ms, rss: vmHwmMb(target.pid), cpu });
  }
  return results;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const files = [...makeTree({ patients: Math.max(1, Math.ceil(N / 100)), studies: 2, series: 5, instances: 10, pixelBytes: KB * 1024 - 1500 })].slice(0, N);
  const mb = files.reduce((a, f) => a + f.length, 0) / 1e6;
  console.log(`ingest benchmark: ${files.length} instances (${mb.toFixed(1)} MB, ${(mb * 1000 / files.length).toFixed(1)} KB each), concurrency ${CONCURRENCY}, ${RUNS} runs`);
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-bench-'));
  const summary: Record<string, number> = {};
  try {
    const targets: Array<(d: string) => Promise<Target>> = [startPacsnode];
    if (WITH_ORTHANC) targets.push(startOrthanc);
    if (WITH_CEILING) targets.push(startCeiling);
    for (const start of targets) {
      const target = await start(dir);
      try {
        const results = await measure(target, files);
        const rate = median(results.map((r) => r.rate));
        summary[target.name] = rate;
        console.log(
          `${target.name.padEnd(9)} POST /instances: median ${rate.toFixed(0)} instances/s (${((rate * mb) / files.length).toFixed(1)} MB/s) ` +
            `[${results.map((r) => r.rate.toFixed(0)).join(', ')}], server CPU ${median(results.map((r) => r.cpu)).toFixed(2)} ms/instance, ` +
            `peak RSS ${Math.max(...results.map((r) => r.rss)).toFixed(0)} MB`,
        );
      } finally {
        await target.stop();
      }
    }
    if (summary.pacsnode && summary.orthanc) {
      console.log(`ratio pacsnode / orthanc: ${(summary.pacsnode / summary.orthanc).toFixed(2)}x`);
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
