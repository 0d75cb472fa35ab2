/**
 * Building blocks of the association fuzz test (test/fuzz-association.test.ts): a seeded PRNG, a command set
 * encoder that can also write wrong command sets, the places of the length fields a mutation aims at, and a
 * checker of what an acceptor sends back. Nothing here touches a socket.
 */
import { SopClasses } from '../../src/dicom/uids.js';
import { MessageAssembler } from '../../src/dimse/fragment.js';
import { decodePdu } from '../../src/net/pdu/codec.js';
import { PduFramer } from '../../src/net/pdu/framer.js';
import type { Pdu } from '../../src/net/pdu/types.js';

// ---------------------------------------------------------------------------------------------------------------
// PRNG: mulberry32, one stream per case

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** 0 <= n < max. */
  int(max: number): number {
    return Math.floor((this.u32() / 0x100000000) * max);
  }

  /** min <= n <= max. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

/** The seed of case `index` of run `seed` (splitmix-style mixing: neighbouring cases are unrelated). */
export function caseSeed(seed: number, index: number): number {
  let z = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Edge values

export const EDGE_U32 = (len: number): number[] =>
  [0, 1, 2, 3, 4, 5, 6, len - 1, len + 1, len + 2, len * 2, 16384, 16385, 16390, 65535, 65536, 65537, 0x7fffffff, 0xfffffffe, 0xffffffff].map((v) => v >>> 0);
export const EDGE_U16 = (len: number): number[] => [0, 1, 2, 3, 4, len - 1, len + 1, len + 2, 0x7fff, 0xfffe, 0xffff].map((v) => v & 0xffff);
export const EDGE_BYTES = [0x00, 0x01, 0x02, 0x03, 0x07, 0x7f, 0x80, 0xfe, 0xff];

// ---------------------------------------------------------------------------------------------------------------
// Command sets (PS3.7 §6.3.1, group 0000, implicit VR little endian), written by hand so they can be wrong

/** One command element: tag and value bytes. */
export type CommandElement = [tag: number, value: Buffer];

export const usValue = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v & 0xffff);
  return b;
};
export const uiValue = (s: string): Buffer => Buffer.from(s.length % 2 === 1 ? `${s}\0` : s, 'latin1');

/** Encodes a command set behind its group length (off by `groupLengthDelta` when asked). */
export function encodeCommandSet(elements: CommandElement[], groupLengthDelta = 0): Buffer {
  const body = Buffer.concat(
    elements.map(([tag, value]) => {
      const head = Buffer.alloc(8);
      head.writeUInt16LE(tag >>> 16, 0);
      head.writeUInt16LE(tag & 0xffff, 2);
      head.writeUInt32LE(value.length, 4);
      return Buffer.concat([head, value]);
    }),
  );
  const gl = Buffer.alloc(12);
  gl.writeUInt32LE(0x00000000, 0);
  gl.writeUInt32LE(4, 4);
  gl.writeUInt32LE((body.length + groupLengthDelta) >>> 0, 8);
  return Buffer.concat([gl, body]);
}

/** The elements of a command set (group length left out); undefined when it does not parse. */
export function parseCommandElements(bytes: Buffer): CommandElement[] | undefined {
  const out: CommandElement[] = [];
  let o = 0;
  while (o + 8 <= bytes.length) {
    const tag = ((bytes.readUInt16LE(o) << 16) | bytes.readUInt16LE(o + 2)) >>> 0;
    const len = bytes.readUInt32LE(o + 4);
    if (o + 8 + len > bytes.length) return undefined;
    if (tag !== 0) out.push([tag, Buffer.from(bytes.subarray(o + 8, o + 8 + len))]);
    o += 8 + len;
  }
  return o === bytes.length ? out : undefined;
}

export function echoCommand(messageId: number): CommandElement[] {
  return [
    [0x00000002, uiValue(SopClasses.Verification)],
    [0x00000100, usValue(0x0030)],
    [0x00000110, usValue(messageId)],
    [0x00000800, usValue(0x0101)],
  ];
}

export function storeCommand(messageId: number, sopClassUid: string, sopInstanceUid: string): CommandElement[] {
  return [
    [0x00000002, uiValue(sopClassUid)],
    [0x00000100, usValue(0x0001)],
    [0x00000110, usValue(messageId)],
    [0x00000700, usValue(0x0000)],
    [0x00000800, usValue(0x0000)],
    [0x00001000, uiValue(sopInstanceUid)],
  ];
}

/** One DIMSE-level mutation of a command set: another field value, a missing or extra element, a wrong length. */
export function mutateCommand(elements: CommandElement[], rng: Rng): { elements: CommandElement[]; groupLengthDelta: number; what: string } {
  const out = elements.map(([t, v]) => [t, Buffer.from(v)] as CommandElement);
  const set = (tag: number, value: Buffer) => {
    const i = out.findIndex(([t]) => t === tag);
    if (i >= 0) out[i] = [tag, value];
    else out.push([tag, value]);
    out.sort((a, b) => a[0] - b[0]);
  };
  const hex = (n: number) => n.toString(16);
  switch (rng.int(9)) {
    case 0: {
      const field = rng.pick([0x0001, 0x0010, 0x0020, 0x0021, 0x0030, 0x0fff, 0x8001, 0x8030, 0x0100, 0x0120, 0xffff, rng.u32() & 0xffff]);
      set(0x00000100, usValue(field));
      return { elements: out, groupLengthDelta: 0, what: `CommandField=${hex(field)}` };
    }
    case 1: {
      const type = rng.pick([0x0101, 0x0000, 0x0001, 0xfefe, rng.u32() & 0xffff]);
      set(0x00000800, usValue(type));
      return { elements: out, groupLengthDelta: 0, what: `CommandDataSetType=${hex(type)}` };
    }
    case 2: {
      const [tag] = out.splice(rng.int(out.length), 1)[0]!;
      return { elements: out, groupLengthDelta: 0, what: `removed ${hex(tag)}` };
    }
    case 3: {
      const uid = rng.pick([SopClasses.MRImageStorage, '', '1.2.3', 'not a uid', SopClasses.Verification, `${SopClasses.CTImageStorage}.9`]);
      set(0x00000002, uiValue(uid));
      return { elements: out, groupLengthDelta: 0, what: `AffectedSOPClassUID=${uid}` };
    }
    case 4: {
      const id = rng.pick([0, 0xffff, rng.u32() & 0xffff]);
      set(0x00000110, usValue(id));
      return { elements: out, groupLengthDelta: 0, what: `MessageID=${id}` };
    }
    case 5: {
      const tag = rng.pick([0x00000001, 0x00000120, 0x00000600, 0x00001030, 0x00001031, 0x00000003, 0x0000ffff]);
      set(tag, rng.bytes(rng.pick([0, 1, 2, 3, 7, 64])));
      return { elements: out, groupLengthDelta: 0, what: `added ${hex(tag)}` };
    }
    case 6: {
      set(0x00001000, uiValue(rng.pick(['', '1.2.3.4', 'x'.repeat(65), '1.2.826.0.1.3680043.99.77.9.99999999'])));
      return { elements: out, groupLengthDelta: 0, what: 'AffectedSOPInstanceUID changed' };
    }
    case 7: {
      const delta = rng.pick([-1, 1, -4, 100, -1000, 0x7fffffff]);
      return { elements: out, groupLengthDelta: delta, what: `group length ${delta > 0 ? '+' : ''}${delta}` };
    }
    default: {
      const i = rng.int(out.length);
      out[i] = [out[i]![0], Buffer.concat([out[i]![1], Buffer.from([0x31])])];
      return { elements: out, groupLengthDelta: 0, what: `odd length on ${hex(out[i]![0])}` };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Where the lengths are

/** Offsets of the 2-byte Item-length fields of an A-ASSOCIATE-RQ: items and sub-items (PS3.8 §9.3.2). */
export function itemLengthOffsets(rq: Buffer): number[] {
  const out: number[] = [];
  const walk = (from: number, to: number, depth: number) => {
    let o = from;
    while (o + 4 <= to) {
      const type = rq[o]!;
      const len = rq.readUInt16BE(o + 2);
      out.push(o + 2);
      const end = o + 4 + len;
      if (end > to) break;
      if (depth === 0 && type === 0x20) walk(o + 8, end, 1); // presentation context: ID, 3 reserved, sub-items
      if (depth === 0 && type === 0x50) walk(o + 4, end, 1); // user information: sub-items
      o = end;
    }
  };
  if (rq.length >= 74) walk(74, rq.length, 0);
  return out;
}

/** Offsets of the 4-byte element lengths of the command set in a P-DATA-TF whose first PDV carries one. */
export function commandLengthOffsets(pdata: Buffer): number[] {
  const out: number[] = [];
  if (pdata.length < 12) return out;
  const pdvEnd = Math.min(pdata.length, 10 + pdata.readUInt32BE(6));
  for (let o = 12; o + 8 <= pdvEnd; ) {
    out.push(o + 4);
    o += 8 + pdata.readUInt32LE(o + 4);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// What the acceptor sends

const ACCEPTOR_SENDS = new Set<Pdu['type']>(['A-ASSOCIATE-AC', 'A-ASSOCIATE-RJ', 'P-DATA-TF', 'A-RELEASE-RP', 'A-ABORT']);
const FINAL = new Set<Pdu['type']>(['A-ASSOCIATE-RJ', 'A-ABORT', 'A-RELEASE-RP']);

/**
 * Reads, as it arrives, what an acceptor sends on one connection and notes every breach of PS3.8: bytes that do not
 * decode as PDUs, a PDU type an acceptor never sends, a first PDU other than AC/RJ/ABORT, a second AC, anything
 * but an A-ABORT once in Sta13 (after RJ, ABORT or RP: AA-7 answers an RQ or an invalid PDU there), a P-DATA-TF
 * longer than the Maximum Length the requestor advertised (PS3.8 D.1), responses that do not assemble.
 */
export class AcceptorOutput {
  readonly types: Pdu['type'][] = [];
  readonly problems: string[] = [];
  /** The complete DIMSE responses: status and Message ID Being Responded To. */
  readonly responses: { status: number; messageId: number }[] = [];
  private readonly framer = new PduFramer({ maxPduLength: 0xffffffff, maxAssociateLength: 0xffffffff, maxOtherLength: 0xffffffff });
  private readonly assembler = new MessageAssembler();
  private broken = false;

  /** `advertisedMaxPdu`: the requestor's Maximum Length when known (0 = none). */
  constructor(private readonly advertisedMaxPdu: number | undefined) {}

  push(chunk: Buffer): void {
    if (this.broken) return;
    try {
      for (const raw of this.framer.push(chunk)) this.onPdu(decodePdu(Buffer.from(raw)));
    } catch (e) {
      this.problems.push(`the server sent bytes that do not decode as PDUs: ${(e as Error).message}`);
      this.broken = true;
    }
  }

  /** Bytes of an incomplete PDU at the end (there should be none once the connection is closed). */
  get leftover(): number {
    return this.broken ? 0 : this.framer.bufferedBytes;
  }

  /** The association is over as far as the server is concerned (RJ, ABORT or RP sent). */
  get ended(): boolean {
    return this.types.some((t) => FINAL.has(t));
  }

  private onPdu(p: Pdu): void {
    const i = this.types.length;
    const previous = this.types[i - 1];
    this.types.push(p.type);
    if (!ACCEPTOR_SENDS.has(p.type)) this.problems.push(`the server sent ${p.type} (PDU ${i})`);
    if (i === 0 && !['A-ASSOCIATE-AC', 'A-ASSOCIATE-RJ', 'A-ABORT'].includes(p.type)) this.problems.push(`the server's first PDU is ${p.type}`);
    if (i > 0 && p.type === 'A-ASSOCIATE-AC') this.problems.push('the server sent a second A-ASSOCIATE-AC');
    if (previous && FINAL.has(previous) && p.type !== 'A-ABORT') this.problems.push(`the server sent ${p.type} after ${previous}`);
    if (p.type !== 'P-DATA-TF') return;
    const length = p.pdvs.reduce((n, v) => n + 6 + v.data.length, 0);
    if (this.advertisedMaxPdu !== undefined && this.advertisedMaxPdu > 0 && length > this.advertisedMaxPdu) {
      this.problems.push(`the server sent a P-DATA-TF of ${length} bytes; the Maximum Length advertised is ${this.advertisedMaxPdu}`);
    }
    try {
      for (const v of p.pdvs) {
        const m = this.assembler.push(v);
        if (m) this.responses.push({ status: m.command.Status ?? -1, messageId: m.command.MessageIDBeingRespondedTo ?? -1 });
      }
    } catch (e) {
      this.problems.push(`the server's P-DATA do not assemble into messages: ${(e as Error).message}`);
    }
  }
}
