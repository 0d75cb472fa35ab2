/**
 * An instance's content below its tags, as Orthanc answers it: the meta header (`/header`), raw access to any
 * element (`/content/{path}`), the frames (`/frames`, `/frames/{n}/raw`, `/frames/{n}/raw.gz`) and the embedded
 * PDF (`/pdf`). Binary answers are views into the file's bytes, sent without copying where the bytes allow.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PacsError } from '../../core/errors.js';
import { encapsulatedPdf, metaHeaderToOrthancJson, resolveContentPath, type ContentAnswer } from '../../dicom/content-path.js';
import { countFrames, rawFrame, rawFrameMimeType } from '../../dicom/frames.js';
import type { OrthancTagsFormat } from '../../dicom/json.js';
import type { RouteContext } from '../http-server.js';
import { boolArg, json } from '../request.js';

type IdParams = { Params: { id: string } };
type FrameParams = { Params: { id: string; frame: string } };

/** `?simplify` / `?short` / `?full`, as Orthanc's GetDicomFormat (full by default). */
function tagsFormat(request: FastifyRequest): OrthancTagsFormat {
  if (boolArg(request, 'simplify')) return 'simplify';
  if (boolArg(request, 'short')) return 'short';
  return 'full';
}

/** Chunks sent one after the other: one Buffer as such, several as a stream (no concatenation). */
function sendChunks(reply: FastifyReply, chunks: Buffer[], contentType: string): FastifyReply {
  reply.type(contentType);
  if (chunks.length === 1) return reply.send(chunks[0]);
  const length = chunks.reduce((n, c) => n + c.length, 0);
  return reply.header('Content-Length', length).send(Readable.from(chunks));
}

function sendContent(reply: FastifyReply, answer: ContentAnswer): FastifyReply {
  if (answer.kind === 'list') return reply.type('application/json').send(json(answer.value));
  return sendChunks(reply, answer.chunks, 'application/octet-stream');
}

/** A frame number as Orthanc parses it (an unsigned 32-bit integer); anything else is no route (404). */
function frameNumber(request: FastifyRequest<FrameParams>): number {
  const text = request.params.frame;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n > 0xffffffff) {
    throw new PacsError('UnknownResource', `not a frame number: "${text}"`);
  }
  return n;
}

export function registerContentRoutes({ app, ctx }: RouteContext): void {
  const { store } = ctx;

  app.get<IdParams>('/instances/:id/header', async (request, reply) => {
    const format = tagsFormat(request);
    const parsed = await store.parseInstance(request.params.id, { untilPixelData: true });
    return reply.type('application/json').send(json(metaHeaderToOrthancJson(parsed.meta, format)));
  });

  const content = async (request: FastifyRequest<{ Params: { id: string; '*'?: string } }>, reply: FastifyReply) => {
    const segments = (request.params['*'] ?? '').split('/').filter((s) => s !== '');
    const parsed = await store.parseInstance(request.params.id);
    return sendContent(reply, resolveContentPath(parsed.dataset, segments));
  };
  app.get('/instances/:id/content', content);
  app.get('/instances/:id/content/*', content);

  app.get<IdParams>('/instances/:id/frames', async (request, reply) => {
    const parsed = await store.parseInstance(request.params.id, { untilPixelData: true });
    const count = countFrames(parsed.dataset, parsed.transferSyntaxUid);
    return reply.type('application/json').send(json(Array.from({ length: count }, (_, i) => i)));
  });

  app.get<FrameParams>('/instances/:id/frames/:frame/raw', async (request, reply) => {
    const frame = frameNumber(request);
    const parsed = await store.parseInstance(request.params.id);
    const chunks = rawFrame(parsed.dataset, parsed.transferSyntaxUid, frame);
    return sendChunks(reply, chunks, rawFrameMimeType(parsed.transferSyntaxUid));
  });

  app.get<FrameParams>('/instances/:id/frames/:frame/raw.gz', async (request, reply) => {
    const frame = frameNumber(request);
    const parsed = await store.parseInstance(request.params.id);
    const chunks = rawFrame(parsed.dataset, parsed.transferSyntaxUid, frame);
    const gzip = createGzip();
    // The frame is in memory: nothing can fail upstream; a client that goes away ends the pipeline.
    pipeline(Readable.from(chunks), gzip).catch(() => undefined);
    return reply.type('application/gzip').send(gzip);
  });

  app.get<IdParams>('/instances/:id/pdf', async (request, reply) => {
    const parsed = await store.parseInstance(request.params.id);
    const pdf = encapsulatedPdf(parsed.dataset);
    if (!pdf) {
      throw new PacsError(
        'InexistentTag',
        'not an Encapsulated PDF instance (SOPClassUID, MIMETypeOfEncapsulatedDocument "application/pdf" and EncapsulatedDocument are needed)',
      );
    }
    return reply.type('application/pdf').send(pdf);
  });
}
