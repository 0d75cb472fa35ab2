/**
 * C-GET SCP (PS3.7 §9.1.3, PS3.4 C.4.3): the instances the Identifier designates are sent back as C-STORE
 * sub-operations on the same association, through the storage contexts the requestor negotiated with the SCP role.
 * A Pending response follows every sub-operation with the counts; the final response carries the Failed SOP
 * Instance UID List when some failed. Stored bytes are sent unchanged through a context with the stored transfer
 * syntax; without one, an uncompressed instance is converted to another uncompressed syntax the requestor
 * proposed (getscu proposes Explicit VR Little Endian only, by default). C-CANCEL stops between two sub-operations.
 */
import { logger } from '../../core/log.js';
import { readPart10 } from '../../dicom/reader.js';
import { Tags } from '../../dicom/tag.js';
import { canTranscode, transcodeDataset } from '../scu/transcode.js';
import { FindRefusal, type RetrieveItem } from '../handlers.js';
import { cGetRsp, type CGetRq, type CStoreRsp, type SubOperationCounts } from '../messages.js';
import { readIdentifier } from './identifier.js';
import { Status, statusCategory } from '../status.js';
import { encodeIdentifier } from './find.js';
import type { ScpService, ScpSession } from './session.js';

const log = logger('dicom');

/**
 * The presentation context for this instance: one with its SOP class, the SCP role and its stored syntax (sent
 * unchanged), else one in a syntax it can be converted to (between the uncompressed syntaxes, as C-MOVE does).
 */
function contextFor(session: ScpSession, item: RetrieveItem): { id: number; convertTo?: string } | undefined {
  let converted: { id: number; convertTo: string } | undefined;
  for (const ctx of session.contexts.values()) {
    if (ctx.abstractSyntax !== item.sopClassUid || !ctx.requestorIsScp) continue;
    if (ctx.transferSyntax === item.transferSyntaxUid) return { id: ctx.id };
    if (!converted && canTranscode(item.transferSyntaxUid, ctx.transferSyntax)) converted = { id: ctx.id, convertTo: ctx.transferSyntax };
  }
  return converted;
}

/** The dataset to send through the context: as stored, or converted. */
async function datasetFor(item: RetrieveItem, convertTo: string | undefined): Promise<Buffer> {
  if (convertTo === undefined) return item.readDataset();
  return transcodeDataset(readPart10(await item.readFile()), convertTo);
}

export const getScp: ScpService = {
  handle(session, contextId, request, dataset) {
    const rq = request as CGetRq;
    void session.run(
      async (signal) => {
        if (!session.handlers.policy.isAllowed('get', session.info)) {
          await session.respond(contextId, cGetRsp(rq, Status.NotAuthorized));
          return;
        }
        const ts = session.transferSyntaxOf(contextId);
        const identifier = readIdentifier(session, contextId, dataset);
        const items = await session.handlers.retrieve.locate({ sopClassUid: rq.AffectedSOPClassUID, identifier }, session.info);
        const counts: Required<SubOperationCounts> = { remaining: items.length, completed: 0, failed: 0, warning: 0 };
        const failedUids: string[] = [];
        // The next instance is read while one is sent (one ahead: at most two instances in memory).
        const contexts = items.map((item) => contextFor(session, item));
        const reads = new Map<number, Promise<Buffer>>();
        const readAhead = (k: number): void => {
          const context = contexts[k];
          if (k >= items.length || context === undefined || reads.has(k)) return;
          const read = datasetFor(items[k]!, context.convertTo);
          read.catch(() => undefined); // awaited in turn; not an unhandled rejection if the C-GET stops first
          reads.set(k, read);
        };
        for (const [k, item] of items.entries()) {
          if (signal.aborted) break;
          const storeContext = contexts[k];
          let status: number = Status.ProcessingFailure;
          if (storeContext === undefined) {
            log.warn(`${session.tag} C-GET: no accepted context with the SCP role for ${item.sopClassUid} in ${item.transferSyntaxUid}`);
          } else {
            try {
              readAhead(k);
              const read = reads.get(k)!;
              reads.delete(k);
              readAhead(k + 1);
              const bytes = await read;
              const rsp = (await session.request(
                storeContext.id,
                {
                  type: 'C-STORE-RQ',
                  MessageID: session.messageId(),
                  AffectedSOPClassUID: item.sopClassUid,
                  AffectedSOPInstanceUID: item.sopInstanceUid,
                  Priority: rq.Priority,
                },
                bytes,
              )) as CStoreRsp;
              status = rsp.Status;
            } catch (e) {
              log.warn(`${session.tag} C-GET sub-operation failed: ${(e as Error).message}`);
              if (!session.association.isEstablished) return;
            }
          }
          counts.remaining--;
          const category = statusCategory(status);
          if (category === 'success') counts.completed++;
          else if (category === 'warning') counts.warning++;
          else {
            counts.failed++;
            failedUids.push(item.sopInstanceUid);
          }
          if (counts.remaining > 0) {
            // The Pending response and the next sub-operation's C-STORE (its file already read) go in one write.
            session.association.coalesceWrites();
            await session.respond(contextId, cGetRsp(rq, Status.Pending, counts));
          }
        }
        const failedList = failedUids.length > 0 || (signal.aborted && counts.remaining > 0);
        const final = signal.aborted
          ? Status.Cancel
          : counts.failed === 0
            ? Status.Success
            : counts.completed + counts.warning > 0
              ? Status.SubOperationsCompleteWithFailures
              : Status.OutOfResourcesUnableToPerformSubOperations;
        const identifierOut = failedList
          ? encodeIdentifier([{ tag: Tags.FailedSOPInstanceUIDList, vr: 'UI', value: failedUids }], ts)
          : undefined;
        await session.respond(contextId, cGetRsp(rq, final, counts, { hasDataset: identifierOut !== undefined }), identifierOut);
      },
      (e) => {
        const status = e instanceof FindRefusal ? e.status : Status.UnableToProcess;
        return session.respond(contextId, cGetRsp(rq, status, undefined, { ErrorComment: (e as Error).message }));
      },
      rq.MessageID,
    );
  },
};
