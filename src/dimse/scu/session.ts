/**
 * The requestor's side of DIMSE over one established association (PS3.7 §9, PS3.8 Annex E): sends requests (the
 * command, then the data set if any, fragmented to the peer's Maximum Length), reassembles what comes back with a
 * `MessageAssembler`, routes each response to its request by Message ID Being Responded To, hands pending
 * responses (C-FIND matches, C-MOVE progress) to the caller, and enforces a DIMSE timeout (Orthanc's
 * DicomScuTimeout) per request: no response, or no next pending response, within it aborts the association.
 *
 * Several requests may be outstanding when the peer agreed to an Asynchronous Operations Window (PS3.7 D.3.3.3);
 * their messages never interleave on the wire (PS3.8 Annex E: one message at a time).
 */
import { logger } from '../../core/log.js';
import { isAssociationError, type Association, type AssociationEnd } from '../../net/association.js';
import type { OpenAssociationOptions } from '../../net/connect.js';
import type { AcceptedContext } from '../../net/negotiation.js';
import { fragmentMessage, MessageAssembler, type AssembledMessage } from '../fragment.js';
import {
  encodeMessage,
  fromCommandSet,
  isRequestCommandField,
  type CCancelRq,
  type DimseCRequest,
  type DimseCResponse,
  type DimseMessage,
  type DimseNRequest,
  type DimseNResponse,
} from '../messages.js';
import { formatStatus, statusCategory } from '../status.js';

const log = logger('dicom');

export type ScuErrorCode =
  /** No response (or no next pending response) within the DIMSE timeout: the association was aborted. */
  | 'ERR_SCU_TIMEOUT'
  /** The association ended (released, aborted, connection lost) before the response came; `cause` says why. */
  | 'ERR_SCU_CLOSED'
  /** The peer accepted no presentation context for what was asked (SOP class, transfer syntax). */
  | 'ERR_SCU_NOT_ACCEPTED'
  /** The peer broke the DIMSE protocol (malformed command, PDVs out of sequence): the association was aborted. */
  | 'ERR_SCU_PROTOCOL';

/** Every error of the SCU layer besides the association's own (`AssociationError`). */
export class ScuError extends Error {
  readonly code: ScuErrorCode;

  constructor(code: ScuErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ScuError';
    this.code = code;
  }
}

export function isScuError(e: unknown): e is ScuError {
  return e instanceof ScuError;
}

/** A response, with its data set when one followed (a C-FIND match, say). */
export interface ScuResponse {
  contextId: number;
  message: DimseMessage;
  dataset?: Buffer;
}

export interface ScuRequestOptions {
  /** Receives each pending response (status FF00/FF01) before the final one. */
  onPending?: (response: ScuResponse) => void;
  /** Overrides the session's DIMSE timeout for this request. */
  timeoutMs?: number;
}

export interface ScuSessionOptions {
  /** DIMSE timeout in ms (Orthanc's DicomScuTimeout): waiting for a response or the next pending one. 0 = none. */
  timeoutMs?: number;
  /**
   * Requests the peer sends us on this association (the C-STORE sub-operations of a C-GET, PS3.4 C.4.3). Without
   * a handler, such a request aborts the association.
   */
  onRequest?: (session: ScuSession, request: ScuResponse) => void;
}

export const DEFAULT_DIMSE_TIMEOUT_MS = 10000;

/** Where an SCU operation goes: the association's options, less the contexts the operation proposes. */
export interface ScuTarget extends Omit<OpenAssociationOptions, 'presentationContexts'> {
  /** DIMSE timeout (Orthanc's DicomScuTimeout), in ms: default 10 s; 0 = none. */
  dimseTimeoutMs?: number;
}

/** The session options of a target. */
export function sessionOptions(target: ScuTarget): ScuSessionOptions {
  return target.dimseTimeoutMs === undefined ? {} : { timeoutMs: target.dimseTimeoutMs };
}

// The association's errors and the status vocabulary, for callers of the SCUs that do not reach into net/ or the
// rest of dimse/ (the CLI, the REST layer).
export { describeStatus, formatStatus, statusCategory, Status } from '../status.js';
export {
  AssociationAbortedError,
  AssociationError,
  AssociationRejectedError,
  isAssociationError,
  type AssociationErrorCode,
} from '../../net/association.js';

interface Outstanding {
  type: string;
  resolve(response: ScuResponse): void;
  reject(error: unknown): void;
  onPending?: (response: ScuResponse) => void;
  timeoutMs: number;
  timer?: NodeJS.Timeout;
  /** Settles with the request (never rejects). */
  done?: Promise<void>;
}

/** The requests an SCU sends and waits for a response to (C-CANCEL has none). */
export type ScuRequestMessage = Exclude<DimseCRequest, { type: 'C-CANCEL-RQ' }> | DimseNRequest;

export class ScuSession {
  private readonly assembler: MessageAssembler;
  private readonly outstanding = new Map<number, Outstanding>();
  /** Messages go out one after the other. */
  private sending: Promise<void> = Promise.resolve();
  private lastMessageId = 0;
  private ended: AssociationEnd | undefined;
  private readonly timeoutMs: number;

  constructor(
    readonly association: Association,
    private readonly options: ScuSessionOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_DIMSE_TIMEOUT_MS;
    this.assembler = new MessageAssembler({ acceptedContexts: new Set(association.acceptedContexts.keys()) });
    association.on('pdata', (pdu) => {
      try {
        for (const pdv of pdu.pdvs) {
          const message = this.assembler.push(pdv);
          if (message) this.onMessage(message);
        }
      } catch (e) {
        this.protocolError((e as Error).message);
      }
    });
    association.on('release-request', () => {
      // The peer releases (unusual for an acceptor): let what is under way finish first.
      void this.idle().then(() => association.releaseResponse());
    });
    association.on('closed', (end) => this.onClosed(end));
  }

  get tag(): string {
    return this.association.tag();
  }

  /** The contexts the peer accepted, by ID. */
  get contexts(): ReadonlyMap<number, AcceptedContext> {
    return this.association.acceptedContexts;
  }

  get isOpen(): boolean {
    return this.ended === undefined && this.association.isEstablished;
  }

  /** How the association ended, once it has. */
  get end(): AssociationEnd | undefined {
    return this.ended;
  }

  /**
   * The first accepted context for `abstractSyntax` (where we may act as SCU), preferring the transfer syntaxes in
   * the order given when there is a choice.
   */
  findContext(abstractSyntax: string, transferSyntaxes?: readonly string[]): AcceptedContext | undefined {
    const candidates = [...this.contexts.values()].filter((c) => c.abstractSyntax === abstractSyntax && c.requestorIsScu);
    if (!transferSyntaxes) return candidates[0];
    for (const ts of transferSyntaxes) {
      const found = candidates.find((c) => c.transferSyntax === ts);
      if (found) return found;
    }
    return undefined;
  }

  /** A Message ID (PS3.7 §9.3: 1..65535) not outstanding. */
  nextMessageId(): number {
    do {
      this.lastMessageId = (this.lastMessageId % 0xffff) + 1;
    } while (this.outstanding.has(this.lastMessageId));
    return this.lastMessageId;
  }

  /** Number of requests waiting for their final response. */
  get pendingCount(): number {
    return this.outstanding.size;
  }

  /**
   * Sends a request on a context and resolves with its final response (any status: the caller judges it). Pending
   * responses go to `options.onPending`. Rejects with `ScuError` ERR_SCU_TIMEOUT or ERR_SCU_CLOSED.
   */
  async request(contextId: number, rq: ScuRequestMessage, dataset?: Buffer, options: ScuRequestOptions = {}): Promise<ScuResponse> {
    if (!this.isOpen) throw this.closedError(rq.type);
    if (!this.contexts.has(contextId)) {
      throw new ScuError('ERR_SCU_NOT_ACCEPTED', `presentation context ${contextId} was not accepted on this association`);
    }
    const id = rq.MessageID;
    if (this.outstanding.has(id)) throw new RangeError(`Message ID ${id} is already outstanding`);
    const command = encodeMessage(rq);
    const answer = new Promise<ScuResponse>((resolve, reject) => {
      this.outstanding.set(id, { type: rq.type, resolve, reject, onPending: options.onPending, timeoutMs: options.timeoutMs ?? this.timeoutMs });
    });
    this.outstanding.get(id)!.done = answer.then(
      () => undefined,
      () => undefined, // the caller handles the rejection through the returned promise
    );
    const sent = this.sending.then(() => this.send(contextId, command, dataset));
    this.sending = sent.catch(() => undefined);
    try {
      await sent;
    } catch (e) {
      this.outstanding.delete(id);
      throw e;
    }
    if (log.isEnabled('debug')) log.debug(`${this.tag} ${rq.type} #${id} sent on context ${contextId}`);
    // The timeout runs once the request is out: a large data set under back-pressure is not a silent peer.
    const entry = this.outstanding.get(id);
    if (entry) this.arm(id, entry);
    return answer;
  }

  /** Resolves once no request is outstanding. */
  async idle(): Promise<void> {
    while (this.outstanding.size > 0) await Promise.all([...this.outstanding.values()].map((o) => o.done));
  }

  /** Waits for the outstanding requests, then releases the association (see `Association.release`). */
  async release(): Promise<void> {
    await this.idle();
    await this.association.release();
  }

  /**
   * Sends a message that gets no response of its own: a C-CANCEL-RQ (PS3.7 §9.3.2.3), or the response to a
   * request the peer sent (`onRequest`: the C-STORE sub-operations of a C-GET). It goes out after the messages
   * already under way; the DIMSE timeouts of the outstanding requests start again, since the exchange is alive.
   */
  async sendMessage(contextId: number, message: CCancelRq | DimseCResponse | DimseNResponse, dataset?: Buffer): Promise<void> {
    if (!this.isOpen) throw this.closedError(message.type);
    if (!this.contexts.has(contextId)) {
      throw new ScuError('ERR_SCU_NOT_ACCEPTED', `presentation context ${contextId} was not accepted on this association`);
    }
    const command = encodeMessage(message);
    const sent = this.sending.then(() => this.send(contextId, command, dataset));
    this.sending = sent.catch(() => undefined);
    await sent;
    if (log.isEnabled('debug')) log.debug(`${this.tag} ${message.type} sent on context ${contextId}`);
    this.rearmOutstanding();
  }

  /** A-ABORT: outstanding requests fail with ERR_SCU_CLOSED. */
  abort(): void {
    this.association.abort();
  }

  // ------------------------------------------------------------------ internals

  private async send(contextId: number, command: Buffer, dataset: Buffer | undefined): Promise<void> {
    const pdvs = fragmentMessage(contextId, command, dataset, this.association.peerMaxPduLength);
    if (pdvs.length > 1) this.association.coalesceWrites();
    for (const pdv of pdvs) {
      if (!this.isOpen) throw this.closedError('the request');
      await this.association.sendPData([pdv]);
    }
    if (!this.isOpen) throw this.closedError('the request');
  }

  private arm(id: number, entry: Outstanding): void {
    if (entry.timer) clearTimeout(entry.timer);
    if (!(entry.timeoutMs > 0)) return;
    entry.timer = setTimeout(() => {
      this.outstanding.delete(id);
      const error = new ScuError('ERR_SCU_TIMEOUT', `no response to ${entry.type} (Message ID ${id}) within ${entry.timeoutMs} ms: association aborted`);
      log.warn(`${this.tag} ${error.message}`);
      entry.reject(error);
      this.association.abort();
    }, entry.timeoutMs);
    entry.timer.unref();
  }

  /** Restarts the DIMSE timeouts already running (requests not sent yet keep theirs unarmed). */
  private rearmOutstanding(): void {
    for (const [id, entry] of this.outstanding) if (entry.timer) this.arm(id, entry);
  }

  private onMessage(message: AssembledMessage): void {
    let msg: DimseMessage;
    try {
      msg = fromCommandSet(message.command);
    } catch (e) {
      this.protocolError(`bad command from the peer: ${(e as Error).message}`);
      return;
    }
    const response: ScuResponse = { contextId: message.presentationContextId, message: msg };
    if (message.dataset) response.dataset = message.dataset.length === 1 ? message.dataset[0]! : Buffer.concat(message.dataset);
    if (isRequestCommandField(message.command.CommandField!)) {
      // The peer is working for an outstanding request (a C-GET's sub-operation): that request is not silent.
      this.rearmOutstanding();
      if (this.options.onRequest) this.options.onRequest(this, response);
      else this.protocolError(`the peer sent a ${msg.type}, which this association does not serve`);
      return;
    }
    const rsp = msg as DimseMessage & { MessageIDBeingRespondedTo: number; Status: number };
    const entry = this.outstanding.get(rsp.MessageIDBeingRespondedTo);
    if (!entry) {
      log.warn(`${this.tag} ${msg.type} for Message ID ${rsp.MessageIDBeingRespondedTo}, which is not outstanding: ignored`);
      return;
    }
    if (log.isEnabled('debug')) log.debug(`${this.tag} ${msg.type} #${rsp.MessageIDBeingRespondedTo} ${formatStatus(rsp.Status)}`);
    if (statusCategory(rsp.Status) === 'pending') {
      this.arm(rsp.MessageIDBeingRespondedTo, entry);
      try {
        entry.onPending?.(response);
      } catch (e) {
        log.warn(`${this.tag} pending-response handler failed: ${(e as Error).message}`);
      }
      return;
    }
    if (entry.timer) clearTimeout(entry.timer);
    this.outstanding.delete(rsp.MessageIDBeingRespondedTo);
    entry.resolve(response);
  }

  private protocolError(message: string): void {
    log.warn(`${this.tag} ${message}: aborting`);
    const error = new ScuError('ERR_SCU_PROTOCOL', message);
    for (const [id, entry] of this.outstanding) {
      if (entry.timer) clearTimeout(entry.timer);
      this.outstanding.delete(id);
      entry.reject(error);
    }
    this.association.abort();
  }

  private onClosed(end: AssociationEnd): void {
    this.ended = end;
    for (const [id, entry] of this.outstanding) {
      if (entry.timer) clearTimeout(entry.timer);
      this.outstanding.delete(id);
      entry.reject(this.closedError(entry.type));
    }
  }

  private closedError(what: string): ScuError {
    const cause = this.ended?.error ?? this.association.error;
    const why = cause ? cause.message : this.ended ? this.ended.reason : `association in ${this.association.state}`;
    return new ScuError('ERR_SCU_CLOSED', `association ended before the response to ${what}: ${why}`, {
      cause: isAssociationError(cause) ? cause : undefined,
    });
  }
}
