/**
 * Archive benchmark: a generated study of a few hundred MB is stored in a real pacsnode child process, then
 * downloaded as `GET /studies/{id}/archive` and `GET /studies/{id}/media` (streamed ZIP). Prints the download
 * throughput (MB/s of DICOM files archived, and of ZIP received by the client) and the server's peak RSS (VmHWM, reset before each download)
 * next to its RSS before the download, so that a memory growing with the study would show. With Orthanc installed
 * (and not `--no-orthanc`), the same study is downloaded from a real Orthanc in the same run.
 *
 *   node --import tsx bench/archive.ts [--n 600] [--kb 512] [--runs 3] [--compression] [--no-orthanc]
 *
 * `--compression` runs pacsnode with StorageCompression (files inflated into the archive).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeInstance } from '../test/helpers/factory.js';
import { startServer } from '../test/helpers/process.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const N = option('n', 600);
const KB = option('kb', 512);
const RUNS = option('runs', 3);
const COMPRESSION = process.argv.includes('--compression');
const WITH_ORTHANC = !process.argv.includes('--no-orthanc') && existsSync('/usr/sbin/Orthanc');

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

interface Target {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

function statusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function resetHwm(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false; // not permitted: the peak is then the one since start
  }
}

function post(url: string, body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/instances`, { method: 'POST', agent, headers: { 'content-length': body.length } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`POST /instances: ${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * CT-like pixel values instead of the factory's repeating pattern (which deflates 100:1): a 12-bit random walk,
 * so that a server that deflates its archives (Orthanc) is measured on realistic data. The pixel data is the last
 * element of the factory's files.
 */
function fillPixels(file: Buffer, pixelBytes: number, seed: number): void {
  const side = Math.max(1, Math.floor(Math.sqrt(pixelBytes / 2)));
  const start = file.length - side * side * 2;
  let state = Math.imul(seed + 1, 2654435761) >>> 0;
  let v = 1024;
  for (let o = start; o < file.length; o += 2) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    v = Math.min(4095, Math.max(0, v + ((state >>> 16) % 41) - 20));
    file.writeUInt16LE(v, o);
  }
}

/** Stores the study, generated one instance at a time (the client holds a few instances, not the study). */
async function storeStudy(url: string): Promise<{ study: string; bytes: number }> {
  let next = 0;
  let bytes = 0;
  let study = '';
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < N) {
        const i = next++;
        const file = makeInstance({
          patientId: 'BENCH',
          patientName: 'ARCHIVE^BENCH',
          studyInstanceUid: '1.2.826.0.1.3680043.10.1',
          seriesInstanceUid: `1.2.826.0.1.3680043.10.1.${1 + (i % 4)}`,
          sopInstanceUid: `1.2.826.0.1.3680043.10.1.${1 + (i % 4)}.${i}`,
          modality: ['CT', 'MR', 'PT', 'CR'][i % 4],
          instanceNumber: i + 1,
          pixelBytes: KB * 1024 - 1500,
        });
        fillPixels(file, KB * 1024 - 1500, i);
        bytes += file.length;
        study = (JSON.parse(await post(url, file)) as { ParentStudy: string }).ParentStudy;
      }
    }),
  );
  return { study, bytes };
}

/** Downloads, counting bytes without keeping them; resolves with the size and the time in ms. */
function download(url: string): Promise<{ bytes: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    http
      .get(url, { agent }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`GET ${url}: ${res.statusCode}`));
        let bytes = 0;
        res.on('data', (d: Buffer) => (bytes += d.length));
        res.on('end', () => resolve({ bytes, ms: performance.now() - t0 }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

async function startPacsnode(dir: string): Promise<Target> {
  const config = join(dir, 'pacsnode.json');
  writeFileSync(
    config,
    JSON.stringify({ HttpPort: 0, DicomPort: 0, StorageDirectory: join(dir, 'pacsnode-storage'), StorageCompression: COMPRESSION }),
  );
  // The built CLI when it has the archive routes (run `npm run build` first), the sources through tsx otherwise.
  const server = await startServer(config, { useBin: existsSync(new URL('../dist/rest/routes/archive.js', import.meta.url)) });
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
    JSON.stringify({
      HttpPort: port,
      DicomPort: port + 1,
      StorageDirectory: join(dir, 'orthanc-storage'),
      StorageCompression: COMPRESSION,
      Plugins: [],
      RemoteAccessAllowed: false,
    }),
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

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  console.log(`archive benchmark: ${N} instances of ~${KB} KB (${((N * KB) / 1024).toFixed(0)} MB), ${RUNS} runs${COMPRESSION ? ', StorageCompression' : ''}`);
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-bench-archive-'));
  try {
    const targets: Array<(d: string) => Promise<Target>> = [startPacsnode];
    if (WITH_ORTHANC) targets.push(startOrthanc);
    for (const start of targets) {
      const target = await start(dir);
      try {
        const t0 = performance.now();
        const { study, bytes } = await storeStudy(target.url);
        console.log(`${target.name.padEnd(8)} stored ${(bytes / 1e6).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        for (const kind of ['archive', 'media']) {
          const rates: number[] = [];
          let peak = 0;
          let before = 0;
          let size = 0;
          const dicomRates: number[] = [];
          let resettable = true;
          for (let run = 0; run < RUNS; run++) {
            before = Math.max(before, statusMb(target.pid, 'VmRSS'));
            resettable = resetHwm(target.pid) && resettable;
            const r = await download(`${target.url}/studies/${study}/${kind}`);
            peak = Math.max(peak, statusMb(target.pid, 'VmHWM'));
            size = r.bytes;
            rates.push(r.bytes / 1e6 / (r.ms / 1000));
            dicomRates.push(bytes / 1e6 / (r.ms / 1000));
          }
          console.log(
            `${target.name.padEnd(8)} GET /studies/{id}/${kind.padEnd(7)}: median ${median(dicomRates).toFixed(0)} MB/s of DICOM ` +
              `[${dicomRates.map((x) => x.toFixed(0)).join(', ')}], ${median(rates).toFixed(0)} MB/s of ZIP (${(size / 1e6).toFixed(0)} MB), ` +
              `server RSS before ${before.toFixed(0)} MB, peak during ${peak.toFixed(0)} MB${resettable ? '' : ' (peak since start)'}`,
          );
        }
      } finally {
        await target.stop();
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
