/**
 * STOW-RS routes under the DICOMweb root (PS3.18 §10.5): `POST studies` and `POST studies/{study}`, the body
 * read as a stream into the shared ingestion path (src/dicomweb/stow.ts).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DicomWebOptions } from '../../dicomweb/options.js';
import { stowBoundary, stowResponseFormat, storeInstances } from '../../dicomweb/stow.js';
import { checkUid, publicBase } from '../../dicomweb/uris.js';
import { tooLarge, type RouteContext } from '../http-server.js';

/** The body as it arrives, failing with 413 once more than `maxBytes` came. */
async function* bounded(body: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<Buffer> {
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge(maxBytes);
    yield chunk;
  }
}

export function registerStowRoutes({ app, ctx }: RouteContext, options: DicomWebOptions): void {
  const stow = async (request: FastifyRequest<{ Params: { study?: string } }>, reply: FastifyReply) => {
    // Everything that can be refused is checked before the body is read.
    const expectedStudy = request.params.study === undefined ? undefined : checkUid(request.params.study, 'Study Instance UID');
    const format = stowResponseFormat(request.headers.accept);
    const boundary = stowBoundary(request.headers['content-type']);
    const maxBytes = ctx.config.MaximumHttpBodySize * 1024 * 1024;
    const answer = await storeInstances(ctx.store, {
      // MaximumHttpBodySize also bounds a chunked body (a declared length is checked before the route): 413.
      body: maxBytes > 0 ? bounded(request.raw, maxBytes) : request.raw,
      boundary,
      expectedStudy,
      base: publicBase(request, options),
      // As Orthanc's DICOMweb plugin, which stores through the core's REST API from a plugin.
      origin: { kind: 'plugin', remoteIp: request.socket.remoteAddress },
      format,
    });
    if (answer.warning !== undefined) reply.header('Warning', `299 pacsnode: ${answer.warning.replace(/[\r\n"]/g, ' ')}`);
    return reply.code(answer.status).type(answer.contentType).send(answer.body);
  };
  app.post(`${options.root}studies`, stow);
  app.post(`${options.root}studies/:study`, stow);
}
