/**
 * Orthanc's peers routes (OrthancRestModalities.cpp, "Orthanc Peers"): `GET /peers` (`?expand`),
 * `GET|PUT|DELETE /peers/{id}`, `GET /peers/{id}/configuration`, `POST /peers/{id}/store` (an `OrthancPeerStore`
 * job), `POST /peers/{id}/store-straight` (the body sent as it is to the peer's `/instances`) and
 * `GET /peers/{id}/system` (the peer's `/system`, to test the connection).
 */
import { Transform } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../../app/context.js';
import { newPeerStoreState, PeerStoreJob, TRANSCODE_TARGETS } from '../../app/peer-store-job.js';
import { PacsError } from '../../core/errors.js';
import { isKnownTransferSyntax } from '../../dicom/transfer-syntax.js';
import { Tags } from '../../dicom/tag.js';
import { answerExcerpt, displayUrl, expectSuccess } from '../../peers/client.js';
import { formatPublic, type OrthancPeer } from '../../peers/registry.js';
import { isPublicId } from '../../store/ids.js';
import { Level } from '../../store/levels.js';
import { isoNow } from '../../store/store.js';
import { tooLarge, type RouteContext } from '../http-server.js';
import { hasArg, json, readBody } from '../request.js';
import { jobRequest, submitJob } from './jobs.js';

/** What `GET /peers/{id}` lists (Orthanc's children of /peers/{id}, sorted). */
const PEER_OPERATIONS = ['configuration', 'store', 'store-straight', 'system'];

/** Passes a body on, failing with 413 beyond `maxBytes`. */
function sizeLimit(maxBytes: number): Transform {
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      done(size > maxBytes ? tooLarge(maxBytes) : null, chunk);
    },
  });
}

interface StoreRequest {
  resources: string[];
  options: Record<string, unknown> | undefined;
}

/**
 * Orthanc's GetInstancesToExport: the body is one Orthanc ID (plain text, for Orthanc <= 0.5.1 clients), a JSON
 * string, a JSON array of IDs, or an object with `Resources` (an array) and the job's options.
 */
function parseStoreBody(body: Buffer): StoreRequest {
  const text = body.toString('utf8');
  if (isPublicId(text.trim())) return { resources: [text.trim()], options: undefined };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PacsError('BadFileFormat', 'Must provide a JSON value');
  }
  let resources: unknown;
  let options: Record<string, unknown> | undefined;
  if (typeof value === 'string') resources = [value];
  else if (Array.isArray(value)) resources = value;
  else if (value !== null && typeof value === 'object') {
    options = value as Record<string, unknown>;
    if (!('Resources' in options)) throw new PacsError('BadFileFormat', 'Missing field in JSON: "Resources"');
    resources = options.Resources;
    if (!Array.isArray(resources)) throw new PacsError('BadFileFormat', 'JSON field "Resources" must contain an array');
  } else {
    throw new PacsError('BadFileFormat', 'Must provide a JSON object, or a JSON array of strings');
  }
  const ids = (resources as unknown[]).map((r) => {
    if (typeof r !== 'string') throw new PacsError('BadFileFormat', 'Resources to be exported must be specified as a JSON array of strings');
    const id = r.trim();
    if (!isPublicId(id)) throw new PacsError('BadFileFormat', `This string is not a valid Orthanc identifier: ${id}`);
    return id;
  });
  return { resources: ids, options };
}

function booleanOption(options: Record<string, unknown> | undefined, key: string): boolean {
  const v = options?.[key];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new PacsError('BadFileFormat', `Boolean value expected in field: ${key}`);
  return v;
}

/** Orthanc's LogExportedResource: one row of `/exports` per resource sent, with its identifiers up to its level. */
function logExport(ctx: AppContext, resourceId: number, peerName: string, date: string): void {
  const chain = ctx.index.ancestry(resourceId);
  const last = chain[chain.length - 1];
  if (!last) return;
  const tags = ctx.index.mainTagsOf(chain.map((r) => r.id));
  const value = (level: Level, tag: number) => (chain[level] ? (tags.get(chain[level].id)?.get(tag) ?? '') : '');
  ctx.index.logExport({
    level: last.level,
    publicId: last.publicId,
    remoteModality: peerName,
    patientId: value(Level.Patient, Tags.PatientID),
    studyInstanceUid: value(Level.Study, Tags.StudyInstanceUID),
    seriesInstanceUid: value(Level.Series, Tags.SeriesInstanceUID),
    sopInstanceUid: value(Level.Instance, Tags.SOPInstanceUID),
    date,
  });
}

/** The instances to send for each resource (any level), in order. */
function instancesOf(ctx: AppContext, publicIds: readonly string[]): { instances: string[]; rows: { id: number }[] } {
  const instances: string[] = [];
  const rows: { id: number }[] = [];
  for (const publicId of publicIds) {
    const row = ctx.index.findByPublicId(publicId);
    if (!row) throw new PacsError('UnknownResource', `unknown resource: ${publicId}`);
    rows.push(row);
    for (const instance of ctx.index.descendants(row.id, row.level, Level.Instance)) instances.push(instance.publicId);
  }
  return { instances, rows };
}

export function registerPeerRoutes({ app, ctx }: RouteContext): void {
  const { peers } = ctx;
  const peerOf = (request: FastifyRequest<{ Params: { id: string } }>): OrthancPeer => peers.get(request.params.id);

  app.get('/peers', async (request, reply) => {
    const names = peers.names();
    // As Orthanc (HasArgument): the presence of `expand` asks for the details, whatever its value.
    if (hasArg(request, 'expand')) {
      const out: Record<string, unknown> = {};
      for (const name of names) out[name] = formatPublic(peers.get(name));
      return reply.type('application/json').send(json(out));
    }
    return reply.type('application/json').send(json(names));
  });

  app.get<{ Params: { id: string } }>('/peers/:id', async (request, reply) => {
    peerOf(request);
    return reply.type('application/json').send(json(PEER_OPERATIONS));
  });

  app.get<{ Params: { id: string } }>('/peers/:id/configuration', async (request, reply) => {
    return reply.type('application/json').send(json(formatPublic(peerOf(request))));
  });

  app.put<{ Params: { id: string } }>('/peers/:id', async (request, reply) => {
    const text = (await readBody(request, 1 << 20)).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new PacsError('BadFileFormat', 'The body must contain the definition of a peer: a JSON array or object');
    }
    peers.put(request.params.id, value);
    return reply.type('text/plain').send('');
  });

  app.delete<{ Params: { id: string } }>('/peers/:id', async (request, reply) => {
    peers.delete(request.params.id);
    return reply.type('text/plain').send('');
  });

  app.get<{ Params: { id: string } }>('/peers/:id/system', async (request, reply) => {
    const peer = peerOf(request);
    const client = ctx.peerHttp.client(peer);
    try {
      const res = await client.request({ method: 'GET', path: 'system' });
      if (res.status < 200 || res.status >= 300) {
        // As Orthanc: the peer's HTTP status is answered.
        const excerpt = answerExcerpt(res);
        throw new PacsError(
          'NetworkProtocol',
          `peer "${peer.name}" answered HTTP ${res.status} to GET ${displayUrl(client.url('system'))}${excerpt ? `: ${excerpt}` : ''}`,
          { httpStatus: res.status >= 400 && res.status < 600 ? res.status : 500 },
        );
      }
      return reply.type('application/json').send(res.body);
    } finally {
      client.close();
    }
  });

  app.post<{ Params: { id: string } }>('/peers/:id/store', async (request, reply) => {
    const peer = peerOf(request);
    const { resources, options } = parseStoreBody(await readBody(request));
    const job = jobRequest(options, true);
    const compress = booleanOption(options, 'Compress');
    const permissive = booleanOption(options, 'Permissive');
    let transcode: string | undefined;
    if (options?.Transcode !== undefined) {
      const t = options.Transcode;
      if (typeof t !== 'string') throw new PacsError('BadFileFormat', 'String value expected in field: Transcode');
      if (!isKnownTransferSyntax(t)) throw new PacsError('BadFileFormat', `Unknown transfer syntax UID: ${t}`);
      if (!TRANSCODE_TARGETS.includes(t)) {
        // pacsnode has no codecs: a target it can never produce is refused rather than silently ignored.
        throw new PacsError(
          'BadFileFormat',
          `pacsnode cannot transcode to ${t}: Transcode accepts the uncompressed syntaxes only (${TRANSCODE_TARGETS.join(', ')}); leave it out to send the files as they are stored`,
        );
      }
      transcode = t;
    }
    const { instances, rows } = instancesOf(ctx, resources);
    if (ctx.config.LogExportedResources) {
      const date = isoNow();
      ctx.index.transaction(() => {
        for (const row of rows) logExport(ctx, row.id, peer.name, date);
      });
    }
    const state = newPeerStoreState(peer, instances, {
      compress,
      transcode,
      permissive,
      description: 'REST API',
      parentResources: resources,
    });
    const answer = await submitJob(ctx, new PeerStoreJob(state, { store: ctx.store, http: ctx.peerHttp }), job);
    return reply.type('application/json').send(json(answer));
  });

  app.post<{ Params: { id: string } }>('/peers/:id/store-straight', async (request, reply) => {
    const peer = peerOf(request);
    const declared = request.headers['content-length'];
    if (declared === '0') throw new PacsError('BadFileFormat', 'empty request body: expected a DICOM file');
    // Sent on as it arrives (MaximumHttpBodySize is checked on Content-Length by the server, here on a chunked body).
    const contentLength = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
    const maxBytes = ctx.config.MaximumHttpBodySize * 1024 * 1024;
    const body = contentLength === undefined && maxBytes > 0 ? request.raw.pipe(sizeLimit(maxBytes)) : request.raw;
    const client = ctx.peerHttp.client(peer);
    try {
      const headers: Record<string, string> = { 'Content-Type': 'application/dicom' };
      let res;
      try {
        res = await client.request({ method: 'POST', path: 'instances', body, contentLength, headers });
      } catch (e) {
        // The rest of the upload is read and dropped, so that the error can be answered on this connection.
        request.raw.resume();
        throw e;
      }
      try {
        expectSuccess(res, peer.name, `POST ${displayUrl(client.url('instances'))}`);
      } catch (e) {
        throw new PacsError('NetworkProtocol', `Cannot send DICOM to remote peer: ${peer.name} (${(e as PacsError).details})`);
      }
      return reply.type('application/json').send(res.body);
    } finally {
      client.close();
    }
  });
}
