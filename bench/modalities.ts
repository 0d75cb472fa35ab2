/**
 * REST networking benchmark: `POST /modalities/{id}/store` of N stored instances to DCMTK storescp (one
 * association), and `POST /queries/{id}/retrieve` of a study of S instances with C-MOVE (to ourselves) and with C-GET.
 * pacsnode runs as a child process (the real CLI); the query/retrieve source is a second pacsnode. When
 * `/usr/sbin/Orthanc` exists, a real Orthanc does the same calls in the same sitting (Orthanc 1.10 has no C-GET
 * SCU: its C-GET line is pacsnode retrieving from Orthanc as the C-GET SCP instead).
 *
 *   npm run bench:modalities -- [--n 1000] [--study 50] [--pixel-bytes 38000] [--runs 3] [--no-orthanc]
 *
 * Prints one line per case: median instances/s and every run's rate. Runs are interleaved (run 1 of every case,
 * then run 2...). See bench/README.md.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { generateUid } from '../src/dicom/uids.js';
import { makeInstance } from '../test/helpers/factory.js';
import { freePort } from '../test/helpers/interop.js';
import { call, ORTHANC_BINARY, startOrthanc, startStorescp, type Orthanc } from '../test/helpers/networking.js';
import { startServer, type RunningServer } from '../test/helpers/process.js';

function option(name: string, fallback: number, min: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value < min || value > max) {
    console.error(`--${name} must be a number in ${min}..${max}`);
    process.exit(2);
  }
  return value;
}
const N = option('n', 1000, 1, 100000);
const STUDY = option('study', 50, 1, 10000);
const PIXEL_BYTES = option('pixel-bytes', 38000, 2, 10_000_000);
const RUNS = option('runs', 3, 1, 20);
const WITH_ORTHANC = !process.argv.includes('--no-orthanc') && existsSync(ORTHANC_BINARY);

const root = mkdtempSync(join(tmpdir(), 'hc-bench-modalities-'));
const children: { stop(): Promise<void> }[] = [];

async function pacsnode(name: string, aet: string, dicomPort: number, extra: Record<string, unknown>): Promise<RunningServer> {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const config = {
    Name: name,
    DicomAet: aet,
    DicomPort: dicomPort,
    HttpPort: 0,
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'storage'),
    SyncStorageArea: false,
    SaveJobs: false,
    DicomAlwaysAllowFind: true,
    DicomAlwaysAllowGet: true,
    DicomAlwaysAllowMove: true,
    ...extra,
  };
  const path = join(dir, 'pacsnode.json');
  writeFileSync(path, JSON.stringify(config));
  const server = await startServer(path);
  children.push({
    async stop() {
      server.child.kill('SIGTERM');
      await server.exited;
    },
  });
  return server;
}

async function post(url: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await call(url, 'POST', path, body);
  if (r.status !== 200) throw new Error(`POST ${url}${path}: HTTP ${r.status}: ${r.text}`);
  return r.json as unknown as Record<string, unknown>;
}

async function upload(url: string, files: Buffer[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < files.length) await post(url, '/instances', files[next++]!);
    }),
  );
}

async function forgetStudy(url: string, uid: string): Promise<void> {
  const found = (await call(url, 'POST', '/tools/lookup', uid)).json as unknown as { ID: string }[];
  for (const f of found) await call(url, 'DELETE', `/studies/${f.ID}`);
}

async function countStudy(url: string, uid: string): Promise<number> {
  const found = (await call(url, 'POST', '/tools/lookup', uid)).json as unknown as { ID: string; Type: string }[];
  const s = found.find((f) => f.Type === 'Study');
  return s ? ((await call(url, 'GET', `/studies/${s.ID}/instances`)).json as unknown[]).length : 0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  console.log(`generating ${N} + ${STUDY} instances of ~${PIXEL_BYTES} bytes of pixels...`);
  const storeStudy = generateUid();
  const storeFiles = Array.from({ length: N }, (_, i) =>
    makeInstance({ patientId: 'BENCHSTORE', studyInstanceUid: storeStudy, seriesInstanceUid: `${storeStudy}.${Math.floor(i / 100)}`, instanceNumber: i + 1, pixelBytes: PIXEL_BYTES }),
  );
  const qrStudy = generateUid();
  const qrSeries = generateUid();
  const qrFiles = Array.from({ length: STUDY }, (_, i) => makeInstance({ patientId: 'BENCHQR', studyInstanceUid: qrStudy, seriesInstanceUid: qrSeries, instanceNumber: i + 1, pixelBytes: PIXEL_BYTES }));

  const storescp = await startStorescp(join(root, 'storescp'), 'STORESCP');
  children.push(storescp);
  const aPort = await freePort();
  const bPort = await freePort();
  const oPort = WITH_ORTHANC ? await freePort() : 0;
  const source = await pacsnode('source', 'SOURCE', bPort, {
    DicomModalities: { a: ['PACSA', '127.0.0.1', aPort], ...(WITH_ORTHANC ? { orthanc: ['ORTHANCB', '127.0.0.1', oPort] } : {}) },
  });
  const a = await pacsnode('a', 'PACSA', aPort, {
    DicomModalities: { storescp: ['STORESCP', '127.0.0.1', storescp.port], source: ['SOURCE', '127.0.0.1', bPort] },
  });
  let orthanc: Orthanc | undefined;
  if (WITH_ORTHANC) {
    orthanc = await startOrthanc(join(root, 'orthanc'), 'ORTHANCB', {
      DicomPort: oPort,
      DicomModalities: { storescp: ['STORESCP', '127.0.0.1', storescp.port], source: ['SOURCE', '127.0.0.1', bPort], a: ['PACSA', '127.0.0.1', aPort] },
      DicomAlwaysAllowFind: true,
      DicomAlwaysAllowGet: true,
      DicomAlwaysAllowMove: true,
    });
    children.push(orthanc);
    await call(a.url, 'PUT', '/modalities/orthanc', ['ORTHANCB', '127.0.0.1', oPort]);
  }
  console.log('uploading...');
  await upload(a.url, storeFiles);
  await upload(source.url, qrFiles);
  if (orthanc) {
    await upload(orthanc.url, storeFiles);
    await upload(orthanc.url, qrFiles);
  }
  const storeId = ((await call(a.url, 'POST', '/tools/lookup', storeStudy)).json as unknown as { ID: string }[])[0]!.ID;
  const orthancStoreId = orthanc ? ((await call(orthanc.url, 'POST', '/tools/lookup', storeStudy)).json as unknown as { ID: string }[])[0]!.ID : '';

  type Case = { name: string; count: number; run(): Promise<void>; rates: number[] };
  const clearStorescp = () => {
    for (const f of readdirSync(storescp.dir)) rmSync(join(storescp.dir, f), { force: true });
  };
  const retrieveCase = (name: string, url: string, modality: string, method: 'C-MOVE' | 'C-GET' | 'orthanc-move'): Case => ({
    name,
    count: STUDY,
    rates: [],
    async run() {
      await forgetStudy(url, qrStudy);
      const q = (await post(url, `/modalities/${modality}/query`, { Level: 'Study', Query: { StudyInstanceUID: qrStudy } })).ID as string;
      const body = method === 'orthanc-move' ? 'ORTHANCB' : { RetrieveMethod: method, Synchronous: true };
      const t0 = performance.now();
      await post(url, `/queries/${q}/retrieve`, body);
      this.rates.push(STUDY / ((performance.now() - t0) / 1000));
      const got = await countStudy(url, qrStudy);
      if (got !== STUDY) throw new Error(`${name}: ${got} of ${STUDY} instances retrieved`);
    },
  });
  const storeCase = (name: string, url: string, id: string): Case => ({
    name,
    count: N,
    rates: [],
    async run() {
      clearStorescp();
      const t0 = performance.now();
      const content = await post(url, '/modalities/storescp/store', { Resources: [id], Synchronous: true });
      this.rates.push(N / ((performance.now() - t0) / 1000));
      if (content.FailedInstancesCount !== 0 || readdirSync(storescp.dir).length !== N) throw new Error(`${name}: not every instance arrived`);
    },
  });
  const cases: Case[] = [
    storeCase(`pacsnode  /modalities/storescp/store   ${N} inst`, a.url, storeId),
    ...(orthanc ? [storeCase(`Orthanc   /modalities/storescp/store   ${N} inst`, orthanc.url, orthancStoreId)] : []),
    retrieveCase(`pacsnode  /queries/retrieve C-MOVE (source pacsnode)  ${STUDY} inst`, a.url, 'source', 'C-MOVE'),
    retrieveCase(`pacsnode  /queries/retrieve C-GET  (source pacsnode)  ${STUDY} inst`, a.url, 'source', 'C-GET'),
    ...(orthanc
      ? [
          retrieveCase(`Orthanc   /queries/retrieve C-MOVE (source pacsnode)  ${STUDY} inst`, orthanc.url, 'source', 'orthanc-move'),
          retrieveCase(`pacsnode  /queries/retrieve C-MOVE (source Orthanc)   ${STUDY} inst`, a.url, 'orthanc', 'C-MOVE'),
          retrieveCase(`pacsnode  /queries/retrieve C-GET  (source Orthanc)   ${STUDY} inst`, a.url, 'orthanc', 'C-GET'),
        ]
      : []),
  ];
  for (let r = 0; r < RUNS; r++) for (const c of cases) await c.run();
  console.log(`\n${RUNS} run(s), instances/s (median, then every run):`);
  for (const c of cases) console.log(`${c.name.padEnd(62)} ${median(c.rates).toFixed(0).padStart(6)}   [${c.rates.map((x) => x.toFixed(0)).join(', ')}]`);
}

try {
  await main();
} finally {
  for (const c of children.reverse()) await c.stop().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
}
