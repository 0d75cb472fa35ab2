/**
 * C-STORE SCU (PS3.7 §9.1.1, PS3.4 Annex B): sends many Part 10 files or buffers over one association.
 *
 * - Each file's header is read first (up to the pixel data) for its SOP Class, SOP Instance and transfer syntax.
 * - For each SOP Class, one presentation context per transfer syntax found (alone in its context, so the peer's
 *   choice is the file's syntax or nothing), plus one fallback context with the uncompressed little endian
 *   syntaxes not already proposed, when some file could be converted to them. Beyond 128 contexts, the files are
 *   sent over successive associations.
 * - A file goes unchanged (the bytes after its meta header, never re-encoded) on a context that accepted its own
 *   syntax; otherwise an uncompressed file is converted (`transcode.ts`: implicit <-> explicit VR little endian,
 *   explicit big endian or deflated -> little endian) for a fallback context; a compressed file whose syntax was
 *   not accepted fails: compressed transcoding is not available yet.
 * - One file's failure (unreadable, not accepted, refused by the peer) does not stop the others. Operations are
 *   pipelined as far as the peer's Asynchronous Operations Window allows (one at a time without one), and the
 *   next file is read while the previous one is under way.
 */
import { open, readFile } from 'node:fs/promises';
import { isPacsError } from '../../core/errors.js';
import { NeedMoreBytes, part10DatasetOffset, readPart10, type ParsedDicom } from '../../dicom/reader.js';
import { Tags } from '../../dicom/tag.js';
import {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
  transferSyntax,
} from '../../dicom/transfer-syntax.js';
import { openAssociation, type ProposedContext } from '../../net/connect.js';
import type { AsyncOpsWindow } from '../../net/pdu/types.js';
import type { AcceptedContext } from '../../net/negotiation.js';
import { Priority } from '../command.js';
import type { CStoreRq, CStoreRsp } from '../messages.js';
import { describeStatus, formatStatus, Status, statusCategory } from '../status.js';
import { ScuSession, sessionOptions, type ScuTarget } from './session.js';
import { canTranscode, CONVERSION_TARGETS, isConvertibleSource, transcodeDataset } from './transcode.js';

/** A file to send: a path, or bytes already in memory (a Part 10 file, or a bare dataset). */
export type StoreInput =
  | string
  | {
      path: string;
      /** Found by walking a folder: skip it (outcome 'skipped') rather than fail it when it is not a DICOM instance. */
      optional?: boolean;
    }
  | { bytes: Buffer; name?: string }
  /**
   * An instance whose identity is already known (e.g. from the index, for a C-MOVE): not probed; its whole Part 10
   * file is loaded only when it is about to be sent.
   */
  | { load: () => Promise<Buffer>; name: string; sopClassUid: string; sopInstanceUid: string; transferSyntaxUid: string };

export type StoreOutcome =
  /** Status Success. */
  | 'sent'
  /** A warning status (Bxxx, 0001, 0107, 0116): stored, with a remark. */
  | 'warning'
  /** Status 0111H Duplicate SOP Instance: the peer has it already. */
  | 'already-stored'
  /** Not sent, or refused by the peer. */
  | 'failed'
  /** An optional input that is not a DICOM instance (a README in a folder, a DICOMDIR). */
  | 'skipped';

export interface StoreFileResult {
  /** The path, or the name given with the bytes. */
  source: string;
  outcome: StoreOutcome;
  /** The C-STORE-RSP status, when one came. */
  status?: number;
  sopClassUid?: string;
  sopInstanceUid?: string;
  /** The file's transfer syntax. */
  transferSyntaxUid?: string;
  /** The syntax the dataset went in (differs from `transferSyntaxUid` when converted). */
  sentTransferSyntaxUid?: string;
  converted: boolean;
  /** Dataset bytes sent. */
  bytes: number;
  /** Why it failed or was skipped, or the peer's status meaning and Error Comment. */
  message?: string;
}

export interface StoreSummary {
  results: StoreFileResult[];
  sent: number;
  warnings: number;
  alreadyStored: number;
  failed: number;
  skipped: number;
  /** Dataset bytes sent. */
  bytes: number;
  /** Associations used (opened, or kept open from an earlier store by `options.sessions`). */
  associations: number;
}

export interface StoreOptions {
  /** Called as each file is done (files that cannot be sent are reported first, as the headers are read). */
  onResult?: (result: StoreFileResult, done: number, total: number) => void;
  /**
   * Operations outstanding at once. Default 1. Above 1, an Asynchronous Operations Window is proposed and the
   * peer's answer caps it (no answer: 1, PS3.7 D.3.3.3).
   */
  window?: number;
  /** C-STORE Priority (PS3.7 Table E.1-1): default Medium. */
  priority?: number;
  /** Set when the C-STOREs are the sub-operations of a C-MOVE (PS3.7 §9.1.1.1.7-8). */
  moveOriginator?: { aet: string; messageId: number };
  /** Stops before the next file (a C-CANCEL of the C-MOVE): the files not sent are reported 'skipped', "cancelled". */
  signal?: AbortSignal;
  /** Where the associations come from: a new one for each batch, released at its end (default), or a pool. */
  sessions?: StoreSessions;
}

/**
 * Where the C-STORE SCU gets its associations and what it does with them afterwards: the seam of a pool that keeps
 * associations open between stores (Orthanc's DicomAssociationCloseDelay, `app/scu-pool.ts`).
 */
export interface StoreSessions {
  /**
   * An established session to the target on which `contexts` were proposed (and `asyncOpsWindow`, when given):
   * a new association, or one kept open that proposed all of them. Rejects as `openAssociation` does.
   */
  open(target: ScuTarget, contexts: ProposedContext[], asyncOpsWindow?: AsyncOpsWindow): Promise<ScuSession>;
  /** The store is done with the session (nothing outstanding): released, or kept for the next store. */
  done(session: ScuSession): Promise<void>;
}

/** A new association for each batch, released once the batch is done: what the CLI and one-off stores use. */
export const newAssociations: StoreSessions = {
  async open(target, contexts, asyncOpsWindow) {
    const association = await openAssociation({ ...target, presentationContexts: contexts, ...(asyncOpsWindow ? { asyncOpsWindow } : {}) });
    return new ScuSession(association, sessionOptions(target));
  },
  async done(session) {
    if (session.isOpen) await session.release().catch(() => session.abort());
  },
};

/** PS3.4 Annex F: a DICOMDIR is not an instance one sends. */
const MEDIA_STORAGE_DIRECTORY = '1.2.840.10008.1.3.10';
/** Presentation context IDs are odd numbers 1..255 (PS3.8 §9.3.2.2). */
const MAX_CONTEXTS = 128;
/** Header bytes read to find the UIDs and the syntax; longer headers are read whole. */
const PROBE_BYTES = 64 * 1024;
const PROBE_CONCURRENCY = 16;
/** Files read ahead of the one being sent, while they hold less than this many bytes (at least one is). */
const READ_AHEAD_FILES = 8;
const READ_AHEAD_BYTES = 64 * 1024 * 1024;

/** What the probe learned of a file. */
interface Probed {
  index: number;
  input: StoreInput;
  source: string;
  sopClassUid: string;
  sopInstanceUid: string;
  /** The syntax the dataset is really in (a meta header may name the wrong VR encoding). */
  transferSyntaxUid: string;
  datasetOffset: number;
  /** Where the pixel data value ends, when its header was read and its length is defined. */
  pixelDataEnd?: number;
  /** Bytes of the file (or buffer). */
  size: number;
}

function sourceName(input: StoreInput): string {
  if (typeof input === 'string') return input;
  if ('path' in input) return input.path;
  if ('load' in input) return input.name;
  return input.name ?? 'buffer';
}

function readWhole(input: StoreInput): Promise<Buffer> {
  if (typeof input === 'string') return readFile(input);
  if ('path' in input) return readFile(input.path);
  if ('load' in input) return input.load();
  return Promise.resolve(input.bytes);
}

/** Up to `PROBE_BYTES` of the file, and whether that is all of it. */
async function readHead(input: StoreInput): Promise<{ head: Buffer; whole: boolean; size: number }> {
  if (typeof input !== 'string' && 'bytes' in input) return { head: input.bytes, whole: true, size: input.bytes.length };
  if (typeof input !== 'string' && 'load' in input) {
    const bytes = await input.load();
    return { head: bytes, whole: true, size: bytes.length };
  }
  const path = typeof input === 'string' ? input : input.path;
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    const head = Buffer.alloc(Math.min(size, PROBE_BYTES));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return { head: head.subarray(0, bytesRead), whole: bytesRead >= size, size };
  } finally {
    await handle.close();
  }
}

async function parseHead(input: StoreInput): Promise<{ parsed: ParsedDicom; size: number }> {
  const { head, whole, size } = await readHead(input);
  if (!whole) {
    try {
      return { parsed: readPart10(head, { partial: true, untilPixelData: true }), size };
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
    }
  }
  return { parsed: readPart10(whole ? head : await readWhole(input), { untilPixelData: true }), size };
}

/** The effective transfer syntax of a parsed file: what the dataset is really encoded in. */
function effectiveSyntax(parsed: ParsedDicom): string {
  if (!parsed.encodingMismatch) return parsed.transferSyntaxUid;
  return parsed.dataset.explicitVr ? ExplicitVRLittleEndian : ImplicitVRLittleEndian;
}

function failure(source: string, message: string, extra: Partial<StoreFileResult> = {}): StoreFileResult {
  return { source, outcome: 'failed', converted: false, bytes: 0, message, ...extra };
}

async function probe(input: StoreInput, index: number): Promise<Probed | StoreFileResult> {
  const source = sourceName(input);
  if (typeof input === 'object' && 'load' in input) {
    // Known already: where its dataset starts is found when it is loaded (datasetOffset -1).
    const { sopClassUid, sopInstanceUid, transferSyntaxUid } = input;
    return { index, input, source, sopClassUid, sopInstanceUid, transferSyntaxUid, datasetOffset: -1, size: 0 };
  }
  const optional = typeof input === 'object' && 'path' in input && input.optional === true;
  let parsed: ParsedDicom;
  let size: number;
  try {
    ({ parsed, size } = await parseHead(input));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).syscall !== undefined) return failure(source, `cannot read: ${(e as Error).message}`);
    if (optional) return { source, outcome: 'skipped', converted: false, bytes: 0, message: 'not a DICOM file' };
    const why = (isPacsError(e) && e.details) || (e as Error).message;
    return failure(source, why.startsWith('not a DICOM file') ? why : `not a DICOM file: ${why}`);
  }
  const sopClassUid = parsed.meta.string(Tags.MediaStorageSOPClassUID) || parsed.dataset.string(Tags.SOPClassUID);
  const sopInstanceUid = parsed.meta.string(Tags.MediaStorageSOPInstanceUID) || parsed.dataset.string(Tags.SOPInstanceUID);
  if (sopClassUid === MEDIA_STORAGE_DIRECTORY) {
    const result = { source, outcome: 'skipped' as const, converted: false, bytes: 0, message: 'a DICOMDIR is not sent' };
    return optional ? result : { ...result, outcome: 'failed' };
  }
  if (parsed.truncated) return failure(source, 'the file is truncated', { sopClassUid, sopInstanceUid });
  if (!sopClassUid || !sopInstanceUid) {
    return failure(source, `no ${sopClassUid ? 'SOP Instance UID' : 'SOP Class UID'} in the meta header or the dataset`);
  }
  return {
    index,
    input,
    source,
    sopClassUid,
    sopInstanceUid,
    transferSyntaxUid: effectiveSyntax(parsed),
    datasetOffset: parsed.datasetOffset,
    pixelDataEnd: parsed.pixelDataEnd,
    size,
  };
}

/**
 * The contexts to propose for these files (see the module comment), in batches of at most 128: each batch is one
 * association, covering whole SOP Classes.
 */
export function planContexts(files: readonly Pick<Probed, 'sopClassUid' | 'transferSyntaxUid'>[]): ProposedContext[][] {
  const byClass = new Map<string, Set<string>>();
  for (const f of files) {
    let set = byClass.get(f.sopClassUid);
    if (!set) byClass.set(f.sopClassUid, (set = new Set()));
    set.add(f.transferSyntaxUid);
  }
  const batches: ProposedContext[][] = [];
  let batch: ProposedContext[] = [];
  for (const [sopClass, syntaxes] of byClass) {
    const contexts: ProposedContext[] = [...syntaxes].map((ts) => ({ abstractSyntax: sopClass, transferSyntaxes: [ts] }));
    const fallback = CONVERSION_TARGETS.filter((ts) => !syntaxes.has(ts));
    if (fallback.length > 0 && [...syntaxes].some((ts) => isConvertibleSource(ts))) {
      contexts.push({ abstractSyntax: sopClass, transferSyntaxes: fallback });
    }
    if (batch.length + contexts.length > MAX_CONTEXTS && batch.length > 0) {
      batches.push(batch);
      batch = [];
    }
    // A single class with more than 128 syntaxes cannot happen (there are not that many).
    batch.push(...contexts);
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

interface Plan {
  context: AcceptedContext;
  convert: boolean;
}

/** The SOP Classes every proposed context of which the peer refused as "abstract syntax not supported" (result 3). */
function unsupportedClasses(session: ScuSession): Set<string> {
  const rq = session.association.request;
  const ac = session.association.acceptance;
  const out = new Set<string>();
  if (!rq || !ac) return out;
  const result = new Map(ac.presentationContexts.map((pc) => [pc.id, pc.result]));
  const byClass = new Map<string, number[]>();
  for (const pc of rq.presentationContexts) byClass.set(pc.abstractSyntax, [...(byClass.get(pc.abstractSyntax) ?? []), result.get(pc.id) ?? -1]);
  for (const [sopClass, results] of byClass) if (results.every((r) => r === 3)) out.add(sopClass);
  return out;
}

/** The context a file goes on, or why there is none. */
function chooseContext(file: Probed, accepted: readonly AcceptedContext[], unsupported: ReadonlySet<string>): Plan | string {
  const ofClass = accepted.filter((c) => c.abstractSyntax === file.sopClassUid && c.requestorIsScu);
  const own = ofClass.find((c) => c.transferSyntax === file.transferSyntaxUid);
  if (own) return { context: own, convert: false };
  for (const target of CONVERSION_TARGETS) {
    const context = ofClass.find((c) => c.transferSyntax === target);
    if (context && canTranscode(file.transferSyntaxUid, target)) return { context, convert: true };
  }
  const syntax = transferSyntax(file.transferSyntaxUid);
  if (ofClass.length === 0 && unsupported.has(file.sopClassUid)) return `SOP Class ${file.sopClassUid} is not supported by the peer`;
  if (!isConvertibleSource(file.transferSyntaxUid)) {
    return (
      `transfer syntax ${syntax.name} (${syntax.uid}) was not accepted by the peer, ` +
      'and compressed transcoding is not available yet'
    );
  }
  return `transfer syntax ${syntax.name} (${syntax.uid}) was not accepted by the peer, nor an uncompressed one to convert to`;
}

/** A file ready to go: its dataset in the context's syntax. */
interface Prepared {
  file: Probed;
  plan?: Plan;
  dataset?: Buffer;
  error?: string;
}

async function prepare(file: Probed, plan: Plan | string): Promise<Prepared> {
  if (typeof plan === 'string') return { file, error: plan };
  try {
    const bytes = await readWhole(file.input);
    if (file.datasetOffset < 0) {
      // A stored instance (checked whole when it was received): only where its dataset starts is needed.
      file = { ...file, datasetOffset: part10DatasetOffset(bytes), size: bytes.length };
    }
    if (!plan.convert) {
      if (file.pixelDataEnd !== undefined && file.pixelDataEnd > bytes.length) {
        return { file, plan, error: `the file is truncated (its pixel data needs ${file.pixelDataEnd} bytes, it has ${bytes.length})` };
      }
      let dataset = bytes.subarray(file.datasetOffset);
      if (dataset.length % 2 === 1) {
        // P-DATA fragments are even (PS3.8 Annex E.1). A deflated stream may be odd: a NUL pad is ignored by
        // inflaters (and is what PS3.5 A.5 asks of writers); any other odd dataset is malformed.
        if (file.transferSyntaxUid !== DeflatedExplicitVRLittleEndian) {
          return { file, plan, error: `the dataset has an odd length (${dataset.length} bytes): the file is truncated or malformed` };
        }
        dataset = Buffer.concat([dataset, Buffer.alloc(1)]);
      }
      return { file, plan, dataset };
    }
    const parsed = readPart10(bytes);
    return { file, plan, dataset: transcodeDataset(parsed, plan.context.transferSyntax) };
  } catch (e) {
    return { file, plan, error: `${plan.convert ? 'cannot convert' : 'cannot read'}: ${(e as Error).message}` };
  }
}

/** A counting semaphore for the operations window. */
class Window {
  private used = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly size: number) {}
  async acquire(): Promise<void> {
    if (this.used < this.size) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.used--;
  }
}

function outcomeOf(status: number): StoreOutcome {
  if (status === Status.DuplicateSOPInstance) return 'already-stored';
  switch (statusCategory(status)) {
    case 'success':
      return 'sent';
    case 'warning':
      return 'warning';
    default:
      return 'failed';
  }
}

/**
 * Sends the inputs to the target over one association (more only past 128 presentation contexts; `options.sessions`
 * says where they come from and where they go afterwards) and reports on each. Rejects only when the first association cannot be established (`AssociationError`: nothing was sent);
 * every other problem is a failed file.
 *
 * ```ts
 * const summary = await storeInstances({ host: '127.0.0.1', port: 4242, callingAet: 'PACSNODE', calledAet: 'ORTHANC' },
 *   ['a.dcm', { bytes: buffer, name: 'generated' }]);
 * ```
 */
export async function storeInstances(target: ScuTarget, inputs: readonly StoreInput[], options: StoreOptions = {}): Promise<StoreSummary> {
  const results: (StoreFileResult | undefined)[] = new Array(inputs.length);
  let done = 0;
  const report = (index: number, result: StoreFileResult): void => {
    results[index] = result;
    done++;
    options.onResult?.(result, done, inputs.length);
  };
  // Headers are read a few at a time (file reads wait on the thread pool, not on the CPU), reported in order.
  const probed: (Probed | StoreFileResult)[] = new Array(inputs.length);
  let nextProbe = 0;
  await Promise.all(
    Array.from({ length: Math.min(PROBE_CONCURRENCY, inputs.length) }, async () => {
      while (nextProbe < inputs.length) {
        const i = nextProbe++;
        probed[i] = await probe(inputs[i]!, i);
      }
    }),
  );
  const files: Probed[] = [];
  probed.forEach((p, i) => {
    if ('outcome' in p) report(i, p);
    else files.push(p);
  });
  let associations = 0;
  const sessions = options.sessions ?? newAssociations;
  for (const contexts of planContexts(files)) {
    const classes = new Set(contexts.map((c) => c.abstractSyntax));
    const batch = files.filter((f) => classes.has(f.sopClassUid));
    const window = Math.max(1, Math.floor(options.window ?? 1));
    let session: ScuSession;
    try {
      session = await sessions.open(target, contexts, window > 1 ? { maxOperationsInvoked: window, maxOperationsPerformed: 1 } : undefined);
    } catch (e) {
      if (associations === 0) throw e;
      for (const f of batch) report(f.index, failure(f.source, (e as Error).message, uids(f)));
      continue;
    }
    associations++;
    const invoked = session.association.acceptance?.userInformation.asyncOpsWindow?.maxOperationsInvoked;
    // PS3.7 D.3.3.3: without the sub-item in the AC, one operation at a time; 0 means unlimited.
    const agreed = window > 1 && invoked !== undefined ? (invoked === 0 ? window : Math.min(window, invoked)) : 1;
    await sendBatch(session, batch, agreed, options, report);
    await sessions.done(session);
  }
  const final = results.map((r, i) => r ?? failure(sourceName(inputs[i]!), 'not sent'));
  const count = (outcome: StoreOutcome) => final.filter((r) => r.outcome === outcome).length;
  return {
    results: final,
    sent: count('sent') + count('warning'),
    warnings: count('warning'),
    alreadyStored: count('already-stored'),
    failed: count('failed'),
    skipped: count('skipped'),
    bytes: final.reduce((n, r) => n + r.bytes, 0),
    associations,
  };
}

function uids(file: Probed): Partial<StoreFileResult> {
  return { sopClassUid: file.sopClassUid, sopInstanceUid: file.sopInstanceUid, transferSyntaxUid: file.transferSyntaxUid };
}

async function sendBatch(
  session: ScuSession,
  batch: readonly Probed[],
  windowSize: number,
  options: StoreOptions,
  report: (index: number, result: StoreFileResult) => void,
): Promise<void> {
  const accepted = [...session.contexts.values()];
  const unsupported = unsupportedClasses(session);
  const window = new Window(windowSize);
  const tasks: Promise<void>[] = [];
  // Files are read (and converted) ahead of their turn, so that the disk and the network overlap.
  const ahead: Promise<Prepared>[] = [];
  let nextToRead = 0;
  let bytesAhead = 0;
  const readAhead = (): void => {
    while (nextToRead < batch.length && (ahead.length === 0 || (ahead.length < READ_AHEAD_FILES && bytesAhead < READ_AHEAD_BYTES))) {
      const file = batch[nextToRead++]!;
      bytesAhead += file.size;
      ahead.push(prepare(file, chooseContext(file, accepted, unsupported)));
    }
  };
  for (let k = 0; k < batch.length; k++) {
    readAhead();
    const prepared = await ahead.shift()!;
    const { file } = prepared;
    const done = (): void => {
      bytesAhead -= file.size;
      readAhead();
    };
    if (prepared.error !== undefined || !prepared.plan || !prepared.dataset) {
      done();
      report(file.index, failure(file.source, prepared.error ?? 'not prepared', uids(file)));
      continue;
    }
    await window.acquire();
    if (options.signal?.aborted) {
      window.release();
      done();
      report(file.index, { source: file.source, outcome: 'skipped', converted: false, bytes: 0, message: 'cancelled', ...uids(file) });
      continue;
    }
    if (!session.isOpen) {
      window.release();
      done();
      const why = session.end?.error?.message ?? session.end?.reason ?? 'association closed';
      report(file.index, failure(file.source, `not sent: ${why}`, uids(file)));
      continue;
    }
    tasks.push(
      storeOne(session, prepared.plan, prepared.dataset, file, options)
        .then((result) => report(file.index, result))
        .finally(() => {
          window.release();
          done();
        }),
    );
  }
  await Promise.all(tasks);
}

async function storeOne(session: ScuSession, plan: Plan, dataset: Buffer, file: Probed, options: StoreOptions): Promise<StoreFileResult> {
  const base: StoreFileResult = {
    source: file.source,
    outcome: 'failed',
    ...uids(file),
    sentTransferSyntaxUid: plan.context.transferSyntax,
    converted: plan.convert,
    bytes: 0,
  };
  const rq: CStoreRq = {
    type: 'C-STORE-RQ',
    MessageID: session.nextMessageId(),
    AffectedSOPClassUID: file.sopClassUid,
    AffectedSOPInstanceUID: file.sopInstanceUid,
    Priority: options.priority ?? Priority.Medium,
  };
  if (options.moveOriginator) {
    rq.MoveOriginatorApplicationEntityTitle = options.moveOriginator.aet;
    rq.MoveOriginatorMessageID = options.moveOriginator.messageId;
  }
  try {
    const { message } = await session.request(plan.context.id, rq, dataset);
    const rsp = message as CStoreRsp;
    const outcome = outcomeOf(rsp.Status);
    const meaning = `${formatStatus(rsp.Status)} ${describeStatus(rsp.Status, 'C-STORE')}`;
    const result: StoreFileResult = { ...base, outcome, status: rsp.Status, bytes: dataset.length };
    if (outcome !== 'sent') result.message = rsp.ErrorComment ? `${meaning}: ${rsp.ErrorComment}` : meaning;
    return result;
  } catch (e) {
    return { ...base, message: (e as Error).message };
  }
}
