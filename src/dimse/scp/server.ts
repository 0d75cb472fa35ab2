/**
 * The DICOM SCP server: accepts associations through `net/server.ts`, negotiates them with the application's
 * policy, then runs one `ScpSession` per association, which dispatches DIMSE requests to the handlers (the seam,
 * `dimse/handlers.ts`): C-ECHO and C-STORE so far.
 */
import { logger } from '../../core/log.js';
import { isStorageSopClass, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../dicom/uids.js';
import type { Association } from '../../net/association.js';
import { negotiateAsAcceptor, type AcceptorPolicy } from '../../net/negotiation.js';
import { DICOM_APPLICATION_CONTEXT, type AAssociateAc, type AAssociateRq } from '../../net/pdu/types.js';
import { UlServer } from '../../net/server.js';
import type { DicomTls } from '../../net/tls.js';
import type { AssociationInfo, DicomHandlers } from '../handlers.js';
import { echoScp } from './echo.js';
import { findScp } from './find.js';
import { getScp } from './get.js';
import { moveScp } from './move.js';
import { ScpSession, type ScpService } from './session.js';
import { storeScp } from './store.js';

const log = logger('dicom');

/** The SCP services, by Command Field of their request (PS3.7 Annex E). */
const SERVICES: ReadonlyMap<number, ScpService> = new Map([
  [0x0030, echoScp], // C-ECHO-RQ
  [0x0001, storeScp], // C-STORE-RQ
  [0x0020, findScp], // C-FIND-RQ
  [0x0010, getScp], // C-GET-RQ
  [0x0021, moveScp], // C-MOVE-RQ
]);


/** The smallest Maximum Length a requestor may announce: a PDV header (6 bytes) and one byte of data, rounded up. */
const MINIMUM_PEER_PDU = 8;

export interface ScpServerOptions {
  aet: string;
  /** Our Maximum Length (PS3.8 D.1) for received P-DATA (Orthanc's MaximumPduLength, default 16384). */
  maxPduLength: number;
  /** Orthanc's DicomScpTimeout, in ms: an established association without traffic for this long is aborted. */
  idleTimeoutMs: number;
  artimTimeoutMs?: number;
  /** At most this many simultaneous associations (0 = no cap); beyond, A-ASSOCIATE-RJ "local limit exceeded". */
  maxAssociations?: number;
  /** DICOM over TLS (`loadDicomTls(config, 'acceptor')`): the server then accepts only TLS connections. */
  tls?: DicomTls;
}

export class DicomScpServer {
  private readonly ul: UlServer;
  private readonly sessions = new Set<ScpSession>();

  constructor(
    private readonly handlers: DicomHandlers,
    private readonly options: ScpServerOptions,
  ) {
    this.ul = new UlServer({
      maxPduLength: options.maxPduLength,
      artimTimeoutMs: options.artimTimeoutMs ?? 30000,
      idleTimeoutMs: options.idleTimeoutMs,
      tls: options.tls,
      onAssociation: (association) => {
        association.once('associate-request', (rq) => this.onRequest(association, rq));
        association.on('closed', ({ reason, aborted }) =>
          log.verbose(`${association.tag()} association ${aborted ? 'aborted' : 'closed'}: ${reason}`),
        );
      },
    });
  }

  listen(port: number, host?: string): Promise<number> {
    return this.ul.listen(port, host);
  }

  /** Stops accepting; waits (up to `graceMs`) for the requests under way, then aborts what is left. */
  async close(graceMs = 5000): Promise<void> {
    await this.ul.close().catch(() => undefined);
    const deadline = Date.now() + graceMs;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await Promise.race([...this.sessions].map((s) => s.idle()));
      if ([...this.sessions].every((s) => s.isIdle)) break;
    }
    this.ul.abortAll();
  }

  private onRequest(association: Association, rq: AAssociateRq): void {
    const info: AssociationInfo = {
      id: association.id,
      callingAet: rq.callingAeTitle,
      calledAet: rq.calledAeTitle,
      remoteAddress: association.remoteAddress,
    };
    const cap = this.options.maxAssociations ?? 0;
    if (cap > 0 && this.sessions.size >= cap) {
      log.warn(`${association.tag()} refused: ${cap} associations already`);
      association.reject({ type: 'A-ASSOCIATE-RJ', result: 2, source: 3, reason: 2 });
      return;
    }
    // A Maximum Length below 8 leaves no room for a PDV carrying one byte: nothing could ever be answered.
    const peerMax = rq.userInformation.maxPduLength ?? 0;
    if (peerMax > 0 && peerMax < MINIMUM_PEER_PDU) {
      log.warn(`${association.tag()} refused: the requestor's Maximum Length ${peerMax} cannot carry a PDV`);
      association.reject({ type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 1 });
      return;
    }
    const verdict = this.handlers.policy.acceptAssociation(info);
    if (!verdict.accept) {
      log.info(`${association.tag()} refused by policy (reason ${verdict.reason})`);
      association.reject({ type: 'A-ASSOCIATE-RJ', result: verdict.result, source: verdict.source, reason: verdict.reason });
      return;
    }
    const policy: AcceptorPolicy = {
      // Whether the requestor proposed the SCP role for the class (a C-GET's storage sub-operations, PS3.7 D.3.3.4).
      transferSyntaxesFor: (abstractSyntax) =>
        this.handlers.policy.transferSyntaxesFor(abstractSyntax, info, {
          requestorIsScp: rq.userInformation.roleSelections.some((r) => r.sopClassUid === abstractSyntax && r.scpRole),
        }),
      preferRequestorOrder: (abstractSyntax) => isStorageSopClass(abstractSyntax),
      acceptRole: (selection) => ({ scuRole: selection.scuRole, scpRole: selection.scpRole }),
    };
    const negotiation = negotiateAsAcceptor(rq, policy);
    const ac: AAssociateAc = {
      type: 'A-ASSOCIATE-AC',
      protocolVersion: 1,
      calledAeTitle: rq.calledAeTitle,
      callingAeTitle: rq.callingAeTitle,
      applicationContextName: DICOM_APPLICATION_CONTEXT,
      presentationContexts: negotiation.contexts,
      userInformation: {
        maxPduLength: this.options.maxPduLength,
        implementationClassUid: IMPLEMENTATION_CLASS_UID,
        implementationVersionName: IMPLEMENTATION_VERSION_NAME,
        roleSelections: negotiation.roleReplies,
        extendedNegotiations: [],
        commonExtendedNegotiations: [],
        unknownItems: [],
      },
    };
    const session = new ScpSession(
      association,
      info,
      negotiation.accepted,
      rq.userInformation.maxPduLength ?? 0,
      this.handlers,
      SERVICES,
    );
    this.sessions.add(session);
    association.on('closed', () => this.sessions.delete(session));
    try {
      association.accept(ac);
    } catch (e) {
      // The answer cannot be encoded (a proposed value we would echo is not valid): refuse with an A-ABORT.
      log.warn(`${association.tag()} cannot answer the association request: ${(e as Error).message}; aborting`);
      this.sessions.delete(session);
      association.abort(0);
      return;
    }
    log.verbose(`${association.tag()} accepted from ${info.remoteAddress}: ${negotiation.accepted.size} context(s)`);
  }
}
