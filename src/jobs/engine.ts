/**
 * The jobs engine (Orthanc's JobsEngine + JobsRegistry): a priority queue of jobs (p-queue, `ConcurrentJobs` at a
 * time, higher `Priority` first), each run step by step; Orthanc's states and transitions (cancel, pause, resume,
 * resubmit); a history of `JobsHistorySize` finished jobs; the outputs jobs produce (files in a temporary folder,
 * deleted with their job); and, with `SaveJobs`, every job saved in the index so that unfinished jobs resume after
 * a restart (a running job at its last saved step).
 *
 * State machine (Orthanc's JobsEngineStates): Pending -> Running -> Success | Failure | Paused | Retry;
 * Paused -> Pending (resume); Failure -> Pending (resubmit); Retry -> Pending (after its delay); cancel turns
 * Pending, Paused and Retry into Failure (CanceledJob) at once, and a running job after its current step; pause
 * turns Pending and Retry into Paused at once, and a running job after its current step.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import PQueue from 'p-queue';
import { ERROR_CODES, isPacsError, PacsError, type ErrorCode } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { Job, JobInfo, JobOutput, JobRuntime, JobState, JobStepResult, JobStopReason, JobType } from './job.js';

const log = logger('jobs');

/** A saved job as the index keeps it (one row of its `jobs` table). */
export interface SavedJob {
  id: string;
  state: JobState;
  /** JSON: the engine's fields (type, priority, times, error) and the job's own `serialize()`. */
  data: string;
}

/** Where jobs are saved (`SqliteIndex` implements it). */
export interface JobsStore {
  /** Every saved job, in the order they were first saved. */
  loadJobs(): SavedJob[];
  /** Inserts or replaces the job of this ID. */
  saveJob(job: SavedJob): void;
  deleteJob(id: string): void;
}

export interface JobsEngineOptions {
  /** `ConcurrentJobs`: jobs running at the same time; 0 means one per logical CPU core (as Orthanc). */
  concurrentJobs: number;
  /** `JobsHistorySize`: finished jobs kept (the oldest are forgotten first). */
  historySize: number;
  /** With `SaveJobs`: where jobs are saved and loaded from. Undefined: jobs live in memory only. */
  store?: JobsStore;
  /** The folder in which this engine makes its temporary folder (default: the system's). */
  temporaryDirectory?: string;
  /** Least time between two saves of a running job's progress, in ms (state changes are always saved). */
  saveIntervalMs?: number;
}

/** What a synchronous submission answers: the finished job. */
export interface FinishedJob {
  id: string;
  /** The job's `Content` once it succeeded (what Orthanc answers to a synchronous call). */
  content: Record<string, unknown>;
  /** Its outputs (gone at once when `JobsHistorySize` is 0: the job is forgotten as soon as it is done). */
  outputs: ReadonlyMap<string, JobOutput>;
}

interface SavedData {
  Type: string;
  Priority: number;
  CreationTime: number;
  LastChangeTime: number;
  Runtime: number;
  ErrorCode: ErrorCode | null;
  ErrorDetails: string;
  Job: unknown;
}

const OUTPUT_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/** Orthanc's time format in job answers (`boost::posix_time::to_iso_string`): `20240131T235959.123000`, UTC. */
export function jobTime(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '.$1000');
}

class Handle {
  state: JobState = 'Pending';
  /** Undefined while the job has not failed (Orthanc's ErrorCode_Success). */
  error: ErrorCode | undefined;
  errorDetails = '';
  creationTime = Date.now();
  lastChangeTime = this.creationTime;
  /** Time spent running, in ms, before the current run. */
  runtimeMs = 0;
  runningSince = 0;
  pauseScheduled = false;
  cancelScheduled = false;
  /** Incremented at each (re)queueing: a queued run whose ticket is stale does nothing. */
  ticket = 0;
  retryTimer: NodeJS.Timeout | undefined;
  abort: AbortController | undefined;
  readonly outputs = new Map<string, JobOutput>();
  workDir: string | undefined;
  lastSaved = 0;
  waiters: Array<{ resolve: (h: Handle) => void; reject: (e: unknown) => void }> = [];

  constructor(
    readonly id: string,
    readonly job: Job,
    public priority: number,
  ) {}

  get finished(): boolean {
    return this.state === 'Success' || this.state === 'Failure';
  }

  runtime(now: number): number {
    return this.runtimeMs + (this.state === 'Running' ? now - this.runningSince : 0);
  }
}

export class JobsEngine {
  private readonly types = new Map<string, JobType>();
  private readonly handles = new Map<string, Handle>();
  /** Finished jobs, oldest completion first. */
  private readonly completed: Handle[] = [];
  private readonly queue: PQueue;
  /** Saved jobs whose type is not registered (yet): restored when it is. */
  private deferred: SavedJob[] = [];
  private started = false;
  private stopping = false;
  private closed = false;
  private workRoot: Promise<string> | undefined;
  private readonly saveIntervalMs: number;

  constructor(private readonly options: JobsEngineOptions) {
    const concurrency = options.concurrentJobs > 0 ? options.concurrentJobs : availableParallelism();
    this.queue = new PQueue({ concurrency, autoStart: false });
    this.saveIntervalMs = options.saveIntervalMs ?? 1000;
  }

  /** Jobs running at the same time. */
  get concurrency(): number {
    return this.queue.concurrency;
  }

  /**
   * Registers a job type, so that saved jobs of this type are restored. May be called after `start()`: the saved
   * jobs of the type are then restored at once.
   */
  registerType(type: JobType): void {
    if (this.types.has(type.name)) throw new Error(`job type "${type.name}" is already registered`);
    this.types.set(type.name, type);
    if (this.started && !this.stopping) {
      const rows = this.deferred;
      this.deferred = [];
      this.restoreAll(rows);
    }
  }

  /** Loads the saved jobs (unfinished ones are queued again, running ones from their last saved step) and starts. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const rows = this.options.store?.loadJobs() ?? [];
    this.restoreAll(rows);
    if (rows.length > 0) log.info(`${rows.length} saved job(s) loaded`);
    this.queue.start();
    log.verbose(`the jobs engine has started with ${this.queue.concurrency} worker(s)`);
  }

  /** Queues a job; answers its ID (Orthanc's Submit). */
  submit(job: Job, priority = 0): string {
    if (this.stopping) throw new PacsError('BadSequenceOfCalls', 'the jobs engine is stopping');
    if (!Number.isSafeInteger(priority)) throw new PacsError('ParameterOutOfRange', `bad job priority: ${priority}`);
    const h = new Handle(randomUUID(), job, priority);
    this.handles.set(h.id, h);
    this.save(h, true);
    log.info(`New ${job.type} job submitted with priority ${priority}: ${h.id}`);
    this.enqueue(h);
    return h.id;
  }

  /**
   * Queues a job and waits for its end (Orthanc's SubmitAndWait): answers it when it succeeded, throws its error
   * (a `PacsError` with the job's ErrorCode and ErrorDetails) when it failed or was cancelled.
   */
  async submitAndWait(job: Job, priority = 0): Promise<FinishedJob> {
    const id = this.submit(job, priority);
    const h = await this.waitHandle(id);
    if (h.state === 'Failure') throw new PacsError(h.error ?? 'InternalError', h.errorDetails || undefined);
    return { id, content: safeContent(h.job), outputs: new Map(h.outputs) };
  }

  /** Resolves with the job's information once it has finished (Success or Failure). */
  async waitFor(id: string): Promise<JobInfo> {
    const h = await this.waitHandle(id);
    return this.format(h);
  }

  /** The IDs of the jobs, sorted (as Orthanc lists them). */
  list(): string[] {
    return [...this.handles.keys()].sort();
  }

  /** `/jobs/{id}`, or undefined for an unknown job. */
  info(id: string): JobInfo | undefined {
    const h = this.handles.get(id);
    return h ? this.format(h) : undefined;
  }

  /** The job's state, or undefined for an unknown job. */
  state(id: string): JobState | undefined {
    return this.handles.get(id)?.state;
  }

  /**
   * Orthanc's Cancel: a pending, paused or retrying job fails at once with CanceledJob; a running one after its
   * current step (whose `signal` is aborted); a finished job is left as it is. False for an unknown job.
   */
  cancel(id: string): boolean {
    const h = this.handles.get(id);
    if (!h) return false;
    log.info(`Canceling job: ${id}`);
    switch (h.state) {
      case 'Pending':
      case 'Paused':
      case 'Retry':
        h.ticket++;
        this.clearRetry(h);
        this.complete(h, 'CanceledJob', '');
        break;
      case 'Running':
        h.cancelScheduled = true;
        h.abort?.abort(new PacsError('CanceledJob'));
        break;
      case 'Success':
      case 'Failure':
        break;
    }
    return true;
  }

  /**
   * Orthanc's Pause: a pending or retrying job is paused at once, a running one after its current step; a paused
   * or finished job is left as it is. False for an unknown job.
   */
  pause(id: string): boolean {
    const h = this.handles.get(id);
    if (!h) return false;
    log.info(`Pausing job: ${id}`);
    switch (h.state) {
      case 'Pending':
      case 'Retry':
        h.ticket++;
        this.clearRetry(h);
        this.setState(h, 'Paused');
        this.save(h, true);
        break;
      case 'Running':
        h.pauseScheduled = true;
        break;
      case 'Paused':
      case 'Success':
      case 'Failure':
        break;
    }
    return true;
  }

  /** Orthanc's Resume: a paused job is queued again. False for an unknown job or one that is not paused. */
  resume(id: string): boolean {
    const h = this.handles.get(id);
    if (!h || h.state !== 'Paused' || this.stopping) return false;
    log.info(`Resuming job: ${id}`);
    this.setState(h, 'Pending');
    this.save(h, true);
    this.enqueue(h);
    return true;
  }

  /** Orthanc's Resubmit: a failed job starts again from its first step. False for an unknown job or one that did not fail. */
  resubmit(id: string): boolean {
    const h = this.handles.get(id);
    if (!h || h.state !== 'Failure' || this.stopping) return false;
    log.info(`Resubmitting failed job: ${id}`);
    try {
      h.job.reset();
    } catch (e) {
      log.warn(`job ${id} cannot be reset: ${(e as Error).message}`);
      return false;
    }
    const i = this.completed.indexOf(h);
    if (i >= 0) this.completed.splice(i, 1);
    this.dropOutputs(h);
    h.runtimeMs = 0;
    this.setState(h, 'Pending');
    this.save(h, true);
    this.enqueue(h);
    return true;
  }

  /** Deletes a finished job, with its outputs. False for an unknown job or one that has not finished. */
  delete(id: string): boolean {
    const h = this.handles.get(id);
    if (!h) return false;
    if (!h.finished) {
      log.warn(`Can not delete a job that is not complete: ${id}`);
      return false;
    }
    log.info(`Deleting job: ${id}`);
    const i = this.completed.indexOf(h);
    if (i >= 0) this.completed.splice(i, 1);
    this.forget(h);
    return true;
  }

  /** An output of a job that succeeded, or undefined. */
  output(id: string, key: string): JobOutput | undefined {
    const h = this.handles.get(id);
    return h?.state === 'Success' ? h.outputs.get(key) : undefined;
  }

  /** Deletes an output of a job that succeeded (its file too). False when there is no such output. */
  deleteOutput(id: string, key: string): boolean {
    const h = this.handles.get(id);
    const output = h?.state === 'Success' ? h.outputs.get(key) : undefined;
    if (!h || !output) return false;
    h.outputs.delete(key);
    removeFile(output.path);
    return true;
  }

  /** Counts by state (Orthanc's GetStatistics: pending includes Retry, running includes Paused). */
  statistics(): { pending: number; running: number; success: number; failed: number } {
    const s = { pending: 0, running: 0, success: 0, failed: 0 };
    for (const h of this.handles.values()) {
      if (h.state === 'Pending' || h.state === 'Retry') s.pending++;
      else if (h.state === 'Running' || h.state === 'Paused') s.running++;
      else if (h.state === 'Success') s.success++;
      else s.failed++;
    }
    return s;
  }

  /**
   * Stops: running jobs stop after their current step (their `signal` is aborted) and are saved as pending, so
   * they resume at the next start; synchronous callers still waiting get an error; the temporary folder is removed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopping = true;
    this.queue.clear();
    for (const h of this.handles.values()) {
      this.clearRetry(h);
      if (h.state === 'Running') h.abort?.abort(new PacsError('BadSequenceOfCalls', 'pacsnode is stopping'));
    }
    if (!this.queue.isPaused) await this.queue.onIdle();
    for (const h of this.handles.values()) {
      if (h.finished) continue;
      this.save(h, true);
      const waiters = h.waiters;
      h.waiters = [];
      for (const w of waiters) w.reject(new PacsError('BadSequenceOfCalls', `pacsnode is stopping; job ${h.id} will resume at the next start`));
    }
    if (this.workRoot) {
      const root = await this.workRoot.catch(() => undefined);
      if (root) await rm(root, { recursive: true, force: true });
    }
    log.verbose('the jobs engine has stopped');
  }

  // ------------------------------------------------------------------------------------------------ running

  private enqueue(h: Handle): void {
    const ticket = ++h.ticket;
    this.queue.add(() => this.run(h, ticket), { priority: h.priority }).catch((e: unknown) => {
      log.error(`job ${h.id}: ${(e as Error).stack ?? String(e)}`);
    });
  }

  private async run(h: Handle, ticket: number): Promise<void> {
    if (h.ticket !== ticket || h.state !== 'Pending' || this.stopping) return;
    this.setState(h, 'Running');
    this.save(h, true);
    const abort = new AbortController();
    h.abort = abort;
    const runtime = this.runtimeOf(h, abort.signal);
    log.info(`Executing job with priority ${h.priority}: ${h.id}`);
    try {
      for (;;) {
        if (h.cancelScheduled) return await this.finish(h, 'canceled', 'CanceledJob', '');
        if (h.pauseScheduled) return await this.leave(h, 'paused', 'Paused');
        if (this.stopping) return await this.leave(h, 'shutdown', 'Pending');
        let result: JobStepResult;
        try {
          result = await h.job.step(runtime);
        } catch (e) {
          result = isPacsError(e)
            ? { code: 'failure', error: e.code, details: e.details }
            : { code: 'failure', error: 'InternalError', details: e instanceof Error ? e.message : String(e) };
        }
        if (result.code === 'success') return await this.finish(h, 'success', undefined, '');
        if (h.cancelScheduled) return await this.finish(h, 'canceled', 'CanceledJob', '');
        if (this.stopping) return await this.leave(h, 'shutdown', h.pauseScheduled ? 'Paused' : 'Pending');
        if (result.code === 'failure') return await this.finish(h, 'failure', result.error, result.details ?? '');
        if (result.code === 'retry') {
          await this.stopJob(h, 'retry');
          this.setState(h, 'Retry');
          this.save(h, true);
          log.info(`Job scheduled for retry in ${result.timeoutMs}ms: ${h.id}`);
          const retryTicket = h.ticket;
          h.retryTimer = setTimeout(() => {
            h.retryTimer = undefined;
            if (h.state !== 'Retry' || h.ticket !== retryTicket || this.stopping) return;
            log.info(`Retrying job: ${h.id}`);
            this.setState(h, 'Pending');
            this.save(h, true);
            this.enqueue(h);
          }, Math.max(0, result.timeoutMs));
          h.retryTimer.unref();
          return;
        }
        this.save(h, false);
      }
    } finally {
      h.abort = undefined;
    }
  }

  /** Leaves Running for a state that is not final (Paused; Pending when pacsnode stops). */
  private async leave(h: Handle, reason: JobStopReason, state: 'Paused' | 'Pending'): Promise<void> {
    await this.stopJob(h, reason);
    this.setState(h, state);
    this.save(h, true);
    if (state === 'Paused') log.info(`Job paused: ${h.id}`);
  }

  private async finish(h: Handle, reason: JobStopReason, error: ErrorCode | undefined, details: string): Promise<void> {
    await this.stopJob(h, reason);
    this.complete(h, error, details);
  }

  private async stopJob(h: Handle, reason: JobStopReason): Promise<void> {
    try {
      await h.job.stop?.(reason);
    } catch (e) {
      log.warn(`job ${h.id} (${h.job.type}): error while stopping (${reason}): ${(e as Error).message}`);
    }
  }

  /** Success (error undefined) or Failure; into the history, the oldest finished jobs beyond its size forgotten. */
  private complete(h: Handle, error: ErrorCode | undefined, details: string): void {
    this.setState(h, error === undefined ? 'Success' : 'Failure');
    h.error = error;
    h.errorDetails = details;
    this.completed.push(h);
    this.save(h, true);
    const how = error === undefined ? 'success' : error === 'CanceledJob' ? 'cancel' : 'failure';
    log.info(`Job has completed with ${how}: ${h.id}${details ? ` (${details})` : ''}`);
    const waiters = h.waiters;
    h.waiters = [];
    for (const w of waiters) w.resolve(h);
    this.trimHistory();
  }

  private trimHistory(): void {
    while (this.completed.length > this.options.historySize) this.forget(this.completed.shift()!);
  }

  private forget(h: Handle): void {
    this.handles.delete(h.id);
    this.dropOutputs(h);
    if (h.workDir) {
      const dir = h.workDir;
      h.workDir = undefined;
      rm(dir, { recursive: true, force: true }).catch((e: unknown) => log.warn(`cannot remove ${dir}: ${(e as Error).message}`));
    }
    try {
      this.options.store?.deleteJob(h.id);
    } catch (e) {
      log.error(`cannot delete the saved job ${h.id}: ${(e as Error).message}`);
    }
  }

  private dropOutputs(h: Handle): void {
    for (const output of h.outputs.values()) removeFile(output.path);
    h.outputs.clear();
  }

  private setState(h: Handle, state: JobState): void {
    const now = Date.now();
    if (h.state === 'Running') h.runtimeMs += now - h.runningSince;
    if (state === 'Running') {
      h.runningSince = now;
      h.error = undefined;
      h.errorDetails = '';
    }
    h.state = state;
    h.lastChangeTime = now;
    h.pauseScheduled = false;
    h.cancelScheduled = false;
  }

  private clearRetry(h: Handle): void {
    if (h.retryTimer) clearTimeout(h.retryTimer);
    h.retryTimer = undefined;
  }

  private waitHandle(id: string): Promise<Handle> {
    const h = this.handles.get(id);
    if (!h) return Promise.reject(new PacsError('InexistentItem', `unknown job: ${id}`));
    if (h.finished) return Promise.resolve(h);
    if (this.closed) return Promise.reject(new PacsError('BadSequenceOfCalls', 'the jobs engine is stopped'));
    return new Promise((resolve, reject) => h.waiters.push({ resolve, reject }));
  }

  private runtimeOf(h: Handle, signal: AbortSignal): JobRuntime {
    return {
      id: h.id,
      signal,
      workDirectory: async () => {
        if (!h.workDir) {
          this.workRoot ??= mkdtemp(join(this.options.temporaryDirectory ?? tmpdir(), 'pacsnode-jobs-'));
          const dir = join(await this.workRoot, h.id);
          await mkdir(dir, { recursive: true });
          h.workDir = dir;
        }
        return h.workDir;
      },
      setOutput: (key, output) => {
        if (!OUTPUT_KEY.test(key)) throw new PacsError('ParameterOutOfRange', `bad job output name: ${JSON.stringify(key)}`);
        const previous = h.outputs.get(key);
        if (previous && previous.path !== output.path) removeFile(previous.path);
        h.outputs.set(key, { ...output });
      },
    };
  }

  // ------------------------------------------------------------------------------------------------ formatting

  private format(h: Handle): JobInfo {
    const now = Date.now();
    const runtime = h.runtime(now);
    let progress = 0;
    try {
      progress = Math.min(1, Math.max(0, h.job.progress()));
    } catch {
      // a job that cannot tell its progress shows 0
    }
    const error = h.error === undefined ? { status: 0, description: 'Success' } : ERROR_CODES[h.error];
    // The keys in Orthanc's (alphabetical) order.
    const info: JobInfo = {
      ...(h.finished ? { CompletionTime: jobTime(new Date(h.lastChangeTime)) } : {}),
      Content: safeContent(h.job),
      CreationTime: jobTime(new Date(h.creationTime)),
      EffectiveRuntime: runtime / 1000,
      ErrorCode: error.status,
      ErrorDescription: error.description,
      ErrorDetails: h.errorDetails,
      ...(h.state === 'Running' && progress > 0.01 && runtime > 0
        ? { EstimatedTimeOfArrival: jobTime(new Date(now + Math.round((runtime / progress) * (1 - progress)))) }
        : {}),
      ID: h.id,
      Priority: h.priority,
      Progress: Math.round(progress * 100),
      State: h.state,
      Timestamp: jobTime(new Date(now)),
      Type: h.job.type,
    };
    return info;
  }

  // ------------------------------------------------------------------------------------------------ saving

  private save(h: Handle, force: boolean): void {
    const store = this.options.store;
    if (!store) return;
    const now = Date.now();
    if (!force && now - h.lastSaved < this.saveIntervalMs) return;
    let serialized: unknown;
    try {
      serialized = h.job.serialize();
    } catch (e) {
      log.warn(`job ${h.id} (${h.job.type}) cannot be serialised: ${(e as Error).message}`);
      return;
    }
    if (serialized === undefined) return;
    const data: SavedData = {
      Type: h.job.type,
      Priority: h.priority,
      CreationTime: h.creationTime,
      LastChangeTime: h.lastChangeTime,
      Runtime: h.runtime(now),
      ErrorCode: h.error ?? null,
      ErrorDetails: h.errorDetails,
      Job: serialized,
    };
    try {
      store.saveJob({ id: h.id, state: h.state, data: JSON.stringify(data) });
      h.lastSaved = now;
    } catch (e) {
      log.error(`cannot save job ${h.id}: ${(e as Error).message}`);
    }
  }

  private restoreAll(rows: readonly SavedJob[]): void {
    for (const row of rows) this.restore(row);
    this.completed.sort((a, b) => a.lastChangeTime - b.lastChangeTime);
    this.trimHistory();
  }

  private restore(row: SavedJob): void {
    if (this.handles.has(row.id)) return;
    let data: SavedData;
    try {
      data = JSON.parse(row.data) as SavedData;
    } catch {
      log.warn(`Cannot unserialize one job from previous execution, skipping it: ${row.id} (bad JSON)`);
      this.options.store?.deleteJob(row.id);
      return;
    }
    const type = this.types.get(data.Type);
    if (!type) {
      this.deferred.push(row);
      log.verbose(`saved job ${row.id} of type ${data.Type} waits for its type to be registered`);
      return;
    }
    let job: Job;
    try {
      job = type.restore(data.Job);
    } catch (e) {
      log.warn(`Cannot unserialize one job from previous execution, skipping it: ${row.id} (${(e as Error).message})`);
      this.options.store?.deleteJob(row.id);
      return;
    }
    const h = new Handle(row.id, job, Number.isSafeInteger(data.Priority) ? data.Priority : 0);
    h.creationTime = data.CreationTime;
    h.lastChangeTime = data.LastChangeTime;
    h.runtimeMs = data.Runtime;
    h.error = data.ErrorCode !== null && data.ErrorCode in ERROR_CODES ? data.ErrorCode : undefined;
    h.errorDetails = data.ErrorDetails ?? '';
    this.handles.set(h.id, h);
    switch (row.state) {
      case 'Success':
      case 'Failure':
        h.state = row.state;
        if (row.state === 'Failure') h.error ??= 'InternalError';
        this.completed.push(h);
        break;
      case 'Paused':
        h.state = 'Paused';
        break;
      default:
        // Pending, Retry, and Running (pacsnode stopped during a step): queued again.
        h.state = 'Pending';
        this.enqueue(h);
    }
  }
}

function safeContent(job: Job): Record<string, unknown> {
  try {
    return job.content();
  } catch (e) {
    log.warn(`job of type ${job.type}: no content (${(e as Error).message})`);
    return {};
  }
}

function removeFile(path: string): void {
  rm(path, { force: true }).catch((e: unknown) => log.warn(`cannot remove the job output ${path}: ${(e as Error).message}`));
}
