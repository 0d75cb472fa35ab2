/**
 * DICOMweb query benchmark: QIDO-RS `/studies` latency on 20,000 instances (all 400 studies; `PatientName=KO*`)
 * and WADO-RS series metadata latency (first read, served by the metadata cache the builder wrote at ingest, or
 * built by the read with `--no-prebuild`; and later reads), against a
 * real pacsnode child process and, when installed, a real Orthanc with its DICOMweb plugin holding the same
 * instances, measured in the same run. Prints medians.
 *
 *   npm run bench:dicomweb -- [--patients 100] [--runs 15] [--series 20] [--settle 5] [--no-orthanc] [--no-prebuild]
 *
 * The data set is bench/find.ts's: `makeTree` with 4 studies x 5 series x 10 instances per patient (100 patients:
 * 20,000 instances, 400 studies). pacsnode's index is filled through the store, Orthanc's through `POST /instances`.
 * `--series` distinct series are read for the first-read figure (each once), then the first of them `--runs` times.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext } from '../src/app/context.js';
import { buildConfig } from '../src/config/load.js';
import { setLogLevel } from '../src/core/log.js';
import { metadataCacheStatus } from '../src/dicomweb/metadata.js';
import { Level } from '../src/store/levels.js';
import { makeTree } from '../test/helpers/factory.js';
import { ORTHANC_BINARY, startOrthanc } from '../test/helpers/networking.js';
import { startServer } from '../test/helpers/process.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const PATIENTS = option('patients', 100);
const RUNS = option('runs', 15);
const SERIES = option('series', 20);
const SETTLE_MS = option('settle', 5) * 1000;
const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
/** Let the metadata cache builder write the series caches at ingest (else the first reads build them). */
const PREBUILD = !process.argv.includes('--no-prebuild');
const WITH_ORTHANC = !process.argv.includes('--no-orthanc') && existsSync(ORTHANC_BINARY) && existsSync(DICOMWEB_PLUGIN);
const SHAPE = { patients: PATIENTS, studies: 4, series: 5, instances: 10 };

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function request(url: string, method = 'GET', body?: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/dicom+json' };
    if (body) headers['content-length'] = body.length;
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

type Json = Record<string, { Value?: unknown[] }>;

/** One GET, checked: 200 and a JSON array; returns it and the time taken. */
async function timed(url: string): Promise<{ ms: number; list: Json[] }> {
  const t0 = performance.now();
  const r = await request(url);
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new Error(`${url} answered ${r.status}: ${r.body.toString().slice(0, 200)}`);
  return { ms, list: JSON.parse(r.body.toString()) as Json[] };
}

function report(server: string, name: string, times: number[]): number {
  const m = median(times);
  console.log(`${server.padEnd(9)} ${name.padEnd(44)} median ${m.toFixed(1).padStart(7)} ms  (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)}, n=${times.length})`);
  return m;
}

async function measure(server: string, base: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const queries = [
    { name: 'QIDO /studies (all)', path: 'studies', expected: PATIENTS * SHAPE.studies },
    // makeTree names every fifth patient KOWALSKI.
    { name: 'QIDO /studies?PatientName=KO*', path: 'studies?PatientName=KO*', expected: Math.ceil((PATIENTS - 2) / 5) * SHAPE.studies },
  ];
  let studies: Json[] = [];
  for (const q of queries) {
    const first = await timed(`${base}${q.path}`);
    if (first.list.length !== q.expected) throw new Error(`${server}: ${q.name} gave ${first.list.length} studies, expected ${q.expected}`);
    if (q.path === 'studies') studies = first.list;
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) times.push((await timed(`${base}${q.path}`)).ms);
    out[q.name] = report(server, q.name, times);
  }
  // Series of the first studies, for the metadata reads.
  const seriesPaths: string[] = [];
  for (const study of studies) {
    const st = study['0020000D']!.Value![0] as string;
    const { list } = await timed(`${base}studies/${st}/series`);
    for (const se of list) seriesPaths.push(`studies/${st}/series/${se['0020000E']!.Value![0] as string}/metadata`);
    if (seriesPaths.length >= SERIES) break;
  }
  const firstReads: number[] = [];
  for (const path of seriesPaths.slice(0, SERIES)) {
    const r = await timed(`${base}${path}`);
    if (r.list.length !== SHAPE.instances) throw new Error(`${server}: ${path} gave ${r.list.length} instances`);
    firstReads.push(r.ms);
  }
  out['series metadata, first read'] = report(server, 'series metadata, first read', firstReads);
  const again: number[] = [];
  for (let i = 0; i < RUNS; i++) again.push((await timed(`${base}${seriesPaths[0]!}`)).ms);
  out['series metadata, again'] = report(server, 'series metadata, again', again);
  return out;
}

/**
 * Stores the files through the store; with `PREBUILD`, StableAge is 1 s and the metadata cache builder writes every
 * series' cache when it becomes stable, during the ingestion (as a running server does); the function returns once
 * the last series is built. Prints the ingest rate and how long the builder ran on after the last instance.
 */
async function populatePacsnode(dir: string, files: Buffer[]): Promise<void> {
  setLogLevel('warn');
  const { config } = buildConfig({}, 'bench', { StorageDirectory: dir, IndexDirectory: dir, SyncStorageArea: false, HttpPort: 0, DicomPort: 0, StableAge: PREBUILD ? 1 : 60 });
  const ctx = await createContext(config);
  try {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < files.length) await ctx.store.store(files[next++]!, { kind: 'unknown' });
      }),
    );
    const ingestMs = performance.now() - t0;
    console.log(`pacsnode  ingest through the store: ${Math.round(files.length / (ingestMs / 1000))} instances/s (${PREBUILD ? 'metadata cache builder on' : 'no prebuilt metadata cache'})`);
    if (!PREBUILD) return;
    const { builder } = metadataCacheStatus(ctx.store);
    const series = ctx.index.list(Level.Series);
    while (series.some((r) => !ctx.store.isStable(r.publicId))) await new Promise((r) => setTimeout(r, 100));
    await builder?.idle();
    const built = metadataCacheStatus(ctx.store).computed;
    const afterMs = performance.now() - t0 - ingestMs;
    console.log(`pacsnode  metadata cache: ${built} of ${series.length} series built, the last ${(afterMs / 1000).toFixed(1)} s after the last instance (StableAge 1 s)`);
  } finally {
    await ctx.close();
  }
}

async function populateOrthanc(url: string, files: Buffer[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < files.length) {
        const r = await request(`${url}/instances`, 'POST', files[next++]!);
        if (r.status !== 200) throw new Error(`Orthanc POST /instances answered ${r.status}`);
      }
    }),
  );
}

async function main(): Promise<void> {
  const files = [...makeTree(SHAPE)];
  console.log(`DICOMweb query benchmark: ${files.length} instances, ${PATIENTS * SHAPE.studies} studies; median of ${RUNS} runs`);
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-bench-dicomweb-'));
  const summary: Record<string, Record<string, number>> = {};
  try {
    const storage = join(dir, 'pacsnode-storage');
    await populatePacsnode(storage, files);
    const configPath = join(dir, 'pacsnode.json');
    writeFileSync(configPath, JSON.stringify({ HttpPort: 0, DicomPort: 0, StorageDirectory: storage }));
    const server = await startServer(configPath);
    try {
      summary.pacsnode = await measure('pacsnode', `${server.url}/dicom-web/`);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    if (WITH_ORTHANC) {
      const orthanc = await startOrthanc(join(dir, 'orthanc'), 'BENCH', { Plugins: [DICOMWEB_PLUGIN] });
      try {
        await populateOrthanc(orthanc.url, files);
        await new Promise((r) => setTimeout(r, SETTLE_MS));
        summary.orthanc = await measure('orthanc', `${orthanc.url}/dicom-web/`);
      } finally {
        await orthanc.stop();
      }
    }
    if (summary.pacsnode && summary.orthanc) {
      for (const name of Object.keys(summary.pacsnode)) {
        console.log(`ratio pacsnode / orthanc, ${name}: ${(summary.pacsnode[name]! / summary.orthanc[name]!).toFixed(2)}`);
      }
    }
  } finally {
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
