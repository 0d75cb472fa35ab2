/**
 * The storage area on a local folder, in Orthanc's layout: `root/ab/cd/abcd...` (the UUID in two levels of
 * folders). Writes go to `root/.pacsnode-tmp/uuid` first and are renamed into place by `publish()`.
 */
import { createReadStream, mkdirSync, renameSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { PacsError } from '../core/errors.js';
import type { PendingWrite, StorageArea } from './storage-area.js';
import { WriterPool } from './writer-pool.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class FilesystemStorage implements StorageArea {
  private readonly tmpDir: string;
  private readonly knownDirs = new Set<string>();
  private readonly writers: WriterPool;

  constructor(
    readonly root: string,
    private readonly options: { sync: boolean; writerThreads?: number } = { sync: true },
  ) {
    this.tmpDir = join(root, '.pacsnode-tmp');
    mkdirSync(this.tmpDir, { recursive: true });
    // Two threads: fsyncs overlap, and (measured on 2 cores, bench/ingest.ts) more threads only add context switches.
    this.writers = new WriterPool(options.writerThreads ?? 2);
  }

  get description(): string {
    return `folder ${this.root}`;
  }

  /** Orthanc's path of an attachment. */
  pathOf(uuid: string): string {
    if (!UUID_RE.test(uuid)) throw new PacsError('ParameterOutOfRange', `not an attachment UUID: ${uuid}`);
    return join(this.root, uuid.slice(0, 2), uuid.slice(2, 4), uuid);
  }

  async begin(uuid: string): Promise<PendingWrite> {
    const finalPath = this.pathOf(uuid);
    const tmpPath = join(this.tmpDir, uuid);
    const dir = join(this.root, uuid.slice(0, 2), uuid.slice(2, 4));
    const sync = this.options.sync;
    // Nothing is opened until the first write: `writeAll` hands a whole file to a writer thread at once.
    let fh: FileHandle | undefined;
    let opened = false;
    let finished = false;
    let size = 0;
    let published = false;
    const ensureDir = async () => {
      // The final folder is made before the commit, so that publish() is a bare rename.
      if (!this.knownDirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.knownDirs.add(dir);
      }
    };
    return {
      uuid,
      writeAll: async (data: Buffer) => {
        if (opened || finished) throw new PacsError('CannotWriteFile', 'writeAll on a started write');
        opened = true;
        const newDir = this.knownDirs.has(dir) ? undefined : dir;
        await this.writers.write(tmpPath, data, sync, newDir);
        if (newDir) this.knownDirs.add(dir);
        size = data.length;
        finished = true;
      },
      write: async (chunk: Buffer) => {
        if (finished) throw new PacsError('CannotWriteFile', 'write after finish');
        if (!opened) {
          opened = true;
          await ensureDir();
          fh = await open(tmpPath, 'wx');
        }
        let offset = 0;
        while (offset < chunk.length) {
          const { bytesWritten } = await fh!.write(chunk, offset, chunk.length - offset, size);
          offset += bytesWritten;
          size += bytesWritten;
        }
      },
      finish: async () => {
        if (fh) {
          if (sync) await fh.datasync();
          await fh.close();
          fh = undefined;
        }
        finished = true;
        return size;
      },
      readRange: async (start: number, length: number) => {
        const reader = await open(tmpPath, 'r');
        try {
          const buf = Buffer.alloc(Math.max(0, Math.min(length, size - start)));
          const { bytesRead } = await reader.read(buf, 0, buf.length, start);
          return buf.subarray(0, bytesRead);
        } finally {
          await reader.close();
        }
      },
      publish: () => {
        if (published) return;
        try {
          renameSync(tmpPath, finalPath);
        } catch (e) {
          // The folder may have been removed behind our back (e.g. an empty one pruned): make it and retry once.
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          this.knownDirs.delete(dir);
          mkdirSync(dir, { recursive: true });
          this.knownDirs.add(dir);
          renameSync(tmpPath, finalPath);
        }
        published = true;
      },
      keep: () => {
        // The index row is committed: from now on the temp file must survive (start-up recovery publishes it).
        published = true;
      },
      abort: async () => {
        if (fh) {
          await fh.close().catch(() => undefined);
          fh = undefined;
        }
        if (opened && !published) await rm(tmpPath, { force: true });
      },
    };
  }

  /** Stops the writer threads. */
  async close(): Promise<void> {
    await this.writers.close();
  }

  async read(uuid: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(uuid));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new PacsError('InexistentFile', `attachment ${uuid} is missing from the storage area`, { cause });
      }
      if ((cause as NodeJS.ErrnoException).code === 'ERR_FS_FILE_TOO_LARGE') {
        throw new PacsError('NotImplemented', `attachment ${uuid} is too large to be read whole; it can be streamed`, { cause });
      }
      throw cause;
    }
  }

  async readRange(uuid: string, start: number, end: number): Promise<Buffer> {
    const fh = await open(this.pathOf(uuid), 'r').catch((cause: unknown) => {
      throw new PacsError('InexistentFile', `attachment ${uuid} is missing from the storage area`, { cause });
    });
    try {
      const buf = Buffer.alloc(Math.max(0, end - start));
      const { bytesRead } = await fh.read(buf, 0, buf.length, start);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  createReadStream(uuid: string, range?: { start: number; end: number }): Readable {
    // fs ranges are inclusive of `end`.
    return createReadStream(this.pathOf(uuid), range ? { start: range.start, end: range.end - 1 } : undefined);
  }

  async remove(uuid: string): Promise<void> {
    await rm(this.pathOf(uuid), { force: true });
  }

  async recover(isKnown: (uuid: string) => boolean): Promise<{ published: number; discarded: number }> {
    await mkdir(this.tmpDir, { recursive: true });
    let published = 0;
    let discarded = 0;
    for (const name of await readdir(this.tmpDir)) {
      const tmpPath = join(this.tmpDir, name);
      if (UUID_RE.test(name) && isKnown(name)) {
        const dir = join(this.root, name.slice(0, 2), name.slice(2, 4));
        mkdirSync(dir, { recursive: true });
        renameSync(tmpPath, this.pathOf(name));
        published++;
      } else {
        await rm(tmpPath, { force: true, recursive: true });
        discarded++;
      }
    }
    return { published, discarded };
  }
}

