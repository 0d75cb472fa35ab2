/**
 * The cases of the association fuzz test (test/fuzz-association.test.ts) and the client that plays them: built from
 * the run seed and the case index alone, played over loopback against the server's port. Runs in a worker thread
 * (`fuzz-client.ts`) so that the client and the server under test each have a core, or in the test's own thread
 * when a case is replayed.
 *
 * Two families of cases, fixed by the case index (35 of every 100 are association-level):
 * - Association level, one connection per case: a valid conversation (an A-ASSOCIATE-RQ proposing Verification
 *   and CT Image Storage, with varied Maximum Length and user information sub-items; P-DATA-TF with C-ECHO-RQ and
 *   C-STORE-RQ command sets and datasets, fragmented in varied ways; an A-RELEASE-RQ, an A-ABORT or silence), then
 *   0 to 4 mutations: bit flips, bytes set to edge values, PDU-, item-, PDV- and command-element lengths
 *   corrupted, PDV headers changed, command fields changed, PDUs truncated, duplicated, swapped, moved, dropped,
 *   random bytes and stray PDUs inserted, the stream cut. Sent as a requestor would (the first PDU, then the rest
 *   once the server answered, the release once the responses are in) PDU by PDU, in one write, or in many small
 *   writes; then the client waits for the server to close, half-closes, or resets.
 * - DIMSE level, batched: the cases of a batch share an association (a new one when a case ends it). A case is one
 *   C-ECHO or C-STORE exchange with 0 to 3 mutations: command fields, Message Control Headers, presentation context
 *   IDs, dataset bytes, fragments reordered, dropped or duplicated, "last" bits, PDV lengths, P-DATA-TF duplicated,
 *   swapped or dropped, a stray PDU after it, or the connection dropped in the middle of the dataset. The client
 *   waits for the response (or the end of the association) before the next case.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../../src/dicom/transfer-syntax.js';
import { SopClasses } from '../../src/dicom/uids.js';
import { Status } from '../../src/dimse/status.js';
import type { Pdu } from '../../src/net/pdu/types.js';
import { makeInstance } from './factory.js';
import {
  AcceptorOutput,
  caseSeed,
  commandLengthOffsets,
  EDGE_BYTES,
  EDGE_U16,
  EDGE_U32,
  echoCommand,
  encodeCommandSet,
  itemLengthOffsets,
  mutateCommand,
  parseCommandElements,
  Rng,
  storeCommand,
  type CommandElement,
} from './fuzz-traffic.js';
import { datasetBytes } from './interop.js';
import {
  abort,
  applicationContext,
  associate,
  asyncOpsWindow,
  implementationClassUid,
  implementationVersionName,
  maximumLength,
  pDataTf,
  pdu,
  pdv,
  presentationContextRq,
  releaseRp,
  releaseRq,
  roleSelection,
  userIdentityRq,
  userInformation,
} from './pdu-bytes.js';

// ---------------------------------------------------------------------------------------------------------------
// Parameters

/** The server's timers, small so that stalled cases end fast (the test configures its server with them). */
export const ARTIM_MS = 600;
export const IDLE_MS = 1000;
/** Our Maximum Length (the server's P-DATA cap). */
export const SERVER_MAX_PDU = 16384;
/** The server must have closed (or answered) within this of the last byte sent: its timers, plus slack for a loaded machine. */
export const CLOSE_BOUND_MS = IDLE_MS + ARTIM_MS + 4000;
/** After a first PDU that is not the RQ as built, the client waits this long at most for an answer before sending the rest. */
const FIRST_ANSWER_WAIT_MS = 100;
/** Before an A-RELEASE-RQ, the client waits this long at most for the responses to its requests. */
const RELEASE_WAIT_MS = CLOSE_BOUND_MS;

/** In each block of 100 case indexes, the first 35 are association-level cases, the other 65 five DIMSE-level batches of 13. */
const BLOCK = 100;
const ASSOCIATION_CASES_PER_BLOCK = 35;
const BATCH = 13;
export const isAssociationCase = (index: number): boolean => index % BLOCK < ASSOCIATION_CASES_PER_BLOCK;
export const batchStart = (index: number): number => {
  const block = index - (index % BLOCK);
  return block + ASSOCIATION_CASES_PER_BLOCK + BATCH * Math.floor((index - block - ASSOCIATION_CASES_PER_BLOCK) / BATCH);
};

/** The run seed (set by `runFuzz`). */
let SEED = 0;

// ---------------------------------------------------------------------------------------------------------------
// Valid traffic: contexts, datasets

export const VERIFICATION = SopClasses.Verification;
export const CT = SopClasses.CTImageStorage;
/** Context IDs of the A-ASSOCIATE-RQs: Verification, CT in explicit VR LE, CT in implicit VR LE. */
export const CTX_ECHO = 1;
export const CTX_CT_EXPLICIT = 3;
export const CTX_CT_IMPLICIT = 5;
const STUDY_UID = '1.2.826.0.1.3680043.99.77';
const SERIES_UID = '1.2.826.0.1.3680043.99.77.1';
/** SOP Instance UIDs of one length (37 characters, NUL-padded in the dataset), one per case: patched into templates. */
export const sopUidOf = (index: number) => `1.2.826.0.1.3680043.99.77.1.${String(index).padStart(8, '0')}`;
const TEMPLATE_SOP = sopUidOf(0);

interface Template {
  bytes: Buffer;
  uidOffsets: number[];
}

/** The dataset (the bytes after the meta header) of a generated CT instance, with where its SOP Instance UID sits. */
function template(transferSyntaxUid: string, pixelBytes: number): Template {
  const file = makeInstance({
    patientId: 'FUZZ',
    patientName: 'FUZZ^CASE',
    studyInstanceUid: STUDY_UID,
    seriesInstanceUid: SERIES_UID,
    sopInstanceUid: TEMPLATE_SOP,
    transferSyntaxUid,
    pixelBytes,
  });
  const bytes = Buffer.from(datasetBytes(file));
  const uidOffsets: number[] = [];
  for (let at = bytes.indexOf(TEMPLATE_SOP); at >= 0; at = bytes.indexOf(TEMPLATE_SOP, at + 1)) uidOffsets.push(at);
  return { bytes, uidOffsets };
}

/** Small (one PDV) and large (several PDUs at 16 KiB) datasets, by syntax. */
const TEMPLATES: Record<string, [Template, Template]> = {
  [ExplicitVRLittleEndian]: [template(ExplicitVRLittleEndian, 512), template(ExplicitVRLittleEndian, 40000)],
  [ImplicitVRLittleEndian]: [template(ImplicitVRLittleEndian, 512), template(ImplicitVRLittleEndian, 40000)],
};

export const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

function datasetFor(t: Template, sopInstanceUid: string): Buffer {
  const out = Buffer.from(t.bytes);
  for (const at of t.uidOffsets) out.write(sopInstanceUid, at, 'latin1');
  return out;
}

/** Fragments of a dataset: whole when it fits (by chance), else pieces of one random even size. */
function fragmentsOf(dataset: Buffer, rng: Rng): Buffer[] {
  const room = SERVER_MAX_PDU - 6;
  const size = dataset.length <= room && rng.chance(0.6) ? dataset.length : Math.max(2, rng.between(1, Math.min(room, dataset.length)) & ~1);
  const out: Buffer[] = [];
  for (let o = 0; o < dataset.length; o += size) out.push(dataset.subarray(o, Math.min(o + size, dataset.length)));
  return out;
}

/** What a case stored (or should have): followed by the storage checks. */
export interface StoreRecord {
  sopInstanceUid: string;
  sha1: string;
  length: number;
}

/**
 * Where a case's dataset stands after the mutations: `intact` (its PDVs sent whole, in order, untouched, nothing
 * slipped between them), `cut` (intact up to where the stream or the connection was cut, inside it), `altered`.
 */
export type DatasetFate = 'intact' | 'cut' | 'altered' | 'none';

// ---------------------------------------------------------------------------------------------------------------
// Association-level cases: one conversation per connection

type Role = 'rq' | 'cmd' | 'data' | 'cmd+data' | 'release' | 'abort' | 'inserted';

interface Step {
  bytes: Buffer;
  role: Role;
  /** Position in the base sequence; -1 for an inserted step. */
  origin: number;
  touched: boolean;
}

interface AssociationCase {
  family: 'association';
  index: number;
  seed: number;
  scenario: string[];
  mutations: string[];
  steps: Step[];
  chunking: 'pdu' | 'whole' | 'split';
  /**
   * After sending: close once the server sent an A-ABORT, A-ASSOCIATE-RJ or A-RELEASE-RP, as PS3.8 has a peer do
   * (`polite`); never close (`stubborn`: the server's ARTIM must end it); half-close at once (`end`); reset (`reset`).
   */
  ending: 'polite' | 'stubborn' | 'end' | 'reset';
  /** The Maximum Length the RQ advertised (0 = none), if the RQ went out untouched. */
  advertisedMaxPdu: number | undefined;
  /** The C-STORE of this case, if any. */
  store?: StoreRecord;
  dataset: DatasetFate;
  /** No mutation at all, and nothing pathological in the base: must succeed. */
  control: boolean;
  /** Messages in the base conversation (for the control check). */
  messages: number;
}

/** Builds the base conversation of a case (valid traffic), as steps. */
function baseConversation(rng: Rng, index: number): { steps: Step[]; scenario: string[]; maxPdu: number; store?: StoreRecord; messages: number; pathological: boolean } {
  const scenario: string[] = [];
  const maxPdu = rng.chance(0.7) ? 16384 : rng.pick([0, 4096, 1024, 128, 64, rng.between(1, 200)]);
  scenario.push(`max=${maxPdu}`);
  const contexts = [
    presentationContextRq(CTX_ECHO, VERIFICATION, [ImplicitVRLittleEndian]),
    presentationContextRq(CTX_CT_EXPLICIT, CT, [ExplicitVRLittleEndian]),
    presentationContextRq(CTX_CT_IMPLICIT, CT, [ImplicitVRLittleEndian]),
  ];
  if (rng.chance(0.2)) contexts.push(presentationContextRq(7, SopClasses.StudyRootFind, [ImplicitVRLittleEndian])); // refused: find not allowed
  if (rng.chance(0.1)) contexts.push(presentationContextRq(9, '1.2.3.4.5.6', [ImplicitVRLittleEndian])); // unknown
  const sub = [maximumLength(maxPdu), implementationClassUid('1.2.826.0.1.3680043.99.77.0')];
  if (rng.chance(0.2)) sub.push(asyncOpsWindow(rng.between(0, 3), rng.between(0, 3)));
  if (rng.chance(0.2)) sub.push(roleSelection(CT, rng.int(2), rng.int(2)));
  if (rng.chance(0.5)) sub.push(implementationVersionName('FUZZ_1'));
  if (rng.chance(0.1)) sub.push(userIdentityRq(2, 0, Buffer.from('user'), Buffer.from('secret')));
  // The calling AE title names the case in the server's log (PACSNODE_LOG_LEVEL=verbose).
  const rq = associate(0x01, 'PACSNODE', `FUZZ${index}`, [applicationContext('1.2.840.10008.3.1.1.1'), ...contexts, userInformation(...sub)]);
  const steps: Step[] = [{ bytes: rq, role: 'rq', origin: 0, touched: false }];
  const add = (bytes: Buffer, role: Role) => steps.push({ bytes, role, origin: steps.length, touched: false });

  let store: StoreRecord | undefined;
  const count = rng.pick([1, 1, 1, 2, 3]);
  let messageId = 1;
  for (let m = 0; m < count; m++) {
    // At most one C-STORE per case (its dataset is what the half-stored checks follow).
    if (!store && rng.chance(0.65)) {
      const syntax = rng.chance(0.6) ? ExplicitVRLittleEndian : ImplicitVRLittleEndian;
      const ctx = syntax === ExplicitVRLittleEndian ? CTX_CT_EXPLICIT : CTX_CT_IMPLICIT;
      const large = rng.chance(0.25);
      const sopInstanceUid = sopUidOf(index);
      const dataset = datasetFor(TEMPLATES[syntax]![large ? 1 : 0], sopInstanceUid);
      store = { sopInstanceUid, sha1: sha1(dataset), length: dataset.length };
      scenario.push(`store(${syntax === ExplicitVRLittleEndian ? 'explicit' : 'implicit'},${dataset.length})`);
      const command = encodeCommandSet(storeCommand(messageId++, CT, sopInstanceUid));
      const fragments = fragmentsOf(dataset, rng);
      const pdvs = fragments.map((f, i) => pdv(ctx, i === fragments.length - 1 ? 0x02 : 0x00, f));
      if (rng.chance(0.2) && 6 + command.length + pdvs[0]!.length <= SERVER_MAX_PDU) {
        // Command and first dataset PDV in one P-DATA-TF (PS3.8 allows several PDVs per PDU).
        add(pDataTf(pdv(ctx, 0x03, command), pdvs[0]!), 'cmd+data');
        pdvs.shift();
      } else {
        add(pDataTf(pdv(ctx, 0x03, command)), 'cmd');
      }
      // Pack the remaining PDVs, several per PDU when they fit.
      let pack: Buffer[] = [];
      let packed = 0;
      const several = rng.chance(0.3);
      for (const p of pdvs) {
        if (pack.length > 0 && (!several || packed + p.length > SERVER_MAX_PDU)) {
          add(pDataTf(...pack), 'data');
          pack = [];
          packed = 0;
        }
        pack.push(p);
        packed += p.length;
      }
      if (pack.length > 0) add(pDataTf(...pack), 'data');
    } else {
      scenario.push('echo');
      add(pDataTf(pdv(CTX_ECHO, 0x03, encodeCommandSet(echoCommand(messageId++)))), 'cmd');
    }
  }
  const end = rng.int(100);
  if (end < 88) add(releaseRq(), 'release');
  else if (end < 94) {
    add(abort(0, 0), 'abort');
    scenario.push('abort');
  } else scenario.push('no release'); // the server's activity timer ends it
  // A Maximum Length below 8 leaves the server no room for even one response fragment.
  return { steps, scenario, maxPdu, store, messages: messageId - 1, pathological: maxPdu > 0 && maxPdu < 8 };
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations

function touch(step: Step, bytes: Buffer): void {
  step.bytes = bytes;
  step.touched = true;
}

const insertedStep = (bytes: Buffer): Step => ({ bytes, role: 'inserted', origin: -1, touched: true });

/** Applies one random mutation to the steps; returns its description. */
function mutate(steps: Step[], rng: Rng): string {
  if (steps.length === 0) return 'nothing to mutate';
  const at = rng.int(steps.length);
  const step = steps[at]!;
  const b = Buffer.from(step.bytes);
  switch (rng.int(16)) {
    case 0:
    case 1: {
      // Bit flips, a third of them in the header.
      const n = rng.between(1, 4);
      for (let i = 0; i < n && b.length > 0; i++) {
        const o = rng.chance(0.33) ? rng.int(Math.min(12, b.length)) : rng.int(b.length);
        b[o]! ^= 1 << rng.int(8);
      }
      touch(step, b);
      return `flip ${n} bit(s) in step ${at} (${step.role})`;
    }
    case 2: {
      if (b.length === 0) return 'set byte: empty step';
      const o = rng.int(b.length);
      b[o] = rng.pick(EDGE_BYTES);
      touch(step, b);
      return `byte ${o} of step ${at} (${step.role}) = ${b[o]}`;
    }
    case 3:
    case 4: {
      // PDU-length.
      if (b.length < 6) return 'PDU length: short step';
      const v = rng.pick(EDGE_U32(b.length - 6)) >>> 0;
      b.writeUInt32BE(v, 2);
      touch(step, b);
      return `PDU-length of step ${at} (${step.role}) = ${v}`;
    }
    case 5: {
      // An inner length: an item of the RQ, the PDV's, or a command element's.
      if (b[0] === 0x01 && b.length > 74) {
        const offsets = itemLengthOffsets(b);
        if (offsets.length === 0) return 'item length: none';
        const o = rng.pick(offsets);
        const v = rng.pick(EDGE_U16(b.readUInt16BE(o))) & 0xffff;
        b.writeUInt16BE(v, o);
        touch(step, b);
        return `item length at ${o} of the RQ = ${v}`;
      }
      if (b[0] === 0x04 && b.length >= 12) {
        if (rng.chance(0.5) && step.role.startsWith('cmd')) {
          const offsets = commandLengthOffsets(b);
          if (offsets.length > 0) {
            const o = rng.pick(offsets);
            const v = rng.pick(EDGE_U32(b.readUInt32LE(o))) >>> 0;
            b.writeUInt32LE(v, o);
            touch(step, b);
            return `command element length at ${o} of step ${at} = ${v}`;
          }
        }
        const v = rng.pick(EDGE_U32(b.readUInt32BE(6))) >>> 0;
        b.writeUInt32BE(v, 6);
        touch(step, b);
        return `PDV item length of step ${at} (${step.role}) = ${v}`;
      }
      return `inner length: step ${at} is not an RQ or a P-DATA-TF`;
    }
    case 6: {
      // The PDV header: presentation context ID or Message Control Header.
      if (b[0] !== 0x04 || b.length < 12) return `PDV header: step ${at} is not a P-DATA-TF`;
      if (rng.chance(0.5)) b[10] = rng.pick([0, 1, 2, 3, 5, 7, 9, 255, rng.int(256)]);
      else b[11] = rng.pick([0x00, 0x01, 0x02, 0x03, 0x04, 0xfc, 0xff, rng.int(256)]);
      touch(step, b);
      return `PDV header of step ${at} (${step.role}) = ${b[10]}/${b[11]}`;
    }
    case 7: {
      // Truncate one step (the next ones follow at once: framing is lost).
      const len = rng.int(b.length);
      touch(step, b.subarray(0, len));
      return `step ${at} (${step.role}) truncated to ${len}`;
    }
    case 8: {
      const to = rng.int(steps.length + 1);
      steps.splice(to, 0, { ...step, bytes: Buffer.from(step.bytes), touched: true });
      return `step ${at} (${step.role}) duplicated at ${to}`;
    }
    case 9: {
      const other = rng.int(steps.length);
      [steps[at], steps[other]] = [steps[other]!, steps[at]!];
      steps[at]!.touched = steps[other]!.touched = at !== other || steps[at]!.touched;
      return `steps ${at} and ${other} swapped`;
    }
    case 10: {
      steps.splice(at, 1);
      const to = rng.int(steps.length + 1);
      steps.splice(to, 0, step);
      step.touched ||= to !== at;
      return `step ${at} (${step.role}) moved to ${to}`;
    }
    case 11: {
      steps.splice(at, 1);
      return `step ${at} (${step.role}) dropped`;
    }
    case 12: {
      const n = rng.between(1, 100);
      steps.splice(rng.int(steps.length + 1), 0, insertedStep(rng.bytes(n)));
      return `${n} random bytes inserted`;
    }
    case 13: {
      // A stray PDU: random type (the seven of PS3.8 and others), random body, true or false length.
      const type = rng.chance(0.8) ? rng.between(1, 7) : rng.int(256);
      const body = rng.bytes(rng.pick([0, 1, 4, 6, rng.int(80)]));
      const stray = pdu(type, [body], rng.chance(0.7) ? {} : { length: rng.pick(EDGE_U32(body.length)) >>> 0 });
      steps.splice(rng.int(steps.length + 1), 0, insertedStep(stray));
      return `stray PDU type ${type} (${body.length} bytes) inserted`;
    }
    case 14: {
      // A valid PDU in the wrong place.
      const which = rng.int(5);
      const rq = steps.find((s) => s.role === 'rq')?.bytes ?? releaseRq();
      const bytes = [releaseRq(), releaseRp(), abort(rng.pick([0, 1, 2]), rng.pick([0, 1, 2, 6])), rq, pDataTf(pdv(CTX_ECHO, 0x03, encodeCommandSet(echoCommand(77))))][which]!;
      steps.splice(rng.int(steps.length + 1), 0, insertedStep(Buffer.from(bytes)));
      return `${['A-RELEASE-RQ', 'A-RELEASE-RP', 'A-ABORT', 'A-ASSOCIATE-RQ', 'C-ECHO-RQ'][which]} inserted`;
    }
    default: {
      // DIMSE-level: rebuild a command set with a mutated field.
      const cmdSteps = steps.filter((s) => s.role === 'cmd' || s.role === 'cmd+data');
      if (cmdSteps.length === 0) return 'command: none';
      const target = rng.pick(cmdSteps);
      const tb = target.bytes;
      if (tb.length < 12 || tb[0] !== 0x04) return 'command: not a P-DATA-TF any more';
      const pdvLen = tb.readUInt32BE(6);
      if (10 + pdvLen > tb.length || pdvLen < 2) return 'command: PDV already broken';
      const elements = parseCommandElements(tb.subarray(12, 10 + pdvLen));
      if (!elements) return 'command: already broken';
      const m = mutateCommand(elements, rng);
      const rest = tb.subarray(10 + pdvLen);
      const newPdu = pdu(0x04, [pdv(tb[10]!, tb[11]!, encodeCommandSet(m.elements, m.groupLengthDelta)), rest]);
      touch(target, newPdu);
      return `command: ${m.what}`;
    }
  }
}

/** Builds association-level case `index`: a base conversation and its mutations. */
function buildAssociationCase(index: number): AssociationCase {
  const seed = caseSeed(SEED, index);
  const rng = new Rng(seed);
  const base = baseConversation(rng, index);
  const steps = base.steps;
  const dataRoles = new Set<Role>(['data', 'cmd+data']);
  const baseDataSteps = steps.filter((s) => dataRoles.has(s.role)).length;
  const mutations: string[] = [];
  const count = rng.chance(0.06) ? 0 : rng.pick([1, 1, 1, 2, 2, 3, 4]);
  for (let i = 0; i < count; i++) mutations.push(mutate(steps, rng));
  // The stream may also be cut at a random byte (after every other mutation).
  let cutAt: number | undefined;
  if (count > 0 && rng.chance(0.15)) {
    const total = steps.reduce((n, s) => n + s.bytes.length, 0);
    cutAt = rng.int(total);
    mutations.push(`stream cut at byte ${cutAt} of ${total}`);
  }
  // Where the dataset stands: its steps (data, and the command's when they share a PDU) in order, untouched,
  // contiguous, and wholly sent -> intact; the same but cut inside -> cut; otherwise altered.
  let dataset: DatasetFate = 'none';
  if (base.store) {
    const positions = steps.map((s, i) => (dataRoles.has(s.role) ? i : -1)).filter((i) => i >= 0);
    const dataSteps = positions.map((i) => steps[i]!);
    const expectedOrigins = [...new Set(dataSteps.map((s) => s.origin))].sort((a, b) => a - b);
    const inOrder = dataSteps.every((s, i) => s.origin === expectedOrigins[i]) && dataSteps.length === expectedOrigins.length;
    const contiguous = positions.every((p, i) => i === 0 || p === positions[i - 1]! + 1);
    const untouched = dataSteps.every((s) => !s.touched);
    const complete = dataSteps.length === baseDataSteps; // none dropped
    if (inOrder && contiguous && untouched && complete) {
      if (cutAt === undefined) dataset = 'intact';
      else {
        const start = steps.slice(0, positions[0]).reduce((n, s) => n + s.bytes.length, 0);
        const end = steps.slice(0, positions.at(-1)! + 1).reduce((n, s) => n + s.bytes.length, 0);
        dataset = cutAt >= end ? 'intact' : cutAt > start ? 'cut' : 'altered';
      }
    } else dataset = 'altered';
  }
  if (cutAt !== undefined) {
    // Apply the cut.
    let left = cutAt;
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i]!;
      if (left >= s.bytes.length) {
        left -= s.bytes.length;
        continue;
      }
      s.bytes = s.bytes.subarray(0, left);
      s.touched = true;
      steps.length = left > 0 ? i + 1 : i;
      break;
    }
  }
  const rqIntact = steps[0]?.role === 'rq' && !steps[0].touched && !steps.slice(1).some((s) => s.role === 'rq');
  return {
    family: 'association',
    index,
    seed,
    scenario: base.scenario,
    mutations,
    steps,
    // Control cases talk as a requestor does: PDU by PDU, the release once the responses are in.
    chunking: count === 0 ? 'pdu' : rng.pick(['pdu', 'pdu', 'pdu', 'whole', 'split'] as const),
    ending: count === 0 ? 'polite' : rng.pick(['polite', 'polite', 'polite', 'stubborn', 'end', 'reset'] as const),
    advertisedMaxPdu: rqIntact ? base.maxPdu : undefined,
    store: base.store,
    dataset,
    control: count === 0 && !base.pathological,
    messages: base.messages,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// DIMSE-level cases: many per association

interface DimseCase {
  family: 'dimse';
  index: number;
  seed: number;
  message: 'echo' | 'store';
  mutations: string[];
  /** What to send (P-DATA-TF PDUs, maybe a stray PDU after them). */
  pdus: Buffer[];
  chunking: 'pdu' | 'whole';
  /** The client drops the connection after sending these (a stream cut inside the dataset): how. */
  cut: 'end' | 'reset' | undefined;
  /** A stray PDU or bytes follow the message: the association ends with this case. */
  stray: boolean;
  /**
   * The server's verdict on this case is final once it answers: the mutations (if any) only change values inside a
   * well-framed message (command fields, dataset bits) whose dataset is there exactly when its command says so.
   * Otherwise bytes may follow what the server took for a complete message (a duplicated or extra fragment, a
   * dataset the command does not announce), and whether it answers before it aborts over them depends on timing:
   * the next case then starts on a new association.
   */
  settled: boolean;
  store?: StoreRecord;
  dataset: DatasetFate;
  control: boolean;
  /** The Message ID of its command (after mutation; undefined when removed): what its response must answer. */
  messageId: number | undefined;
}

interface PdvSpec {
  ctx: number;
  mch: number;
  data: Buffer;
  role: 'cmd' | 'data';
}

/** The A-ASSOCIATE-RQ under DIMSE-level cases (a batch's calling AE title names its first case). */
export const dimseRq = (first: number) =>
  associate(0x01, 'PACSNODE', `FZB${first}`, [
    applicationContext('1.2.840.10008.3.1.1.1'),
    presentationContextRq(CTX_ECHO, VERIFICATION, [ImplicitVRLittleEndian]),
    presentationContextRq(CTX_CT_EXPLICIT, CT, [ExplicitVRLittleEndian]),
    presentationContextRq(CTX_CT_IMPLICIT, CT, [ImplicitVRLittleEndian]),
    userInformation(maximumLength(SERVER_MAX_PDU), implementationClassUid('1.2.826.0.1.3680043.99.77.0')),
  ]);

/** Builds DIMSE-level case `index`: one C-ECHO or C-STORE exchange and its mutations. */
function buildDimseCase(index: number): DimseCase {
  const seed = caseSeed(SEED, index);
  const rng = new Rng(seed);
  const messageId = (index % 65000) + 1;
  const isStore = rng.chance(0.3);
  const mutations: string[] = [];
  let store: StoreRecord | undefined;
  let dataset: Buffer | undefined;
  let ctx = CTX_ECHO;
  let elements: CommandElement[];
  if (isStore) {
    const syntax = rng.chance(0.6) ? ExplicitVRLittleEndian : ImplicitVRLittleEndian;
    ctx = syntax === ExplicitVRLittleEndian ? CTX_CT_EXPLICIT : CTX_CT_IMPLICIT;
    const sopInstanceUid = sopUidOf(index);
    dataset = datasetFor(TEMPLATES[syntax]![rng.chance(0.1) ? 1 : 0], sopInstanceUid);
    store = { sopInstanceUid, sha1: sha1(dataset), length: dataset.length };
    elements = storeCommand(messageId, CT, sopInstanceUid);
  } else {
    elements = echoCommand(messageId);
  }
  const count = rng.chance(0.15) ? 0 : rng.pick([1, 1, 1, 2, 2, 3]);
  const ops = Array.from({ length: count }, () =>
    rng.pick(['command', 'command', 'mch', 'ctx', 'data-bits', 'data-order', 'last-bit', 'pdv-length', 'pdu-order', 'stray', 'stray', 'cut'] as const),
  );
  // 1. The command set.
  let groupLengthDelta = 0;
  for (const _op of ops.filter((o) => o === 'command')) {
    const m = mutateCommand(elements, rng);
    elements = m.elements;
    groupLengthDelta = m.groupLengthDelta;
    mutations.push(`command: ${m.what}`);
  }
  const command = encodeCommandSet(elements, groupLengthDelta);
  const idElement = elements.find(([tag]) => tag === 0x00000110)?.[1];
  const finalMessageId = idElement && idElement.length >= 2 ? idElement.readUInt16LE(0) : undefined;
  // 2. PDVs: the command in one or two fragments (both legal), then the dataset's.
  const pdvs: PdvSpec[] = [];
  if (command.length >= 4 && rng.chance(0.2)) {
    const at = rng.between(1, command.length - 1);
    pdvs.push({ ctx, mch: 0x01, data: command.subarray(0, at), role: 'cmd' }, { ctx, mch: 0x03, data: command.subarray(at), role: 'cmd' });
  } else {
    pdvs.push({ ctx, mch: 0x03, data: command, role: 'cmd' });
  }
  if (dataset) {
    const fragments = fragmentsOf(dataset, rng);
    fragments.forEach((f, i) => pdvs.push({ ctx, mch: i === fragments.length - 1 ? 0x02 : 0x00, data: f, role: 'data' }));
  }
  let altered = false;
  const dataIndexes = () => pdvs.map((p, i) => (p.role === 'data' ? i : -1)).filter((i) => i >= 0);
  for (const op of ops) {
    if (op === 'mch' || op === 'ctx') {
      const i = rng.int(pdvs.length);
      if (op === 'mch') pdvs[i]!.mch = rng.pick([0x00, 0x01, 0x02, 0x03, 0x04, 0xfc, 0xff, rng.int(256)]);
      else pdvs[i]!.ctx = rng.pick([0, 1, 2, 3, 5, 7, 255, rng.int(256)]);
      altered ||= pdvs[i]!.role === 'data';
      mutations.push(`PDV ${i} (${pdvs[i]!.role}) header ${pdvs[i]!.ctx}/${pdvs[i]!.mch}`);
    } else if (op === 'data-bits' && dataIndexes().length > 0) {
      const i = rng.pick(dataIndexes());
      const data = Buffer.from(pdvs[i]!.data);
      const n = rng.between(1, 8);
      for (let k = 0; k < n && data.length > 0; k++) data[rng.int(data.length)]! ^= 1 << rng.int(8);
      pdvs[i]!.data = data;
      altered = true;
      mutations.push(`${n} bit(s) flipped in dataset PDV ${i}`);
    } else if (op === 'data-order' && dataIndexes().length > 0) {
      const data = dataIndexes();
      const i = rng.pick(data);
      const how = rng.int(3);
      if (how === 0) pdvs.splice(i, 1);
      else if (how === 1) pdvs.splice(rng.pick(data), 0, { ...pdvs[i]! });
      else {
        const j = rng.pick(data);
        [pdvs[i], pdvs[j]] = [pdvs[j]!, pdvs[i]!];
      }
      altered = true;
      mutations.push(`dataset PDV ${i} ${['dropped', 'duplicated', 'swapped'][how]}`);
    } else if (op === 'last-bit') {
      const i = rng.int(pdvs.length);
      pdvs[i]!.mch ^= 0x02;
      altered ||= pdvs[i]!.role === 'data';
      mutations.push(`"last" bit of PDV ${i} (${pdvs[i]!.role}) flipped`);
    }
  }
  // 3. P-DATA-TF PDUs: one PDV each, or as many as fit.
  const several = rng.chance(0.3);
  const pdus: { bytes: Buffer; hasData: boolean }[] = [];
  let pack: PdvSpec[] = [];
  const flush = () => {
    if (pack.length === 0) return;
    pdus.push({ bytes: pDataTf(...pack.map((p) => pdv(p.ctx, p.mch, p.data))), hasData: pack.some((p) => p.role === 'data') });
    pack = [];
  };
  for (const p of pdvs) {
    if (!several || pack.reduce((n, q) => n + 6 + q.data.length, 0) + 6 + p.data.length > SERVER_MAX_PDU) flush();
    pack.push(p);
  }
  flush();
  // 4. PDU-level mutations.
  let stray: Buffer | undefined;
  let cut: DimseCase['cut'];
  for (const op of ops) {
    if (op === 'pdv-length' && pdus.length > 0) {
      const i = rng.int(pdus.length);
      const b = Buffer.from(pdus[i]!.bytes);
      const v = rng.pick(EDGE_U32(b.readUInt32BE(6)));
      b.writeUInt32BE(v, 6);
      pdus[i]!.bytes = b;
      altered ||= pdus[i]!.hasData;
      mutations.push(`PDV item length in PDU ${i} = ${v}`);
    } else if (op === 'pdu-order' && pdus.length > 0) {
      const i = rng.int(pdus.length);
      const j = rng.int(pdus.length);
      const how = rng.int(3);
      if (how === 0) pdus.splice(i, 1);
      else if (how === 1) pdus.splice(j, 0, { ...pdus[i]! });
      else [pdus[i], pdus[j]] = [pdus[j]!, pdus[i]!];
      altered ||= pdus.some((p) => p.hasData) && (how !== 2 || i !== j);
      mutations.push(`PDU ${i} ${['dropped', `duplicated at ${j}`, `swapped with ${j}`][how]}`);
    } else if (op === 'stray') {
      const which = rng.int(6);
      stray = [releaseRq(), releaseRp(), abort(0, 0), dimseRq(index), rng.bytes(rng.between(1, 40)), pdu(rng.between(1, 7), [rng.bytes(rng.int(20))])][which]!;
      mutations.push(`then ${['A-RELEASE-RQ', 'A-RELEASE-RP', 'A-ABORT', 'A-ASSOCIATE-RQ', 'random bytes', 'a random PDU'][which]}`);
    } else if (op === 'cut') {
      cut = rng.chance(0.5) ? 'end' : 'reset';
    }
  }
  const typeElement = elements.find(([tag]) => tag === 0x00000800)?.[1];
  const announcesDataset = typeElement !== undefined && typeElement.length >= 2 && typeElement.readUInt16LE(0) !== 0x0101;
  const settled = ops.every((op) => op === 'command' || op === 'data-bits') && announcesDataset === (dataset !== undefined);
  let fate: DatasetFate = !dataset ? 'none' : altered ? 'altered' : 'intact';
  const out = pdus.map((p) => p.bytes);
  if (cut) {
    // Drop the connection before the last dataset PDU goes (or after the command, without a dataset).
    const lastData = pdus.map((p) => p.hasData).lastIndexOf(true);
    const keep = lastData >= 0 ? lastData : rng.int(out.length + 1);
    out.length = keep;
    stray = undefined;
    if (fate === 'intact') fate = 'cut';
    mutations.push(`connection ${cut === 'end' ? 'closed' : 'reset'} after ${keep} PDU(s)`);
  }
  if (stray) out.push(stray);
  return {
    family: 'dimse',
    index,
    seed,
    message: isStore ? 'store' : 'echo',
    mutations,
    pdus: out,
    chunking: rng.chance(0.7) ? 'pdu' : 'whole',
    cut,
    stray: stray !== undefined,
    settled,
    store,
    dataset: fate,
    control: count === 0,
    messageId: finalMessageId,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The client side of one connection

export class Conn {
  readonly socket: Socket;
  readonly output: AcceptorOutput;
  bytesReceived = 0;
  closed = false;
  lastWriteAt = Date.now();
  /** What went each way and when (ms since the connection was made), to tell who waited when a case fails. */
  readonly timeline: string[] = [];
  private readonly openedAt = Date.now();
  private waiters: (() => void)[] = [];
  private readonly closedPromise: Promise<void>;
  private readonly connected: Promise<void>;

  constructor(port: number, advertisedMaxPdu: number | undefined) {
    this.output = new AcceptorOutput(advertisedMaxPdu);
    this.socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.socket.on('error', () => undefined); // EPIPE/ECONNRESET when the server closed first: expected
    this.connected = new Promise<void>((resolve) => {
      this.socket.once('connect', resolve);
      this.socket.once('close', resolve);
    });
    this.closedPromise = new Promise<void>((resolve) =>
      this.socket.once('close', () => {
        this.closed = true;
        this.note('closed');
        this.changed();
        resolve();
      }),
    );
    this.socket.on('data', (d: Buffer) => {
      this.bytesReceived += d.length;
      const before = this.output.types.length;
      const answersBefore = this.output.responses.length;
      this.output.push(d);
      const answers = this.output.responses.slice(answersBefore).map((r) => ` (status ${r.status.toString(16)} to ${r.messageId})`);
      this.note(`received ${this.output.types.slice(before).join(', ') || `${d.length} bytes`}${answers.join('')}`);
      this.changed();
    });
  }

  opened(): Promise<void> {
    return this.connected;
  }

  write(bytes: Buffer): void {
    if (this.closed || this.socket.destroyed || bytes.length === 0) return;
    this.socket.write(bytes);
    this.lastWriteAt = Date.now();
    this.note(`sent ${bytes.length} bytes`);
  }

  private note(what: string): void {
    // The last 64 events: a failing case's own exchange is at the end of its connection's story.
    this.timeline.push(`+${Date.now() - this.openedAt} ms ${what}`);
    if (this.timeline.length > 64) this.timeline.shift();
  }

  /** Resolves once `condition` holds, the connection is closed, or `ms` passed. */
  async until(condition: () => boolean, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!condition() && !this.closed && Date.now() < end) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, end - Date.now());
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Ms from the last byte written to the close, or undefined when the server did not close within `ms`. */
  async closedWithin(ms: number): Promise<number | undefined> {
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
    const outcome = await Promise.race([this.closedPromise.then(() => 'closed' as const), timeout]);
    if (outcome === 'timeout') {
      this.socket.destroy();
      return undefined;
    }
    return Date.now() - this.lastWriteAt;
  }

  end(): void {
    if (!this.closed) this.socket.end();
  }

  async reset(): Promise<void> {
    if (!this.closed) this.socket.resetAndDestroy();
    await this.closedPromise;
  }

  private changed(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** The checks every closed connection gets: what the server sent, and that it closed in time. */
function connectionProblems(conn: Conn, closedAfterMs: number | undefined, from = 0): string[] {
  const problems = conn.output.problems.slice(from);
  if (closedAfterMs === undefined) problems.push(`the server did not close the connection within ${CLOSE_BOUND_MS} ms of the last byte sent`);
  if (conn.closed && conn.output.leftover > 0) problems.push(`the server's output ends inside a PDU (${conn.output.leftover} bytes left over)`);
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Drivers

export interface Outcome {
  index: number;
  /** Date.now() when the case started and ended (to name the cases under way when a process-level error struck). */
  startedAt: number;
  endedAt: number;
  /** Where a failing case's bytes were written. */
  dump?: string;
  family: 'association' | 'dimse';
  description: string;
  problems: string[];
  closedAfterMs?: number;
  types: Pdu['type'][];
  store?: StoreRecord;
  dataset: DatasetFate;
  /** An unmutated case whose instance must be stored. */
  mustStore: boolean;
  control: boolean;
  /** The bytes sent, for the failure dump (dropped once reported). */
  sent?: Buffer[];
}

function describeAssociationCase(c: AssociationCase): string {
  return `case ${c.index} (association level) [${c.scenario.join(' ')}] mutations: ${c.mutations.join('; ') || 'none'}; chunking ${c.chunking}, ending ${c.ending}`;
}

function describeDimseCase(c: DimseCase): string {
  return `case ${c.index} (DIMSE level, batch from ${batchStart(c.index)}) [${c.message}] mutations: ${c.mutations.join('; ') || 'none'}; chunking ${c.chunking}`;
}

async function runAssociationCase(c: AssociationCase, port: number): Promise<Outcome> {
  const startedAt = Date.now();
  const rng = new Rng(c.seed ^ 0xa5a5a5a5);
  const conn = new Conn(port, c.advertisedMaxPdu);
  await conn.opened();
  const [first, ...rest] = c.steps;
  if (first) conn.write(first.bytes);
  // As a requestor: wait for the answer to the A-ASSOCIATE-RQ before sending the rest. A first PDU that is not
  // the RQ as built may get no answer (the server waits for the rest of it): then only a short while.
  const rqIntact = first?.role === 'rq' && !first.touched;
  await conn.until(() => conn.bytesReceived > 0, rqIntact ? CLOSE_BOUND_MS : FIRST_ANSWER_WAIT_MS);
  if (c.chunking === 'pdu') {
    let requests = 0;
    for (const s of rest) {
      // As a requestor: the A-RELEASE-RQ once the requests sent are answered (or a while has passed).
      if (s.role === 'release' && !s.touched) await conn.until(() => conn.output.responses.length >= requests, RELEASE_WAIT_MS);
      if (s.role === 'cmd' || s.role === 'cmd+data') requests++;
      conn.write(s.bytes);
    }
  } else if (c.chunking === 'whole') {
    conn.write(Buffer.concat(rest.map((s) => s.bytes)));
  } else {
    const all = Buffer.concat(rest.map((s) => s.bytes));
    for (let o = 0; o < all.length && !conn.closed; ) {
      const n = rng.between(1, 64);
      conn.write(all.subarray(o, o + n));
      o += n;
      if (rng.chance(0.3)) await new Promise((r) => setImmediate(r));
    }
  }
  const outcome: Outcome = {
    index: c.index,
    startedAt,
    endedAt: 0,
    family: 'association',
    description: describeAssociationCase(c),
    problems: [],
    types: conn.output.types,
    store: c.store,
    dataset: c.dataset,
    mustStore: c.control && !c.scenario.includes('abort'),
    control: c.control,
    sent: c.steps.map((s) => s.bytes),
  };
  if (c.ending === 'reset') {
    await conn.reset();
    return outcome;
  }
  if (c.ending === 'end') conn.end();
  if (c.ending === 'polite') {
    await conn.until(() => conn.output.ended, CLOSE_BOUND_MS);
    conn.end();
  }
  outcome.closedAfterMs = await conn.closedWithin(CLOSE_BOUND_MS);
  outcome.problems.push(...connectionProblems(conn, outcome.closedAfterMs));
  if (c.control) {
    // The whole conversation: AC, one Success response per request, then the RP (or the activity timeout's abort).
    const types = conn.output.types;
    const statuses = conn.output.responses.map((r) => r.status);
    const endsWithAbort = c.scenario.includes('abort');
    const noRelease = c.scenario.includes('no release');
    if (types[0] !== 'A-ASSOCIATE-AC') outcome.problems.push(`control case: no A-ASSOCIATE-AC (got ${types.join(', ')})`);
    if (!endsWithAbort && statuses.length !== c.messages) outcome.problems.push(`control case: ${statuses.length} responses to ${c.messages} requests`);
    if (statuses.some((s) => s !== Status.Success)) outcome.problems.push(`control case: statuses ${statuses.map((s) => s.toString(16)).join(', ')}`);
    const last = types.at(-1);
    if (!endsWithAbort && !noRelease && last !== 'A-RELEASE-RP') outcome.problems.push(`control case: ends with ${last} instead of A-RELEASE-RP`);
    if (noRelease && last !== 'A-ABORT') outcome.problems.push(`control case without release: ends with ${last} instead of the activity timeout's A-ABORT`);
  }
  return outcome;
}

/** Runs DIMSE-level cases `indexes` (consecutive, one batch) over as few associations as they allow. */
async function runDimseBatch(indexes: number[], port: number, report: (o: Outcome) => void): Promise<void> {
  let conn: Conn | undefined;
  let problemsSeen = 0;
  let last: Outcome | undefined;
  const finish = async (o: Outcome) => {
    // The association is over: close as a peer does after an A-ABORT or A-RELEASE-RP (PS3.8 AA-3, AR-3); the
    // server must close the connection in time.
    if (conn!.output.ended) conn!.end();
    o.closedAfterMs = await conn!.closedWithin(CLOSE_BOUND_MS);
    o.problems.push(...connectionProblems(conn!, o.closedAfterMs, problemsSeen));
    conn = undefined;
  };
  const release = async (o: Outcome, answers: Pdu['type'][]) => {
    conn!.write(releaseRq());
    await conn!.until(() => conn!.output.ended, CLOSE_BOUND_MS);
    const answer = conn!.output.types.at(-1);
    if (!answers.includes(answer!)) o.problems.push(`the release after case ${o.index} got ${answer}`);
    o.types = conn!.output.types.slice();
    await finish(o);
  };
  for (const index of indexes) {
    const c = buildDimseCase(index);
    const o: Outcome = {
      index,
      startedAt: Date.now(),
      endedAt: 0,
      family: 'dimse',
      description: describeDimseCase(c),
      problems: [],
      types: [],
      store: c.store,
      dataset: c.dataset,
      mustStore: c.control,
      control: c.control,
      sent: c.pdus,
    };
    try {
      if (!conn) {
        conn = new Conn(port, SERVER_MAX_PDU);
        problemsSeen = 0;
        await conn.opened();
        conn.write(dimseRq(batchStart(index)));
        await conn.until(() => conn!.output.types.length > 0, CLOSE_BOUND_MS);
        if (conn.output.types[0] !== 'A-ASSOCIATE-AC') {
          o.problems.push(`a valid A-ASSOCIATE-RQ got ${conn.output.types.join(', ') || 'no answer'}`);
          await finish(o);
          continue;
        }
      }
      const before = conn.output.responses.length;
      if (c.chunking === 'pdu') for (const b of c.pdus) conn.write(b);
      else conn.write(Buffer.concat(c.pdus));
      if (c.cut === 'reset') {
        await conn.reset();
        conn = undefined;
        continue;
      }
      if (c.cut === 'end') {
        conn.end();
        await finish(o);
        continue;
      }
      // A response to this case's Message ID (a case before may have drawn a late one), or the end of the association.
      const responses = () => conn!.output.responses.slice(before);
      const answered = () => (c.messageId === undefined ? responses().length > 0 : responses().some((r) => r.messageId === c.messageId));
      await conn.until(() => answered() || conn!.output.ended, CLOSE_BOUND_MS);
      if (!answered() && !conn.output.ended && !conn.closed) {
        o.problems.push(`the server neither answered nor ended the association within ${CLOSE_BOUND_MS} ms`);
      }
      if (c.control) {
        const r = responses().find((x) => x.messageId === c.messageId);
        if (!r || r.status !== Status.Success) {
          o.problems.push(`control case: response ${r ? r.status.toString(16) : 'missing'} to ${c.messageId}, expected Success; the connection: ${conn.timeline.join('; ')}`);
        }
      }
      if (c.stray && !conn.output.ended && !conn.closed) {
        // What follows the message ends the association (nearly always at once); the next case gets a new one.
        await conn.until(() => conn!.output.ended, 1000);
        if (!conn.output.ended) conn.end();
      }
      o.types = conn.output.types.slice();
      if (c.stray || conn.output.ended || conn.closed || o.problems.length > 0) await finish(o);
      else if (!c.settled) {
        // What followed the message may still end the association: release it (an A-ABORT is a valid answer too).
        await release(o, ['A-RELEASE-RP', 'A-ABORT']);
      } else {
        o.problems.push(...conn.output.problems.slice(problemsSeen));
        problemsSeen = conn.output.problems.length;
      }
    } finally {
      o.endedAt = Date.now();
      // The batch's last case is reported after the batch's release (which may add to its problems).
      if (index !== indexes.at(-1)) report(o);
      last = o;
    }
  }
  if (conn && last) {
    // The end of the batch: release, as a requestor does (after settled cases only: an A-RELEASE-RP is due).
    await release(last, ['A-RELEASE-RP']);
    last.endedAt = Date.now();
  }
  if (last) report(last);
}

/**
 * Runs the cases, `concurrency` connections at once: association-level ones alone, DIMSE-level ones by batch.
 * `report` receives each outcome (a DIMSE-level batch's last one may still grow until the batch's release is done:
 * read the outcomes once `runFuzz` resolved).
 */
export async function runFuzz(options: { port: number; seed: number; indexes: number[]; concurrency: number }, report: (o: Outcome) => void): Promise<void> {
  SEED = options.seed;
  const { indexes, port } = options;
  const units: number[][] = [];
  for (const index of indexes) {
    const previous = units.at(-1);
    if (!isAssociationCase(index) && previous && !isAssociationCase(previous[0]!) && batchStart(previous[0]!) === batchStart(index)) previous.push(index);
    else units.push([index]);
  }
  let next = 0;
  const worker = async () => {
    while (next < units.length) {
      const unit = units[next++]!;
      if (isAssociationCase(unit[0]!)) {
        const o = await runAssociationCase(buildAssociationCase(unit[0]!), port);
        o.endedAt = Date.now();
        report(o);
      } else {
        await runDimseBatch(unit, port, report);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, units.length) }, worker));
}

/** Writes a failing case where it can be read, and names the file. */
export function dumpCase(o: Outcome): string {
  const path = join(tmpdir(), `pacsnode-fuzz-${SEED}-${o.index}.json`);
  try {
    writeFileSync(
      path,
      JSON.stringify({ seed: SEED, case: o.index, description: o.description, problems: o.problems, sent: (o.sent ?? []).map((b) => b.toString('hex')), serverSent: o.types }, null, 1),
    );
    return path;
  } catch {
    return '(could not write the case file)';
  }
}

