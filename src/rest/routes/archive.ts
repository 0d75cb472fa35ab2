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
 * `"Synchronous": false` (or `"Asynchronous": true`) needs the jobs engine: answered 501 until archives run as
 * jobs.
 */
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { checkTranscodeTarget, planArchive, writeArchive, type ArchiveRequest } from '../../app/archive.js';
import { PacsError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { LEVEL_PATHS, Level } from '../../store/levels.js';
import type { RouteContext } from '../http-server.js';
import { boolArg, hasArg, readBody, stringArg } from '../request.js';

const log = logger('http');

type Ctx = RouteContext['ctx'];

/** Options of a POST body (Orthanc's `GetJobParameters`, plus 1.12's `Filename`). */
interface JobOptions {
  synchronous: boolean;
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
    return { synchronous: true, extended: defaultExtended };
  }
  const o = body as Record<string, unknown>;
  const synchronousField = boolField(o, 'Synchronous');
  const asynchronousField = boolField(o, 'Asynchronous');
  const synchronous = synchronousField ?? (asynchronousField === undefined ? true : !asynchronousField);
  if (o.Priority !== undefined && (typeof o.Priority !== 'number' || !Number.isSafeInteger(o.Priority))) {
    throw new PacsError('BadFileFormat', 'Field "Priority" must be an integer');
  }
  if (o.LossyQuality !== undefined && (typeof o.LossyQuality !== 'number' || !Number.isSafeInteger(o.LossyQuality))) {
    throw new PacsError('BadFileFormat', 'Field "LossyQuality" must be an integer');
  }
  const transcode = stringField(o, 'Transcode');
  return {
    synchronous,
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

function requireSynchronous(options: JobOptions): void {
  if (!options.synchronous) {
    throw new PacsError(
      'NotImplemented',
      'asynchronous archives ("Synchronous": false, "Asynchronous": true) come with the jobs engine; ' +
        'ask for a synchronous one (the default), which is streamed as it is made',
      { httpStatus: 501 },
    );
  }
}

/** A file name safe in `Content-Disposition: filename="..."` (printable ASCII, no quote or backslash). */
export function contentFilename(name: string): string {
  const safe = name.replace(/[^\x20-\x7e]|["\\]/g, '_').trim();
  return safe === '' ? 'Archive.zip' : safe;
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
        // The resource is checked before the asynchronous mode is refused: an unknown ID stays a 404.
        ctx.store.resource(request.params.id, level);
        requireSynchronous(options);
        return sendArchive(ctx, request, reply, archive, options.filename ?? `${request.params.id}.zip`);
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
      requireSynchronous(options);
      const archive: ArchiveRequest = {
        resources,
        media: batch.media,
        extended: batch.media && options.extended,
        ...(options.transcode !== undefined ? { transcode: options.transcode } : {}),
      };
      return sendArchive(ctx, request, reply, archive, options.filename ?? 'Archive.zip');
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
