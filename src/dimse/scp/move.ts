/**
 * C-MOVE SCP (PS3.7 §9.1.4, PS3.4 C.4.2): the instances the Identifier designates are sent to the Move
 * Destination (looked up by AE title; unknown: A801) over a new association, through the store SCU (stored bytes
 * unchanged where the destination accepts their syntax, uncompressed conversions otherwise), with the Move
 * Originator's AE title and Message ID. Synchronous (Orthanc's default): a Pending response after each
 * sub-operation, then the final one with the counts and the Failed SOP Instance UID List. Asynchronous
 * (SynchronousCMove false): Success at once, the sub-operations run in the background. C-CANCEL stops between two.
 */
import { logger } from '../../core/log.js';
import { Tags } from '../../dicom/tag.js';
import { FindRefusal } from '../handlers.js';
import { cMoveRsp, type CMoveRq, type SubOperationCounts } from '../messages.js';
import { storeInstances, type StoreFileResult } from '../scu/store.js';
import { readIdentifier } from './identifier.js';
import { Status } from '../status.js';
import { encodeIdentifier } from './find.js';
import type { ScpService } from './session.js';

const log = logger('dicom');

export const moveScp: ScpService = {
  handle(session, contextId, request, dataset) {
    const rq = request as CMoveRq;
    const retrieve = session.handlers.retrieve;
    void session.run(
      async (signal) => {
        if (!session.handlers.policy.isAllowed('move', session.info)) {
          await session.respond(contextId, cMoveRsp(rq, Status.NotAuthorized));
          return;
        }
        const ts = session.transferSyntaxOf(contextId);
        const identifier = readIdentifier(session, contextId, dataset);
        const destination = retrieve.destination(rq.MoveDestination);
        if (!destination) {
          log.warn(`${session.tag} C-MOVE to unknown destination ${rq.MoveDestination}`);
          await session.respond(contextId, cMoveRsp(rq, Status.MoveDestinationUnknown, undefined, { ErrorComment: `unknown destination ${rq.MoveDestination}` }));
          return;
        }
        if (!retrieve.synchronousMove && retrieve.startMove) {
          await retrieve.startMove(
            { sopClassUid: rq.AffectedSOPClassUID, identifier },
            destination,
            { aet: session.info.callingAet, messageId: rq.MessageID },
            session.info,
          );
          await session.respond(contextId, cMoveRsp(rq, Status.Success, { remaining: 0, completed: 0, failed: 0, warning: 0 }));
          return;
        }
        const items = await retrieve.locate({ sopClassUid: rq.AffectedSOPClassUID, identifier }, session.info);
        const counts: Required<SubOperationCounts> = { remaining: items.length, completed: 0, failed: 0, warning: 0 };
        const failedUids: string[] = [];
        const send = (onResult: (r: StoreFileResult) => void) =>
          storeInstances(
            {
              host: destination.host,
              port: destination.port,
              callingAet: retrieve.localAet,
              calledAet: destination.aet,
              tls: destination.tls,
              dimseTimeoutMs: retrieve.scuTimeoutMs,
              // DicomScuTimeout bounds connecting and negotiating too (as the REST SCUs): an unreachable destination
              // fails the sub-operations within it, not after the defaults (10 s connect, 30 s negotiation).
              ...(retrieve.scuTimeoutMs > 0 ? { timeouts: { connectMs: retrieve.scuTimeoutMs, responseMs: retrieve.scuTimeoutMs } } : {}),
            },
            items.map((item) => ({
              load: () => item.readFile(),
              name: item.sopInstanceUid,
              sopClassUid: item.sopClassUid,
              sopInstanceUid: item.sopInstanceUid,
              transferSyntaxUid: item.transferSyntaxUid,
            })),
            {
              moveOriginator: { aet: session.info.callingAet, messageId: rq.MessageID },
              signal,
              onResult: (r) => onResult(r),
            },
          );
        if (!retrieve.synchronousMove) {
          await session.respond(contextId, cMoveRsp(rq, Status.Success, { remaining: 0, completed: 0, failed: 0, warning: 0 }));
          void send(() => undefined).then(
            (s) => log.info(`${session.tag} background C-MOVE to ${destination.aet}: ${s.sent} sent, ${s.failed} failed`),
            (e: unknown) => log.warn(`${session.tag} background C-MOVE to ${destination.aet} failed: ${(e as Error).message}`),
          );
          return;
        }
        const pending: Promise<void>[] = [];
        await send((r) => {
          if (r.message === 'cancelled') return;
          counts.remaining--;
          if (r.outcome === 'sent' || r.outcome === 'already-stored') counts.completed++;
          else if (r.outcome === 'warning') counts.warning++;
          else {
            counts.failed++;
            failedUids.push(r.sopInstanceUid ?? r.source);
          }
          if (counts.remaining > 0 && !signal.aborted) pending.push(session.respond(contextId, cMoveRsp(rq, Status.Pending, { ...counts })));
        }).catch((e: unknown) => {
          // The destination could not be reached at all: every sub-operation failed.
          log.warn(`${session.tag} C-MOVE to ${destination.aet}: ${(e as Error).message}`);
          for (const item of items) failedUids.push(item.sopInstanceUid);
          counts.failed += counts.remaining;
          counts.remaining = 0;
        });
        await Promise.all(pending);
        const final = signal.aborted
          ? Status.Cancel
          : counts.failed === 0
            ? Status.Success
            : counts.completed + counts.warning > 0
              ? Status.SubOperationsCompleteWithFailures
              : Status.OutOfResourcesUnableToPerformSubOperations;
        const identifierOut =
          failedUids.length > 0 ? encodeIdentifier([{ tag: Tags.FailedSOPInstanceUIDList, vr: 'UI', value: failedUids }], ts) : undefined;
        await session.respond(contextId, cMoveRsp(rq, final, counts, { hasDataset: identifierOut !== undefined }), identifierOut);
      },
      (e) => {
        const status = e instanceof FindRefusal ? e.status : Status.UnableToProcess;
        return session.respond(contextId, cMoveRsp(rq, status, undefined, { ErrorComment: (e as Error).message }));
      },
      rq.MessageID,
    );
  },
};
