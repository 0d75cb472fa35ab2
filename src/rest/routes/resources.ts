/**
 * Local resources: listing, one resource, deletion, the upload door (`POST /instances`: a DICOM file or a ZIP of
 * them, streamed into the one ingestion path) and an instance's content (`/file`, `/tags`, `/simplified-tags`).
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PacsError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { walkZip } from '../../core/zip.js';
import { datasetToOrthancJson, type OrthancTagsFormat } from '../../dicom/json.js';
import { tagFromKeywordOrString } from '../../dicom/dictionary.js';
import type { Tag } from '../../dicom/tag.js';
import { LEVEL_NAMES, LEVEL_PATHS, Level } from '../../store/levels.js';
import { takeInput } from '../../store/input.js';
import type { Origin, StoreResult } from '../../store/store.js';
import { tooLarge, type RouteContext } from '../http-server.js';
import { boolArg, hasArg, intArg, json, stringArg } from '../request.js';
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
      const rows = paged && limit === 0 ? [] : index.list(level, since, limit);
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
      return reply.type('application/json').send(json(datasetToOrthancJson(parsed.dataset, format(request))));
    };
  app.get(
    '/instances/:id/tags',
    tagsRoute((request) => (boolArg(request, 'simplify') ? 'simplify' : boolArg(request, 'short') ? 'short' : 'full')),
  );
  app.get('/instances/:id/simplified-tags', tagsRoute(() => 'simplify'));
}

/** Bodies up to this size are collected in memory (nearly every instance); larger ones stream to the store. */
/**
 * POST /instances: one DICOM file or a ZIP of files. The first bytes tell which; a DICOM body goes to the
 * ingestion path as a Buffer when small and as a stream otherwise; a ZIP is spooled, then each entry streamed.
 */
async function uploadInstances(ctx: RouteContext['ctx'], request: FastifyRequest, reply: FastifyReply) {
  const origin: Origin = { kind: 'rest', remoteIp: request.socket.remoteAddress, httpUsername: request.httpUsername };
  const maxBytes = ctx.config.MaximumHttpBodySize * 1024 * 1024;
  const { input, head, empty } = await takeInput(request.raw as AsyncIterable<Buffer>, { maxBytes, tooLarge: () => tooLarge(maxBytes) });
  if (empty) throw new PacsError('BadFileFormat', 'empty request body: expected a DICOM file or a ZIP archive');
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) {
    const results = await storeZip(ctx, Buffer.isBuffer(input) ? Readable.from([input]) : input, origin);
    return reply.type('application/json').send(json(results));
  }
  const result = await ctx.store.store(input, origin);
  return reply.type('application/json').send(json(result));
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

