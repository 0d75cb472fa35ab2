/**
 * Orthanc's `DicomAssociationCloseDelay`: the C-STORE SCU associations of the modality store jobs stay open for
 * that many seconds once a job is done, and the next store to the same node (same AE titles, host, port, TLS,
 * DIMSE timeout) reuses one when it proposed every presentation context the new store needs. A kept association
 * is released (A-RELEASE) when it has been idle for the delay, when the next store needs other contexts (a new one
 * is opened), or when the server stops; one the peer aborted or closed meanwhile is forgotten, and the next store
 * opens a new one. A delay of 0 releases each association as soon as its store is done.
 */
import { logger } from '../core/log.js';
import { newAssociations, type StoreSessions } from '../dimse/scu/store.js';
import type { ScuSession, ScuTarget } from '../dimse/scu/session.js';
import type { ProposedContext } from '../net/connect.js';
import type { AsyncOpsWindow } from '../net/pdu/types.js';

const log = logger('dicom');

interface Kept {
  session: ScuSession;
  /** `host:port`. */
  node: string;
  timer: NodeJS.Timeout;
  onClosed: () => void;
}

/** What makes two stores interchangeable on one association. */
function keyOf(target: ScuTarget, asyncOpsWindow: AsyncOpsWindow | undefined): string {
  return JSON.stringify([
    target.host,
    target.port,
    target.callingAet,
    target.calledAet,
    target.tls !== undefined || target.transport !== undefined,
    target.dimseTimeoutMs,
    target.maxPduLength,
    asyncOpsWindow?.maxOperationsInvoked,
  ]);
}

const contextKey = (c: ProposedContext): string => `${c.abstractSyntax}|${c.transferSyntaxes.join(',')}`;

/** Whether the association proposed every one of `contexts`: its negotiation then serves them as a new one would. */
function proposedAll(session: ScuSession, contexts: readonly ProposedContext[]): boolean {
  const proposed = new Set((session.association.request?.presentationContexts ?? []).map(contextKey));
  return contexts.every((c) => proposed.has(contextKey(c)));
}

function release(session: ScuSession): Promise<void> {
  return newAssociations.done(session);
}

export class ScuSessionPool implements StoreSessions {
  /** At most one idle association per key (concurrent stores to one node each open theirs). */
  private readonly kept = new Map<string, Kept>();
  /** The sessions this pool opened: their key and node. */
  private readonly opened = new WeakMap<ScuSession, { key: string; node: string }>();
  private closed = false;

  /** `closeDelayMs`: how long an idle association stays open (0 = released at once). */
  constructor(private readonly closeDelayMs: number) {}

  /** Associations open and idle (for tests and logs). */
  get size(): number {
    return this.kept.size;
  }

  async open(target: ScuTarget, contexts: ProposedContext[], asyncOpsWindow?: AsyncOpsWindow): Promise<ScuSession> {
    const key = keyOf(target, asyncOpsWindow);
    const kept = this.take(key);
    if (kept?.isOpen && proposedAll(kept, contexts)) {
      log.debug(`${kept.tag} kept open: reused`);
      return kept;
    }
    // Closed by the peer meanwhile, or without the contexts needed: a new association replaces it. What is kept
    // open towards the same node is released first, since many nodes (storescp) serve one association at a time.
    if (kept?.isOpen) log.debug(`${kept.tag} does not offer the contexts needed: released`);
    await Promise.all([...(kept ? [release(kept)] : []), this.releaseNode(target.host, target.port)]);
    const session = await newAssociations.open(target, contexts, asyncOpsWindow);
    this.opened.set(session, { key, node: `${target.host}:${target.port}` });
    return session;
  }

  async done(session: ScuSession): Promise<void> {
    const opened = this.opened.get(session);
    if (!session.isOpen) return;
    if (this.closed || !(this.closeDelayMs > 0) || opened === undefined || session.pendingCount > 0) {
      await release(session);
      return;
    }
    const { key } = opened;
    const previous = this.take(key);
    if (previous) void release(previous);
    const entry: Kept = {
      session,
      node: opened.node,
      timer: setTimeout(() => {
        if (this.kept.get(key) !== entry) return;
        this.take(key);
        log.debug(`${session.tag} idle for ${this.closeDelayMs} ms: released`);
        void release(session);
      }, this.closeDelayMs),
      onClosed: () => {
        if (this.kept.get(key) === entry) this.take(key);
      },
    };
    entry.timer.unref();
    session.association.once('closed', entry.onClosed);
    this.kept.set(key, entry);
  }

  /**
   * Releases what is kept open towards `host:port`: called before any other association to that node (an echo, a
   * query, a retrieve), since many nodes serve one association at a time. The A-RELEASE-RQ is sent at once.
   */
  releaseNode(host: string, port: number): Promise<void> {
    const node = `${host}:${port}`;
    const keys = [...this.kept].filter(([, e]) => e.node === node).map(([key]) => key);
    return Promise.all(keys.map((key) => release(this.take(key)!))).then(() => undefined);
  }

  /** Releases every association kept open and keeps no more (the server stops). */
  async close(): Promise<void> {
    this.closed = true;
    const sessions = [...this.kept.keys()].map((key) => this.take(key)).filter((s) => s !== undefined);
    await Promise.all(sessions.map(release));
  }

  /** Removes the idle association of `key` from the pool, its timer and listener gone. */
  private take(key: string): ScuSession | undefined {
    const entry = this.kept.get(key);
    if (!entry) return undefined;
    this.kept.delete(key);
    clearTimeout(entry.timer);
    entry.session.association.off('closed', entry.onClosed);
    return entry.session;
  }
}
