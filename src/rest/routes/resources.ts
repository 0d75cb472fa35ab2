/**
 * Local resources: listing, one resource, deletion, the upload door (`POST /instances`: a DICOM file or a ZIP of
 * them, streamed into the one ingestion path) and an instance's content (`/file`, `/tags`, `/simplified-tags`).
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createInflate } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PacsError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { walkZip } from '../../core/zip.js';
import { afterPixelData } from '../../dicom/content-path.js';
import { datasetToOrthancJson, type OrthancTagsFormat } from '../../dicom/json.js';
import { tagFromKeywordOrString } from '../../dicom/dictionary.js';
import type { Tag } from '../../dicom/tag.js';
import { LEVEL_NAMES, LEVEL_PATHS, LEVELS, Level } from '../../store/levels.js';
import type { ResourceRow } from '../../store/sqlite-index.js';
import { takeInput } from '../../store/input.js';
import type { Origin, StoreResult } from '../../store/store.js';
import { tooLarge, type RouteContext } from '../http-server.js';
import { boolArg, hasArg, intArg, json, readBody, stringArg } from '../request.js';
import { serializeResources, type TagsFormat } from '../serialize.js';

const log = logger('http');

/** `?full` / `?short` select the tag format of resource answers (Orthanc 1.9+). */
export function tagsFormatOf(request: FastifyRequest): TagsFormat {
  if (boolArg(request, 'full')) return 'full';
  if (boolArg(request, 'short')) return 'short';
  return 'human';
}

/** `requested-tags=PatientName;0008,0020` or `RequestedTags: [...]` -> tags; unknown names are a 400. */
export function parseRequestedTags(value: string | readonly unknown[] | undefined): Tag[] {
  if (value === undefined) return [];
  const names = typeof value === 'string' ? value.split(';').filter((s) => s.trim() !== '') : value;
  return names.map((n) => {
    if (typeof n !== 'string') throw new PacsError('BadRequest', 'requested tags must be strings');
    const tag = tagFromKeywordOrString(n.trim());
    if (tag === undefined) throw new PacsError('UnknownDicomTag', n, { httpStatus: 400 });
    return tag;
  });
}

export function registerResourceRoutes({ app, ctx }: RouteContext): void {
  const { index, store } = ctx;

  for (const level of [Level.Patient, Level.Study, Level.Series, Level.Instance]) {
    const path = LEVEL_PATHS[level];

    app.get(`/${path}`, async (request, reply) => {
      // As Orthanc: `since` and `limit` go together, and `limit=0` lists nothing.
      const paged = hasArg(request, 'since') || hasArg(request, 'limit');
      if (paged && !(hasArg(request, 'since') && hasArg(request, 'limit'))) {
        throw new PacsError('BadRequest', `Missing "${hasArg(request, 'since') ? 'limit' : 'since'}" argument for GET request against: ${request.url}`);
      }
      const since = intArg(request, 'since', 0);
      const limit = intArg(request, 'limit', 0);
      // `limit=0` lists nothing up to Orthanc 1.12.4, and means "no limit" since 1.12.5.
      const rows = paged && limit === 0 && !apiAtLeast(ctx.config.OrthancApiVersion, 1, 12, 5) ? [] : index.list(level, since, limit);
      if (!boolArg(request, 'expand')) return reply.type('application/json').send(json(rows.map((r) => r.publicId)));
      const body = await serializeResources(ctx, rows, level, {
        format: tagsFormatOf(request),
        requestedTags: parseRequestedTags(stringArg(request, 'requested-tags')),
      });
      return reply.type('application/json').send(json(body));
    });

    app.get<{ Params: { id: string } }>(`/${path}/:id`, async (request, reply) => {
      const row = store.resource(request.params.id, level);
      const [body] = await serializeResources(ctx, [row], level, {
        format: tagsFormatOf(request),
        requestedTags: parseRequestedTags(stringArg(request, 'requested-tags')),
      });
      return reply.type('application/json').send(json(body));
    });

    app.delete<{ Params: { id: string } }>(`/${path}/:id`, async (request, reply) => {
      const remaining = await store.delete(request.params.id, level);
      const body = {
        RemainingAncestor: remaining
          ? {
              ID: remaining.publicId,
              Path: `/${LEVEL_PATHS[remaining.level]}/${remaining.publicId}`,
              Type: LEVEL_NAMES[remaining.level],
            }
          : null,
      };
      return reply.type('application/json').send(json(body));
    });
  }

  app.post('/instances', async (request, reply) => uploadInstances(ctx, request, reply));

  registerHierarchyRoutes({ app, ctx });
  registerInstanceTagsRoutes({ app, ctx });
  registerProtectionRoutes({ app, ctx });

  app.get<{ Params: { id: string } }>('/instances/:id/file', async (request, reply) => {
    const { stream, size } = await store.openDicom(request.params.id);
    return reply
      .type('application/dicom')
      .header('Content-Length', size)
      .header('Content-Disposition', `filename="${request.params.id}.dcm"`)
      .send(stream);
  });

  const tagsRoute = (format: (request: FastifyRequest) => OrthancTagsFormat) =>
    async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
      const parsed = await store.parseInstance(request.params.id);
      // Orthanc 1.12.4+: the tags after the pixel data only with `?whole`.
      const omit = boolArg(request, 'whole') ? undefined : afterPixelData;
      return reply.type('application/json').send(json(datasetToOrthancJson(parsed.dataset, format(request), { omit })));
    };
  app.get(
    '/instances/:id/tags',
    tagsRoute((request) => (boolArg(request, 'simplify') ? 'simplify' : boolArg(request, 'short') ? 'short' : 'full')),
  );
  app.get('/instances/:id/simplified-tags', tagsRoute(() => 'simplify'));
}

/**
 * POST /instances: one DICOM file or a ZIP of files. The first bytes tell which; a DICOM body goes to the
 * ingestion path as a Buffer when small and as a stream otherwise; a ZIP is spooled, then each entry streamed.
 */
async function uploadInstances(ctx: RouteContext['ctx'], request: FastifyRequest, reply: FastifyReply) {
  const origin: Origin = { kind: 'rest', remoteIp: request.socket.remoteAddress, httpUsername: request.httpUsername };
  const maxBytes = ctx.config.MaximumHttpBodySize * 1024 * 1024;
  // MaximumHttpBodySize bounds the decoded body: a small gzip cannot expand into an unbounded upload.
  const { input, head, empty } = await takeInput(decodedBody(request), { maxBytes, tooLarge: () => tooLarge(maxBytes) });
  if (empty) throw new PacsError('BadFileFormat', 'empty request body: expected a DICOM file or a ZIP archive');
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) {
    const results = await storeZip(ctx, Buffer.isBuffer(input) ? Readable.from([input]) : input, origin);
    return reply.type('application/json').send(json(results));
  }
  const result = await ctx.store.store(input, origin);
  return reply.type('application/json').send(json(result));
}

/**
 * The request body, decoded when it comes with `Content-Encoding: gzip` or `deflate` (as Orthanc's HTTP server
 * accepts, and as Orthanc peers send with `Compress`). A corrupted compressed body is a 400.
 */
function decodedBody(request: FastifyRequest): AsyncIterable<Buffer> {
  const raw = request.raw as Readable;
  const encoding = String(request.headers['content-encoding'] ?? '').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return raw;
  let decoder: Transform;
  if (encoding === 'gzip' || encoding === 'x-gzip') decoder = createGunzip();
  else if (encoding === 'deflate') decoder = createInflate();
  else throw new PacsError('BadRequest', `unsupported Content-Encoding "${encoding}": expected gzip, deflate or none`);
  raw.on('error', (e) => decoder.destroy(e));
  raw.pipe(decoder);
  return (async function* () {
    try {
      for await (const chunk of decoder as AsyncIterable<Buffer>) yield chunk;
    } catch (e) {
      if (typeof (e as { errno?: unknown }).errno === 'number' && (e as { code?: string }).code?.startsWith('Z_')) {
        throw new PacsError('BadFileFormat', `the ${encoding} body cannot be decoded: ${(e as Error).message}`);
      }
      throw e;
    } finally {
      raw.unpipe(decoder);
    }
  })();
}

type ZipAnswer = StoreResult | { Filename: string; Status: 'Failure'; Details: string };

async function storeZip(ctx: RouteContext['ctx'], body: Readable, origin: Origin): Promise<ZipAnswer[]> {
  const dir = join(tmpdir(), 'pacsnode-upload');
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${randomUUID()}.zip`);
  try {
    await pipeline(body, createWriteStream(path));
    const answers: ZipAnswer[] = [];
    const walk = await walkZip(path, async (entry) => {
      try {
        answers.push(await ctx.store.store(await entry.open(), origin));
      } catch (e) {
        answers.push({ Filename: entry.name, Status: 'Failure', Details: (e as Error).message });
      }
    });
    for (const error of walk.errors) log.warn(`ZIP upload: ${error}`);
    if (answers.length === 0 && walk.errors.length > 0) {
      throw new PacsError('BadFileFormat', `unreadable ZIP archive: ${walk.errors.join('; ')}`);
    }
    for (const error of walk.errors) answers.push({ Filename: '', Status: 'Failure', Details: error });
    return answers;
  } finally {
    await rm(path, { force: true });
  }
}


/** Whether `OrthancApiVersion` (e.g. `1.12.6`) is at least major.minor.patch. */
export function apiAtLeast(version: string, major: number, minor: number, patch: number): boolean {
  const [a = 0, b = 0, c = 0] = version.split('.').map((n) => Number(n) || 0);
  return a !== major ? a > major : b !== minor ? b > minor : c >= patch;
}

/** Orthanc's GetDicomFormat for tag routes: `?simplify`, `?short`, `?full`, else the route's default. */
function dicomFormatOf(request: FastifyRequest, defaultFormat: OrthancTagsFormat): OrthancTagsFormat {
  if (boolArg(request, 'simplify')) return 'simplify';
  if (boolArg(request, 'short')) return 'short';
  if (boolArg(request, 'full')) return 'full';
  return defaultFormat;
}

type IdRequest = FastifyRequest<{ Params: { id: string } }>;

/** The instances of a resource of any level (an instance is its own), in insertion order; 404 for unknown IDs. */
function childInstances(ctx: RouteContext['ctx'], publicId: string): ResourceRow[] {
  const row = ctx.store.resource(publicId);
  return ctx.index.descendants(row.id, row.level, Level.Instance);
}

/**
 * Child shortcuts (`/patients/{id}/studies`, ...: expanded unless `expand=false`, as Orthanc 1.12.2+), parent
 * shortcuts (`/instances/{id}/study`, ...) and `/{level}/{id}/statistics`.
 */
function registerHierarchyRoutes({ app, ctx }: RouteContext): void {
  const { index, store } = ctx;
  const serializeOptions = (request: FastifyRequest) => ({
    format: tagsFormatOf(request),
    requestedTags: parseRequestedTags(stringArg(request, 'requested-tags')),
  });

  for (const start of [Level.Patient, Level.Study, Level.Series]) {
    for (const end of LEVELS.filter((l) => l > start)) {
      app.get(`/${LEVEL_PATHS[start]}/:id/${LEVEL_PATHS[end]}`, async (request: IdRequest, reply) => {
        const row = store.resource(request.params.id, start);
        const rows = index.descendants(row.id, start, end);
        const expand = !hasArg(request, 'expand') || boolArg(request, 'expand');
        if (!expand) return reply.type('application/json').send(json(rows.map((r) => r.publicId)));
        return reply.type('application/json').send(json(await serializeResources(ctx, rows, end, serializeOptions(request))));
      });
    }
  }

  for (const start of [Level.Study, Level.Series, Level.Instance]) {
    for (const end of LEVELS.filter((l) => l < start)) {
      app.get(`/${LEVEL_PATHS[start]}/:id/${LEVEL_NAMES[end].toLowerCase()}`, async (request: IdRequest, reply) => {
        let row: ResourceRow | undefined = store.resource(request.params.id, start);
        for (let level = start; level > end && row; level--) row = row.parentId === null ? undefined : index.findById(row.parentId);
        if (!row) throw new PacsError('UnknownResource', `the ${LEVEL_NAMES[end].toLowerCase()} of ${request.params.id} is gone`);
        const [body] = await serializeResources(ctx, [row], end, serializeOptions(request));
        return reply.type('application/json').send(json(body));
      });
    }
  }

  for (const path of LEVEL_PATHS) {
    // As Orthanc, the statistics are those of the resource whatever the level in the URI.
    app.get(`/${path}/:id/statistics`, async (request: IdRequest, reply) => {
      const row = store.resource(request.params.id);
      const s = index.resourceStatistics(row.id);
      const mb = (n: number) => Math.floor(n / (1024 * 1024));
      const body: Record<string, unknown> = {};
      if (row.level <= Level.Series) body.CountInstances = s.counts[Level.Instance];
      if (row.level <= Level.Study) body.CountSeries = s.counts[Level.Series];
      if (row.level === Level.Patient) body.CountStudies = s.counts[Level.Study];
      Object.assign(body, {
        DicomDiskSize: String(s.dicomCompressed),
        DicomDiskSizeMB: mb(s.dicomCompressed),
        DicomUncompressedSize: String(s.dicomUncompressed),
        DicomUncompressedSizeMB: mb(s.dicomUncompressed),
        DiskSize: String(s.compressed),
        DiskSizeMB: mb(s.compressed),
        UncompressedSize: String(s.uncompressed),
        UncompressedSizeMB: mb(s.uncompressed),
      });
      return reply.type('application/json').send(json(body));
    });
  }
}

/** Orthanc's DICOM modules (DicomTag::AddTagsForModule, after PS3.3 C.7.1.1, C.7.2.1, C.7.3.1, C.12.1). */
const MODULE_TAGS: Record<'patient' | 'study' | 'series' | 'instance', ReadonlySet<Tag>> = {
  patient: new Set([
    0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00081120, 0x00100032, 0x00101000, 0x00101002, 0x00101001,
    0x00102160, 0x00104000, 0x00102201, 0x00102202, 0x00102292, 0x00102293, 0x00102294, 0x00102297, 0x00102298,
    0x00102299, 0x00120062, 0x00120063, 0x00120064, 0x00100021, 0x00100024,
  ]),
  study: new Set([
    0x0020000d, 0x00080020, 0x00080030, 0x00080090, 0x00080096, 0x00200010, 0x00080050, 0x00080051, 0x00081030,
    0x00081048, 0x00081049, 0x00081060, 0x00081062, 0x00321034, 0x00081110, 0x00081032, 0x00401012,
  ]),
  series: new Set([
    0x00080060, 0x0020000e, 0x00200011, 0x00200060, 0x00080021, 0x00080031, 0x00081050, 0x00081052, 0x00181030,
    0x0008103e, 0x0008103f, 0x00081070, 0x00081072, 0x00081111, 0x00081250, 0x00180015, 0x00185100, 0x00280108,
    0x00290109, 0x00400275, 0x00102210, 0x00400253, 0x00400244, 0x00400245, 0x00400254, 0x00400260, 0x00400280,
  ]),
  instance: new Set([
    0x00080016, 0x00080018, 0x00080005, 0x00080012, 0x00080013, 0x00080014, 0x0008001a, 0x0008001b, 0x00080110,
    0x00080201, 0x0018a001, 0x00200013, 0x01000410, 0x01000420, 0x01000424, 0x01000426, 0x04000500, 0x04000561,
    0x0040a390, 0x00280303, 0x4ffe0001, 0xfffafffa,
  ]),
};

/**
 * Tags read from the stored files: `/{patients,studies,series}/{id}/shared-tags` (the String-valued tags equal in
 * every instance), `/{level}/{id}/module` and `/studies/{id}/module-patient` (one module's tags, from one
 * instance), `/{patients,studies,series}/{id}/instances-tags` (every instance's tags, by instance ID). The format
 * is Orthanc's `full` unless `?simplify` or `?short`. As Orthanc, the ID may be of any level.
 */
function registerInstanceTagsRoutes({ app, ctx }: RouteContext): void {
  const { store } = ctx;

  for (const level of [Level.Patient, Level.Study, Level.Series]) {
    const path = LEVEL_PATHS[level];

    app.get(`/${path}/:id/shared-tags`, async (request: IdRequest, reply) => {
      const format = dicomFormatOf(request, 'full');
      let shared: Map<string, { name: string; value: string }> | undefined;
      for (const instance of childInstances(ctx, request.params.id)) {
        let parsed;
        try {
          parsed = await store.parseInstance(instance.publicId, { untilPixelData: true });
        } catch (e) {
          if (e instanceof PacsError && e.code === 'UnknownResource') continue; // deleted meanwhile, as Orthanc
          throw e;
        }
        const tags = new Map<string, { name: string; value: string }>();
        for (const [key, node] of Object.entries(datasetToOrthancJson(parsed.dataset, 'full'))) {
          const n = node as { Name: string; Type: string; Value: unknown };
          if (n.Type === 'String') tags.set(key, { name: n.Name, value: n.Value as string });
        }
        if (!shared) shared = tags;
        else for (const [key, v] of shared) if (tags.get(key)?.value !== v.value) shared.delete(key);
      }
      const out: Record<string, unknown> = {};
      for (const [key, v] of shared ?? []) {
        if (format === 'full') out[key] = { Name: v.name, Type: 'String', Value: v.value };
        else out[format === 'short' ? key : v.name] = v.value;
      }
      return reply.type('application/json').send(json(out));
    });

    app.get(`/${path}/:id/instances-tags`, async (request: IdRequest, reply) => {
      const format = dicomFormatOf(request, 'full');
      const instances = childInstances(ctx, request.params.id).map((r) => r.publicId).sort();
      const out: Record<string, unknown> = {};
      for (const id of instances) out[id] = datasetToOrthancJson((await store.parseInstance(id)).dataset, format);
      return reply.type('application/json').send(json(out));
    });
  }

  const moduleRoute = (module: keyof typeof MODULE_TAGS) => async (request: IdRequest, reply: FastifyReply) => {
    const format = dicomFormatOf(request, 'full');
    const [instance] = childInstances(ctx, request.params.id);
    if (!instance) throw new PacsError('UnknownResource', `${request.params.id} has no instance`);
    const tags = MODULE_TAGS[module];
    const dataset = (await store.parseInstance(instance.publicId)).dataset;
    return reply.type('application/json').send(json(datasetToOrthancJson(dataset, format, { omit: (t) => !tags.has(t) })));
  };
  app.get('/patients/:id/module', moduleRoute('patient'));
  app.get('/studies/:id/module', moduleRoute('study'));
  app.get('/studies/:id/module-patient', moduleRoute('patient'));
  app.get('/series/:id/module', moduleRoute('series'));
  app.get('/instances/:id/module', moduleRoute('instance'));
}

/**
 * `GET|PUT /patients/{id}/protected`: protection against recycling. As Orthanc, a missing patient is a 400
 * (ParameterOutOfRange), the body is `0`/`1` (or `false`/`true`), and PUT answers an empty body.
 */
function registerProtectionRoutes({ app, ctx }: RouteContext): void {
  const patient = (publicId: string): ResourceRow => {
    const row = ctx.index.findByPublicId(publicId);
    if (!row || row.level !== Level.Patient) {
      throw new PacsError('ParameterOutOfRange', `unknown patient: ${publicId}`, { httpStatus: 400 });
    }
    return row;
  };

  app.get('/patients/:id/protected', async (request: IdRequest, reply) =>
    reply.type('text/plain').send(ctx.index.isProtected(patient(request.params.id).id) ? '1' : '0'),
  );

  app.put('/patients/:id/protected', async (request: IdRequest, reply) => {
    const text = (await readBody(request)).toString('utf8').trim().toLowerCase();
    if (text !== '0' && text !== '1' && text !== 'true' && text !== 'false') {
      throw new PacsError('BadRequest', `the body must be 0 or 1 (or false or true), found ${JSON.stringify(text.slice(0, 32))}`);
    }
    ctx.index.setProtected(patient(request.params.id).id, text === '1' || text === 'true');
    return reply.type('text/plain').send('');
  });
}
