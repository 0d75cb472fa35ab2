/**
 * `/tools/find` and `/tools/count-resources` (the query engine's REST door), `/tools/lookup`, `/tools/bulk-delete`,
 * and small tools (UIDs, time, default encoding, accepted transfer syntaxes). `/tools/labels` is in labels.ts.
 */
import { PacsError } from '../../core/errors.js';
import { tagFromKeywordOrString } from '../../dicom/dictionary.js';
import { getCategoryLogLevel, getLogLevel, logger, setCategoryLogLevel, setLogLevel, type LogCategory, type LogLevel } from '../../core/log.js';
import { generateUid } from '../../dicom/uids.js';
import type { FindConstraint, FindOrder, FindQuery } from '../../query/engine.js';
import { LEVEL_IDENTIFIER, LEVEL_NAMES, LEVEL_PATHS, LEVELS, parseLevel } from '../../store/levels.js';
import type { LabelsFilter } from '../../store/lookup.js';
import { isoNow } from '../../store/store.js';
import type { RouteContext } from '../http-server.js';
import { json, readBody, readJsonObject } from '../request.js';
import { metadataNumber, RESPONSE_CONTENT, serializeResources, type ResponseContent, type TagsFormat } from '../serialize.js';
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

/** An optional integer field: absent, or an integer (400 otherwise); negative is ParameterOutOfRange, as Orthanc. */
function optionalInt(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new PacsError('BadRequest', `Field "${key}" must be an integer`);
  if (v < 0) throw new PacsError('ParameterOutOfRange', `Field "${key}" must be a positive integer`, { httpStatus: 400 });
  return v;
}

function optionalBool(body: Record<string, unknown>, key: string, defaultValue: boolean): boolean {
  const v = body[key];
  if (v === undefined) return defaultValue;
  if (typeof v !== 'boolean') throw new PacsError('BadRequest', `Field "${key}" must be a Boolean`);
  return v;
}

function stringField(value: unknown, key: string): string {
  if (typeof value !== 'string') throw new PacsError('BadRequest', `Field "${key}" must be a string`);
  return value;
}

/** Orthanc 1.12.5's `OrderBy`: `[{"Type": "DicomTag" | "Metadata", "Key": ..., "Direction": "ASC" | "DESC"}]`. */
function parseOrderBy(value: unknown, userMetadata: Readonly<Record<string, number>>): FindOrder[] {
  if (!Array.isArray(value)) throw new PacsError('BadRequest', 'Field "OrderBy" must be an array');
  return value.map((item: unknown) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new PacsError('BadRequest', 'Field "OrderBy" must contain objects');
    }
    const o = item as Record<string, unknown>;
    const key = stringField(o.Key, 'Key');
    const type = stringField(o.Type, 'Type');
    const direction = stringField(o.Direction, 'Direction');
    if (direction !== 'ASC' && direction !== 'DESC') {
      throw new PacsError('ParameterOutOfRange', 'Field "Direction" must be "ASC" or "DESC"', { httpStatus: 400 });
    }
    const descending = direction === 'DESC';
    if (type === 'DicomTag') {
      const tag = tagFromKeywordOrString(key);
      if (tag === undefined) throw new PacsError('UnknownDicomTag', key, { httpStatus: 400 });
      return { kind: 'tag', tag, descending };
    }
    if (type === 'Metadata') {
      const metadata = metadataNumber(key, userMetadata);
      if (metadata === undefined) throw new PacsError('ParameterOutOfRange', `unknown metadata: ${key}`, { httpStatus: 400 });
      return { kind: 'metadata', type: metadata, descending };
    }
    throw new PacsError('ParameterOutOfRange', 'Field "Type" must be "DicomTag" or "Metadata"', { httpStatus: 400 });
  });
}

interface FindRequest {
  query: FindQuery;
  expand: boolean;
  content: Set<ResponseContent> | undefined;
  format: TagsFormat;
  requestedTags: ReturnType<typeof parseRequestedTags>;
}

/** The body of `/tools/find` and `/tools/count-resources`, checked as Orthanc does (400 and nothing run otherwise). */
function parseFindRequest(ctx: RouteContext['ctx'], body: Record<string, unknown>): FindRequest {
  if (typeof body.Level !== 'string') throw new PacsError('BadRequest', 'Field "Level" is missing, or should be a string');
  const query = body.Query;
  if (query === null || typeof query !== 'object' || Array.isArray(query)) {
    throw new PacsError('BadRequest', 'Field "Query" is missing, or should be a JSON object');
  }
  const caseSensitive = optionalBool(body, 'CaseSensitive', true);
  const limit = optionalInt(body, 'Limit');
  const since = optionalInt(body, 'Since');
  if (body.RequestedTags !== undefined && !Array.isArray(body.RequestedTags)) {
    throw new PacsError('BadRequest', 'Field "RequestedTags" must be an array');
  }
  if (body.Labels !== undefined && !Array.isArray(body.Labels)) throw new PacsError('BadRequest', 'Field "Labels" must be an array of strings');
  if (body.LabelsConstraint !== undefined && typeof body.LabelsConstraint !== 'string') {
    throw new PacsError('BadRequest', 'Field "LabelsConstraint" must be a string');
  }
  const level = parseLevel(body.Level);
  const constraints: FindConstraint[] = [];
  for (const [key, value] of Object.entries(query as Record<string, unknown>)) {
    if (typeof value !== 'string') throw new PacsError('BadRequest', `Tag "${key}" must be associated with a string`);
    const tag = tagFromKeywordOrString(key);
    if (tag === undefined) throw new PacsError('UnknownDicomTag', key, { httpStatus: 400 });
    constraints.push({ tag, value });
  }
  let labels: LabelsFilter | undefined;
  if (Array.isArray(body.Labels)) {
    const constraint = body.LabelsConstraint ?? 'All';
    if (constraint !== 'All' && constraint !== 'Any' && constraint !== 'None') {
      throw new PacsError('BadRequest', 'Field "LabelsConstraint" must be "All", "Any", or "None"');
    }
    labels = { labels: body.Labels.map(validateLabel), constraint };
  }
  const orderBy = body.OrderBy === undefined ? undefined : parseOrderBy(body.OrderBy, ctx.config.UserMetadata);
  let content: Set<ResponseContent> | undefined;
  if (body.ResponseContent !== undefined) {
    if (!Array.isArray(body.ResponseContent)) throw new PacsError('BadRequest', 'Field "ResponseContent" must be an array of strings');
    content = new Set(
      body.ResponseContent.map((item: unknown) => {
        if (typeof item !== 'string' || !(RESPONSE_CONTENT as readonly string[]).includes(item)) {
          throw new PacsError('ParameterOutOfRange', `unknown value in "ResponseContent": ${JSON.stringify(item)}`, { httpStatus: 400 });
        }
        return item as ResponseContent;
      }),
    );
  }
  const expand = optionalBool(body, 'Expand', false);
  const format: TagsFormat = optionalBool(body, 'Full', false) ? 'full' : optionalBool(body, 'Short', false) ? 'short' : 'human';
  const requestedTags = parseRequestedTags(body.RequestedTags as unknown[] | undefined);
  const findQuery: FindQuery = { level, constraints, caseSensitive, since, limit, labels, orderBy };
  // Orthanc 1.12.5: no paging when the query filters on tags that are not in the index (matched on the files).
  if ((since !== undefined || limit !== undefined) && ctx.engine.readsFiles(findQuery)) {
    throw new PacsError(
      'BadRequest',
      '"Since" and "Limit" cannot be used when the query filters on tags that are not main DICOM tags stored in the index',
    );
  }
  return { query: findQuery, expand, content, format, requestedTags };
}

/** Orthanc's encoding names (`DefaultEncoding`). */
const ENCODINGS = [
  'Ascii', 'Utf8', 'Latin1', 'Latin2', 'Latin3', 'Latin4', 'Latin5', 'Cyrillic', 'Windows1251', 'Arabic', 'Greek',
  'Hebrew', 'Thai', 'Japanese', 'Chinese', 'Korean', 'JapaneseKanji', 'SimplifiedChinese',
] as const;

const log = logger('dicom');

/** Orthanc's log categories (and pacsnode's own) -> pacsnode's; "plugins" is the DICOMweb server (a plugin in Orthanc). */
const LOG_CATEGORIES = new Map<string, LogCategory>([
  ['generic', 'generic'], ['http', 'http'], ['dicom', 'dicom'], ['sqlite', 'sqlite'], ['jobs', 'jobs'], ['plugins', 'dicomweb'],
  ['store', 'store'], ['query', 'query'], ['config', 'config'], ['dicomweb', 'dicomweb'],
]);

function logCategory(name: string): LogCategory {
  const category = LOG_CATEGORIES.get(name);
  if (category === undefined) throw new PacsError('UnknownResource', `unknown log category: ${name}`);
  return category;
}

const ORTHANC_LEVELS: Record<string, Exclude<LogLevel, 'silent'>> = { default: 'info', verbose: 'verbose', trace: 'debug' };

function parseOrthancLevel(body: string): Exclude<LogLevel, 'silent'> {
  const level = ORTHANC_LEVELS[body.trim().toLowerCase()];
  if (level === undefined) throw new PacsError('ParameterOutOfRange', `unknown log level "${body.trim()}": expected default, verbose or trace`);
  return level;
}

function orthancLevelName(level: string): string {
  if (level === 'debug') return 'trace';
  return level === 'verbose' ? 'verbose' : 'default';
}

/** Orthanc's boolean bodies: "1", "0", "true", "false". */
function parseBooleanBody(body: string): boolean {
  const text = body.trim().toLowerCase();
  if (text === '1' || text === 'true') return true;
  if (text === '0' || text === 'false') return false;
  throw new PacsError('BadFileFormat', `expected a boolean body ("0", "1", "true" or "false"), found "${body.trim().slice(0, 40)}"`);
}

/** A JSON body, or its text when it is not JSON (a bare UID). */
function jsonOrText(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return body.trim();
  }
}

export function registerToolsRoutes({ app, ctx }: RouteContext): void {
  app.post('/tools/find', async (request, reply) => {
    const find = parseFindRequest(ctx, await readJsonObject(request));
    const rows = await ctx.engine.find(find.query);
    // `ResponseContent` (1.12.5) decides the answer's parts; an empty list, as no `Expand`, answers the IDs.
    const content = find.content ?? (find.expand ? undefined : new Set<ResponseContent>());
    if (content !== undefined && content.size === 0) {
      return reply.type('application/json').send(json(rows.map((r) => r.publicId)));
    }
    const expanded = await serializeResources(ctx, rows, find.query.level, {
      format: find.format,
      requestedTags: find.requestedTags,
      content,
    });
    return reply.type('application/json').send(json(expanded));
  });

  app.post('/tools/count-resources', async (request, reply) => {
    const find = parseFindRequest(ctx, await readJsonObject(request));
    return reply.type('application/json').send(json({ Count: await ctx.engine.count(find.query) }));
  });

  /** The resources whose identifier (PatientID, Study/Series/SOP Instance UID) is the body, as Orthanc. */
  app.post('/tools/lookup', async (request, reply) => {
    const value = (await readBody(request)).toString('utf8');
    const answer: { ID: string; Path: string; Type: string }[] = [];
    for (const level of LEVELS) {
      const rows = ctx.index.lookup(level, [{ tag: LEVEL_IDENTIFIER[level]!, level, kind: 'equal', value, caseSensitive: true }]);
      for (const r of rows) answer.push({ ID: r.publicId, Path: `/${LEVEL_PATHS[level]}/${r.publicId}`, Type: LEVEL_NAMES[level] });
    }
    return reply.type('application/json').send(json(answer));
  });

  /** Deletes every listed resource, at any level; unknown IDs are skipped, as Orthanc (empty answer). */
  app.post('/tools/bulk-delete', async (request, reply) => {
    const body = await readJsonObject(request);
    const resources = body.Resources;
    if (!Array.isArray(resources) || resources.some((r) => typeof r !== 'string')) {
      throw new PacsError('BadFileFormat', 'List of strings expected in field: Resources');
    }
    for (const id of [...new Set(resources as string[])].sort()) {
      try {
        await ctx.store.delete(id);
      } catch (e) {
        if (!(e instanceof PacsError && e.code === 'UnknownResource')) throw e;
      }
    }
    return reply.type('text/plain').send('');
  });

  app.get('/tools/default-encoding', async (_request, reply) => reply.type('text/plain').send(ctx.store.options.defaultEncoding));
  app.put('/tools/default-encoding', async (request, reply) => {
    const name = (await readBody(request)).toString('utf8').trim();
    const encoding = ENCODINGS.find((e) => e.toLowerCase() === name.toLowerCase());
    if (encoding === undefined) throw new PacsError('ParameterOutOfRange', `unknown encoding: ${name}`, { httpStatus: 400 });
    // Files parsed from now on (ingestion, /tags, C-FIND answers read from files) use it.
    ctx.store.options.defaultEncoding = encoding;
    return reply.type('text/plain').send(encoding);
  });

  // Changed in memory, as in Orthanc: new associations see the change, the configuration file does not.
  const { dicomSettings } = ctx;
  app.get('/tools/accepted-transfer-syntaxes', async (_request, reply) =>
    reply.type('application/json').send(json(dicomSettings.acceptedTransferSyntaxes)),
  );
  app.put('/tools/accepted-transfer-syntaxes', async (request, reply) => {
    const body = jsonOrText((await readBody(request)).toString('utf8'));
    const patterns = typeof body === 'string' ? [body] : body;
    if (!Array.isArray(patterns) || !patterns.every((p): p is string => typeof p === 'string')) {
      throw new PacsError('BadFileFormat', 'expected a transfer syntax UID or a list of them (wildcards * and ? allowed)');
    }
    const accepted = dicomSettings.setAcceptedTransferSyntaxes(patterns);
    log.info(`accepted transfer syntaxes changed: ${accepted.length} now`);
    return reply.type('application/json').send(json(accepted));
  });
  app.get('/tools/unknown-sop-class-accepted', async (_request, reply) =>
    reply.type('text/plain').send(dicomSettings.unknownSopClassAccepted ? '1' : '0'),
  );
  app.put('/tools/unknown-sop-class-accepted', async (request, reply) => {
    dicomSettings.unknownSopClassAccepted = parseBooleanBody((await readBody(request)).toString('utf8'));
    return reply.type('text/plain').send('');
  });

  // Orthanc's log levels: "default" (info), "verbose", "trace" (debug); globally or per category.
  app.get('/tools/log-level', async (_request, reply) => reply.type('text/plain').send(orthancLevelName(getLogLevel())));
  app.put('/tools/log-level', async (request, reply) => {
    const level = parseOrthancLevel((await readBody(request)).toString('utf8'));
    // As Orthanc: the global level applies to every category again.
    for (const category of LOG_CATEGORIES.values()) setCategoryLogLevel(category, undefined);
    setLogLevel(level);
    return reply.type('text/plain').send(orthancLevelName(level));
  });
  app.get<{ Params: { category: string } }>('/tools/log-level-:category', async (request, reply) =>
    reply.type('text/plain').send(orthancLevelName(getCategoryLogLevel(logCategory(request.params.category)))),
  );
  app.put<{ Params: { category: string } }>('/tools/log-level-:category', async (request, reply) => {
    const category = logCategory(request.params.category);
    const level = parseOrthancLevel((await readBody(request)).toString('utf8'));
    setCategoryLogLevel(category, level);
    return reply.type('text/plain').send(orthancLevelName(level));
  });

  app.get('/tools/generate-uid', async (_request, reply) => reply.type('text/plain').send(generateUid()));
  app.get('/tools/now', async (_request, reply) => reply.type('text/plain').send(isoNow()));
  app.get('/tools/now-local', async (_request, reply) => {
    const d = new Date();
    const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
    return reply.type('text/plain').send(isoNow(local));
  });
}
