/** Where an SCU goes when pacsnode talks to a declared modality (REST networking routes and their jobs). */
import type { ScuTarget } from '../dimse/scu/session.js';
import type { DicomTls } from '../net/tls.js';

/** Without a DIMSE timeout (0), connecting and negotiating still end: never wait forever for a host. */
const DEFAULT_CONNECT_MS = 10000;
const DEFAULT_RESPONSE_MS = 30000;
const DEFAULT_ARTIM_MS = 10000;

/** What an SCU needs to know of a remote node. */
export interface RemoteNode {
  aet: string;
  host: string;
  port: number;
  /** DICOM TLS with our `DicomTls*` credentials (the modality's `UseDicomTls`). */
  useDicomTls: boolean;
}

/**
 * The association options of an SCU towards a node. The DIMSE timeout (ms, 0 = none) also bounds the TCP
 * connection and the association negotiation, so that an unreachable host fails within it.
 */
export function scuTarget(node: RemoteNode, callingAet: string, timeoutMs: number, tls: () => DicomTls): ScuTarget {
  return {
    host: node.host,
    port: node.port,
    callingAet,
    calledAet: node.aet,
    tls: node.useDicomTls ? tls() : undefined,
    dimseTimeoutMs: timeoutMs,
    timeouts: {
      connectMs: timeoutMs > 0 ? timeoutMs : DEFAULT_CONNECT_MS,
      responseMs: timeoutMs > 0 ? timeoutMs : DEFAULT_RESPONSE_MS,
      // The caller is answered as soon as a timeout fires; after the A-ABORT, the socket waits ARTIM for the peer
      // to close, then is cut: bounded by the timeout too, so that a silent node's socket is gone soon after.
      artimMs: timeoutMs > 0 ? Math.min(timeoutMs, DEFAULT_ARTIM_MS) : DEFAULT_ARTIM_MS,
    },
  };
}
