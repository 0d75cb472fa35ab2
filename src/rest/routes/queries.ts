/**
 * Orthanc's `/queries` routes (OrthancRestModalities.cpp, Query/Retrieve): the queries `POST /modalities/{id}/query`
 * made, their answers (`?expand`, `?simplify`, `?short`), a child query on an answer (`query-studies`,
 * `query-series`, `query-instances`), and retrieving all answers or one (`retrieve`): a C-MOVE to a target AE title
 * (ours by default) or a C-GET into this server, as a `DicomMoveScu` / `DicomGetScu` job, synchronous by default.
 */
import type { FastifyRequest } from 'fastify';
import { networking } from '../../app/networking.js';
import { answerLevel, answerValue, levelName, runFind, RETRIEVE_KEYS, DICOM_LEVELS, modelOf, type QueryRecord } from '../../app/queries.js';
import { createRetrieveJob, type RetrieveItem, type RetrieveMethodUsed } from '../../app/retrieve-job.js';
import { PacsError } from '../../core/errors.js';
import type { DataSet } from '../../dicom/dataset.js';
import { lookupTag } from '../../dicom/dictionary.js';
import { datasetToOrthancJson, type OrthancTagsFormat } from '../../dicom/json.js';
import { formatTagOrthanc, Tags } from '../../dicom/tag.js';
import { parseRetrieveMethod } from '../../modalities/registry.js';
import { Level } from '../../store/levels.js';
import type { RouteContext } from '../http-server.js';
import { boolArg, hasArg, json, readBody } from '../request.js';
import { jobRequest, submitJob } from './jobs.js';
import { checkAet, readAet, readKeys, readObjectBody, readTimeout, remoteNode } from './modalities.js';

type IdParams = { Params: { id: string } };
type AnswerParams = { Params: { id: string; index: string } };

/** `?simplify` / `?short` / `?full` (full by default), as Orthanc's GetDicomFormat. */
function tagsFormat(request: FastifyRequest): OrthancTagsFormat {
  if (boolArg(request, 'simplify')) return 'simplify';
  if (boolArg(request, 'short')) return 'short';
  return 'full';
}

function answerAt(record: QueryRecord, index: string): DataSet {
  const i = /^\d+$/.test(index) ? Number(index) : -1;
  const answer = record.answers[i];
  if (!answer) throw new PacsError('ParameterOutOfRange', `query ${record.id} has ${record.answers.length} answer(s): no answer ${index}`);
  return answer;
}

/** The query as Orthanc shows it (a DicomMap: full `{tag: {Name, Type, Value}}`, short or simplified). */
function queryJson(record: QueryRecord, format: OrthancTagsFormat): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const tags = [...record.query.keys()].sort((a, b) => a - b);
  for (const tag of tags) {
    const value = record.query.get(tag)!;
    if (format === 'simplify') out[lookupTag(tag)?.keyword ?? formatTagOrthanc(tag)] = value;
    else if (format === 'short') out[formatTagOrthanc(tag)] = value;
    else out[formatTagOrthanc(tag)] = { Name: lookupTag(tag)?.keyword ?? 'Unknown Tag & Data', Type: 'String', Value: value };
  }
  return out;
}

/** The identifying keys of an answer a retrieve job shows (Orthanc's DicomMoveScuJob::AddFindAnswer). */
const SHOWN_KEYS = [Tags.AccessionNumber, Tags.PatientID, Tags.StudyInstanceUID, Tags.SeriesInstanceUID, Tags.SOPInstanceUID];

/** What a retrieve of an answer asks for: the unique keys down to its level (the others are only shown). */
function retrieveItem(record: QueryRecord, answer: DataSet): RetrieveItem {
  const level = answerLevel(record, answer);
  const keys: Record<string, string> = {};
  for (const tag of SHOWN_KEYS) {
    const value = answerValue(answer, tag);
    if (value !== undefined) keys[formatTagOrthanc(tag)] = value;
  }
  const send: Record<string, string> = {};
  for (const tag of RETRIEVE_KEYS[level]!) send[formatTagOrthanc(tag)] = answerValue(answer, tag) ?? '';
  return { model: modelOf(level), level: DICOM_LEVELS[level]!, keys, send };
}

/** Orthanc's retrieve body: a target AE title as plain text (ours when empty), or `{TargetAet, RetrieveMethod, ...}`. */
function readRetrieveBody(text: string): { body: Record<string, unknown>; targetAet?: string } {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      throw new PacsError('BadRequest', 'The body must be a target AE title, or a JSON object');
    }
    const body = value as Record<string, unknown>;
    if (body.TargetAet !== undefined && typeof body.TargetAet !== 'string') throw new PacsError('BadParameterType', 'TargetAet must be a string');
    return { body, targetAet: readAet(body, 'TargetAet') || undefined };
  }
  return { body: {}, targetAet: trimmed === '' ? undefined : checkAet(trimmed, 'TargetAet') };
}

export function registerQueryRoutes({ app, ctx }: RouteContext): void {
  const net = networking(ctx);
  const { queries } = net;

  app.get('/queries', async (_request, reply) => reply.type('application/json').send(json(queries.list())));

  app.get<IdParams>('/queries/:id', async (request, reply) => {
    queries.get(request.params.id);
    return reply.type('application/json').send(json(['answers', 'level', 'modality', 'query', 'retrieve']));
  });

  app.delete<IdParams>('/queries/:id', async (request, reply) => {
    if (!queries.delete(request.params.id)) throw new PacsError('UnknownResource', `no query with ID ${request.params.id}`);
    return reply.type('text/plain').send('');
  });

  app.get<IdParams>('/queries/:id/level', async (request, reply) => reply.type('text/plain').send(levelName(queries.get(request.params.id).level)));

  app.get<IdParams>('/queries/:id/modality', async (request, reply) => reply.type('text/plain').send(queries.get(request.params.id).modalityName));

  app.get<IdParams>('/queries/:id/query', async (request, reply) => {
    const record = queries.get(request.params.id);
    return reply.type('application/json').send(json(queryJson(record, tagsFormat(request))));
  });

  app.get<IdParams>('/queries/:id/answers', async (request, reply) => {
    const record = queries.get(request.params.id);
    const format = tagsFormat(request);
    const body = hasArg(request, 'expand') ? record.answers.map((a) => datasetToOrthancJson(a, format)) : record.answers.map((_a, i) => String(i));
    return reply.type('application/json').send(json(body));
  });

  app.get<AnswerParams>('/queries/:id/answers/:index', async (request, reply) => {
    const record = queries.get(request.params.id);
    const level = answerLevel(record, answerAt(record, request.params.index));
    const children = ['query-studies', 'query-series', 'query-instances'].slice(level);
    return reply.type('application/json').send(json(['content', 'retrieve', ...children]));
  });

  app.get<AnswerParams>('/queries/:id/answers/:index/content', async (request, reply) => {
    const record = queries.get(request.params.id);
    return reply.type('application/json').send(json(datasetToOrthancJson(answerAt(record, request.params.index), tagsFormat(request))));
  });

  const children = [
    ['query-studies', Level.Study],
    ['query-series', Level.Series],
    ['query-instances', Level.Instance],
  ] as const;
  for (const [path, level] of children) {
    app.post<AnswerParams>(`/queries/:id/answers/:index/${path}`, async (request, reply) => {
      const parent = queries.get(request.params.id);
      const answer = answerAt(parent, request.params.index);
      const parentLevel = answerLevel(parent, answer);
      if (parentLevel >= level) {
        throw new PacsError('BadRequest', `an answer at level ${levelName(parentLevel)} has no ${levelName(level).toLowerCase()} below it`);
      }
      const body = await readObjectBody(request);
      const query = body.Query === undefined ? new Map() : readKeys(body.Query, 'Query');
      // The answer's unique keys (Orthanc's QueryAnswerChildren, mimicking its C-MOVE keys).
      for (const tag of RETRIEVE_KEYS[parentLevel]!) {
        const value = answerValue(answer, tag);
        if (value !== undefined) query.set(tag, value);
      }
      const normalize = typeof body.Normalize === 'boolean' ? body.Normalize : parent.normalize;
      const timeout = readTimeout(body) ?? parent.timeout;
      const { modality, localAet } = parent;
      const target = net.target(modality, localAet, net.timeoutMs(modality, timeout));
      const answers = await runFind(target, { level, query, normalize, manufacturer: modality.manufacturer }, { defaultEncoding: ctx.config.DefaultEncoding });
      const record = queries.add({ modalityName: parent.modalityName, modality, level, query, normalize, localAet, timeout, answers });
      return reply.type('application/json').send(json({ ID: record.id, Path: `/queries/${record.id}` }));
    });
  }

  const retrieve = async (request: FastifyRequest, record: QueryRecord, answers: readonly DataSet[]): Promise<Record<string, unknown>> => {
    const { body, targetAet } = readRetrieveBody((await readBody(request, 1 << 20)).toString('utf8'));
    const job = jobRequest(body, true);
    const { modality } = record;
    let method: RetrieveMethodUsed = ctx.config.DicomDefaultRetrieveMethod;
    if (modality.retrieveMethod !== 'SystemDefault') method = modality.retrieveMethod;
    if (body.RetrieveMethod !== undefined) {
      const asked = parseRetrieveMethod(body.RetrieveMethod, 'RetrieveMethod');
      if (asked !== 'SystemDefault') method = asked;
    }
    const target = targetAet ?? ctx.config.DicomAet;
    if (target.length > 16 || target.includes('\\') || target.trim() === '') {
      throw new PacsError('BadRequest', `${JSON.stringify(target)} is not an AE title (1 to 16 characters, no backslash)`);
    }
    const items = answers.map((a) => retrieveItem(record, a));
    const retrieveJob = createRetrieveJob(
      {
        method,
        remote: remoteNode(modality),
        localAet: record.localAet,
        targetAet: method === 'C-MOVE' ? target : '',
        timeoutMs: net.timeoutMs(modality, readTimeout(body) ?? record.timeout),
        description: 'REST API',
        items,
      },
      net.retrieveDeps,
    );
    return submitJob(ctx, retrieveJob, job);
  };

  app.post<IdParams>('/queries/:id/retrieve', async (request, reply) => {
    const record = queries.get(request.params.id);
    return reply.type('application/json').send(json(await retrieve(request, record, record.answers)));
  });

  app.post<AnswerParams>('/queries/:id/answers/:index/retrieve', async (request, reply) => {
    const record = queries.get(request.params.id);
    const answer = answerAt(record, request.params.index);
    return reply.type('application/json').send(json(await retrieve(request, record, [answer])));
  });

}
