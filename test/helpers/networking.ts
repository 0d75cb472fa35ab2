/**
 * Peers for the REST networking tests (`/modalities`, `/queries`): a whole pacsnode (REST on port 0 and its DICOM
 * server on port 0), a DCMTK storescp, a peer that accepts TCP and never answers, and a JSON REST call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import { createDicomHandlers } from '../../src/app/dicom-handlers.js';
import type { Config } from '../../src/config/schema.js';
import { DicomScpServer } from '../../src/dimse/scp/server.js';
import { loadDicomTls } from '../../src/net/tls.js';
import { tempServer, type TestServer } from './context.js';
import { freePort, waitForPort } from './interop.js';

export { call, type Json } from './http.js';

export interface Node extends TestServer {
  aet: string;
  dicomPort: number;
  scp: DicomScpServer;
}

/**
 * A pacsnode with its REST API and its DICOM server (DICOM TLS only when `DicomTlsEnabled`; idle associations aborted
 * after `DicomScpTimeout`), on loopback port 0.
 */
export async function startNode(aet: string, overrides: Partial<Config> = {}): Promise<Node> {
  const t = await tempServer({ DicomAet: aet, ...overrides });
  const tls = t.ctx.config.DicomTlsEnabled ? loadDicomTls(t.ctx.config, 'acceptor') : undefined;
  const scp = new DicomScpServer(createDicomHandlers(t.ctx), { aet, maxPduLength: 16384, idleTimeoutMs: t.ctx.config.DicomScpTimeout * 1000, tls });
  const dicomPort = await scp.listen(0, '127.0.0.1');
  return {
    ...t,
    aet,
    dicomPort,
    scp,
    async close() {
      await scp.close(1000);
      await t.close();
    },
  };
}

export interface Storescp {
  port: number;
  dir: string;
  /** What it printed (with `verbose`: "Association Received", "Association Release", "Association Aborted"...). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * DCMTK storescp writing what it receives into `dir` (bit-preserving), on a free port (or `options.port`);
 * `options.args` are added to its command line (`-td 1`...), `options.verbose` logs each association.
 */
export async function startStorescp(dir: string, aet: string, options: { port?: number; verbose?: boolean; args?: string[] } = {}): Promise<Storescp> {
  mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const args = ['+B', '-od', dir, '-aet', aet, ...(options.verbose ? ['-v'] : []), ...(options.args ?? []), String(port)];
  const child: ChildProcess = spawn('storescp', args, {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port);
  return {
    port,
    dir,
    log: () => log,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * A TCP peer that accepts connections and never says anything: a DICOM node that hangs. `open()` counts the
 * connections still open, `received()` is every byte it was sent, in order.
 */
export async function startSilentPeer(): Promise<{ port: number; open(): number; received(): Buffer; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const chunks: Buffer[] = [];
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    open: () => sockets.size,
    received: () => Buffer.concat(chunks),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Waits for a condition, polling; throws after `ms` (a bound against hangs, not a timing assertion). */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const ORTHANC_BINARY = '/usr/sbin/Orthanc';

export interface Orthanc {
  url: string;
  dicomPort: number;
  log(): string;
  stop(): Promise<void>;
}

/**
 * A real Orthanc on loopback with a temp configuration (its ports are picked free first: it cannot listen on port
 * 0); `extra` is merged into the configuration (DicomModalities...). Resolves once its REST API answers.
 */
export async function startOrthanc(dir: string, aet: string, extra: Record<string, unknown>): Promise<Orthanc> {
  mkdirSync(dir, { recursive: true });
  const http = await freePort();
  const dicomPort = await freePort();
  const config = {
    Name: 'hc-orthanc',
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'storage'),
    HttpPort: http,
    DicomPort: dicomPort,
    DicomAet: aet,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    Plugins: [],
    DicomAssociationCloseDelay: 0,
    SyncStorageArea: false,
    SaveJobs: false,
    OrthancExplorerEnabled: false,
    WebDavEnabled: false,
    MetricsEnabled: false,
    HttpThreadsCount: 4,
    DicomThreadsCount: 2,
    ...extra,
  };
  const configPath = join(dir, 'orthanc.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  let log = '';
  // TCP_NODELAY=1: DCMTK inside Orthanc otherwise stalls each response ~40 ms (STYLE.md).
  const child = spawn(ORTHANC_BINARY, [configPath], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${http}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitUntil(async () => {
      if (child.exitCode !== null) throw new Error(`Orthanc exited at start:\n${log}`);
      return fetch(`${url}/system`).then((r) => r.ok, () => false);
    }, 'Orthanc to start', 30000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, dicomPort, log: () => log, stop };
}
