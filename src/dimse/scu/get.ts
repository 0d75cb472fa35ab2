/**
 * C-GET SCU (PS3.7 §9.1.3, PS3.4 C.4.3): asks a peer for the instances its Identifier designates and receives them
 * as C-STORE sub-operations on the same association. For that the association proposes, beside the model's GET
 * SOP Class, storage contexts in which we are the SCP (SCP/SCU Role Selection, PS3.7 D.3.3.4), each transfer syntax
 * alone in its context so that the peer can send every instance in the syntax it holds it in: the bytes received
 * are kept unchanged, written as a Part 10 file (a meta header built from the C-STORE and the context, then the
 * dataset as received) into a folder, or handed to a callback.
 */
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { logger } from '../../core/log.js';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../../dicom/transfer-syntax.js';
import { buildMetaHeader } from '../../dicom/writer.js';
import { openAssociation, type ProposedContext } from '../../net/connect.js';
import type { RoleSelection } from '../../net/pdu/types.js';
import { Priority } from '../command.js';
import { cStoreRsp, type CGetRq, type CStoreRq } from '../messages.js';
import { encodeIdentifier } from '../scp/find.js';
import { Status } from '../status.js';
import { closeSession, identifierElements, QUERY_SYNTAXES, queryRetrieveSopClass } from './find.js';
import { runRetrieve, type RetrieveOptions, type RetrieveRequest, type RetrieveSummary } from './move.js';
import { ScuError, ScuSession, sessionOptions, type ScuResponse, type ScuTarget } from './session.js';

const log = logger('dicom');

/**
 * Image storage SOP Classes often held compressed: proposed in the uncompressed little endian syntaxes and in
 * `GET_COMPRESSED_SYNTAXES`, each alone in its context.
 */
export const GET_IMAGE_STORAGE_CLASSES: readonly string[] = [
  '1.2.840.10008.5.1.4.1.1.2', // CT Image
  '1.2.840.10008.5.1.4.1.1.2.1', // Enhanced CT Image
  '1.2.840.10008.5.1.4.1.1.4', // MR Image
  '1.2.840.10008.5.1.4.1.1.4.1', // Enhanced MR Image
  '1.2.840.10008.5.1.4.1.1.1', // Computed Radiography Image
  '1.2.840.10008.5.1.4.1.1.1.1', // Digital X-Ray Image - For Presentation
  '1.2.840.10008.5.1.4.1.1.1.1.1', // Digital X-Ray Image - For Processing
  '1.2.840.10008.5.1.4.1.1.1.2', // Digital Mammography X-Ray Image - For Presentation
  '1.2.840.10008.5.1.4.1.1.6.1', // Ultrasound Image
  '1.2.840.10008.5.1.4.1.1.3.1', // Ultrasound Multi-frame Image
  '1.2.840.10008.5.1.4.1.1.7', // Secondary Capture Image
  '1.2.840.10008.5.1.4.1.1.12.1', // X-Ray Angiographic Image
];

/** Other storage SOP Classes: proposed in the uncompressed little endian syntaxes only. */
export const GET_OTHER_STORAGE_CLASSES: readonly string[] = [
  '1.2.840.10008.5.1.4.1.1.20', // Nuclear Medicine Image
  '1.2.840.10008.5.1.4.1.1.128', // Positron Emission Tomography Image
  '1.2.840.10008.5.1.4.1.1.12.2', // X-Ray Radiofluoroscopic Image
  '1.2.840.10008.5.1.4.1.1.481.1', // RT Image
  '1.2.840.10008.5.1.4.1.1.481.2', // RT Dose
  '1.2.840.10008.5.1.4.1.1.481.3', // RT Structure Set
  '1.2.840.10008.5.1.4.1.1.481.5', // RT Plan
  '1.2.840.10008.5.1.4.1.1.88.11', // Basic Text SR
  '1.2.840.10008.5.1.4.1.1.88.22', // Enhanced SR
  '1.2.840.10008.5.1.4.1.1.88.33', // Comprehensive SR
  '1.2.840.10008.5.1.4.1.1.88.59', // Key Object Selection Document
  '1.2.840.10008.5.1.4.1.1.88.67', // X-Ray Radiation Dose SR
  '1.2.840.10008.5.1.4.1.1.11.1', // Grayscale Softcopy Presentation State
  '1.2.840.10008.5.1.4.1.1.104.1', // Encapsulated PDF
  '1.2.840.10008.5.1.4.1.1.66.4', // Segmentation
];

/** The uncompressed syntaxes every storage class is proposed in. */
export const GET_UNCOMPRESSED_SYNTAXES: readonly string[] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian];

/** The compressed syntaxes image classes are also proposed in. */
export const GET_COMPRESSED_SYNTAXES: readonly string[] = [
  '1.2.840.10008.1.2.4.50', // JPEG Baseline (Process 1)
  '1.2.840.10008.1.2.4.70', // JPEG Lossless, First-Order Prediction
  '1.2.840.10008.1.2.4.80', // JPEG-LS Lossless
  '1.2.840.10008.1.2.4.90', // JPEG 2000 (Lossless Only)
  '1.2.840.10008.1.2.4.91', // JPEG 2000
  '1.2.840.10008.1.2.5', // RLE Lossless
];

/** Presentation context IDs are the odd numbers 1..255 (PS3.8 §9.3.2.2). */
const MAX_CONTEXTS = 128;

export interface GetContextOptions {
  /** The storage SOP Classes to receive; default the two lists above (with their syntaxes). */
  storageClasses?: readonly string[];
  /**
   * The syntaxes to receive them in, each alone in its context. When `storageClasses` or `transferSyntaxes` is given,
   * every class is proposed in every syntax (default syntaxes: Explicit and Implicit VR Little Endian).
   */
  transferSyntaxes?: readonly string[];
}

/**
 * The association's contexts for a C-GET: the GET SOP Class first, then the storage contexts, and a role selection
 * (SCU role no, SCP role yes) per storage class. Throws `RangeError` past 128 contexts.
 */
export function planGetContexts(getSopClass: string, options: GetContextOptions = {}): { contexts: ProposedContext[]; roleSelections: RoleSelection[] } {
  const contexts: ProposedContext[] = [{ abstractSyntax: getSopClass, transferSyntaxes: [...QUERY_SYNTAXES] }];
  const add = (classes: readonly string[], syntaxes: readonly string[]): void => {
    for (const sopClass of classes) for (const ts of syntaxes) contexts.push({ abstractSyntax: sopClass, transferSyntaxes: [ts] });
  };
  if (options.storageClasses === undefined && options.transferSyntaxes === undefined) {
    add(GET_IMAGE_STORAGE_CLASSES, [...GET_UNCOMPRESSED_SYNTAXES, ...GET_COMPRESSED_SYNTAXES]);
    add(GET_OTHER_STORAGE_CLASSES, GET_UNCOMPRESSED_SYNTAXES);
  } else {
    const classes = [...new Set(options.storageClasses ?? [...GET_IMAGE_STORAGE_CLASSES, ...GET_OTHER_STORAGE_CLASSES])];
    const syntaxes = [...new Set(options.transferSyntaxes ?? GET_UNCOMPRESSED_SYNTAXES)];
    if (classes.length === 0 || syntaxes.length === 0) throw new RangeError('a C-GET needs one storage SOP Class and one transfer syntax at least');
    add(classes, syntaxes);
  }
  if (contexts.length > MAX_CONTEXTS) {
    throw new RangeError(
      `${contexts.length - 1} storage presentation contexts (SOP Classes x transfer syntaxes) and the C-GET one exceed the ` +
        `${MAX_CONTEXTS} an association can carry`,
    );
  }
  const classes = [...new Set(contexts.slice(1).map((c) => c.abstractSyntax))];
  return { contexts, roleSelections: classes.map((sopClassUid) => ({ sopClassUid, scuRole: false, scpRole: true })) };
}

/** What a received instance is, from its C-STORE-RQ and its presentation context. */
export interface InstanceInfo {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
}

/**
 * Takes a received instance as a whole Part 10 file (meta header + the dataset bytes as received) and resolves with
 * the C-STORE status to answer: 0000 stored, a warning (Bxxx), or a failure (A7xx out of resources, Cxxx...). A
 * throw is answered 0110 Processing Failure.
 */
export type InstanceSink = (file: Buffer, instance: InstanceInfo) => Promise<number>;

export interface ReceivedInstance extends InstanceInfo {
  /** The status we answered the sub-operation with. */
  status: number;
  /** Dataset bytes received. */
  bytes: number;
  /** Where it was written, when `into` is a folder. */
  path?: string;
  /** Why it was not taken. */
  message?: string;
}

export interface GetOptions extends RetrieveOptions, GetContextOptions {
  /** A folder (created if need be) to write each instance into as `<SOP Instance UID>.dcm`, or a sink. */
  into: string | InstanceSink;
  /** Each instance received, once answered. */
  onInstance?: (instance: ReceivedInstance) => void;
}

export interface GetSummary extends RetrieveSummary {
  /** Every instance received, in order. */
  instances: ReceivedInstance[];
}

/** A file name for an instance: its UID when that is safe as a name, a hash of it otherwise. */
export function instanceFileName(sopInstanceUid: string): string {
  if (/^[0-9][0-9.]{0,63}$/.test(sopInstanceUid)) return `${sopInstanceUid}.dcm`;
  return `instance-${createHash('sha1').update(sopInstanceUid).digest('hex')}.dcm`;
}

/** A sink writing Part 10 files into a folder (through a hidden temporary name, renamed once whole). */
function folderSink(folder: string, paths: Map<string, string>): InstanceSink {
  return async (file, instance) => {
    const name = instanceFileName(instance.sopInstanceUid);
    const path = join(folder, name);
    const partial = join(folder, `.${name}.${process.pid}.part`);
    try {
      await writeFile(partial, file);
      await rename(partial, path);
    } catch (e) {
      await rm(partial, { force: true }).catch(() => undefined);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw Object.assign(new Error(`cannot write ${path}: disk full`), { status: Status.OutOfResources });
      throw new Error(`cannot write ${path}: ${(e as Error).message}`);
    }
    paths.set(instance.sopInstanceUid, path);
    return Status.Success;
  };
}

/** Receives the C-STORE sub-operations of the C-GET under way. */
class Receiver {
  readonly instances: ReceivedInstance[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly paths = new Map<string, string>();
  private readonly sink: InstanceSink;

  constructor(
    into: string | InstanceSink,
    private readonly onInstance?: (instance: ReceivedInstance) => void,
  ) {
    this.sink = typeof into === 'string' ? folderSink(into, this.paths) : into;
  }

  readonly onRequest = (session: ScuSession, request: ScuResponse): void => {
    const task = this.take(session, request).finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
  };

  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private async take(session: ScuSession, request: ScuResponse): Promise<void> {
    if (request.message.type !== 'C-STORE-RQ') {
      log.warn(`${session.tag} the peer sent a ${request.message.type} during a C-GET: aborting`);
      session.abort();
      return;
    }
    const rq = request.message as CStoreRq;
    const dataset = request.dataset ?? Buffer.alloc(0);
    const info: InstanceInfo = {
      sopClassUid: rq.AffectedSOPClassUID,
      sopInstanceUid: rq.AffectedSOPInstanceUID,
      transferSyntaxUid: session.contexts.get(request.contextId)!.transferSyntax,
    };
    let status: number;
    let message: string | undefined;
    try {
      const file = Buffer.concat([
        buildMetaHeader({ ...info, sourceAet: session.association.request?.calledAeTitle.trim() || undefined }),
        dataset,
      ]);
      status = await this.sink(file, info);
    } catch (e) {
      status = (e as { status?: number }).status ?? Status.ProcessingFailure;
      message = (e as Error).message;
      log.warn(`${session.tag} C-GET sub-operation ${info.sopInstanceUid}: ${message}`);
    }
    const received: ReceivedInstance = { ...info, status, bytes: dataset.length };
    const path = this.paths.get(info.sopInstanceUid);
    if (path !== undefined && status === Status.Success) received.path = path;
    if (message !== undefined) received.message = message;
    this.instances.push(received);
    try {
      // An Error Comment is an LO: 64 characters at most.
      const detail = message !== undefined ? { ErrorComment: message.slice(0, 64) } : undefined;
      await session.sendMessage(request.contextId, cStoreRsp(rq, status, detail));
    } catch (e) {
      log.warn(`${session.tag} cannot answer the C-STORE of ${info.sopInstanceUid}: ${(e as Error).message}`);
    }
    try {
      this.onInstance?.(received);
    } catch (e) {
      log.warn(`${session.tag} onInstance handler failed: ${(e as Error).message}`);
    }
  }
}

/**
 * Opens an association proposing the model's GET SOP Class and the storage contexts (`planGetContexts`), sends the
 * C-GET-RQ, takes each C-STORE sub-operation into `options.into`, and releases. Failure statuses are in the summary;
 * rejects with `AssociationError` (no association), `QueryKeyError` (bad keys, before connecting), `RangeError` (too
 * many contexts), `ScuError` (ERR_SCU_NOT_ACCEPTED: the peer refused the GET SOP Class; ERR_SCU_TIMEOUT,
 * ERR_SCU_CLOSED).
 *
 * ```ts
 * const summary = await get(target, { model: 'study', level: 'SERIES', keys: { StudyInstanceUID: '1.2.3', SeriesInstanceUID: '1.2.3.4' } },
 *   { into: './received' });
 * console.log(summary.instances.map((i) => i.path));
 * ```
 */
export async function get(target: ScuTarget, request: RetrieveRequest, options: GetOptions): Promise<GetSummary> {
  const sopClass = queryRetrieveSopClass(request.model, 'get');
  const elements = identifierElements(request);
  const { contexts, roleSelections } = planGetContexts(sopClass, options);
  if (options.signal?.aborted) {
    return { status: Status.Cancel, category: 'cancel', counts: { completed: 0, failed: 0, warning: 0 }, failedSopInstanceUids: [], cancelled: true, instances: [] };
  }
  if (typeof options.into === 'string') await mkdir(options.into, { recursive: true });
  const receiver = new Receiver(options.into, options.onInstance);
  const association = await openAssociation({ ...target, presentationContexts: contexts, roleSelections });
  const session = new ScuSession(association, { ...sessionOptions(target), onRequest: receiver.onRequest });
  try {
    const context = session.findContext(sopClass);
    if (!context) throw new ScuError('ERR_SCU_NOT_ACCEPTED', `the peer did not accept ${request.model === 'patient' ? 'Patient' : 'Study'} Root Query/Retrieve GET (${sopClass})`);
    const rq: CGetRq = { type: 'C-GET-RQ', MessageID: session.nextMessageId(), AffectedSOPClassUID: sopClass, Priority: options.priority ?? Priority.Medium };
    const summary = await runRetrieve(session, context.id, rq, encodeIdentifier(elements, context.transferSyntax), options);
    await receiver.drain();
    return { ...summary, instances: receiver.instances };
  } finally {
    await receiver.drain();
    await closeSession(session);
  }
}
