/**
 * C-STORE ingest benchmark: DCMTK `storescu` against a real pacsnode child process, DCMTK `storescp` (the floor:
 * a C++ receiver that only writes files) and, when installed, a real Orthanc, in one run; then one large instance
 * (200 MB by default) sent to each, to show the receive time and how much the receiver's memory grows with it.
 *
 *   npm run bench:cstore -- [--n 1000] [--pixel-bytes 38000] [--runs 3] [--assoc 4] [--large-mb 200]
 *                           [--timeout 300] [--max-minutes 30] [--no-orthanc] [--no-storescp] [--no-nosync]
 *                           [--no-parallel] [--warmup 50] [--src | --bin]
 *
 * Every DCMTK process gets TCP_NODELAY=1 (Debian's DCMTK 3.6.7 keeps Nagle on otherwise: ~40 ms per DIMSE
 * response). Runs are interleaved (run 1 of every target, then run 2, ...) because this machine is shared and noisy.
 * See bench/README.md for how to read the figures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeInstance, makeTree } from '../test/helpers/factory.js';
import { ROOT, startServer } from '../test/helpers/process.js';

// ---------------------------------------------------------------- options

function option(name: string, fallback: number, min: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value < min || value > max) {
    console.error(`--${name} must be a number in ${min}..${max}`);
    process.exit(2);
  }
  return value;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

const N = option('n', 1000, 1, 100000);
const PIXEL_BYTES = option('pixel-bytes', 38000, 2, 10_000_000);
const RUNS = option('runs', 3, 1, 20);
const ASSOC = option('assoc', 4, 2, 16);
const LARGE_MB = flag('no-large') ? 0 : option('large-mb', 200, 0, 2000);
const STEP_TIMEOUT_MS = option('timeout', 300, 10, 3600) * 1000;
const MAX_MINUTES = option('max-minutes', 30, 1, 240);
const WARMUP = option('warmup', 50, 0, 100000);
const WITH_ORTHANC = !flag('no-orthanc') && existsSync('/usr/sbin/Orthanc');
const WITH_STORESCP = !flag('no-storescp');
const WITH_NOSYNC = !flag('no-nosync');
const WITH_PARALLEL = !flag('no-parallel');

/** The built CLI (what users run) when it is at least as new as every source file, else the sources through tsx. */
function useBuiltCli(): boolean {
  if (flag('src')) return false;
  const built = join(ROOT, 'dist/cli/main.js');
  if (!existsSync(built)) return false;
  if (flag('bin')) return true;
  const builtAt = statSync(built).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  return newest(join(ROOT, 'src')) <= builtAt;
}
const USE_BIN = useBuiltCli();
// bin/pacsnode sets this before loading the CLI; do the same when running the sources, so both paths compare.
if (!USE_BIN) process.env.UV_THREADPOOL_SIZE ??= '16';

/** DCMTK clients and servers: Nagle off (see the header). */
const DCMTK_ENV = { ...process.env, TCP_NODELAY: '1' };

// ---------------------------------------------------------------- processes we start (and only those)

const children = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
function killStarted(): void {
  for (const child of children) child.kill('SIGKILL');
}

function exitPromise(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
async function stopChild(child: ChildProcess, graceMs = 10000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exitPromise(child);
  clearTimeout(timer);
}

/** Keeps the last `max` characters of a stream (a server's log, for error messages). */
function tail(stream: NodeJS.ReadableStream | null, max = 8192): () => string {
  let text = '';
  stream?.on('data', (d: Buffer) => {
    text = (text + d.toString()).slice(-max);
  });
  return () => text;
}

/** Runs a tool to completion within `timeoutMs` (killed otherwise); rejects on a non-zero exit. */
function runTool(cmd: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { env: DCMTK_ENV, stdio: ['ignore', 'ignore', 'pipe'] }));
    const stderr = tail(child.stderr, 4000);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} timed out after ${timeoutMs / 1000} s:\n${stderr()}`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} exited with ${code ?? signal}:\n${stderr()}`));
    });
  });
}

function storescu(port: number, aet: string, inputs: string[], scanDirs: boolean): Promise<void> {
  const args = ['-aet', 'STORESCU', '-aec', aet, '-nh', '-to', '10', ...(scanDirs ? ['+sd', '+r'] : []), '127.0.0.1', String(port), ...inputs];
  return runTool('storescu', args, STEP_TIMEOUT_MS);
}

async function waitForEcho(port: number, aet: string, what: string, isAlive: () => boolean): Promise<void> {
  const deadline = Date.now() + 30000;
  for (;;) {
    if (!isAlive()) throw new Error(`${what} exited while starting`);
    try {
      await runTool('echoscu', ['-aet', 'ECHOSCU', '-aec', aet, '-to', '2', '127.0.0.1', String(port)], 5000);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what} does not answer C-ECHO on port ${port}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- /proc figures

function procStatus(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
const vmHwmMb = (pid: number): number => procStatus(pid, 'VmHWM');
const vmRssMb = (pid: number): number => procStatus(pid, 'VmRSS');

/** CPU time (user + system, all threads) of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

let hwmResetRefused = false;
/** Resets VmHWM to the current RSS (Linux >= 4.0); when refused, the figure is the peak since start. */
function resetHwm(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    hwmResetRefused = true;
  }
}

// ---------------------------------------------------------------- REST (pacsnode, Orthanc)

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(60000) });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return (await res.json()) as T;
}

async function clearRest(url: string): Promise<void> {
  for (const id of await getJson<string[]>(`${url}/patients`)) {
    const res = await fetch(`${url}/patients/${id}`, { method: 'DELETE', signal: AbortSignal.timeout(120000) });
    if (!res.ok) throw new Error(`DELETE /patients/${id} answered ${res.status}`);
  }
  const left = await countRest(url);
  if (left !== 0) throw new Error(`${left} instances left after deleting every patient`);
}

async function countRest(url: string): Promise<number> {
  return (await getJson<{ CountInstances: number }>(`${url}/statistics`)).CountInstances;
}

// ---------------------------------------------------------------- targets

interface StoredFile {
  size: number;
  digest: Digest;
}

interface Target {
  name: string;
  port: number;
  aet: string;
  pid(): number;
  /** Empties the target (new storage for storescp, DELETE of every patient for the REST servers). */
  reset(): Promise<void>;
  count(): Promise<number>;
  /** The one stored instance (after the large-instance send). */
  stored(): Promise<StoredFile>;
  stop(): Promise<void>;
  /** The last lines the server wrote on stderr (for error messages). */
  log(): string;
}

/** Names the target and appends the server's last log lines to a failed send's error. */
function failed(target: Target): (e: Error) => never {
  return (e) => {
    const log = target.log().trim();
    throw new Error(`${target.name}: ${e.message}${log ? `\n--- ${target.name} log (last lines) ---\n${log.split('\n').slice(-15).join('\n')}` : ''}`);
  };
}

async function startPacsnode(dir: string, name: string, sync: boolean): Promise<Target> {
  const config = join(dir, `${name}.json`);
  writeFileSync(config, JSON.stringify({ HttpPort: 0, DicomPort: 0, StorageDirectory: join(dir, `${name}-storage`), SyncStorageArea: sync }));
  const server = await startServer(config, { useBin: USE_BIN });
  track(server.child);
  const url = server.url;
  return {
    name,
    port: server.dicomPort,
    aet: 'ORTHANC',
    pid: () => server.child.pid!,
    reset: () => clearRest(url),
    count: () => countRest(url),
    stored: () => storedViaRest(url),
    log: server.stderr,
    stop: async () => {
      await stopChild(server.child);
      const err = server.stderr().trim();
      if (err) console.log(`  (${name} stderr, last lines: ${err.split('\n').slice(-5).join(' | ')})`);
    },
  };
}

async function storedViaRest(url: string): Promise<StoredFile> {
  const ids = await getJson<string[]>(`${url}/instances`);
  if (ids.length !== 1) throw new Error(`expected 1 instance, found ${ids.length}`);
  const { FileSize } = await getJson<{ FileSize: number }>(`${url}/instances/${ids[0]}`);
  const res = await fetch(`${url}/instances/${ids[0]}/file`, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
  if (!res.ok || !res.body) throw new Error(`GET /instances/${ids[0]}/file answered ${res.status}`);
  const digest = await datasetDigest(res.body as unknown as AsyncIterable<Uint8Array>);
  if (digest.size !== FileSize) throw new Error(`/file sent ${digest.size} bytes, FileSize says ${FileSize}`);
  return { size: FileSize, digest };
}

async function startOrthanc(dir: string): Promise<Target> {
  const [httpPort, dicomPort] = [await freePort(), await freePort()];
  const storage = join(dir, 'orthanc-storage');
  const config = join(dir, 'orthanc.json');
  // Orthanc 1.10 cannot bind its DICOM port to loopback only: accept C-STORE/C-ECHO from our two AETs at 127.0.0.1.
  writeFileSync(
    config,
    JSON.stringify({
      Name: 'pacsnode-bench',
      StorageDirectory: storage,
      IndexDirectory: storage,
      HttpPort: httpPort,
      DicomPort: dicomPort,
      DicomAet: 'ORTHANC',
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      HttpCompressionEnabled: false,
      Plugins: [],
      SaveJobs: false,
      SyncStorageArea: true, // the 1.10 default, written out: same durability as pacsnode's default
      DicomCheckModalityHost: true,
      DicomAlwaysAllowEcho: false,
      DicomAlwaysAllowStore: false,
      DicomModalities: { storescu: ['STORESCU', '127.0.0.1', 11117], echoscu: ['ECHOSCU', '127.0.0.1', 11118] },
    }),
  );
  // DICOM side: Orthanc's DIMSE layer is DCMTK's, which reads the TCP_NODELAY environment variable (the
  // "TcpNoDelay" option of orthanc.json only concerns the HTTP server).
  const child = track(spawn('/usr/sbin/Orthanc', [config], { env: DCMTK_ENV, stdio: ['ignore', 'ignore', 'pipe'] }));
  const log = tail(child.stderr);
  const url = `http://127.0.0.1:${httpPort}`;
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (!alive()) throw new Error(`Orthanc exited while starting:\n${log()}`);
    try {
      if ((await fetch(`${url}/system`, { signal: AbortSignal.timeout(2000) })).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`Orthanc did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await waitForEcho(dicomPort, 'ORTHANC', 'Orthanc', alive);
  return {
    name: 'orthanc',
    port: dicomPort,
    aet: 'ORTHANC',
    pid: () => child.pid!,
    reset: () => clearRest(url),
    count: () => countRest(url),
    stored: () => storedViaRest(url),
    log,
    stop: () => stopChild(child),
  };
}

/** DCMTK storescp, single-process (its default): a new process and a new output folder for every reset. */
async function startStorescp(dir: string): Promise<Target> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let out = '';
  let generation = 0;
  let log = (): string => '';
  const files = (): string[] => (out ? readdirSync(out).map((f) => join(out, f)) : []);
  const stopCurrent = async (): Promise<void> => {
    if (child) await stopChild(child);
    child = undefined;
    if (out) rmSync(out, { recursive: true, force: true });
  };
  const target: Target = {
    name: 'storescp',
    port,
    aet: 'STORESCP',
    pid: () => child!.pid!,
    reset: async () => {
      await stopCurrent();
      out = join(dir, `storescp-${generation++}`);
      mkdirSync(out);
      const c = track(spawn('storescp', ['-aet', 'STORESCP', '-od', out, String(port)], { env: DCMTK_ENV, stdio: ['ignore', 'ignore', 'pipe'] }));
      log = tail(c.stderr);
      child = c;
      await waitForEcho(port, 'STORESCP', 'storescp', () => c.exitCode === null && c.signalCode === null);
    },
    count: async () => files().length,
    stored: async () => {
      const [file] = files();
      if (!file) throw new Error('storescp stored nothing');
      return { size: statSync(file).size, digest: await datasetDigest(createReadStream(file)) };
    },
    stop: stopCurrent,
    log: () => log(),
  };
  await target.reset();
  return target;
}

// ---------------------------------------------------------------- dataset digest (streamed)

interface Digest {
  size: number;
  /** Size of the preamble + "DICM" + File Meta Information group. */
  metaSize: number;
  /** SHA-256 of what follows the File Meta Information (the dataset as received over the network). */
  sha256: string;
}

/** Hashes a Part 10 stream's dataset, after its meta group (whose length is (0002,0000)), without buffering it. */
async function datasetDigest(chunks: AsyncIterable<Uint8Array>): Promise<Digest> {
  const hash = createHash('sha256');
  let head = Buffer.alloc(0);
  let metaSize = -1;
  let size = 0;
  for await (const c of chunks) {
    let chunk = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    const start = size;
    size += chunk.length;
    if (metaSize < 0) {
      head = Buffer.concat([head, chunk]);
      if (head.length < 144) continue;
      const groupLength = head.readUInt16LE(132) === 0x0002 && head.readUInt16LE(134) === 0x0000 && head.toString('latin1', 136, 138) === 'UL';
      metaSize = groupLength ? 144 + head.readUInt32LE(140) : 132;
      chunk = head;
      head = Buffer.alloc(0);
      if (metaSize < chunk.length) hash.update(chunk.subarray(metaSize));
      continue;
    }
    if (start + chunk.length > metaSize) hash.update(chunk.subarray(Math.max(0, metaSize - start)));
  }
  return { size, metaSize, sha256: hash.digest('hex') };
}

// ---------------------------------------------------------------- measurements

interface Sample {
  rate: number;
  cpu: number;
  rss: number;
}

async function measure(target: Target, inputs: string[], parallel: boolean, expected: number): Promise<Sample> {
  await target.reset();
  const pid = target.pid();
  resetHwm(pid);
  const cpu0 = cpuMs(pid);
  const t0 = performance.now();
  const send = parallel
    ? Promise.all(inputs.map((d) => storescu(target.port, target.aet, [d], true)))
    : storescu(target.port, target.aet, inputs, true);
  await send.catch(failed(target));
  const ms = performance.now() - t0;
  const cpu = cpuMs(pid) - cpu0;
  const rss = vmHwmMb(pid);
  const stored = await target.count();
  if (stored !== expected) throw new Error(`${target.name}: ${stored} instances stored, expected ${expected}`);
  return { rate: (expected * 1000) / ms, cpu: cpu / expected, rss };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function report(label: string, samples: Sample[]): number {
  const rates = samples.map((s) => s.rate);
  const rate = median(rates);
  console.log(
    `${label.padEnd(32)} median ${rate.toFixed(0).padStart(5)} instances/s [${Math.min(...rates).toFixed(0)}-${Math.max(...rates).toFixed(0)}]` +
      `  (${rates.map((r) => r.toFixed(0)).join(', ')})  server CPU ${median(samples.map((s) => s.cpu)).toFixed(2)} ms/instance` +
      `  peak RSS ${Math.max(...samples.map((s) => s.rss)).toFixed(0)} MB`,
  );
  return rate;
}

interface LargeResult {
  seconds: number;
  growth: number;
  rssBefore: number;
  stored: StoredFile;
}

async function sendLarge(target: Target, file: string): Promise<LargeResult> {
  await target.reset();
  const pid = target.pid();
  resetHwm(pid);
  const rssBefore = vmRssMb(pid);
  const t0 = performance.now();
  await storescu(target.port, target.aet, [file], false).catch(failed(target));
  const seconds = (performance.now() - t0) / 1000;
  const growth = vmHwmMb(pid) - rssBefore;
  const stored = await target.stored();
  return { seconds, growth, rssBefore, stored };
}

// ---------------------------------------------------------------- main

const startedTargets: Target[] = [];
let workDir = '';

/** Kills what we started (SIGKILL), waits for them (up to 5 s, so they are reaped), removes the temp folder. */
async function cleanup(): Promise<void> {
  const running = [...children];
  killStarted();
  await Promise.race([Promise.all(running.map(exitPromise)), new Promise((r) => setTimeout(r, 5000).unref())]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  for (const tool of ['storescu', 'echoscu', ...(WITH_STORESCP ? ['storescp'] : [])]) {
    if (!['/usr/bin', '/usr/local/bin', '/bin'].some((d) => existsSync(join(d, tool)))) throw new Error(`${tool} (DCMTK) not found`);
  }
  workDir = mkdtempSync(join(tmpdir(), 'pacsnode-cstore-'));
  const filesDir = join(workDir, 'files');
  const parts = Array.from({ length: ASSOC }, (_, k) => join(filesDir, `part${k}`));
  for (const p of parts) mkdirSync(p, { recursive: true });

  let bytes = 0;
  let count = 0;
  const tree = makeTree({ patients: Math.ceil(N / 100), studies: 2, series: 5, instances: 10, pixelBytes: PIXEL_BYTES });
  for (const file of tree) {
    writeFileSync(join(parts[count % ASSOC]!, `${count}.dcm`), file);
    bytes += file.length;
    if (++count === N) break;
  }
  console.log(
    `C-STORE benchmark: ${N} instances (${(bytes / 1e6).toFixed(1)} MB, ${(bytes / N / 1000).toFixed(1)} KB each), ${RUNS} runs interleaved, ` +
      `storescu 1 association${WITH_PARALLEL ? ` and ${ASSOC} parallel associations (${ASSOC} storescu processes, ~${Math.ceil(N / ASSOC)} files each)` : ''}`,
  );
  console.log(
    `pacsnode: ${USE_BIN ? 'built CLI (bin/pacsnode)' : 'sources through tsx (dist missing or older than src/; --bin forces it)'}; ` +
      `DCMTK clients/servers with TCP_NODELAY=1; load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  );
  console.log(
    'durability: pacsnode and Orthanc fsync every file (SyncStorageArea true); storescp 3.6.7 has no fsync option and never syncs, ' +
      (WITH_NOSYNC ? 'so "pacsnode-nosync" (SyncStorageArea false) is its like-for-like counterpart' : 'so compare it with pacsnode knowing that'),
  );

  const targets: Target[] = [];
  const add = (t: Target): void => {
    targets.push(t);
    startedTargets.push(t);
  };
  add(await startPacsnode(workDir, 'pacsnode', true));
  if (WITH_NOSYNC) add(await startPacsnode(workDir, 'pacsnode-nosync', false));
  if (WITH_STORESCP) add(await startStorescp(workDir));
  if (WITH_ORTHANC) add(await startOrthanc(workDir));
  const parallelTargets = WITH_PARALLEL ? targets.filter((t) => t.name === 'pacsnode' || t.name === 'orthanc') : [];

  if (WARMUP > 0) {
    // Not timed: JIT warm-up for pacsnode, page cache for the files, first-use costs for every target.
    const sample = readdirSync(parts[0]!).slice(0, WARMUP).map((f) => join(parts[0]!, f));
    for (const t of targets) {
      await t.reset();
      await storescu(t.port, t.aet, sample, false);
    }
  }
  const single = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
  const multi = new Map<string, Sample[]>(parallelTargets.map((t) => [t.name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const t of targets) single.get(t.name)!.push(await measure(t, [filesDir], false, N));
    for (const t of parallelTargets) multi.get(t.name)!.push(await measure(t, parts, true, N));
  }

  console.log('');
  const rates: Record<string, number> = {};
  for (const t of targets) rates[t.name] = report(`${t.name}, 1 association`, single.get(t.name)!);
  for (const t of parallelTargets) rates[`${t.name}/${ASSOC}`] = report(`${t.name}, ${ASSOC} associations`, multi.get(t.name)!);
  const ratio = (a: string, b: string, label: string): void => {
    if (rates[a] && rates[b]) console.log(`ratio ${label}: ${(rates[a] / rates[b]).toFixed(2)}x`);
  };
  ratio('pacsnode', 'storescp', 'pacsnode / storescp (1 assoc; pacsnode fsyncs, storescp does not)');
  ratio('pacsnode-nosync', 'storescp', 'pacsnode-nosync / storescp (1 assoc; neither fsyncs)');
  ratio('pacsnode', 'orthanc', 'pacsnode / orthanc (1 assoc; both fsync)');
  ratio(`pacsnode/${ASSOC}`, `orthanc/${ASSOC}`, `pacsnode / orthanc (${ASSOC} assoc)`);
  if (hwmResetRefused) console.log('note: /proc/PID/clear_refs was refused: peak RSS figures are peaks since each server started');
  for (const t of targets) if (t.name !== 'storescp') await t.reset(); // free their disk before the large file

  if (LARGE_MB > 0) {
    const largeFile = join(workDir, 'large.dcm');
    {
      const t0 = performance.now();
      const instance = makeInstance({ pixelBytes: LARGE_MB * 1e6, patientId: 'LARGE', patientName: 'LARGE^INSTANCE' });
      writeFileSync(largeFile, instance);
      console.log(`\nlarge instance: ${(instance.length / 1e6).toFixed(1)} MB generated and written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } // the buffer is unreachable from here on
    const source = await datasetDigest(createReadStream(largeFile));
    const sizeMb = source.size / 1e6;
    const largeTargets = targets.filter((t) => t.name !== 'pacsnode-nosync');
    for (const t of largeTargets) {
      const r = await sendLarge(t, largeFile);
      const same = r.stored.digest.sha256 === source.sha256;
      console.log(
        `${`${t.name}, ${sizeMb.toFixed(0)} MB instance`.padEnd(32)} received in ${r.seconds.toFixed(2)} s (${(sizeMb / r.seconds).toFixed(0)} MB/s), ` +
          `RSS growth ${r.growth.toFixed(1)} MB (VmHWM after minus VmRSS before; RSS before ${r.rssBefore.toFixed(0)} MB), ` +
          `stored ${r.stored.size} bytes = source ${r.stored.size - source.size >= 0 ? '+' : ''}${r.stored.size - source.size} ` +
          `(meta header ${r.stored.digest.metaSize} vs ${source.metaSize} bytes), dataset ${same ? 'identical to the source (SHA-256)' : 'DIFFERENT from the source'}`,
      );
      await t.reset(); // drop its copy of the large file
      if (!same && t.name === 'pacsnode') process.exitCode = 1;
    }
    rmSync(largeFile, { force: true });
  }
  console.log(`\nload average at end ${loadavg().map((l) => l.toFixed(2)).join(' ')} (2 shared cores: figures are noisy, compare within one run)`);
}

const watchdog = setTimeout(() => {
  console.error(`bench:cstore: stopped after --max-minutes ${MAX_MINUTES}`);
  void cleanup().finally(() => process.exit(1));
}, MAX_MINUTES * 60000);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanup().finally(() => process.exit(130)));
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const t of startedTargets) await t.stop().catch(() => undefined);
    await cleanup();
    clearTimeout(watchdog);
  });
