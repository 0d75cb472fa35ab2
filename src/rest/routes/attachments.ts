/**
 * Attachments of patients, studies, series and instances (Orthanc's `/{level}/{id}/attachments` routes): listing,
 * the operations on one attachment (content, sizes, MD5s, info, verification, compression), and user attachments
 * (content types 1024-65535, named by `UserContentType`) set and deleted with Orthanc's revisions. The DICOM file
 * (`dicom`, 1) can be read and recompressed, never replaced or deleted (403). A PUT body streams to the storage
 * area and is committed whole or not at all.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PacsError } from '../../core/errors.js';
import { DICOM_AS_JSON_ATTACHMENT, isUserNumber, ResourceAttachments, ResourceNames } from '../../store/attachments.js';
import { LEVEL_PATHS, LEVELS, type Level } from '../../store/levels.js';
import type { AttachmentInfo } from '../../store/sqlite-index.js';
import { tooLarge, type RouteContext } from '../http-server.js';
import { hasArg, json } from '../request.js';
import { deleteRevision, etag, notModified, putRevision } from './metadata.js';

type Params = { Params: { id: string; name: string } };
type Request = FastifyRequest<Params>;

export function registerAttachmentRoutes({ app, ctx }: RouteContext): void {
  const names = new ResourceNames(ctx.config.UserMetadata, ctx.config.UserContentType);
  const extras = new ResourceAttachments(ctx.store);
  const checkRevisions = ctx.config.CheckRevisions;
  const maxBytes = ctx.config.MaximumHttpBodySize * 1024 * 1024;

  const contentTypeOf = (request: Request) => names.contentTypes.parse(request.params.name, 'attachment');

  /**
   * Orthanc's `GetAttachmentInfo`: the attachment (404 when the resource or the attachment is unknown), with its
   * ETag set; undefined after answering 304 to a matching `If-None-Match`.
   */
  const lookup = (request: Request, reply: FastifyReply, level: Level): AttachmentInfo | undefined => {
    const contentType = contentTypeOf(request);
    const att = extras.attachment(request.params.id, level, contentType);
    if (!att) {
      throw new PacsError(
        'UnknownResource',
        `no attachment ${names.contentTypes.name(contentType)} on ${LEVEL_PATHS[level]}/${request.params.id}`,
      );
    }
    reply.header('ETag', etag(att.revision, att.uncompressedMd5));
    return notModified(request, reply, att.revision, att.uncompressedMd5) ? undefined : att;
  };

  const text = (reply: FastifyReply, value: string) => reply.type('text/plain').send(value);

  for (const level of LEVELS) {
    const path = LEVEL_PATHS[level];
    const base = `/${path}/:id/attachments/:name`;

    app.get<{ Params: { id: string } }>(`/${path}/:id/attachments`, async (request, reply) => {
      const row = extras.resource(request.params.id, level);
      const types = ctx.index.attachments(row.id).map((a) => a.contentType);
      const body = hasArg(request, 'full')
        ? Object.fromEntries(types.map((t) => [names.contentTypes.name(t), t]))
        : types.map((t) => names.contentTypes.name(t));
      return reply.type('application/json').send(json(body));
    });

    // The operations available on one attachment, as Orthanc lists them.
    app.get<Params>(base, async (request, reply) => {
      const att = lookup(request, reply, level);
      if (!att) return reply;
      const ops = ['compress', 'compressed-data'];
      if (att.compressedMd5 !== '') ops.push('compressed-md5');
      ops.push('compressed-size', 'data', 'info', 'is-compressed');
      if (att.uncompressedMd5 !== '') ops.push('md5');
      ops.push('size', 'uncompress');
      if (att.compressedMd5 !== '' && att.uncompressedMd5 !== '') ops.push('verify-md5');
      return reply.type('application/json').send(json(ops));
    });

    app.put<Params>(base, async (request, reply) => {
      const contentType = contentTypeOf(request);
      if (!isUserNumber(contentType)) {
        throw new PacsError('ForbiddenAccess', `attachment ${names.contentTypes.name(contentType)} is managed by the server (only numbers >= 1024 can be set)`);
      }
      const check = putRevision(request, checkRevisions);
      extras.resource(request.params.id, level); // 404 before reading the body
      const { revision, md5 } = await extras.putAttachment(
        request.params.id,
        level,
        contentType,
        request.raw as AsyncIterable<Buffer>,
        { maxBytes, tooLarge: () => tooLarge(maxBytes) },
        check,
      );
      return reply.header('ETag', etag(revision, md5)).type('application/json').send('{}');
    });

    app.delete<Params>(base, async (request, reply) => {
      const contentType = contentTypeOf(request);
      // Orthanc lets the DICOM-as-JSON cache of old releases go, never the DICOM file nor other core attachments.
      if (!isUserNumber(contentType) && contentType !== DICOM_AS_JSON_ATTACHMENT) {
        throw new PacsError('ForbiddenAccess', `attachment ${names.contentTypes.name(contentType)} is managed by the server (only numbers >= 1024 can be deleted)`);
      }
      const check = deleteRevision(request, checkRevisions);
      if (!(await extras.deleteAttachment(request.params.id, level, contentType, check))) {
        throw new PacsError('UnknownResource', `no attachment ${names.contentTypes.name(contentType)} on ${path}/${request.params.id}`);
      }
      return text(reply, '');
    });

    app.get<Params>(`${base}/data`, async (request, reply) => {
      const att = lookup(request, reply, level);
      if (!att) return reply;
      return reply
        .type(names.mimeType(att.contentType))
        .header('Content-Length', att.uncompressedSize)
        .send(extras.contentStream(att));
    });

    app.get<Params>(`${base}/compressed-data`, async (request, reply) => {
      const att = lookup(request, reply, level);
      if (!att) return reply;
      return reply
        .type('application/octet-stream')
        .header('Content-Length', att.compressedSize)
        .send(extras.storedStream(att));
    });

    const plain = (suffix: string, value: (att: AttachmentInfo) => string | undefined) => {
      app.get<Params>(`${base}/${suffix}`, async (request, reply) => {
        const att = lookup(request, reply, level);
        if (!att) return reply;
        const v = value(att);
        if (v === undefined) throw new PacsError('UnknownResource', `attachment ${names.contentTypes.name(att.contentType)} has no ${suffix}`);
        return text(reply, v);
      });
    };
    plain('size', (att) => String(att.uncompressedSize));
    plain('compressed-size', (att) => String(att.compressedSize));
    plain('md5', (att) => att.uncompressedMd5 || undefined);
    plain('compressed-md5', (att) => att.compressedMd5 || undefined);
    plain('is-compressed', (att) => (att.compression === 2 ? '1' : '0'));

    app.get<Params>(`${base}/info`, async (request, reply) => {
      const att = lookup(request, reply, level);
      if (!att) return reply;
      return reply.type('application/json').send(
        json({
          Uuid: att.uuid,
          ContentType: att.contentType,
          UncompressedSize: att.uncompressedSize,
          CompressedSize: att.compressedSize,
          UncompressedMD5: att.uncompressedMd5,
          CompressedMD5: att.compressedMd5,
        }),
      );
    });

    app.post<Params>(`${base}/verify-md5`, async (request, reply) => {
      const contentType = contentTypeOf(request);
      const att = extras.attachment(request.params.id, level, contentType);
      // Orthanc answers 400 (no answer to a POST) when the attachment is missing, has no MD5, or is corrupted.
      if (!att || att.compressedMd5 === '' || att.uncompressedMd5 === '') {
        throw new PacsError('BadRequest', `no attachment ${names.contentTypes.name(contentType)} with MD5s on ${path}/${request.params.id}`);
      }
      if (!(await extras.verifyMd5(att))) {
        throw new PacsError('CorruptedFile', `attachment ${names.contentTypes.name(contentType)} of ${path}/${request.params.id} has a bad MD5`, {
          httpStatus: 400,
        });
      }
      return reply.type('application/json').send('{}');
    });

    for (const [suffix, compress] of [['compress', true], ['uncompress', false]] as const) {
      app.post<Params>(`${base}/${suffix}`, async (request, reply) => {
        const contentType = contentTypeOf(request);
        await extras.changeCompression(request.params.id, level, contentType, compress);
        return reply.type('application/json').send('{}');
      });
    }
  }
}
