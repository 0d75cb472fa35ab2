/** C-ECHO SCU (PS3.7 §9.1.5, PS3.4 Annex A): is the peer there and talking DICOM? */
import { openAssociation } from '../../net/connect.js';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../../dicom/transfer-syntax.js';
import { SopClasses } from '../../dicom/uids.js';
import type { CEchoRq, CEchoRsp } from '../messages.js';
import { ScuError, ScuSession, sessionOptions, type ScuTarget } from './session.js';

/** Sends one C-ECHO-RQ on an open session; resolves with the response's status. */
export async function cEcho(session: ScuSession): Promise<number> {
  const context = session.findContext(SopClasses.Verification);
  if (!context) throw new ScuError('ERR_SCU_NOT_ACCEPTED', 'the peer did not accept the Verification SOP Class (1.2.840.10008.1.1)');
  const rq: CEchoRq = { type: 'C-ECHO-RQ', MessageID: session.nextMessageId(), AffectedSOPClassUID: SopClasses.Verification };
  const { message } = await session.request(context.id, rq);
  return (message as CEchoRsp).Status;
}

/**
 * Opens an association proposing the Verification SOP Class, sends a C-ECHO-RQ, releases, and resolves with the
 * status of the C-ECHO-RSP (0x0000 Success). Rejects with `AssociationError` (could not associate) or `ScuError`.
 *
 * ```ts
 * const status = await echo({ host: '127.0.0.1', port: 4242, callingAet: 'PACSNODE', calledAet: 'ORTHANC' });
 * ```
 */
export async function echo(target: ScuTarget): Promise<number> {
  const association = await openAssociation({
    ...target,
    presentationContexts: [{ abstractSyntax: SopClasses.Verification, transferSyntaxes: [ExplicitVRLittleEndian, ImplicitVRLittleEndian] }],
  });
  const session = new ScuSession(association, sessionOptions(target));
  try {
    const status = await cEcho(session);
    await session.release();
    return status;
  } catch (e) {
    session.abort();
    throw e;
  }
}
