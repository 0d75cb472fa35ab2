/**
 * C-FIND SCP (PS3.7 §9.1.2, PS3.4 C.4.1): one Pending response with an Identifier per match, then Success; a
 * C-CANCEL ends the matches with Cancel (FE00). The Identifier is read and written in the presentation context's
 * transfer syntax.
 */
import { deflateRawSync } from 'node:zlib';
import { DicomFormatError } from '../../core/errors.js';
import { DeflatedExplicitVRLittleEndian, transferSyntax } from '../../dicom/transfer-syntax.js';
import { encodeDataset, type WriteElement } from '../../dicom/writer.js';
import { Tags } from '../../dicom/tag.js';
import { FindRefusal } from '../handlers.js';
import { cFindRsp, type CFindRq } from '../messages.js';
import { readIdentifier } from './identifier.js';
import { Status } from '../status.js';
import type { ScpService } from './session.js';

/** Encodes an Identifier in a transfer syntax (uncompressed or deflated). */
export function encodeIdentifier(elements: readonly WriteElement[], transferSyntaxUid: string): Buffer {
  const syntax = transferSyntax(transferSyntaxUid);
  const charset = elements.find((e) => e.tag === Tags.SpecificCharacterSet)?.value;
  const bytes = encodeDataset(elements, {
    explicitVr: syntax.explicitVr,
    littleEndian: syntax.littleEndian,
    specificCharacterSet: typeof charset === 'string' ? charset : undefined,
  });
  return transferSyntaxUid === DeflatedExplicitVRLittleEndian ? deflateRawSync(bytes) : bytes;
}

export const findScp: ScpService = {
  handle(session, contextId, request, dataset) {
    const rq = request as CFindRq;
    void session.run(
      async (signal) => {
        if (!session.handlers.policy.isAllowed('find', session.info)) {
          await session.respond(contextId, cFindRsp(rq, Status.NotAuthorized));
          return;
        }
        const ts = session.transferSyntaxOf(contextId);
        const identifier = readIdentifier(session, contextId, dataset);
        let sent = 0;
        for await (const answer of session.handlers.find.find({ sopClassUid: rq.AffectedSOPClassUID, identifier }, session.info, signal)) {
          if (signal.aborted) break;
          await session.respond(contextId, cFindRsp(rq, Status.Pending, { hasDataset: true }), encodeIdentifier(answer, ts));
          // Let the socket be read now and then, so that a C-CANCEL can stop a long answer.
          if (++sent % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
        if (signal.aborted) {
          await session.respond(contextId, cFindRsp(rq, Status.Cancel));
          return;
        }
        await session.respond(contextId, cFindRsp(rq, Status.Success));
      },
      (e) => {
        const status = e instanceof FindRefusal ? e.status : e instanceof DicomFormatError ? Status.CannotUnderstand : Status.UnableToProcess;
        return session.respond(contextId, cFindRsp(rq, status, { ErrorComment: (e as Error).message }));
      },
      rq.MessageID,
    );
  },
};
