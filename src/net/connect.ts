/**
 * The requestor side of the Upper Layer: open an association to `{host, port, calledAet}` (PS3.8 §7.1, §9.2).
 * With `net/server.ts`, the only place that touches `node:net`. TLS (PS3.15 Annex B.1) is a transport away: `tls`
 * selects `net/tls.ts`'s transport, or pass any `transport` that returns a `tls.TLSSocket` and calls `ready` on
 * 'secureConnect'.
 */
import { connect as netConnect, isIP } from 'node:net';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../dicom/uids.js';
import { Association, AssociationError, type RequestorTransport } from './association.js';
import { encodePdu } from './pdu/codec.js';
import { tlsTransport, type DicomTls } from './tls.js';
import {
  DICOM_APPLICATION_CONTEXT,
  emptyUserInformation,
  type AAssociateRq,
  type AsyncOpsWindow,
  type PresentationContextRq,
  type RoleSelection,
  type UserIdentityRq,
} from './pdu/types.js';

/** One presentation context to propose; IDs are assigned 1, 3, 5... in order unless given. */
export interface ProposedContext {
  id?: number;
  abstractSyntax: string;
  /** In our order of preference. */
  transferSyntaxes: string[];
}

export interface AssociationTimeouts {
  /** TCP connection (and, later, TLS handshake): default 10 s. 0 = the operating system's limit. */
  connectMs?: number;
  /** Waiting for the A-ASSOCIATE-AC/RJ, and for the A-RELEASE-RP: default 30 s (DCMTK's ACSE timeout). 0 = forever. */
  responseMs?: number;
  /** ARTIM (PS3.8 §9.1.5): waiting for the peer to close after a release or an abort: default 10 s. */
  artimMs?: number;
  /** An established association without traffic for this long is aborted: default 0 (never). */
  idleMs?: number;
}

export interface OpenAssociationOptions {
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  presentationContexts: ProposedContext[];
  /** Our Maximum Length (PS3.8 D.1): the largest P-DATA-TF we accept. Default 16384 (DCMTK's and Orthanc's). */
  maxPduLength?: number;
  /** PS3.7 D.3.3.4 SCP/SCU Role Selection. */
  roleSelections?: RoleSelection[];
  /** PS3.7 D.3.3.7 User Identity. */
  userIdentity?: UserIdentityRq;
  /** PS3.7 D.3.3.3 Asynchronous Operations Window (not sent when absent: one operation at a time). */
  asyncOpsWindow?: AsyncOpsWindow;
  timeouts?: AssociationTimeouts;
  /** DICOM over TLS (`loadDicomTls(config, 'requestor')` in `net/tls.ts`); ignored when `transport` is given. */
  tls?: DicomTls;
  /** Replaces plain TCP (the TLS seam). */
  transport?: RequestorTransport;
}

export const DEFAULT_MAX_PDU_LENGTH = 16384;
export const DEFAULT_TIMEOUTS: Required<AssociationTimeouts> = { connectMs: 10000, responseMs: 30000, artimMs: 10000, idleMs: 0 };

/** The plain TCP transport. */
export function tcpTransport(host: string, port: number): RequestorTransport {
  return {
    description: `${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
    open(ready) {
      const socket = netConnect({ host, port });
      socket.once('connect', ready);
      return socket;
    },
  };
}

/**
 * The A-ASSOCIATE-RQ for these options (PS3.8 §9.3.2): protocol version 1, the DICOM application context, our
 * implementation class UID and version name.
 */
export function buildAssociateRq(options: OpenAssociationOptions): AAssociateRq {
  let nextId = 1;
  const used = new Set<number>();
  const contexts: PresentationContextRq[] = options.presentationContexts.map((pc) => {
    let id = pc.id;
    if (id === undefined) {
      while (used.has(nextId)) nextId += 2;
      id = nextId;
    }
    if (!Number.isInteger(id) || id < 1 || id > 255 || id % 2 === 0 || used.has(id)) {
      throw new RangeError(`presentation context ID ${id} is not a free odd number 1..255 (at most 128 contexts)`);
    }
    used.add(id);
    return { id, abstractSyntax: pc.abstractSyntax, transferSyntaxes: [...pc.transferSyntaxes] };
  });
  if (contexts.length === 0) throw new RangeError('an A-ASSOCIATE-RQ proposes one or more presentation contexts');
  const userInformation = {
    ...emptyUserInformation(),
    maxPduLength: options.maxPduLength ?? DEFAULT_MAX_PDU_LENGTH,
    implementationClassUid: IMPLEMENTATION_CLASS_UID,
    implementationVersionName: IMPLEMENTATION_VERSION_NAME,
    roleSelections: options.roleSelections ?? [],
  };
  if (options.asyncOpsWindow) Object.assign(userInformation, { asyncOpsWindow: options.asyncOpsWindow });
  if (options.userIdentity) Object.assign(userInformation, { userIdentityRq: options.userIdentity });
  return {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAeTitle: options.calledAet,
    callingAeTitle: options.callingAet,
    applicationContextName: DICOM_APPLICATION_CONTEXT,
    presentationContexts: contexts,
    userInformation,
  };
}

/**
 * Opens an association and resolves once it is established: `association.acceptedContexts` holds the contexts
 * the peer accepted (with the transfer syntax chosen for each), `association.peerMaxPduLength` the peer's Maximum
 * Length. Rejects with an `AssociationError` (see `Association.request`); bad options are an ERR_ASSOC_CONNECT
 * naming the option, before any connection is attempted.
 *
 * ```ts
 * const association = await openAssociation({ host: '127.0.0.1', port: 4242, callingAet: 'ME', calledAet: 'ORTHANC',
 *   presentationContexts: [{ abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] }] });
 * await association.release();
 * ```
 */
export function openAssociation(options: OpenAssociationOptions): Promise<Association> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  let request: AAssociateRq;
  try {
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new RangeError(`port ${options.port} is not a TCP port (1..65535)`);
    }
    if (!options.host) throw new RangeError('no host');
    request = buildAssociateRq(options);
    encodePdu(request); // AE titles and UIDs the wire cannot carry fail here, before connecting
  } catch (cause) {
    return Promise.reject(new AssociationError('ERR_ASSOC_CONNECT', (cause as Error).message, { cause }));
  }
  return Association.request({
    transport:
      options.transport ?? (options.tls ? tlsTransport(options.host, options.port, options.tls) : tcpTransport(options.host, options.port)),
    request,
    maxPduLength: request.userInformation.maxPduLength!,
    artimTimeoutMs: timeouts.artimMs,
    idleTimeoutMs: timeouts.idleMs,
    connectTimeoutMs: timeouts.connectMs,
    responseTimeoutMs: timeouts.responseMs,
  });
}
