/**
 * C-FIND SCU (PS3.7 §9.1.2, PS3.4 C.4.1): queries a peer in the Patient Root or Study Root information model and
 * hands each match over as DICOM JSON (PS3.18 Annex F) as it arrives. A C-CANCEL goes out when the caller's signal
 * aborts, when the limit of answers is reached, or when the caller stops iterating.
 *
 * Also the query vocabulary shared with the C-MOVE and C-GET SCUs (`move.ts`, `get.ts`): models, levels, keys,
 * and the Identifier built from them.
 */
import { readDataset } from '../../dicom/reader.js';
import { lookupTag, tagFromKeywordOrString, vrOf } from '../../dicom/dictionary.js';
import { datasetToDicomJson, type DicomJsonDataset } from '../../dicom/json.js';
import { formatTagOrthanc, Tags, type Tag } from '../../dicom/tag.js';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../../dicom/transfer-syntax.js';
import { SopClasses } from '../../dicom/uids.js';
import type { WriteElement } from '../../dicom/writer.js';
import { openAssociation } from '../../net/connect.js';
import { Priority } from '../command.js';
import { cCancelRq, type CFindRq, type CFindRsp } from '../messages.js';
import { encodeIdentifier } from '../scp/find.js';
import { describeStatus, formatStatus, Status, statusCategory } from '../status.js';
import { ScuError, ScuSession, sessionOptions, type ScuTarget } from './session.js';

/** The Query/Retrieve information model (PS3.4 C.6.1 Patient Root, C.6.2 Study Root). */
export type QueryModel = 'patient' | 'study';

/** Query/Retrieve levels (PS3.4 C.6): IMAGE is the instance level. */
export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

export const QUERY_LEVELS: readonly QueryLevel[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];

/**
 * Matching and return keys, by keyword (`PatientName`) or tag (`0010,0020`, `00100020`, `(0010,0020)`): the value
 * is the matching value (wildcards `*` `?`, ranges `20200101-20201231`, UID lists `a\b`), or `''` for a return key.
 * A sequence key is always a return key (an empty sequence). QueryRetrieveLevel comes from `level`.
 */
export type QueryKeys = Readonly<Record<string, string>>;

export interface QueryRequest {
  model: QueryModel;
  /** Case-insensitive; `INSTANCE` is taken for `IMAGE`. */
  level: QueryLevel | Lowercase<QueryLevel> | 'INSTANCE' | 'instance';
  keys?: QueryKeys;
}

/** Thrown for what cannot become an Identifier (an unknown keyword, an unknown level): nothing was sent. */
export class QueryKeyError extends Error {
  readonly code = 'ERR_SCU_BAD_QUERY';
  constructor(message: string) {
    super(message);
    this.name = 'QueryKeyError';
  }
}

/** The final response of a C-FIND (or of a C-MOVE, a C-GET) was a failure: its status and Error Comment. */
export class DimseFailureError extends Error {
  readonly code = 'ERR_SCU_FAILURE_STATUS';
  constructor(
    readonly status: number,
    readonly errorComment: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'DimseFailureError';
  }
}

const SOP_CLASSES: Readonly<Record<string, Readonly<Record<'find' | 'move' | 'get', string>> | undefined>> = {
  patient: { find: SopClasses.PatientRootFind, move: SopClasses.PatientRootMove, get: SopClasses.PatientRootGet },
  study: { find: SopClasses.StudyRootFind, move: SopClasses.StudyRootMove, get: SopClasses.StudyRootGet },
};

/** The SOP Class of a model for a service. */
export function queryRetrieveSopClass(model: QueryModel, service: 'find' | 'move' | 'get'): string {
  const classes = SOP_CLASSES[model];
  if (!classes) throw new QueryKeyError(`unknown information model ${JSON.stringify(model)} (patient or study)`);
  return classes[service];
}

/** The transfer syntaxes proposed for the Q/R contexts themselves (the Identifiers are small). */
export const QUERY_SYNTAXES: readonly string[] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian];

/** The canonical level of what a caller wrote. */
export function parseLevel(level: string): QueryLevel {
  const upper = level.trim().toUpperCase();
  const canonical = upper === 'INSTANCE' ? 'IMAGE' : upper;
  if (!(QUERY_LEVELS as readonly string[]).includes(canonical)) {
    throw new QueryKeyError(`unknown query level ${JSON.stringify(level)} (PATIENT, STUDY, SERIES or IMAGE)`);
  }
  return canonical as QueryLevel;
}

/** The tag of a key as the caller wrote it. */
export function parseKeyTag(key: string): Tag {
  const tag = tagFromKeywordOrString(key.trim());
  if (tag === undefined) throw new QueryKeyError(`unknown attribute ${JSON.stringify(key)} (a keyword such as PatientName, or a tag gggg,eeee)`);
  return tag;
}

/** `PatientName`, or `0009,1001` for a tag without a keyword. */
export function keyName(tag: Tag): string {
  return lookupTag(tag)?.keyword ?? formatTagOrthanc(tag);
}

function isAscii(text: string): boolean {
  return /^[\x20-\x7e]*$/.test(text);
}

/**
 * The Identifier's elements (QueryRetrieveLevel, then the keys), with Specific Character Set ISO_IR 192 (UTF-8)
 * when a value is not ASCII and the keys name no character set.
 */
export function identifierElements(request: QueryRequest): WriteElement[] {
  const level = parseLevel(request.level);
  const byTag = new Map<Tag, WriteElement>();
  for (const [key, value] of Object.entries(request.keys ?? {})) {
    const tag = parseKeyTag(key);
    if (tag === Tags.QueryRetrieveLevel) {
      if (value !== '' && parseLevel(value) !== level) {
        throw new QueryKeyError(`QueryRetrieveLevel ${value} contradicts the level ${level}`);
      }
      continue;
    }
    if ((tag >>> 16) === 0x0002 || (tag >>> 16) === 0x0000) throw new QueryKeyError(`${key} is not an attribute of an Identifier`);
    const vr = vrOf(tag);
    if (vr === 'SQ') byTag.set(tag, { tag, vr, value: [] });
    else byTag.set(tag, { tag, vr, value: value === '' ? null : value });
  }
  byTag.set(Tags.QueryRetrieveLevel, { tag: Tags.QueryRetrieveLevel, vr: 'CS', value: level });
  if (!byTag.has(Tags.SpecificCharacterSet)) {
    const texts = [...byTag.values()].map((e) => e.value).filter((v): v is string => typeof v === 'string');
    if (!texts.every(isAscii)) byTag.set(Tags.SpecificCharacterSet, { tag: Tags.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 192' });
  }
  return [...byTag.values()];
}

/** The Identifier of a query, encoded in a transfer syntax. */
export function buildIdentifier(request: QueryRequest, transferSyntaxUid: string): Buffer {
  return encodeIdentifier(identifierElements(request), transferSyntaxUid);
}

export interface FindOptions {
  /** Aborting sends a C-CANCEL: the answers stop, the iteration ends normally (`cancelled` in the outcome). */
  signal?: AbortSignal;
  /** At most this many answers: a C-CANCEL goes out when the last one arrives. */
  limit?: number;
  /** C-FIND Priority (PS3.7 Table E.1-1): default Medium. */
  priority?: number;
}

/** How a C-FIND ended: the generator's return value. */
export interface FindOutcome {
  /** The final status: 0000 Success, FE00 Cancel. */
  status: number;
  /** Answers handed over. */
  answers: number;
  /** A C-CANCEL was sent (signal, limit, or the caller stopped iterating). */
  cancelled: boolean;
}

/**
 * Runs one C-FIND on an open session, yielding each match as DICOM JSON; returns the outcome. Throws
 * `QueryKeyError` (bad keys, nothing sent), `ScuError` (ERR_SCU_NOT_ACCEPTED when the peer accepted no context
 * for the model, ERR_SCU_TIMEOUT, ERR_SCU_CLOSED, ERR_SCU_PROTOCOL for an unreadable answer), and
 * `DimseFailureError` when the final status is a failure (after the answers that came before it).
 */
export async function* cFind(session: ScuSession, request: QueryRequest, options: FindOptions = {}): AsyncGenerator<DicomJsonDataset, FindOutcome, undefined> {
  const sopClass = queryRetrieveSopClass(request.model, 'find');
  const elements = identifierElements(request);
  const context = session.findContext(sopClass);
  if (!context) throw new ScuError('ERR_SCU_NOT_ACCEPTED', `the peer did not accept ${request.model === 'patient' ? 'Patient' : 'Study'} Root Query/Retrieve FIND (${sopClass})`);
  const limit = options.limit;
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) throw new RangeError(`limit ${limit} is not a count`);
  if (options.signal?.aborted || limit === 0) return { status: Status.Cancel, answers: 0, cancelled: true };

  const rq: CFindRq = { type: 'C-FIND-RQ', MessageID: session.nextMessageId(), AffectedSOPClassUID: sopClass, Priority: options.priority ?? Priority.Medium };
  const queue: DicomJsonDataset[] = [];
  let wake: (() => void) | undefined;
  let received = 0;
  let cancelled = false;
  let unreadable: Error | undefined;
  const cancel = (): void => {
    if (cancelled) return;
    cancelled = true;
    if (session.isOpen) void session.sendMessage(context.id, cCancelRq(rq)).catch(() => undefined);
  };
  const onAbort = (): void => {
    cancel();
    queue.length = 0; // the answers stop now, those received but not handed over included
    wake?.();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const final = session.request(context.id, rq, encodeIdentifier(elements, context.transferSyntax), {
    onPending: (rsp) => {
      // After a C-CANCEL, the answers already on their way are dropped.
      if (cancelled || !rsp.dataset) return;
      try {
        queue.push(datasetToDicomJson(readDataset(rsp.dataset, context.transferSyntax)));
      } catch (e) {
        unreadable = e as Error;
        cancel();
        wake?.();
        return;
      }
      received++;
      if (limit !== undefined && received >= limit) cancel();
      wake?.();
    },
  });
  let settled = false;
  const onSettled = (): void => {
    settled = true;
    wake?.();
  };
  final.then(onSettled, onSettled);
  let answers = 0;
  try {
    for (;;) {
      while (queue.length > 0 && !unreadable) {
        answers++;
        yield queue.shift()!;
      }
      if (settled || unreadable) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    const { message } = await final;
    if (unreadable) throw new ScuError('ERR_SCU_PROTOCOL', `unreadable C-FIND answer: ${unreadable.message}`, { cause: unreadable });
    const rsp = message as CFindRsp;
    const category = statusCategory(rsp.Status);
    if (category === 'failure') {
      const meaning = `${formatStatus(rsp.Status)} ${describeStatus(rsp.Status, 'C-FIND')}`;
      throw new DimseFailureError(rsp.Status, rsp.ErrorComment, `C-FIND failed: ${rsp.ErrorComment ? `${meaning}: ${rsp.ErrorComment}` : meaning}`);
    }
    return { status: rsp.Status, answers, cancelled: cancelled || category === 'cancel' };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (!settled) {
      // The caller stopped iterating (or an answer was unreadable): stop the peer, and wait for its last word.
      cancel();
      await final.catch(() => undefined);
    }
  }
}

/**
 * Opens an association proposing the model's FIND SOP Class, runs the C-FIND (see `cFind`), releases. Iterate
 * it for the answers as they arrive; the generator's return value is the `FindOutcome`. Rejects with
 * `AssociationError` when no association could be established.
 *
 * ```ts
 * for await (const study of find(target, { model: 'study', level: 'STUDY', keys: { PatientName: 'DOE*', StudyInstanceUID: '' } })) {
 *   console.log(study['0020000D']?.Value?.[0]);
 * }
 * ```
 */
export async function* find(target: ScuTarget, request: QueryRequest, options: FindOptions = {}): AsyncGenerator<DicomJsonDataset, FindOutcome, undefined> {
  const sopClass = queryRetrieveSopClass(request.model, 'find');
  identifierElements(request); // bad keys fail before connecting
  if (options.signal?.aborted) return { status: Status.Cancel, answers: 0, cancelled: true };
  const association = await openAssociation({ ...target, presentationContexts: [{ abstractSyntax: sopClass, transferSyntaxes: [...QUERY_SYNTAXES] }] });
  const session = new ScuSession(association, sessionOptions(target));
  try {
    return yield* cFind(session, request, options);
  } finally {
    await closeSession(session);
  }
}

/** `find`, collected: every answer (up to `options.limit`). */
export async function findAll(target: ScuTarget, request: QueryRequest, options: FindOptions = {}): Promise<DicomJsonDataset[]> {
  const out: DicomJsonDataset[] = [];
  for await (const answer of find(target, request, options)) out.push(answer);
  return out;
}

/** Releases a session that is idle and open, aborts it otherwise. */
export async function closeSession(session: ScuSession): Promise<void> {
  if (session.isOpen && session.pendingCount === 0) await session.release().catch(() => session.abort());
  else if (session.isOpen) session.abort();
}
