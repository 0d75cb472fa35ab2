/**
 * Orthanc's archive jobs (ArchiveJob): a ZIP archive (job type `Archive`) or a DICOMDIR media (`Media`) made in the
 * background, for the asynchronous mode of `/{patients,studies,series}/{id}/archive|media` and
 * `/tools/create-archive|create-media|create-media-extended` (`"Synchronous": false` or `"Asynchronous": true`).
 *
 * - The first step plans the archive (`planArchive`: the files and their names, from the index, as Orthanc expands
 *   its resources when the job starts) and opens `archive.zip` in the job's work directory; then each step writes
 *   one file (`ArchiveWriter`), and a last step writes the DICOMDIR (media) and the central directory. A pause
 *   takes effect between two files: the ZIP file is closed, and reopened to append when the job resumes.
 * - Once done, the ZIP is the job's output `archive` (`GET /jobs/{id}/archive`), downloaded under the name given
 *   by the route (`Filename`, else `{id}.zip` or `Archive.zip`).
 * - Cancelling aborts the file being written, then the partial ZIP is removed; so does a failure or pacsnode
 *   stopping. (A job cancelled while paused is not told: its partial ZIP, closed, goes with its job's folder.)
 *   Archive jobs are not saved (`serialize()` is undefined) and cannot be resubmitted, as in Orthanc.
 * - `MediaArchive` keeps the outputs of `MediaArchiveSize` archive jobs (Orthanc's SharedArchive, default 1): when a
 *   job finishes, the least recently used output beyond that count is deleted (its job stays in `/jobs`).
 * - `openJobsTemporaryDirectory` gives the jobs engine a folder per index, cleaned of what a crash left.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, rm, rmdir, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { JobsEngine } from '../jobs/engine.js';
import { StepResult, type Job, type JobRuntime, type JobStepResult, type JobStopReason } from '../jobs/job.js';
import { ArchiveWriter, planArchive, type ArchiveContext, type ArchivePlan, type ArchiveRequest } from './archive.js';

const log = logger('jobs');

/** Orthanc's job types (ArchiveJob::GetJobType). */
export const ARCHIVE_JOB = 'Archive';
export const MEDIA_JOB = 'Media';

/** The output key of the ZIP (ArchiveJob::GetOutput), served by `GET /jobs/{id}/archive`. */
export const ARCHIVE_OUTPUT = 'archive';

/** Orthanc's default `MediaArchiveSize`: the outputs of the last archive job only are kept. */
export const DEFAULT_MEDIA_ARCHIVE_SIZE = 1;

const MEGA_BYTES = 1024 * 1024;

/**
 * The archive jobs' outputs still available, oldest first (Orthanc's ServerContext media archive): at most `size`.
 * One per jobs engine (`mediaArchiveOf`).
 */
export class MediaArchive {
  /** Jobs whose archive was published, least recently published first. */
  private readonly ids: string[] = [];

  constructor(
    private readonly jobs: Pick<JobsEngine, 'state' | 'output' | 'deleteOutput'>,
    readonly size: number,
  ) {
    if (!Number.isSafeInteger(size) || size < 1) throw new PacsError('ParameterOutOfRange', `MediaArchiveSize must be at least 1, not ${size}`);
  }

  /** Jobs whose archive is kept, oldest first. */
  list(): string[] {
    this.prune();
    return [...this.ids];
  }

  /** Records the archive of a job that has just succeeded; deletes the oldest archives beyond `size`. */
  add(jobId: string): void {
    this.prune();
    while (this.ids.length >= this.size) {
      const oldest = this.ids.shift()!;
      if (this.jobs.deleteOutput(oldest, ARCHIVE_OUTPUT)) {
        log.info(`the archive of job ${oldest} is removed: MediaArchiveSize (${this.size}) archive(s) are kept`);
      }
    }
    this.ids.push(jobId);
  }

  /** Makes a job's archive the most recent (Orthanc: an archive downloaded is the last to be removed). */
  touch(jobId: string): void {
    const i = this.ids.indexOf(jobId);
    if (i >= 0) this.ids.push(...this.ids.splice(i, 1));
  }

  /** Forgets the jobs that are gone (deleted, beyond JobsHistorySize) or whose archive was deleted. */
  private prune(): void {
    for (let i = this.ids.length - 1; i >= 0; i--) {
      const id = this.ids[i]!;
      if (this.jobs.state(id) === undefined || this.jobs.output(id, ARCHIVE_OUTPUT) === undefined) this.ids.splice(i, 1);
    }
  }
}

const mediaArchives = new WeakMap<object, MediaArchive>();

/**
 * The ZIP file of an archive job, written in order; `release()` closes its descriptor between two steps (a paused
 * job holds no file open: it may stay paused for long, or be cancelled while paused, which its job is not told
 * of), and the next write reopens the file to append.
 */
class ArchiveFile extends Writable {
  private handle: FileHandle | undefined;
  private created = false;
  /** The write in progress (`_destroy` waits for it before closing the file). */
  private pending: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {
    super({ highWaterMark: 1 << 20 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.pending = this.append(chunk);
    this.pending.then(() => callback(), callback);
  }

  /** What was buffered meanwhile, in one write. */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.pending = this.append(Buffer.concat(chunks.map((c) => c.chunk)));
    this.pending.then(() => callback(), callback);
  }

  private async append(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    if (!this.handle) {
      const handle = await open(this.path, this.created ? 'a' : 'w');
      this.created = true;
      if (this.destroyed) {
        await handle.close();
        throw new Error('the archive file was closed');
      }
      this.handle = handle;
    }
    for (let done = 0; done < chunk.length; ) done += (await this.handle.write(chunk, done)).bytesWritten;
  }

  /** Waits for what was written so far to be in the file, then closes it until the next write. */
  async release(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.write(Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  override _final(callback: (error?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = undefined;
    (handle ? handle.close() : Promise.resolve()).then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    void this.pending
      .catch(() => undefined)
      .then(async () => {
        const handle = this.handle;
        this.handle = undefined;
        await handle?.close();
      })
      .then(
        () => callback(error),
        () => callback(error),
      );
  }
}

/** The `MediaArchive` of a jobs engine, made on first use with `size` (later values are ignored). */
export function mediaArchiveOf(jobs: JobsEngine, size = DEFAULT_MEDIA_ARCHIVE_SIZE): MediaArchive {
  let archive = mediaArchives.get(jobs);
  if (!archive) {
    archive = new MediaArchive(jobs, size);
    mediaArchives.set(jobs, archive);
  }
  return archive;
}

/** What an archive job needs from the application. */
export interface ArchiveJobDeps {
  ctx: ArchiveContext;
  mediaArchive: MediaArchive;
}

export interface ArchiveJobOptions {
  /** The resources and options, as for `planArchive` (checked by the route before the job is submitted). */
  request: ArchiveRequest;
  /** The download name of the output (`Content-Disposition`). */
  filename: string;
  /** `Description` of the job's Content (Orthanc's REST routes set `REST API`). */
  description?: string;
}

/**
 * Tests only: called at the start of each step once the archive is planned (`index` = files written so far), with
 * the step's signal, so that a test can hold a job in the middle of its archive.
 */
export const archiveJobHooks: { beforeStep?: (jobId: string, index: number, signal: AbortSignal) => Promise<void> } = {};

export class ArchiveJob implements Job {
  readonly type: string;
  private readonly description: string;
  private plan: ArchivePlan | undefined;
  private writer: ArchiveWriter | undefined;
  private output: ArchiveFile | undefined;
  private outputError: Error | undefined;
  private path: string | undefined;
  /** Aborts the writer: linked to each step's signal (cancel, pacsnode stopping). */
  private readonly abort = new AbortController();
  private jobId = '';
  private archiveSize = 0;
  /** Progress weights: each file counts its size plus one, the last step one. */
  private weightDone = 0;
  private weightTotal = 0;
  private succeeded = false;

  constructor(
    private readonly deps: ArchiveJobDeps,
    private readonly options: ArchiveJobOptions,
  ) {
    this.type = options.request.media ? MEDIA_JOB : ARCHIVE_JOB;
    this.description = options.description ?? '';
  }

  async step(runtime: JobRuntime): Promise<JobStepResult> {
    this.jobId = runtime.id;
    const onAbort = () => this.abort.abort(runtime.signal.reason);
    if (runtime.signal.aborted) onAbort();
    else runtime.signal.addEventListener('abort', onAbort, { once: true });
    try {
      this.abort.signal.throwIfAborted();
      const writer = this.writer ?? (await this.start(runtime));
      await archiveJobHooks.beforeStep?.(runtime.id, writer.done, this.abort.signal);
      if (writer.done < writer.plan.entries.length) {
        const entry = writer.plan.entries[writer.done]!;
        await this.writing(() => writer.writeNext());
        this.weightDone += entry.attachment.uncompressedSize + 1;
        this.archiveSize = writer.archiveSize;
        return StepResult.continue();
      }
      const result = await this.writing(() => writer.finish());
      this.archiveSize = result.archiveSize;
      this.weightDone = this.weightTotal;
      this.succeeded = true;
      runtime.setOutput(ARCHIVE_OUTPUT, { path: this.path!, mimeType: 'application/zip', filename: this.options.filename });
      log.info(
        `${this.type} job ${runtime.id}: ${result.instancesCount} instance(s)${result.skipped > 0 ? ` (${result.skipped} removed meanwhile, left out)` : ''}, ${result.archiveSize} bytes`,
      );
      return StepResult.success();
    } finally {
      runtime.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Runs a call of the writer; an error of the ZIP file itself (disk full...) is Orthanc's CannotWriteFile. */
  private async writing<T>(call: () => Promise<T>): Promise<T> {
    const fileError = () => {
      const e = this.outputError!;
      const code = (e as NodeJS.ErrnoException).code === 'ENOSPC' ? 'FullStorage' : 'CannotWriteFile';
      return new PacsError(code, `${this.path ?? 'the archive'}: ${e.message}`);
    };
    if (this.outputError) throw fileError();
    try {
      return await call();
    } catch (e) {
      if (this.outputError && !this.abort.signal.aborted) throw fileError();
      throw e;
    }
  }

  /** The first step: plans the archive (Orthanc's ArchiveJob::Start) and opens the ZIP file. */
  private async start(runtime: JobRuntime): Promise<ArchiveWriter> {
    const plan = planArchive(this.deps.ctx, this.options.request);
    const path = join(await runtime.workDirectory(), 'archive.zip');
    this.abort.signal.throwIfAborted();
    const output = new ArchiveFile(path);
    // Kept for the next step (or the end): an 'error' without a listener would take the process down.
    output.on('error', (e) => {
      this.outputError ??= e;
    });
    this.plan = plan;
    this.path = path;
    this.output = output;
    this.weightTotal = plan.entries.reduce((sum, e) => sum + e.attachment.uncompressedSize + 1, 0) + 1;
    this.writer = new ArchiveWriter(this.deps.ctx, plan, output, this.abort.signal);
    return this.writer;
  }

  progress(): number {
    if (this.succeeded) return 1;
    return this.weightTotal === 0 ? 0 : this.weightDone / this.weightTotal;
  }

  /** Orthanc's ArchiveJob::GetPublicContent, keys in Orthanc's (alphabetical) order. */
  content(): Record<string, unknown> {
    const uncompressed = this.plan?.uncompressedSize ?? 0;
    const transcode = this.options.request.transcode;
    return {
      ArchiveSize: String(this.archiveSize),
      ArchiveSizeMB: Math.floor(this.archiveSize / MEGA_BYTES),
      Description: this.description,
      InstancesCount: this.plan?.entries.length ?? 0,
      ...(transcode !== undefined ? { Transcode: transcode } : {}),
      UncompressedSize: String(uncompressed),
      UncompressedSizeMB: Math.floor(uncompressed / MEGA_BYTES),
    };
  }

  /** Not saved: an archive job is lost at a restart, as in Orthanc. */
  serialize(): undefined {
    return undefined;
  }

  /** As Orthanc: a failed (or cancelled) archive job cannot be resubmitted. */
  reset(): void {
    throw new PacsError('BadSequenceOfCalls', 'Cannot resubmit the creation of an archive');
  }

  async stop(reason: JobStopReason): Promise<void> {
    if (reason === 'success') {
      // Registered once the job is Success (the engine completes it right after this call).
      const id = this.jobId;
      setImmediate(() => this.deps.mediaArchive.add(id));
      return;
    }
    if (reason === 'paused') {
      // Closed until the job resumes (a write error is the next step's: `writing()`).
      await this.output?.release().catch(() => undefined);
      return;
    }
    // Canceled, failure, pacsnode stopping (the job is not saved, so it will not resume): the partial ZIP goes.
    this.abort.abort(new PacsError('CanceledJob'));
    this.writer = undefined;
    const output = this.output;
    const path = this.path;
    this.output = undefined;
    this.path = undefined;
    if (output && !output.closed) {
      // Closed before removed: a file still being opened would otherwise come back after the removal.
      const closed = new Promise<void>((resolve) => output.once('close', () => resolve()));
      output.destroy();
      await closed;
    }
    if (path) {
      await rm(path, { force: true }).catch((e: unknown) => log.warn(`cannot remove the partial archive ${path}: ${(e as Error).message}`));
    }
  }
}

// ------------------------------------------------------------------------------------------------ temporary files

/** The folder of the jobs engine's temporary files, and what ends its use (`close()` once the engine is closed). */
export interface JobsTemporaryDirectory {
  path: string;
  close(): Promise<void>;
}

const OWNER_FILE = 'owner.pid';
const FOLDER_NAME = /^pacsnode-[0-9a-f]{16}$/;

/** `<root>/pacsnode-<hash of the index folder>`: see `openJobsTemporaryDirectory`. */
export function jobsTemporaryPath(indexDirectory: string, root = tmpdir()): string {
  const key = createHash('sha1').update(resolve(indexDirectory)).digest('hex').slice(0, 16);
  return join(root, `pacsnode-${key}`);
}

/** The PID in a folder's `owner.pid`, if any. */
async function ownerOf(folder: string): Promise<number | undefined> {
  const owner = Number((await readFile(join(folder, OWNER_FILE), 'utf8').catch(() => '')).trim());
  return Number.isSafeInteger(owner) && owner > 0 ? owner : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The folder in which the jobs engine makes its temporary folder (the ZIPs of archive jobs, while written and
 * once done): one per index, `<tmp>/pacsnode-<hash of IndexDirectory>`, holding the PID of its owner (`owner.pid`).
 * Archive jobs are not saved, so nothing in it is of use to a new run. At the start:
 * - what an unclean stop (a crash, SIGKILL) left in this index's folder is removed, unless its owner is a process
 *   still alive (another pacsnode on the same index; or a recycled PID: the files then go at a later start);
 * - so are the folders of other indexes whose owner is gone (a crash, then the index was moved or deleted); a
 *   folder without `owner.pid` (being made) is left alone.
 * A clean stop removes the engine's folder (`JobsEngine.close()`), then this one (`close()`).
 */
export async function openJobsTemporaryDirectory(indexDirectory: string, root = tmpdir()): Promise<JobsTemporaryDirectory> {
  const path = jobsTemporaryPath(indexDirectory, root);
  const owner = await ownerOf(path);
  // Our own PID in it is a previous run's (a container restarted after a crash keeps /tmp and its PID 1): stale.
  const shared = owner !== undefined && owner !== process.pid && isAlive(owner);
  let removed = 0;
  if (shared) {
    log.warn(`${path} belongs to process ${owner}, still running: its temporary files are left alone`);
  } else {
    removed += (await readdir(path).catch(() => [] as string[])).filter((name) => name !== OWNER_FILE).length;
    await rm(path, { recursive: true, force: true });
    await mkdir(path, { recursive: true });
    await writeFile(join(path, OWNER_FILE), String(process.pid));
  }
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const other = join(root, name);
    if (!FOLDER_NAME.test(name) || other === path) continue;
    const otherOwner = await ownerOf(other);
    if (otherOwner === undefined || isAlive(otherOwner)) continue;
    removed++;
    await rm(other, { recursive: true, force: true });
  }
  if (removed > 0) log.warn(`removed ${removed} temporary file(s) or folder(s) of jobs left by an unclean stop, in ${root}`);
  return {
    path,
    async close() {
      if (!shared) await rm(join(path, OWNER_FILE), { force: true });
      // Left in place while another process uses it (not empty).
      await rmdir(path).catch(() => undefined);
    },
  };
}
