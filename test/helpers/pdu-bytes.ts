/**
 * PS3.8 Upper Layer PDUs built byte by byte for the codec and framer tests (pg-protocol `testing/test-buffers.ts`
 * style). Nothing here calls the codec: these builders are the independent reading of the standard the codec is
 * checked against. Every multi-byte number is big endian (PS3.8 §9.3.1).
 */
import type { AAssociateAc, AAssociateRq } from '../../src/net/pdu/types.js';

export const u8 = (v: number): Buffer => Buffer.from([v]);
export const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
export const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
export const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
export const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);

/** PS3.8 §9.3.1: Item-type (1), reserved (1), Item-length (2), then the body. `length` overrides the true length. */
export function item(type: number, body: Buffer[], opts: { second?: number; length?: number } = {}): Buffer {
  const data = cat(...body);
  return cat(u8(type), u8(opts.second ?? 0), u16(opts.length ?? data.length), data);
}

/** PS3.8 §9.3.1: PDU-type (1), reserved (1), PDU-length (4), then the body. `length` overrides the true length. */
export function pdu(type: number, body: Buffer[], opts: { length?: number } = {}): Buffer {
  const data = cat(...body);
  return cat(u8(type), u8(0), u32(opts.length ?? data.length), data);
}

/** PS3.8 §9.3.2 Table 9-11: 16 bytes, space-padded. */
export const aeTitle = (s: string): Buffer => ascii(s.padEnd(16, ' '));

// --- Variable items (PS3.8 §9.3.2.1-9.3.2.3, §9.3.3.2) ------------------------------------------------------------

export const applicationContext = (name: string): Buffer => item(0x10, [ascii(name)]);
export const abstractSyntax = (uid: string): Buffer => item(0x30, [ascii(uid)]);
export const transferSyntax = (uid: string): Buffer => item(0x40, [ascii(uid)]);

/** PS3.8 §9.3.2.2 Table 9-13: ID, three reserved bytes (DCMTK sends FFH in the second one), sub-items. */
export function presentationContextRq(id: number, abstract: string, tss: string[], reserved: [number, number, number] = [0, 0, 0]): Buffer {
  return item(0x20, [u8(id), u8(reserved[0]), u8(reserved[1]), u8(reserved[2]), abstractSyntax(abstract), ...tss.map(transferSyntax)]);
}

/** PS3.8 §9.3.3.2 Table 9-18: ID, reserved, Result/Reason, reserved, one Transfer Syntax Sub-Item. */
export function presentationContextAc(id: number, result: number, ts: string): Buffer {
  return item(0x21, [u8(id), u8(0), u8(result), u8(0), transferSyntax(ts)]);
}

export const userInformation = (...subItems: Buffer[]): Buffer => item(0x50, subItems);

// --- User Information sub-items (PS3.8 Annex D, PS3.7 Annex D.3.3) -------------------------------------------------

/** PS3.8 §D.1 Table D.1-1. */
export const maximumLength = (n: number): Buffer => item(0x51, [u32(n)]);
/** PS3.7 §D.3.3.2 Table D.3-1. */
export const implementationClassUid = (uid: string): Buffer => item(0x52, [ascii(uid)]);
/** PS3.7 §D.3.3.3 Table D.3-7. */
export const asyncOpsWindow = (invoked: number, performed: number): Buffer => item(0x53, [u16(invoked), u16(performed)]);
/** PS3.7 §D.3.3.4 Table D.3-9. */
export const roleSelection = (uid: string, scu: number, scp: number): Buffer =>
  item(0x54, [u16(uid.length), ascii(uid), u8(scu), u8(scp)]);
/** PS3.7 §D.3.3.2 Table D.3-3. */
export const implementationVersionName = (name: string): Buffer => item(0x55, [ascii(name)]);
/** PS3.7 §D.3.3.5 Table D.3-11. */
export const sopClassExtendedNegotiation = (uid: string, info: Buffer): Buffer => item(0x56, [u16(uid.length), ascii(uid), info]);
/** PS3.7 §D.3.3.6 Tables D.3-12 and D.3-13; the second byte is the Sub-Item-version (00H). */
export function sopClassCommonExtendedNegotiation(sop: string, service: string, related: string[]): Buffer {
  const rel = cat(...related.map((uid) => cat(u16(uid.length), ascii(uid))));
  return item(0x57, [u16(sop.length), ascii(sop), u16(service.length), ascii(service), u16(rel.length), rel]);
}
/** PS3.7 §D.3.3.7.1 Table D.3-14. */
export const userIdentityRq = (type: number, positive: number, primary: Buffer, secondary: Buffer): Buffer =>
  item(0x58, [u8(type), u8(positive), u16(primary.length), primary, u16(secondary.length), secondary]);
/** PS3.7 §D.3.3.7.2 Table D.3-15. */
export const userIdentityAc = (response: Buffer): Buffer => item(0x59, [u16(response.length), response]);

// --- PDUs (PS3.8 §9.3.2-9.3.8) --------------------------------------------------------------------------------------

/** PS3.8 §9.3.2 Table 9-11 (and §9.3.3 Table 9-17 with type 02H). */
export function associate(
  type: 0x01 | 0x02,
  called: string | Buffer,
  calling: string | Buffer,
  items: Buffer[],
  opts: { protocolVersion?: number; length?: number } = {},
): Buffer {
  const title = (t: string | Buffer): Buffer => (typeof t === 'string' ? aeTitle(t) : t);
  return pdu(type, [u16(opts.protocolVersion ?? 1), u16(0), title(called), title(calling), Buffer.alloc(32), ...items], opts);
}

/** PS3.8 §9.3.4 Table 9-21. */
export const associateRj = (result: number, source: number, reason: number): Buffer => pdu(0x03, [u8(0), u8(result), u8(source), u8(reason)]);

/** PS3.8 §9.3.5.1 Table 9-23 and Annex E: Item-length (4), context ID, message control header, fragment. */
export const pdv = (id: number, mch: number, data: Buffer, length = data.length + 2): Buffer => cat(u32(length), u8(id), u8(mch), data);
/** PS3.8 §9.3.5 Table 9-22. */
export const pDataTf = (...pdvs: Buffer[]): Buffer => pdu(0x04, pdvs);
/** PS3.8 §9.3.6 / §9.3.7 Tables 9-24, 9-25. */
export const releaseRq = (): Buffer => pdu(0x05, [u32(0)]);
export const releaseRp = (): Buffer => pdu(0x06, [u32(0)]);
/** PS3.8 §9.3.8 Table 9-26. */
export const abort = (source: number, reason: number): Buffer => pdu(0x07, [u8(0), u8(0), u8(source), u8(reason)]);

// --- What DCMTK 3.6.7 sends --------------------------------------------------------------------------------------------

const VERIFICATION = '1.2.840.10008.1.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';
const DCMTK_CLASS_UID = '1.2.276.0.7230010.3.0.3.6.7';
const DCMTK_VERSION = 'OFFIS_DCMTK_367';

/**
 * `echoscu --propose-pc 2 127.0.0.1 PORT` (DCMTK 3.6.7): two Verification contexts offering Implicit VR Little Endian,
 * max length 16384, DCMTK's implementation class UID and version name, items in ascending type order. DCMTK puts FFH
 * in the second reserved byte of each RQ presentation context (PS3.8: "not tested when received"); we send 00H, so
 * `contextReserved: 0` gives the bytes our encoder must produce.
 */
export function echoscuRq(opts: { contextReserved?: number } = {}): Buffer {
  const r = opts.contextReserved ?? 0xff;
  return associate(0x01, 'ANY-SCP', 'ECHOSCU', [
    applicationContext('1.2.840.10008.3.1.1.1'),
    presentationContextRq(1, VERIFICATION, [IMPLICIT_LE], [0, r, 0]),
    presentationContextRq(3, VERIFICATION, [IMPLICIT_LE], [0, r, 0]),
    userInformation(maximumLength(16384), implementationClassUid(DCMTK_CLASS_UID), implementationVersionName(DCMTK_VERSION)),
  ]);
}

/** The bytes echoscu 3.6.7 sent, captured on loopback: the builder above must reproduce them exactly. */
export const ECHOSCU_RQ_CAPTURED_HEX =
  '0100000000ff00010000414e592d5343502020202020202020204543484f534355202020202020202020' +
  '0000000000000000000000000000000000000000000000000000000000000000' +
  '10000015312e322e3834302e31303030382e332e312e312e31' +
  '2000002e0100ff0030000011312e322e3834302e31303030382e312e3140000011312e322e3834302e31303030382e312e32' +
  '2000002e0300ff0030000011312e322e3834302e31303030382e312e3140000011312e322e3834302e31303030382e312e32' +
  '5000003a51000004000040005200001b312e322e3237362e302e373233303031302e332e302e332e362e37' +
  '5500000f4f464649535f44434d544b5f333637';

export const ECHOSCU_RQ: AAssociateRq = {
  type: 'A-ASSOCIATE-RQ',
  protocolVersion: 1,
  calledAeTitle: 'ANY-SCP',
  callingAeTitle: 'ECHOSCU',
  applicationContextName: '1.2.840.10008.3.1.1.1',
  presentationContexts: [
    { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
    { id: 3, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
  ],
  userInformation: {
    maxPduLength: 16384,
    implementationClassUid: DCMTK_CLASS_UID,
    implementationVersionName: DCMTK_VERSION,
    roleSelections: [],
    extendedNegotiations: [],
    commonExtendedNegotiations: [],
    unknownItems: [],
  },
};

/**
 * `storescp` 3.6.7's answer to that RQ with context 3's abstract syntax changed to an unknown one: context 1 accepted,
 * context 3 rejected (3, abstract-syntax-not-supported) with the proposed transfer syntax echoed.
 */
export function storescpAc(): Buffer {
  return associate(0x02, 'ANY-SCP', 'ECHOSCU', [
    applicationContext('1.2.840.10008.3.1.1.1'),
    presentationContextAc(1, 0, IMPLICIT_LE),
    presentationContextAc(3, 3, IMPLICIT_LE),
    userInformation(maximumLength(16384), implementationClassUid(DCMTK_CLASS_UID), implementationVersionName(DCMTK_VERSION)),
  ]);
}

/** The bytes storescp 3.6.7 answered, captured on loopback. */
export const STORESCP_AC_CAPTURED_HEX =
  '0200000000d500010000414e592d5343502020202020202020204543484f534355202020202020202020' +
  '0000000000000000000000000000000000000000000000000000000000000000' +
  '10000015312e322e3834302e31303030382e332e312e312e31' +
  '210000190100000040000011312e322e3834302e31303030382e312e32' +
  '210000190300030040000011312e322e3834302e31303030382e312e32' +
  '5000003a51000004000040005200001b312e322e3237362e302e373233303031302e332e302e332e362e37' +
  '5500000f4f464649535f44434d544b5f333637';

export const STORESCP_AC: AAssociateAc = {
  type: 'A-ASSOCIATE-AC',
  protocolVersion: 1,
  calledAeTitle: 'ANY-SCP',
  callingAeTitle: 'ECHOSCU',
  applicationContextName: '1.2.840.10008.3.1.1.1',
  presentationContexts: [
    { id: 1, result: 0, transferSyntax: IMPLICIT_LE },
    { id: 3, result: 3, transferSyntax: IMPLICIT_LE },
  ],
  userInformation: { ...ECHOSCU_RQ.userInformation },
};

/** `storescu --user alice --password secret --pos-response` (3.6.7): its User Identity Sub-Item, as captured. */
export const STORESCU_USER_IDENTITY_CAPTURED_HEX = '5800001102010005616c6963650006736563726574';
/** `getscu` (3.6.7): the Role Selection Sub-Item it sends for Ambulatory ECG Storage (SCU role 0, SCP role 1), as captured. */
export const GETSCU_ROLE_SELECTION_CAPTURED_HEX = '54000021001d312e322e3834302e31303030382e352e312e342e312e312e392e312e330001';
