/**
 * C-STORE SCP (PS3.7 §9.1.1, PS3.4 Annex B): the dataset is streamed to the store handler as its PDVs arrive,
 * with back-pressure on the socket; the response is sent once the whole dataset has arrived and been handled.
 * One failed instance answers a failure status and the association goes on.
 *
 * A dataset that ends within `IN_MEMORY_DATASET` (nearly every instance) is handed over as its fragments, with no
 * stream at all: a stream per instance (its creation, the async iteration, the end-of-stream bookkeeping) was a
 * sizeable part of the CPU cost of a small C-STORE. Beyond that size the fragments received so far and the rest
 * go through a stream, with back-pressure.
 */
import { PassThrough, Readable } from 'node:stream';
import { cStoreRsp, fromCommandSet, type CStoreRq } from '../messages.js';
import { Status } from '../status.js';
import type { StoreRequest } from '../handlers.js';
import type { DatasetSink, ScpService } from './session.js';

/** Datasets up to this size are collected in memory (the fragments are kept as received, not copied). */
export const IN_MEMORY_DATASET = 1 << 20;

/** How the dataset reaches the handler: its fragments once complete, or a stream started beyond the limit. */
type DatasetSource = { fragments: Buffer[] } | { stream: PassThrough };

function newStream(): PassThrough {
  const stream = new PassThrough({ highWaterMark: 1 << 20 });
  // The association may end (or break the DIMSE rules) before this request's work starts, when it still waits
  // behind an earlier one: the stream is then destroyed with an error nobody listens to yet. The work sees that
  // error through its own reads; this listener keeps it from being an uncaught exception.
  stream.on('error', () => undefined);
  return stream;
}

export const storeScp: ScpService = {
  streamDataset(session, contextId, command): DatasetSink {
    const rq = fromCommandSet(command) as CStoreRq;
    let fragments: Buffer[] = [];
    let size = 0;
    let stream: PassThrough | undefined;
    let drainListener: (() => void) | undefined;
    let settle!: (source: DatasetSource) => void;
    const source = new Promise<DatasetSource>((resolve) => (settle = resolve));
    let datasetComplete!: () => void;
    const complete = new Promise<void>((resolve) => (datasetComplete = resolve));
    /** From now on the dataset goes through a stream: what was collected first, then the rest. */
    const toStream = (): PassThrough => {
      stream = newStream();
      if (drainListener) stream.on('drain', drainListener);
      for (const f of fragments) stream.write(f);
      fragments = [];
      settle({ stream });
      return stream;
    };
    void session.run(
      async () => {
        const got = await source;
        let status: number;
        if (!session.handlers.policy.isAllowed('store', session.info)) {
          if ('stream' in got) got.stream.resume();
          status = Status.NotAuthorized;
        } else {
          status = await session.handlers.store.store(storeRequest(rq, session.transferSyntaxOf(contextId), got), session.info);
        }
        // Answer once the whole dataset has arrived (a handler may fail before the end of it).
        if ('stream' in got) {
          const s = got.stream;
          await new Promise<void>((resolve) =>
            s.writableFinished || s.destroyed ? resolve() : s.once('close', resolve).once('finish', resolve),
          );
        }
        await session.respond(contextId, cStoreRsp(rq, status));
      },
      (e) => session.respond(contextId, cStoreRsp(rq, Status.ProcessingFailure, { ErrorComment: (e as Error).message })),
      undefined,
      complete,
    );
    return {
      write: (chunk) => {
        if (stream) return stream.write(chunk);
        fragments.push(chunk);
        size += chunk.length;
        // Past the limit: the stream holds more than its high-water mark, so reading pauses until it drains.
        return size > IN_MEMORY_DATASET ? !toStream().writableNeedDrain : true;
      },
      end: () => {
        datasetComplete();
        if (stream) stream.end();
        else settle({ fragments });
      },
      destroy: (error) => (stream ?? toStream()).destroy(error),
      onDrain: (listener) => {
        drainListener = listener;
        stream?.on('drain', listener);
      },
    };
  },
  handle(session, contextId, request) {
    // Reached only for a C-STORE-RQ whose command announced no dataset.
    const rq = request as CStoreRq;
    void session.respond(contextId, cStoreRsp(rq, Status.ProcessingFailure, { ErrorComment: 'C-STORE without a dataset' }));
  },
};

function storeRequest(rq: CStoreRq, transferSyntaxUid: string, source: DatasetSource): StoreRequest {
  const base = {
    sopClassUid: rq.AffectedSOPClassUID,
    sopInstanceUid: rq.AffectedSOPInstanceUID,
    transferSyntaxUid,
    moveOriginator:
      rq.MoveOriginatorApplicationEntityTitle !== undefined
        ? { aet: rq.MoveOriginatorApplicationEntityTitle, messageId: rq.MoveOriginatorMessageID ?? 0 }
        : undefined,
  };
  if ('stream' in source) return { ...base, dataset: source.stream };
  const fragments = source.fragments;
  let dataset: Readable | undefined;
  return {
    ...base,
    datasetFragments: fragments,
    // Made only for a handler that reads the dataset as a stream.
    get dataset(): Readable {
      dataset ??= Readable.from(fragments, { objectMode: false });
      return dataset;
    },
  };
}
