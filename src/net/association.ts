/**
 * One DICOM association over one TCP connection (PS3.8 §9.1.1): the socket, the framer, the PDU codec and the
 * PS3.8 state machine (`fsm.ts`) as the only source of truth about what may happen next. The association is the
 * Upper Layer service provider; its user (the DIMSE layer) sees typed events and calls `accept`, `reject`,
 * `sendPData`, `releaseResponse` and `abort`.
 *
 * Acceptor role (Sta1 -> Evt5 -> Sta2 -> Evt6 -> Sta3 -> Evt7 -> Sta6 -> ... -> Sta13 -> Sta1).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { logger } from '../core/log.js';
import { StateMachine, type EventName, type FsmHost, type Transition } from './fsm.js';
import { decodePdu, encodePDataTfParts, encodePdu, isPduError } from './pdu/codec.js';
import { PduFramer } from './pdu/framer.js';
import {
  ABORT_REASONS,
  type AAbort,
  type AAssociateAc,
  type AAssociateRj,
  type AAssociateRq,
  type PDataTf,
  type Pdu,
  type Pdv,
} from './pdu/types.js';

const log = logger('dicom');

export interface AssociationOptions {
  /** Our Maximum Length (PS3.8 D.1): the largest P-DATA-TF variable field we accept. */
  maxPduLength: number;
  /** ARTIM timer (PS3.8 §9.1.5): waiting for the A-ASSOCIATE-RQ, and for the peer to close after a release or abort. */
  artimTimeoutMs: number;
  /** No traffic in either direction for this long aborts an established association (0 = never). */
  idleTimeoutMs: number;
}

/** What the state machine's effects receive. */
type Payload =
  | { kind: 'pdu'; pdu: Pdu }
  | { kind: 'send'; pdu: Pdu }
  | { kind: 'pdata'; pdvs: Pdv[] }
  | { kind: 'abort'; reason: number }
  | { kind: 'error'; error: Error };

export interface AssociationEvents {
  /** The A-ASSOCIATE-RQ passed the provider's checks: answer with `accept()` or `reject()`. */
  'associate-request': [AAssociateRq];
  /** Sta6 reached. */
  established: [];
  /** A P-DATA-TF arrived (its PDVs are views into the received bytes: copy what must outlive the event). */
  pdata: [PDataTf];
  /** The peer asked to release: finish what is under way, then call `releaseResponse()`. */
  'release-request': [];
  /** The association ended (released, aborted or the connection was lost); `reason` for logs. */
  closed: [{ reason: string; aborted: boolean }];
}

let nextId = 1;

export class Association extends EventEmitter<AssociationEvents> {
  readonly id = nextId++;
  readonly remoteAddress: string;
  /** The request, once received. */
  request: AAssociateRq | undefined;
  private readonly fsm: StateMachine<Payload>;
  private readonly framer: PduFramer;
  private readonly queue: Array<[EventName, Payload | undefined]> = [];
  private dispatching = false;
  private artim: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  private ended = false;
  private closeReason = 'connection closed';
  private aborted = false;

  constructor(
    private readonly socket: Socket,
    private readonly options: AssociationOptions,
  ) {
    super();
    this.remoteAddress = socket.remoteAddress ?? '';
    socket.setNoDelay(true);
    this.framer = new PduFramer({ maxPduLength: options.maxPduLength });
    const host: FsmHost<Payload> = {
      issueTransportConnect: () => undefined, // requestor role only
      issueTransportResponse: () => undefined, // the TCP connection is already accepted by the server
      closeTransport: () => this.closeTransport(),
      startArtim: () => this.startArtim(),
      stopArtim: () => this.stopArtim(),
      sendAssociateRq: (p) => this.write(p),
      sendAssociateAc: (p) => this.write(p),
      sendAssociateRj: (p) =>
        this.writePdu(p?.kind === 'send' ? p.pdu : providerRejection((p as { pdu: AAssociateRq }).pdu)),
      sendPData: (p) => this.writePData(p),
      sendReleaseRq: () => this.writePdu({ type: 'A-RELEASE-RQ' }),
      sendReleaseRp: () => this.writePdu({ type: 'A-RELEASE-RP' }),
      sendAbortServiceUser: (p) => this.writePdu({ type: 'A-ABORT', source: 0, reason: abortReason(p) }),
      sendAbortServiceProvider: (p, t) =>
        this.writePdu({ type: 'A-ABORT', source: 2, reason: p?.kind === 'abort' ? p.reason : providerAbortReason(t) }),
      issueAssociateIndication: (p) => {
        this.request = (p as { pdu: AAssociateRq }).pdu;
        this.defer(() => this.emit('associate-request', this.request!));
      },
      issueAssociateConfirmAccept: () => undefined,
      issueAssociateConfirmReject: () => undefined,
      issuePDataIndication: (p) => {
        const pdu = (p as { pdu: PDataTf }).pdu;
        this.emit('pdata', pdu);
      },
      issueReleaseIndication: () => this.defer(() => this.emit('release-request')),
      issueReleaseConfirm: () => undefined,
      issueAbortIndication: () => this.noteEnd('aborted by the peer', true),
      issuePAbortIndication: (p) =>
        this.noteEnd(p?.kind === 'error' ? `provider abort: ${p.error.message}` : 'provider abort', true),
      isAssociateRqAcceptable: (p) => isAcceptableRq((p as { pdu: AAssociateRq }).pdu),
      isRequestor: () => false,
      isAbortFromServiceUser: (p) => (p as { pdu: AAbort }).pdu.source === 0,
      onTransition: (from, event, action, to) => log.debug(`${this.tag()} ${from} --${event}/${action}--> ${to}`),
    };
    this.fsm = new StateMachine(host);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => {
      this.closeReason = `socket error: ${error.message}`;
    });
    socket.on('close', () => this.onSocketClosed());
    this.dispatch('Evt5'); // transport connection indication: Sta2, ARTIM started
    if (options.idleTimeoutMs > 0) this.touch();
  }

  get state(): string {
    return this.fsm.state;
  }

  /** `CALLING->CALLED#id` for logs. */
  tag(): string {
    return this.request ? `${this.request.callingAeTitle}->${this.request.calledAeTitle}#${this.id}` : `#${this.id}`;
  }

  // ------------------------------------------------------------------ user primitives

  accept(ac: AAssociateAc): void {
    this.dispatch('Evt7', { kind: 'send', pdu: ac });
    this.defer(() => this.emit('established'));
  }

  reject(rj: AAssociateRj): void {
    this.dispatch('Evt8', { kind: 'send', pdu: rj });
  }

  /** Sends PDVs in one P-DATA-TF. Resolves when the socket can take more (back-pressure for the sender). */
  sendPData(pdvs: Pdv[]): Promise<void> {
    this.dispatch('Evt9', { kind: 'pdata', pdvs });
    if (this.socket.writableNeedDrain) {
      return new Promise((resolve) => {
        const done = () => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          resolve();
        };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
    }
    return Promise.resolve();
  }

  /** The answer to a 'release-request'. */
  releaseResponse(): void {
    this.dispatch('Evt14');
  }

  /** A-ABORT from the local user. */
  abort(reason = 0): void {
    if (this.ended || this.fsm.state === 'Sta1') return;
    this.dispatch('Evt15', { kind: 'abort', reason });
  }

  /** Stops reading from the socket (back-pressure from a slow consumer of P-DATA) or starts again. */
  pauseReading(paused: boolean): void {
    if (paused) this.socket.pause();
    else this.socket.resume();
  }

  get isEstablished(): boolean {
    return this.fsm.state === 'Sta6';
  }

  // ------------------------------------------------------------------ input

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.touch();
    let pdus: Buffer[];
    try {
      pdus = this.framer.push(chunk);
    } catch (e) {
      this.invalidPdu(e as Error);
      return;
    }
    for (const bytes of pdus) {
      let pdu: Pdu;
      try {
        pdu = decodePdu(bytes);
      } catch (e) {
        this.invalidPdu(e as Error);
        return;
      }
      this.dispatch(EVENT_OF_PDU[pdu.type], { kind: 'pdu', pdu });
      if (this.ended) return;
    }
  }

  /** Evt19: an unrecognized or invalid PDU; the machine answers with an A-ABORT (AA-1, AA-8) or closes. */
  private invalidPdu(error: Error): void {
    log.warn(`${this.tag()} invalid PDU: ${error.message}`);
    const reason = isPduError(error) ? error.abortReason : ABORT_REASONS['unrecognized-PDU'];
    this.closeReason = `invalid PDU: ${error.message}`;
    this.dispatch('Evt19', { kind: 'abort', reason: reason ?? ABORT_REASONS['unrecognized-PDU'] });
  }

  private onSocketClosed(): void {
    this.stopArtim();
    if (this.idle) clearTimeout(this.idle);
    if (this.fsm.state !== 'Sta1') this.dispatch('Evt17', { kind: 'error', error: new Error(this.closeReason) });
    this.noteEnd(this.closeReason, this.aborted);
  }

  // ------------------------------------------------------------------ the machine

  /** Runs events one at a time: effects never re-enter the machine (events they cause are queued). */
  private dispatch(event: EventName, payload?: Payload): void {
    this.queue.push([event, payload]);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      while (this.queue.length > 0) {
        const [e, p] = this.queue.shift()!;
        if (!this.fsm.accepts(e)) {
          // A local primitive in the wrong state (e.g. sending after an abort): nothing to do on the wire.
          if (e === 'Evt5' || e === 'Evt17' || e === 'Evt18') continue;
          log.debug(`${this.tag()} ${e} ignored in ${this.fsm.state}`);
          continue;
        }
        this.fsm.handle(e, p);
      }
    } finally {
      this.dispatching = false;
    }
  }

  private defer(fn: () => void): void {
    queueMicrotask(fn);
  }

  // ------------------------------------------------------------------ effects

  private write(payload: Payload | undefined): void {
    if (payload && (payload.kind === 'send' || payload.kind === 'pdu')) this.writePdu(payload.pdu);
  }

  private writePdu(pdu: Pdu): void {
    if (this.socket.destroyed) return;
    this.touch();
    if (pdu.type === 'A-ABORT') this.aborted = true;
    this.socket.write(encodePdu(pdu));
  }

  private writePData(payload: Payload | undefined): void {
    if (!payload || payload.kind !== 'pdata' || this.socket.destroyed) return;
    this.touch();
    const parts = encodePDataTfParts(payload.pdvs);
    this.socket.cork();
    for (const part of parts) this.socket.write(part);
    process.nextTick(() => this.socket.uncork());
  }

  private closeTransport(): void {
    this.stopArtim();
    if (!this.socket.destroyed) this.socket.end();
    // A peer that does not close its side within ARTIM is cut.
    setTimeout(() => this.socket.destroy(), this.options.artimTimeoutMs).unref();
  }

  private startArtim(): void {
    this.stopArtim();
    this.artim = setTimeout(() => {
      this.artim = undefined;
      this.closeReason = 'ARTIM timer expired';
      this.dispatch('Evt18');
    }, this.options.artimTimeoutMs);
    this.artim.unref();
  }

  private stopArtim(): void {
    if (this.artim) clearTimeout(this.artim);
    this.artim = undefined;
  }

  /** Activity timer: any traffic, sent or received, restarts it. */
  private touch(): void {
    if (this.options.idleTimeoutMs <= 0 || this.ended) return;
    if (this.idle) this.idle.refresh();
    else {
      this.idle = setTimeout(() => {
        log.warn(`${this.tag()} no activity for ${this.options.idleTimeoutMs} ms: aborting`);
        this.closeReason = 'activity timeout';
        if (this.fsm.state === 'Sta6') this.abort(0);
        else this.socket.destroy();
      }, this.options.idleTimeoutMs);
      this.idle.unref();
    }
  }

  private noteEnd(reason: string, aborted: boolean): void {
    if (this.ended) return;
    if (reason) this.closeReason = reason;
    this.aborted ||= aborted;
    if (!this.socket.destroyed && this.fsm.state === 'Sta1') this.socket.destroy();
    if (this.socket.destroyed || this.fsm.state === 'Sta1') {
      this.ended = true;
      if (this.idle) clearTimeout(this.idle);
      this.stopArtim();
      this.emit('closed', { reason: this.closeReason, aborted: this.aborted });
    }
  }
}

const EVENT_OF_PDU: Record<Pdu['type'], EventName> = {
  'A-ASSOCIATE-AC': 'Evt3',
  'A-ASSOCIATE-RJ': 'Evt4',
  'A-ASSOCIATE-RQ': 'Evt6',
  'P-DATA-TF': 'Evt10',
  'A-RELEASE-RQ': 'Evt12',
  'A-RELEASE-RP': 'Evt13',
  'A-ABORT': 'Evt16',
};

/** The provider's own checks of an A-ASSOCIATE-RQ (AE-6): protocol version 1 and the DICOM application context. */
function isAcceptableRq(rq: AAssociateRq): boolean {
  return (rq.protocolVersion & 1) === 1 && rq.applicationContextName === '1.2.840.10008.3.1.1.1';
}

/**
 * The A-ASSOCIATE-RJ the provider sends when AE-6 refuses (PS3.8 Table 9-21): a protocol version without bit 0 is
 * source 2 (ACSE provider) reason 2; any other application context is source 1 (service user) reason 2.
 */
function providerRejection(rq: AAssociateRq): Pdu {
  if ((rq.protocolVersion & 1) !== 1) return { type: 'A-ASSOCIATE-RJ', result: 1, source: 2, reason: 2 };
  return { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 2 };
}

function abortReason(payload: Payload | undefined): number {
  return payload?.kind === 'abort' ? payload.reason : 0;
}

/** A-ABORT reason for a provider abort: 2 unexpected PDU, unless the event carried one (invalid PDU). */
function providerAbortReason(t: Transition): number {
  return t.event === 'Evt19' ? ABORT_REASONS['unrecognized-PDU'] : ABORT_REASONS['unexpected-PDU'];
}
