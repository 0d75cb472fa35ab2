/**
 * The jobs engine (src/jobs/engine.ts) driven directly, with a test-only job type whose steps wait on gates the
 * test opens: states and transitions as Orthanc's JobsRegistry, priority, concurrency, history, outputs, retry,
 * saving in the index and resuming after a restart, and the index's v1 -> v2 migration. No timing assertion: every
 * wait polls for a state with a generous timeout.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PacsError } from '../src/core/errors.js';
import { JobsEngine, jobTime, type JobsEngineOptions } from '../src/jobs/engine.js';
import { StepResult, type Job, type JobRuntime, type JobStepResult, type JobStopReason, type JobType } from '../src/jobs/job.js';
import { SqliteIndex } from '../src/store/sqlite-index.js';
import { makeInstance } from './helpers/factory.js';
import { tempContext } from './helpers/context.js';

// ------------------------------------------------------------------------------------------------ test job type

/** Permits for steps: a step takes one before it runs (or passes freely once the gate is open). */
class Gate {
  private permits = 0;
  private opened = false;
  private waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];

  open(): void {
    this.opened = true;
    this.flush();
  }

  release(n = 1): void {
    this.permits += n;
    this.flush();
  }

  /** Steps waiting for a permit. */
  get waiting(): number {
    return this.waiters.length;
  }

  take(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.opened) return Promise.resolve();
    if (this.permits > 0) {
      this.permits--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private flush(): void {
    while (this.waiters.length > 0 && (this.opened || this.permits > 0)) {
      if (!this.opened) this.permits--;
      this.waiters.shift()!.resolve();
    }
  }
}

const gates = new Map<string, Gate>();
/** Every step run, as `name:position`, in order. */
const events: string[] = [];
const stops: string[] = [];

function gate(name: string): Gate {
  let g = gates.get(name);
  if (!g) {
    g = new Gate();
    gates.set(name, g);
  }
  return g;
}

interface StepsState {
  name: string;
  steps: number;
  position: number;
  /** Throw at this position on the first attempt (a resubmitted job then passes). */
  failAt?: number;
  failWith?: 'pacs' | 'plain';
  /** Answer Retry (after this many ms) at this position, once. */
  retryAt?: number;
  retryMs?: number;
  retried?: boolean;
  attempts: number;
  /** Write an output file named `archive` at the end. */
  output?: boolean;
  /** Not saved (serialize() undefined), as Orthanc's archive jobs. */
  unsaved?: boolean;
}

class StepsJob implements Job {
  readonly type = 'TestSteps';
  constructor(readonly s: StepsState) {}

  async step(runtime: JobRuntime): Promise<JobStepResult> {
    await gate(this.s.name).take(runtime.signal);
    const next = this.s.position + 1;
    events.push(`${this.s.name}:${next}`);
    if (this.s.failAt === next && this.s.attempts === 0) {
      this.s.position = next;
      if (this.s.failWith === 'plain') throw new Error('planned plain failure');
      throw new PacsError('BadFileFormat', `planned failure at step ${next}`);
    }
    if (this.s.retryAt === next && !this.s.retried) {
      this.s.retried = true;
      return StepResult.retry(this.s.retryMs ?? 0);
    }
    this.s.position = next;
    if (this.s.position < this.s.steps) return StepResult.continue();
    if (this.s.output) {
      const dir = await runtime.workDirectory();
      const path = join(dir, 'archive.zip');
      await writeFile(path, `output of ${this.s.name}`);
      runtime.setOutput('archive', { path, mimeType: 'application/zip', filename: `${this.s.name}.zip` });
    }
    return StepResult.success();
  }

  progress(): number {
    return this.s.steps === 0 ? 1 : this.s.position / this.s.steps;
  }

  content(): Record<string, unknown> {
    return { Name: this.s.name, Position: this.s.position, Steps: this.s.steps };
  }

  serialize(): unknown {
    return this.s.unsaved ? undefined : { ...this.s };
  }

  reset(): void {
    this.s.position = 0;
    this.s.attempts++;
  }

  stop(reason: JobStopReason): void {
    stops.push(`${this.s.name}:${reason}`);
  }
}

const TestSteps: JobType = {
  name: 'TestSteps',
  restore: (serialized) => {
    const s = serialized as StepsState;
    if (typeof s?.name !== 'string' || typeof s.position !== 'number') throw new Error('not a TestSteps job');
    return new StepsJob(s);
  },
};

let counter = 0;
function steps(steps: number, extra: Partial<StepsState> = {}): StepsJob {
  return new StepsJob({ name: `job${++counter}`, steps, position: 0, attempts: 0, ...extra });
}

// ------------------------------------------------------------------------------------------------ helpers

async function waitUntil(condition: () => boolean, what: string, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function engine(options: Partial<JobsEngineOptions> = {}): JobsEngine {
  const e = new JobsEngine({ concurrentJobs: 2, historySize: 10, ...options });
  e.registerType(TestSteps);
  e.start();
  return e;
}

const stepsOf = (name: string) => events.filter((e) => e.startsWith(`${name}:`));
const TIME = /^\d{8}T\d{6}\.\d{6}$/;

describe('jobs engine', function () {
  let e: JobsEngine;
  afterEach(async () => {
    for (const g of gates.values()) g.open();
    await e?.close();
  });

  it('runs a job step by step to Success and describes it as Orthanc', async () => {
    e = engine();
    const job = steps(3);
    const id = e.submit(job, 0);
    expect(id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    await waitUntil(() => gate(job.s.name).waiting === 1, 'the first step to wait');
    expect(e.info(id)).to.include({ State: 'Running', Progress: 0, Type: 'TestSteps', ErrorCode: 0, ErrorDescription: 'Success' });
    gate(job.s.name).release(1);
    await waitUntil(() => job.s.position === 1 && gate(job.s.name).waiting === 1, 'the second step to wait');
    expect(e.info(id)?.Progress).to.equal(33);
    gate(job.s.name).release(2);
    const info = await e.waitFor(id);
    expect(info).to.include({ ID: id, State: 'Success', Progress: 100, Priority: 0, ErrorCode: 0, ErrorDescription: 'Success', ErrorDetails: '' });
    expect(info.Content).to.deep.equal({ Name: job.s.name, Position: 3, Steps: 3 });
    expect(info.CreationTime).to.match(TIME);
    expect(info.CompletionTime).to.match(TIME);
    expect(info.Timestamp).to.match(TIME);
    expect(info.CompletionTime! >= info.CreationTime).to.equal(true);
    expect(info.EffectiveRuntime).to.be.a('number').and.to.be.at.least(0);
    expect(stepsOf(job.s.name)).to.deep.equal([`${job.s.name}:1`, `${job.s.name}:2`, `${job.s.name}:3`]);
    expect(stops).to.include(`${job.s.name}:success`);
    expect(e.list()).to.deep.equal([id]);
  });

  it('formats times as Orthanc (ISO basic, microseconds, UTC)', () => {
    expect(jobTime(new Date(Date.UTC(2024, 0, 31, 23, 59, 58, 7)))).to.equal('20240131T235958.007000');
  });

  it('runs ConcurrentJobs jobs at a time; the others wait in Pending', async () => {
    e = engine({ concurrentJobs: 2 });
    const jobs = [steps(1), steps(1), steps(1)];
    const ids = jobs.map((j) => e.submit(j));
    await waitUntil(() => jobs.filter((j) => gate(j.s.name).waiting === 1).length === 2, 'two jobs to run');
    const states = ids.map((id) => e.state(id));
    expect(states.filter((s) => s === 'Running')).to.have.length(2);
    expect(states.filter((s) => s === 'Pending')).to.have.length(1);
    expect(e.statistics()).to.deep.equal({ pending: 1, running: 2, success: 0, failed: 0 });
    for (const j of jobs) gate(j.s.name).open();
    for (const id of ids) expect((await e.waitFor(id)).State).to.equal('Success');
  });

  it('takes the pending job of highest priority first', async () => {
    e = engine({ concurrentJobs: 1 });
    const blocker = steps(1);
    const blockerId = e.submit(blocker, 0);
    await waitUntil(() => gate(blocker.s.name).waiting === 1, 'the blocker to run');
    const low = steps(1);
    const high = steps(1);
    const middle = steps(1);
    const negative = steps(1);
    for (const j of [low, high, middle, negative]) gate(j.s.name).open();
    const ids = [e.submit(low, 0), e.submit(high, 10), e.submit(middle, 5), e.submit(negative, -3)];
    expect(e.info(ids[1]!)?.Priority).to.equal(10);
    const before = events.length;
    gate(blocker.s.name).open();
    await e.waitFor(blockerId);
    for (const id of ids) await e.waitFor(id);
    expect(events.slice(before).filter((x) => !x.startsWith(blocker.s.name))).to.deep.equal([
      `${high.s.name}:1`,
      `${middle.s.name}:1`,
      `${low.s.name}:1`,
      `${negative.s.name}:1`,
    ]);
  });

  it('pauses a pending job at once and a running one after its step; resume goes on from there', async () => {
    e = engine({ concurrentJobs: 1 });
    const running = steps(4);
    const pending = steps(2);
    gate(pending.s.name).open();
    const runningId = e.submit(running);
    const pendingId = e.submit(pending);
    await waitUntil(() => gate(running.s.name).waiting === 1, 'the first job to run');
    expect(e.pause(pendingId)).to.equal(true);
    expect(e.state(pendingId)).to.equal('Paused');

    gate(running.s.name).release(1);
    await waitUntil(() => gate(running.s.name).waiting === 1 && running.s.position === 1, 'step 2 to wait');
    expect(e.pause(runningId)).to.equal(true);
    expect(e.state(runningId)).to.equal('Running'); // until its current step ends
    gate(running.s.name).release(1);
    await waitUntil(() => e.state(runningId) === 'Paused', 'the running job to pause');
    expect(running.s.position).to.equal(2);
    expect(stops).to.include(`${running.s.name}:paused`);
    expect(e.pause(runningId)).to.equal(true); // already paused: nothing to do
    expect(e.state(runningId)).to.equal('Paused');

    expect(e.resume(runningId)).to.equal(true);
    gate(running.s.name).open();
    expect((await e.waitFor(runningId)).State).to.equal('Success');
    expect(stepsOf(running.s.name)).to.have.length(4); // no step run twice
    expect(e.state(pendingId)).to.equal('Paused');
    expect(e.resume(pendingId)).to.equal(true);
    expect((await e.waitFor(pendingId)).State).to.equal('Success');
  });

  it('cancels pending, paused and running jobs (CanceledJob); a finished job stays as it is', async () => {
    e = engine({ concurrentJobs: 1 });
    const running = steps(3);
    const pending = steps(1);
    const paused = steps(1);
    const runningId = e.submit(running);
    const pendingId = e.submit(pending);
    const pausedId = e.submit(paused);
    await waitUntil(() => gate(running.s.name).waiting === 1, 'the first job to run');
    e.pause(pausedId);

    expect(e.cancel(pendingId)).to.equal(true);
    expect(e.info(pendingId)).to.include({ State: 'Failure', ErrorCode: 37, ErrorDescription: 'This job was canceled' });
    expect(e.cancel(pausedId)).to.equal(true);
    expect(e.state(pausedId)).to.equal('Failure');

    // A running job: its step's signal is aborted, and it ends as cancelled.
    expect(e.cancel(runningId)).to.equal(true);
    const info = await e.waitFor(runningId);
    expect(info).to.include({ State: 'Failure', ErrorCode: 37 });
    expect(stops).to.include(`${running.s.name}:canceled`);
    expect(running.s.position).to.equal(0);

    const done = steps(1);
    gate(done.s.name).open();
    const doneId = e.submit(done);
    await e.waitFor(doneId);
    expect(e.cancel(doneId)).to.equal(true);
    expect(e.state(doneId)).to.equal('Success');
    expect(stepsOf(pending.s.name)).to.deep.equal([]);
  });

  it('fails a job whose step throws, with its error code; resubmit runs it again from the start', async () => {
    e = engine();
    const job = steps(3, { failAt: 2 });
    gate(job.s.name).open();
    const id = e.submit(job);
    const failed = await e.waitFor(id);
    expect(failed).to.include({ State: 'Failure', ErrorCode: 15, ErrorDescription: 'Bad file format', ErrorDetails: 'planned failure at step 2' });
    expect(failed.CompletionTime).to.match(TIME);
    expect(stops).to.include(`${job.s.name}:failure`);

    expect(e.resume(id)).to.equal(false); // not paused
    expect(e.resubmit(id)).to.equal(true);
    const again = await e.waitFor(id);
    expect(again).to.include({ State: 'Success', ErrorCode: 0, Progress: 100 });
    expect(stepsOf(job.s.name)).to.deep.equal([1, 2, 1, 2, 3].map((n) => `${job.s.name}:${n}`));
    expect(e.resubmit(id)).to.equal(false); // succeeded: nothing to resubmit

    const plain = steps(1, { failAt: 1, failWith: 'plain' });
    gate(plain.s.name).open();
    const plainInfo = await e.waitFor(e.submit(plain));
    expect(plainInfo).to.include({ State: 'Failure', ErrorCode: -1, ErrorDescription: 'Internal error', ErrorDetails: 'planned plain failure' });
  });

  it('answers false for unknown jobs', () => {
    e = engine();
    for (const action of ['cancel', 'pause', 'resume', 'resubmit', 'delete'] as const) expect(e[action]('nope'), action).to.equal(false);
    expect(e.info('nope')).to.equal(undefined);
    expect(e.output('nope', 'archive')).to.equal(undefined);
  });

  it('submitAndWait answers the content of a job that succeeded and throws the error of one that failed', async () => {
    e = engine();
    const ok = steps(2);
    gate(ok.s.name).open();
    const finished = await e.submitAndWait(ok, 3);
    expect(finished.content).to.deep.equal({ Name: ok.s.name, Position: 2, Steps: 2 });
    expect(e.info(finished.id)?.Priority).to.equal(3);
    const bad = steps(2, { failAt: 1 });
    gate(bad.s.name).open();
    const error = await e.submitAndWait(bad).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).to.be.instanceOf(PacsError);
    expect((error as PacsError).code).to.equal('BadFileFormat');
    expect((error as PacsError).details).to.equal('planned failure at step 1');
  });

  it('keeps JobsHistorySize finished jobs, forgetting the oldest; deletes only finished jobs', async () => {
    e = engine({ historySize: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const j = steps(1);
      gate(j.s.name).open();
      ids.push(e.submit(j));
      await e.waitFor(ids[i]!);
    }
    expect(e.list()).to.deep.equal([ids[1]!, ids[2]!].sort());
    expect(e.info(ids[0]!)).to.equal(undefined);

    const running = steps(1);
    const runningId = e.submit(running);
    await waitUntil(() => gate(running.s.name).waiting === 1, 'the job to run');
    expect(e.delete(runningId)).to.equal(false);
    expect(e.delete(ids[2]!)).to.equal(true);
    expect(e.list()).to.deep.equal([ids[1]!, runningId].sort());
  });

  it('with JobsHistorySize 0, a synchronous submission still gets its answer', async () => {
    e = engine({ historySize: 0 });
    const j = steps(1);
    gate(j.s.name).open();
    const finished = await e.submitAndWait(j);
    expect(finished.content).to.include({ Position: 1 });
    expect(e.list()).to.deep.equal([]);
  });

  it('serves the outputs of a job that succeeded, and deletes their files with the output or the job', async () => {
    e = engine();
    const j = steps(2, { output: true });
    const id = e.submit(j);
    await waitUntil(() => gate(j.s.name).waiting === 1, 'the job to run');
    expect(e.output(id, 'archive')).to.equal(undefined); // not before Success
    gate(j.s.name).open();
    await e.waitFor(id);
    const output = e.output(id, 'archive');
    expect(output).to.include({ mimeType: 'application/zip', filename: `${j.s.name}.zip` });
    expect(readFileSync(output!.path, 'utf8')).to.equal(`output of ${j.s.name}`);
    expect(e.deleteOutput(id, 'archive')).to.equal(true);
    expect(e.output(id, 'archive')).to.equal(undefined);
    expect(e.deleteOutput(id, 'archive')).to.equal(false);
    await waitUntil(() => !existsSync(output!.path), 'the output file to be removed');

    const k = steps(1, { output: true });
    gate(k.s.name).open();
    const kid = e.submit(k);
    await e.waitFor(kid);
    const path = e.output(kid, 'archive')!.path;
    expect(existsSync(path)).to.equal(true);
    expect(e.delete(kid)).to.equal(true);
    await waitUntil(() => !existsSync(path), 'the job folder to be removed');
  });

  it('waits in Retry after a step asks for it; a retrying job can be paused, resumed and cancelled', async () => {
    e = engine();
    const slow = steps(2, { retryAt: 1, retryMs: 3_600_000 });
    gate(slow.s.name).open();
    const id = e.submit(slow);
    await waitUntil(() => e.state(id) === 'Retry', 'the job to wait for its retry');
    expect(stops).to.include(`${slow.s.name}:retry`);
    expect(e.statistics().pending).to.equal(1);
    expect(e.pause(id)).to.equal(true);
    expect(e.state(id)).to.equal('Paused');
    expect(e.resume(id)).to.equal(true);
    expect((await e.waitFor(id)).State).to.equal('Success');
    expect(stepsOf(slow.s.name)).to.deep.equal([`${slow.s.name}:1`, `${slow.s.name}:1`, `${slow.s.name}:2`]);

    const quick = steps(1, { retryAt: 1, retryMs: 0 });
    gate(quick.s.name).open();
    expect((await e.waitFor(e.submit(quick))).State).to.equal('Success');

    const cancelled = steps(1, { retryAt: 1, retryMs: 3_600_000 });
    gate(cancelled.s.name).open();
    const cid = e.submit(cancelled);
    await waitUntil(() => e.state(cid) === 'Retry', 'the job to wait for its retry');
    expect(e.cancel(cid)).to.equal(true);
    expect(e.info(cid)).to.include({ State: 'Failure', ErrorCode: 37 });
  });

  it('rejects synchronous callers and refuses new jobs once closed', async () => {
    e = engine();
    const j = steps(1);
    const wait = e.submitAndWait(j).then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitUntil(() => gate(j.s.name).waiting === 1, 'the job to run');
    await e.close();
    const error = await wait;
    expect(error).to.be.instanceOf(PacsError);
    expect((error as PacsError).message).to.match(/resume at the next start/);
    expect(() => e.submit(steps(1))).to.throw(PacsError, /stopping/);
  });
});

describe('jobs engine: saved in the index', function () {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-jobs-test-'));
  });
  afterEach(() => {
    for (const g of gates.values()) g.open();
    rmSync(dir, { recursive: true, force: true });
  });

  it('resumes unfinished jobs after a restart (a running one from its last step) and keeps the history', async () => {
    const path = join(dir, 'index.sqlite');
    let index = new SqliteIndex(path);
    let e = new JobsEngine({ concurrentJobs: 1, historySize: 10, store: index, saveIntervalMs: 0 });
    e.registerType(TestSteps);
    e.start();
    const done = steps(1);
    gate(done.s.name).open();
    const doneId = e.submit(done, 2);
    const doneInfo = await e.waitFor(doneId);
    const running = steps(5);
    const paused = steps(2);
    const queued = steps(2);
    const unsaved = steps(2, { unsaved: true });
    const runningId = e.submit(running, 1);
    gate(running.s.name).release(2);
    await waitUntil(() => running.s.position === 2 && gate(running.s.name).waiting === 1, 'two steps done');
    // The one worker is busy: the others wait.
    const pausedId = e.submit(paused);
    expect(e.pause(pausedId)).to.equal(true);
    const queuedId = e.submit(queued, -1);
    const unsavedId = e.submit(unsaved);
    expect([pausedId, queuedId, unsavedId].map((id) => e.state(id))).to.deep.equal(['Paused', 'Pending', 'Pending']);
    await e.close();
    index.close();
    expect(stops).to.include(`${running.s.name}:shutdown`);

    // The next start: same index file, a new engine.
    index = new SqliteIndex(path);
    e = new JobsEngine({ concurrentJobs: 1, historySize: 10, store: index, saveIntervalMs: 0 });
    e.start();
    expect(e.list()).to.deep.equal([]); // the test type is not registered yet: the saved jobs wait for it
    e.registerType(TestSteps);
    try {
      expect(e.list()).to.deep.equal([doneId, runningId, pausedId, queuedId].sort());
      expect(e.info(unsavedId)).to.equal(undefined);
      const kept = e.info(doneId)!;
      expect(kept).to.include({ State: 'Success', Priority: 2, CompletionTime: doneInfo.CompletionTime, CreationTime: doneInfo.CreationTime });
      expect(kept.Content).to.deep.equal({ Name: done.s.name, Position: 1, Steps: 1 });
      expect(e.state(pausedId)).to.equal('Paused');
      expect(e.info(runningId)).to.include({ Priority: 1 });

      const before = events.length;
      for (const j of [running, queued]) gate(j.s.name).open();
      expect((await e.waitFor(runningId)).Content).to.deep.equal({ Name: running.s.name, Position: 5, Steps: 5 });
      expect((await e.waitFor(queuedId)).State).to.equal('Success');
      // The running job went on from step 3, the queued one started from step 1.
      expect(events.slice(before).filter((x) => x.startsWith(running.s.name))).to.deep.equal([3, 4, 5].map((n) => `${running.s.name}:${n}`));
      expect(events.slice(before).filter((x) => x.startsWith(queued.s.name))).to.deep.equal([1, 2].map((n) => `${queued.s.name}:${n}`));
      expect(e.resume(pausedId)).to.equal(true);
      gate(paused.s.name).open();
      expect((await e.waitFor(pausedId)).State).to.equal('Success');
      expect(e.delete(doneId)).to.equal(true);
      expect(index.loadJobs().map((r) => r.id)).to.not.include(doneId);
      expect(index.loadJobs().map((r) => r.state)).to.deep.equal(['Success', 'Success', 'Success']);
    } finally {
      await e.close();
      index.close();
    }
  });

  it('drops a saved job its type cannot restore, and saves nothing without a store (SaveJobs false)', async () => {
    const path = join(dir, 'index.sqlite');
    const index = new SqliteIndex(path);
    index.saveJob({ id: 'broken', state: 'Pending', data: JSON.stringify({ Type: 'TestSteps', Priority: 0, Job: { nonsense: true } }) });
    index.saveJob({ id: 'garbage', state: 'Pending', data: '{not json' });
    const e = new JobsEngine({ concurrentJobs: 1, historySize: 10, store: index });
    e.registerType(TestSteps);
    e.start();
    expect(e.list()).to.deep.equal([]);
    expect(index.loadJobs()).to.deep.equal([]);
    await e.close();

    const memory = new JobsEngine({ concurrentJobs: 1, historySize: 10 });
    memory.registerType(TestSteps);
    memory.start();
    const j = steps(1);
    gate(j.s.name).open();
    await memory.waitFor(memory.submit(j));
    expect(index.loadJobs()).to.deep.equal([]);
    await memory.close();
    index.close();
  });

  it('upgrades a version 1 index to version 2, keeping its content', async () => {
    const t = await tempContext();
    const storage = join(t.dir, 'storage');
    const stored = await t.ctx.store.store(
      makeInstance({ patientId: 'MIG', studyInstanceUid: '1.2.3', seriesInstanceUid: '1.2.3.4', sopInstanceUid: '1.2.3.4.5' }),
      { kind: 'rest' },
    );
    const indexPath = join(storage, 'pacsnode-index.sqlite');
    await t.ctx.close();
    // Make it a version 1 index: no jobs table, schema version 1.
    const old = new SqliteIndex(indexPath);
    old.db.exec(`DROP TABLE jobs`);
    old.db.prepare(`UPDATE global_properties SET value = '1' WHERE name = 'schema_version'`).run();
    old.close();

    const upgraded = new SqliteIndex(indexPath);
    try {
      expect(upgraded.schemaVersion).to.equal(2);
      expect(upgraded.findByPublicId(stored.ID)?.publicId).to.equal(stored.ID);
      upgraded.saveJob({ id: 'a', state: 'Pending', data: '{}' });
      upgraded.saveJob({ id: 'b', state: 'Paused', data: '{"x":1}' });
      upgraded.saveJob({ id: 'a', state: 'Running', data: '{"y":2}' });
      expect(upgraded.loadJobs()).to.deep.equal([
        { id: 'a', state: 'Running', data: '{"y":2}' },
        { id: 'b', state: 'Paused', data: '{"x":1}' },
      ]);
      upgraded.deleteJob('a');
      expect(upgraded.loadJobs().map((r) => r.id)).to.deep.equal(['b']);
    } finally {
      upgraded.close();
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});
