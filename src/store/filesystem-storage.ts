/**
 * The storage area on a local folder, in Orthanc's layout: `root/ab/cd/abcd...` (the UUID in two levels of
 * folders). A write goes to `root/ab/cd/<uuid>.tmp` and is renamed into place, in the same folder, by `publish()`.
 * (One shared temp folder made every file creation 3-4 times dearer for the kernel: all inodes were allocated in
 * one block group, churned by deletions; measured in the issue note.)
 *
 * Start-up recovery walks the folders for `.tmp` files only after an unclean stop: a clean `close()` leaves the
 * marker file `.pacsnode-clean`, which opening removes.
 */
import { closeSync, createReadStream, existsSync, fdatasyncSync, mkdirSync, open as openCallback, openSync, read as readCallback, renameSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { PendingWrite, StorageArea } from './storage-area.js';
import { ReaderPool } from './reader-pool.js';
import { WriterPool } from './writer-pool.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TMP_SUFFIX = '.tmp';
const CLEAN_MARKER = '.pacsnode-clean';
const log = logger('store');

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

export class FilesystemStorage implements StorageArea {
  private readonly marker: string;
  private readonly knownDirs = new Set<string>();
  /** Undefined: whole files are written synchronously on the calling thread (no thread hop). */
  private readonly writers: WriterPool | undefined;
  /** Made at the first read into shared memory. */
  private readers: ReaderPool | undefined;

  constructor(
    readonly root: string,
    private readonly options: { sync: boolean; writerThreads?: number } = { sync: true },
  ) {
    mkdirSync(root, { recursive: true });
    spreadFolders(root);
    this.marker = join(root, CLEAN_MARKER);
    // With fsync, two writer threads by default: the event loop stays free during fsyncs. Without fsync, writes
    // go to the page cache at once and the thread hop (a structured clone and two messages) costs more than the
    // write itself: they happen on the calling thread. 0 forces the calling thread.
    const threads = options.writerThreads ?? (options.sync ? 2 : 0);
    this.writers = threads > 0 ? new WriterPool(threads) : undefined;
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
    const tmpPath = `${finalPath}${TMP_SUFFIX}`;
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
        // The folder cache may be stale (a folder pruned behind our back): the writers make it again on ENOENT.
        if (this.writers) await this.writers.write(tmpPath, data, sync, newDir ?? dir, newDir === undefined);
        else writeWholeFile(tmpPath, data, sync, dir, newDir === undefined);
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
        renameSync(tmpPath, finalPath);
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
  /** Stops the writer threads and marks the area as cleanly closed (no recovery walk at the next start). */
  async close(): Promise<void> {
    await this.writers?.close();
    await this.readers?.close();
    writeFileSync(this.marker, '');
  }

  async read(uuid: string, size?: number): Promise<Buffer> {
    // Known size: one open and one read (readInto) instead of readFile's open, fstat, read and close, each a hop to
    // the thread pool. A file found shorter than that is read again whole, so that its real size shows.
    if (size !== undefined && size > 0 && size <= 64 << 20) {
      const bytes = Buffer.allocUnsafe(size);
      if ((await this.readInto(uuid, bytes, 0)) === size) return bytes;
    }
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

  /**
   * A target in shared memory (WADO-RS's part buffers) is read by the reader threads (`reader-pool.ts`): the reads
   * asked for together travel in one message. Any other target: callbacks rather than a FileHandle: an open and
   * the reads (one when the OS gives the whole range at once) on the thread pool, then a synchronous close (closing a file opened for reading waits for no I/O; one hop to the thread
   * pool less measured 8 % less CPU per MB). fs.promises' readFile costs an fstat, a read per 512 KB, an async
   * close and a FileHandle on top, each hop to the thread pool and back costing CPU (docs/dicomweb.md, STOW-RS).
   */
  readInto(uuid: string, target: Buffer, offset: number, position = 0): Promise<number> {
    const path = this.pathOf(uuid);
    if (ReaderPool.canRead(target) && this.readers?.usable !== false) {
      this.readers ??= new ReaderPool(2);
      return this.readers.read(path, target.subarray(offset), position).catch((cause: NodeJS.ErrnoException) => {
        throw cause.code === 'ENOENT' ? new PacsError('InexistentFile', `attachment ${uuid} is missing from the storage area`, { cause }) : cause;
      });
    }
    return new Promise((resolve, reject) => {
      openCallback(path, 'r', (openError, fd) => {
        if (openError) {
          reject(
            openError.code === 'ENOENT'
              ? new PacsError('InexistentFile', `attachment ${uuid} is missing from the storage area`, { cause: openError })
              : openError,
          );
          return;
        }
        let at = offset;
        const step = (): void => {
          readCallback(fd, target, at, target.length - at, position + at - offset, (readError, bytesRead) => {
            if (readError) {
              closeSync(fd);
              reject(readError);
              return;
            }
            at += bytesRead;
            if (bytesRead > 0 && at < target.length) {
              step();
              return;
            }
            closeSync(fd);
            resolve(at - offset);
          });
        };
        step();
      });
    });
  }

  createReadStream(uuid: string, range?: { start: number; end: number }): Readable {
    // fs ranges are inclusive of `end`.
    return createReadStream(this.pathOf(uuid), range ? { start: range.start, end: range.end - 1 } : undefined);
  }

  async remove(uuid: string): Promise<void> {
    await rm(this.pathOf(uuid), { force: true });
  }

  async recover(isKnown: (uuid: string) => boolean): Promise<{ published: number; discarded: number }> {
    let published = 0;
    let discarded = 0;
    const clean = existsSync(this.marker);
    await rm(this.marker, { force: true });
    if (clean) return { published, discarded };
    // An unclean stop: finish or discard the writes it interrupted.
    for (const a of await readdirOrEmpty(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(a)) continue;
      for (const b of await readdirOrEmpty(join(this.root, a))) {
        const dir = join(this.root, a, b);
        for (const name of await readdirOrEmpty(dir)) {
          if (!name.endsWith(TMP_SUFFIX)) continue;
          const uuid = name.slice(0, -TMP_SUFFIX.length);
          if (UUID_RE.test(uuid) && isKnown(uuid)) {
            renameSync(join(dir, name), join(dir, uuid));
            published++;
          } else {
            await rm(join(dir, name), { force: true });
            discarded++;
          }
        }
      }
    }
    return { published, discarded };
  }

}

/**
 * Asks ext2/3/4 to spread the root's subfolders over the disk's block groups (the `T` attribute, `chattr +T`), as it
 * does for the folders at the top of a file system: the files of a folder are created in the folder's block
 * group, and without the flag the 256 `ab/` folders, hence every file, shared a few groups. On ext4 without a
 * journal, creating a file scans the group's inodes freed in the last 60 seconds or more (`recently_deleted()`), so
 * ingest right after deletions paid up to 1.5 ms of kernel time per file (docs/storage.md). Other file systems, or
 * a missing `chattr`, leave the folder as it is: this is only about placement.
 */
const spread = new Set<string>();

function spreadFolders(root: string): void {
  // An absolute path: never taken for an option. Once per folder and process (a spawn costs a few ms).
  const path = resolve(root);
  if (process.platform !== 'linux' || spread.has(path)) return;
  spread.add(path);
  const r = spawnSync('chattr', ['+T', path], { stdio: 'ignore', timeout: 5000 });
  if (r.status === 0) log.verbose(`storage folders spread over the disk (T attribute on ${path})`);
  else log.debug(`could not set the T attribute on ${path} (not ext2/3/4, or no chattr)`);
}

/**
 * mkdir (unless `dirKnown`), open, write, fdatasync, close: one synchronous sequence on the calling thread. A folder
 * believed to exist but missing is made on ENOENT.
 */
function writeWholeFile(path: string, data: Buffer, sync: boolean, dir: string, dirKnown: boolean): void {
  if (!dirKnown) mkdirSync(dir, { recursive: true });
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !dirKnown) throw e;
    mkdirSync(dir, { recursive: true });
    fd = openSync(path, 'wx');
  }
  try {
    let offset = 0;
    while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
    if (sync) fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
