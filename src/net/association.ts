/**
 * One DICOM association over one TCP connection (PS3.8 §9.1.1): the socket, the framer, the PDU codec and the
 * PS3.8 state machine (`fsm.ts`) as the only source of truth about what may happen next. The association is the
 * Upper Layer service provider; its user (the DIMSE layer) sees typed events and calls `accept`, `reject`,
 * `sendPData`, `release`, `releaseResponse` and `abort`.
 *
 * Acceptor role (Sta1 -> Evt5 -> Sta2 -> Evt6 -> Sta3 -> Evt7 -> Sta6 -> ... -> Sta13 -> Sta1): `new
 * Association(socket, options)` for a connection the server accepted.
 *
 * Requestor role (Sta1 -> Evt1 -> Sta4 -> Evt2 -> Sta5 -> Evt3 -> Sta6 -> Evt11 -> Sta7 -> Evt13 -> Sta1):
 * `Association.request(options)` opens the transport through a {@link RequestorTransport} (plain TCP in
 * `connect.ts`; TLS plugs in there), sends the A-ASSOCIATE-RQ and resolves once the A-ASSOCIATE-AC arrives, or
 * rejects with an {@link AssociationError} naming the cause (A-ASSOCIATE-RJ result/source/reason, abort, timeout,
 * connection failure).
 *
 * Timers: ARTIM (PS3.8 §9.1.5) in Sta2 and Sta13; an activity timer on established associations; and, for the
 * requestor, a connect timer (Sta4) and a response timer for the A-ASSOCIATE-AC/RJ (Sta5) and the A-RELEASE-RP
 * (Sta7), which PS3.8 leaves to the implementation (DCMTK's ACSE timeout). Their expiry is an A-ABORT (Evt15), and
 * the pending `request` or `release` is rejected at once (the transport closes behind, within ARTIM).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { logger } from '../core/log.js';
import { StateMachine, type EventName, type FsmHost, type Transition } from './fsm.js';
import { acceptedByPeer, type AcceptedContext } from './negotiation.js';
import { decodePdu, encodePDataTfParts, encodePdu, isPduError } from './pdu/codec.js';
import { PduFramer } from './pdu/framer.js';
import {
  ABORT_REASONS,
  ASSOCIATE_RJ_REASONS,
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

/**
 * How a requestor reaches its peer: THE TLS SEAM. `connect.ts` gives plain TCP; a TLS transport returns a
 * `tls.TLSSocket` and calls `ready` on 'secureConnect' instead of 'connect'. Nothing else changes.
 */
export interface RequestorTransport {
  /**
   * Issues the TRANSPORT CONNECT request (AE-1) and returns the socket at once; calls `ready` when bytes may flow
   * (Evt2). A failure is reported by the socket's 'error' and 'close' events.
   */
  open(ready: () => void): Socket;
  /** `host:port`, for messages. */
  readonly description: string;
}

export interface RequestorOptions extends AssociationOptions {
  transport: RequestorTransport;
  /** The A-ASSOCIATE-RQ to send; its Maximum Length should be `maxPduLength`. */
  request: AAssociateRq;
  /** Sta4: the transport connection must be open within this (0 = the operating system's own limit). */
  connectTimeoutMs: number;
  /** Sta5 and Sta7: the A-ASSOCIATE-AC/RJ, and the A-RELEASE-RP, must arrive within this (0 = wait forever). */
  responseTimeoutMs: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors (STYLE.md habit 8: branch on `code`)

export const ASSOCIATION_ERROR_CODES = {
  /** The transport connection could not be opened (refused, unreachable, unknown host). */
  ERR_ASSOC_CONNECT: 'Cannot connect',
  /** The transport connection did not open within the connect timeout. */
  ERR_ASSOC_CONNECT_TIMEOUT: 'Connect timeout',
  /** No A-ASSOCIATE-AC/RJ (or A-RELEASE-RP) within the response timeout: the association was aborted. */
  ERR_ASSOC_TIMEOUT: 'Association timeout',
  /** The peer answered with an A-ASSOCIATE-RJ: see `AssociationRejectedError`. */
  ERR_ASSOC_REJECTED: 'Association rejected',
  /** An A-ABORT (from either side's user or provider), or an A-P-ABORT after a protocol error. */
  ERR_ASSOC_ABORTED: 'Association aborted',
  /** The transport connection closed without a release or an abort. */
  ERR_ASSOC_CLOSED: 'Connection closed',
  /** A primitive issued in a state where it cannot be (e.g. a release before the association is established). */
  ERR_ASSOC_STATE: 'Invalid association state',
} as const;

export type AssociationErrorCode = keyof typeof ASSOCIATION_ERROR_CODES;

/** Why an association could not be established or ended abnormally. */
export class AssociationError extends Error {
  readonly code: AssociationErrorCode;

  constructor(code: AssociationErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AssociationError';
    this.code = code;
  }
}

const RJ_SOURCES: Record<number, string> = {
  1: 'the called application (service user)',
  2: "the peer's UL provider (ACSE)",
  3: "the peer's UL provider (presentation)",
};

/** `calling-AE-title-not-recognized` -> `calling AE title not recognized`. */
function spell(name: string): string {
  return name.replace(/-/g, ' ').replace(/\bPDU\b/g, 'PDU');
}

/** The readable reason of an A-ASSOCIATE-RJ (PS3.8 Table 9-21). */
export function describeRejection(rj: Pick<AAssociateRj, 'result' | 'source' | 'reason'>): string {
  const reasons = (ASSOCIATE_RJ_REASONS as Record<number, Record<string, number>>)[rj.source] ?? {};
  const name = Object.entries(reasons).find(([, code]) => code === rj.reason)?.[0];
  const why = name ? spell(name) : `reason ${rj.reason}`;
  const kind = rj.result === 1 ? 'permanent' : rj.result === 2 ? 'transient' : `result ${rj.result}`;
  return `association rejected (${kind}) by ${RJ_SOURCES[rj.source] ?? `source ${rj.source}`}: ${why}`;
}

/** The peer refused the association: `result` 1 permanent / 2 transient, `source` and `reason` of PS3.8 Table 9-21. */
export class AssociationRejectedError extends AssociationError {
  readonly result: number;
  readonly source: number;
  readonly reason: number;

  constructor(rj: Pick<AAssociateRj, 'result' | 'source' | 'reason'>) {
    super('ERR_ASSOC_REJECTED', describeRejection(rj));
    this.name = 'AssociationRejectedError';
    this.result = rj.result;
    this.source = rj.source;
    this.reason = rj.reason;
  }
}

/** Who ended the association with an abort. */
export type AbortOrigin = 'peer-user' | 'peer-provider' | 'local-user' | 'local-provider';

/** The association was aborted: by the peer (A-ABORT PDU, source and reason as received) or locally. */
export class AssociationAbortedError extends AssociationError {
  readonly origin: AbortOrigin;
  /** The A-ABORT reason (PS3.8 Table 9-26) when the peer's provider sent it. */
  readonly reason: number | undefined;

  constructor(origin: AbortOrigin, message: string, reason?: number) {
    super('ERR_ASSOC_ABORTED', message);
    this.name = 'AssociationAbortedError';
    this.origin = origin;
    this.reason = reason;
  }
}

function describeAbortReason(reason: number): string {
  const name = Object.entries(ABORT_REASONS).find(([, code]) => code === reason)?.[0];
  return name ? spell(name) : `reason ${reason}`;
}

export function isAssociationError(e: unknown): e is AssociationError {
  return e instanceof AssociationError;
}

// ---------------------------------------------------------------------------------------------------------------

/** What the state machine's effects receive. */
type Payload =
  | { kind: 'pdu'; pdu: Pdu }
  | { kind: 'send'; pdu: Pdu }
  | { kind: 'pdata'; pdvs: Pdv[] }
  | { kind: 'abort'; reason: number }
  | { kind: 'error'; error: Error };

/** How an association ended. */
export interface AssociationEnd {
  /** For logs. */
  reason: string;
  aborted: boolean;
  /** Why it ended abnormally (undefined after a release, or a normal end on the acceptor side). */
  error?: AssociationError;
}

export interface AssociationEvents {
  /** The A-ASSOCIATE-RQ passed the provider's checks: answer with `accept()` or `reject()`. */
  'associate-request': [AAssociateRq];
  /** Sta6 reached. */
  established: [];
  /** A P-DATA-TF arrived (its PDVs are views into the received bytes: copy what must outlive the event). */
  pdata: [PDataTf];
  /** The peer asked to release: finish what is under way, then call `releaseResponse()`. */
  'release-request': [];
  /** The association ended (released, aborted or the connection was lost). */
  closed: [AssociationEnd];
  /** Every transition of the state machine (for tests and metrics: STYLE.md habit 10). */
  transition: [{ from: string; event: EventName; action: string; to: string }];
}

let nextId = 1;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class Association extends EventEmitter<AssociationEvents> {
  readonly id = nextId++;
  readonly role: 'acceptor' | 'requestor';
  /** The peer's address, once connected. */
  remoteAddress: string;
  /** The A-ASSOCIATE-RQ: received (acceptor) or sent (requestor). */
  request: AAssociateRq | undefined;
  /** Requestor: the A-ASSOCIATE-AC received. */
  acceptance: AAssociateAc | undefined;
  /** Requestor: the presentation contexts the peer accepted (PS3.8 §9.3.3.2), by ID, once established. */
  acceptedContexts: ReadonlyMap<number, AcceptedContext> = new Map();
  /** Requestor: the peer's Maximum Length (PS3.8 D.1; 0 = unlimited), once established. */
  peerMaxPduLength = 0;
  private readonly options: AssociationOptions | RequestorOptions;
  private readonly fsm: StateMachine<Payload>;
  private readonly framer: PduFramer;
  private readonly queue: Array<[EventName, Payload | undefined]> = [];
  private socket!: Socket;
  private dispatching = false;
  private artim: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  /** Requests being handled for the peer (see `busy`). */
  private busyCount = 0;
  /** Requestor timers: connect (Sta4), A-ASSOCIATE response (Sta5), A-RELEASE-RP (Sta7). */
  private stageTimer: NodeJS.Timeout | undefined;
  private ended = false;
  private closeReason = 'connection closed';
  private aborted = false;
  private socketError: Error | undefined;
  /** The first cause of an abnormal end. */
  private failure: AssociationError | undefined;
  private readonly establishment = deferred<Association>();
  private releasing: Deferred<void> | undefined;
  private releaseConfirmed = false;
  /** The association was released (either way): how the transport closes afterwards does not matter. */
  private released = false;
  private readonly end = deferred<AssociationEnd>();

  /** Acceptor role: a transport connection the server accepted (Evt5 at once). */
  constructor(socket: Socket, options: AssociationOptions);
  /** Requestor role: use {@link Association.request}. */
  constructor(socket: undefined, options: RequestorOptions);
  constructor(socket: Socket | undefined, options: AssociationOptions | RequestorOptions) {
    super();
    this.options = options;
    this.role = socket ? 'acceptor' : 'requestor';
    this.remoteAddress = socket?.remoteAddress ?? '';
    // A Maximum Length of 0 means no maximum (PS3.8 D.1).
    this.framer = new PduFramer({ maxPduLength: options.maxPduLength > 0 ? options.maxPduLength : 0xffffffff });
    // Nobody has to listen: these promises are for whoever asks.
    this.establishment.promise.catch(() => undefined);
    const host: FsmHost<Payload> = {
      issueTransportConnect: () => this.openTransport(),
      issueTransportResponse: () => undefined, // the TCP connection is already accepted by the server
      closeTransport: (_p, t) => this.closeTransport(t),
      startArtim: () => this.startArtim(),
      stopArtim: () => this.stopArtim(),
      sendAssociateRq: (p) => {
        this.write(p);
        this.startStageTimer((this.options as RequestorOptions).responseTimeoutMs, 'ERR_ASSOC_TIMEOUT', 'no A-ASSOCIATE-AC or -RJ');
      },
      sendAssociateAc: (p) => this.write(p),
      sendAssociateRj: (p) =>
        this.writePdu(p?.kind === 'send' ? p.pdu : providerRejection((p as { pdu: AAssociateRq }).pdu)),
      sendPData: (p) => this.writePData(p),
      sendReleaseRq: () => this.writePdu({ type: 'A-RELEASE-RQ' }),
      sendReleaseRp: () => {
        this.released = true;
        this.closeReason = 'released';
        this.writePdu({ type: 'A-RELEASE-RP' });
      },
      sendAbortServiceUser: (p) => this.writePdu({ type: 'A-ABORT', source: 0, reason: abortReason(p) }),
      sendAbortServiceProvider: (p, t) =>
        this.writePdu({ type: 'A-ABORT', source: 2, reason: p?.kind === 'abort' ? p.reason : providerAbortReason(t) }),
      issueAssociateIndication: (p) => {
        this.request = (p as { pdu: AAssociateRq }).pdu;
        this.defer(() => this.emit('associate-request', this.request!));
      },
      issueAssociateConfirmAccept: (p) => this.onAccepted((p as { pdu: AAssociateAc }).pdu),
      issueAssociateConfirmReject: (p) => {
        this.stopStageTimer();
        const rj = (p as { pdu: AAssociateRj }).pdu;
        this.fail(new AssociationRejectedError(rj));
        this.closeReason = describeRejection(rj);
      },
      issuePDataIndication: (p) => {
        const pdu = (p as { pdu: PDataTf }).pdu;
        this.emit('pdata', pdu);
      },
      issueReleaseIndication: (_p, t) => {
        if (t.from === 'Sta7') {
          // Release collision (PS3.8 §9.2.4 note): we asked for the release ourselves, so we agree at once. The
          // requestor answers now (Sta9 -> AR-9); the acceptor after the peer's A-RELEASE-RP (Sta12, AR-10).
          if (t.to === 'Sta9') this.dispatch('Evt14');
          return;
        }
        this.defer(() => this.emit('release-request'));
      },
      issueReleaseConfirm: (_p, t) => {
        this.stopStageTimer();
        this.releaseConfirmed = true;
        this.released = true;
        this.closeReason = 'released';
        if (t.to === 'Sta12') this.dispatch('Evt14'); // release collision, acceptor side: now answer
      },
      issueAbortIndication: () => {
        this.fail(new AssociationAbortedError('peer-user', 'association aborted by the peer'));
        this.noteEnd('aborted by the peer', true);
      },
      issuePAbortIndication: (p, t) => {
        this.fail(this.providerAbortError(p, t));
        this.noteEnd(p?.kind === 'error' ? `provider abort: ${p.error.message}` : this.failure?.message ?? 'provider abort', true);
      },
      isAssociateRqAcceptable: (p) => isAcceptableRq((p as { pdu: AAssociateRq }).pdu),
      isRequestor: () => this.role === 'requestor',
      isAbortFromServiceUser: (p) => (p as { pdu: AAbort }).pdu.source === 0,
      onTransition: (from, event, action, to) => {
        log.debug(`${this.tag()} ${from} --${event}/${action}--> ${to}`);
        if (this.listenerCount('transition') > 0) this.emit('transition', { from, event, action, to });
      },
    };
    this.fsm = new StateMachine(host);
    if (socket) {
      this.attach(socket);
      this.dispatch('Evt5'); // transport connection indication: Sta2, ARTIM started
      if (options.idleTimeoutMs > 0) this.touch();
    } else {
      this.request = (options as RequestorOptions).request;
    }
  }

  /**
   * Requestor role: opens the transport connection, sends the A-ASSOCIATE-RQ and resolves once the association is
   * established (Sta6; `acceptedContexts` and `peerMaxPduLength` are then set). Rejects with an `AssociationError`:
   * `AssociationRejectedError` for an A-ASSOCIATE-RJ, `AssociationAbortedError` for an A-ABORT, and codes
   * ERR_ASSOC_CONNECT, ERR_ASSOC_CONNECT_TIMEOUT, ERR_ASSOC_TIMEOUT, ERR_ASSOC_CLOSED for the others.
   */
  static request(options: RequestorOptions): Promise<Association> {
    const association = new Association(undefined, options);
    try {
      association.dispatch('Evt1', { kind: 'send', pdu: options.request }); // AE-1: Sta4
    } catch (cause) {
      const error = new AssociationError('ERR_ASSOC_CONNECT', `cannot connect to ${options.transport.description}: ${(cause as Error).message}`, { cause });
      return Promise.reject(error);
    }
    return association.establishment.promise;
  }

  get state(): string {
    return this.fsm.state;
  }

  /** `CALLING->CALLED#id` for logs. */
  tag(): string {
    return this.request ? `${this.request.callingAeTitle}->${this.request.calledAeTitle}#${this.id}` : `#${this.id}`;
  }

  /** Resolves once the association has ended, whatever the way (never rejects). */
  whenClosed(): Promise<AssociationEnd> {
    return this.end.promise;
  }

  // ------------------------------------------------------------------ user primitives

  accept(ac: AAssociateAc): void {
    this.dispatch('Evt7', { kind: 'send', pdu: ac });
    this.defer(() => this.emit('established'));
  }

  reject(rj: AAssociateRj): void {
    this.dispatch('Evt8', { kind: 'send', pdu: rj });
  }

  /**
   * The P-DATA sent from now until the next tick go out in one socket write: a message's command and its data set
   * (each a separate write otherwise, and each write wakes the peer). Back-pressure still works: the socket is
   * uncorked on the next tick whatever the sender awaits.
   */
  coalesceWrites(): void {
    if (this.socket.destroyed) return;
    this.socket.cork();
    process.nextTick(() => this.socket.uncork());
  }

  /**
   * Sends PDVs in one P-DATA-TF. Resolves when the socket can take more (back-pressure for the sender): once less
   * than SEND_BUFFERED bytes wait in it. (Waiting for 'drain' past the socket's 16 KB mark split every instance of
   * a C-STORE into one write per PDU, an event-loop turn apart: 0.3-0.5 ms per instance sent.)
   */
  sendPData(pdvs: Pdv[]): Promise<void> {
    this.dispatch('Evt9', { kind: 'pdata', pdvs });
    if (this.socket.writableLength > SEND_BUFFERED) {
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

  /**
   * A-RELEASE request (Evt11, AR-1): resolves once the peer confirmed the release and the connection is closed.
   * A release collision (the peer's A-RELEASE-RQ crossing ours) is answered as PS3.8 §9.2 prescribes. Rejects with
   * an `AssociationError` when the association is not established, or ends by an abort or a timeout instead.
   */
  release(): Promise<void> {
    if (this.releasing) return this.releasing.promise;
    if (this.fsm.state !== 'Sta6') {
      return Promise.reject(new AssociationError('ERR_ASSOC_STATE', `cannot release in ${this.fsm.state}: the association is not established`));
    }
    this.releasing = deferred<void>();
    const timeout = this.role === 'requestor' ? (this.options as RequestorOptions).responseTimeoutMs : this.options.artimTimeoutMs;
    this.dispatch('Evt11');
    this.startStageTimer(timeout, 'ERR_ASSOC_TIMEOUT', 'no A-RELEASE-RP');
    return this.releasing.promise;
  }

  /** The answer to a 'release-request'. */
  releaseResponse(): void {
    this.dispatch('Evt14');
  }

  /** A-ABORT from the local user. */
  abort(reason = 0): void {
    if (this.ended || this.fsm.state === 'Sta1') return;
    this.fail(new AssociationAbortedError('local-user', 'association aborted by the local user'));
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

  /**
   * Whether P-DATA may still be sent: established, or the peer asked for the release and this side has not
   * answered yet (Sta8, AR-7: the responses to requests received before the A-RELEASE-RQ still go out).
   */
  get canSendPData(): boolean {
    return this.fsm.state === 'Sta6' || this.fsm.state === 'Sta8';
  }

  /**
   * Work under way for the peer (a request being handled): while the count is above zero, the activity timeout
   * does not end the association (the peer is waiting for us, not idle). Each `busy(1)` needs its `busy(-1)`.
   */
  busy(delta: 1 | -1): void {
    this.busyCount += delta;
    if (this.busyCount === 0) this.touch();
  }

  /** The first cause of an abnormal end, once there is one. */
  get error(): AssociationError | undefined {
    return this.failure;
  }

  // ------------------------------------------------------------------ transport

  private attach(socket: Socket): void {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => {
      this.socketError ??= error;
      this.closeReason = `socket error: ${error.message}`;
    });
    socket.on('close', () => this.onSocketClosed());
  }

  /** AE-1: the requestor's TRANSPORT CONNECT request. */
  private openTransport(): void {
    const options = this.options as RequestorOptions;
    this.attach(options.transport.open(() => this.onTransportReady()));
    this.startStageTimer(options.connectTimeoutMs, 'ERR_ASSOC_CONNECT_TIMEOUT', 'the connection did not open');
  }

  /** Evt2: the transport connection is open. */
  private onTransportReady(): void {
    this.stopStageTimer();
    this.remoteAddress = this.socket.remoteAddress ?? '';
    this.dispatch('Evt2', { kind: 'send', pdu: this.request! });
  }

  /** AE-3: the peer accepted. */
  private onAccepted(ac: AAssociateAc): void {
    this.stopStageTimer();
    this.acceptance = ac;
    this.acceptedContexts = acceptedByPeer(this.request!, ac);
    this.peerMaxPduLength = ac.userInformation.maxPduLength ?? 0;
    if (this.options.idleTimeoutMs > 0) this.touch();
    this.establishment.resolve(this);
    this.defer(() => this.emit('established'));
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
    this.fail(new AssociationAbortedError('local-provider', `association aborted: invalid PDU received: ${error.message}`));
    this.dispatch('Evt19', { kind: 'abort', reason: reason ?? ABORT_REASONS['unrecognized-PDU'] });
  }

  private onSocketClosed(): void {
    this.stopArtim();
    this.stopStageTimer();
    if (this.idle) clearTimeout(this.idle);
    if (this.fsm.state !== 'Sta1') this.dispatch('Evt17', { kind: 'error', error: this.socketError ?? new Error(this.closeReason) });
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
      this.queue.length = 0;
    }
  }

  private defer(fn: () => void): void {
    queueMicrotask(fn);
  }

  /** Keeps the first cause of an abnormal end. */
  private fail(error: AssociationError): void {
    this.failure ??= error;
  }

  /** The cause behind an A-P-ABORT indication (AA-3 with a provider source, AA-4, AA-8). */
  private providerAbortError(p: Payload | undefined, t: Transition): AssociationError {
    if (p?.kind === 'pdu' && p.pdu.type === 'A-ABORT') {
      return new AssociationAbortedError(
        'peer-provider',
        `association aborted by the peer's UL provider: ${describeAbortReason(p.pdu.reason)}`,
        p.pdu.reason,
      );
    }
    if (p?.kind === 'error') {
      const where = this.role === 'requestor' ? (this.options as RequestorOptions).transport.description : this.remoteAddress;
      if (t.from === 'Sta4') {
        return new AssociationError('ERR_ASSOC_CONNECT', `cannot connect to ${where}: ${p.error.message}`, { cause: p.error });
      }
      return new AssociationError('ERR_ASSOC_CLOSED', `the connection to ${where} closed without a release or an abort (${p.error.message})`, {
        cause: p.error,
      });
    }
    if (p?.kind === 'pdu') {
      return new AssociationAbortedError('local-provider', `association aborted: unexpected ${p.pdu.type} in ${t.from}`);
    }
    return new AssociationAbortedError('local-provider', 'association aborted by the local UL provider');
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
    // A small PDU (a DIMSE response, a command) goes in one write of one buffer: cheaper than a corked writev.
    let size = 0;
    for (const part of parts) size += part.length;
    if (size <= SMALL_PDU) {
      this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size));
      return;
    }
    this.socket.cork();
    for (const part of parts) this.socket.write(part);
    process.nextTick(() => this.socket.uncork());
  }

  private closeTransport(t: Transition): void {
    this.stopArtim();
    this.stopStageTimer();
    if (t.from === 'Sta4' || this.socket.connecting || t.event === 'Evt18') {
      // The connection is not open yet, or ARTIM expired: the peer had its time to close, it is cut at once.
      this.socket.destroy();
      return;
    }
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

  /** A requestor's wait for the transport or for the peer's answer; on expiry, the association is aborted (Evt15). */
  private startStageTimer(ms: number, code: AssociationErrorCode, what: string): void {
    this.stopStageTimer();
    if (!(ms > 0)) return;
    this.stageTimer = setTimeout(() => {
      this.stageTimer = undefined;
      const where = this.role === 'requestor' ? (this.options as RequestorOptions).transport.description : this.remoteAddress;
      this.fail(new AssociationError(code, `${what} from ${where} within ${ms} ms`));
      const error = this.failure!;
      this.closeReason = error.message;
      log.warn(`${this.tag()} ${this.closeReason}: aborting`);
      this.dispatch('Evt15', { kind: 'abort', reason: 0 });
      // The caller is answered now: a silent peer does not hold it for ARTIM and the transport close too, which
      // go on behind (the A-ABORT is out; the socket is cut once ARTIM expires).
      this.establishment.reject(error);
      this.releasing?.reject(error);
    }, ms);
    this.stageTimer.unref();
  }

  private stopStageTimer(): void {
    if (this.stageTimer) clearTimeout(this.stageTimer);
    this.stageTimer = undefined;
  }

  /** Activity timer: any traffic, sent or received, restarts it. */
  private touch(): void {
    if (this.options.idleTimeoutMs <= 0 || this.ended) return;
    if (this.idle) this.idle.refresh();
    else {
      this.idle = setTimeout(() => {
        if (this.busyCount > 0) {
          // The peer waits for our answer: not an idle association. Checked again a period later.
          this.idle!.refresh();
          return;
        }
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
      this.stopStageTimer();
      const error = this.released ? undefined : (this.failure ?? (this.role === 'requestor' ? this.closedError() : undefined));
      const end: AssociationEnd = { reason: this.closeReason, aborted: this.aborted };
      if (error) end.error = error;
      this.establishment.reject(error ?? new AssociationError('ERR_ASSOC_CLOSED', 'the association ended before it was established'));
      if (this.releasing) {
        if (this.releaseConfirmed) this.releasing.resolve();
        else this.releasing.reject(error ?? this.closedError());
      }
      this.end.resolve(end);
      this.emit('closed', end);
    }
  }

  private closedError(): AssociationError {
    return new AssociationError('ERR_ASSOC_CLOSED', `the connection closed without a release or an abort (${this.closeReason})`);
  }
}

/** P-DATA-TF PDUs up to this size are copied into one buffer and written at once. */
const SMALL_PDU = 16 * 1024;
/** Bytes a sender may leave in the socket before `sendPData` waits for it to drain. */
const SEND_BUFFERED = 1 << 20;

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
