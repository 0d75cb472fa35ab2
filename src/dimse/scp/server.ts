/**
 * The DICOM SCP server: accepts associations through `net/server.ts`, negotiates them with the application's
 * policy, then runs one `ScpSession` per association, which dispatches DIMSE requests to the handlers (the seam,
 * `dimse/handlers.ts`): C-ECHO and C-STORE so far.
 */
import { PassThrough } from 'node:stream';
import { logger } from '../../core/log.js';
import { isStorageSopClass, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../dicom/uids.js';
import type { Association } from '../../net/association.js';
import { negotiateAsAcceptor, type AcceptedContext, type AcceptorPolicy } from '../../net/negotiation.js';
import { DICOM_APPLICATION_CONTEXT, type AAssociateAc, type AAssociateRq, type Pdv } from '../../net/pdu/types.js';
import { UlServer } from '../../net/server.js';
import type { CommandSet } from '../command.js';
import { fragmentMessage, MessageAssembler, type AssembledMessage } from '../fragment.js';
import type { AssociationInfo, DicomHandlers } from '../handlers.js';
import { cEchoRsp, cStoreRsp, encodeMessage, fromCommandSet, type CEchoRq, type CStoreRq, type DimseMessage } from '../messages.js';
import { formatStatus, Status } from '../status.js';

const log = logger('dicom');

export interface ScpServerOptions {
  aet: string;
  /** Our Maximum Length (PS3.8 D.1) for received P-DATA (Orthanc's MaximumPduLength, default 16384). */
  maxPduLength: number;
  /** Orthanc's DicomScpTimeout, in ms: an established association without traffic for this long is aborted. */
  idleTimeoutMs: number;
  artimTimeoutMs?: number;
  /** At most this many simultaneous associations (0 = no cap); beyond, A-ASSOCIATE-RJ "local limit exceeded". */
  maxAssociations?: number;
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
    const verdict = this.handlers.policy.acceptAssociation(info);
    if (!verdict.accept) {
      log.info(`${association.tag()} refused by policy (reason ${verdict.reason})`);
      association.reject({ type: 'A-ASSOCIATE-RJ', result: verdict.result, source: verdict.source, reason: verdict.reason });
      return;
    }
    const policy: AcceptorPolicy = {
      transferSyntaxesFor: (abstractSyntax) => this.handlers.policy.transferSyntaxesFor(abstractSyntax),
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
    const session = new ScpSession(association, info, negotiation.accepted, rq.userInformation.maxPduLength ?? 0, this.handlers);
    this.sessions.add(session);
    association.on('closed', () => this.sessions.delete(session));
    association.accept(ac);
    log.verbose(`${association.tag()} accepted from ${info.remoteAddress}: ${negotiation.accepted.size} context(s)`);
  }
}

/** One established association: reassembles messages, runs the handlers, answers, releases. */
class ScpSession {
  private readonly assembler: MessageAssembler;
  /** The request under way (PS3.7: without asynchronous operations, one at a time). */
  private current: Promise<void> = Promise.resolve();
  private pending = 0;
  private storeStream: PassThrough | undefined;

  constructor(
    private readonly association: Association,
    private readonly info: AssociationInfo,
    private readonly contexts: Map<number, AcceptedContext>,
    private readonly peerMaxPdu: number,
    private readonly handlers: DicomHandlers,
  ) {
    this.assembler = new MessageAssembler({
      acceptedContexts: new Set(contexts.keys()),
      // A C-STORE's dataset is streamed into the store as it arrives; the store starts when its command is complete.
      streamDataset: (contextId, command) => {
        if (command.CommandField !== 0x0001) return false;
        this.startStore(contextId, command);
        return true;
      },
      onDatasetChunk: (_ctx, chunk, isLast) => this.onStoreChunk(chunk, isLast),
    });
    association.on('pdata', (pdu) => {
      try {
        for (const pdv of pdu.pdvs) {
          const message = this.assembler.push(pdv);
          if (message) this.onMessage(message);
        }
      } catch (e) {
        log.warn(`${association.tag()} ${(e as Error).message}: aborting`);
        this.storeStream?.destroy(e as Error);
        // A DIMSE protocol violation (PDV sequence, unknown context, malformed command): the association ends.
        association.abort(0);
      }
    });
    association.on('release-request', () => {
      void this.idle().then(() => association.releaseResponse());
    });
    association.on('closed', () => this.storeStream?.destroy(new Error('association closed')));
  }

  get isIdle(): boolean {
    return this.pending === 0;
  }

  idle(): Promise<void> {
    return this.current.then(() => undefined);
  }

  /** The command of a C-STORE is complete and its dataset follows: the store starts reading now (streaming). */
  private startStore(contextId: number, command: CommandSet): void {
    const rq = fromCommandSet(command) as CStoreRq;
    const context = this.contexts.get(contextId)!;
    const stream = new PassThrough({ highWaterMark: 1 << 20 });
    this.storeStream = stream;
    stream.on('drain', () => this.association.pauseReading(false));
    this.run(async () => {
      let status: number;
      if (!this.handlers.policy.isAllowed('store', this.info)) {
        stream.resume();
        status = Status.NotAuthorized;
      } else {
        status = await this.handlers.store.store(
          {
            sopClassUid: rq.AffectedSOPClassUID,
            sopInstanceUid: rq.AffectedSOPInstanceUID,
            transferSyntaxUid: context.transferSyntax,
            dataset: stream,
            moveOriginator:
              rq.MoveOriginatorApplicationEntityTitle !== undefined
                ? { aet: rq.MoveOriginatorApplicationEntityTitle, messageId: rq.MoveOriginatorMessageID ?? 0 }
                : undefined,
          },
          this.info,
        );
      }
      // The response goes out once the whole dataset has arrived (the handler may answer before, on a failure).
      await new Promise<void>((resolve) => (stream.writableFinished || stream.destroyed ? resolve() : stream.once('close', resolve).once('finish', resolve)));
      await this.respond(contextId, cStoreRsp(rq, status));
    }, (e) => this.respond(contextId, cStoreRsp(rq, Status.ProcessingFailure, { ErrorComment: (e as Error).message })));
  }

  private onStoreChunk(chunk: Buffer, isLast: boolean): void {
    const stream = this.storeStream;
    if (!stream) return;
    if (chunk.length > 0 && !stream.write(chunk)) this.association.pauseReading(true);
    if (isLast) {
      stream.end();
      this.storeStream = undefined;
    }
  }

  private onMessage(message: AssembledMessage): void {
    const { presentationContextId: contextId, command } = message;
    let rq: DimseMessage;
    try {
      rq = fromCommandSet(command);
    } catch (e) {
      log.warn(`${this.association.tag()} bad command: ${(e as Error).message}`);
      this.association.abort(0);
      return;
    }
    switch (rq.type) {
      case 'C-ECHO-RQ': {
        const echo = rq as CEchoRq;
        this.run(
          async () => {
            const status = this.handlers.policy.isAllowed('echo', this.info)
              ? await this.handlers.echo.echo(this.info)
              : Status.NotAuthorized;
            await this.respond(contextId, cEchoRsp(echo, status));
          },
          (e) => this.respond(contextId, cEchoRsp(echo, Status.ProcessingFailure, { ErrorComment: (e as Error).message })),
        );
        return;
      }
      case 'C-STORE-RQ':
        if (!message.streamed) {
          // A C-STORE whose command said "no dataset": answer at once.
          void this.respond(contextId, cStoreRsp(rq, Status.ProcessingFailure, { ErrorComment: 'C-STORE without a dataset' }));
        }
        return;
      default:
        log.warn(`${this.association.tag()} ${rq.type} is not supported here yet`);
        this.association.abort(0);
    }
  }

  /** Runs one request after the previous one; a throw becomes the fallback answer (STYLE.md habit 5). */
  private run(task: () => Promise<void>, onError: (e: unknown) => Promise<void>): Promise<void> {
    this.pending++;
    const next = this.current.then(task).catch(async (e: unknown) => {
      log.warn(`${this.association.tag()} handler failed: ${(e as Error).message}`);
      await onError(e).catch(() => undefined);
    }).finally(() => {
      this.pending--;
    });
    this.current = next;
    return next;
  }

  private async respond(contextId: number, message: DimseMessage): Promise<void> {
    if (!this.association.isEstablished) return;
    const pdvs: Pdv[] = fragmentMessage(contextId, encodeMessage(message), undefined, this.peerMaxPdu);
    for (const pdv of pdvs) await this.association.sendPData([pdv]);
    log.debug(`${this.association.tag()} ${message.type} ${'Status' in message ? formatStatus((message as { Status: number }).Status) : ''}`);
  }
}
