/**
 * Orthanc's `/modalities` routes (OrthancRestModalities.cpp): the declared modalities (list, define, remove, their
 * configuration), and what pacsnode does to them as an SCU: C-ECHO (`/echo`, and `/tools/dicom-echo` towards a node
 * given in the body), C-STORE of stored resources as a `DicomModalityStore` job (`/store`) or of the body itself
 * (`/store-straight`), C-FIND creating a query (`/query`, then `/queries/{id}`), C-MOVE and C-GET of given
 * resources as `DicomMoveScu` / `DicomGetScu` jobs (`/move`, `/get`).
 *
 * Bad bodies are 400 and change nothing; an unknown modality is Orthanc's 404; a node that cannot be reached or
 * refuses is a 500 "Error in the network protocol" naming it, within the DIMSE timeout.
 */
import type { FastifyRequest } from 'fastify';
import { ModalityStoreJob } from '../../app/modality-store-job.js';
import { networking, type Networking } from '../../app/networking.js';
import { levelName, levelOfDicom, modelOf, runFind, DICOM_LEVELS } from '../../app/queries.js';
import { createRetrieveJob, type RetrieveItem } from '../../app/retrieve-job.js';
import type { AppContext } from '../../app/context.js';
import { PacsError } from '../../core/errors.js';
import { readPart10 } from '../../dicom/reader.js';
import { formatTagOrthanc, Tags, type Tag } from '../../dicom/tag.js';
import { echo } from '../../dimse/scu/echo.js';
import { parseKeyTag, QueryKeyError } from '../../dimse/scu/find.js';
import { describeStatus, formatStatus, Status } from '../../dimse/scu/session.js';
import { storeInstances } from '../../dimse/scu/store.js';
import { modalityToJson, parseModality, type RemoteModality } from '../../modalities/registry.js';
import { Level } from '../../store/levels.js';
import type { RouteContext } from '../http-server.js';
import { hasArg, json, readBody } from '../request.js';
import { jobRequest, submitJob } from './jobs.js';

type IdParams = { Params: { id: string } };
type Body = Record<string, unknown>;

/** What can be done with a modality (`GET /modalities/{id}`): Orthanc's list, less the routes pacsnode does not have (find-*, storage-commitment). */
const OPERATIONS = ['configuration', 'echo', 'get', 'move', 'query', 'store', 'store-straight'];

const SMALL_BODY = 1 << 20;

/** A JSON body, or undefined when the body is empty; 400 when it is not JSON. */
export async function readOptionalJson(request: FastifyRequest): Promise<unknown> {
  const text = (await readBody(request, SMALL_BODY)).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new PacsError('BadRequest', 'The body must contain JSON');
  }
}

/** A JSON object body (`{}` when empty); 400 otherwise. */
export async function readObjectBody(request: FastifyRequest): Promise<Body> {
  const value = (await readOptionalJson(request)) ?? {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new PacsError('BadRequest', 'The body must contain a JSON object');
  return value as Body;
}

/** The longest timeout Node's timers can hold (2^31 - 1 ms), in whole seconds. */
const MAX_TIMEOUT_S = 2147483;

/** `Timeout` (seconds, integer >= 0, 0 = none) of a body, when present. */
export function readTimeout(body: Body): number | undefined {
  const t = body.Timeout;
  if (t === undefined) return undefined;
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0 || t > MAX_TIMEOUT_S) {
    throw new PacsError('BadFileFormat', `Timeout must be an integer from 0 to ${MAX_TIMEOUT_S} (seconds)`);
  }
  return t;
}

/** An AE title given in a request: 1..16 characters of the default repertoire, no backslash, not only spaces. */
export function checkAet(aet: string, field: string): string {
  if (aet.trim() === '' || aet.length > 16 || !/^[\x20-\x5b\x5d-\x7e]+$/.test(aet)) {
    throw new PacsError('BadRequest', `${field} ${JSON.stringify(aet)} is not an AE title (1 to 16 characters of the default repertoire, no backslash)`);
  }
  return aet;
}

/** An AE title field of a body (`LocalAet`, `TargetAet`), when present and not empty. */
export function readAet(body: Body, field: string): string | undefined {
  const aet = readString(body, field);
  return aet === undefined || aet === '' ? aet : checkAet(aet, field);
}

/** A string field of a body, when present. */
export function readString(body: Body, field: string): string | undefined {
  const v = body[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new PacsError('BadFileFormat', `String value expected in field: ${field}`);
  return v;
}

function readBool(body: Body, field: string): boolean | undefined {
  const v = body[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new PacsError('BadFileFormat', `Boolean value expected in field: ${field}`);
  return v;
}

/** A query level (`Patient`, `Study`, `Series`, `Instance`, any case; `Image` too), 400 otherwise. */
export function readLevel(body: Body): Level {
  const v = body.Level;
  if (typeof v !== 'string') throw new PacsError('BadRequest', 'The JSON body must contain field Level (a string)');
  const level = levelOfDicom(v);
  if (level === undefined) throw new PacsError('ParameterOutOfRange', `unknown resource level: ${v}`, { httpStatus: 400 });
  return level;
}

/** Keys by keyword or tag -> string values (a `Query`, a resource of `/move`); 400 for anything else. */
export function readKeys(value: unknown, what: string): Map<Tag, string> {
  const expected = `Associative array of DICOM tags to strings expected in field: ${what}`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new PacsError('BadFileFormat', expected);
  const keys = new Map<Tag, string>();
  for (const [name, v] of Object.entries(value as Body)) {
    let tag: Tag;
    try {
      tag = parseKeyTag(name);
    } catch (e) {
      if (e instanceof QueryKeyError) throw new PacsError('BadFileFormat', `${expected}: ${e.message}`);
      throw e;
    }
    if (typeof v !== 'string') throw new PacsError('BadFileFormat', `${expected}: the value of ${name} is not a string`);
    keys.set(tag, v);
  }
  return keys;
}

/** What a saved job keeps of a modality. */
export function remoteNode(m: RemoteModality): { aet: string; host: string; port: number; useDicomTls: boolean } {
  return { aet: m.aet, host: m.host, port: m.port, useDicomTls: m.useDicomTls };
}

/** Where a network call failed, as one error (500 Error in the network protocol). */
export function networkError(where: string, e: unknown): PacsError {
  if (e instanceof PacsError) return e;
  return new PacsError('NetworkProtocol', `${where}: ${(e as Error).message}`);
}

/** C-ECHO (and, when asked, a study-level C-FIND) towards a node; throws when it does not answer Success. */
async function runEcho(ctx: AppContext, net: Networking, modality: RemoteModality, body: Body): Promise<void> {
  const timeoutMs = net.timeoutMs(modality, readTimeout(body));
  const target = net.target(modality, net.localAet(modality, readAet(body, 'LocalAet')), timeoutMs);
  const checkFind = readBool(body, 'CheckFind') ?? ctx.config.DicomEchoChecksFind;
  const where = `C-ECHO SCU to AET "${modality.aet}" (${modality.host}:${modality.port})`;
  let status: number;
  try {
    status = await echo(target);
  } catch (e) {
    throw networkError(where, e);
  }
  if (status !== Status.Success) throw new PacsError('NetworkProtocol', `${where} has failed with DIMSE status 0x${formatStatus(status)} (${describeStatus(status)})`);
  if (checkFind) await runFind(target, { level: Level.Study, query: new Map(), normalize: true, manufacturer: modality.manufacturer });
}

/** Orthanc's public IDs: a SHA-1 written as five dash-separated groups of 8 hexadecimal digits. */
const ORTHANC_ID = /^[0-9a-f]{8}(-[0-9a-f]{8}){4}$/;

/**
 * The resources of a `/store` body, Orthanc's way (GetInstancesToExport): a bare ID, or JSON: an ID, an array of
 * IDs, or an object whose `Resources` is an array of IDs; the object is also returned for its options.
 */
function readStoreBody(text: string): { ids: string[]; options: Body } {
  const bare = text.trim();
  if (ORTHANC_ID.test(bare)) return { ids: [bare], options: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PacsError('BadFileFormat', 'Must provide a JSON value');
  }
  let options: Body = {};
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    options = value as Body;
    value = options.Resources;
    if (!Array.isArray(value)) throw new PacsError('BadFileFormat', 'JSON field "Resources" must contain an array');
  }
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) throw new PacsError('BadFileFormat', 'The body must give an ID, or an array of IDs');
  return {
    ids: list.map((id) => {
      const trimmed = typeof id === 'string' ? id.trim() : '';
      if (!ORTHANC_ID.test(trimmed)) throw new PacsError('BadFileFormat', `This string is not a valid Orthanc identifier: ${typeof id === 'string' ? id : JSON.stringify(id)}`);
      return trimmed;
    }),
    options,
  };
}

/** `MoveOriginatorAet` / `MoveOriginatorID`: the C-STOREs then say they are sub-operations of that C-MOVE. */
function readMoveOriginator(body: Body): { aet: string; messageId: number } | undefined {
  const aet = readString(body, 'MoveOriginatorAet');
  const id = body.MoveOriginatorID;
  if (id !== undefined && (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffff)) {
    throw new PacsError('BadFileFormat', 'MoveOriginatorID must be an integer 0..65535');
  }
  if (aet === undefined || aet === '') return undefined;
  return { aet, messageId: (id as number | undefined) ?? 0 };
}

/** The retrieve items of `/move` and `/get`: one per object of `Resources`, at `Level`. */
function readRetrieveItems(body: Body): RetrieveItem[] {
  const level = readLevel(body);
  const resources = body.Resources;
  if (!Array.isArray(resources) || resources.length === 0) throw new PacsError('BadRequest', 'The JSON body must contain field Resources (a non-empty array of objects)');
  return resources.map((r, i) => {
    const keys: Record<string, string> = {};
    for (const [tag, v] of readKeys(r, `Resources[${i}]`)) if (tag !== Tags.QueryRetrieveLevel) keys[formatTagOrthanc(tag)] = v;
    return { model: modelOf(level), level: DICOM_LEVELS[level]!, keys };
  });
}

export function registerModalityRoutes({ app, ctx }: RouteContext): void {
  const net = networking(ctx);
  const { modalities } = ctx;

  app.get('/modalities', async (request, reply) => {
    const body = hasArg(request, 'expand') ? modalities.toJson() : modalities.list().map((m) => m.name);
    return reply.type('application/json').send(json(body));
  });

  app.get<IdParams>('/modalities/:id', async (request, reply) => {
    modalities.require(request.params.id);
    return reply.type('application/json').send(json(OPERATIONS));
  });

  app.get<IdParams>('/modalities/:id/configuration', async (request, reply) => {
    return reply.type('application/json').send(json(modalityToJson(modalities.require(request.params.id), true)));
  });

  app.put<IdParams>('/modalities/:id', async (request, reply) => {
    const raw = await readOptionalJson(request);
    if (raw === undefined) throw new PacsError('BadFileFormat', 'The body must contain the modality (["AET", "host", port] or an object)');
    modalities.set(request.params.id, raw);
    return reply.type('text/plain').send('');
  });

  app.delete<IdParams>('/modalities/:id', async (request, reply) => {
    modalities.delete(request.params.id);
    return reply.type('text/plain').send('');
  });

  app.post<IdParams>('/modalities/:id/echo', async (request, reply) => {
    const modality = modalities.require(request.params.id);
    await runEcho(ctx, net, modality, await readObjectBody(request));
    return reply.type('application/json').send('{}');
  });

  app.post('/tools/dicom-echo', async (request, reply) => {
    const body = await readObjectBody(request);
    const definition = Object.fromEntries(Object.entries(body).filter(([k]) => k !== 'CheckFind' && k !== 'Timeout'));
    await runEcho(ctx, net, parseModality('dicom-echo', definition), body);
    return reply.type('application/json').send('{}');
  });

  app.post<IdParams>('/modalities/:id/store', async (request, reply) => {
    const modality = modalities.require(request.params.id);
    const { ids, options } = readStoreBody((await readBody(request, 16 << 20)).toString('utf8'));
    const job = jobRequest(options, true);
    const localAet = net.localAet(modality, readAet(options, 'LocalAet'));
    const timeoutMs = net.timeoutMs(modality, readTimeout(options));
    const permissive = readBool(options, 'Permissive') ?? false;
    const moveOriginator = readMoveOriginator(options);
    const instances = net.instancesOf(ids);
    const storeJob = new ModalityStoreJob(
      {
        instances,
        position: 0,
        failed: [],
        remote: { aet: modality.aet, host: modality.host, port: modality.port, useTls: modality.useDicomTls },
        localAet,
        description: 'REST API',
        permissive,
        moveOriginator,
        parentResources: [...new Set(ids)],
        timeoutMs,
      },
      net.storeDeps,
    );
    return reply.type('application/json').send(json(await submitJob(ctx, storeJob, job)));
  });

  app.post<IdParams>('/modalities/:id/store-straight', async (request, reply) => {
    const modality = modalities.require(request.params.id);
    // The whole file is needed to send it (its SOP class and instance UIDs first); MaximumHttpBodySize 0 = no limit.
    const maxBody = ctx.config.MaximumHttpBodySize * 1024 * 1024;
    const bytes = await readBody(request, maxBody > 0 ? maxBody : Number.MAX_SAFE_INTEGER);
    let sopClassUid: string;
    let sopInstanceUid: string;
    try {
      const parsed = readPart10(bytes, { untilPixelData: true });
      sopClassUid = parsed.dataset.text(Tags.SOPClassUID)?.trim() ?? '';
      sopInstanceUid = parsed.dataset.text(Tags.SOPInstanceUID)?.trim() ?? '';
    } catch (e) {
      throw new PacsError('BadFileFormat', `the body is not a DICOM file: ${(e as Error).message}`);
    }
    if (sopClassUid === '' || sopInstanceUid === '') throw new PacsError('BadFileFormat', 'the body is not a DICOM instance (no SOP Class or Instance UID)');
    const timeoutMs = net.timeoutMs(modality);
    const target = net.target(modality, net.localAet(modality), timeoutMs);
    const where = `C-STORE SCU to AET "${modality.aet}" (${modality.host}:${modality.port})`;
    let summary;
    try {
      summary = await storeInstances(target, [{ bytes, name: 'body' }]);
    } catch (e) {
      throw networkError(where, e);
    }
    const result = summary.results[0];
    if (!result || result.outcome === 'failed' || result.outcome === 'skipped') {
      throw new PacsError('NetworkProtocol', `${where}: ${result?.message ?? 'not sent'}`);
    }
    return reply.type('application/json').send(json({ SOPClassUID: sopClassUid, SOPInstanceUID: sopInstanceUid }));
  });

  app.post<IdParams>('/modalities/:id/query', async (request, reply) => {
    const modality = modalities.require(request.params.id);
    const body = await readObjectBody(request);
    const level = readLevel(body);
    const query = body.Query === undefined ? new Map<Tag, string>() : readKeys(body.Query, 'Query');
    const normalize = readBool(body, 'Normalize') ?? true;
    const timeout = readTimeout(body);
    const localAet = net.localAet(modality, readAet(body, 'LocalAet'));
    const target = net.target(modality, localAet, net.timeoutMs(modality, timeout));
    const answers = await runFind(target, { level, query, normalize, manufacturer: modality.manufacturer }, { defaultEncoding: ctx.config.DefaultEncoding });
    const record = net.queries.add({ modalityName: modality.name, modality, level, query, normalize, localAet, timeout, answers });
    request.log.debug(`query ${record.id} at level ${levelName(level)}: ${answers.length} answer(s)`);
    return reply.type('application/json').send(json({ ID: record.id, Path: `/queries/${record.id}` }));
  });

  for (const method of ['move', 'get'] as const) {
    app.post<IdParams>(`/modalities/:id/${method}`, async (request, reply) => {
      const modality = modalities.require(request.params.id);
      const body = await readObjectBody(request);
      const items = readRetrieveItems(body);
      const job = jobRequest(body, true);
      const localAet = net.localAet(modality, readAet(body, 'LocalAet'));
      const targetAet = method === 'move' ? readAet(body, 'TargetAet') || ctx.config.DicomAet : '';
      const retrieve = createRetrieveJob(
        {
          method: method === 'move' ? 'C-MOVE' : 'C-GET',
          remote: remoteNode(modality),
          localAet,
          targetAet,
          timeoutMs: net.timeoutMs(modality, readTimeout(body)),
          description: 'REST API',
          items,
        },
        net.retrieveDeps,
      );
      return reply.type('application/json').send(json(await submitJob(ctx, retrieve, job)));
    });
  }
}
