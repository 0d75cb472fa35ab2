/**
 * A few threads that read whole small files synchronously (open, read, close) straight into shared memory: the reads
 * asked for in the same event-loop turn go to the threads in one message each, instead of two or three thread-pool
 * round trips per file on the event loop (on this 2-core VM an asynchronous `fs.open` cost the event loop about
 * 30 us, a `fs.read` 15 us: most of a WADO-RS study's time, docs/dicomweb.md). Only targets backed by a
 * `SharedArrayBuffer` can be read here (the thread writes into them, nothing is copied); the filesystem storage area
 * reads any other target itself.
 */
import { Worker } from 'node:worker_threads';
import { logger } from '../core/log.js';
import { IO_THREAD_LIMITS } from './writer-pool.js';

const log = logger('store');

// The worker's code (CommonJS, evaluated): it only reads the paths it is given, into the views it is given.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const memories = new Map();
parentPort.on('message', (m) => {
  if (m.memory) {
    memories.set(m.memoryId, m.memory);
    return;
  }
  const results = m.jobs.map((j) => {
    try {
      const memory = memories.get(j.memoryId);
      if (!memory) throw new Error('unknown shared memory block ' + j.memoryId);
      const target = new Uint8Array(memory, j.byteOffset, j.length);
      const fd = fs.openSync(j.path, 'r');
      let at = 0;
      try {
        while (at < target.length) {
          const n = fs.readSync(fd, target, at, target.length - at, j.position + at);
          if (n === 0) break;
          at += n;
        }
      } finally {
        fs.closeSync(fd);
      }
      return at;
    } catch (e) {
      return { error: String((e && e.message) || e), code: e && e.code };
    }
  });
  parentPort.postMessage({ id: m.id, results });
});
`;

/** Reads per message: the first parts of a retrieval come back after a few reads, not after the whole read-ahead. */
const BATCH = 8;
/** Thread (re)starts allowed; past them the pool gives up and the storage area reads on the event loop's pool. */
const MAX_STARTS = 20;

/**
 * The shared memory blocks the reader threads may read into: made known to them once each, then named by a number
 * (sending a block in every message cost more than the reads). Only long-lived blocks belong here (WADO-RS's part
 * blocks): the threads hold on to them.
 */
const shared = new Map<SharedArrayBuffer, number>();

/** Makes `memory` readable into by the reader threads (of every pool); returns it. */
export function shareWithReaders(memory: SharedArrayBuffer): SharedArrayBuffer {
  if (!shared.has(memory)) shared.set(memory, shared.size + 1);
  return memory;
}

interface ReadJob {
  path: string;
  target: Buffer;
  position: number;
  resolve: (bytesRead: number) => void;
  reject: (error: Error) => void;
}

type ReadResult = number | { error: string; code?: string };

export class ReaderPool {
  private readonly workers: Array<Worker & { batches: Set<number> }> = [];
  /** The shared blocks each thread has been sent. */
  private readonly known = new WeakMap<Worker, Set<number>>();
  private starts = 0;
  private readonly pending = new Map<number, ReadJob[]>();
  private queue: ReadJob[] = [];
  private nextId = 1;
  private nextWorker = 0;
  private closed = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.workers.push(this.spawn(i));
  }

  /** Whether `target` can be read into by the threads: it lives in a block made known by `shareWithReaders`. */
  static canRead(target: Buffer): boolean {
    return target.buffer instanceof SharedArrayBuffer && shared.has(target.buffer);
  }

  /** False once the threads could not be kept running: the caller reads some other way. */
  get usable(): boolean {
    return !this.closed && this.workers.length > 0;
  }

  /**
   * Reads `path` from `position` into `target` (SharedArrayBuffer-backed) until it is full or the file ends;
   * resolves with the number of bytes read. Reads asked for in the same turn travel together.
   */
  read(path: string, target: Buffer, position = 0): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the file reader threads are stopped'));
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ path, target, position, resolve, reject });
      if (this.queue.length === 1) queueMicrotask(() => this.flush());
    });
  }

  /** Sends the queued reads, a few per message, to the threads in turn (so that reads from a cold disk overlap). */
  private flush(): void {
    const jobs = this.queue;
    this.queue = [];
    if (this.workers.length === 0) {
      for (const job of jobs) job.reject(new Error('the file reader threads are stopped'));
      return;
    }
    for (let start = 0; start < jobs.length; start += BATCH) {
      const batch = jobs.slice(start, start + BATCH);
      const id = this.nextId++;
      const worker = this.workers[this.nextWorker++ % this.workers.length]!;
      this.introduce(worker, batch);
      this.pending.set(id, batch);
      worker.batches.add(id);
      worker.postMessage({
        id,
        jobs: batch.map((j) => ({
          path: j.path,
          memoryId: shared.get(j.target.buffer as SharedArrayBuffer),
          byteOffset: j.target.byteOffset,
          length: j.target.length,
          position: j.position,
        })),
      });
    }
  }

  /** Sends `worker` the shared blocks of `batch` it does not know yet. */
  private introduce(worker: Worker, batch: readonly ReadJob[]): void {
    let known = this.known.get(worker);
    if (!known) this.known.set(worker, (known = new Set()));
    for (const job of batch) {
      const memory = job.target.buffer as SharedArrayBuffer;
      const memoryId = shared.get(memory)!;
      if (known.has(memoryId)) continue;
      known.add(memoryId);
      worker.postMessage({ memoryId, memory });
    }
  }

  /** A reader thread; if it ever dies, its pending reads fail and a new thread takes its place. */
  private spawn(slot: number): Worker & { batches: Set<number> } {
    this.starts++;
    const worker = Object.assign(new Worker(WORKER_SOURCE, { eval: true, resourceLimits: IO_THREAD_LIMITS }), { batches: new Set<number>() });
    worker.unref();
    worker.on('message', (m: { id: number; results: ReadResult[] }) => {
      const batch = this.pending.get(m.id);
      worker.batches.delete(m.id);
      if (!batch) return;
      this.pending.delete(m.id);
      batch.forEach((job, i) => {
        const r = m.results[i];
        if (typeof r === 'number') job.resolve(r);
        else job.reject(Object.assign(new Error(r?.error ?? 'read failed'), { code: r?.code }));
      });
    });
    worker.on('error', (e) => log.error(`file reader thread failed: ${e.message}`));
    worker.on('exit', () => {
      for (const id of worker.batches) {
        for (const job of this.pending.get(id) ?? []) job.reject(new Error('the file reader thread stopped'));
        this.pending.delete(id);
      }
      worker.batches.clear();
      if (this.closed) return;
      // A thread that keeps dying is not restarted for ever: the pool gives up, reads go elsewhere.
      let next: (Worker & { batches: Set<number> }) | undefined;
      try {
        if (this.starts < MAX_STARTS) next = this.spawn(slot);
      } catch (e) {
        log.error(`cannot start a file reader thread: ${(e as Error).message}`);
      }
      if (next) this.workers[slot] = next;
      else void this.close();
    });
    return worker;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
    for (const job of this.queue) job.reject(new Error('the file reader threads are stopped'));
    this.queue = [];
  }
}
