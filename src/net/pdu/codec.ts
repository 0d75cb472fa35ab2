/**
 * The DICOM Upper Layer PDU codec (PS3.8 §9.3, PS3.7 Annex D): whole PDUs <-> `Pdu` values. Pure: no sockets, no timers
 * (STYLE.md habit 3; the chunk accumulator is `framer.ts`).
 *
 * Decoding treats its input as hostile: every length is checked against what its parent has left before it is used,
 * and the only error that can escape is `PduError`, carrying the A-ABORT reason the receiver should send
 * (PS3.8 §9.3.8). Fields PS3.8 calls reserved ("not tested when received") are skipped, never tested. Items of
 * unrecognized types are skipped (PS3.8 §9.3.1); User Information sub-items of unknown types are kept in
 * `unknownItems`. Decoded Buffers are views into the input, not copies.
 *
 * Encoding writes reserved fields as 00H, UIDs without padding (PS3.8 Annex F), AE titles space-padded to 16 bytes, and
 * User Information sub-items in ascending item-type order (PS3.8 §9.3.2.3 note: some older peers expect it).
 */
import {
  ABORT_REASONS,
  emptyUserInformation,
  PDU_TYPE_CODES,
  PDU_TYPE_NAMES,
  type AAbort,
  type AAssociateAc,
  type AAssociateRj,
  type AAssociateRq,
  type AReleaseRp,
  type AReleaseRq,
  type PDataTf,
  type Pdu,
  type PduType,
  type Pdv,
  type PresentationContextAc,
  type PresentationContextResult,
  type PresentationContextRq,
  type UserIdentityType,
  type UserInformation,
} from './types.js';
import { cannotEncode, invalidValue, malformed, PduError, unexpectedItem } from './errors.js';

export { PduError, isPduError, type PduErrorCode, type PduRejection } from './errors.js';

/** PS3.8 §9.3: PDU-type (1), reserved (1), PDU-length (4). */
export const PDU_HEADER_LENGTH = 6;
/** PS3.8 §9.3.5.1: Item-length (4), Presentation-context-ID (1), message control header (1, Annex E). */
export const PDV_HEADER_LENGTH = 6;
/** PS3.8 §9.3.2 Table 9-11 bytes 7-74: protocol version, reserved, called and calling AE titles, 32 reserved bytes. */
const ASSOCIATE_FIXED_LENGTH = 68;
/** PS3.8 §9.3.4, §9.3.6-9.3.8: A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT have a PDU-length of exactly 4. */
const FIXED_PDU_LENGTH = 4;
const AE_TITLE_LENGTH = 16;

/** PS3.8 §9.3.2-9.3.3 and PS3.7 Annex D: item and sub-item types. */
export const ITEM_TYPES = {
  applicationContext: 0x10,
  presentationContextRq: 0x20,
  presentationContextAc: 0x21,
  abstractSyntax: 0x30,
  transferSyntax: 0x40,
  userInformation: 0x50,
  maximumLength: 0x51,
  implementationClassUid: 0x52,
  asynchronousOperationsWindow: 0x53,
  roleSelection: 0x54,
  implementationVersionName: 0x55,
  sopClassExtendedNegotiation: 0x56,
  sopClassCommonExtendedNegotiation: 0x57,
  userIdentityRq: 0x58,
  userIdentityAc: 0x59,
} as const;

/** PS3.8 Annex E: message control header bits. */
const MCH_COMMAND = 0x01;
const MCH_LAST = 0x02;

const hex = (n: number): string => `${n.toString(16).toUpperCase().padStart(2, '0')}H`;

// ---------------------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------------------

/** A bounded cursor over part of one PDU. Offsets are PDU offsets, so errors point at the byte in the PDU. */
class Reader {
  constructor(
    private readonly buf: Buffer,
    public off: number,
    readonly end: number,
  ) {}

  get remaining(): number {
    return this.end - this.off;
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.off) {
      throw malformed(`${what} needs ${n} bytes but only ${this.end - this.off} are left`, this.off);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.off++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.off += n;
  }

  /** A view (no copy) of the next n bytes. */
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }

  /** A reader over the next n bytes, which this reader then skips. */
  sub(n: number, what: string): Reader {
    this.need(n, what);
    const r = new Reader(this.buf, this.off, this.off + n);
    this.off += n;
    return r;
  }

  rest(): Buffer {
    return this.bytes(this.remaining, 'rest');
  }
}

/** ISO 646 text with trailing NUL and space padding removed (linear: no regex backtracking on hostile input). */
function unpad(b: Buffer): string {
  let end = b.length;
  while (end > 0 && (b[end - 1] === 0x00 || b[end - 1] === 0x20)) end--;
  return b.toString('latin1', 0, end);
}

/** A UID (or name) filling the rest of an item; PS3.8 Annex F says unpadded, but NUL/space padding is tolerated. */
function readUidRest(r: Reader): string {
  return unpad(r.rest());
}

/** A UID preceded by its 2-byte length (PS3.7 Annex D sub-items). */
function readUid16(r: Reader, what: string): string {
  const len = r.u16(`${what} length`);
  return unpad(r.bytes(len, what));
}

/** A byte that PS3.7 defines as 0 or 1. */
function readFlag(r: Reader, what: string): boolean {
  const at = r.off;
  const v = r.u8(what);
  if (v > 1) throw invalidValue(`${what} is ${v}; PS3.7 allows 0 or 1`, at);
  return v === 1;
}

/** PS3.8 §9.3.2.2 / §9.3.5.1: presentation context IDs are odd integers 1..255. */
function checkContextId(id: number, at: number, what: string): void {
  if ((id & 1) === 0) throw invalidValue(`${what}: presentation context ID ${id} is not an odd number 1..255`, at);
}

/**
 * PS3.8 §9.3.2 Table 9-11: an AE title is 16 ISO 646 G0 characters, leading and trailing spaces not significant, not all
 * spaces. PS3.5 §6.2 (VR AE) also excludes backslash and control characters.
 */
function readAeTitle(r: Reader, what: string, validate: boolean): string {
  const at = r.off;
  const b = r.bytes(AE_TITLE_LENGTH, what);
  if (validate) {
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c < 0x20 || c > 0x7e || c === 0x5c) throw invalidValue(`${what} has the invalid character ${hex(c)}`, at + i);
    }
  }
  const title = b.toString('latin1').trim();
  if (validate && title === '') throw invalidValue(`${what} is all spaces, which PS3.8 §9.3.2 forbids`, at);
  return title;
}

/** Walks the items of a variable field: Item-type (1), reserved or version (1), Item-length (2), body. */
function readItems(r: Reader, where: string, onItem: (type: number, body: Reader, at: number) => void): void {
  while (r.remaining > 0) {
    const at = r.off;
    if (r.remaining < 4) throw malformed(`${where}: ${r.remaining} stray bytes where a 4-byte item header was expected`, at);
    const type = r.u8('Item-type');
    r.skip(1, 'reserved');
    const len = r.u16('Item-length');
    if (len > r.remaining) {
      throw malformed(`${where}: item ${hex(type)} declares ${len} bytes but its parent has ${r.remaining} left`, at);
    }
    onItem(type, r.sub(len, `item ${hex(type)}`), at);
  }
}

/** PS3.8 §9.3.2.2: Presentation Context Item (20H) of an A-ASSOCIATE-RQ. */
function decodePresentationContextRq(r: Reader, at: number): PresentationContextRq {
  const id = r.u8('Presentation-context-ID');
  r.skip(3, 'reserved fields of a presentation context');
  checkContextId(id, at + 4, 'A-ASSOCIATE-RQ');
  const where = `presentation context ${id}`;
  let abstractSyntax: string | undefined;
  const transferSyntaxes: string[] = [];
  readItems(r, where, (type, body, subAt) => {
    if (type === ITEM_TYPES.abstractSyntax) {
      if (abstractSyntax !== undefined) throw unexpectedItem(`${where} has two Abstract Syntax Sub-Items`, subAt);
      abstractSyntax = readUidRest(body);
      if (abstractSyntax === '') throw invalidValue(`${where} has an empty Abstract Syntax Name`, subAt);
    } else if (type === ITEM_TYPES.transferSyntax) {
      const ts = readUidRest(body);
      if (ts === '') throw invalidValue(`${where} has an empty Transfer Syntax Name`, subAt);
      transferSyntaxes.push(ts);
    }
    // Other sub-item types are ignored (PS3.8 §9.3.1).
  });
  if (abstractSyntax === undefined) throw malformed(`${where} has no Abstract Syntax Sub-Item`, at);
  if (transferSyntaxes.length === 0) throw malformed(`${where} has no Transfer Syntax Sub-Item`, at);
  return { id, abstractSyntax, transferSyntaxes };
}

/** PS3.8 §9.3.3.2: Presentation Context Item (21H) of an A-ASSOCIATE-AC. */
function decodePresentationContextAc(r: Reader, at: number): PresentationContextAc {
  const id = r.u8('Presentation-context-ID');
  r.skip(1, 'reserved');
  const result = r.u8('Result/Reason');
  r.skip(1, 'reserved');
  checkContextId(id, at + 4, 'A-ASSOCIATE-AC');
  if (result > 4) throw invalidValue(`presentation context ${id} has Result/Reason ${result}; PS3.8 Table 9-18 has 0..4`, at + 6);
  const where = `presentation context ${id}`;
  let transferSyntax: string | undefined;
  readItems(r, where, (type, body, subAt) => {
    if (type !== ITEM_TYPES.transferSyntax) return; // PS3.8 §9.3.1
    if (transferSyntax !== undefined) throw unexpectedItem(`${where} has two Transfer Syntax Sub-Items`, subAt);
    transferSyntax = readUidRest(body);
  });
  // PS3.8 §9.3.3.2: the Transfer Syntax is not significant (not tested) unless the context was accepted.
  if (result === 0 && !transferSyntax) throw malformed(`accepted ${where} names no transfer syntax`, at);
  return transferSyntax ? { id, result: result as PresentationContextResult, transferSyntax } : { id, result: result as PresentationContextResult };
}

interface SubItemDecoder {
  /** The standard's name, for messages. */
  name: string;
  /** PS3.7: "only one ... Sub-Item shall be present": a second is refused (abort reason 5). */
  once: boolean;
  /** Reads the sub-item's fields; the body must be consumed exactly. */
  decode(r: Reader, ui: UserInformation, at: number): void;
}

/** PS3.8 Annex D and PS3.7 Annex D: the User Information sub-items, by item type (STYLE.md habit 2). */
const USER_INFORMATION_DECODERS: ReadonlyMap<number, SubItemDecoder> = new Map<number, SubItemDecoder>([
  [ITEM_TYPES.maximumLength, {
    name: 'Maximum Length Sub-Item (PS3.8 §D.1)',
    once: true,
    decode(r, ui) {
      ui.maxPduLength = r.u32('Maximum-length-received');
    },
  }],
  [ITEM_TYPES.implementationClassUid, {
    name: 'Implementation Class UID Sub-Item (PS3.7 §D.3.3.2)',
    once: true,
    decode(r, ui) {
      ui.implementationClassUid = readUidRest(r);
    },
  }],
  [ITEM_TYPES.asynchronousOperationsWindow, {
    name: 'Asynchronous Operations Window Sub-Item (PS3.7 §D.3.3.3)',
    once: true,
    decode(r, ui) {
      const maxOperationsInvoked = r.u16('Maximum-number-operations-invoked');
      const maxOperationsPerformed = r.u16('Maximum-number-operations-performed');
      ui.asyncOpsWindow = { maxOperationsInvoked, maxOperationsPerformed };
    },
  }],
  [ITEM_TYPES.roleSelection, {
    name: 'SCP/SCU Role Selection Sub-Item (PS3.7 §D.3.3.4)',
    once: false,
    decode(r, ui) {
      const sopClassUid = readUid16(r, 'SOP-class-uid');
      const scuRole = readFlag(r, 'SCU-role');
      const scpRole = readFlag(r, 'SCP-role');
      ui.roleSelections.push({ sopClassUid, scuRole, scpRole });
    },
  }],
  [ITEM_TYPES.implementationVersionName, {
    name: 'Implementation Version Name Sub-Item (PS3.7 §D.3.3.2)',
    once: true,
    decode(r, ui) {
      ui.implementationVersionName = unpad(r.rest());
    },
  }],
  [ITEM_TYPES.sopClassExtendedNegotiation, {
    name: 'SOP Class Extended Negotiation Sub-Item (PS3.7 §D.3.3.5)',
    once: false,
    decode(r, ui) {
      const sopClassUid = readUid16(r, 'SOP-class-uid');
      ui.extendedNegotiations.push({ sopClassUid, info: r.rest() });
    },
  }],
  [ITEM_TYPES.sopClassCommonExtendedNegotiation, {
    name: 'SOP Class Common Extended Negotiation Sub-Item (PS3.7 §D.3.3.6)',
    once: false,
    decode(r, ui) {
      // The byte after the Item-type is the Sub-Item-version (00H), skipped by readItems like a reserved byte.
      const sopClassUid = readUid16(r, 'SOP-class-uid');
      const serviceClassUid = readUid16(r, 'Service-class-uid');
      const relatedLength = r.u16('Related-general-sop-class-identification-length');
      const related = r.sub(relatedLength, 'Related-general-sop-class-identification');
      const relatedGeneralSopClassUids: string[] = [];
      while (related.remaining > 0) relatedGeneralSopClassUids.push(readUid16(related, 'Related-general-sop-class-uid'));
      ui.commonExtendedNegotiations.push({ sopClassUid, serviceClassUid, relatedGeneralSopClassUids });
    },
  }],
  [ITEM_TYPES.userIdentityRq, {
    name: 'User Identity Sub-Item, A-ASSOCIATE-RQ (PS3.7 §D.3.3.7.1)',
    once: true,
    decode(r, ui, at) {
      const identityType = r.u8('User-Identity-Type');
      if (identityType < 1 || identityType > 5) {
        throw invalidValue(`User-Identity-Type ${identityType}; PS3.7 Table D.3-14 has 1..5`, at + 4);
      }
      const positiveResponseRequested = readFlag(r, 'Positive-response-requested');
      const primaryField = r.bytes(r.u16('Primary-field-length'), 'Primary-field');
      const secondaryField = r.bytes(r.u16('Secondary-field-length'), 'Secondary-field');
      ui.userIdentityRq = { identityType: identityType as UserIdentityType, positiveResponseRequested, primaryField, secondaryField };
    },
  }],
  [ITEM_TYPES.userIdentityAc, {
    name: 'User Identity Sub-Item, A-ASSOCIATE-AC (PS3.7 §D.3.3.7.2)',
    once: true,
    decode(r, ui) {
      ui.userIdentityAc = { serverResponse: r.bytes(r.u16('Server-response-length'), 'Server-response') };
    },
  }],
]);

/** PS3.8 §9.3.2.3: User Information Item (50H). */
function decodeUserInformation(r: Reader): UserInformation {
  const ui = emptyUserInformation();
  const seen = new Set<number>();
  readItems(r, 'User Information Item', (type, body, at) => {
    const decoder = USER_INFORMATION_DECODERS.get(type);
    if (!decoder) {
      ui.unknownItems.push({ itemType: type, data: body.rest() });
      return;
    }
    if (decoder.once && seen.has(type)) throw unexpectedItem(`a second ${decoder.name}`, at);
    seen.add(type);
    decoder.decode(body, ui, at);
    if (body.remaining !== 0) throw malformed(`${decoder.name} has ${body.remaining} bytes past its last field`, body.off);
  });
  return ui;
}

/** PS3.8 §9.3.2 / §9.3.3: A-ASSOCIATE-RQ and -AC share their layout; the AC's AE titles are reserved (not tested). */
function decodeAssociate(r: Reader, rq: boolean): AAssociateRq | AAssociateAc {
  const name = rq ? 'A-ASSOCIATE-RQ' : 'A-ASSOCIATE-AC';
  if (r.remaining < ASSOCIATE_FIXED_LENGTH) {
    throw malformed(`${name}: the fixed fields take ${ASSOCIATE_FIXED_LENGTH} bytes but PDU-length leaves ${r.remaining}`, r.off);
  }
  const protocolVersion = r.u16('Protocol-version');
  r.skip(2, 'reserved');
  const calledAeTitle = readAeTitle(r, 'Called-AE-title', rq);
  const callingAeTitle = readAeTitle(r, 'Calling-AE-title', rq);
  r.skip(32, 'reserved');

  let applicationContextName: string | undefined;
  let userInformation: UserInformation | undefined;
  const contextsRq: PresentationContextRq[] = [];
  const contextsAc: PresentationContextAc[] = [];
  const ids = new Set<number>();
  const ownContext: number = rq ? ITEM_TYPES.presentationContextRq : ITEM_TYPES.presentationContextAc;
  const otherContext: number = rq ? ITEM_TYPES.presentationContextAc : ITEM_TYPES.presentationContextRq;

  readItems(r, name, (type, body, at) => {
    if (type === ITEM_TYPES.applicationContext) {
      if (applicationContextName !== undefined) throw unexpectedItem(`${name} has two Application Context Items`, at);
      applicationContextName = readUidRest(body);
    } else if (type === ownContext) {
      const pc = rq ? decodePresentationContextRq(body, at) : decodePresentationContextAc(body, at);
      if (ids.has(pc.id)) throw invalidValue(`${name} has presentation context ID ${pc.id} twice`, at + 4);
      ids.add(pc.id);
      if (rq) contextsRq.push(pc as PresentationContextRq);
      else contextsAc.push(pc as PresentationContextAc);
    } else if (type === otherContext) {
      throw unexpectedItem(`${name} holds a Presentation Context Item of type ${hex(type)}`, at);
    } else if (type === ITEM_TYPES.userInformation) {
      if (userInformation !== undefined) throw unexpectedItem(`${name} has two User Information Items`, at);
      userInformation = decodeUserInformation(body);
    }
    // Items of unrecognized types are ignored and skipped (PS3.8 §9.3.1).
  });

  if (!applicationContextName) throw malformed(`${name} has no Application Context Item`, PDU_HEADER_LENGTH);
  // PS3.8 §9.3.2 asks for one User Information Item; a peer that sends none is read as proposing no sub-item.
  userInformation ??= emptyUserInformation();
  const common = { protocolVersion, calledAeTitle, callingAeTitle, applicationContextName, userInformation };
  if (!rq) return { type: 'A-ASSOCIATE-AC', ...common, presentationContexts: contextsAc };
  if (contextsRq.length === 0) {
    throw new PduError('ERR_PDU_NO_PRESENTATION_CONTEXT', 'A-ASSOCIATE-RQ proposes no presentation context', {
      abortReason: ABORT_REASONS['invalid-PDU-parameter-value'],
      rejection: { result: 1, source: 1, reason: 1 }, // rejected-permanent, service-user, no-reason-given
    });
  }
  return { type: 'A-ASSOCIATE-RQ', ...common, presentationContexts: contextsRq };
}

function checkFixedLength(r: Reader, name: string): void {
  if (r.remaining !== FIXED_PDU_LENGTH) {
    throw malformed(`${name}: PDU-length is ${r.remaining}; PS3.8 fixes it at ${FIXED_PDU_LENGTH}`, 2);
  }
}

/** PS3.8 §9.3.4: A-ASSOCIATE-RJ. */
function decodeAssociateRj(r: Reader): AAssociateRj {
  checkFixedLength(r, 'A-ASSOCIATE-RJ');
  r.skip(1, 'reserved');
  const result = r.u8('Result');
  const source = r.u8('Source');
  const reason = r.u8('Reason/Diag.');
  if (result !== 1 && result !== 2) throw invalidValue(`A-ASSOCIATE-RJ Result ${result}; PS3.8 Table 9-21 has 1 or 2`, 7);
  if (source < 1 || source > 3) throw invalidValue(`A-ASSOCIATE-RJ Source ${source}; PS3.8 Table 9-21 has 1..3`, 8);
  return { type: 'A-ASSOCIATE-RJ', result, source: source as 1 | 2 | 3, reason };
}

/** PS3.8 §9.3.5: P-DATA-TF, one or more PDV items (the hot path: one Reader, no per-item allocation but the PDV). */
function decodePDataTf(r: Reader): PDataTf {
  const pdvs: Pdv[] = [];
  while (r.remaining > 0) {
    const at = r.off;
    if (r.remaining < 4) throw malformed(`P-DATA-TF: ${r.remaining} stray bytes after the last PDV`, at);
    const length = r.u32('PDV Item-length');
    if (length < 2) throw malformed(`PDV Item-length ${length}: a PDV holds at least its context ID and control header`, at);
    if (length > r.remaining) throw malformed(`PDV Item-length ${length} overruns the PDU (${r.remaining} bytes left)`, at);
    const presentationContextId = r.u8('Presentation-context-ID');
    checkContextId(presentationContextId, at + 4, 'PDV');
    const mch = r.u8('message control header');
    // PS3.8 Annex E: bits 2-7 are sent as 0; they are not interpreted here.
    pdvs.push({
      presentationContextId,
      isCommand: (mch & MCH_COMMAND) !== 0,
      isLast: (mch & MCH_LAST) !== 0,
      data: r.bytes(length - 2, 'Presentation-data-value'),
    });
  }
  if (pdvs.length === 0) throw malformed('P-DATA-TF holds no PDV item (PS3.8 §9.3.5: one or more)', PDU_HEADER_LENGTH);
  return { type: 'P-DATA-TF', pdvs };
}

/** PS3.8 §9.3.8: A-ABORT. Source 1 is reserved; the reason is significant only for source 2 but is kept as sent. */
function decodeAbort(r: Reader): AAbort {
  checkFixedLength(r, 'A-ABORT');
  r.skip(2, 'reserved');
  const source = r.u8('Source');
  const reason = r.u8('Reason/Diag.');
  if (source !== 0 && source !== 2) throw invalidValue(`A-ABORT Source ${source}; PS3.8 Table 9-26 has 0 or 2`, 8);
  return { type: 'A-ABORT', source, reason };
}

const PDU_DECODERS: Record<PduType, (r: Reader) => Pdu> = {
  'A-ASSOCIATE-RQ': (r) => decodeAssociate(r, true),
  'A-ASSOCIATE-AC': (r) => decodeAssociate(r, false),
  'A-ASSOCIATE-RJ': decodeAssociateRj,
  'P-DATA-TF': decodePDataTf,
  'A-RELEASE-RQ': (r): AReleaseRq => (checkFixedLength(r, 'A-RELEASE-RQ'), { type: 'A-RELEASE-RQ' }),
  'A-RELEASE-RP': (r): AReleaseRp => (checkFixedLength(r, 'A-RELEASE-RP'), { type: 'A-RELEASE-RP' }),
  'A-ABORT': decodeAbort,
};

/**
 * Decodes one whole PDU, its 6-byte header included (as the framer yields them). Throws only PduError.
 * Buffers in the result are views into `bytes`.
 */
export function decodePdu(bytes: Buffer): Pdu {
  if (bytes.length < PDU_HEADER_LENGTH) {
    throw malformed(`a PDU starts with a ${PDU_HEADER_LENGTH}-byte header; got ${bytes.length} bytes`, 0);
  }
  const code = bytes[0]!;
  const name = PDU_TYPE_NAMES.get(code);
  if (name === undefined) {
    throw new PduError('ERR_PDU_UNKNOWN_TYPE', `unrecognized PDU type ${hex(code)}`, {
      abortReason: ABORT_REASONS['unrecognized-PDU'],
      offset: 0,
    });
  }
  const length = bytes.readUInt32BE(2);
  if (length !== bytes.length - PDU_HEADER_LENGTH) {
    throw malformed(`${name}: PDU-length is ${length} but ${bytes.length - PDU_HEADER_LENGTH} bytes follow the header`, 2);
  }
  return PDU_DECODERS[name](new Reader(bytes, PDU_HEADER_LENGTH, bytes.length));
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------------------

/** A growable big-endian writer; item and PDU lengths are reserved, then patched when the item ends. */
class Writer {
  private buf: Buffer;
  private off = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  private check(v: number, max: number, what: string): void {
    if (!Number.isInteger(v) || v < 0 || v > max) throw cannotEncode(`${what} is ${v}; it must be an integer 0..${max}`);
  }

  u8(v: number, what: string): void {
    this.check(v, 0xff, what);
    this.ensure(1);
    this.buf[this.off++] = v;
  }

  u16(v: number, what: string): void {
    this.check(v, 0xffff, what);
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.off);
    this.off += 2;
  }

  u32(v: number, what: string): void {
    this.check(v, 0xffffffff, what);
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.off);
    this.off += 4;
  }

  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.off, this.off + n);
    this.off += n;
  }

  bytes(b: Buffer): void {
    this.ensure(b.length);
    b.copy(this.buf, this.off);
    this.off += b.length;
  }

  /** ISO 646 text; anything outside 7-bit ASCII cannot go on the wire. */
  ascii(s: string, what: string): void {
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > 0x7f) throw cannotEncode(`${what} has the non-ASCII character U+${s.charCodeAt(i).toString(16)}`);
    }
    this.ensure(s.length);
    this.off += this.buf.write(s, this.off, 'latin1');
  }

  /** A 2-byte length then the text (PS3.7 Annex D sub-item fields). */
  ascii16(s: string, what: string): void {
    this.u16(s.length, `${what} length`);
    this.ascii(s, what);
  }

  /** A 2-byte length then the bytes. */
  bytes16(b: Buffer, what: string): void {
    this.u16(b.length, `${what} length`);
    this.bytes(b);
  }

  /** A 2-byte length field to be patched by endLength16() with the number of bytes written after it. */
  beginLength16(): number {
    this.ensure(2);
    const at = this.off;
    this.off += 2;
    return at;
  }

  endLength16(at: number, what: string): void {
    const length = this.off - at - 2;
    if (length > 0xffff) throw cannotEncode(`${what} takes ${length} bytes; its length field holds at most 65535`);
    this.buf.writeUInt16BE(length, at);
  }

  /** Item-type, a reserved (or version) byte and a 2-byte Item-length to be patched by endItem(). */
  beginItem(type: number, secondByte = 0): number {
    this.ensure(2);
    this.buf[this.off++] = type;
    this.buf[this.off++] = secondByte;
    return this.beginLength16();
  }

  endItem(at: number, what: string): void {
    this.endLength16(at, what);
  }

  /** A whole item whose body is one text. */
  textItem(type: number, s: string, what: string): void {
    const at = this.beginItem(type);
    this.ascii(s, what);
    this.endItem(at, what);
  }

  beginPdu(type: number): number {
    this.ensure(PDU_HEADER_LENGTH);
    this.buf[this.off++] = type;
    this.buf[this.off++] = 0;
    const at = this.off;
    this.off += 4;
    return at;
  }

  endPdu(at: number): Buffer {
    const length = this.off - at - 4;
    if (length > 0xffffffff) throw cannotEncode(`the PDU takes ${length} bytes; PDU-length holds at most 4294967295`);
    this.buf.writeUInt32BE(length, at);
    return this.buf.subarray(0, this.off);
  }
}

/** PS3.8 §9.3.2 Table 9-11: 16 characters, space-padded; the same rule as when decoding. */
function writeAeTitle(w: Writer, title: string, what: string): void {
  if (title.length === 0 || title.length > AE_TITLE_LENGTH || title.trim() === '') {
    throw cannotEncode(`${what} "${title}" must have 1 to ${AE_TITLE_LENGTH} characters, not all spaces`);
  }
  for (let i = 0; i < title.length; i++) {
    const c = title.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x5c) throw cannotEncode(`${what} "${title}" has the invalid character U+${c.toString(16)}`);
  }
  w.ascii(title.padEnd(AE_TITLE_LENGTH, ' '), what);
}

function checkEncodeContextId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id > 255 || (id & 1) === 0) {
    throw cannotEncode(`presentation context ID ${id} is not an odd integer 1..255`);
  }
}

/** PS3.8 §9.3.2.3 and Annex D: the User Information Item, sub-items in ascending item-type order. */
function writeUserInformation(w: Writer, ui: UserInformation): void {
  const at = w.beginItem(ITEM_TYPES.userInformation);
  if (ui.maxPduLength !== undefined) {
    const s = w.beginItem(ITEM_TYPES.maximumLength);
    w.u32(ui.maxPduLength, 'Maximum-length-received');
    w.endItem(s, 'Maximum Length Sub-Item');
  }
  if (ui.implementationClassUid !== undefined) {
    w.textItem(ITEM_TYPES.implementationClassUid, ui.implementationClassUid, 'Implementation-class-uid');
  }
  if (ui.asyncOpsWindow !== undefined) {
    const s = w.beginItem(ITEM_TYPES.asynchronousOperationsWindow);
    w.u16(ui.asyncOpsWindow.maxOperationsInvoked, 'Maximum-number-operations-invoked');
    w.u16(ui.asyncOpsWindow.maxOperationsPerformed, 'Maximum-number-operations-performed');
    w.endItem(s, 'Asynchronous Operations Window Sub-Item');
  }
  for (const role of ui.roleSelections) {
    const s = w.beginItem(ITEM_TYPES.roleSelection);
    w.ascii16(role.sopClassUid, 'SOP-class-uid');
    w.u8(role.scuRole ? 1 : 0, 'SCU-role');
    w.u8(role.scpRole ? 1 : 0, 'SCP-role');
    w.endItem(s, 'SCP/SCU Role Selection Sub-Item');
  }
  if (ui.implementationVersionName !== undefined) {
    w.textItem(ITEM_TYPES.implementationVersionName, ui.implementationVersionName, 'Implementation-version-name');
  }
  for (const ext of ui.extendedNegotiations) {
    const s = w.beginItem(ITEM_TYPES.sopClassExtendedNegotiation);
    w.ascii16(ext.sopClassUid, 'SOP-class-uid');
    w.bytes(ext.info);
    w.endItem(s, 'SOP Class Extended Negotiation Sub-Item');
  }
  for (const common of ui.commonExtendedNegotiations) {
    const s = w.beginItem(ITEM_TYPES.sopClassCommonExtendedNegotiation, 0); // Sub-Item-version 0
    w.ascii16(common.sopClassUid, 'SOP-class-uid');
    w.ascii16(common.serviceClassUid, 'Service-class-uid');
    const related = w.beginLength16();
    for (const uid of common.relatedGeneralSopClassUids) w.ascii16(uid, 'Related-general-sop-class-uid');
    w.endLength16(related, 'Related-general-sop-class-identification');
    w.endItem(s, 'SOP Class Common Extended Negotiation Sub-Item');
  }
  if (ui.userIdentityRq !== undefined) {
    const id = ui.userIdentityRq;
    const s = w.beginItem(ITEM_TYPES.userIdentityRq);
    w.u8(id.identityType, 'User-Identity-Type');
    w.u8(id.positiveResponseRequested ? 1 : 0, 'Positive-response-requested');
    w.bytes16(id.primaryField, 'Primary-field');
    w.bytes16(id.secondaryField, 'Secondary-field');
    w.endItem(s, 'User Identity Sub-Item (RQ)');
  }
  if (ui.userIdentityAc !== undefined) {
    const s = w.beginItem(ITEM_TYPES.userIdentityAc);
    w.bytes16(ui.userIdentityAc.serverResponse, 'Server-response');
    w.endItem(s, 'User Identity Sub-Item (AC)');
  }
  for (const item of ui.unknownItems) {
    const s = w.beginItem(item.itemType);
    w.bytes(item.data);
    w.endItem(s, `User Information sub-item ${hex(item.itemType)}`);
  }
  w.endItem(at, 'User Information Item');
}

/** PS3.8 §9.3.2 / §9.3.3: the fixed fields and the Application Context Item shared by the RQ and the AC. */
function writeAssociateStart(w: Writer, pdu: AAssociateRq | AAssociateAc): void {
  w.u16(pdu.protocolVersion, 'Protocol-version');
  w.zeros(2);
  writeAeTitle(w, pdu.calledAeTitle, 'Called-AE-title');
  writeAeTitle(w, pdu.callingAeTitle, 'Calling-AE-title');
  w.zeros(32);
  w.textItem(ITEM_TYPES.applicationContext, pdu.applicationContextName, 'Application-context-name');
}

/** PS3.8 §9.3.2: A-ASSOCIATE-RQ. */
function encodeAssociateRq(pdu: AAssociateRq): Buffer {
  const w = new Writer(1024);
  const at = w.beginPdu(PDU_TYPE_CODES['A-ASSOCIATE-RQ']);
  writeAssociateStart(w, pdu);
  for (const pc of pdu.presentationContexts) {
    checkEncodeContextId(pc.id);
    const s = w.beginItem(ITEM_TYPES.presentationContextRq);
    w.u8(pc.id, 'Presentation-context-ID');
    w.zeros(3);
    w.textItem(ITEM_TYPES.abstractSyntax, pc.abstractSyntax, 'Abstract-syntax-name');
    for (const ts of pc.transferSyntaxes) w.textItem(ITEM_TYPES.transferSyntax, ts, 'Transfer-syntax-name');
    w.endItem(s, `presentation context ${pc.id}`);
  }
  writeUserInformation(w, pdu.userInformation);
  return w.endPdu(at);
}

/** PS3.8 §9.3.3: A-ASSOCIATE-AC. A rejected context without a transfer syntax gets an empty (not significant) one. */
function encodeAssociateAc(pdu: AAssociateAc): Buffer {
  const w = new Writer(512);
  const at = w.beginPdu(PDU_TYPE_CODES['A-ASSOCIATE-AC']);
  writeAssociateStart(w, pdu);
  for (const pc of pdu.presentationContexts) {
    checkEncodeContextId(pc.id);
    if (pc.result === 0 && !pc.transferSyntax) throw cannotEncode(`accepted presentation context ${pc.id} needs a transfer syntax`);
    const s = w.beginItem(ITEM_TYPES.presentationContextAc);
    w.u8(pc.id, 'Presentation-context-ID');
    w.u8(0, 'reserved');
    w.u8(pc.result, 'Result/Reason');
    w.u8(0, 'reserved');
    w.textItem(ITEM_TYPES.transferSyntax, pc.transferSyntax ?? '', 'Transfer-syntax-name');
    w.endItem(s, `presentation context ${pc.id}`);
  }
  writeUserInformation(w, pdu.userInformation);
  return w.endPdu(at);
}

/** PS3.8 §9.3.4, §9.3.6-9.3.8: the PDUs of fixed length 4; `fields` are bytes 7-10. */
function fixedPdu(type: number, fields: [number, number, number, number], what: string): Buffer {
  const w = new Writer(PDU_HEADER_LENGTH + FIXED_PDU_LENGTH);
  const at = w.beginPdu(type);
  for (const f of fields) w.u8(f, what);
  return w.endPdu(at);
}

function encodeAssociateRj(pdu: AAssociateRj): Buffer {
  return fixedPdu(PDU_TYPE_CODES['A-ASSOCIATE-RJ'], [0, pdu.result, pdu.source, pdu.reason], 'A-ASSOCIATE-RJ field');
}

function encodeAbort(pdu: AAbort): Buffer {
  return fixedPdu(PDU_TYPE_CODES['A-ABORT'], [0, 0, pdu.source, pdu.reason], 'A-ABORT field');
}

/** The PDU-length of a P-DATA-TF carrying these PDVs (PS3.8 §9.3.5); checks what PDV items can hold. */
function pDataTfLength(pdvs: readonly Pdv[]): number {
  if (pdvs.length === 0) throw cannotEncode('a P-DATA-TF carries one or more PDVs (PS3.8 §9.3.5)');
  let length = 0;
  for (const pdv of pdvs) {
    checkEncodeContextId(pdv.presentationContextId);
    if (pdv.data.length + 2 > 0xffffffff) throw cannotEncode(`a PDV of ${pdv.data.length} bytes overflows its Item-length`);
    length += PDV_HEADER_LENGTH + pdv.data.length;
  }
  if (length > 0xffffffff) throw cannotEncode(`a P-DATA-TF of ${length} bytes overflows its PDU-length`);
  return length;
}

/** PS3.8 §9.3.5.1 and Annex E: Item-length, context ID and message control header of one PDV, at `at`. */
function writePdvHeader(buf: Buffer, at: number, pdv: Pdv): void {
  buf.writeUInt32BE(pdv.data.length + 2, at);
  buf[at + 4] = pdv.presentationContextId;
  buf[at + 5] = (pdv.isCommand ? MCH_COMMAND : 0) | (pdv.isLast ? MCH_LAST : 0);
}

function writePDataTfHeader(buf: Buffer, length: number): void {
  buf[0] = PDU_TYPE_CODES['P-DATA-TF'];
  buf[1] = 0;
  buf.writeUInt32BE(length, 2);
}

/**
 * PS3.8 §9.3.5: a P-DATA-TF as one Buffer (one allocation, each PDV's data copied once). For the socket, prefer
 * encodePDataTfParts, which copies nothing.
 */
export function encodePDataTf(pdvs: readonly Pdv[]): Buffer {
  const length = pDataTfLength(pdvs);
  const out = Buffer.allocUnsafe(PDU_HEADER_LENGTH + length);
  writePDataTfHeader(out, length);
  let off = PDU_HEADER_LENGTH;
  for (const pdv of pdvs) {
    writePdvHeader(out, off, pdv);
    off += PDV_HEADER_LENGTH;
    off += pdv.data.copy(out, off);
  }
  return out;
}

/**
 * PS3.8 §9.3.5: a P-DATA-TF as the list of Buffers to hand to `socket.writev`/`cork`+`write`: the headers come from
 * one small allocation and each PDV's data is passed through as is (not copied). Do not mutate the data until written.
 */
export function encodePDataTfParts(pdvs: readonly Pdv[]): Buffer[] {
  const length = pDataTfLength(pdvs);
  const headers = Buffer.allocUnsafe(PDU_HEADER_LENGTH + PDV_HEADER_LENGTH * pdvs.length);
  writePDataTfHeader(headers, length);
  const parts: Buffer[] = [];
  let at = PDU_HEADER_LENGTH;
  for (const pdv of pdvs) {
    writePdvHeader(headers, at, pdv);
    // The PDU header travels with the first PDV header: one part fewer.
    parts.push(headers.subarray(parts.length === 0 ? 0 : at, at + PDV_HEADER_LENGTH));
    if (pdv.data.length > 0) parts.push(pdv.data);
    at += PDV_HEADER_LENGTH;
  }
  return parts;
}

const RELEASE_RQ = (): Buffer => fixedPdu(PDU_TYPE_CODES['A-RELEASE-RQ'], [0, 0, 0, 0], 'reserved');
const RELEASE_RP = (): Buffer => fixedPdu(PDU_TYPE_CODES['A-RELEASE-RP'], [0, 0, 0, 0], 'reserved');

const PDU_ENCODERS: { [K in PduType]: (pdu: Extract<Pdu, { type: K }>) => Buffer } = {
  'A-ASSOCIATE-RQ': encodeAssociateRq,
  'A-ASSOCIATE-AC': encodeAssociateAc,
  'A-ASSOCIATE-RJ': encodeAssociateRj,
  'P-DATA-TF': (pdu: PDataTf) => encodePDataTf(pdu.pdvs),
  'A-RELEASE-RQ': RELEASE_RQ,
  'A-RELEASE-RP': RELEASE_RP,
  'A-ABORT': encodeAbort,
};

/** Encodes one PDU, header included. Throws PduError('ERR_PDU_CANNOT_ENCODE') for values the wire cannot carry. */
export function encodePdu(pdu: Pdu): Buffer {
  const encoder = PDU_ENCODERS[pdu.type] as ((p: Pdu) => Buffer) | undefined;
  if (encoder === undefined) throw cannotEncode(`unknown PDU type ${String((pdu as { type: unknown }).type)}`);
  return encoder(pdu);
}
