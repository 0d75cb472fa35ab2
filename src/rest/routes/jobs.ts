/**
 * Orthanc's jobs routes (OrthancRestSystem.cpp): `/jobs` (`?expand`), `/jobs/{id}`, its actions (cancel, pause,
 * resume, resubmit: `{}` when done, 400 when the job is unknown or the action does not apply), `DELETE /jobs/{id}`
 * (finished jobs only, as Orthanc 1.12), and the outputs `GET|DELETE /jobs/{id}/{key}`.
 *
 * Also the helpers long routes use to run their work as a job, as Orthanc's SubmitGenericJob:
 * `jobRequest(body, defaultSynchronous)` reads `Synchronous`/`Asynchronous` and `Priority`, `submitJob(ctx, job,
 * request)` answers `{ID, Path}` at once or, synchronously, the finished job's `Content`.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { AppContext } from '../../app/context.js';
import { PacsError } from '../../core/errors.js';
import type { Job } from '../../jobs/job.js';
import type { RouteContext } from '../http-server.js';
import { hasArg, json, readBody } from '../request.js';

/** How a long route runs its job: Orthanc's `Synchronous` (or `Asynchronous`) and `Priority` fields. */
export interface JobRequest {
  synchronous: boolean;
  /** Higher runs first; default 0. */
  priority?: number;
}

/**
 * Reads Orthanc's job fields of a POST body (IsSynchronousJobRequest, GetJobRequestPriority): `Synchronous`
 * (Boolean), else `Asynchronous` (Boolean, the opposite), else `defaultSynchronous`; `Priority` (integer, default 0).
 */
export function jobRequest(body: Readonly<Record<string, unknown>> | undefined, defaultSynchronous: boolean): JobRequest {
  let synchronous = defaultSynchronous;
  if (body?.Synchronous !== undefined) synchronous = readBoolean(body, 'Synchronous');
  else if (body?.Asynchronous !== undefined) synchronous = !readBoolean(body, 'Asynchronous');
  let priority = 0;
  if (body?.Priority !== undefined) {
    const p = body.Priority;
    if (typeof p !== 'number' || !Number.isSafeInteger(p)) {
      throw new PacsError('BadFileFormat', 'Integer value expected in field: Priority');
    }
    priority = p;
  }
  return { synchronous, priority };
}

function readBoolean(body: Readonly<Record<string, unknown>>, field: string): boolean {
  const v = body[field];
  if (typeof v !== 'boolean') throw new PacsError('BadFileFormat', `Boolean value expected in field: ${field}`);
  return v;
}

/**
 * Runs `job` as Orthanc's SubmitGenericJob does. Asynchronous: queued, answers `{ ID, Path }` at once (Path is
 * `/jobs/{id}`). Synchronous: waits for the end and answers the job's `Content`; a failed (or cancelled) job throws
 * its error (a `PacsError` with the job's ErrorCode and ErrorDetails), which the error handler sends as Orthanc's
 * error JSON. `request` is `jobRequest(body, ...)`, or just `synchronous` (priority 0). The value is the JSON body
 * to send.
 */
export async function submitJob(ctx: AppContext, job: Job, request: JobRequest | boolean): Promise<Record<string, unknown>> {
  const { synchronous, priority = 0 } = typeof request === 'boolean' ? { synchronous: request } : request;
  if (synchronous) {
    const finished = await ctx.jobs.submitAndWait(job, priority);
    return finished.content;
  }
  const id = ctx.jobs.submit(job, priority);
  return { ID: id, Path: `/jobs/${id}` };
}

const ACTIONS = ['cancel', 'pause', 'resubmit', 'resume'] as const;

export function registerJobRoutes({ app, ctx }: RouteContext): void {
  const { jobs } = ctx;

  app.get('/jobs', async (request, reply) => {
    // As Orthanc: the presence of `expand` asks for the details, whatever its value.
    const ids = jobs.list();
    const body = hasArg(request, 'expand') ? ids.flatMap((id) => jobs.info(id) ?? []) : ids;
    return reply.type('application/json').send(json(body));
  });

  app.get<{ Params: { id: string } }>('/jobs/:id', async (request, reply) => {
    const info = jobs.info(request.params.id);
    if (!info) throw new PacsError('InexistentItem', `unknown job: ${request.params.id}`);
    return reply.type('application/json').send(json(info));
  });

  for (const action of ACTIONS) {
    app.post<{ Params: { id: string } }>(`/jobs/:id/${action}`, async (request, reply) => {
      await readBody(request, 1 << 20); // ignored, as by Orthanc
      const { id } = request.params;
      const state = jobs.state(id);
      if (state === undefined) throw new PacsError('BadRequest', `unknown job: ${id}`);
      if (!jobs[action](id)) {
        const expected = action === 'resume' ? 'Paused' : action === 'resubmit' ? 'Failure' : state;
        throw new PacsError('BadRequest', `cannot ${action} job ${id}: its state is ${state}, not ${expected}`);
      }
      return reply.type('application/json').send('{}');
    });
  }

  app.delete<{ Params: { id: string } }>('/jobs/:id', async (request, reply) => {
    const { id } = request.params;
    const state = jobs.state(id);
    if (!jobs.delete(id)) {
      throw new PacsError(
        'InexistentItem',
        state === undefined ? `No job found with this id: ${id}` : `cannot delete job ${id}: its state is ${state}; only a finished job can be deleted (cancel it first)`,
      );
    }
    return reply.type('text/plain').send('');
  });

  app.get<{ Params: { id: string; key: string } }>('/jobs/:id/:key', async (request, reply) => {
    const { id, key } = request.params;
    const output = jobs.output(id, key);
    const size = output ? await stat(output.path).then((s) => s.size, () => undefined) : undefined;
    if (!output || size === undefined) throw new PacsError('InexistentItem', `Job has no such output: ${key}`);
    reply.type(output.mimeType).header('Content-Length', size);
    if (output.filename) reply.header('Content-Disposition', `filename="${output.filename.replace(/["\\\r\n]/g, '_')}"`);
    return reply.send(createReadStream(output.path));
  });

  app.delete<{ Params: { id: string; key: string } }>('/jobs/:id/:key', async (request, reply) => {
    const { id, key } = request.params;
    if (!jobs.deleteOutput(id, key)) throw new PacsError('InexistentItem', `Job has no such output: ${key}`);
    return reply.type('text/plain').send('');
  });
}
