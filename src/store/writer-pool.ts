/**
 * A few threads that write whole files synchronously: mkdir (when needed), open, write, fdatasync, close — one
 * message round trip per file instead of four or five thread-pool round trips on the event loop. Used by the
 * filesystem storage area for inputs that are already in memory (nearly every DICOM instance).
 */
import { Worker } from 'node:worker_threads';
import { logger } from '../core/log.js';

/**
 * V8 limits of the storage area's writer and reader threads: their JavaScript only passes buffers to system calls,
 * so a young generation of 2 MB (V8's default grows to tens of MB per thread) is plenty. Measured: the server's peak
 * RSS after the harness's STOW-RS and REST ingest 212-241 -> 188-203 MB (four paired runs), ingest rates unchanged.
 */
export const IO_THREAD_LIMITS = { maxYoungGenerationSizeMb: 2 };

const log = logger('store');

// The worker's code (CommonJS, evaluated): it only touches the paths it is given.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const made = new Set();
parentPort.on('message', (m) => {
  try {
    if (!m.dirKnown && !made.has(m.dir)) { fs.mkdirSync(m.dir, { recursive: true }); made.add(m.dir); }
    let fd;
    try {
      fd = fs.openSync(m.path, 'wx');
    } catch (e) {
      // A folder believed to exist but removed behind our back: make it again.
      if (e.code !== 'ENOENT') throw e;
      fs.mkdirSync(m.dir, { recursive: true });
      fd = fs.openSync(m.path, 'wx');
    }
    try {
      const data = m.data;
      let offset = 0;
      while (offset < data.length) offset += fs.writeSync(fd, data, offset, data.length - offset);
      if (m.sync) fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    parentPort.postMessage({ id: m.id });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e), code: e && e.code });
  }
});
`;

interface Job {
  resolve: () => void;
  reject: (e: Error) => void;
}

export class WriterPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Job>();
  private nextId = 1;
  private nextWorker = 0;

  private closed = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.workers.push(this.spawn(i));
  }

  /** A writer thread; if it ever dies, its pending jobs fail and a new thread takes its place. */
  private spawn(slot: number): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: IO_THREAD_LIMITS });
    worker.unref();
    const mine = new Set<number>();
    (worker as Worker & { jobs?: Set<number> }).jobs = mine;
    worker.on('message', (m: { id: number; error?: string; code?: string }) => {
      const job = this.pending.get(m.id);
      mine.delete(m.id);
      if (!job) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) job.reject(Object.assign(new Error(m.error), { code: m.code }));
      else job.resolve();
    });
    // An error in the thread itself (not in a write, which is answered as a message) ends it: 'exit' follows.
    worker.on('error', (e) => log.error(`file writer thread failed: ${e.message}`));
    worker.on('exit', () => {
      for (const id of mine) {
        const job = this.pending.get(id);
        this.pending.delete(id);
        job?.reject(new Error('the file writer thread stopped'));
      }
      mine.clear();
      if (!this.closed) this.workers[slot] = this.spawn(slot);
    });
    return worker;
  }

  /**
   * Writes `data` to a new file `path` (failing if it exists) in `dir`, made first unless `dirKnown` (and made
   * anyway if it turns out to be missing).
   */
  write(path: string, data: Uint8Array, sync: boolean, dir: string, dirKnown = false): Promise<void> {
    const id = this.nextId++;
    const worker = this.workers[this.nextWorker++ % this.workers.length]! as Worker & { jobs: Set<number> };
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.jobs.add(id);
      worker.postMessage({ id, path, data, sync, dir, dirKnown });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
