/**
 * The changes log (`/changes`) and the log of exported resources (`/exports`), with Orthanc's paging: `since` (the
 * last `Seq` seen), `limit` (default 100), `last` (only the last entry). As Orthanc, unparsable `since`/`limit`
 * fall back to their defaults instead of failing.
 */
import type { FastifyRequest } from 'fastify';
import { LEVEL_NAMES, LEVEL_PATHS, Level } from '../../store/levels.js';
import { CHANGE_TYPE_NAMES, type ChangeRow, type ExportRow } from '../../store/sqlite-index.js';
import type { RouteContext } from '../http-server.js';
import { hasArg, json, stringArg } from '../request.js';

const DEFAULT_LIMIT = 100;
/** Orthanc reads `limit` as an unsigned 32-bit integer. */
const MAX_LIMIT = 0xffffffff;

/** Orthanc's GetSinceAndLimit: both parsed, or both defaults when either does not parse. */
function sinceAndLimit(request: FastifyRequest): { since: number; limit: number } {
  const sinceText = stringArg(request, 'since') ?? '0';
  const limitText = stringArg(request, 'limit') ?? String(DEFAULT_LIMIT);
  const since = /^-?\d+$/.test(sinceText.trim()) ? Number(sinceText) : NaN;
  const limit = /^\d+$/.test(limitText.trim()) ? Number(limitText) : NaN;
  if (!Number.isSafeInteger(since) || !Number.isSafeInteger(limit) || limit > MAX_LIMIT) {
    return { since: 0, limit: DEFAULT_LIMIT };
  }
  return { since, limit };
}

function changeJson(c: ChangeRow): Record<string, unknown> {
  return {
    ChangeType: CHANGE_TYPE_NAMES[c.changeType] ?? String(c.changeType),
    Date: c.date,
    ID: c.publicId,
    Path: `/${LEVEL_PATHS[c.level]}/${c.publicId}`,
    ResourceType: LEVEL_NAMES[c.level],
    Seq: c.seq,
  };
}

/** Orthanc's ExportedResource JSON: the identifiers down to the exported level. */
function exportJson(e: ExportRow): Record<string, unknown> {
  const out: Record<string, unknown> = {
    Date: e.date,
    ID: e.publicId,
    Path: `/${LEVEL_PATHS[e.level]}/${e.publicId}`,
    PatientID: e.patientId,
    RemoteModality: e.remoteModality,
    ResourceType: LEVEL_NAMES[e.level],
  };
  if (e.level >= Level.Instance) out.SOPInstanceUID = e.sopInstanceUid;
  out.Seq = e.seq;
  if (e.level >= Level.Series) out.SeriesInstanceUID = e.seriesInstanceUid;
  if (e.level >= Level.Study) out.StudyInstanceUID = e.studyInstanceUid;
  return out;
}

export function registerChangesRoutes({ app, ctx }: RouteContext): void {
  const { index } = ctx;

  app.get('/changes', async (request, reply) => {
    if (hasArg(request, 'last')) {
      const last = index.lastChange();
      const body = { Changes: last ? [changeJson(last)] : [], Done: true, Last: last ? last.seq : index.lastChangeIndex() };
      return reply.type('application/json').send(json(body));
    }
    const { since, limit } = sinceAndLimit(request);
    const page = index.changes(since, limit);
    // An empty page reports the last Seq ever given, which DELETE /changes does not reset (as Orthanc).
    const last = page.changes.length > 0 ? page.changes[page.changes.length - 1]!.seq : index.lastChangeIndex();
    return reply.type('application/json').send(json({ Changes: page.changes.map(changeJson), Done: page.done, Last: last }));
  });

  app.delete('/changes', async (_request, reply) => {
    index.clearChanges();
    return reply.type('text/plain').send('');
  });

  app.get('/exports', async (request, reply) => {
    if (hasArg(request, 'last')) {
      const last = index.lastExport();
      return reply.type('application/json').send(json({ Done: true, Exports: last ? [exportJson(last)] : [], Last: last ? last.seq : 0 }));
    }
    const { since, limit } = sinceAndLimit(request);
    const page = index.exports(since, limit);
    // Orthanc's guess for an empty page is `since` itself.
    const last = page.exports.length > 0 ? page.exports[page.exports.length - 1]!.seq : since;
    return reply.type('application/json').send(json({ Done: page.done, Exports: page.exports.map(exportJson), Last: last }));
  });

  app.delete('/exports', async (_request, reply) => {
    index.clearExports();
    return reply.type('text/plain').send('');
  });
}
