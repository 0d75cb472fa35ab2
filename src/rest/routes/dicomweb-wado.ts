/**
 * WADO-RS retrieval routes under the DICOMweb root (PS3.18 §10.4): studies, series and instances as
 * `multipart/related; type="application/dicom"` (streamed), frames, and bulk data with Range requests. Thin
 * adapters over src/dicomweb/wado.ts and bulk.ts.
 */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PacsError } from '../../core/errors.js';
import { logger } from '../../core/log.js';
import { bulkAnswerKind, bulkSource, parseRange, type ByteRange } from '../../dicomweb/bulk.js';
import { closeDelimiter, multipartContentType, newBoundary, partHead } from '../../dicomweb/multipart.js';
import type { DicomWebOptions } from '../../dicomweb/options.js';
import { checkUid, instanceUrl, parseBulkTagPath, publicBase } from '../../dicomweb/uris.js';
import { dicomParts, findInstances, framesOf, parseFrameList, planAll, planFrames, wantedInstanceSyntaxes, type WadoTarget } from '../../dicomweb/wado.js';
import type { RouteContext } from '../http-server.js';

const log = logger('dicomweb');

type UidParams = { study: string; series?: string; instance?: string };

function target(params: UidParams): WadoTarget {
  return {
    study: checkUid(params.study, 'Study Instance UID'),
    series: params.series === undefined ? undefined : checkUid(params.series, 'Series Instance UID'),
    instance: params.instance === undefined ? undefined : checkUid(params.instance, 'SOP Instance UID'),
  };
}

/** Sends generated chunks as the body; an error once the answer has started can only cut the connection. */
function sendStream(reply: FastifyReply, request: FastifyRequest, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): FastifyReply {
  const stream = Readable.from(chunks, { objectMode: false, highWaterMark: 1 << 20 });
  stream.on('error', (e) => log.error(`${request.method} ${request.url}: the answer stopped: ${e.message}`));
  return reply.send(stream);
}

export function registerWadoRoutes({ app, ctx }: RouteContext, options: DicomWebOptions): void {
  const { store } = ctx;
  const root = options.root;

  const retrieve = async (request: FastifyRequest<{ Params: UidParams }>, reply: FastifyReply) => {
    const wanted = wantedInstanceSyntaxes(request.headers.accept);
    const instances = findInstances(store, target(request.params));
    const plans = planAll(instances, wanted);
    const boundary = newBoundary();
    reply.header('MIME-Version', '1.0').type(multipartContentType('application/dicom', boundary));
    // HEAD (fastify answers it with this handler): the headers only, without reading the study from disk.
    if (request.method === 'HEAD') return reply.send();
    const body = dicomParts(store, instances, plans, boundary);
    body.on('error', (e) => log.error(`${request.method} ${request.url}: the answer stopped: ${e.message}`));
    return reply.send(body);
  };
  app.get(`${root}studies/:study`, retrieve);
  app.get(`${root}studies/:study/series/:series`, retrieve);
  app.get(`${root}studies/:study/series/:series/instances/:instance`, retrieve);

  type FrameParams = { Params: Required<UidParams> & { frames: string } };
  app.get<FrameParams>(`${root}studies/:study/series/:series/instances/:instance/frames/:frames`, async (request, reply) => {
    const t = target(request.params);
    const frames = parseFrameList(request.params.frames);
    const [instance] = findInstances(store, t);
    const plan = planFrames(request.headers.accept, instance!.transferSyntaxUid);
    const parsed = await store.parseInstance(instance!.row.publicId);
    const bodies = framesOf(parsed, frames);
    const base = instanceUrl(publicBase(request, options), t.study, t.series!, t.instance!);
    const boundary = newBoundary();
    const chunks: Buffer[] = [];
    bodies.forEach((body, i) => {
      const length = body.reduce((n, c) => n + c.length, 0);
      const headers = {
        'Content-Type': `${plan.type}; transfer-syntax=${plan.transferSyntaxUid}`,
        'Content-Length': length,
        'Content-Location': `${base}/frames/${frames[i]!}`,
      };
      chunks.push(partHead(boundary, headers, i === 0), ...body);
    });
    chunks.push(closeDelimiter(boundary));
    reply.header('MIME-Version', '1.0').type(multipartContentType(plan.type, boundary));
    reply.header('Content-Length', chunks.reduce((n, c) => n + c.length, 0));
    return reply.send(Readable.from(chunks));
  });

  type BulkParams = { Params: Required<UidParams> & { '*': string } };
  app.get<BulkParams>(`${root}studies/:study/series/:series/instances/:instance/bulk/*`, async (request, reply) => {
    const t = target(request.params);
    const path = parseBulkTagPath(request.params['*']);
    if (!path) throw new PacsError('BadRequest', `not a bulk data tag path: ${JSON.stringify(request.params['*'].slice(0, 100))}`);
    const kind = bulkAnswerKind(request.headers.accept);
    const [instance] = findInstances(store, t);
    const value = await bulkSource(store, instance!, path);
    let range: ByteRange | undefined;
    try {
      range = parseRange(request.headers.range, value.length);
    } catch (e) {
      reply.header('Content-Range', `bytes */${value.length}`);
      throw e;
    }
    const length = range ? range.end - range.start : value.length;
    const contentRange = range ? `bytes ${range.start}-${range.end - 1}/${value.length}` : undefined;
    reply.header('Accept-Ranges', 'bytes');
    if (range) reply.code(206);
    if (kind === 'single') {
      reply.type('application/octet-stream').header('Content-Length', length);
      if (contentRange) reply.header('Content-Range', contentRange);
      if (request.method === 'HEAD') return reply.send();
      return sendStream(reply, request, value.read(range));
    }
    const boundary = newBoundary();
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Content-Length': length,
      'Content-Location': `${instanceUrl(publicBase(request, options), t.study, t.series!, t.instance!)}/bulk/${request.params['*']}`,
    };
    if (contentRange) headers['Content-Range'] = contentRange;
    const head = partHead(boundary, headers, true);
    const close = closeDelimiter(boundary);
    reply.header('MIME-Version', '1.0').type(multipartContentType('application/octet-stream', boundary));
    reply.header('Content-Length', head.length + length + close.length);
    async function* body(): AsyncGenerator<Buffer> {
      yield head;
      for await (const chunk of value.read(range)) yield chunk;
      yield close;
    }
    return sendStream(reply, request, body());
  });
}
