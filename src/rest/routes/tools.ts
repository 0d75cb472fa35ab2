/** `/tools/find` (the query engine's REST door), plus small tools. */
import { PacsError } from '../../core/errors.js';
import { tagFromKeywordOrString } from '../../dicom/dictionary.js';
import { generateUid } from '../../dicom/uids.js';
import type { FindConstraint } from '../../query/engine.js';
import { parseLevel } from '../../store/levels.js';
import type { LabelsFilter } from '../../store/lookup.js';
import { isoNow } from '../../store/store.js';
import type { RouteContext } from '../http-server.js';
import { json, readJsonObject } from '../request.js';
import { serializeResources, type TagsFormat } from '../serialize.js';
import { parseRequestedTags } from './resources.js';

const LABEL_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Orthanc's label rule: letters, digits, `_` and `-`. */
export function validateLabel(label: unknown): string {
  if (typeof label !== 'string' || !LABEL_RE.test(label)) {
    throw new PacsError('ParameterOutOfRange', `invalid label: ${JSON.stringify(label)} (letters, digits, _ and - only)`, {
      httpStatus: 400,
    });
  }
  return label;
}

function optionalInt(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new PacsError('BadRequest', `"${key}" must be a non-negative integer`);
  }
  return v;
}

function optionalBool(body: Record<string, unknown>, key: string, defaultValue: boolean): boolean {
  const v = body[key];
  if (v === undefined) return defaultValue;
  if (typeof v !== 'boolean') throw new PacsError('BadRequest', `"${key}" must be a Boolean`);
  return v;
}

export function registerToolsRoutes({ app, ctx }: RouteContext): void {
  app.post('/tools/find', async (request, reply) => {
    const body = await readJsonObject(request);
    if (typeof body.Level !== 'string') throw new PacsError('BadRequest', 'Field "Level" is missing, or should be a string');
    const level = parseLevel(body.Level);
    const query = body.Query ?? {};
    if (query === null || typeof query !== 'object' || Array.isArray(query)) {
      throw new PacsError('BadRequest', 'Field "Query" must be a JSON object');
    }
    const constraints: FindConstraint[] = [];
    for (const [key, value] of Object.entries(query as Record<string, unknown>)) {
      const tag = tagFromKeywordOrString(key);
      if (tag === undefined) throw new PacsError('UnknownDicomTag', key, { httpStatus: 400 });
      if (typeof value !== 'string') throw new PacsError('BadRequest', `the value of "${key}" in "Query" must be a string`);
      constraints.push({ tag, value });
    }
    let labels: LabelsFilter | undefined;
    if (body.Labels !== undefined) {
      if (!Array.isArray(body.Labels)) throw new PacsError('BadRequest', 'Field "Labels" must be an array of strings');
      const constraint = body.LabelsConstraint ?? 'All';
      if (constraint !== 'All' && constraint !== 'Any' && constraint !== 'None') {
        throw new PacsError('BadRequest', 'Field "LabelsConstraint" must be "All", "Any" or "None"');
      }
      labels = { labels: body.Labels.map(validateLabel), constraint };
    }
    const rows = await ctx.engine.find({
      level,
      constraints,
      caseSensitive: optionalBool(body, 'CaseSensitive', true),
      since: optionalInt(body, 'Since'),
      limit: optionalInt(body, 'Limit'),
      labels,
    });
    if (!optionalBool(body, 'Expand', false)) {
      return reply.type('application/json').send(json(rows.map((r) => r.publicId)));
    }
    const format: TagsFormat = optionalBool(body, 'Full', false) ? 'full' : optionalBool(body, 'Short', false) ? 'short' : 'human';
    const requested = body.RequestedTags;
    if (requested !== undefined && !Array.isArray(requested)) {
      throw new PacsError('BadRequest', 'Field "RequestedTags" must be an array of strings');
    }
    const expanded = await serializeResources(ctx, rows, level, {
      format,
      requestedTags: parseRequestedTags(requested as unknown[] | undefined),
    });
    return reply.type('application/json').send(json(expanded));
  });

  app.get('/tools/generate-uid', async (_request, reply) => reply.type('text/plain').send(generateUid()));
  app.get('/tools/now', async (_request, reply) => reply.type('text/plain').send(isoNow()));
  app.get('/tools/now-local', async (_request, reply) => {
    const d = new Date();
    const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
    return reply.type('text/plain').send(isoNow(local));
  });
}
