// PS3.8 Upper Layer PDU codec and framer: byte-exact fixtures (built in test/helpers/pdu-bytes.ts, checked against
// bytes DCMTK 3.6.7 sent), round trips, the framer at every split, hostile input, and a seeded mutation test.
import { expect } from 'chai';
import { decodePdu, encodePdu, encodePDataTf, encodePDataTfParts, PduError } from '../src/net/pdu/codec.js';
import { PduFramer } from '../src/net/pdu/framer.js';
import {
  DICOM_APPLICATION_CONTEXT,
  emptyUserInformation,
  PDU_TYPE_CODES,
  type AAssociateAc,
  type AAssociateRq,
  type Pdu,
  type Pdv,
  type UserInformation,
} from '../src/net/pdu/types.js';
import * as B from './helpers/pdu-bytes.js';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';
const STORAGE_SERVICE = '1.2.840.10008.4.2';

/** Expects `fn` to throw a PduError with this code (and abort reason, when given); returns it. */
function expectPduError(fn: () => unknown, code: string, abortReason?: number): PduError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'nothing was thrown').to.not.equal(undefined);
  if (!(caught instanceof PduError)) throw new Error(`expected a PduError, got ${String(caught)}`);
  expect(caught.code, caught.message).to.equal(code);
  if (abortReason !== undefined) expect(caught.abortReason, caught.message).to.equal(abortReason);
  return caught;
}

function ui(extra: Partial<UserInformation> = {}): UserInformation {
  return { ...emptyUserInformation(), ...extra };
}

function rq(extra: Partial<AAssociateRq> = {}): AAssociateRq {
  return {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAeTitle: 'PACSNODE',
    callingAeTitle: 'MODALITY',
    applicationContextName: DICOM_APPLICATION_CONTEXT,
    presentationContexts: [{ id: 1, abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] }],
    userInformation: ui({ maxPduLength: 16384 }),
    ...extra,
  };
}

/** An A-ASSOCIATE-RQ with one CT context and the given User Information sub-items, built by hand. */
function rqBytesWith(...subItems: Buffer[]): Buffer {
  return B.associate(0x01, 'PACSNODE', 'MODALITY', [
    B.applicationContext(DICOM_APPLICATION_CONTEXT),
    B.presentationContextRq(1, CT, [EXPLICIT_LE]),
    B.userInformation(...subItems),
  ]);
}

/** Every user-information sub-item at once, for round trips and the framer. */
const FULL_USER_INFORMATION: UserInformation = {
  maxPduLength: 0,
  implementationClassUid: '1.2.3.4.5.6',
  implementationVersionName: 'PACSNODE_010',
  asyncOpsWindow: { maxOperationsInvoked: 5, maxOperationsPerformed: 3 },
  roleSelections: [
    { sopClassUid: CT, scuRole: false, scpRole: true },
    { sopClassUid: '1.2.840.10008.5.1.4.1.1.4', scuRole: true, scpRole: true },
  ],
  extendedNegotiations: [{ sopClassUid: '1.2.840.10008.5.1.4.1.2.2.1', info: Buffer.from([1, 0, 1]) }],
  commonExtendedNegotiations: [
    { sopClassUid: '1.2.840.10008.5.1.4.1.1.88.40', serviceClassUid: STORAGE_SERVICE, relatedGeneralSopClassUids: ['1.2.840.10008.5.1.4.1.1.88.22'] },
    { sopClassUid: '1.2.840.10008.5.1.4.1.1.7.1', serviceClassUid: STORAGE_SERVICE, relatedGeneralSopClassUids: [] },
  ],
  userIdentityRq: {
    identityType: 2,
    positiveResponseRequested: true,
    primaryField: Buffer.from('alice'),
    secondaryField: Buffer.from('secret'),
  },
  userIdentityAc: { serverResponse: Buffer.from('ticket') },
  unknownItems: [{ itemType: 0x7e, data: Buffer.from([9, 8, 7]) }],
};

/** One of each PDU type, as values. */
const SAMPLES: Pdu[] = [
  B.ECHOSCU_RQ,
  rq({ userInformation: FULL_USER_INFORMATION, protocolVersion: 3 }),
  B.STORESCP_AC,
  {
    type: 'A-ASSOCIATE-AC',
    protocolVersion: 1,
    calledAeTitle: 'PACSNODE',
    callingAeTitle: 'MODALITY',
    applicationContextName: DICOM_APPLICATION_CONTEXT,
    presentationContexts: [
      { id: 1, result: 0, transferSyntax: EXPLICIT_LE },
      { id: 3, result: 1 },
      { id: 5, result: 2 },
      { id: 7, result: 3 },
      { id: 255, result: 4, transferSyntax: IMPLICIT_LE },
    ],
    userInformation: ui({ maxPduLength: 32768, userIdentityAc: { serverResponse: Buffer.alloc(0) } }),
  },
  { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 7 },
  { type: 'A-ASSOCIATE-RJ', result: 2, source: 3, reason: 1 },
  {
    type: 'P-DATA-TF',
    pdvs: [
      { presentationContextId: 1, isCommand: true, isLast: true, data: Buffer.from('command set') },
      { presentationContextId: 1, isCommand: false, isLast: false, data: Buffer.from('data set, first fragment') },
      { presentationContextId: 3, isCommand: false, isLast: true, data: Buffer.alloc(0) },
      { presentationContextId: 5, isCommand: true, isLast: false, data: Buffer.from([0]) },
    ],
  },
  { type: 'A-RELEASE-RQ' },
  { type: 'A-RELEASE-RP' },
  { type: 'A-ABORT', source: 0, reason: 0 },
  { type: 'A-ABORT', source: 2, reason: 6 },
];

/** Hand-built bytes of every PDU type, for the framer and the mutation test. */
const FIXTURES: { name: string; bytes: Buffer }[] = [
  { name: 'A-ASSOCIATE-RQ (echoscu)', bytes: B.echoscuRq() },
  {
    name: 'A-ASSOCIATE-RQ (every sub-item)',
    bytes: rqBytesWith(
      B.maximumLength(16384),
      B.implementationClassUid('1.2.3.4'),
      B.asyncOpsWindow(2, 1),
      B.roleSelection(CT, 0, 1),
      B.implementationVersionName('V1'),
      B.sopClassExtendedNegotiation(CT, Buffer.from([1, 1])),
      B.sopClassCommonExtendedNegotiation(CT, STORAGE_SERVICE, ['1.2.3', '4.5.6']),
      B.userIdentityRq(2, 1, Buffer.from('alice'), Buffer.from('secret')),
      B.userIdentityAc(Buffer.from('ok')),
      B.item(0x7e, [Buffer.from('x')]),
    ),
  },
  { name: 'A-ASSOCIATE-AC (storescp)', bytes: B.storescpAc() },
  { name: 'A-ASSOCIATE-RJ', bytes: B.associateRj(1, 1, 3) },
  { name: 'P-DATA-TF', bytes: B.pDataTf(B.pdv(1, 0x03, Buffer.from('cmd')), B.pdv(1, 0x00, Buffer.from('data-1')), B.pdv(1, 0x02, Buffer.alloc(0))) },
  { name: 'A-RELEASE-RQ', bytes: B.releaseRq() },
  { name: 'A-RELEASE-RP', bytes: B.releaseRp() },
  { name: 'A-ABORT', bytes: B.abort(2, 2) },
];

describe('PDU codec (PS3.8 §9.3)', function () {
  describe('A-ASSOCIATE-RQ as DCMTK echoscu sends it (PS3.8 §9.3.2)', () => {
    it('the hand-built fixture is the bytes echoscu 3.6.7 sent', () => {
      expect(B.echoscuRq().toString('hex')).to.equal(B.ECHOSCU_RQ_CAPTURED_HEX);
    });

    it('decodes (the reserved FFH DCMTK puts in each context is not tested)', () => {
      expect(decodePdu(B.echoscuRq())).to.deep.equal(B.ECHOSCU_RQ);
    });

    it('encodes byte-exact, reserved fields as 00H', () => {
      expect(encodePdu(B.ECHOSCU_RQ).toString('hex')).to.equal(B.echoscuRq({ contextReserved: 0 }).toString('hex'));
    });
  });

  describe('A-ASSOCIATE-AC as DCMTK storescp answers (PS3.8 §9.3.3)', () => {
    it('the hand-built fixture is the bytes storescp 3.6.7 sent', () => {
      expect(B.storescpAc().toString('hex')).to.equal(B.STORESCP_AC_CAPTURED_HEX);
    });

    it('decodes and encodes byte-exact', () => {
      expect(decodePdu(B.storescpAc())).to.deep.equal(B.STORESCP_AC);
      expect(encodePdu(B.STORESCP_AC).toString('hex')).to.equal(B.STORESCP_AC_CAPTURED_HEX);
    });

    it('does not test the AE title fields, which are reserved in the AC', () => {
      const bytes = B.associate(0x02, Buffer.alloc(16, 0), Buffer.alloc(16, 0x20), [
        B.applicationContext(DICOM_APPLICATION_CONTEXT),
        B.presentationContextAc(1, 0, IMPLICIT_LE),
      ]);
      const ac = decodePdu(bytes) as AAssociateAc;
      expect(ac.presentationContexts).to.deep.equal([{ id: 1, result: 0, transferSyntax: IMPLICIT_LE }]);
    });

    it('reads a rejected context whose transfer syntax is empty as having none, and writes one back empty', () => {
      const bytes = B.associate(0x02, 'A', 'B', [
        B.applicationContext(DICOM_APPLICATION_CONTEXT),
        B.presentationContextAc(1, 3, ''),
        B.userInformation(B.maximumLength(0)),
      ]);
      const ac = decodePdu(bytes) as AAssociateAc;
      expect(ac.presentationContexts).to.deep.equal([{ id: 1, result: 3 }]);
      expect(encodePdu(ac).equals(bytes)).to.equal(true);
    });
  });

  describe('round trips', () => {
    for (const sample of SAMPLES) {
      const label = sample.type === 'A-ASSOCIATE-RQ' || sample.type === 'A-ASSOCIATE-AC' ? `${sample.type} ${sample.callingAeTitle}` : sample.type;
      it(`${label}: decode(encode(x)) deep-equals x`, () => {
        const bytes = encodePdu(sample);
        expect(bytes[0]).to.equal(PDU_TYPE_CODES[sample.type]);
        expect(bytes.readUInt32BE(2)).to.equal(bytes.length - 6);
        expect(decodePdu(bytes)).to.deep.equal(sample);
      });
    }

    const subItems: [string, Partial<UserInformation>, Buffer][] = [
      ['Maximum Length (51H, PS3.8 §D.1)', { maxPduLength: 0x12345678 }, B.maximumLength(0x12345678)],
      ['Implementation Class UID (52H)', { implementationClassUid: '1.2.826.0.1.3680043.2.1143' }, B.implementationClassUid('1.2.826.0.1.3680043.2.1143')],
      ['Asynchronous Operations Window (53H)', { asyncOpsWindow: { maxOperationsInvoked: 0, maxOperationsPerformed: 65535 } }, B.asyncOpsWindow(0, 65535)],
      ['SCP/SCU Role Selection (54H)', { roleSelections: [{ sopClassUid: CT, scuRole: true, scpRole: false }] }, B.roleSelection(CT, 1, 0)],
      ['Implementation Version Name (55H)', { implementationVersionName: 'PACSNODE_0.1' }, B.implementationVersionName('PACSNODE_0.1')],
      ['SOP Class Extended Negotiation (56H)', { extendedNegotiations: [{ sopClassUid: CT, info: Buffer.from([0, 1, 2, 3, 4, 5, 6]) }] }, B.sopClassExtendedNegotiation(CT, Buffer.from([0, 1, 2, 3, 4, 5, 6]))],
      [
        'SOP Class Common Extended Negotiation (57H)',
        { commonExtendedNegotiations: [{ sopClassUid: CT, serviceClassUid: STORAGE_SERVICE, relatedGeneralSopClassUids: ['1.2', '1.2.3'] }] },
        B.sopClassCommonExtendedNegotiation(CT, STORAGE_SERVICE, ['1.2', '1.2.3']),
      ],
      [
        'User Identity RQ (58H), username only',
        { userIdentityRq: { identityType: 1, positiveResponseRequested: false, primaryField: Buffer.from('bob'), secondaryField: Buffer.alloc(0) } },
        B.userIdentityRq(1, 0, Buffer.from('bob'), Buffer.alloc(0)),
      ],
      ['User Identity AC (59H)', { userIdentityAc: { serverResponse: Buffer.from([0xde, 0xad]) } }, B.userIdentityAc(Buffer.from([0xde, 0xad]))],
      ['an unknown sub-item, kept', { unknownItems: [{ itemType: 0x60, data: Buffer.from([1, 2, 3]) }] }, B.item(0x60, [Buffer.from([1, 2, 3])])],
    ];
    for (const [name, value, bytes] of subItems) {
      it(`sub-item ${name}: encodes to the hand-built bytes and decodes back`, () => {
        const pdu = rq({ presentationContexts: [{ id: 1, abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LE] }], userInformation: ui(value) });
        const expected = rqBytesWith(bytes);
        expect(encodePdu(pdu).toString('hex')).to.equal(expected.toString('hex'));
        expect(decodePdu(expected)).to.deep.equal(pdu);
      });
    }
  });

  describe('decoding A-ASSOCIATE-RQ negotiation sub-items (PS3.7 Annex D.3.3)', () => {
    it('reads the User Identity storescu sends (username and passcode, positive response requested)', () => {
      const subItem = Buffer.from(B.STORESCU_USER_IDENTITY_CAPTURED_HEX, 'hex');
      expect(subItem.equals(B.userIdentityRq(2, 1, Buffer.from('alice'), Buffer.from('secret')))).to.equal(true);
      const pdu = decodePdu(rqBytesWith(B.maximumLength(16384), subItem)) as AAssociateRq;
      const id = pdu.userInformation.userIdentityRq!;
      expect(id.identityType).to.equal(2);
      expect(id.positiveResponseRequested).to.equal(true);
      expect(id.primaryField.toString()).to.equal('alice');
      expect(id.secondaryField.toString()).to.equal('secret');
    });

    it('reads the Role Selection getscu sends (SCP role only)', () => {
      const subItem = Buffer.from(B.GETSCU_ROLE_SELECTION_CAPTURED_HEX, 'hex');
      const pdu = decodePdu(rqBytesWith(subItem, B.roleSelection(CT, 1, 1))) as AAssociateRq;
      expect(pdu.userInformation.roleSelections).to.deep.equal([
        { sopClassUid: '1.2.840.10008.5.1.4.1.1.9.1.3', scuRole: false, scpRole: true },
        { sopClassUid: CT, scuRole: true, scpRole: true },
      ]);
    });

    it('reads extended negotiation, common extended negotiation and the asynchronous operations window', () => {
      const pdu = decodePdu(
        rqBytesWith(
          B.asyncOpsWindow(16, 1),
          B.sopClassExtendedNegotiation('1.2.840.10008.5.1.4.1.2.1.1', Buffer.from([1, 1, 0])),
          B.sopClassCommonExtendedNegotiation('1.2.840.10008.5.1.4.1.1.88.40', STORAGE_SERVICE, ['1.2.840.10008.5.1.4.1.1.88.22']),
        ),
      ) as AAssociateRq;
      expect(pdu.userInformation.asyncOpsWindow).to.deep.equal({ maxOperationsInvoked: 16, maxOperationsPerformed: 1 });
      expect(pdu.userInformation.extendedNegotiations).to.deep.equal([{ sopClassUid: '1.2.840.10008.5.1.4.1.2.1.1', info: Buffer.from([1, 1, 0]) }]);
      expect(pdu.userInformation.commonExtendedNegotiations).to.deep.equal([
        { sopClassUid: '1.2.840.10008.5.1.4.1.1.88.40', serviceClassUid: STORAGE_SERVICE, relatedGeneralSopClassUids: ['1.2.840.10008.5.1.4.1.1.88.22'] },
      ]);
    });

    it('skips variable items and presentation-context sub-items of unknown types (PS3.8 §9.3.1)', () => {
      const bytes = B.associate(0x01, 'PACSNODE', 'MODALITY', [
        B.item(0x05, [Buffer.from('before')]),
        B.applicationContext(DICOM_APPLICATION_CONTEXT),
        B.item(0x11, [Buffer.alloc(300, 0xaa)]),
        B.item(0x20, [B.u8(1), B.u8(0), B.u8(0), B.u8(0), B.item(0x35, [Buffer.from('?')]), B.abstractSyntax(CT), B.transferSyntax(EXPLICIT_LE)]),
        B.userInformation(B.maximumLength(4096)),
        B.item(0xff, []),
      ]);
      const pdu = decodePdu(bytes) as AAssociateRq;
      expect(pdu.presentationContexts).to.deep.equal([{ id: 1, abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LE] }]);
      expect(pdu.userInformation.maxPduLength).to.equal(4096);
    });

    it('strips NUL and space padding from UIDs, and writes UIDs unpadded (PS3.8 Annex F)', () => {
      const bytes = B.associate(0x01, 'PACSNODE', 'MODALITY', [
        B.applicationContext(`${DICOM_APPLICATION_CONTEXT}\0`),
        B.presentationContextRq(1, `${CT}\0`, [`${IMPLICIT_LE}\0`, `${EXPLICIT_LE} `]),
        B.userInformation(B.implementationClassUid('1.2.3\0')),
      ]);
      const pdu = decodePdu(bytes) as AAssociateRq;
      expect(pdu.applicationContextName).to.equal(DICOM_APPLICATION_CONTEXT);
      expect(pdu.presentationContexts[0]).to.deep.equal({ id: 1, abstractSyntax: CT, transferSyntaxes: [IMPLICIT_LE, EXPLICIT_LE] });
      expect(pdu.userInformation.implementationClassUid).to.equal('1.2.3');
      expect(encodePdu(pdu).includes(Buffer.from(`${CT}\0`))).to.equal(false);
    });

    it('trims AE titles on both sides, and pads them with spaces when encoding', () => {
      const bytes = B.associate(0x01, B.aeTitle('  CALLED  '), B.aeTitle('CALLING'), [
        B.applicationContext(DICOM_APPLICATION_CONTEXT),
        B.presentationContextRq(1, CT, [IMPLICIT_LE]),
      ]);
      const pdu = decodePdu(bytes) as AAssociateRq;
      expect([pdu.calledAeTitle, pdu.callingAeTitle]).to.deep.equal(['CALLED', 'CALLING']);
      expect(pdu.userInformation).to.deep.equal(emptyUserInformation()); // no User Information Item: read as empty
      expect(encodePdu(pdu).subarray(10, 42).toString('latin1')).to.equal('CALLED          CALLING         ');
    });

    it('keeps a protocol version without bit 0 for the acceptor to reject (PS3.8 §9.3.2: only bit 0 is tested)', () => {
      const bytes = B.associate(0x01, 'A', 'B', [B.applicationContext(DICOM_APPLICATION_CONTEXT), B.presentationContextRq(1, CT, [IMPLICIT_LE])], {
        protocolVersion: 2,
      });
      expect((decodePdu(bytes) as AAssociateRq).protocolVersion).to.equal(2);
    });
  });

  describe('P-DATA-TF (PS3.8 §9.3.5, Annex E)', () => {
    const pdvs: Pdv[] = [
      { presentationContextId: 1, isCommand: true, isLast: true, data: Buffer.from('CMD') },
      { presentationContextId: 3, isCommand: false, isLast: false, data: Buffer.from('DATA') },
      { presentationContextId: 3, isCommand: false, isLast: true, data: Buffer.alloc(0) },
    ];
    const bytes = B.pDataTf(B.pdv(1, 0x03, Buffer.from('CMD')), B.pdv(3, 0x00, Buffer.from('DATA')), B.pdv(3, 0x02, Buffer.alloc(0)));

    it('encodes the message control header bits (0 = command, 1 = last)', () => {
      expect(encodePdu({ type: 'P-DATA-TF', pdvs }).toString('hex')).to.equal(bytes.toString('hex'));
      expect(encodePDataTf(pdvs).toString('hex')).to.equal(bytes.toString('hex'));
      expect(decodePdu(bytes)).to.deep.equal({ type: 'P-DATA-TF', pdvs });
    });

    it('encodePDataTfParts copies no data and concatenates to the same bytes', () => {
      const big = Buffer.alloc(100_000, 7);
      const parts = encodePDataTfParts([{ presentationContextId: 1, isCommand: false, isLast: true, data: big }, ...pdvs]);
      expect(parts[0]!.length).to.equal(12); // PDU header + first PDV header travel together
      expect(parts[1]).to.equal(big); // the same object, not a copy
      expect(Buffer.concat(parts).equals(encodePDataTf([{ presentationContextId: 1, isCommand: false, isLast: true, data: big }, ...pdvs]))).to.equal(true);
      expect(parts.filter((p) => p.length === 0)).to.deep.equal([]);
    });

    it('decoded PDV data are views into the PDU, not copies', () => {
      const decoded = decodePdu(bytes) as { pdvs: Pdv[] };
      expect(decoded.pdvs[1]!.data.buffer).to.equal(bytes.buffer);
    });

    it('refuses to encode what the wire cannot carry', () => {
      expectPduError(() => encodePDataTf([]), 'ERR_PDU_CANNOT_ENCODE');
      expectPduError(() => encodePDataTfParts([{ ...pdvs[0]!, presentationContextId: 2 }]), 'ERR_PDU_CANNOT_ENCODE');
      expectPduError(() => encodePdu(rq({ calledAeTitle: 'SEVENTEEN_CHARS_X' })), 'ERR_PDU_CANNOT_ENCODE');
      expectPduError(() => encodePdu(rq({ callingAeTitle: 'BACK\\SLASH' })), 'ERR_PDU_CANNOT_ENCODE');
      expectPduError(() => encodePdu(rq({ applicationContextName: 'é' })), 'ERR_PDU_CANNOT_ENCODE');
      expectPduError(() => encodePdu(rq({ userInformation: ui({ maxPduLength: -1 }) })), 'ERR_PDU_CANNOT_ENCODE');
      expectPduError(
        () => encodePdu(rq({ userInformation: ui({ extendedNegotiations: [{ sopClassUid: CT, info: Buffer.alloc(70_000) }] }) })),
        'ERR_PDU_CANNOT_ENCODE',
      );
    });
  });

  describe('hostile input: decodePdu throws PduError only, with the A-ABORT reason (PS3.8 §9.3.8)', () => {
    const ctx = (): Buffer => B.presentationContextRq(1, CT, [IMPLICIT_LE]);
    const app = (): Buffer => B.applicationContext(DICOM_APPLICATION_CONTEXT);
    const rqOf = (...items: Buffer[]): Buffer => B.associate(0x01, 'PACSNODE', 'MODALITY', items);
    const MALFORMED = 'ERR_PDU_MALFORMED';
    const INVALID = 'ERR_PDU_INVALID_VALUE';

    const cases: [string, Buffer, string, number][] = [
      ['fewer than 6 bytes', Buffer.from([0x01, 0, 0, 0]), MALFORMED, 6],
      ['an unknown PDU type 08H', B.pdu(0x08, [B.u32(0)]), 'ERR_PDU_UNKNOWN_TYPE', 1],
      ['an unknown PDU type 00H', B.pdu(0x00, []), 'ERR_PDU_UNKNOWN_TYPE', 1],
      ['PDU-length beyond the bytes given', B.pdu(0x05, [B.u32(0)], { length: 5 }), MALFORMED, 6],
      ['PDU-length short of the bytes given', B.pdu(0x05, [B.u32(0)], { length: 3 }), MALFORMED, 6],
      ['an RQ shorter than its fixed fields', B.pdu(0x01, [Buffer.alloc(60)]), MALFORMED, 6],
      ['an RQ with no Application Context Item', rqOf(ctx()), MALFORMED, 6],
      ['two Application Context Items', rqOf(app(), app(), ctx()), MALFORMED, 5],
      ['a presentation context item overrunning the PDU', rqOf(app(), B.item(0x20, [Buffer.alloc(10)], { length: 200 })), MALFORMED, 6],
      ['an item header cut short', rqOf(app(), ctx(), Buffer.from([0x50, 0])), MALFORMED, 6],
      [
        'an abstract syntax overrunning its presentation context',
        rqOf(app(), B.item(0x20, [B.u8(1), B.u8(0), B.u8(0), B.u8(0), B.item(0x30, [B.ascii(CT)], { length: 40 })])),
        MALFORMED,
        6,
      ],
      ['a context without an abstract syntax', rqOf(app(), B.item(0x20, [B.u8(1), B.u8(0), B.u8(0), B.u8(0), B.transferSyntax(IMPLICIT_LE)])), MALFORMED, 6],
      ['a context without a transfer syntax', rqOf(app(), B.item(0x20, [B.u8(1), B.u8(0), B.u8(0), B.u8(0), B.abstractSyntax(CT)])), MALFORMED, 6],
      ['a context with two abstract syntaxes', rqOf(app(), B.item(0x20, [B.u8(1), B.u8(0), B.u8(0), B.u8(0), B.abstractSyntax(CT), B.abstractSyntax(CT), B.transferSyntax(IMPLICIT_LE)])), MALFORMED, 5],
      ['an even presentation context ID', rqOf(app(), B.presentationContextRq(2, CT, [IMPLICIT_LE])), INVALID, 6],
      ['presentation context ID 0', rqOf(app(), B.presentationContextRq(0, CT, [IMPLICIT_LE])), INVALID, 6],
      ['the same context ID twice', rqOf(app(), ctx(), ctx()), INVALID, 6],
      ['an AC presentation context in an RQ', rqOf(app(), ctx(), B.presentationContextAc(3, 0, IMPLICIT_LE)), MALFORMED, 5],
      ['a user-information sub-item overrunning its item', rqBytesWith(B.item(0x52, [B.ascii('1.2.3')], { length: 50 })), MALFORMED, 6],
      ['a Maximum Length Sub-Item of 6 bytes', rqBytesWith(B.item(0x51, [B.u32(16384), B.u16(0)])), MALFORMED, 6],
      ['a Maximum Length Sub-Item of 2 bytes', rqBytesWith(B.item(0x51, [B.u16(1)])), MALFORMED, 6],
      ['two Maximum Length Sub-Items', rqBytesWith(B.maximumLength(1), B.maximumLength(2)), MALFORMED, 5],
      ['two User Identity Sub-Items', rqBytesWith(B.userIdentityRq(1, 0, B.ascii('a'), Buffer.alloc(0)), B.userIdentityRq(1, 0, B.ascii('b'), Buffer.alloc(0))), MALFORMED, 5],
      ['a role selection UID length overrunning', rqBytesWith(B.item(0x54, [B.u16(200), B.ascii(CT), B.u8(0), B.u8(1)])), MALFORMED, 6],
      ['an SCU-role of 2', rqBytesWith(B.roleSelection(CT, 2, 0)), INVALID, 6],
      ['a User-Identity-Type of 0', rqBytesWith(B.userIdentityRq(0, 0, B.ascii('a'), Buffer.alloc(0))), INVALID, 6],
      ['a User-Identity-Type of 6', rqBytesWith(B.userIdentityRq(6, 0, B.ascii('a'), Buffer.alloc(0))), INVALID, 6],
      ['a secondary field overrunning its sub-item', rqBytesWith(B.item(0x58, [B.u8(2), B.u8(0), B.u16(1), B.ascii('a'), B.u16(9), B.ascii('b')])), MALFORMED, 6],
      ['related SOP classes overrunning', rqBytesWith(B.item(0x57, [B.u16(3), B.ascii('1.2'), B.u16(3), B.ascii('1.3'), B.u16(10), B.u16(3), B.ascii('1.4')])), MALFORMED, 6],
      ['an AC accepting a context without transfer syntax', B.associate(0x02, 'A', 'B', [app(), B.item(0x21, [B.u8(1), B.u8(0), B.u8(0), B.u8(0)])]), MALFORMED, 6],
      ['an AC Result/Reason of 5', B.associate(0x02, 'A', 'B', [app(), B.presentationContextAc(1, 5, IMPLICIT_LE)]), INVALID, 6],
      ['an A-ASSOCIATE-RJ of 5 bytes', B.pdu(0x03, [B.u8(0), B.u8(1), B.u8(1), B.u8(1), B.u8(0)]), MALFORMED, 6],
      ['an A-ASSOCIATE-RJ Result of 3', B.associateRj(3, 1, 1), INVALID, 6],
      ['an A-ASSOCIATE-RJ Source of 0', B.associateRj(1, 0, 1), INVALID, 6],
      ['an A-RELEASE-RQ of 6 bytes', B.pdu(0x05, [B.u32(0), B.u16(0)]), MALFORMED, 6],
      ['an A-RELEASE-RP of 0 bytes', B.pdu(0x06, []), MALFORMED, 6],
      ['an A-ABORT from the reserved source 1', B.abort(1, 0), INVALID, 6],
      ['a P-DATA-TF without PDV', B.pdu(0x04, []), MALFORMED, 6],
      ['a PDV of length 0', B.pDataTf(B.pdv(1, 0, Buffer.alloc(0), 0)), MALFORMED, 6],
      ['a PDV of length 1', B.pDataTf(B.cat(B.u32(1), B.u8(1))), MALFORMED, 6],
      ['a PDV overrunning the PDU', B.pDataTf(B.pdv(1, 0, Buffer.from('abc'), 40)), MALFORMED, 6],
      ['a PDV of length 4 GB', B.pDataTf(B.pdv(1, 0, Buffer.from('abc'), 0xffffffff)), MALFORMED, 6],
      ['3 stray bytes after the last PDV', B.pDataTf(B.pdv(1, 3, Buffer.from('abc')), Buffer.from([0, 0, 0])), MALFORMED, 6],
      ['a PDV on an even context ID', B.pDataTf(B.pdv(2, 3, Buffer.from('abc'))), INVALID, 6],
    ];
    for (const [name, bytes, code, reason] of cases) {
      it(`${name} -> ${code}, abort reason ${reason}`, () => {
        expectPduError(() => decodePdu(bytes), code, reason);
      });
    }

    const badAeBytes: [string, number][] = [
      ['NUL', 0x00],
      ['ESC', 0x1b],
      ['backslash', 0x5c],
      ['DEL', 0x7f],
      ['a Latin-1 letter', 0xe9],
    ];
    for (const [name, byte] of badAeBytes) {
      it(`an AE title holding ${name} -> ERR_PDU_INVALID_VALUE, abort reason 6 (PS3.8 §9.3.2: ISO 646 G0)`, () => {
        const title = B.aeTitle('STORE');
        title[5] = byte;
        const e1 = expectPduError(() => decodePdu(B.associate(0x01, title, 'B', [app(), ctx()])), INVALID, 6);
        expect(e1.offset).to.equal(15);
        expectPduError(() => decodePdu(B.associate(0x01, 'A', title, [app(), ctx()])), INVALID, 6);
      });
    }

    it('an AE title of 16 spaces -> ERR_PDU_INVALID_VALUE (PS3.8 §9.3.2: shall not be used)', () => {
      expectPduError(() => decodePdu(B.associate(0x01, '', 'B', [app(), ctx()])), INVALID, 6);
    });

    it('zero presentation contexts -> ERR_PDU_NO_PRESENTATION_CONTEXT, with an A-ASSOCIATE-RJ to answer', () => {
      const e = expectPduError(() => decodePdu(rqOf(app(), B.userInformation(B.maximumLength(0)))), 'ERR_PDU_NO_PRESENTATION_CONTEXT', 6);
      expect(e.rejection).to.deep.equal({ result: 1, source: 1, reason: 1 });
    });

    it('every truncation of every fixture throws PduError (header left as is, or patched to match)', () => {
      for (const { name, bytes } of FIXTURES) {
        for (let n = 0; n < bytes.length; n++) {
          const cut = Buffer.from(bytes.subarray(0, n));
          expectPduError(() => decodePdu(cut), 'ERR_PDU_MALFORMED', 6);
          if (n >= 6) {
            cut.writeUInt32BE(n - 6, 2);
            try {
              decodePdu(cut); // a cut that falls between items can still be a valid PDU
            } catch (e) {
              if (!(e instanceof PduError)) throw new Error(`${name} cut at ${n}: ${String(e)}`);
            }
          }
        }
      }
    });
  });
});

describe('PduFramer (PS3.8 §9.3: whole PDUs out of TCP chunks)', function () {
  const framer = (): PduFramer => new PduFramer({ maxPduLength: 16384 });
  const stream = Buffer.concat(FIXTURES.map((f) => f.bytes));
  const expectSame = (got: Buffer[], want: Buffer[]): void => {
    expect(got.map((b) => b.toString('hex'))).to.deep.equal(want.map((b) => b.toString('hex')));
  };

  it('yields each fixture split in two at every byte offset', () => {
    for (const { name, bytes } of FIXTURES) {
      for (let cut = 0; cut <= bytes.length; cut++) {
        const f = framer();
        const got = [...f.push(bytes.subarray(0, cut)), ...f.push(bytes.subarray(cut))];
        expect(got.length, `${name} cut at ${cut}`).to.equal(1);
        expect(got[0]!.equals(bytes), `${name} cut at ${cut}`).to.equal(true);
        expect(f.bufferedBytes).to.equal(0);
      }
    }
  });

  it('yields all fixtures of one stream split in two at every byte offset', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const f = framer();
      expectSame([...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))], FIXTURES.map((x) => x.bytes));
    }
  });

  it('yields the same PDUs split in three at every pair of offsets (short PDUs)', () => {
    const short = Buffer.concat([B.releaseRq(), B.pDataTf(B.pdv(1, 3, Buffer.from('xy'))), B.abort(0, 0)]);
    for (let a = 0; a <= short.length; a++) {
      for (let b = a; b <= short.length; b++) {
        const f = framer();
        const got = [...f.push(short.subarray(0, a)), ...f.push(short.subarray(a, b)), ...f.push(short.subarray(b))];
        expect(Buffer.concat(got).equals(short), `cuts at ${a}, ${b}`).to.equal(true);
        expect(got.length).to.equal(3);
      }
    }
  });

  it('yields the same PDUs fed one byte at a time', () => {
    const f = framer();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) got.push(...f.push(stream.subarray(i, i + 1)));
    expectSame(got, FIXTURES.map((x) => x.bytes));
  });

  it('yields several PDUs from one chunk as views of it (no copy)', () => {
    const f = framer();
    const got = f.push(stream);
    expectSame(got, FIXTURES.map((x) => x.bytes));
    for (const pdu of got) expect(pdu.buffer).to.equal(stream.buffer);
    expect(got.map((b) => decodePdu(b).type)).to.deep.equal(FIXTURES.map((x) => decodePdu(x.bytes).type));
  });

  it('ignores empty chunks', () => {
    const f = framer();
    expect(f.push(Buffer.alloc(0))).to.deep.equal([]);
    expect(f.push(B.releaseRq().subarray(0, 3))).to.deep.equal([]);
    expect(f.push(Buffer.alloc(0))).to.deep.equal([]);
    expectSame(f.push(B.releaseRq().subarray(3)), [B.releaseRq()]);
  });

  it('concatenates a large PDU once, not once per chunk', () => {
    const data = Buffer.alloc(8 * 1024 * 1024, 0x5a);
    const big = B.pDataTf(B.pdv(1, 0, data));
    const f = new PduFramer({ maxPduLength: big.length });
    const original = Buffer.concat;
    let concats = 0;
    Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
      concats++;
      return original(list, total);
    }) as typeof Buffer.concat;
    const got: Buffer[] = [];
    try {
      for (let i = 0; i < big.length; i += 65536) got.push(...f.push(big.subarray(i, i + 65536)));
    } finally {
      Buffer.concat = original;
    }
    expect(concats).to.equal(1);
    expect(got.length).to.equal(1);
    expect(got[0]!.equals(big)).to.equal(true);
  });

  describe('caps: checked on the header, before the body is kept', () => {
    const header = (type: number, length: number): Buffer => B.cat(B.u8(type), B.u8(0), B.u32(length));

    it('an A-ASSOCIATE-RQ declaring 4 GB fails at its sixth byte, with nothing buffered', () => {
      const f = framer();
      const h = header(0x01, 0xffffffff);
      for (let i = 0; i < 5; i++) {
        expect(f.push(h.subarray(i, i + 1))).to.deep.equal([]);
        expect(f.bufferedBytes).to.be.at.most(5);
      }
      const e = expectPduError(() => f.push(h.subarray(5)), 'ERR_PDU_TOO_LARGE', 6);
      expect(e.message).to.match(/4294967295/);
      expect(f.bufferedBytes).to.equal(0);
      expect(f.error).to.equal(e);
    });

    it('a P-DATA-TF declaring 4 GB fails in the chunk holding its header, that chunk\'s body not kept', () => {
      const f = framer();
      expectPduError(() => f.push(B.cat(header(0x04, 0xffffffff), Buffer.alloc(65536))), 'ERR_PDU_TOO_LARGE', 6);
      expect(f.bufferedBytes).to.equal(0);
    });

    it('a P-DATA-TF one byte over maxPduLength fails; one at it passes', () => {
      const ok = B.pDataTf(B.pdv(1, 0, Buffer.alloc(16384 - 6)));
      expect(ok.readUInt32BE(2)).to.equal(16384);
      expectSame(framer().push(ok), [ok]);
      expectPduError(() => framer().push(header(0x04, 16385)), 'ERR_PDU_TOO_LARGE', 6);
    });

    it('an A-ASSOCIATE-AC over maxAssociateLength fails; A-RELEASE-RQ/RP, RJ and A-ABORT are capped at 4 by default', () => {
      expectPduError(() => new PduFramer({ maxPduLength: 16384, maxAssociateLength: 1000 }).push(header(0x02, 1001)), 'ERR_PDU_TOO_LARGE', 6);
      for (const type of [0x03, 0x05, 0x06, 0x07]) expectPduError(() => framer().push(header(type, 5)), 'ERR_PDU_TOO_LARGE', 6);
      expect(new PduFramer({ maxPduLength: 1, maxOtherLength: 10 }).push(B.cat(header(0x05, 10), Buffer.alloc(10)))).to.have.length(1);
    });

    it('an unknown PDU type fails at once (abort reason 1, unrecognized-PDU)', () => {
      for (const type of [0x00, 0x08, 0x10, 0xff]) {
        const f = framer();
        expectPduError(() => f.push(header(type, 0)), 'ERR_PDU_UNKNOWN_TYPE', 1);
      }
    });

    it('refuses further input after an error, even valid input', () => {
      const f = framer();
      const e = expectPduError(() => f.push(B.cat(B.releaseRq(), header(0x09, 4))), 'ERR_PDU_UNKNOWN_TYPE', 1);
      expect(() => f.push(B.releaseRq())).to.throw(PduError).that.equals(e);
    });

    it('rejects caps that are not positive integers', () => {
      expect(() => new PduFramer({ maxPduLength: 0 })).to.throw(RangeError);
      expect(() => new PduFramer({ maxPduLength: 16384, maxAssociateLength: 1.5 })).to.throw(RangeError);
    });
  });
});

describe('PDU mutation test (seeded: failures reproduce)', function () {
  this.timeout(120_000);
  const SEED = Number(process.env.PDU_FUZZ_SEED ?? 0x5eed);
  const ITERATIONS = 20_000;

  /** mulberry32: a tiny seeded PRNG, enough to make a random walk repeatable. */
  function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function mutate(src: Buffer, rand: () => number): Buffer {
    const int = (n: number): number => Math.floor(rand() * n);
    let b = Buffer.from(src);
    const count = 1 + int(3);
    for (let m = 0; m < count && b.length > 0; m++) {
      const kind = int(7);
      const at = int(b.length);
      if (kind === 0) b[at]! ^= 1 << int(8); // bit flip
      else if (kind === 1) b = b.subarray(0, int(b.length + 1)); // truncation
      else if (kind === 2 && b.length >= 6) b.writeUInt32BE(rand() < 0.5 ? int(0x100000000) : Math.max(0, b.readUInt32BE(2) + int(17) - 8), 2); // PDU-length
      else if (kind === 3 && at + 2 <= b.length) b.writeUInt16BE(rand() < 0.5 ? int(0x10000) : (b.readUInt16BE(at) + int(9) - 4) & 0xffff, at); // item lengths
      else if (kind === 4 && at + 4 <= b.length) b.writeUInt32BE(rand() < 0.5 ? int(0x100000000) : (b.readUInt32BE(at) + int(9) - 4) >>> 0, at); // PDV lengths
      else if (kind === 5) b[at] = int(256); // random byte
      else b = Buffer.concat([b.subarray(0, at), b.subarray(int(b.length))]); // splice: cut out or repeat a stretch
    }
    return b;
  }

  it(`${ITERATIONS} mutations of valid PDUs: decodePdu and the framer throw only PduError (seed ${SEED})`, () => {
    const rand = prng(SEED);
    const sources = [...FIXTURES.map((f) => f.bytes), ...SAMPLES.map((s) => encodePdu(s))];
    const outcomes = new Map<string, number>();
    const count = (k: string): void => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    const onlyPduError = (i: number, what: string, bytes: Buffer, fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        if (e instanceof PduError) {
          count(e.code);
          return;
        }
        throw new Error(`iteration ${i} (seed ${SEED}), ${what}: ${String(e)}\nbytes: ${bytes.toString('hex')}`);
      }
    };

    for (let i = 0; i < ITERATIONS; i++) {
      const bytes = mutate(sources[Math.floor(rand() * sources.length)]!, rand);
      onlyPduError(i, 'decodePdu', bytes, () => {
        const pdu = decodePdu(bytes);
        count('decoded');
        // Whatever decodes re-encodes (or is refused as such) and decodes to the same value.
        onlyPduError(i, 'encodePdu', bytes, () => expect(decodePdu(encodePdu(pdu))).to.deep.equal(pdu));
      });
      const f = new PduFramer({ maxPduLength: 4096, maxAssociateLength: 8192, maxOtherLength: rand() < 0.5 ? 4 : 64 });
      onlyPduError(i, 'PduFramer', bytes, () => {
        for (let off = 0; off < bytes.length; ) {
          const n = 1 + Math.floor(rand() * 64);
          for (const pdu of f.push(bytes.subarray(off, off + n))) {
            expect(pdu.length).to.equal(6 + pdu.readUInt32BE(2));
            onlyPduError(i, 'decodePdu after the framer', pdu, () => void decodePdu(pdu));
          }
          off += n;
          expect(f.bufferedBytes).to.be.at.most(8192 + 6);
        }
      });
    }
    if (process.env.PDU_FUZZ_VERBOSE) console.log(outcomes);
    // The walk must reach both sides: PDUs that still decode and each kind of refusal.
    expect(outcomes.get('decoded') ?? 0).to.be.greaterThan(ITERATIONS / 50);
    for (const code of ['ERR_PDU_MALFORMED', 'ERR_PDU_INVALID_VALUE', 'ERR_PDU_UNKNOWN_TYPE', 'ERR_PDU_TOO_LARGE']) {
      expect(outcomes.get(code) ?? 0, code).to.be.greaterThan(50);
    }
  });
});
