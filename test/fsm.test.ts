import { expect } from 'chai';
import {
  ACTIONS,
  CONDITIONS,
  EFFECTS,
  EVENTS,
  FsmError,
  STATES,
  StateMachine,
  TRANSITIONS,
  type ActionName,
  type ConditionName,
  type EffectName,
  type EventName,
  type FsmHost,
  type StateName,
  type Transition,
} from '../src/net/fsm.js';

/*
 * A second transcription of PS3.8 Table 9-10, read the other way from src/net/fsm.ts: column by column (one state at
 * a time) where fsm.ts is written row by row (one event at a time), each cell with the next state the table prints
 * under the action ("Sta3 or 13" is written ['AE-6', 'Sta3', 'Sta13']: next state when the action's condition holds,
 * then when it does not). The effects are transcribed again from Tables 9-6 to 9-9 below. Each cell's test checks
 * that both transcriptions agree; the coverage tests check that neither has a cell the other lacks.
 *
 * Reconciled while writing the two: AE-6's reject branch starts with "stop ARTIM timer" (the action's first clause
 * applies to both outcomes) and ends with "start ARTIM timer"; AA-3's condition selects the indication only, both
 * outcomes lead to Sta1 as the table's cells print; AA-7 names no abort source: both read it as service-provider
 * (Sta13 has no service-user left). AA-6 ("Ignore PDU") runs no effect at all.
 */
type Cell = readonly [ActionName, StateName] | readonly [ActionName, StateName, StateName];

const TABLE: Record<StateName, Partial<Record<EventName, Cell>>> = {
  Sta1: {
    Evt1: ['AE-1', 'Sta4'],
    Evt5: ['AE-5', 'Sta2'],
  },
  Sta2: {
    Evt3: ['AA-1', 'Sta13'],
    Evt4: ['AA-1', 'Sta13'],
    Evt6: ['AE-6', 'Sta3', 'Sta13'],
    Evt10: ['AA-1', 'Sta13'],
    Evt12: ['AA-1', 'Sta13'],
    Evt13: ['AA-1', 'Sta13'],
    Evt16: ['AA-2', 'Sta1'],
    Evt17: ['AA-5', 'Sta1'],
    Evt18: ['AA-2', 'Sta1'],
    Evt19: ['AA-1', 'Sta13'],
  },
  Sta3: {
    Evt3: ['AA-8', 'Sta13'],
    Evt4: ['AA-8', 'Sta13'],
    Evt6: ['AA-8', 'Sta13'],
    Evt7: ['AE-7', 'Sta6'],
    Evt8: ['AE-8', 'Sta13'],
    Evt10: ['AA-8', 'Sta13'],
    Evt12: ['AA-8', 'Sta13'],
    Evt13: ['AA-8', 'Sta13'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta4: {
    Evt2: ['AE-2', 'Sta5'],
    Evt15: ['AA-2', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
  },
  Sta5: {
    Evt3: ['AE-3', 'Sta6'],
    Evt4: ['AE-4', 'Sta1'],
    Evt6: ['AA-8', 'Sta13'],
    Evt10: ['AA-8', 'Sta13'],
    Evt12: ['AA-8', 'Sta13'],
    Evt13: ['AA-8', 'Sta13'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta6: {
    Evt3: ['AA-8', 'Sta13'],
    Evt4: ['AA-8', 'Sta13'],
    Evt6: ['AA-8', 'Sta13'],
    Evt9: ['DT-1', 'Sta6'],
    Evt10: ['DT-2', 'Sta6'],
    Evt11: ['AR-1', 'Sta7'],
    Evt12: ['AR-2', 'Sta8'],
    Evt13: ['AA-8', 'Sta13'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta7: {
    Evt3: ['AA-8', 'Sta13'],
    Evt4: ['AA-8', 'Sta13'],
    Evt6: ['AA-8', 'Sta13'],
    Evt10: ['AR-6', 'Sta7'],
    Evt12: ['AR-8', 'Sta9', 'Sta10'],
    Evt13: ['AR-3', 'Sta1'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta8: {
    Evt3: ['AA-8', 'Sta13'],
    Evt4: ['AA-8', 'Sta13'],
    Evt6: ['AA-8', 'Sta13'],
    Evt9: ['AR-7', 'Sta8'],
    Evt10: ['AA-8', 'Sta13'],
    Evt12: ['AA-8', 'Sta13'],
    Evt13: ['AA-8', 'Sta13'],
    Evt14: ['AR-4', 'Sta13'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta9: {
    Evt3: ['AA-8', 'Sta13'],
    Evt4: ['AA-8', 'Sta13'],
    Evt6: ['AA-8', 'Sta13'],
    Evt10: ['AA-8', 'Sta13'],
    Evt12: ['AA-8', 'Sta13'],
    Evt13: ['AA-8', 'Sta13'],
    Evt14: ['AR-9', 'Sta11'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta10: {
    Evt3: ['AA-8', 'Sta13'],
    Evt4: ['AA-8', 'Sta13'],
    Evt6: ['AA-8', 'Sta13'],
    Evt10: ['AA-8', 'Sta13'],
    Evt12: ['AA-8', 'Sta13'],
    Evt13: ['AR-10', 'Sta12'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta11: {
    Evt3: ['AA-8', 'Sta13'],
    Evt4: ['AA-8', 'Sta13'],
    Evt6: ['AA-8', 'Sta13'],
    Evt10: ['AA-8', 'Sta13'],
    Evt12: ['AA-8', 'Sta13'],
    Evt13: ['AR-3', 'Sta1'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta12: {
    Evt3: ['AA-8', 'Sta13'],
    Evt4: ['AA-8', 'Sta13'],
    Evt6: ['AA-8', 'Sta13'],
    Evt10: ['AA-8', 'Sta13'],
    Evt12: ['AA-8', 'Sta13'],
    Evt13: ['AA-8', 'Sta13'],
    Evt14: ['AR-4', 'Sta13'],
    Evt15: ['AA-1', 'Sta13'],
    Evt16: ['AA-3', 'Sta1'],
    Evt17: ['AA-4', 'Sta1'],
    Evt19: ['AA-8', 'Sta13'],
  },
  Sta13: {
    Evt3: ['AA-6', 'Sta13'],
    Evt4: ['AA-6', 'Sta13'],
    Evt6: ['AA-7', 'Sta13'],
    Evt10: ['AA-6', 'Sta13'],
    Evt12: ['AA-6', 'Sta13'],
    Evt13: ['AA-6', 'Sta13'],
    Evt16: ['AA-2', 'Sta1'],
    Evt17: ['AR-5', 'Sta1'],
    Evt18: ['AA-2', 'Sta1'],
    Evt19: ['AA-7', 'Sta13'],
  },
};

/** Tables 9-6 to 9-9 read again: each action's effects, in the order the definition names them. */
type Effects = readonly EffectName[] | { readonly when: ConditionName; readonly yes: readonly EffectName[]; readonly no: readonly EffectName[] };

const EXPECTED_EFFECTS: Record<ActionName, Effects> = {
  'AE-1': ['issueTransportConnect'],
  'AE-2': ['sendAssociateRq'],
  'AE-3': ['issueAssociateConfirmAccept'],
  'AE-4': ['issueAssociateConfirmReject', 'closeTransport'],
  'AE-5': ['issueTransportResponse', 'startArtim'],
  'AE-6': {
    when: 'isAssociateRqAcceptable',
    yes: ['stopArtim', 'issueAssociateIndication'],
    no: ['stopArtim', 'sendAssociateRj', 'startArtim'],
  },
  'AE-7': ['sendAssociateAc'],
  'AE-8': ['sendAssociateRj', 'startArtim'],
  'DT-1': ['sendPData'],
  'DT-2': ['issuePDataIndication'],
  'AR-1': ['sendReleaseRq'],
  'AR-2': ['issueReleaseIndication'],
  'AR-3': ['issueReleaseConfirm', 'closeTransport'],
  'AR-4': ['sendReleaseRp', 'startArtim'],
  'AR-5': ['stopArtim'],
  'AR-6': ['issuePDataIndication'],
  'AR-7': ['sendPData'],
  'AR-8': { when: 'isRequestor', yes: ['issueReleaseIndication'], no: ['issueReleaseIndication'] },
  'AR-9': ['sendReleaseRp'],
  'AR-10': ['issueReleaseConfirm'],
  'AA-1': ['sendAbortServiceUser', 'startArtim'],
  'AA-2': ['stopArtim', 'closeTransport'],
  'AA-3': {
    when: 'isAbortFromServiceUser',
    yes: ['issueAbortIndication', 'closeTransport'],
    no: ['issuePAbortIndication', 'closeTransport'],
  },
  'AA-4': ['issuePAbortIndication'],
  'AA-5': ['stopArtim'],
  'AA-6': [],
  'AA-7': ['sendAbortServiceProvider'],
  'AA-8': ['sendAbortServiceProvider', 'issuePAbortIndication', 'startArtim'],
};

const ALL_STATES = Array.from({ length: 13 }, (_, i) => `Sta${i + 1}` as StateName);
const ALL_EVENTS = Array.from({ length: 19 }, (_, i) => `Evt${i + 1}` as EventName);

interface Payload {
  readonly id: number;
  /** A-ABORT PDU source (PS3.8 Table 9-26): 0 service-user, 2 service-provider. */
  readonly source?: number;
}

interface EffectCall {
  readonly name: EffectName;
  readonly payload: Payload | undefined;
  readonly t: Transition;
}

/** A fake host that records every effect, question and transition; `hook` lets a test react to an effect. */
class RecordingHost implements FsmHost<Payload> {
  readonly calls: EffectCall[] = [];
  readonly queries: { name: ConditionName; payload: Payload | undefined }[] = [];
  readonly transitions: [StateName, EventName, ActionName, StateName][] = [];
  hook?: (call: EffectCall) => void;

  constructor(readonly answers: Record<ConditionName, boolean> = { isAssociateRqAcceptable: true, isRequestor: true, isAbortFromServiceUser: true }) {}

  private effect(name: EffectName) {
    return (payload: Payload | undefined, t: Transition): void => {
      const call = { name, payload, t };
      this.calls.push(call);
      this.hook?.(call);
    };
  }
  private condition(name: ConditionName) {
    return (payload: Payload | undefined): boolean => {
      this.queries.push({ name, payload });
      return this.answers[name];
    };
  }

  issueTransportConnect = this.effect('issueTransportConnect');
  issueTransportResponse = this.effect('issueTransportResponse');
  closeTransport = this.effect('closeTransport');
  startArtim = this.effect('startArtim');
  stopArtim = this.effect('stopArtim');
  sendAssociateRq = this.effect('sendAssociateRq');
  sendAssociateAc = this.effect('sendAssociateAc');
  sendAssociateRj = this.effect('sendAssociateRj');
  sendPData = this.effect('sendPData');
  sendReleaseRq = this.effect('sendReleaseRq');
  sendReleaseRp = this.effect('sendReleaseRp');
  sendAbortServiceUser = this.effect('sendAbortServiceUser');
  sendAbortServiceProvider = this.effect('sendAbortServiceProvider');
  issueAssociateIndication = this.effect('issueAssociateIndication');
  issueAssociateConfirmAccept = this.effect('issueAssociateConfirmAccept');
  issueAssociateConfirmReject = this.effect('issueAssociateConfirmReject');
  issuePDataIndication = this.effect('issuePDataIndication');
  issueReleaseIndication = this.effect('issueReleaseIndication');
  issueReleaseConfirm = this.effect('issueReleaseConfirm');
  issueAbortIndication = this.effect('issueAbortIndication');
  issuePAbortIndication = this.effect('issuePAbortIndication');
  isAssociateRqAcceptable = this.condition('isAssociateRqAcceptable');
  isRequestor = this.condition('isRequestor');
  isAbortFromServiceUser = this.condition('isAbortFromServiceUser');

  onTransition(from: StateName, event: EventName, action: ActionName, to: StateName): void {
    this.transitions.push([from, event, action, to]);
  }

  /** The effects run so far, by name, and forget them. */
  take(): EffectName[] {
    return this.calls.splice(0).map((c) => c.name);
  }
}

function cellsOf(table: Record<StateName, Partial<Record<EventName, Cell>>>): [StateName, EventName, Cell][] {
  return ALL_STATES.flatMap((state) =>
    ALL_EVENTS.flatMap((event) => {
      const cell = table[state][event];
      return cell ? [[state, event, cell] as [StateName, EventName, Cell]] : [];
    }),
  );
}

/** The outcomes a cell can have: one, or one per answer to the action's condition. */
function branchesOf(cell: Cell): { answer: boolean | undefined; effects: readonly EffectName[]; next: StateName }[] {
  const [action, nextIfTrue, nextIfFalse] = cell;
  const effects = EXPECTED_EFFECTS[action];
  if (Array.isArray(effects)) {
    expect(nextIfFalse, `${action} has one outcome: its cells print one next state`).to.equal(undefined);
    return [{ answer: undefined, effects, next: nextIfTrue }];
  }
  const { yes, no } = effects as Exclude<Effects, readonly EffectName[]>;
  return [
    { answer: true, effects: yes, next: nextIfTrue },
    { answer: false, effects: no, next: nextIfFalse ?? nextIfTrue },
  ];
}

describe('PS3.8 §9.2 state machine (net/fsm)', function () {
  describe('tables', function () {
    it('name the 13 states, 19 events and 28 actions of PS3.8 §9.2', () => {
      expect(Object.keys(STATES)).to.deep.equal(ALL_STATES);
      expect(Object.keys(EVENTS)).to.deep.equal(ALL_EVENTS);
      expect(Object.keys(ACTIONS)).to.have.members(Object.keys(EXPECTED_EFFECTS));
      expect(Object.keys(ACTIONS)).to.have.length(8 + 2 + 10 + 8);
      expect(STATES.Sta6).to.equal('Association established and ready for data transfer');
      expect(STATES.Sta13).to.equal('Awaiting Transport Connection Close Indication (Association no longer exists)');
      expect(EVENTS.Evt17).to.equal('Transport connection closed indication (local transport service)');
      expect(EVENTS.Evt19).to.equal('Unrecognized or invalid PDU received');
    });

    it('hold exactly the 123 non-empty cells of Table 9-10, as the independent transcription has them', () => {
      const expected = Object.fromEntries(cellsOf(TABLE).map(([state, event, [action]]) => [`${event}|${state}`, action]));
      expect(Object.keys(expected)).to.have.length(123);
      expect({ ...TRANSITIONS }).to.deep.equal(expected);
      expect(Object.isFrozen(TRANSITIONS)).to.equal(true);
    });

    it('use every action, every effect and every condition', () => {
      const used = new Set(Object.values(TRANSITIONS));
      expect([...used]).to.have.members(Object.keys(ACTIONS));
      const effects = new Set<string>();
      const conditions = new Set<string>();
      for (const def of Object.values(ACTIONS)) {
        if ('condition' in def) {
          conditions.add(def.condition);
          for (const e of [...def.ifTrue.effects, ...def.ifFalse.effects]) effects.add(e);
        } else {
          for (const e of def.effects) effects.add(e);
        }
      }
      expect([...effects]).to.have.members(Object.keys(EFFECTS));
      expect([...conditions]).to.have.members(Object.keys(CONDITIONS));
    });

    it('only AE-6, AR-8 and AA-3 ask a condition, and only AE-6 and AR-8 have a next state depending on it', () => {
      const conditional = Object.entries(ACTIONS).filter(([, def]) => 'condition' in def);
      expect(conditional.map(([name]) => name)).to.deep.equal(['AE-6', 'AR-8', 'AA-3']);
      const forking = conditional.filter(([, def]) => 'condition' in def && def.ifTrue.next !== def.ifFalse.next);
      expect(forking.map(([name]) => name)).to.deep.equal(['AE-6', 'AR-8']);
    });
  });

  describe('every cell of Table 9-10', function () {
    for (const [state, event, cell] of cellsOf(TABLE)) {
      const printed = cell.length === 3 ? `${cell[1]} or ${cell[2]}` : cell[1];
      it(`${state} + ${event} -> ${cell[0]} -> ${printed}`, () => {
        for (const branch of branchesOf(cell)) {
          const condition = Array.isArray(EXPECTED_EFFECTS[cell[0]]) ? undefined : (EXPECTED_EFFECTS[cell[0]] as { when: ConditionName }).when;
          const answers = { isAssociateRqAcceptable: true, isRequestor: true, isAbortFromServiceUser: true };
          if (condition) answers[condition] = branch.answer!;
          const host = new RecordingHost(answers);
          const fsm = new StateMachine(host, state);
          const payload: Payload = { id: 42 };
          const label = `${state} + ${event}${condition ? ` (${condition} = ${branch.answer})` : ''}`;

          expect(fsm.handle(event, payload), label).to.equal(cell[0]);
          expect(host.calls.map((c) => c.name), `${label}: effects in order`).to.deep.equal(branch.effects);
          for (const c of host.calls) {
            expect(c.payload, `${label}: ${c.name} gets the payload`).to.equal(payload);
            expect(c.t).to.deep.equal({ from: state, event, action: cell[0], to: branch.next });
          }
          expect(host.queries, `${label}: condition asked`).to.deep.equal(condition ? [{ name: condition, payload }] : []);
          expect(fsm.state, `${label}: next state`).to.equal(branch.next);
          expect(host.transitions).to.deep.equal([[state, event, cell[0], branch.next]]);
        }
      });
    }
  });

  describe('every empty cell of Table 9-10', function () {
    for (const state of ALL_STATES) {
      for (const event of ALL_EVENTS) {
        if (TABLE[state][event]) continue;
        it(`${state} + ${event} throws FsmError ERR_FSM_INVALID_EVENT`, () => {
          const host = new RecordingHost();
          const fsm = new StateMachine(host, state);
          expect(fsm.accepts(event)).to.equal(false);
          let caught: unknown;
          try {
            fsm.handle(event, { id: 1 });
          } catch (e) {
            caught = e;
          }
          expect(caught).to.be.instanceOf(FsmError);
          const err = caught as FsmError;
          expect(err.code).to.equal('ERR_FSM_INVALID_EVENT');
          expect(err.event).to.equal(event);
          expect(err.state).to.equal(state);
          expect(err.message).to.contain(event).and.to.contain(state);
          expect(fsm.state).to.equal(state);
          expect(host.calls).to.deep.equal([]);
          expect(host.queries).to.deep.equal([]);
          expect(host.transitions).to.deep.equal([]);
        });
      }
    }
  });

  describe('consistency of the effects with the states', function () {
    // Checked over every cell and every outcome: a third reading, by what each state means.
    it('ARTIM runs exactly in Sta2 and Sta13 (PS3.8 §9.1.2, §9.1.4)', () => {
      const runs = (s: StateName) => s === 'Sta2' || s === 'Sta13';
      for (const [state, event, cell] of cellsOf(TABLE)) {
        for (const { effects, next } of branchesOf(cell)) {
          let running = runs(state);
          for (const e of effects) {
            if (e === 'startArtim') running = true;
            if (e === 'stopArtim') running = false;
          }
          expect(running, `${state} + ${event} -> ${cell[0]} -> ${next}`).to.equal(runs(next));
        }
      }
    });

    it('the transport is closed in Sta1, opening in Sta4 and open elsewhere', () => {
      type Transport = 'closed' | 'opening' | 'open';
      const of = (s: StateName): Transport => (s === 'Sta1' ? 'closed' : s === 'Sta4' ? 'opening' : 'open');
      for (const [state, event, cell] of cellsOf(TABLE)) {
        for (const { effects, next } of branchesOf(cell)) {
          let transport = of(state);
          if (event === 'Evt2' || event === 'Evt5') transport = 'open';
          if (event === 'Evt17') transport = 'closed';
          for (const e of effects) {
            if (e === 'issueTransportConnect') transport = 'opening';
            if (e === 'closeTransport') transport = 'closed';
          }
          expect(transport, `${state} + ${event} -> ${cell[0]} -> ${next}`).to.equal(of(next));
        }
      }
    });

    it('the local user hears of the end of every association it knew of, exactly once', () => {
      // States where the local user knows an association (or its request) exists: Sta3..Sta12.
      const known = (s: StateName) => !['Sta1', 'Sta2', 'Sta13'].includes(s);
      const ends: EffectName[] = ['issueAssociateConfirmReject', 'issueReleaseConfirm', 'issueAbortIndication', 'issuePAbortIndication'];
      for (const [state, event, cell] of cellsOf(TABLE)) {
        for (const { effects, next } of branchesOf(cell)) {
          const told = effects.filter((e) => ends.includes(e)).length;
          // AR-10 confirms the release in a collision (Sta10 -> Sta12) before the user's own response.
          const endsHere = known(state) && !known(next) && !['Evt11', 'Evt14', 'Evt15', 'Evt8'].includes(event);
          const label = `${state} + ${event} -> ${cell[0]} -> ${next}`;
          if (endsHere) expect(told, label).to.equal(1);
          else if (!(state === 'Sta10' && event === 'Evt13')) expect(told, label).to.equal(0);
        }
      }
    });
  });

  describe('event sequences', function () {
    function drive(fsm: StateMachine<Payload>, steps: [EventName, ActionName, StateName][]): void {
      for (const [event, action, next] of steps) {
        expect(fsm.handle(event, { id: 0 }), `${event} in ${fsm.state}`).to.equal(action);
        expect(fsm.state, `after ${event}`).to.equal(next);
      }
    }

    it('requestor: establish, transfer, release (Sta1 -> Sta4 -> Sta5 -> Sta6 -> Sta7 -> Sta1)', () => {
      const host = new RecordingHost();
      const fsm = new StateMachine(host);
      expect(fsm.state).to.equal('Sta1');
      drive(fsm, [
        ['Evt1', 'AE-1', 'Sta4'],
        ['Evt2', 'AE-2', 'Sta5'],
        ['Evt3', 'AE-3', 'Sta6'],
        ['Evt9', 'DT-1', 'Sta6'],
        ['Evt10', 'DT-2', 'Sta6'],
        ['Evt11', 'AR-1', 'Sta7'],
        ['Evt10', 'AR-6', 'Sta7'],
        ['Evt13', 'AR-3', 'Sta1'],
      ]);
      expect(host.take()).to.deep.equal([
        'issueTransportConnect',
        'sendAssociateRq',
        'issueAssociateConfirmAccept',
        'sendPData',
        'issuePDataIndication',
        'sendReleaseRq',
        'issuePDataIndication',
        'issueReleaseConfirm',
        'closeTransport',
      ]);
      expect(host.transitions.map((t) => t.join(' '))).to.deep.equal([
        'Sta1 Evt1 AE-1 Sta4',
        'Sta4 Evt2 AE-2 Sta5',
        'Sta5 Evt3 AE-3 Sta6',
        'Sta6 Evt9 DT-1 Sta6',
        'Sta6 Evt10 DT-2 Sta6',
        'Sta6 Evt11 AR-1 Sta7',
        'Sta7 Evt10 AR-6 Sta7',
        'Sta7 Evt13 AR-3 Sta1',
      ]);
    });

    it('acceptor: accept, transfer, release, wait for the close (Sta1 -> Sta2 -> Sta3 -> Sta6 -> Sta8 -> Sta13 -> Sta1)', () => {
      const host = new RecordingHost({ isAssociateRqAcceptable: true, isRequestor: false, isAbortFromServiceUser: true });
      const fsm = new StateMachine(host);
      drive(fsm, [
        ['Evt5', 'AE-5', 'Sta2'],
        ['Evt6', 'AE-6', 'Sta3'],
        ['Evt7', 'AE-7', 'Sta6'],
        ['Evt10', 'DT-2', 'Sta6'],
        ['Evt12', 'AR-2', 'Sta8'],
        ['Evt9', 'AR-7', 'Sta8'],
        ['Evt14', 'AR-4', 'Sta13'],
        ['Evt17', 'AR-5', 'Sta1'],
      ]);
      expect(host.take()).to.deep.equal([
        'issueTransportResponse',
        'startArtim',
        'stopArtim',
        'issueAssociateIndication',
        'sendAssociateAc',
        'issuePDataIndication',
        'issueReleaseIndication',
        'sendPData',
        'sendReleaseRp',
        'startArtim',
        'stopArtim',
      ]);
    });

    it('rejects: by the local user (AE-8), by the service-provider (AE-6), and as seen by the requestor (AE-4)', () => {
      const user = new RecordingHost();
      drive(new StateMachine(user), [
        ['Evt5', 'AE-5', 'Sta2'],
        ['Evt6', 'AE-6', 'Sta3'],
        ['Evt8', 'AE-8', 'Sta13'],
        ['Evt17', 'AR-5', 'Sta1'],
      ]);
      expect(user.take()).to.deep.equal([
        'issueTransportResponse',
        'startArtim',
        'stopArtim',
        'issueAssociateIndication',
        'sendAssociateRj',
        'startArtim',
        'stopArtim',
      ]);

      const provider = new RecordingHost({ isAssociateRqAcceptable: false, isRequestor: false, isAbortFromServiceUser: true });
      drive(new StateMachine(provider), [
        ['Evt5', 'AE-5', 'Sta2'],
        ['Evt6', 'AE-6', 'Sta13'],
        ['Evt18', 'AA-2', 'Sta1'], // the peer never closes: ARTIM expires in Sta13
      ]);
      expect(provider.take()).to.deep.equal([
        'issueTransportResponse',
        'startArtim',
        'stopArtim',
        'sendAssociateRj',
        'startArtim',
        'stopArtim',
        'closeTransport',
      ]);

      const requestor = new RecordingHost();
      drive(new StateMachine(requestor), [
        ['Evt1', 'AE-1', 'Sta4'],
        ['Evt2', 'AE-2', 'Sta5'],
        ['Evt4', 'AE-4', 'Sta1'],
      ]);
      expect(requestor.take()).to.deep.equal(['issueTransportConnect', 'sendAssociateRq', 'issueAssociateConfirmReject', 'closeTransport']);
    });

    it('release collision, requestor side: Sta6 -> Sta7 -> Sta9 -> Sta11 -> Sta1', () => {
      const host = new RecordingHost({ isAssociateRqAcceptable: true, isRequestor: true, isAbortFromServiceUser: true });
      drive(new StateMachine(host, 'Sta6'), [
        ['Evt11', 'AR-1', 'Sta7'],
        ['Evt12', 'AR-8', 'Sta9'],
        ['Evt14', 'AR-9', 'Sta11'],
        ['Evt13', 'AR-3', 'Sta1'],
      ]);
      expect(host.queries.map((q) => q.name)).to.deep.equal(['isRequestor']);
      expect(host.take()).to.deep.equal(['sendReleaseRq', 'issueReleaseIndication', 'sendReleaseRp', 'issueReleaseConfirm', 'closeTransport']);
    });

    it('release collision, acceptor side: Sta6 -> Sta7 -> Sta10 -> Sta12 -> Sta13 -> Sta1', () => {
      const host = new RecordingHost({ isAssociateRqAcceptable: true, isRequestor: false, isAbortFromServiceUser: true });
      drive(new StateMachine(host, 'Sta6'), [
        ['Evt11', 'AR-1', 'Sta7'],
        ['Evt12', 'AR-8', 'Sta10'],
        ['Evt13', 'AR-10', 'Sta12'],
        ['Evt14', 'AR-4', 'Sta13'],
        ['Evt17', 'AR-5', 'Sta1'],
      ]);
      expect(host.take()).to.deep.equal([
        'sendReleaseRq',
        'issueReleaseIndication',
        'issueReleaseConfirm',
        'sendReleaseRp',
        'startArtim',
        'stopArtim',
      ]);
    });

    it('aborts: by the local user, by the peer (user or provider source), while connecting, and by a lost connection', () => {
      const local = new RecordingHost();
      drive(new StateMachine(local, 'Sta6'), [
        ['Evt15', 'AA-1', 'Sta13'],
        ['Evt17', 'AR-5', 'Sta1'],
      ]);
      expect(local.take()).to.deep.equal(['sendAbortServiceUser', 'startArtim', 'stopArtim']);

      const peerUser = new RecordingHost({ isAssociateRqAcceptable: true, isRequestor: true, isAbortFromServiceUser: true });
      drive(new StateMachine(peerUser, 'Sta6'), [['Evt16', 'AA-3', 'Sta1']]);
      expect(peerUser.take()).to.deep.equal(['issueAbortIndication', 'closeTransport']);

      const peerProvider = new RecordingHost({ isAssociateRqAcceptable: true, isRequestor: true, isAbortFromServiceUser: false });
      drive(new StateMachine(peerProvider, 'Sta7'), [['Evt16', 'AA-3', 'Sta1']]);
      expect(peerProvider.take()).to.deep.equal(['issuePAbortIndication', 'closeTransport']);

      const connecting = new RecordingHost();
      drive(new StateMachine(connecting), [
        ['Evt1', 'AE-1', 'Sta4'],
        ['Evt15', 'AA-2', 'Sta1'],
      ]);
      expect(connecting.take()).to.deep.equal(['issueTransportConnect', 'stopArtim', 'closeTransport']);

      const refused = new RecordingHost();
      drive(new StateMachine(refused), [
        ['Evt1', 'AE-1', 'Sta4'],
        ['Evt17', 'AA-4', 'Sta1'],
      ]);
      expect(refused.take()).to.deep.equal(['issueTransportConnect', 'issuePAbortIndication']);

      const lost = new RecordingHost();
      drive(new StateMachine(lost, 'Sta8'), [['Evt17', 'AA-4', 'Sta1']]);
      expect(lost.take()).to.deep.equal(['issuePAbortIndication']);

      // After our A-ABORT the peer neither closes nor answers: ARTIM expires in Sta13.
      const silent = new RecordingHost();
      drive(new StateMachine(silent, 'Sta3'), [
        ['Evt15', 'AA-1', 'Sta13'],
        ['Evt10', 'AA-6', 'Sta13'],
        ['Evt18', 'AA-2', 'Sta1'],
      ]);
      expect(silent.take()).to.deep.equal(['sendAbortServiceUser', 'startArtim', 'stopArtim', 'closeTransport']);
    });

    it('ARTIM expiry in Sta2: no A-ASSOCIATE-RQ arrived in time', () => {
      const host = new RecordingHost();
      drive(new StateMachine(host), [
        ['Evt5', 'AE-5', 'Sta2'],
        ['Evt18', 'AA-2', 'Sta1'],
      ]);
      expect(host.take()).to.deep.equal(['issueTransportResponse', 'startArtim', 'stopArtim', 'closeTransport']);
    });

    it('ARTIM expiry in Sta13 after our A-RELEASE-RP', () => {
      const host = new RecordingHost();
      drive(new StateMachine(host, 'Sta8'), [
        ['Evt14', 'AR-4', 'Sta13'],
        ['Evt6', 'AA-7', 'Sta13'], // a new A-ASSOCIATE-RQ on the dying connection is aborted
        ['Evt18', 'AA-2', 'Sta1'],
      ]);
      expect(host.take()).to.deep.equal(['sendReleaseRp', 'startArtim', 'sendAbortServiceProvider', 'stopArtim', 'closeTransport']);
    });

    it('an invalid PDU in Sta6 aborts with service-provider source (AA-8), then waits for the close', () => {
      const host = new RecordingHost();
      const fsm = new StateMachine(host, 'Sta6');
      drive(fsm, [
        ['Evt19', 'AA-8', 'Sta13'],
        ['Evt19', 'AA-7', 'Sta13'],
        ['Evt17', 'AR-5', 'Sta1'],
      ]);
      expect(host.take()).to.deep.equal([
        'sendAbortServiceProvider',
        'issuePAbortIndication',
        'startArtim',
        'sendAbortServiceProvider',
        'stopArtim',
      ]);
    });

    it('an unexpected PDU in Sta2 is answered with A-ABORT (AA-1), before any association exists', () => {
      const host = new RecordingHost();
      drive(new StateMachine(host, 'Sta2'), [
        ['Evt10', 'AA-1', 'Sta13'],
        ['Evt16', 'AA-2', 'Sta1'],
      ]);
      expect(host.take()).to.deep.equal(['sendAbortServiceUser', 'startArtim', 'stopArtim', 'closeTransport']);
    });
  });

  describe('two machines talking to each other', function () {
    /** A loopback "network": effects that send PDUs or touch the transport become the peer's events, in order. */
    function pair(options: { acceptable?: boolean; userAccepts?: boolean } = {}) {
      const queue: [StateMachine<Payload>, EventName, Payload | undefined][] = [];
      const log: string[] = [];
      const hostA = new RecordingHost({ isAssociateRqAcceptable: true, isRequestor: true, isAbortFromServiceUser: true });
      const hostB = new RecordingHost({
        isAssociateRqAcceptable: options.acceptable ?? true,
        isRequestor: false,
        isAbortFromServiceUser: true,
      });
      const a = new StateMachine(hostA);
      const b = new StateMachine(hostB);
      const wire = (self: StateMachine<Payload>, host: RecordingHost, peer: StateMachine<Payload>, name: string) => {
        host.isAbortFromServiceUser = (payload) => payload?.source === 0;
        host.onTransition = (from, event, action, to) => log.push(`${name} ${from} ${event} ${action} ${to}`);
        const toPeer: Partial<Record<EffectName, (p: Payload | undefined) => [EventName, Payload | undefined]>> = {
          sendAssociateRq: (p) => ['Evt6', p],
          sendAssociateAc: (p) => ['Evt3', p],
          sendAssociateRj: (p) => ['Evt4', p],
          sendPData: (p) => ['Evt10', p],
          sendReleaseRq: (p) => ['Evt12', p],
          sendReleaseRp: (p) => ['Evt13', p],
          sendAbortServiceUser: () => ['Evt16', { id: 0, source: 0 }],
          sendAbortServiceProvider: () => ['Evt16', { id: 0, source: 2 }],
          closeTransport: (p) => ['Evt17', p],
        };
        host.hook = ({ name: effect, payload, t }) => {
          const map = toPeer[effect];
          if (map) queue.push([peer, ...map(payload)]);
          if (effect === 'issueTransportConnect') queue.push([peer, 'Evt5', undefined], [self, 'Evt2', undefined]);
          // The local users: answer an A-ASSOCIATE indication, and an A-RELEASE indication when a response is
          // valid (Sta8, Sta9); on the acceptor side of a collision, after the release confirmation (Sta12).
          if (effect === 'issueAssociateIndication') queue.push([self, options.userAccepts === false ? 'Evt8' : 'Evt7', undefined]);
          if (effect === 'issueReleaseIndication' && (t.to === 'Sta8' || t.to === 'Sta9')) queue.push([self, 'Evt14', undefined]);
          if (effect === 'issueReleaseConfirm' && t.to === 'Sta12') queue.push([self, 'Evt14', undefined]);
        };
      };
      wire(a, hostA, b, 'A');
      wire(b, hostB, a, 'B');
      const run = (...events: [StateMachine<Payload>, EventName][]) => {
        for (const [m, e] of events) queue.push([m, e, { id: 1 }]);
        while (queue.length > 0) {
          const [m, e, p] = queue.shift()!;
          m.handle(e, p);
        }
      };
      return { a, b, hostA, hostB, log, run };
    }

    it('establish and release', () => {
      const { a, b, log, run } = pair();
      run([a, 'Evt1']);
      expect([a.state, b.state]).to.deep.equal(['Sta6', 'Sta6']);
      run([a, 'Evt9'], [b, 'Evt9']);
      run([a, 'Evt11']);
      expect([a.state, b.state]).to.deep.equal(['Sta1', 'Sta1']);
      expect(log).to.deep.equal([
        'A Sta1 Evt1 AE-1 Sta4',
        'B Sta1 Evt5 AE-5 Sta2',
        'A Sta4 Evt2 AE-2 Sta5',
        'B Sta2 Evt6 AE-6 Sta3',
        'B Sta3 Evt7 AE-7 Sta6',
        'A Sta5 Evt3 AE-3 Sta6',
        'A Sta6 Evt9 DT-1 Sta6',
        'B Sta6 Evt9 DT-1 Sta6',
        'B Sta6 Evt10 DT-2 Sta6',
        'A Sta6 Evt10 DT-2 Sta6',
        'A Sta6 Evt11 AR-1 Sta7',
        'B Sta6 Evt12 AR-2 Sta8',
        'B Sta8 Evt14 AR-4 Sta13',
        'A Sta7 Evt13 AR-3 Sta1',
        'B Sta13 Evt17 AR-5 Sta1',
      ]);
    });

    it('a release collision resolves through Sta9/Sta11 (requestor) and Sta10/Sta12 (acceptor)', () => {
      const { a, b, log, run } = pair();
      run([a, 'Evt1']);
      log.length = 0;
      run([a, 'Evt11'], [b, 'Evt11']);
      expect([a.state, b.state]).to.deep.equal(['Sta1', 'Sta1']);
      expect(log).to.deep.equal([
        'A Sta6 Evt11 AR-1 Sta7',
        'B Sta6 Evt11 AR-1 Sta7',
        'B Sta7 Evt12 AR-8 Sta10',
        'A Sta7 Evt12 AR-8 Sta9',
        'A Sta9 Evt14 AR-9 Sta11',
        'B Sta10 Evt13 AR-10 Sta12',
        'B Sta12 Evt14 AR-4 Sta13',
        'A Sta11 Evt13 AR-3 Sta1',
        'B Sta13 Evt17 AR-5 Sta1',
      ]);
    });

    it('rejections end with both sides idle', () => {
      for (const options of [{ userAccepts: false }, { acceptable: false }]) {
        const { a, b, hostA, run } = pair(options);
        run([a, 'Evt1']);
        expect([a.state, b.state]).to.deep.equal(['Sta1', 'Sta1']);
        expect(hostA.calls.map((c) => c.name)).to.include('issueAssociateConfirmReject');
      }
    });

    it('an A-ABORT from either side ends with both sides idle and the right indication', () => {
      const user = pair();
      user.run([user.a, 'Evt1']);
      user.run([user.b, 'Evt15']);
      expect([user.a.state, user.b.state]).to.deep.equal(['Sta1', 'Sta1']);
      expect(user.hostA.calls.map((c) => c.name)).to.include('issueAbortIndication').and.not.include('issuePAbortIndication');

      const provider = pair();
      provider.run([provider.a, 'Evt1']);
      provider.run([provider.a, 'Evt19']);
      expect([provider.a.state, provider.b.state]).to.deep.equal(['Sta1', 'Sta1']);
      expect(provider.hostB.calls.map((c) => c.name)).to.include('issuePAbortIndication').and.not.include('issueAbortIndication');
    });
  });

  describe('the machine', function () {
    it('starts in Sta1 or the given state, and refuses an unknown one', () => {
      expect(new StateMachine(new RecordingHost()).state).to.equal('Sta1');
      expect(new StateMachine(new RecordingHost(), 'Sta6').state).to.equal('Sta6');
      expect(() => new StateMachine(new RecordingHost(), 'Sta14' as StateName)).to.throw(TypeError);
    });

    it('accepts() answers from Table 9-10', () => {
      const fsm = new StateMachine(new RecordingHost(), 'Sta7');
      expect(fsm.accepts('Evt10')).to.equal(true);
      expect(fsm.accepts('Evt9')).to.equal(false);
    });

    it('refuses an event raised from inside an effect (ERR_FSM_REENTRANT) and stays usable', () => {
      const host = new RecordingHost();
      const fsm = new StateMachine(host, 'Sta6');
      host.hook = () => fsm.handle('Evt17');
      expect(() => fsm.handle('Evt9')).to.throw(FsmError).with.property('code', 'ERR_FSM_REENTRANT');
      expect(fsm.state).to.equal('Sta6');
      host.hook = undefined;
      expect(fsm.handle('Evt9')).to.equal('DT-1');
    });

    it('leaves the state unchanged when an effect throws, and skips the effects after it', () => {
      const host = new RecordingHost();
      const fsm = new StateMachine(host, 'Sta6');
      host.hook = ({ name }) => {
        if (name === 'sendAbortServiceProvider') throw new Error('EPIPE');
      };
      expect(() => fsm.handle('Evt19')).to.throw('EPIPE');
      expect(fsm.state).to.equal('Sta6');
      expect(host.take()).to.deep.equal(['sendAbortServiceProvider']);
      expect(host.transitions).to.deep.equal([]);
      host.hook = undefined;
      expect(fsm.handle('Evt15')).to.equal('AA-1');
      expect(fsm.state).to.equal('Sta13');
    });

    it('works without onTransition', () => {
      const host = new RecordingHost();
      const bare: FsmHost<Payload> = { ...host, onTransition: undefined };
      const fsm = new StateMachine(bare);
      expect(fsm.handle('Evt5')).to.equal('AE-5');
      expect(fsm.state).to.equal('Sta2');
    });
  });
});
