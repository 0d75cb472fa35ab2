/**
 * C-MOVE SCU (PS3.7 §9.1.4, PS3.4 C.4.2): asks a peer to send the instances its Identifier designates to a Move
 * Destination (an AE title the peer knows) over another association; pending responses report the sub-operation
 * counts; the final one the outcome, with the Failed SOP Instance UID List when some failed. C-CANCEL when the
 * caller's signal aborts.
 *
 * Also the retrieve exchange shared with the C-GET SCU (`get.ts`): request, pending counts, cancel, summary.
 */
import { readDataset } from '../../dicom/reader.js';
import { Tags } from '../../dicom/tag.js';
import { openAssociation } from '../../net/connect.js';
import { Priority } from '../command.js';
import { cCancelRq, type CGetRq, type CGetRsp, type CMoveRq, type CMoveRsp } from '../messages.js';
import { Status, statusCategory, type StatusCategory } from '../status.js';
import {
  closeSession,
  identifierElements,
  QUERY_SYNTAXES,
  queryRetrieveSopClass,
  QueryKeyError,
  type QueryRequest,
} from './find.js';
import { encodeIdentifier } from '../scp/find.js';
import { ScuError, ScuSession, sessionOptions, type ScuTarget } from './session.js';

/** What to retrieve: the level and the unique keys down to it (PS3.4 C.4.2.2.1, C.6.1.2.2), in a model. */
export type RetrieveRequest = QueryRequest;

export interface MoveRequest extends RetrieveRequest {
  /** The AE title the peer sends the instances to (it must know its address: unknown is A801). */
  destinationAet: string;
}

/** Sub-operation counters (PS3.7 §9.1.4.1.x): Remaining only while under way. */
export interface RetrieveCounts {
  remaining?: number;
  completed: number;
  failed: number;
  warning: number;
}

export interface RetrieveSummary {
  /** The final status: 0000 Success, B000 some failed or had warnings, A7xx/A801/A900/Cxxx refused or failed, FE00 cancelled. */
  status: number;
  category: StatusCategory;
  /** From the final response; a counter it lacks is the last pending response's. */
  counts: RetrieveCounts;
  /** The final response's Failed SOP Instance UID List (0008,0058) (PS3.4 C.4.2.1.3.1, C.4.3.1.3.1). */
  failedSopInstanceUids: string[];
  errorComment?: string;
  /** A C-CANCEL was sent (the signal aborted). */
  cancelled: boolean;
}

export interface RetrieveOptions {
  /** Aborting sends a C-CANCEL: the peer stops between two sub-operations and answers FE00 Cancel. */
  signal?: AbortSignal;
  /** Each pending response's counters. */
  onPending?: (counts: RetrieveCounts) => void;
  /** Priority (PS3.7 Table E.1-1): default Medium. */
  priority?: number;
}

function countsOf(rsp: CMoveRsp | CGetRsp, previous?: RetrieveCounts): RetrieveCounts {
  const counts: RetrieveCounts = {
    completed: rsp.NumberOfCompletedSuboperations ?? previous?.completed ?? 0,
    failed: rsp.NumberOfFailedSuboperations ?? previous?.failed ?? 0,
    warning: rsp.NumberOfWarningSuboperations ?? previous?.warning ?? 0,
  };
  if (rsp.NumberOfRemainingSuboperations !== undefined) counts.remaining = rsp.NumberOfRemainingSuboperations;
  return counts;
}

/**
 * Sends a C-MOVE-RQ or C-GET-RQ on a context and follows it to its final response: pending counts to
 * `onPending`, C-CANCEL on abort. Failure statuses are results, not errors; rejects only with `ScuError`.
 */
export async function runRetrieve(
  session: ScuSession,
  contextId: number,
  rq: CMoveRq | CGetRq,
  identifier: Buffer,
  options: RetrieveOptions,
): Promise<RetrieveSummary> {
  let cancelled = false;
  const onAbort = (): void => {
    if (cancelled) return;
    cancelled = true;
    if (session.isOpen) void session.sendMessage(contextId, cCancelRq(rq)).catch(() => undefined);
  };
  let last: RetrieveCounts | undefined;
  try {
    const sent = session.request(contextId, rq, identifier, {
      onPending: (response) => {
        last = countsOf(response.message as CMoveRsp | CGetRsp, last);
        options.onPending?.({ ...last });
      },
    });
    // Listening only once the request is on its way: a C-CANCEL never precedes what it cancels.
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    const { message, dataset } = await sent;
    const rsp = message as CMoveRsp | CGetRsp;
    const counts = countsOf(rsp, last);
    if (rsp.NumberOfRemainingSuboperations === undefined) delete counts.remaining;
    let failedSopInstanceUids: string[] = [];
    if (dataset && dataset.length > 0) {
      try {
        failedSopInstanceUids = readDataset(dataset, session.contexts.get(contextId)!.transferSyntax)
          .strings(Tags.FailedSOPInstanceUIDList)
          .filter((uid) => uid !== '');
      } catch {
        // An unreadable Identifier in a final response: the counts still tell what happened.
      }
    }
    const summary: RetrieveSummary = { status: rsp.Status, category: statusCategory(rsp.Status), counts, failedSopInstanceUids, cancelled };
    if (rsp.ErrorComment !== undefined) summary.errorComment = rsp.ErrorComment;
    return summary;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function checkDestination(aet: string): void {
  if (typeof aet !== 'string' || aet.trim() === '' || aet.length > 16 || aet.includes('\\')) {
    throw new QueryKeyError(`the move destination ${JSON.stringify(aet)} is not an AE title (1 to 16 characters, no backslash)`);
  }
}

/**
 * Runs one C-MOVE on an open session. Throws `QueryKeyError` (bad keys, nothing sent) and `ScuError`
 * (ERR_SCU_NOT_ACCEPTED when the peer accepted no context for the model's MOVE SOP Class, ERR_SCU_TIMEOUT,
 * ERR_SCU_CLOSED); the peer's refusals (A801 unknown destination, A900...) are in the summary.
 */
export async function cMove(session: ScuSession, request: MoveRequest, options: RetrieveOptions = {}): Promise<RetrieveSummary> {
  const sopClass = queryRetrieveSopClass(request.model, 'move');
  const elements = identifierElements(request);
  checkDestination(request.destinationAet);
  const context = session.findContext(sopClass);
  if (!context) throw new ScuError('ERR_SCU_NOT_ACCEPTED', `the peer did not accept ${request.model === 'patient' ? 'Patient' : 'Study'} Root Query/Retrieve MOVE (${sopClass})`);
  const rq: CMoveRq = {
    type: 'C-MOVE-RQ',
    MessageID: session.nextMessageId(),
    AffectedSOPClassUID: sopClass,
    Priority: options.priority ?? Priority.Medium,
    MoveDestination: request.destinationAet,
  };
  return runRetrieve(session, context.id, rq, encodeIdentifier(elements, context.transferSyntax), options);
}

/**
 * Opens an association proposing the model's MOVE SOP Class, runs the C-MOVE (see `cMove`), releases. Rejects with
 * `AssociationError` when no association could be established.
 *
 * ```ts
 * const summary = await move(target, { model: 'study', level: 'STUDY', keys: { StudyInstanceUID: '1.2.3' }, destinationAet: 'WORKSTATION' },
 *   { onPending: (c) => console.log(`${c.remaining} to go`) });
 * ```
 */
export async function move(target: ScuTarget, request: MoveRequest, options: RetrieveOptions = {}): Promise<RetrieveSummary> {
  const sopClass = queryRetrieveSopClass(request.model, 'move');
  identifierElements(request); // bad keys fail before connecting
  checkDestination(request.destinationAet);
  if (options.signal?.aborted) {
    return { status: Status.Cancel, category: 'cancel', counts: { completed: 0, failed: 0, warning: 0 }, failedSopInstanceUids: [], cancelled: true };
  }
  const association = await openAssociation({ ...target, presentationContexts: [{ abstractSyntax: sopClass, transferSyntaxes: [...QUERY_SYNTAXES] }] });
  const session = new ScuSession(association, sessionOptions(target));
  try {
    return await cMove(session, request, options);
  } finally {
    await closeSession(session);
  }
}
