/**
 * Find benchmark: the latency of resource queries on a populated index, against a real pacsnode child process and
 * (if installed and not disabled) a real Orthanc holding the same instances, measured in the same run.
 *
 *   npm run bench:find -- [--patients 100] [--runs 15] [--settle 5] [--no-orthanc]
 *
 * The data set is `makeTree` with 4 studies x 5 series x 10 instances per patient: 100 patients give 20,000
 * instances in 400 studies. pacsnode's index is filled through the store directly (no HTTP), then served by a
 * child process; Orthanc's through `POST /instances`. Each query is sent once to warm up, then `--runs` times;
 * the median is printed. `--settle` seconds pass between the upload to Orthanc and its timings.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext } from '../src/app/context.js';
import { buildConfig } from '../src/config/load.js';
import { setLogLevel } from '../src/core/log.js';
import { makeTree } from '../test/helpers/factory.js';
import { startServer } from '../test/helpers/process.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const PATIENTS = option('patients', 100);
const RUNS = option('runs', 15);
const WITH_ORTHANC = !process.argv.includes('--no-orthanc') && existsSync('/usr/sbin/Orthanc');
const SETTLE_MS = option('settle', 5) * 1000;
const SHAPE = { patients: PATIENTS, studies: 4, series: 5, instances: 10 };

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function request(url: string, method: string, body?: Buffer | string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const req = http.request(url, { method, agent, headers: payload ? { 'content-length': payload.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

interface Query {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  /** Number of results expected (checked once, so both servers answer the same thing). */
  expected: number;
}

const QUERIES: Query[] = [
  {
    name: 'POST /tools/find Study Expand (all studies)',
    method: 'POST',
    path: '/tools/find',
    body: JSON.stringify({ Level: 'Study', Query: {}, Expand: true }),
    expected: PATIENTS * SHAPE.studies,
  },
  {
    name: 'POST /tools/find Study Expand PatientName=KO*',
    method: 'POST',
    path: '/tools/find',
    body: JSON.stringify({ Level: 'Study', Query: { PatientName: 'KO*' }, Expand: true }),
    // makeTree names every fifth patient KOWALSKI.
    expected: Math.ceil((PATIENTS - 2) / 5) * SHAPE.studies,
  },
  {
    name: 'GET /studies?expand',
    method: 'GET',
    path: '/studies?expand',
    expected: PATIENTS * SHAPE.studies,
  },
  {
    name: 'POST /tools/find Study (IDs only)',
    method: 'POST',
    path: '/tools/find',
    body: JSON.stringify({ Level: 'Study', Query: {} }),
    expected: PATIENTS * SHAPE.studies,
  },
];

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function measure(name: string, url: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const q of QUERIES) {
    const first = await request(`${url}${q.path}`, q.method, q.body);
    if (first.status !== 200) throw new Error(`${name}: ${q.name} answered ${first.status}: ${first.body.toString()}`);
    const count = (JSON.parse(first.body.toString()) as unknown[]).length;
    if (count !== q.expected) throw new Error(`${name}: ${q.name} answered ${count} results, expected ${q.expected}`);
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const r = await request(`${url}${q.path}`, q.method, q.body);
      times.push(performance.now() - t0);
      if (r.status !== 200) throw new Error(`${name}: ${q.name} answered ${r.status}`);
    }
    out[q.name] = median(times);
    console.log(`${name.padEnd(9)} ${q.name.padEnd(48)} median ${median(times).toFixed(1).padStart(7)} ms  (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)})`);
  }
  return out;
}

/** Fills a pacsnode storage folder through the store (no HTTP), then closes it. */
async function populatePacsnode(dir: string, files: Buffer[]): Promise<void> {
  setLogLevel('warn');
  const { config } = buildConfig({}, 'bench', { StorageDirectory: dir, IndexDirectory: dir, SyncStorageArea: false, HttpPort: 0, DicomPort: 0 });
  const ctx = await createContext(config);
  try {
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < files.length) await ctx.store.store(files[next++]!, { kind: 'unknown' });
      }),
    );
    console.log(`pacsnode: ${files.length} instances indexed through the store in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await ctx.close();
  }
}

async function populateOrthanc(url: string, files: Buffer[]): Promise<void> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < files.length) {
        const r = await request(`${url}/instances`, 'POST', files[next++]!);
        if (r.status !== 200) throw new Error(`Orthanc POST /instances answered ${r.status}`);
      }
    }),
  );
  console.log(`orthanc: ${files.length} instances uploaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function startOrthanc(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const port = 18000 + Math.floor(Math.random() * 2000);
  const config = join(dir, 'orthanc.json');
  writeFileSync(
    config,
    JSON.stringify({ HttpPort: port, DicomPort: port + 1, StorageDirectory: join(dir, 'orthanc-storage'), Plugins: [], RemoteAccessAllowed: false }),
  );
  const child = spawn('/usr/sbin/Orthanc', [config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/system`)).ok) return { url, child };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill('SIGTERM');
  throw new Error('Orthanc did not start');
}

async function main(): Promise<void> {
  const files = [...makeTree(SHAPE)];
  console.log(
    `find benchmark: ${files.length} instances, ${PATIENTS * SHAPE.studies} studies, ${PATIENTS} patients; median of ${RUNS} runs per query`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-bench-find-'));
  const summary: Record<string, Record<string, number>> = {};
  try {
    const storage = join(dir, 'pacsnode-storage');
    await populatePacsnode(storage, files);
    const configPath = join(dir, 'pacsnode.json');
    writeFileSync(configPath, JSON.stringify({ HttpPort: 0, DicomPort: 0, StorageDirectory: storage }));
    const server = await startServer(configPath);
    try {
      summary.pacsnode = await measure('pacsnode', server.url);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    if (WITH_ORTHANC) {
      const orthanc = await startOrthanc(dir);
      try {
        await populateOrthanc(orthanc.url, files);
        // Let Orthanc finish its work after the upload (stable-resource checks, cache) before timing it.
        await new Promise((r) => setTimeout(r, SETTLE_MS));
        summary.orthanc = await measure('orthanc', orthanc.url);
      } finally {
        orthanc.child.kill('SIGTERM');
        await new Promise((r) => orthanc.child.on('exit', r));
      }
    }
    if (summary.pacsnode && summary.orthanc) {
      for (const q of QUERIES) {
        console.log(`ratio pacsnode / orthanc, ${q.name}: ${(summary.pacsnode[q.name]! / summary.orthanc[q.name]!).toFixed(2)}`);
      }
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
