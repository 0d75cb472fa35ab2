/**
 * The DICOM Upper Layer state machine of PS3.8 §9.2, held as data (STYLE.md habits 1-2):
 *
 * - {@link STATES}: Sta1-Sta13 (PS3.8 §9.2.1, Tables 9-1 to 9-5);
 * - {@link EVENTS}: Evt1-Evt19 (the rows of PS3.8 Table 9-10);
 * - {@link ACTIONS}: AE-1..AE-8, DT-1..DT-2, AR-1..AR-10, AA-1..AA-8 (PS3.8 §9.2.2, Tables 9-6 to 9-9), each as a
 *   description, the ordered list of named {@link EFFECTS} and the next state (or a condition and two outcomes);
 * - {@link TRANSITIONS}: the non-empty cells of PS3.8 Table 9-10, keyed `` `${event}|${state}` ``.
 *
 * {@link StateMachine} looks a cell up and runs the action's effects through an {@link FsmHost}. It is pure: no
 * sockets, no timers. The host owns the transport and the ARTIM timer (PS3.8 §9.1.5) and feeds their events back
 * (Evt2, Evt5, Evt17, Evt18), together with decoded PDUs (Evt3, Evt4, Evt6, Evt10, Evt12, Evt13, Evt16, Evt19)
 * and the local user's primitives (Evt1, Evt7-Evt9, Evt11, Evt14, Evt15).
 *
 * Transcribed from DICOM PS3.8 §9.2 (Tables 9-1 to 9-10); test/fsm.test.ts holds a second, independent transcription.
 */

/** PS3.8 §9.2.1, Tables 9-1 to 9-5: the states of the DICOM UL protocol machine. */
export const STATES = {
  Sta1: 'Idle',
  Sta2: 'Transport connection open (Awaiting A-ASSOCIATE-RQ PDU)',
  Sta3: 'Awaiting local A-ASSOCIATE response primitive (from local user)',
  Sta4: 'Awaiting transport connection opening to complete (from local transport service)',
  Sta5: 'Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU',
  Sta6: 'Association established and ready for data transfer',
  Sta7: 'Awaiting A-RELEASE-RP PDU',
  Sta8: 'Awaiting local A-RELEASE response primitive (from local user)',
  Sta9: 'Release collision requestor side; awaiting A-RELEASE response (from local user)',
  Sta10: 'Release collision acceptor side; awaiting A-RELEASE-RP PDU',
  Sta11: 'Release collision requestor side; awaiting A-RELEASE-RP PDU',
  Sta12: 'Release collision acceptor side; awaiting A-RELEASE response primitive (from local user)',
  Sta13: 'Awaiting Transport Connection Close Indication (Association no longer exists)',
} as const;

export type StateName = keyof typeof STATES;

/** PS3.8 Table 9-10, row labels: the events of the DICOM UL protocol machine. */
export const EVENTS = {
  Evt1: 'A-ASSOCIATE Request (local user)',
  Evt2: 'Transport Conn. Confirm (local transport service)',
  Evt3: 'A-ASSOCIATE-AC PDU (received on transport connection)',
  Evt4: 'A-ASSOCIATE-RJ PDU (received on transport connection)',
  Evt5: 'Transport Connection Indication (local transport service)',
  Evt6: 'A-ASSOCIATE-RQ PDU (received on transport connection)',
  Evt7: 'A-ASSOCIATE response primitive (accept)',
  Evt8: 'A-ASSOCIATE response primitive (reject)',
  Evt9: 'P-DATA request primitive',
  Evt10: 'P-DATA-TF PDU',
  Evt11: 'A-RELEASE Request primitive',
  Evt12: 'A-RELEASE-RQ PDU (received on open transport connection)',
  Evt13: 'A-RELEASE-RP PDU (received on transport connection)',
  Evt14: 'A-RELEASE Response primitive',
  Evt15: 'A-ABORT Request primitive',
  Evt16: 'A-ABORT PDU (received on open transport connection)',
  Evt17: 'Transport connection closed indication (local transport service)',
  Evt18: 'ARTIM timer expired (Association reject/release timer)',
  Evt19: 'Unrecognized or invalid PDU received',
} as const;

export type EventName = keyof typeof EVENTS;

/** A cell of PS3.8 Table 9-10. */
export type TransitionKey = `${EventName}|${StateName}`;

/** What the machine tells its host's effects and `onTransition` about the transition under way. */
export interface Transition {
  readonly from: StateName;
  readonly event: EventName;
  readonly action: ActionName;
  readonly to: StateName;
}

/**
 * The effects of the actions of PS3.8 Tables 9-6 to 9-9, one method each. Each receives the payload given to
 * {@link StateMachine.handle} (the PDU received, the primitive's parameters, the transport error...) and the
 * transition under way (so that, e.g., an A-ABORT reason can depend on the event). Effects run synchronously in
 * the order the action lists them; they must not call {@link StateMachine.handle} themselves (queue the event).
 */
export interface FsmEffects<P = unknown> {
  /** AE-1: issue TRANSPORT CONNECT request primitive to local transport service (open the TCP connection). */
  issueTransportConnect(payload: P | undefined, t: Transition): void;
  /** AE-5: issue Transport connection response primitive (accept the incoming TCP connection). */
  issueTransportResponse(payload: P | undefined, t: Transition): void;
  /** AE-4, AR-3, AA-2, AA-3: close the transport connection (PS3.8 §9.1.4: "don't linger"). */
  closeTransport(payload: P | undefined, t: Transition): void;
  /** AE-5, AE-6 (reject), AE-8, AR-4, AA-1, AA-8: start the ARTIM timer, or restart it if already started (AA-1). */
  startArtim(payload: P | undefined, t: Transition): void;
  /** AE-6, AR-5, AA-2, AA-5: stop the ARTIM timer if running (AA-2 says "if running": must be idempotent). */
  stopArtim(payload: P | undefined, t: Transition): void;
  /** AE-2: send the A-ASSOCIATE-RQ PDU (PS3.8 §9.3.2). */
  sendAssociateRq(payload: P | undefined, t: Transition): void;
  /** AE-7: send the A-ASSOCIATE-AC PDU (PS3.8 §9.3.3). */
  sendAssociateAc(payload: P | undefined, t: Transition): void;
  /** AE-6 (RQ not acceptable by the service-provider), AE-8 (rejected by the local user): send the A-ASSOCIATE-RJ PDU (PS3.8 §9.3.4). */
  sendAssociateRj(payload: P | undefined, t: Transition): void;
  /** DT-1, AR-7: send a P-DATA-TF PDU (PS3.8 §9.3.5). */
  sendPData(payload: P | undefined, t: Transition): void;
  /** AR-1: send the A-RELEASE-RQ PDU (PS3.8 §9.3.6). */
  sendReleaseRq(payload: P | undefined, t: Transition): void;
  /** AR-4, AR-9: send the A-RELEASE-RP PDU (PS3.8 §9.3.7). */
  sendReleaseRp(payload: P | undefined, t: Transition): void;
  /** AA-1: send an A-ABORT PDU with source 0, "DICOM UL service-user" (PS3.8 §9.3.8, Table 9-26). */
  sendAbortServiceUser(payload: P | undefined, t: Transition): void;
  /**
   * AA-8 (and AA-7): send an A-ABORT PDU with source 2, "DICOM UL service-provider", and a reason (PS3.8 §9.3.8,
   * Table 9-26; e.g. 1 unrecognized-PDU for Evt19, 2 unexpected-PDU for a PDU the state does not expect).
   */
  sendAbortServiceProvider(payload: P | undefined, t: Transition): void;
  /** AE-6 (RQ acceptable): issue the A-ASSOCIATE indication primitive to the local user (PS3.8 §7.1). */
  issueAssociateIndication(payload: P | undefined, t: Transition): void;
  /** AE-3: issue the A-ASSOCIATE confirmation (accept) primitive to the local user. */
  issueAssociateConfirmAccept(payload: P | undefined, t: Transition): void;
  /** AE-4: issue the A-ASSOCIATE confirmation (reject) primitive to the local user. */
  issueAssociateConfirmReject(payload: P | undefined, t: Transition): void;
  /** DT-2, AR-6: issue the P-DATA indication primitive (PS3.8 §7.6). */
  issuePDataIndication(payload: P | undefined, t: Transition): void;
  /** AR-2, AR-8: issue the A-RELEASE indication primitive (PS3.8 §7.2). */
  issueReleaseIndication(payload: P | undefined, t: Transition): void;
  /** AR-3, AR-10: issue the A-RELEASE confirmation primitive. */
  issueReleaseConfirm(payload: P | undefined, t: Transition): void;
  /** AA-3 (the peer's A-ABORT PDU has source service-user): issue the A-ABORT indication primitive (PS3.8 §7.3). */
  issueAbortIndication(payload: P | undefined, t: Transition): void;
  /** AA-3 (otherwise), AA-4, AA-8: issue the A-P-ABORT indication primitive (PS3.8 §7.4). */
  issuePAbortIndication(payload: P | undefined, t: Transition): void;
}

export type EffectName = keyof FsmEffects;

/** The questions the actions with two outcomes ask the host; each receives the same arguments as an effect. */
export interface FsmConditions<P = unknown> {
  /**
   * AE-6: is the A-ASSOCIATE-RQ "acceptable by service-provider"? This is the UL provider's own check (protocol
   * version, application context, a local limit on associations...), made before the local user sees the request;
   * the user's accept or reject is the later Evt7 or Evt8. False: AE-6 sends an A-ASSOCIATE-RJ (source 2 or 3).
   */
  isAssociateRqAcceptable(payload: P | undefined, t: Omit<Transition, 'to'>): boolean;
  /** AR-8 (release collision): is this side the association-requestor? Yes: Sta9; no: Sta10. */
  isRequestor(payload: P | undefined, t: Omit<Transition, 'to'>): boolean;
  /**
   * AA-3: was the abort received "service-user initiated" (A-ABORT PDU source 0)? Yes: A-ABORT indication;
   * no (source 2, service-provider initiated): A-P-ABORT indication.
   */
  isAbortFromServiceUser(payload: P | undefined, t: Omit<Transition, 'to'>): boolean;
}

export type ConditionName = keyof FsmConditions;

/** What the state machine needs from the association that drives it: the effects, the conditions, and a listener. */
export interface FsmHost<P = unknown> extends FsmEffects<P>, FsmConditions<P> {
  /** Called after every transition, once the new state is set (for logs, metrics and tests). */
  onTransition?(from: StateName, event: EventName, action: ActionName, to: StateName): void;
}

/** The name of every effect, with the wording of PS3.8 §9.2.2 it stands for. */
export const EFFECTS: Readonly<Record<EffectName, string>> = {
  issueTransportConnect: 'Issue TRANSPORT CONNECT request primitive to local transport service',
  issueTransportResponse: 'Issue Transport connection response primitive',
  closeTransport: 'Close transport connection',
  startArtim: 'Start (or restart if already started) ARTIM timer',
  stopArtim: 'Stop ARTIM timer (if running)',
  sendAssociateRq: 'Send A-ASSOCIATE-RQ PDU',
  sendAssociateAc: 'Send A-ASSOCIATE-AC PDU',
  sendAssociateRj: 'Send A-ASSOCIATE-RJ PDU',
  sendPData: 'Send P-DATA-TF PDU',
  sendReleaseRq: 'Send A-RELEASE-RQ PDU',
  sendReleaseRp: 'Send A-RELEASE-RP PDU',
  sendAbortServiceUser: 'Send A-ABORT PDU (service-user source)',
  sendAbortServiceProvider: 'Send A-ABORT PDU (service-provider source)',
  issueAssociateIndication: 'Issue A-ASSOCIATE indication primitive',
  issueAssociateConfirmAccept: 'Issue A-ASSOCIATE confirmation (accept) primitive',
  issueAssociateConfirmReject: 'Issue A-ASSOCIATE confirmation (reject) primitive',
  issuePDataIndication: 'Issue P-DATA indication primitive',
  issueReleaseIndication: 'Issue A-RELEASE indication primitive',
  issueReleaseConfirm: 'Issue A-RELEASE confirmation primitive',
  issueAbortIndication: 'Issue A-ABORT indication primitive',
  issuePAbortIndication: 'Issue A-P-ABORT indication primitive',
};

/** The names of the host's questions, with the wording of PS3.8 §9.2.2 they stand for. */
export const CONDITIONS: Readonly<Record<ConditionName, string>> = {
  isAssociateRqAcceptable: 'A-ASSOCIATE-RQ acceptable by service-provider (AE-6)',
  isRequestor: 'association-requestor (AR-8)',
  isAbortFromServiceUser: 'service-user initiated abort (AA-3)',
};

/** The effects an action runs, in order, and the state it leads to. */
export interface Outcome {
  readonly effects: readonly EffectName[];
  readonly next: StateName;
}

/** An action of PS3.8 Tables 9-6 to 9-9: one outcome, or a condition asked of the host and two outcomes. */
export type ActionDef =
  | (Outcome & { readonly description: string })
  | {
      readonly description: string;
      readonly condition: ConditionName;
      readonly ifTrue: Outcome;
      readonly ifFalse: Outcome;
    };

/**
 * PS3.8 §9.2.2, Tables 9-6 (AE), 9-7 (DT), 9-8 (AR) and 9-9 (AA). Descriptions are the standard's wording.
 *
 * Of the actions, only AE-6 and AR-8 lead to a state that depends on a condition; AA-3's condition only selects the
 * indication issued (both outcomes lead to Sta1). AA-6, AA-7 and AA-8 always lead to Sta13.
 */
export const ACTIONS = {
  // Table 9-6: Association establishment related actions.
  'AE-1': {
    description: 'Issue TRANSPORT CONNECT request primitive to local transport service',
    effects: ['issueTransportConnect'],
    next: 'Sta4',
  },
  'AE-2': { description: 'Send A-ASSOCIATE-RQ-PDU', effects: ['sendAssociateRq'], next: 'Sta5' },
  'AE-3': {
    description: 'Issue A-ASSOCIATE confirmation (accept) primitive',
    effects: ['issueAssociateConfirmAccept'],
    next: 'Sta6',
  },
  'AE-4': {
    description: 'Issue A-ASSOCIATE confirmation (reject) primitive and close transport connection',
    effects: ['issueAssociateConfirmReject', 'closeTransport'],
    next: 'Sta1',
  },
  'AE-5': {
    description: 'Issue Transport connection response primitive; start ARTIM timer',
    effects: ['issueTransportResponse', 'startArtim'],
    next: 'Sta2',
  },
  'AE-6': {
    description:
      'Stop ARTIM timer and if A-ASSOCIATE-RQ acceptable by service-provider: issue A-ASSOCIATE indication primitive, ' +
      'next state is Sta3; otherwise: issue A-ASSOCIATE-RJ-PDU and start ARTIM timer, next state is Sta13',
    condition: 'isAssociateRqAcceptable',
    ifTrue: { effects: ['stopArtim', 'issueAssociateIndication'], next: 'Sta3' },
    ifFalse: { effects: ['stopArtim', 'sendAssociateRj', 'startArtim'], next: 'Sta13' },
  },
  'AE-7': { description: 'Send A-ASSOCIATE-AC PDU', effects: ['sendAssociateAc'], next: 'Sta6' },
  'AE-8': {
    description: 'Send A-ASSOCIATE-RJ PDU and start ARTIM timer',
    effects: ['sendAssociateRj', 'startArtim'],
    next: 'Sta13',
  },

  // Table 9-7: Data transfer related actions.
  'DT-1': { description: 'Send P-DATA-TF PDU', effects: ['sendPData'], next: 'Sta6' },
  'DT-2': { description: 'Send P-DATA indication primitive', effects: ['issuePDataIndication'], next: 'Sta6' },

  // Table 9-8: Association release related actions.
  'AR-1': { description: 'Send A-RELEASE-RQ PDU', effects: ['sendReleaseRq'], next: 'Sta7' },
  'AR-2': { description: 'Issue A-RELEASE indication primitive', effects: ['issueReleaseIndication'], next: 'Sta8' },
  'AR-3': {
    description: 'Issue A-RELEASE confirmation primitive, and close transport connection',
    effects: ['issueReleaseConfirm', 'closeTransport'],
    next: 'Sta1',
  },
  'AR-4': {
    description: 'Issue A-RELEASE-RP PDU and start ARTIM timer',
    effects: ['sendReleaseRp', 'startArtim'],
    next: 'Sta13',
  },
  'AR-5': { description: 'Stop ARTIM timer', effects: ['stopArtim'], next: 'Sta1' },
  'AR-6': { description: 'Issue P-DATA indication', effects: ['issuePDataIndication'], next: 'Sta7' },
  'AR-7': { description: 'Issue P-DATA-TF PDU', effects: ['sendPData'], next: 'Sta8' },
  'AR-8': {
    description:
      'Issue A-RELEASE indication (release collision): if association-requestor, next state is Sta9; if not, next state is Sta10',
    condition: 'isRequestor',
    ifTrue: { effects: ['issueReleaseIndication'], next: 'Sta9' },
    ifFalse: { effects: ['issueReleaseIndication'], next: 'Sta10' },
  },
  'AR-9': { description: 'Send A-RELEASE-RP PDU', effects: ['sendReleaseRp'], next: 'Sta11' },
  'AR-10': { description: 'Issue A-RELEASE confirmation primitive', effects: ['issueReleaseConfirm'], next: 'Sta12' },

  // Table 9-9: Association abort related actions.
  'AA-1': {
    description: 'Send A-ABORT PDU (service-user source) and start (or restart if already started) ARTIM timer',
    effects: ['sendAbortServiceUser', 'startArtim'],
    next: 'Sta13',
  },
  'AA-2': {
    description: 'Stop ARTIM timer if running. Close transport connection',
    effects: ['stopArtim', 'closeTransport'],
    next: 'Sta1',
  },
  'AA-3': {
    description:
      'If (service-user initiated abort): issue A-ABORT indication and close transport connection; ' +
      'otherwise (service-provider initiated abort): issue A-P-ABORT indication and close transport connection',
    condition: 'isAbortFromServiceUser',
    ifTrue: { effects: ['issueAbortIndication', 'closeTransport'], next: 'Sta1' },
    ifFalse: { effects: ['issuePAbortIndication', 'closeTransport'], next: 'Sta1' },
  },
  'AA-4': { description: 'Issue A-P-ABORT indication primitive', effects: ['issuePAbortIndication'], next: 'Sta1' },
  'AA-5': { description: 'Stop ARTIM timer', effects: ['stopArtim'], next: 'Sta1' },
  'AA-6': { description: 'Ignore PDU', effects: [], next: 'Sta13' },
  // The standard does not name AA-7's source. AA-7 happens only in Sta13, where the association no longer exists
  // and no service-user is left to initiate anything: the UL service-provider is the source.
  'AA-7': { description: 'Send A-ABORT PDU', effects: ['sendAbortServiceProvider'], next: 'Sta13' },
  'AA-8': {
    description: 'Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, and start ARTIM timer',
    effects: ['sendAbortServiceProvider', 'issuePAbortIndication', 'startArtim'],
    next: 'Sta13',
  },
} as const satisfies Record<string, ActionDef>;

export type ActionName = keyof typeof ACTIONS;

type Cell = ActionName | null;
type Row = readonly [Cell, Cell, Cell, Cell, Cell, Cell, Cell, Cell, Cell, Cell, Cell, Cell, Cell];

/**
 * PS3.8 Table 9-10 as printed: one row per event, one column per state, `null` for an empty cell. Each action's
 * next state is in {@link ACTIONS}; the table's cells print the same next states (AE-6 "Sta3 or 13", AR-8 "Sta9 or 10").
 */
const TABLE_9_10: Readonly<Record<EventName, Row>> = {
  //      Sta1    Sta2    Sta3    Sta4    Sta5    Sta6    Sta7    Sta8    Sta9    Sta10   Sta11   Sta12   Sta13
  Evt1:  ['AE-1', null,   null,   null,   null,   null,   null,   null,   null,   null,   null,   null,   null  ],
  Evt2:  [null,   null,   null,   'AE-2', null,   null,   null,   null,   null,   null,   null,   null,   null  ],
  Evt3:  [null,   'AA-1', 'AA-8', null,   'AE-3', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-6'],
  Evt4:  [null,   'AA-1', 'AA-8', null,   'AE-4', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-6'],
  Evt5:  ['AE-5', null,   null,   null,   null,   null,   null,   null,   null,   null,   null,   null,   null  ],
  Evt6:  [null,   'AE-6', 'AA-8', null,   'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-7'],
  Evt7:  [null,   null,   'AE-7', null,   null,   null,   null,   null,   null,   null,   null,   null,   null  ],
  Evt8:  [null,   null,   'AE-8', null,   null,   null,   null,   null,   null,   null,   null,   null,   null  ],
  Evt9:  [null,   null,   null,   null,   null,   'DT-1', null,   'AR-7', null,   null,   null,   null,   null  ],
  Evt10: [null,   'AA-1', 'AA-8', null,   'AA-8', 'DT-2', 'AR-6', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-6'],
  Evt11: [null,   null,   null,   null,   null,   'AR-1', null,   null,   null,   null,   null,   null,   null  ],
  Evt12: [null,   'AA-1', 'AA-8', null,   'AA-8', 'AR-2', 'AR-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-6'],
  Evt13: [null,   'AA-1', 'AA-8', null,   'AA-8', 'AA-8', 'AR-3', 'AA-8', 'AA-8', 'AR-10','AR-3', 'AA-8', 'AA-6'],
  Evt14: [null,   null,   null,   null,   null,   null,   null,   'AR-4', 'AR-9', null,   null,   'AR-4', null  ],
  Evt15: [null,   null,   'AA-1', 'AA-2', 'AA-1', 'AA-1', 'AA-1', 'AA-1', 'AA-1', 'AA-1', 'AA-1', 'AA-1', null  ],
  Evt16: [null,   'AA-2', 'AA-3', null,   'AA-3', 'AA-3', 'AA-3', 'AA-3', 'AA-3', 'AA-3', 'AA-3', 'AA-3', 'AA-2'],
  Evt17: [null,   'AA-5', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AA-4', 'AR-5'],
  Evt18: [null,   'AA-2', null,   null,   null,   null,   null,   null,   null,   null,   null,   null,   'AA-2'],
  Evt19: [null,   'AA-1', 'AA-8', null,   'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-8', 'AA-7'],
};

const STATE_NAMES = Object.keys(STATES) as StateName[];

/**
 * PS3.8 Table 9-10: `TRANSITIONS[`${event}|${state}`]` is the action of that cell. Exactly the non-empty cells
 * are present (123 of 19 x 13); a missing key means the event is not valid in that state.
 */
export const TRANSITIONS: Readonly<Partial<Record<TransitionKey, ActionName>>> = Object.freeze(
  Object.fromEntries(
    (Object.entries(TABLE_9_10) as [EventName, Row][]).flatMap(([event, row]) =>
      row.flatMap((action, column) => (action === null ? [] : [[`${event}|${STATE_NAMES[column]}`, action] as const])),
    ),
  ),
);

/** The action of the cell (`event`, `state`) of PS3.8 Table 9-10, or `undefined` for an empty cell. */
export function transitionFor(event: EventName, state: StateName): ActionName | undefined {
  const key = `${event}|${state}`;
  return Object.hasOwn(TRANSITIONS, key) ? TRANSITIONS[key as TransitionKey] : undefined;
}

export type FsmErrorCode = 'ERR_FSM_INVALID_EVENT' | 'ERR_FSM_REENTRANT';

/**
 * Raised by {@link StateMachine.handle}; the state is left unchanged and no effect has run.
 *
 * - `ERR_FSM_INVALID_EVENT`: the cell (`event`, `state`) of PS3.8 Table 9-10 is empty. Every PDU event has a cell
 *   in every state with an open transport connection, so an empty cell is either a local-user primitive issued in
 *   the wrong state (e.g. P-DATA request in Sta7: refuse it to the user; if the association cannot go on, the
 *   caller A-ABORTs it, Evt15) or a transport or timer event that cannot occur there (a bug in the host).
 * - `ERR_FSM_REENTRANT`: an effect called `handle` while a transition was under way; hosts queue such events.
 */
export class FsmError extends Error {
  readonly code: FsmErrorCode;
  readonly event: EventName;
  readonly state: StateName;

  constructor(code: FsmErrorCode, event: EventName, state: StateName) {
    super(
      code === 'ERR_FSM_INVALID_EVENT'
        ? `${event} (${EVENTS[event] ?? 'unknown event'}) is not valid in ${state} (${STATES[state]}): PS3.8 Table 9-10 has no action for it`
        : `${event} was raised in ${state} while a transition was under way: queue events raised by effects`,
    );
    this.name = 'FsmError';
    this.code = code;
    this.event = event;
    this.state = state;
  }
}

/**
 * The DICOM UL protocol machine of PS3.8 §9.2 for one association (one transport connection, PS3.8 §9.1.1).
 *
 * ```ts
 * const fsm = new StateMachine(host);        // Sta1
 * fsm.handle('Evt5');                        // AE-5: transport connection accepted, ARTIM started -> Sta2
 * fsm.handle('Evt6', associateRq);           // AE-6: host.isAssociateRqAcceptable(associateRq) ? Sta3 : Sta13
 * ```
 */
export class StateMachine<P = unknown> {
  readonly #host: FsmHost<P>;
  #state: StateName;
  #busy = false;

  constructor(host: FsmHost<P>, initial: StateName = 'Sta1') {
    if (!Object.hasOwn(STATES, initial)) throw new TypeError(`unknown state ${String(initial)}`);
    this.#host = host;
    this.#state = initial;
  }

  /** The current state, Sta1 to Sta13. */
  get state(): StateName {
    return this.#state;
  }

  /** Whether `event` has a cell in the current state (whether {@link handle} would accept it). */
  accepts(event: EventName): boolean {
    return transitionFor(event, this.#state) !== undefined;
  }

  /**
   * Handles one event: looks up the cell of PS3.8 Table 9-10, asks the host the action's condition if it has one,
   * runs the action's effects in order (each with `payload`), sets the next state, then calls `host.onTransition`.
   * Returns the action taken. If an effect throws, the remaining effects are skipped, the state is left unchanged
   * and the error propagates.
   *
   * @throws {FsmError} `ERR_FSM_INVALID_EVENT` for an empty cell, `ERR_FSM_REENTRANT` when called from an effect.
   */
  handle(event: EventName, payload?: P): ActionName {
    const from = this.#state;
    if (this.#busy) throw new FsmError('ERR_FSM_REENTRANT', event, from);
    const action = transitionFor(event, from);
    if (action === undefined) throw new FsmError('ERR_FSM_INVALID_EVENT', event, from);
    const def: ActionDef = ACTIONS[action];
    this.#busy = true;
    try {
      const outcome =
        'condition' in def ? (this.#host[def.condition](payload, { from, event, action }) ? def.ifTrue : def.ifFalse) : def;
      const transition: Transition = { from, event, action, to: outcome.next };
      for (const effect of outcome.effects) this.#host[effect](payload, transition);
      this.#state = outcome.next;
    } finally {
      this.#busy = false;
    }
    this.#host.onTransition?.(from, event, action, this.#state);
    return action;
  }
}
