/**
 * ZIP archives and DICOMDIR media (Orthanc's OrthancRestArchive.cpp): `/{patients,studies,series}/{id}/archive`
 * and `/media` (GET and POST), `/tools/create-archive`, `/tools/create-media` and `/tools/create-media-extended`
 * (POST with a list of IDs or `{"Resources": [...]}`, and GET with `?resources=id1,id2` as Orthanc 1.12.2+).
 *
 * The ZIP is streamed to the client as it is written (`app/archive.ts`): an unknown resource or a bad option is
 * answered before the first byte; a failure afterwards cuts the connection (the client sees a truncated
 * download, as with Orthanc's streamed archives); a client that goes away stops the writing and releases the file
 * being read.
 *
 * `"Synchronous": false` (or `"Asynchronous": true`) in a POST body runs the archive as an `Archive` or `Media` job
 * (`app/archive-job.ts`), as Orthanc: the answer is `{ID, Path}` at once (after the resources and options were
 * checked), and the ZIP is then `GET /jobs/{id}/archive`. GET routes are always synchronous, as in Orthanc.
 */
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { checkTranscodeTarget, planArchive, writeArchive, type ArchiveRequest } from '../../app/archive.js';
import { ArchiveJob, mediaArchiveOf } from '../../app/archive-job.js';
import { PacsError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { LEVEL_PATHS, Level } from '../../store/levels.js';
import type { RouteContext } from '../http-server.js';
import { boolArg, hasArg, json, readBody, stringArg } from '../request.js';
import { jobRequest, submitJob } from './jobs.js';

const log = logger('http');

type Ctx = RouteContext['ctx'];

/** `GET /jobs/{id}/archive` (served by the jobs routes): the download makes the archive the most recent. */
const JOB_ARCHIVE_URL = /^\/jobs\/([^/?]+)\/archive(?:\?|$)/;

/** Options of a POST body (Orthanc's `GetJobParameters`, plus 1.12's `Filename`). */
interface JobOptions {
  synchronous: boolean;
  /** The job's priority (asynchronous mode). */
  priority: number;
  extended: boolean;
  transcode?: string;
  filename?: string;
}

/** The body as JSON; an empty body counts as `{}` (Orthanc answers 400 to it). */
async function readJsonBody(request: FastifyRequest, what: string): Promise<unknown> {
  const text = (await readBody(request)).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new PacsError('BadFileFormat', `${what}: the body is not valid JSON`);
  }
}

function boolField(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new PacsError('BadFileFormat', `Field "${key}" must be a Boolean`);
  return v;
}

function stringField(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new PacsError('BadFileFormat', `Field "${key}" must be a string`);
  return v;
}

function jobOptions(body: unknown, defaultExtended: boolean): JobOptions {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { synchronous: true, priority: 0, extended: defaultExtended };
  }
  const o = body as Record<string, unknown>;
  // Synchronous by default, as Orthanc's archives.
  const { synchronous, priority = 0 } = jobRequest(o, true);
  if (o.LossyQuality !== undefined && (typeof o.LossyQuality !== 'number' || !Number.isSafeInteger(o.LossyQuality))) {
    throw new PacsError('BadFileFormat', 'Field "LossyQuality" must be an integer');
  }
  const transcode = stringField(o, 'Transcode');
  return {
    synchronous,
    priority,
    extended: boolField(o, 'Extended') ?? defaultExtended,
    ...(transcode !== undefined ? { transcode: checkTranscodeTarget(transcode) } : {}),
    ...(o.Filename !== undefined ? { filename: stringField(o, 'Filename') } : {}),
  };
}

/** `Resources` of a batch body: a list of IDs, or an object holding it (Orthanc's AddResourcesOfInterest). */
function resourcesOf(body: unknown): string[] {
  let list: unknown = body;
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const o = body as Record<string, unknown>;
    if (!('Resources' in o)) throw new PacsError('BadFileFormat', 'Missing field Resources in the JSON body');
    list = o.Resources;
  } else if (!Array.isArray(body)) {
    throw new PacsError('BadFileFormat', 'Expected a list of resources to archive in the body');
  }
  if (!Array.isArray(list) || list.some((v) => typeof v !== 'string')) {
    throw new PacsError('BadFileFormat', 'Expected a list of strings (Orthanc identifiers)');
  }
  return list as string[];
}

/** A file name safe in `Content-Disposition: filename="..."` (printable ASCII, no quote or backslash). */
export function contentFilename(name: string): string {
  const safe = name.replace(/[^\x20-\x7e]|["\\]/g, '_').trim();
  return safe === '' ? 'Archive.zip' : safe;
}

/** Asynchronous mode: submits an `Archive` (or `Media`) job and answers `{ID, Path}` (Orthanc's SubmitGenericJob). */
async function submitArchiveJob(ctx: Ctx, reply: FastifyReply, archive: ArchiveRequest, filename: string, priority: number) {
  const job = new ArchiveJob(
    { ctx, mediaArchive: mediaArchiveOf(ctx.jobs, ctx.config.MediaArchiveSize) },
    { request: archive, filename: contentFilename(filename), description: 'REST API' },
  );
  const answer = await submitJob(ctx, job, { synchronous: false, priority });
  return reply.type('application/json').send(json(answer));
}

/** Plans (errors answered normally), then streams the ZIP as the answer. */
function sendArchive(ctx: Ctx, request: FastifyRequest, reply: FastifyReply, archive: ArchiveRequest, filename: string) {
  const plan = planArchive(ctx, archive);
  reply.type('application/zip').header('Content-Disposition', `filename="${contentFilename(filename)}"`);
  // HEAD (fastify's automatic route for each GET): the headers only, without reading the whole study for nothing.
  if (request.method === 'HEAD') return reply.send();
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  const aborter = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) aborter.abort(new Error('the client closed the connection'));
  };
  res.on('close', onClose);
  const started = Date.now();
  writeArchive(ctx, plan, body, aborter.signal)
    .then((result) => {
      if (log.isEnabled('verbose')) {
        log.verbose(
          `${request.method} ${request.url.split('?')[0]}: ${result.instancesCount} instances, ${result.archiveSize} bytes in ${Date.now() - started} ms`,
        );
      }
    })
    .catch((error: unknown) => {
      if (aborter.signal.aborted) {
        log.info(`${request.method} ${request.url.split('?')[0]}: the client left before the end of the archive`);
        body.destroy();
      } else {
        log.error(`${request.method} ${request.url.split('?')[0]}: archive interrupted: ${(error as Error).message}`);
        body.destroy(error as Error);
      }
    })
    .finally(() => res.off('close', onClose));
  return reply.send(body);
}

export function registerArchiveRoutes({ app, ctx }: RouteContext): void {
  // Orthanc's SharedArchive: an archive downloaded becomes the most recent, the last to be removed.
  app.addHook('onRequest', async (request) => {
    if (request.method !== 'GET') return;
    const match = JOB_ARCHIVE_URL.exec(request.url);
    if (match) mediaArchiveOf(ctx.jobs, ctx.config.MediaArchiveSize).touch(match[1]!);
  });

  for (const level of [Level.Patient, Level.Study, Level.Series]) {
    const path = LEVEL_PATHS[level];
    for (const media of [false, true]) {
      const route = `/${path}/:id/${media ? 'media' : 'archive'}`;

      app.get<{ Params: { id: string } }>(route, async (request, reply) => {
        const transcode = stringArg(request, 'transcode');
        const archive: ArchiveRequest = {
          resources: [request.params.id],
          level,
          media,
          extended: media && boolArg(request, 'extended'),
          ...(transcode !== undefined ? { transcode: checkTranscodeTarget(transcode) } : {}),
        };
        return sendArchive(ctx, request, reply, archive, stringArg(request, 'filename') ?? `${request.params.id}.zip`);
      });

      app.post<{ Params: { id: string } }>(route, async (request, reply) => {
        const options = jobOptions(await readJsonBody(request, 'archive options'), false);
        const archive: ArchiveRequest = {
          resources: [request.params.id],
          level,
          media,
          extended: media && options.extended,
          ...(options.transcode !== undefined ? { transcode: options.transcode } : {}),
        };
        // Checked first: an unknown ID is a 404 (in the asynchronous mode too, rather than a failed job).
        ctx.store.resource(request.params.id, level);
        const filename = options.filename ?? `${request.params.id}.zip`;
        if (!options.synchronous) return submitArchiveJob(ctx, reply, archive, filename, options.priority);
        return sendArchive(ctx, request, reply, archive, filename);
      });
    }
  }

  const batches = [
    { route: '/tools/create-archive', media: false, extended: false },
    { route: '/tools/create-media', media: true, extended: false },
    { route: '/tools/create-media-extended', media: true, extended: true },
  ];
  for (const batch of batches) {
    app.post(batch.route, async (request, reply) => {
      const body = await readJsonBody(request, 'Expected a list of resources to archive in the body');
      const options = jobOptions(body, batch.extended);
      const resources = resourcesOf(body);
      for (const id of resources) ctx.store.resource(id);
      const archive: ArchiveRequest = {
        resources,
        media: batch.media,
        extended: batch.media && options.extended,
        ...(options.transcode !== undefined ? { transcode: options.transcode } : {}),
      };
      const filename = options.filename ?? 'Archive.zip';
      if (!options.synchronous) return submitArchiveJob(ctx, reply, archive, filename, options.priority);
      return sendArchive(ctx, request, reply, archive, filename);
    });

    app.get(batch.route, async (request, reply) => {
      if (!hasArg(request, 'resources')) {
        throw new PacsError('BadRequest', `Missing the "resources" argument (a comma-separated list of Orthanc identifiers)`);
      }
      const resources = (stringArg(request, 'resources') ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      const transcode = stringArg(request, 'transcode');
      const archive: ArchiveRequest = {
        resources,
        media: batch.media,
        extended: batch.media && boolArg(request, 'extended', batch.extended),
        ...(transcode !== undefined ? { transcode: checkTranscodeTarget(transcode) } : {}),
      };
      return sendArchive(ctx, request, reply, archive, stringArg(request, 'filename') ?? 'Archive.zip');
    });
  }
}
