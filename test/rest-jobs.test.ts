/**
 * The jobs routes over real HTTP (`/jobs`, `/jobs/{id}`, actions, deletion, outputs), the helpers long routes use
 * (`jobRequest` + `submitJob`, through a test route), and unfinished jobs resuming across two successive contexts
 * over the same folders. A test-only job type whose steps wait on gates the test opens; no timing assertion.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, type AppContext } from '../src/app/context.js';
import { buildConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { PacsError } from '../src/core/errors.js';
import { StepResult, type Job, type JobRuntime, type JobStepResult, type JobType } from '../src/jobs/job.js';
import { buildHttpServer, startHttpServer, type HttpServer } from '../src/rest/http-server.js';
import { json, readJsonObject } from '../src/rest/request.js';
import { jobRequest, submitJob } from '../src/rest/routes/jobs.js';

type Json = Record<string, unknown>;

// ------------------------------------------------------------------------------------------------ test job type

/** Steps wait for permits; `open()` lets every step through. */
class Gate {
  private permits = 0;
  private opened = false;
  private waiters: Array<() => void> = [];
  open(): void {
    this.opened = true;
    this.flush();
  }
  release(n: number): void {
    this.permits += n;
    this.flush();
  }
  get waiting(): number {
    return this.waiters.length;
  }
  take(signal: AbortSignal): Promise<void> {
    if (this.opened) return Promise.resolve();
    if (this.permits > 0) {
      this.permits--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter = () => resolve();
      signal.addEventListener('abort', () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal.reason);
      });
      this.waiters.push(waiter);
    });
  }
  private flush(): void {
    while (this.waiters.length > 0 && (this.opened || this.permits > 0)) {
      if (!this.opened) this.permits--;
      this.waiters.shift()!();
    }
  }
}

const gates = new Map<string, Gate>();
const events: string[] = [];
const gate = (name: string): Gate => {
  if (!gates.has(name)) gates.set(name, new Gate());
  return gates.get(name)!;
};

interface StepsState {
  name: string;
  steps: number;
  position: number;
  failAt?: number;
  output?: boolean;
  failed?: boolean;
}

class StepsJob implements Job {
  readonly type = 'RestTestSteps';
  constructor(readonly s: StepsState) {}
  async step(runtime: JobRuntime): Promise<JobStepResult> {
    await gate(this.s.name).take(runtime.signal);
    const next = this.s.position + 1;
    events.push(`${this.s.name}:${next}`);
    if (this.s.failAt === next && !this.s.failed) {
      this.s.failed = true;
      throw new PacsError('BadFileFormat', `planned failure at step ${next}`);
    }
    this.s.position = next;
    if (next < this.s.steps) return StepResult.continue();
    if (this.s.output) {
      const path = join(await runtime.workDirectory(), 'out.zip');
      await writeFile(path, `archive of ${this.s.name}`);
      runtime.setOutput('archive', { path, mimeType: 'application/zip', filename: `${this.s.name}.zip` });
    }
    return StepResult.success();
  }
  progress(): number {
    return this.s.position / this.s.steps;
  }
  content(): Record<string, unknown> {
    return { Name: this.s.name, Position: this.s.position, Steps: this.s.steps };
  }
  serialize(): unknown {
    return { ...this.s };
  }
  reset(): void {
    this.s.position = 0;
  }
}

const RestTestSteps: JobType = { name: 'RestTestSteps', restore: (s) => new StepsJob(s as StepsState) };

// ------------------------------------------------------------------------------------------------ server

interface Server {
  ctx: AppContext;
  http: HttpServer;
  url: string;
  close(): Promise<void>;
}

let counter = 0;

/** A pacsnode over `dir` with the jobs routes, the test job type and a route that submits test jobs. */
async function server(dir: string, overrides: Partial<Config> = {}): Promise<Server> {
  const { config } = buildConfig({}, 'test', {
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'storage'),
    SyncStorageArea: false,
    HttpPort: 0,
    DicomPort: 0,
    ...overrides,
  });
  const ctx = await createContext(config);
  ctx.jobs.registerType(RestTestSteps);
  const http = buildHttpServer(ctx);
  // What a long route does: read its body, build its job, let submitJob answer (synchronous by default).
  http.post('/test/steps', async (request, reply) => {
    const body = await readJsonObject(request);
    const job = new StepsJob({
      name: typeof body.Name === 'string' ? body.Name : `rest${++counter}`,
      steps: typeof body.Steps === 'number' ? body.Steps : 1,
      position: 0,
      failAt: typeof body.FailAt === 'number' ? body.FailAt : undefined,
      output: body.Output === true,
    });
    return reply.type('application/json').send(json(await submitJob(ctx, job, jobRequest(body, true))));
  });
  const port = await startHttpServer(http, 0, '127.0.0.1');
  return {
    ctx,
    http,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await http.close();
      await ctx.close();
    },
  };
}

async function call(s: Server, method: string, path: string, body?: unknown) {
  const res = await fetch(`${s.url}${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, text, json: parsed as Json, headers: res.headers };
}

async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function stateOf(s: Server, id: string): Promise<string> {
  return (await call(s, 'GET', `/jobs/${id}`)).json.State as string;
}

function expectOrthancError(r: { status: number; json: Json }, status: number, orthancStatus: number, method: string, uri: string): void {
  expect(r.status).to.equal(status);
  expect(r.json).to.include({ HttpStatus: status, OrthancStatus: orthancStatus, Method: method, Uri: uri });
}

describe('REST: jobs', function () {
  let dir: string;
  let s: Server;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-rest-jobs-'));
    s = await server(dir);
  });
  after(async () => {
    for (const g of gates.values()) g.open();
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('GET /jobs lists nothing at first; an unknown job is a 404', async () => {
    const r = await call(s, 'GET', '/jobs');
    expect(r.status).to.equal(200);
    expect(r.json).to.deep.equal([]);
    expectOrthancError(await call(s, 'GET', '/jobs/nope'), 404, 7, 'GET', '/jobs/nope');
  });

  it('an asynchronous call answers {ID, Path}; /jobs/{id} follows the job to Success', async () => {
    const r = await call(s, 'POST', '/test/steps', { Steps: 2, Name: 'async1', Synchronous: false, Priority: 4 });
    expect(r.status).to.equal(200);
    const id = r.json.ID as string;
    expect(r.json).to.deep.equal({ ID: id, Path: `/jobs/${id}` });
    await waitUntil(() => gate('async1').waiting === 1, 'the job to run');
    const running = await call(s, 'GET', r.json.Path as string);
    expect(running.json).to.include({ ID: id, State: 'Running', Type: 'RestTestSteps', Priority: 4, Progress: 0, ErrorCode: 0 });
    expect(running.json).to.not.have.property('CompletionTime');
    expect((await call(s, 'GET', '/jobs')).json).to.include(id);
    const expanded = (await call(s, 'GET', '/jobs?expand')).json as unknown as Json[];
    expect(expanded.find((j) => j.ID === id)).to.include({ State: 'Running', Type: 'RestTestSteps' });

    gate('async1').open();
    await waitUntil(async () => (await stateOf(s, id)) === 'Success', 'the job to succeed');
    const done = await call(s, 'GET', `/jobs/${id}`);
    expect(Object.keys(done.json).sort()).to.deep.equal(
      ['CompletionTime', 'Content', 'CreationTime', 'EffectiveRuntime', 'ErrorCode', 'ErrorDescription', 'ErrorDetails', 'ID', 'Priority', 'Progress', 'State', 'Timestamp', 'Type'],
    );
    expect(done.json).to.include({ State: 'Success', Progress: 100, ErrorDescription: 'Success', ErrorDetails: '' });
    expect(done.json.Content).to.deep.equal({ Name: 'async1', Position: 2, Steps: 2 });
    expect(done.json.CompletionTime).to.match(/^\d{8}T\d{6}\.\d{6}$/);
  });

  it('"Asynchronous": true is the same; by default the call waits and answers the Content', async () => {
    const a = await call(s, 'POST', '/test/steps', { Name: 'async2', Asynchronous: true });
    expect(a.json.Path).to.equal(`/jobs/${a.json.ID as string}`);
    gate('async2').open();
    await waitUntil(async () => (await stateOf(s, a.json.ID as string)) === 'Success', 'the job to succeed');

    gate('sync1').open();
    const sync = await call(s, 'POST', '/test/steps', { Name: 'sync1', Steps: 3 });
    expect(sync.status).to.equal(200);
    expect(sync.json).to.deep.equal({ Name: 'sync1', Position: 3, Steps: 3 });
    gate('sync2').open();
    const explicit = await call(s, 'POST', '/test/steps', { Name: 'sync2', Synchronous: true, Asynchronous: true });
    expect(explicit.json).to.deep.equal({ Name: 'sync2', Position: 1, Steps: 1 }); // Synchronous wins, as in Orthanc
  });

  it('a synchronous job that fails answers its error as Orthanc error JSON', async () => {
    gate('fail1').open();
    const r = await call(s, 'POST', '/test/steps', { Name: 'fail1', Steps: 2, FailAt: 2 });
    expectOrthancError(r, 400, 15, 'POST', '/test/steps');
    expect(r.json.Details).to.equal('planned failure at step 2');
  });

  it('refuses Synchronous, Asynchronous and Priority of the wrong type', async () => {
    for (const body of [{ Synchronous: 'yes' }, { Asynchronous: 1 }, { Priority: 1.5 }, { Priority: '3' }]) {
      const r = await call(s, 'POST', '/test/steps', body);
      expectOrthancError(r, 400, 15, 'POST', '/test/steps');
      expect(r.json.Details).to.match(/value expected in field: (Synchronous|Asynchronous|Priority)$/);
    }
  });

  it('pause, resume, cancel and resubmit answer {}; a transition that does not apply is a 400', async () => {
    const r = await call(s, 'POST', '/test/steps', { Name: 'ctl', Steps: 3, Synchronous: false });
    const id = r.json.ID as string;
    await waitUntil(() => gate('ctl').waiting === 1, 'the job to run');
    const pause = await call(s, 'POST', `/jobs/${id}/pause`);
    expect(pause.status).to.equal(200);
    expect(pause.json).to.deep.equal({});
    gate('ctl').release(1);
    await waitUntil(async () => (await stateOf(s, id)) === 'Paused', 'the job to pause after its step');
    expect((await call(s, 'GET', `/jobs/${id}`)).json).to.include({ Progress: 33 });

    const resubmitPaused = await call(s, 'POST', `/jobs/${id}/resubmit`);
    expectOrthancError(resubmitPaused, 400, 8, 'POST', `/jobs/${id}/resubmit`);
    expect(resubmitPaused.json.Details).to.match(/state is Paused, not Failure/);

    expect((await call(s, 'POST', `/jobs/${id}/resume`)).json).to.deep.equal({});
    await waitUntil(() => gate('ctl').waiting === 1, 'the job to run again');
    const resumeRunning = await call(s, 'POST', `/jobs/${id}/resume`);
    expectOrthancError(resumeRunning, 400, 8, 'POST', `/jobs/${id}/resume`);

    expect((await call(s, 'POST', `/jobs/${id}/cancel`)).json).to.deep.equal({});
    await waitUntil(async () => (await stateOf(s, id)) === 'Failure', 'the job to be cancelled');
    expect((await call(s, 'GET', `/jobs/${id}`)).json).to.include({ ErrorCode: 37, ErrorDescription: 'This job was canceled' });
    expect((await call(s, 'POST', `/jobs/${id}/cancel`)).json).to.deep.equal({}); // already finished: nothing to do

    gate('ctl').open();
    expect((await call(s, 'POST', `/jobs/${id}/resubmit`)).json).to.deep.equal({});
    await waitUntil(async () => (await stateOf(s, id)) === 'Success', 'the resubmitted job to succeed');
    expect((await call(s, 'GET', `/jobs/${id}`)).json.Content).to.deep.equal({ Name: 'ctl', Position: 3, Steps: 3 });

    for (const action of ['cancel', 'pause', 'resume', 'resubmit']) {
      const unknown = await call(s, 'POST', `/jobs/nope/${action}`);
      expectOrthancError(unknown, 400, 8, 'POST', `/jobs/nope/${action}`);
    }
  });

  it('DELETE /jobs/{id} deletes a finished job only', async () => {
    const r = await call(s, 'POST', '/test/steps', { Name: 'del', Synchronous: false });
    const id = r.json.ID as string;
    await waitUntil(() => gate('del').waiting === 1, 'the job to run');
    const refused = await call(s, 'DELETE', `/jobs/${id}`);
    expectOrthancError(refused, 404, 7, 'DELETE', `/jobs/${id}`);
    expect(refused.json.Details).to.match(/only a finished job can be deleted/);
    gate('del').open();
    await waitUntil(async () => (await stateOf(s, id)) === 'Success', 'the job to succeed');
    const deleted = await call(s, 'DELETE', `/jobs/${id}`);
    expect(deleted.status).to.equal(200);
    expect(deleted.text).to.equal('');
    expect((await call(s, 'GET', `/jobs/${id}`)).status).to.equal(404);
    expect((await call(s, 'GET', '/jobs')).json).to.not.include(id);
    expectOrthancError(await call(s, 'DELETE', '/jobs/nope'), 404, 7, 'DELETE', '/jobs/nope');
  });

  it('GET /jobs/{id}/{key} serves an output with its MIME type; DELETE removes it', async () => {
    gate('out').open();
    const r = await call(s, 'POST', '/test/steps', { Name: 'out', Steps: 2, Output: true, Synchronous: false });
    const id = r.json.ID as string;
    await waitUntil(async () => (await stateOf(s, id)) === 'Success', 'the job to succeed');
    const res = await fetch(`${s.url}/jobs/${id}/archive`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.equal('application/zip');
    expect(res.headers.get('content-disposition')).to.equal('filename="out.zip"');
    expect(await res.text()).to.equal('archive of out');

    const missing = await call(s, 'GET', `/jobs/${id}/other`);
    expectOrthancError(missing, 404, 7, 'GET', `/jobs/${id}/other`);
    expect(missing.json.Details).to.equal('Job has no such output: other');

    const del = await call(s, 'DELETE', `/jobs/${id}/archive`);
    expect(del.status).to.equal(200);
    expectOrthancError(await call(s, 'GET', `/jobs/${id}/archive`), 404, 7, 'GET', `/jobs/${id}/archive`);
    expectOrthancError(await call(s, 'DELETE', `/jobs/${id}/archive`), 404, 7, 'DELETE', `/jobs/${id}/archive`);
  });
});

describe('REST: jobs across a restart', function () {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-rest-jobs-restart-'));
  });
  afterEach(() => {
    for (const g of gates.values()) g.open();
    rmSync(dir, { recursive: true, force: true });
  });

  it('unfinished jobs resume in the next context over the same folders; paused ones stay paused', async () => {
    const first = await server(dir, { ConcurrentJobs: 1 });
    let resumedId: string;
    let pausedId: string;
    let doneId: string;
    try {
      gate('restart-done').open();
      doneId = (await call(first, 'POST', '/test/steps', { Name: 'restart-done', Synchronous: false })).json.ID as string;
      await waitUntil(async () => (await stateOf(first, doneId)) === 'Success', 'the first job to succeed');
      resumedId = (await call(first, 'POST', '/test/steps', { Name: 'restart-run', Steps: 4, Synchronous: false })).json.ID as string;
      gate('restart-run').release(2);
      await waitUntil(async () => gate('restart-run').waiting === 1 && (await call(first, 'GET', `/jobs/${resumedId}`)).json.Progress === 50, 'two steps');
      pausedId = (await call(first, 'POST', '/test/steps', { Name: 'restart-paused', Synchronous: false })).json.ID as string;
      expect((await call(first, 'POST', `/jobs/${pausedId}/pause`)).json).to.deep.equal({});
    } finally {
      await first.close();
    }

    const before = events.length;
    const second = await server(dir, { ConcurrentJobs: 1 });
    try {
      expect((await call(second, 'GET', '/jobs')).json).to.deep.equal([doneId, resumedId, pausedId].sort());
      expect(await stateOf(second, doneId)).to.equal('Success');
      expect(await stateOf(second, pausedId)).to.equal('Paused');
      gate('restart-run').open();
      await waitUntil(async () => (await stateOf(second, resumedId)) === 'Success', 'the resumed job to succeed');
      expect(events.slice(before)).to.deep.equal(['restart-run:3', 'restart-run:4']);
      expect((await call(second, 'GET', `/jobs/${resumedId}`)).json.Content).to.deep.equal({ Name: 'restart-run', Position: 4, Steps: 4 });
    } finally {
      await second.close();
    }
  });

  it('with SaveJobs false, nothing is kept across a restart', async () => {
    const first = await server(dir, { SaveJobs: false });
    try {
      await call(first, 'POST', '/test/steps', { Name: 'unsaved', Synchronous: false });
      await waitUntil(() => gate('unsaved').waiting === 1, 'the job to run');
      expect((await call(first, 'GET', '/jobs')).json).to.have.length(1);
    } finally {
      await first.close();
    }
    const second = await server(dir, { SaveJobs: false });
    try {
      expect((await call(second, 'GET', '/jobs')).json).to.deep.equal([]);
    } finally {
      await second.close();
    }
  });
});
