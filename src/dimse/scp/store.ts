/**
 * C-STORE SCP (PS3.7 §9.1.1, PS3.4 Annex B): the dataset is streamed to the store handler as its PDVs arrive,
 * with back-pressure on the socket; the response is sent once the whole dataset has arrived and been handled.
 * One failed instance answers a failure status and the association goes on.
 */
import { PassThrough } from 'node:stream';
import { cStoreRsp, fromCommandSet, type CStoreRq } from '../messages.js';
import { Status } from '../status.js';
import type { DatasetSink, ScpService } from './session.js';

export const storeScp: ScpService = {
  streamDataset(session, contextId, command): DatasetSink {
    const rq = fromCommandSet(command) as CStoreRq;
    const stream = new PassThrough({ highWaterMark: 1 << 20 });
    // The association may end (or break the DIMSE rules) before this request's work starts, when it still waits
    // behind an earlier one: the stream is then destroyed with an error nobody listens to yet. The work sees that
    // error through its own reads; this listener keeps it from being an uncaught exception.
    stream.on('error', () => undefined);
    let datasetComplete!: () => void;
    const complete = new Promise<void>((resolve) => (datasetComplete = resolve));
    void session.run(
      async () => {
        let status: number;
        if (!session.handlers.policy.isAllowed('store', session.info)) {
          stream.resume();
          status = Status.NotAuthorized;
        } else {
          status = await session.handlers.store.store(
            {
              sopClassUid: rq.AffectedSOPClassUID,
              sopInstanceUid: rq.AffectedSOPInstanceUID,
              transferSyntaxUid: session.transferSyntaxOf(contextId),
              dataset: stream,
              moveOriginator:
                rq.MoveOriginatorApplicationEntityTitle !== undefined
                  ? { aet: rq.MoveOriginatorApplicationEntityTitle, messageId: rq.MoveOriginatorMessageID ?? 0 }
                  : undefined,
            },
            session.info,
          );
        }
        // Answer once the whole dataset has arrived (a handler may fail before the end of it).
        await new Promise<void>((resolve) =>
          stream.writableFinished || stream.destroyed ? resolve() : stream.once('close', resolve).once('finish', resolve),
        );
        await session.respond(contextId, cStoreRsp(rq, status));
      },
      (e) => session.respond(contextId, cStoreRsp(rq, Status.ProcessingFailure, { ErrorComment: (e as Error).message })),
      undefined,
      complete,
    );
    return {
      write: (chunk) => stream.write(chunk),
      end: () => {
        datasetComplete();
        stream.end();
      },
      destroy: (error) => stream.destroy(error),
      onDrain: (listener) => stream.on('drain', listener),
    };
  },
  handle(session, contextId, request) {
    // Reached only for a C-STORE-RQ whose command announced no dataset.
    const rq = request as CStoreRq;
    void session.respond(contextId, cStoreRsp(rq, Status.ProcessingFailure, { ErrorComment: 'C-STORE without a dataset' }));
  },
};
