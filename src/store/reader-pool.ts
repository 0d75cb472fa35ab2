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
      const target = new Uint8Array(memories.get(j.memoryId), j.byteOffset, j.length);
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
  /**
   * The shared memory blocks the threads know, by id: each is sent to them once (sending one in every message cost
   * more than the reads), then named by its id. Keep the blocks few and long-lived: the threads hold on to them.
   */
  private readonly memories = new Map<SharedArrayBuffer, number>();
  private readonly pending = new Map<number, ReadJob[]>();
  private queue: ReadJob[] = [];
  private nextId = 1;
  private nextWorker = 0;
  private closed = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.workers.push(this.spawn(i));
  }

  /** Whether `target` can be read into by the threads (it lives in a SharedArrayBuffer). */
  static canRead(target: Buffer): boolean {
    return target.buffer instanceof SharedArrayBuffer;
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

  /** Sends the queued reads, split evenly over the threads (so that reads from a cold disk overlap). */
  private flush(): void {
    const jobs = this.queue;
    this.queue = [];
    const parts = Math.min(this.workers.length, jobs.length);
    const per = Math.ceil(jobs.length / parts);
    for (let start = 0; start < jobs.length; start += per) {
      const batch = jobs.slice(start, start + per);
      const id = this.nextId++;
      const worker = this.workers[this.nextWorker++ % this.workers.length]!;
      this.pending.set(id, batch);
      worker.batches.add(id);
      worker.postMessage({
        id,
        jobs: batch.map((j) => ({
          path: j.path,
          memoryId: this.memoryId(j.target.buffer as SharedArrayBuffer),
          byteOffset: j.target.byteOffset,
          length: j.target.length,
          position: j.position,
        })),
      });
    }
  }

  private memoryId(memory: SharedArrayBuffer): number {
    let id = this.memories.get(memory);
    if (id === undefined) {
      id = this.memories.size + 1;
      this.memories.set(memory, id);
      for (const worker of this.workers) worker.postMessage({ memoryId: id, memory });
    }
    return id;
  }

  /** A reader thread; if it ever dies, its pending reads fail and a new thread takes its place. */
  private spawn(slot: number): Worker & { batches: Set<number> } {
    const worker = Object.assign(new Worker(WORKER_SOURCE, { eval: true }), { batches: new Set<number>() });
    worker.unref();
    for (const [memory, memoryId] of this.memories) worker.postMessage({ memoryId, memory });
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
      if (!this.closed) this.workers[slot] = this.spawn(slot);
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
