/**
 * One established association on the SCP side: reassembles DIMSE messages, hands each request to its service
 * (`echo.ts`, `store.ts`, ...), sends the responses, handles C-CANCEL and the release. Services are a table keyed
 * by Command Field (STYLE.md habit 2); a service never touches the socket, only this session's methods.
 */
import { logger } from '../../core/log.js';
import type { Association } from '../../net/association.js';
import type { AcceptedContext } from '../../net/negotiation.js';
import type { Pdv } from '../../net/pdu/types.js';
import type { CommandSet } from '../command.js';
import { fragmentMessage, MessageAssembler, type AssembledMessage } from '../fragment.js';
import type { AssociationInfo, DicomHandlers } from '../handlers.js';
import { encodeMessage, fromCommandSet, type DimseMessage } from '../messages.js';
import { formatStatus } from '../status.js';

const log = logger('dicom');

/** Where a streamed dataset goes (a C-STORE into the store). */
export interface DatasetSink {
  /** Returns false when the consumer is full: the session stops reading the socket until `drain`. */
  write(chunk: Buffer): boolean;
  end(): void;
  destroy(error: Error): void;
  onDrain(listener: () => void): void;
}

/** The SCP behaviour of one DIMSE service. */
export interface ScpService {
  /**
   * Optional: the command is complete and a dataset follows. Return a sink to receive the dataset as it arrives
   * (and start the work now), or undefined to receive it whole in `handle`.
   */
  streamDataset?(session: ScpSession, contextId: number, command: CommandSet): DatasetSink | undefined;
  /** A complete request (its dataset, if not streamed, as fragments). */
  handle(session: ScpSession, contextId: number, request: DimseMessage, dataset: Buffer[] | undefined): void;
}

/** The signal of a request that cannot be cancelled. */
const NEVER_ABORTED = new AbortController().signal;

/** C-CANCEL-RQ (PS3.7 §9.3.2.3) is answered by the session itself: it must not wait behind the request it cancels. */
const C_CANCEL_RQ = 0x0fff;

export class ScpSession {
  private readonly assembler: MessageAssembler;
  /** The request under way: without asynchronous operations (PS3.7 §D.3.3.3), one at a time. */
  private current: Promise<void> = Promise.resolve();
  private pending = 0;
  private sink: DatasetSink | undefined;
  /** Message ID -> the controller cancelling that request's work (C-FIND, C-MOVE, C-GET). */
  private readonly cancellable = new Map<number, AbortController>();
  /** Requests this side sent on the association (C-GET's C-STORE sub-operations), by Message ID. */
  private readonly waiting = new Map<number, { resolve: (rsp: DimseMessage) => void; reject: (e: Error) => void }>();
  private nextMessageId = 1;

  constructor(
    readonly association: Association,
    readonly info: AssociationInfo,
    readonly contexts: ReadonlyMap<number, AcceptedContext>,
    /** The peer's Maximum Length (0 = unlimited). */
    readonly peerMaxPdu: number,
    readonly handlers: DicomHandlers,
    private readonly services: ReadonlyMap<number, ScpService>,
  ) {
    this.assembler = new MessageAssembler({
      acceptedContexts: new Set(contexts.keys()),
      streamDataset: (contextId, command) => {
        const service = this.services.get(command.CommandField ?? -1);
        const sink = service?.streamDataset?.(this, contextId, command);
        if (!sink) return false;
        this.sink = sink;
        sink.onDrain(() => association.pauseReading(false));
        return true;
      },
      onDatasetChunk: (_contextId, chunk, isLast) => {
        const sink = this.sink;
        if (!sink) return;
        if (chunk.length > 0 && !sink.write(chunk)) association.pauseReading(true);
        if (isLast) {
          sink.end();
          this.sink = undefined;
        }
      },
    });
    association.on('pdata', (pdu) => {
      try {
        for (const pdv of pdu.pdvs) {
          const message = this.assembler.push(pdv);
          if (message) this.onMessage(message);
        }
      } catch (e) {
        // A DIMSE protocol violation (PDV sequence, unknown context, malformed command): the association ends.
        log.warn(`${association.tag()} ${(e as Error).message}: aborting`);
        this.sink?.destroy(e as Error);
        association.abort(0);
      }
    });
    association.on('release-request', () => {
      void this.idle().then(() => association.releaseResponse());
    });
    association.on('closed', () => {
      this.sink?.destroy(new Error('association closed'));
      for (const controller of this.cancellable.values()) controller.abort();
      for (const w of this.waiting.values()) w.reject(new Error('association closed'));
      this.waiting.clear();
    });
  }

  get tag(): string {
    return this.association.tag();
  }

  get isIdle(): boolean {
    return this.pending === 0;
  }

  idle(): Promise<void> {
    return this.current.then(() => undefined);
  }

  transferSyntaxOf(contextId: number): string {
    return this.contexts.get(contextId)!.transferSyntax;
  }

  private onMessage(message: AssembledMessage): void {
    const { presentationContextId: contextId, command } = message;
    if (((command.CommandField ?? 0) & 0x8000) !== 0) {
      // A response to a request this side sent (a C-STORE sub-operation of a C-GET).
      const id = command.MessageIDBeingRespondedTo ?? -1;
      const waiter = this.waiting.get(id);
      this.waiting.delete(id);
      if (!waiter) {
        log.warn(`${this.tag} response to unknown message ${id}: aborting`);
        this.association.abort(0);
        return;
      }
      try {
        waiter.resolve(fromCommandSet(command));
      } catch (e) {
        waiter.reject(e as Error);
      }
      return;
    }
    if (command.CommandField === C_CANCEL_RQ) {
      const id = command.MessageIDBeingRespondedTo ?? -1;
      log.verbose(`${this.tag} C-CANCEL of message ${id}`);
      this.cancellable.get(id)?.abort();
      return;
    }
    let request: DimseMessage;
    try {
      request = fromCommandSet(command);
    } catch (e) {
      log.warn(`${this.tag} bad command: ${(e as Error).message}`);
      this.association.abort(0);
      return;
    }
    const service = this.services.get(command.CommandField ?? -1);
    if (!service) {
      // Only the SOP classes of the services below are negotiated, so this is a peer breaking the rules.
      log.warn(`${this.tag} ${request.type} is not supported: aborting`);
      this.association.abort(0);
      return;
    }
    // A streamed dataset's request is already under way (the service started it in streamDataset).
    if (message.streamed) return;
    service.handle(this, contextId, request, message.dataset);
  }

  /**
   * Runs one request's work after the previous one. A throw is logged and turned into `onError`'s answer (STYLE.md
   * habit 5). `messageId` makes the work cancellable by C-CANCEL through the signal passed to `task`.
   * From the moment the request is complete (`complete` resolves: the last fragment of a streamed dataset; at once
   * otherwise) until its work ends, the association is busy: the peer waits for us, and the activity timeout
   * does not run. A peer that stalls in the middle of a dataset is idle, and is timed out.
   */
  run(
    task: (signal: AbortSignal) => Promise<void>,
    onError: (e: unknown) => Promise<void>,
    messageId?: number,
    complete?: Promise<void>,
  ): Promise<void> {
    this.pending++;
    let state: 'waiting' | 'busy' | 'done' = 'waiting';
    const markBusy = () => {
      if (state !== 'waiting') return;
      state = 'busy';
      this.association.busy(1);
    };
    if (complete) void complete.then(markBusy);
    else markBusy();
    // Only a cancellable request needs its own controller (C-STORE, the bulk of the traffic, does not).
    const controller = messageId !== undefined ? new AbortController() : undefined;
    if (controller) this.cancellable.set(messageId!, controller);
    const next = this.current
      .then(() => task(controller?.signal ?? NEVER_ABORTED))
      .catch(async (e: unknown) => {
        log.warn(`${this.tag} handler failed: ${(e as Error).message}`);
        await onError(e).catch(() => undefined);
      })
      .finally(() => {
        this.pending--;
        if (state === 'busy') this.association.busy(-1);
        state = 'done';
        if (messageId !== undefined) this.cancellable.delete(messageId);
      });
    this.current = next;
    return next;
  }

  /** A Message ID for a request this side sends. */
  messageId(): number {
    const id = this.nextMessageId;
    this.nextMessageId = (this.nextMessageId % 0xffff) + 1;
    return id;
  }

  /** Sends a request (with its dataset) and resolves with the peer's response. */
  request(contextId: number, message: DimseMessage & { MessageID: number }, dataset?: Buffer): Promise<DimseMessage> {
    return new Promise<DimseMessage>((resolve, reject) => {
      this.waiting.set(message.MessageID, { resolve, reject });
      this.respond(contextId, message, dataset).catch((e: unknown) => {
        this.waiting.delete(message.MessageID);
        reject(e as Error);
      });
    });
  }

  /** Sends a message (and its dataset), fragmented to the peer's Maximum Length; resolves under back-pressure. */
  async respond(contextId: number, message: DimseMessage, dataset?: Buffer): Promise<void> {
    if (!this.association.canSendPData) return;
    const pdvs: Pdv[] = fragmentMessage(contextId, encodeMessage(message), dataset, this.peerMaxPdu);
    if (pdvs.length > 1) this.association.coalesceWrites();
    for (const pdv of pdvs) await this.association.sendPData([pdv]);
    if (log.isEnabled('debug')) {
      const status = 'Status' in message ? ` ${formatStatus((message as { Status: number }).Status)}` : '';
      log.debug(`${this.tag} ${message.type}${status}`);
    }
  }
}
