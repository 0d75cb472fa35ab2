/**
 * Metadata of patients, studies, series and instances (Orthanc's `/{level}/{id}/metadata` routes), with Orthanc's
 * revisions: every answer carries `ETag: "<revision>-<md5 of the value>"`; `If-Match` (PUT, DELETE) must name the
 * current one (409 otherwise); `CheckRevisions: true` makes it mandatory to change an existing value;
 * `If-None-Match` on GET answers 304 when unchanged. Core metadata (numbers below 1024) is read-only (403).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PacsError } from '../../core/errors.js';
import { isUserNumber, md5Hex, ResourceAttachments, ResourceNames, type RevisionCheck } from '../../store/attachments.js';
import { LEVEL_PATHS, LEVELS } from '../../store/levels.js';
import type { RouteContext } from '../http-server.js';
import { boolArg, hasArg, json, readBody } from '../request.js';

/** Orthanc's ETag of a metadata value or attachment: the revision and the MD5 of the content, quoted. */
export function etag(revision: number, md5: string): string {
  return `"${revision}-${md5}"`;
}

/**
 * Orthanc's `GetRevisionHeader`: `"<revision>-<md5>"` (quotes optional) from `header`, undefined when absent, a
 * 400 when malformed. `header` is spelled as Orthanc spells it in its error message.
 */
export function revisionHeader(request: FastifyRequest, header: 'if-match' | 'If-None-Match'): RevisionCheck | undefined {
  const raw = request.headers[header.toLowerCase()];
  if (raw === undefined) return undefined;
  let value = (Array.isArray(raw) ? raw.join(', ') : raw).trim();
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  const dash = value.indexOf('-');
  if (dash >= 0) {
    const revision = value.slice(0, dash);
    if (/^\+?\d+$/.test(revision) && Number.isSafeInteger(Number(revision))) {
      return { revision: Number(revision), md5: value.slice(dash + 1) };
    }
  }
  throw new PacsError(
    'ParameterOutOfRange',
    `The "${header}" HTTP header should contain the ETag (revision followed by MD5 hash), but found: ${value}`,
  );
}

/**
 * The revision a PUT must match: the `If-Match` header; without it and with `CheckRevisions`, a revision no item
 * has (so an existing item cannot be overwritten blindly, while a new one can be created), as Orthanc.
 */
export function putRevision(request: FastifyRequest, checkRevisions: boolean): RevisionCheck | undefined {
  const given = revisionHeader(request, 'if-match');
  if (given) return given;
  return checkRevisions ? { revision: -1, md5: '' } : undefined;
}

/** The revision a DELETE must match; without `If-Match` and with `CheckRevisions`, Orthanc's 409. */
export function deleteRevision(request: FastifyRequest, checkRevisions: boolean): RevisionCheck | undefined {
  const given = revisionHeader(request, 'if-match');
  if (!given && checkRevisions) {
    throw new PacsError('Revision', 'HTTP header "If-Match" is missing, as "CheckRevisions" is "true"');
  }
  return given;
}

/** True (after sending 304) when `If-None-Match` names the current revision and MD5. */
export function notModified(request: FastifyRequest, reply: FastifyReply, revision: number, md5: string): boolean {
  const given = revisionHeader(request, 'If-None-Match');
  if (given && given.revision === revision && given.md5 === md5) {
    void reply.code(304).send();
    return true;
  }
  return false;
}

type Params = { Params: { id: string; name: string } };

export function registerMetadataRoutes({ app, ctx }: RouteContext): void {
  const names = new ResourceNames(ctx.config.UserMetadata, ctx.config.UserContentType);
  const extras = new ResourceAttachments(ctx.store);
  const checkRevisions = ctx.config.CheckRevisions;

  for (const level of LEVELS) {
    const path = LEVEL_PATHS[level];

    app.get<{ Params: { id: string } }>(`/${path}/:id/metadata`, async (request, reply) => {
      const row = extras.resource(request.params.id, level);
      const entries = ctx.index.metadata(row.id);
      const numeric = hasArg(request, 'numeric');
      const key = (type: number) => (numeric ? String(type) : names.metadata.name(type));
      let body: unknown;
      if (boolArg(request, 'expand')) {
        body = Object.fromEntries(entries.map((e) => [key(e.type), e.value]));
      } else {
        body = entries.map((e) => (numeric ? e.type : names.metadata.name(e.type)));
      }
      return reply.type('application/json').send(json(body));
    });

    app.get<Params>(`/${path}/:id/metadata/:name`, async (request, reply) => {
      const type = names.metadata.parse(request.params.name, 'metadata');
      const row = extras.resource(request.params.id, level);
      const entry = ctx.index.getMetadata(row.id, type);
      if (!entry) {
        throw new PacsError('UnknownResource', `metadata ${names.metadata.name(type)} is not set on ${path}/${row.publicId}`);
      }
      const md5 = md5Hex(entry.value);
      reply.header('ETag', etag(entry.revision, md5));
      if (notModified(request, reply, entry.revision, md5)) return reply;
      return reply.type('text/plain').send(entry.value);
    });

    app.put<Params>(`/${path}/:id/metadata/:name`, async (request, reply) => {
      const type = names.metadata.parse(request.params.name, 'metadata');
      const value = (await readBody(request)).toString('utf8');
      if (!isUserNumber(type)) {
        throw new PacsError('ForbiddenAccess', `metadata ${names.metadata.name(type)} is set by the server (only numbers >= 1024 can be changed)`);
      }
      const check = putRevision(request, checkRevisions);
      const revision = extras.setMetadata(request.params.id, level, type, value, check);
      return reply.header('ETag', etag(revision, md5Hex(value))).type('text/plain').send('');
    });

    app.delete<Params>(`/${path}/:id/metadata/:name`, async (request, reply) => {
      const type = names.metadata.parse(request.params.name, 'metadata');
      if (!isUserNumber(type)) {
        throw new PacsError('ForbiddenAccess', `metadata ${names.metadata.name(type)} is set by the server (only numbers >= 1024 can be deleted)`);
      }
      const check = deleteRevision(request, checkRevisions);
      if (!extras.deleteMetadata(request.params.id, level, type, check)) {
        throw new PacsError('UnknownResource', `metadata ${names.metadata.name(type)} is not set on ${path}/${request.params.id}`);
      }
      return reply.type('text/plain').send('');
    });
  }
}
