import { expect } from 'chai';
import { lookupTag } from '../src/dicom/dictionary.js';
import {
  COMMAND_DICTIONARY,
  type CommandFields,
  type CommandKeyword,
  commandKeyword,
  DATASET_PRESENT,
  decodeCommand,
  DIMSE_ERROR_CODES,
  DimseError,
  type DimseErrorCode,
  encodeCommand,
  isDimseError,
  NO_DATASET,
  Priority,
} from '../src/dimse/command.js';
import {
  type AssembledMessage,
  fragment,
  fragmentMessage,
  maxFragmentLength,
  MessageAssembler,
  messageControlHeader,
  parseMessageControlHeader,
  type Pdv,
  PDV_OVERHEAD,
} from '../src/dimse/fragment.js';
import {
  cCancelRq,
  cEchoRsp,
  type CFindRq,
  cFindRsp,
  type CGetRq,
  cGetRsp,
  type CMoveRq,
  cMoveRsp,
  type CStoreRq,
  cStoreRsp,
  decodeMessage,
  type DimseMessage,
  encodeMessage,
  fromCommandSet,
  isRequestCommandField,
  MESSAGE_TYPE_BY_NAME,
  MESSAGE_TYPES,
  messageHasDataset,
  type MessageTypeName,
  type NActionRq,
  type NGetRq,
  nRsp,
  toCommandSet,
} from '../src/dimse/messages.js';
import {
  describeStatus,
  formatStatus,
  isStandardStatusClass,
  Status,
  STATUS_CLASSES,
  statusCategory,
} from '../src/dimse/status.js';

// ---------------------------------------------------------------------------------------------------------------
// Fixtures built from the standard's layout (PS3.5 §7.1.3 implicit VR little endian: tag group, tag element,
// 4-byte length, value; PS3.7 §6.3.1: group 0000, Command Group Length first).

function element(tag: number, value: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16LE(tag >>> 16, 0);
  header.writeUInt16LE(tag & 0xffff, 2);
  header.writeUInt32LE(value.length, 4);
  return Buffer.concat([header, value]);
}
const us = (n: number): Buffer => Buffer.from([n & 0xff, n >> 8]);
const ul = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
};
/** UI values are padded to even length with NUL, text values with a space (PS3.5 §6.2). */
const ui = (s: string): Buffer => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
const text = (s: string): Buffer => Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');
const at = (...tags: number[]): Buffer => Buffer.concat(tags.map((t) => Buffer.concat([us(t >>> 16), us(t & 0xffff)])));

/** A command set with its group length computed by hand. */
function commandBytes(...elements: Buffer[]): Buffer {
  const body = Buffer.concat(elements);
  return Buffer.concat([element(0x00000000, ul(body.length)), body]);
}

/**
 * Command sets sent by DCMTK 3.6.7 (Debian's dcmtk package) on loopback, captured by a logging TCP proxy between
 * echoscu/storescu and storescp, taken from the P-DATA-TF PDVs whose Message Control Header has the command bit.
 */
const DCMTK = {
  echoRq:
    '0000000004000000380000000000020012000000312e322e3834302e31303030382e312e310000000001020000003000000010010200' +
    '0000010000000008020000000101',
  echoRsp:
    '0000000004000000420000000000020012000000312e322e3834302e31303030382e312e310000000001020000003080000020010200' +
    '000001000000000802000000010100000009020000000000',
  storeRq:
    '000000000400000072000000000002001a000000312e322e3834302e31303030382e352e312e342e312e312e370000000001020000' +
    '0001000000100102000000010000000007020000000000000000080200000001000000001020000000312e322e3832362e302e312e33' +
    '3638303034332e31302e313436372e312e3100',
  storeRsp:
    '000000000400000072000000000002001a000000312e322e3834302e31303030382e352e312e342e312e312e370000000001020000' +
    '0001800000200102000000010000000008020000000101000000090200000000000000001020000000312e322e3832362e302e312e33' +
    '3638303034332e31302e313436372e312e3100',
};

const VERIFICATION = '1.2.840.10008.1.1';
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
const STUDY_ROOT_MOVE = '1.2.840.10008.5.1.4.1.2.2.2';
const STUDY_ROOT_GET = '1.2.840.10008.5.1.4.1.2.2.3';

function expectDimseError(fn: () => unknown, code: DimseErrorCode, field?: string): DimseError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a DimseError').to.be.instanceOf(DimseError);
  const error = caught as DimseError;
  expect(error.code, error.message).to.equal(code);
  if (field !== undefined) expect(error.field).to.equal(field);
  return error;
}

/** Deterministic PRNG (mulberry32) for the fuzz loops. */
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

// One sample of every message type, with every field its table lists (or most of them).
const SAMPLES: { [K in MessageTypeName]: Extract<DimseMessage, { type: K }> } = {
  'C-STORE-RQ': {
    type: 'C-STORE-RQ',
    MessageID: 7,
    AffectedSOPClassUID: SECONDARY_CAPTURE,
    AffectedSOPInstanceUID: '1.2.826.0.1.3680043.10.1467.1.1',
    Priority: Priority.High,
    MoveOriginatorApplicationEntityTitle: 'MOVESCU',
    MoveOriginatorMessageID: 3,
  },
  'C-STORE-RSP': {
    type: 'C-STORE-RSP',
    MessageIDBeingRespondedTo: 7,
    AffectedSOPClassUID: SECONDARY_CAPTURE,
    AffectedSOPInstanceUID: '1.2.3.4',
    Status: Status.CoercionOfDataElements,
    OffendingElement: [0x00100010, 0x00100020],
    ErrorComment: 'coerced',
    ErrorID: 12,
  },
  'C-FIND-RQ': { type: 'C-FIND-RQ', MessageID: 1, AffectedSOPClassUID: STUDY_ROOT_FIND, Priority: Priority.Low },
  'C-FIND-RSP': {
    type: 'C-FIND-RSP',
    MessageIDBeingRespondedTo: 1,
    AffectedSOPClassUID: STUDY_ROOT_FIND,
    Status: Status.Pending,
    hasDataset: true,
  },
  'C-GET-RQ': { type: 'C-GET-RQ', MessageID: 2, AffectedSOPClassUID: STUDY_ROOT_GET, Priority: Priority.Medium },
  'C-GET-RSP': {
    type: 'C-GET-RSP',
    MessageIDBeingRespondedTo: 2,
    AffectedSOPClassUID: STUDY_ROOT_GET,
    Status: Status.Pending,
    NumberOfRemainingSuboperations: 10,
    NumberOfCompletedSuboperations: 5,
    NumberOfFailedSuboperations: 1,
    NumberOfWarningSuboperations: 0,
    hasDataset: false,
  },
  'C-MOVE-RQ': {
    type: 'C-MOVE-RQ',
    MessageID: 3,
    AffectedSOPClassUID: STUDY_ROOT_MOVE,
    Priority: Priority.Medium,
    MoveDestination: 'STORESCP',
  },
  'C-MOVE-RSP': {
    type: 'C-MOVE-RSP',
    MessageIDBeingRespondedTo: 3,
    AffectedSOPClassUID: STUDY_ROOT_MOVE,
    Status: Status.SubOperationsCompleteWithFailures,
    NumberOfCompletedSuboperations: 4,
    NumberOfFailedSuboperations: 2,
    NumberOfWarningSuboperations: 1,
    hasDataset: true,
  },
  'C-ECHO-RQ': { type: 'C-ECHO-RQ', MessageID: 1, AffectedSOPClassUID: VERIFICATION },
  'C-ECHO-RSP': { type: 'C-ECHO-RSP', MessageIDBeingRespondedTo: 1, AffectedSOPClassUID: VERIFICATION, Status: 0 },
  'C-CANCEL-RQ': { type: 'C-CANCEL-RQ', MessageIDBeingRespondedTo: 1 },
  'N-EVENT-REPORT-RQ': {
    type: 'N-EVENT-REPORT-RQ',
    MessageID: 9,
    AffectedSOPClassUID: '1.2.840.10008.1.20.1',
    AffectedSOPInstanceUID: '1.2.840.10008.1.20.1.1',
    EventTypeID: 1,
    hasDataset: true,
  },
  'N-EVENT-REPORT-RSP': {
    type: 'N-EVENT-REPORT-RSP',
    MessageIDBeingRespondedTo: 9,
    AffectedSOPClassUID: '1.2.840.10008.1.20.1',
    AffectedSOPInstanceUID: '1.2.840.10008.1.20.1.1',
    Status: 0,
    EventTypeID: 1,
    hasDataset: false,
  },
  'N-GET-RQ': {
    type: 'N-GET-RQ',
    MessageID: 10,
    RequestedSOPClassUID: '1.2.840.10008.5.1.1.16',
    RequestedSOPInstanceUID: '1.2.840.10008.5.1.1.17',
    AttributeIdentifierList: [0x21100010, 0x21100020],
  },
  'N-GET-RSP': {
    type: 'N-GET-RSP',
    MessageIDBeingRespondedTo: 10,
    AffectedSOPClassUID: '1.2.840.10008.5.1.1.16',
    AffectedSOPInstanceUID: '1.2.840.10008.5.1.1.17',
    Status: Status.AttributeListError,
    AttributeIdentifierList: [0x21100099],
    hasDataset: true,
  },
  'N-SET-RQ': {
    type: 'N-SET-RQ',
    MessageID: 11,
    RequestedSOPClassUID: '1.2.840.10008.3.1.2.3.3',
    RequestedSOPInstanceUID: '1.2.3.4.5',
  },
  'N-SET-RSP': { type: 'N-SET-RSP', MessageIDBeingRespondedTo: 11, Status: 0, hasDataset: false },
  'N-ACTION-RQ': {
    type: 'N-ACTION-RQ',
    MessageID: 12,
    RequestedSOPClassUID: '1.2.840.10008.1.20.1',
    RequestedSOPInstanceUID: '1.2.840.10008.1.20.1.1',
    ActionTypeID: 1,
    hasDataset: true,
  },
  'N-ACTION-RSP': {
    type: 'N-ACTION-RSP',
    MessageIDBeingRespondedTo: 12,
    AffectedSOPClassUID: '1.2.840.10008.1.20.1',
    Status: Status.NoSuchActionType,
    ActionTypeID: 1,
    ErrorComment: 'no such action',
    hasDataset: false,
  },
  'N-CREATE-RQ': {
    type: 'N-CREATE-RQ',
    MessageID: 13,
    AffectedSOPClassUID: '1.2.840.10008.3.1.2.3.3',
    AffectedSOPInstanceUID: '1.2.3.4.6',
    hasDataset: true,
  },
  'N-CREATE-RSP': {
    type: 'N-CREATE-RSP',
    MessageIDBeingRespondedTo: 13,
    AffectedSOPClassUID: '1.2.840.10008.3.1.2.3.3',
    AffectedSOPInstanceUID: '1.2.3.4.6',
    Status: 0,
    hasDataset: false,
  },
  'N-DELETE-RQ': {
    type: 'N-DELETE-RQ',
    MessageID: 14,
    RequestedSOPClassUID: '1.2.840.10008.5.1.1.2',
    RequestedSOPInstanceUID: '1.2.3.4.7',
  },
  'N-DELETE-RSP': { type: 'N-DELETE-RSP', MessageIDBeingRespondedTo: 14, Status: Status.NoSuchSOPInstance },
};

// ---------------------------------------------------------------------------------------------------------------

describe('DIMSE command sets (PS3.7 §6.3.1, Annex E)', () => {
  it('lists exactly the non-retired group 0000 elements of the PS3.6 dictionary, with the same keywords and VRs', () => {
    const fromDictionary = new Map<string, string>();
    for (let element = 0; element <= 0xffff; element++) {
      const entry = lookupTag(element);
      if (entry && !entry.retired && entry.keyword !== 'GenericGroupLength') fromDictionary.set(entry.keyword, `${entry.tag}|${entry.vr}|${entry.vm}`);
    }
    const ours = new Map(Object.entries(COMMAND_DICTIONARY).map(([k, v]) => [k, `${v.tag}|${v.vr}|${v.vm}`]));
    expect(Object.fromEntries(ours)).to.deep.equal(Object.fromEntries(fromDictionary));
    expect(commandKeyword(0x00000800)).to.equal('CommandDataSetType');
    expect(commandKeyword(0x00000001)).to.equal(undefined);
  });

  it('encodes a C-ECHO-RQ byte for byte as the standard lays it out (echoscu: Message ID 1, 0101H)', () => {
    const expected = commandBytes(
      element(0x00000002, ui(VERIFICATION)),
      element(0x00000100, us(0x0030)),
      element(0x00000110, us(1)),
      element(0x00000800, us(0x0101)),
    );
    const encoded = encodeCommand({ CommandField: 0x0030, MessageID: 1, AffectedSOPClassUID: VERIFICATION, CommandDataSetType: NO_DATASET });
    expect(encoded.toString('hex')).to.equal(expected.toString('hex'));
    expect(encoded.length).to.equal(12 + 0x38);
    expect(encoded.readUInt32LE(8)).to.equal(0x38);
  });

  it('encodes the C-ECHO and C-STORE messages exactly as DCMTK does', () => {
    const echoRq = SAMPLES['C-ECHO-RQ'];
    expect(encodeMessage(echoRq).toString('hex')).to.equal(DCMTK.echoRq);
    expect(encodeMessage(cEchoRsp(echoRq)).toString('hex')).to.equal(DCMTK.echoRsp);
    const storeRq: CStoreRq = {
      type: 'C-STORE-RQ',
      MessageID: 1,
      AffectedSOPClassUID: SECONDARY_CAPTURE,
      AffectedSOPInstanceUID: '1.2.826.0.1.3680043.10.1467.1.1',
      Priority: Priority.Medium,
    };
    expect(encodeMessage(storeRq).toString('hex')).to.equal(DCMTK.storeRq);
    expect(encodeMessage(cStoreRsp(storeRq, Status.Success)).toString('hex')).to.equal(DCMTK.storeRsp);
  });

  it('decodes what DCMTK sends into typed messages', () => {
    expect(decodeMessage(Buffer.from(DCMTK.echoRq, 'hex'))).to.deep.equal({ type: 'C-ECHO-RQ', MessageID: 1, AffectedSOPClassUID: VERIFICATION });
    expect(decodeMessage(Buffer.from(DCMTK.echoRsp, 'hex'))).to.deep.equal({
      type: 'C-ECHO-RSP',
      MessageIDBeingRespondedTo: 1,
      AffectedSOPClassUID: VERIFICATION,
      Status: 0,
    });
    const storeRq = decodeCommand(Buffer.from(DCMTK.storeRq, 'hex'));
    expect(storeRq).to.deep.equal({
      CommandGroupLength: 0x72,
      AffectedSOPClassUID: SECONDARY_CAPTURE,
      CommandField: 0x0001,
      MessageID: 1,
      Priority: 0,
      CommandDataSetType: DATASET_PRESENT,
      AffectedSOPInstanceUID: '1.2.826.0.1.3680043.10.1467.1.1',
    });
    expect(decodeMessage(Buffer.from(DCMTK.storeRsp, 'hex'))).to.deep.equal({
      type: 'C-STORE-RSP',
      MessageIDBeingRespondedTo: 1,
      AffectedSOPClassUID: SECONDARY_CAPTURE,
      AffectedSOPInstanceUID: '1.2.826.0.1.3680043.10.1467.1.1',
      Status: 0,
    });
  });

  it('re-encodes a decoded command set to the same bytes', () => {
    for (const hex of Object.values(DCMTK)) expect(encodeCommand(decodeCommand(Buffer.from(hex, 'hex'))).toString('hex')).to.equal(hex);
  });

  it('encodes a C-FIND-RQ with its priority and a data set announced (any value but 0101H; 0001H sent)', () => {
    const expected = commandBytes(
      element(0x00000002, ui(STUDY_ROOT_FIND)),
      element(0x00000100, us(0x0020)),
      element(0x00000110, us(1)),
      element(0x00000700, us(0x0002)),
      element(0x00000800, us(0x0001)),
    );
    expect(encodeMessage(SAMPLES['C-FIND-RQ']).toString('hex')).to.equal(expected.toString('hex'));
  });

  it('encodes every VR of the dictionary as the standard lays it out, elements in tag order', () => {
    const fields: CommandFields = {
      MoveOriginatorMessageID: 0xffff,
      MoveDestination: 'DEST',
      MoveOriginatorApplicationEntityTitle: 'ODD',
      OffendingElement: [0x00100010, 0x7fe00010],
      ErrorComment: 'bad',
      CommandField: 0x0021,
      AffectedSOPClassUID: '1.2',
    };
    const expected = commandBytes(
      element(0x00000002, ui('1.2')),
      element(0x00000100, us(0x0021)),
      element(0x00000600, text('DEST')),
      element(0x00000901, at(0x00100010, 0x7fe00010)),
      element(0x00000902, text('bad')),
      element(0x00001030, text('ODD')),
      element(0x00001031, us(0xffff)),
    );
    expect(encodeCommand(fields).toString('hex')).to.equal(expected.toString('hex'));
  });

  it('leaves out fields whose value is undefined', () => {
    expect(encodeCommand({ CommandField: 0x0030, MessageID: undefined }).equals(encodeCommand({ CommandField: 0x0030 }))).to.equal(true);
  });

  it('computes Command Group Length itself and ignores a given one', () => {
    const a = encodeCommand({ CommandField: 0x0030, MessageID: 5, CommandGroupLength: 999 });
    const b = encodeCommand({ CommandField: 0x0030, MessageID: 5 });
    expect(a.equals(b)).to.equal(true);
    expect(a.readUInt32LE(8)).to.equal(a.length - 12);
  });

  it('round-trips every command field', () => {
    const fields: CommandFields = {
      AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
      RequestedSOPClassUID: '1.2.3',
      CommandField: 0x8021,
      MessageID: 65535,
      MessageIDBeingRespondedTo: 0,
      MoveDestination: 'A',
      Priority: 2,
      CommandDataSetType: 0xfefe,
      Status: 0xff00,
      OffendingElement: [0xfffee000],
      ErrorComment: 'Some comment here',
      ErrorID: 3,
      AffectedSOPInstanceUID: '1.2.3.4.5.6',
      RequestedSOPInstanceUID: '9.8',
      EventTypeID: 4,
      AttributeIdentifierList: [0x00080016, 0x00080018, 0x00100010],
      ActionTypeID: 5,
      NumberOfRemainingSuboperations: 1,
      NumberOfCompletedSuboperations: 2,
      NumberOfFailedSuboperations: 3,
      NumberOfWarningSuboperations: 4,
      MoveOriginatorApplicationEntityTitle: 'SIXTEEN_CHARS_AE',
      MoveOriginatorMessageID: 6,
    };
    const bytes = encodeCommand(fields);
    expect(decodeCommand(bytes)).to.deep.equal({ ...fields, CommandGroupLength: bytes.length - 12 });
  });

  it('refuses values the VR cannot carry, with a DimseError naming the field', () => {
    expectDimseError(() => encodeCommand({ MessageID: 0x10000 }), 'ERR_DIMSE_INVALID_FIELD', 'MessageID');
    expectDimseError(() => encodeCommand({ Status: -1 }), 'ERR_DIMSE_INVALID_FIELD', 'Status');
    expectDimseError(() => encodeCommand({ Priority: 1.5 }), 'ERR_DIMSE_INVALID_FIELD', 'Priority');
    expectDimseError(() => encodeCommand({ OffendingElement: [0x100000000] }), 'ERR_DIMSE_INVALID_FIELD', 'OffendingElement');
    expectDimseError(() => encodeCommand({ MoveDestination: 'SEVENTEEN_CHARS_A' }), 'ERR_DIMSE_INVALID_FIELD', 'MoveDestination');
    expectDimseError(() => encodeCommand({ AffectedSOPClassUID: '1.2\\3' }), 'ERR_DIMSE_INVALID_FIELD', 'AffectedSOPClassUID');
    expectDimseError(() => encodeCommand({ AffectedSOPInstanceUID: '1.2.é' }), 'ERR_DIMSE_INVALID_FIELD', 'AffectedSOPInstanceUID');
    expectDimseError(() => encodeCommand({ MessageID: '1' as unknown as number }), 'ERR_DIMSE_INVALID_FIELD', 'MessageID');
    expectDimseError(() => encodeCommand({ AffectedSOPClassUID: 12 as unknown as string }), 'ERR_DIMSE_INVALID_FIELD');
    expectDimseError(() => encodeCommand({ AttributeIdentifierList: 5 as unknown as number[] }), 'ERR_DIMSE_INVALID_FIELD');
  });

  it('cuts a long Error Comment to 64 characters of the default repertoire instead of failing the response', () => {
    const bytes = encodeCommand({ ErrorComment: `é${'x'.repeat(100)}\\` });
    expect(decodeCommand(bytes).ErrorComment).to.equal(`?${'x'.repeat(63)}`);
  });

  it('accepts elements out of order, keeps unknown group 0000 elements apart, reads empty values as absent', () => {
    const bytes = commandBytes(
      element(0x00000110, us(3)),
      element(0x00000001, ul(1234)), // retired Command Length To End (PS3.7 Annex D)
      element(0x00000100, us(0x0030)),
      element(0x00000002, Buffer.alloc(0)),
      element(0x00000800, us(0x0101)),
    );
    const cs = decodeCommand(bytes);
    expect(cs.MessageID).to.equal(3);
    expect(cs.CommandField).to.equal(0x0030);
    expect(cs.AffectedSOPClassUID).to.equal(undefined);
    expect(cs.unrecognized).to.deep.equal([{ tag: 0x00000001, value: ul(1234) }]);
    expectDimseError(() => fromCommandSet(cs), 'ERR_DIMSE_MISSING_FIELD', 'AffectedSOPClassUID');
  });

  it('trims the padding of received text (UI NUL, AE spaces on both sides)', () => {
    const bytes = commandBytes(
      element(0x00000002, Buffer.from('1.2.3\0', 'latin1')),
      element(0x00000600, Buffer.from('  DEST  ', 'latin1')),
      element(0x00000902, Buffer.from('comment ', 'latin1')),
    );
    expect(decodeCommand(bytes)).to.include({ AffectedSOPClassUID: '1.2.3', MoveDestination: 'DEST', ErrorComment: 'comment' });
  });

  describe('malformed command sets throw ERR_DIMSE_MALFORMED, never a RangeError', () => {
    const valid = Buffer.from(DCMTK.storeRq, 'hex');
    const withLength = (b: Buffer, n: number): Buffer => {
      const c = Buffer.from(b);
      c.writeUInt32LE(n, 8);
      return c;
    };
    const cases: Record<string, Buffer> = {
      'empty bytes': Buffer.alloc(0),
      'shorter than the group length element': valid.subarray(0, 11),
      'a first element other than Command Group Length': commandBytes(element(0x00000100, us(1))).subarray(12),
      'a Command Group Length that is not 4 bytes long': Buffer.concat([element(0x00000000, us(8)), element(0x00000100, us(1))]),
      'a group length larger than the bytes (truncated)': withLength(valid, valid.length - 12 + 2),
      'a group length smaller than the bytes (trailing data)': withLength(valid, valid.length - 12 - 2),
      'a truncated element header': commandBytes(element(0x00000100, us(1)), Buffer.from([0, 0, 0x10, 0x01])),
      'an element overrunning the command set': commandBytes(element(0x00000100, us(1)), Buffer.from('0000100104000000', 'hex')),
      'a huge element length': commandBytes(Buffer.from('00000001feffffff', 'hex')),
      'an undefined length': commandBytes(Buffer.from('00000001ffffffff', 'hex')),
      'a data element (group 0008)': commandBytes(element(0x00000100, us(1)), element(0x00080016, ui('1.2'))),
      'a group 0002 element': commandBytes(element(0x00020010, ui('1.2.840.10008.1.2'))),
      'a duplicated element': commandBytes(element(0x00000100, us(1)), element(0x00000100, us(1))),
      'a second Command Group Length': commandBytes(element(0x00000000, ul(0))),
      'a US of 4 bytes': commandBytes(element(0x00000110, ul(1))),
      'a US of 1 byte': commandBytes(element(0x00000110, Buffer.from([1]))),
      'an AT of 6 bytes': commandBytes(element(0x00000901, Buffer.alloc(6))),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      it(name, () => {
        expectDimseError(() => decodeCommand(bytes), 'ERR_DIMSE_MALFORMED');
      });
    }

    it('every truncation of a valid command set', () => {
      for (let n = 0; n < valid.length; n++) expectDimseError(() => decodeCommand(valid.subarray(0, n)), 'ERR_DIMSE_MALFORMED');
    });

    it('random corruptions either decode or throw a DimseError', () => {
      const random = prng(7);
      let rejected = 0;
      for (let i = 0; i < 3000; i++) {
        const bytes = Buffer.from(valid);
        const flips = 1 + Math.floor(random() * 4);
        for (let f = 0; f < flips; f++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
        try {
          decodeMessage(bytes);
        } catch (e) {
          expect(e, String(e)).to.be.instanceOf(DimseError);
          rejected++;
        }
      }
      expect(rejected).to.be.greaterThan(600);
    });
  });
});

describe('DIMSE messages (PS3.7 §9.3, §10.3)', () => {
  it('keys MESSAGE_TYPES by Command Field, pairs each request with its response, and uses only Annex E fields', () => {
    expect(Object.keys(MESSAGE_TYPES)).to.have.length(23);
    for (const [key, info] of Object.entries(MESSAGE_TYPES)) {
      expect(Number(key)).to.equal(info.commandField);
      expect(MESSAGE_TYPE_BY_NAME[info.type]).to.equal(info);
      expect(info.type.endsWith('-RQ')).to.equal(isRequestCommandField(info.commandField));
      if (info.type.endsWith('-RQ') && info.type !== 'C-CANCEL-RQ') {
        expect(MESSAGE_TYPES[info.commandField | 0x8000]!.type).to.equal(info.type.replace(/-RQ$/, '-RSP'));
      }
      for (const keyword of Object.keys(info.fields)) expect(COMMAND_DICTIONARY).to.have.property(keyword);
      expect(info.fields).to.not.have.any.keys('CommandGroupLength', 'CommandField', 'CommandDataSetType');
      expect(info.fields[info.type.endsWith('-RQ') && info.type !== 'C-CANCEL-RQ' ? 'MessageID' : 'MessageIDBeingRespondedTo']).to.equal('M');
    }
    expect(MESSAGE_TYPES[0x0fff]!.type).to.equal('C-CANCEL-RQ');
    expect(Object.keys(SAMPLES).sort()).to.deep.equal(Object.values(MESSAGE_TYPES).map((i) => i.type).sort());
  });

  for (const [name, sample] of Object.entries(SAMPLES) as [MessageTypeName, DimseMessage][]) {
    it(`round-trips a ${name}`, () => {
      const bytes = encodeMessage(sample);
      const cs = decodeCommand(bytes);
      expect(cs.CommandField).to.equal(MESSAGE_TYPE_BY_NAME[name].commandField);
      expect(cs.CommandDataSetType).to.equal(messageHasDataset(sample) ? DATASET_PRESENT : NO_DATASET);
      expect(decodeMessage(bytes)).to.deep.equal(sample);
    });

    it(`refuses a ${name} without any of its mandatory fields`, () => {
      const mandatory = Object.entries(MESSAGE_TYPE_BY_NAME[name].fields)
        .filter(([, usage]) => usage === 'M')
        .map(([keyword]) => keyword as CommandKeyword);
      expect(mandatory.length).to.be.greaterThan(0);
      for (const keyword of mandatory) {
        const broken = { ...sample } as Record<string, unknown>;
        delete broken[keyword];
        expectDimseError(() => toCommandSet(broken as unknown as DimseMessage), 'ERR_DIMSE_MISSING_FIELD', keyword);
        const cs = toCommandSet(sample);
        delete cs[keyword];
        expectDimseError(() => decodeMessage(encodeCommand(cs)), 'ERR_DIMSE_MISSING_FIELD', keyword);
      }
    });
  }

  it('refuses command sets without Command Field or Command Data Set Type, or with an unknown Command Field', () => {
    expectDimseError(() => fromCommandSet({ MessageID: 1 }), 'ERR_DIMSE_MISSING_FIELD', 'CommandField');
    expectDimseError(() => fromCommandSet({ CommandField: 0x0030, MessageID: 1, AffectedSOPClassUID: VERIFICATION }), 'ERR_DIMSE_MISSING_FIELD', 'CommandDataSetType');
    expectDimseError(() => fromCommandSet({ CommandField: 0x0031, CommandDataSetType: NO_DATASET }), 'ERR_DIMSE_UNKNOWN_COMMAND', 'CommandField');
    expectDimseError(() => toCommandSet({ type: 'C-PING-RQ' } as unknown as DimseMessage), 'ERR_DIMSE_UNKNOWN_COMMAND');
  });

  it('refuses a Command Data Set Type that contradicts the message type', () => {
    const echo = { ...toCommandSet(SAMPLES['C-ECHO-RQ']), CommandDataSetType: DATASET_PRESENT };
    expectDimseError(() => fromCommandSet(echo), 'ERR_DIMSE_INVALID_FIELD', 'CommandDataSetType');
    const store = { ...toCommandSet(SAMPLES['C-STORE-RQ']), CommandDataSetType: NO_DATASET };
    expectDimseError(() => fromCommandSet(store), 'ERR_DIMSE_INVALID_FIELD', 'CommandDataSetType');
    // Any value but 0101H announces a data set (PS3.7 Table E.1-1).
    expect(fromCommandSet({ ...store, CommandDataSetType: 0xfefe }).type).to.equal('C-STORE-RQ');
    const rsp = fromCommandSet({ ...toCommandSet(SAMPLES['C-FIND-RSP']), CommandDataSetType: 0x0000 });
    expect(rsp).to.include({ type: 'C-FIND-RSP', hasDataset: true });
  });

  it('ignores fields the message type does not list (a retired Message ID in a response)', () => {
    const cs = { ...toCommandSet(SAMPLES['C-ECHO-RSP']), MessageID: 99, Priority: 1 };
    expect(fromCommandSet(cs)).to.deep.equal(SAMPLES['C-ECHO-RSP']);
    const extra = { ...SAMPLES['C-ECHO-RQ'], MoveDestination: 'X' } as DimseMessage;
    expect(toCommandSet(extra)).to.not.have.property('MoveDestination');
  });

  describe('response builders', () => {
    const store = SAMPLES['C-STORE-RQ'];
    const find: CFindRq = SAMPLES['C-FIND-RQ'];
    const move: CMoveRq = SAMPLES['C-MOVE-RQ'];
    const get: CGetRq = SAMPLES['C-GET-RQ'];

    it('C-STORE-RSP copies Message ID and the Affected SOP Class and Instance UIDs', () => {
      expect(cStoreRsp(store, Status.OutOfResources, { ErrorComment: 'disk full' })).to.deep.equal({
        type: 'C-STORE-RSP',
        MessageIDBeingRespondedTo: 7,
        AffectedSOPClassUID: SECONDARY_CAPTURE,
        AffectedSOPInstanceUID: '1.2.826.0.1.3680043.10.1467.1.1',
        Status: 0xa700,
        ErrorComment: 'disk full',
      });
    });

    it('C-FIND-RSP has an identifier when pending only, unless told', () => {
      expect(cFindRsp(find, Status.Pending).hasDataset).to.equal(true);
      expect(cFindRsp(find, Status.PendingWarning).hasDataset).to.equal(true);
      expect(cFindRsp(find, Status.Success).hasDataset).to.equal(false);
      expect(cFindRsp(find, Status.Cancel).hasDataset).to.equal(false);
      expect(cFindRsp(find, Status.UnableToProcess, { hasDataset: true, OffendingElement: [0x00080052] })).to.deep.equal({
        type: 'C-FIND-RSP',
        MessageIDBeingRespondedTo: 1,
        AffectedSOPClassUID: STUDY_ROOT_FIND,
        Status: 0xc000,
        hasDataset: true,
        OffendingElement: [0x00080052],
      });
    });

    it('C-MOVE-RSP and C-GET-RSP carry Remaining only while pending or canceled', () => {
      const counts = { remaining: 3, completed: 5, failed: 1, warning: 0 };
      expect(cMoveRsp(move, Status.Pending, counts)).to.deep.equal({
        type: 'C-MOVE-RSP',
        MessageIDBeingRespondedTo: 3,
        AffectedSOPClassUID: STUDY_ROOT_MOVE,
        Status: 0xff00,
        NumberOfRemainingSuboperations: 3,
        NumberOfCompletedSuboperations: 5,
        NumberOfFailedSuboperations: 1,
        NumberOfWarningSuboperations: 0,
        hasDataset: false,
      });
      expect(cMoveRsp(move, Status.Cancel, counts)).to.have.property('NumberOfRemainingSuboperations', 3);
      const final = cMoveRsp(move, Status.SubOperationsCompleteWithFailures, counts, { hasDataset: true });
      expect(final).to.not.have.property('NumberOfRemainingSuboperations');
      expect(final).to.include({ NumberOfCompletedSuboperations: 5, NumberOfFailedSuboperations: 1, hasDataset: true });
      expect(cMoveRsp(move, Status.MoveDestinationUnknown)).to.deep.equal({
        type: 'C-MOVE-RSP',
        MessageIDBeingRespondedTo: 3,
        AffectedSOPClassUID: STUDY_ROOT_MOVE,
        Status: 0xa801,
        hasDataset: false,
      });
      const getRsp = cGetRsp(get, Status.Success, counts);
      expect(getRsp).to.include({ type: 'C-GET-RSP', MessageIDBeingRespondedTo: 2, AffectedSOPClassUID: STUDY_ROOT_GET });
      expect(getRsp).to.not.have.property('NumberOfRemainingSuboperations');
      expect(decodeMessage(encodeMessage(getRsp))).to.deep.equal(getRsp);
    });

    it('C-ECHO-RSP defaults to Success; C-CANCEL-RQ names the request', () => {
      expect(cEchoRsp(SAMPLES['C-ECHO-RQ'])).to.deep.equal(SAMPLES['C-ECHO-RSP']);
      expect(cEchoRsp(SAMPLES['C-ECHO-RQ'], Status.SOPClassNotSupported).Status).to.equal(0x0122);
      expect(cCancelRq(find)).to.deep.equal({ type: 'C-CANCEL-RQ', MessageIDBeingRespondedTo: 1 });
      expect(encodeMessage(cCancelRq(move)).toString('hex')).to.equal(
        commandBytes(element(0x00000100, us(0x0fff)), element(0x00000120, us(3)), element(0x00000800, us(0x0101))).toString('hex'),
      );
    });

    it('DIMSE-N responses take the request\'s Requested UIDs as Affected ones and copy the type IDs', () => {
      const nGet: NGetRq = SAMPLES['N-GET-RQ'];
      expect(nRsp(nGet, Status.Success, { hasDataset: true })).to.deep.equal({
        type: 'N-GET-RSP',
        MessageIDBeingRespondedTo: 10,
        AffectedSOPClassUID: '1.2.840.10008.5.1.1.16',
        AffectedSOPInstanceUID: '1.2.840.10008.5.1.1.17',
        Status: 0,
        hasDataset: true,
      });
      const nAction: NActionRq = SAMPLES['N-ACTION-RQ'];
      const rsp = nRsp(nAction, Status.Success);
      expect(rsp).to.include({ type: 'N-ACTION-RSP', ActionTypeID: 1, hasDataset: false });
      expect(nRsp(SAMPLES['N-EVENT-REPORT-RQ'], 0)).to.include({ type: 'N-EVENT-REPORT-RSP', EventTypeID: 1 });
      const attributeError = nRsp(SAMPLES['N-SET-RQ'], Status.AttributeListError, { AttributeIdentifierList: [0x20000010], ErrorID: 2 });
      expect(attributeError).to.include({ type: 'N-SET-RSP', AffectedSOPInstanceUID: '1.2.3.4.5', ErrorID: 2 });
      expect(decodeMessage(encodeMessage(attributeError))).to.deep.equal(attributeError);
      const del = nRsp(SAMPLES['N-DELETE-RQ'], Status.NoSuchSOPInstance, { ErrorComment: 'gone' });
      expect(del).to.not.have.property('hasDataset');
      expect(decodeMessage(encodeMessage(del))).to.deep.equal(del);
    });
  });
});

describe('DIMSE status codes (PS3.7 Annex C)', () => {
  const table: [number, string][] = [
    [0x0000, 'success'],
    [0xff00, 'pending'],
    [0xff01, 'pending'],
    [0xfe00, 'cancel'],
    [0x0001, 'warning'],
    [0x0107, 'warning'],
    [0x0116, 'warning'],
    [0xb000, 'warning'],
    [0xb006, 'warning'],
    [0xb007, 'warning'],
    [0xbfff, 'warning'],
    [0xa700, 'failure'],
    [0xa701, 'failure'],
    [0xa702, 'failure'],
    [0xa801, 'failure'],
    [0xa900, 'failure'],
    [0xafff, 'failure'],
    [0xc000, 'failure'],
    [0xc211, 'failure'],
    [0xcfff, 'failure'],
    [0x0105, 'failure'],
    [0x0122, 'failure'],
    [0x0124, 'failure'],
    [0x01ff, 'failure'],
    [0x0210, 'failure'],
    [0x0211, 'failure'],
    [0x0212, 'failure'],
    [0x02ff, 'failure'],
  ];
  for (const [code, category] of table) {
    it(`${formatStatus(code)} is ${category}`, () => {
      expect(statusCategory(code)).to.equal(category);
      expect(isStandardStatusClass(code)).to.equal(true);
    });
  }

  it('agrees on every 16-bit code with the class convention as Annex C words it', () => {
    const annexC = (code: number): string | undefined => {
      const hex = formatStatus(code);
      if (hex === '0000') return 'success';
      if (hex === '0001' || hex.startsWith('B') || hex === '0107' || hex === '0116') return 'warning';
      if (hex.startsWith('A') || hex.startsWith('C') || hex.startsWith('01') || hex.startsWith('02')) return 'failure';
      if (hex === 'FE00') return 'cancel';
      if (hex === 'FF00' || hex === 'FF01') return 'pending';
      return undefined;
    };
    const disagreements: string[] = [];
    for (let code = 0; code <= 0xffff; code++) {
      const expected = annexC(code);
      if (isStandardStatusClass(code) !== (expected !== undefined) || statusCategory(code) !== (expected ?? 'failure')) {
        disagreements.push(formatStatus(code));
      }
    }
    expect(disagreements).to.deep.equal([]);
    expect(STATUS_CLASSES.length).to.equal(10);
  });

  it('treats codes outside every class as failures', () => {
    for (const code of [0x0002, 0x00ff, 0x0300, 0xd000, 0xfe01, 0xff02, 0xffff]) {
      expect(statusCategory(code)).to.equal('failure');
      expect(isStandardStatusClass(code)).to.equal(false);
    }
  });

  it('names statuses by service', () => {
    for (const [name, code] of Object.entries(Status)) {
      const expected = name.startsWith('Pending') ? 'pending' : name === 'Success' ? 'success' : name === 'Cancel' ? 'cancel' : undefined;
      if (expected) expect(statusCategory(code), name).to.equal(expected);
    }
    expect(describeStatus(0xa801, 'C-MOVE')).to.equal('Refused: move destination unknown');
    expect(describeStatus(0xb000, 'C-STORE')).to.equal('Coercion of data elements');
    expect(describeStatus(0xb000, 'C-MOVE')).to.match(/^Sub-operations complete/);
    expect(describeStatus(0xa7f0, 'C-STORE')).to.equal('Refused: out of resources');
    expect(describeStatus(0xc123, 'C-FIND')).to.equal('Failed: unable to process');
    expect(describeStatus(0x0122)).to.equal('Refused: SOP Class not supported');
    expect(describeStatus(0xd000)).to.equal('failure');
    expect(describeStatus(0xa801, 'C-STORE')).to.equal('Refused: move destination unknown');
    expect(describeStatus(0xb000)).to.equal('warning');
    expect(formatStatus(0xa801)).to.equal('A801');
  });
});

describe('P-DATA fragmentation and reassembly (PS3.8 §9.3.5, Annex E)', () => {
  const random = prng(42);
  const bytes = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256);
    return b;
  };

  it('fits one even fragment plus the 6 PDV bytes into the maximum PDU length (0 = unlimited)', () => {
    expect(PDV_OVERHEAD).to.equal(6);
    expect(maxFragmentLength(16384)).to.equal(16378);
    expect(maxFragmentLength(16385)).to.equal(16378);
    expect(maxFragmentLength(8)).to.equal(2);
    expect(maxFragmentLength(9)).to.equal(2);
    expect(maxFragmentLength(0)).to.equal(0xfffffff8);
    expect(maxFragmentLength(0xffffffff)).to.equal(0xfffffff8);
    for (const bad of [1, 6, 7, -1, 1.5, 0x100000000, Number.NaN]) expectDimseError(() => maxFragmentLength(bad), 'ERR_DIMSE_MAX_PDU_LENGTH');
  });

  for (const maxPdu of [16384, 4096, 1000, 8, 9, 14, 0]) {
    it(`splits into views of the data at a maximum PDU length of ${maxPdu}`, () => {
      const data = bytes(40001);
      const parts = fragment(data, maxPdu);
      expect(Buffer.concat(parts).equals(data)).to.equal(true);
      // Plain checks collected per fragment (tens of thousands of fragments at the tiny sizes).
      const problems: string[] = [];
      let offset = 0;
      parts.forEach((part, i) => {
        if (part.buffer !== data.buffer || part.byteOffset !== data.byteOffset + offset) problems.push(`${i}: not a view at ${offset}`);
        offset += part.length;
        if (maxPdu !== 0 && part.length + PDV_OVERHEAD > maxPdu) problems.push(`${i}: ${part.length} bytes do not fit`);
        if (i < parts.length - 1 && part.length % 2 !== 0) problems.push(`${i}: odd length ${part.length}`);
        if (part.length === 0) problems.push(`${i}: empty`);
      });
      expect(problems).to.deep.equal([]);
      if (maxPdu === 0) expect(parts).to.have.length(1);
      if (maxPdu === 16384) expect(parts.map((p) => p.length)).to.deep.equal([16378, 16378, 7245]);
    });
  }

  it('gives one empty fragment for empty data, and the data itself when it fits', () => {
    const empty = fragment(Buffer.alloc(0), 16384);
    expect(empty).to.have.length(1);
    expect(empty[0]!.length).to.equal(0);
    const small = Buffer.from(DCMTK.echoRq, 'hex');
    expect(fragment(small, 16384)[0]).to.equal(small);
  });

  it('encodes the Message Control Header (bit 0 command, bit 1 last; bits 2-7 not checked)', () => {
    expect(messageControlHeader(false, false)).to.equal(0x00);
    expect(messageControlHeader(true, false)).to.equal(0x01);
    expect(messageControlHeader(false, true)).to.equal(0x02);
    expect(messageControlHeader(true, true)).to.equal(0x03);
    for (let b = 0; b < 256; b++) expect(parseMessageControlHeader(b)).to.deep.equal({ isCommand: (b & 1) === 1, isLast: (b & 2) === 2 });
  });

  it('lays out a message as command PDVs then data set PDVs, each with its last flag', () => {
    const command = encodeMessage(SAMPLES['C-STORE-RQ']);
    const pdvs = fragmentMessage(5, command, bytes(100), 64);
    const flags = pdvs.map((p) => `${p.isCommand ? 'C' : 'D'}${p.isLast ? '!' : ''}`).join(' ');
    const commandPdvs = Math.ceil(command.length / 58);
    expect(flags).to.equal(`${'C '.repeat(commandPdvs - 1)}C! D D!`);
    expect(pdvs.every((p) => p.presentationContextId === 5)).to.equal(true);
    expect(fragmentMessage(1, Buffer.from(DCMTK.echoRq, 'hex'), undefined, 0)).to.have.length(1);
  });

  describe('MessageAssembler', () => {
    const echo = Buffer.from(DCMTK.echoRq, 'hex');
    const store = encodeMessage(SAMPLES['C-STORE-RQ']);
    const find = encodeMessage(SAMPLES['C-FIND-RQ']);

    function feed(assembler: MessageAssembler, pdvs: Pdv[]): AssembledMessage[] {
      const out: AssembledMessage[] = [];
      for (const pdv of pdvs) {
        const message = assembler.push(pdv);
        if (message) out.push(message);
      }
      return out;
    }

    for (const maxPdu of [8, 14, 100, 16384, 0]) {
      it(`reassembles what was fragmented at a maximum PDU length of ${maxPdu}`, () => {
        const dataset = bytes(maxPdu === 8 ? 3000 : 50000);
        const identifier = bytes(300);
        const assembler = new MessageAssembler();
        const pdvs = [
          ...fragmentMessage(1, echo, undefined, maxPdu),
          ...fragmentMessage(3, store, dataset, maxPdu),
          ...fragmentMessage(5, find, identifier, maxPdu),
        ];
        const messages: AssembledMessage[] = [];
        pdvs.forEach((pdv, i) => {
          const message = assembler.push(pdv);
          expect(assembler.idle).to.equal(message !== undefined);
          if (message) {
            expect(pdv.isLast, `message completed by PDV ${i}`).to.equal(true);
            messages.push(message);
          }
        });
        expect(messages.map((m) => m.presentationContextId)).to.deep.equal([1, 3, 5]);
        expect(fromCommandSet(messages[0]!.command)).to.deep.equal(SAMPLES['C-ECHO-RQ']);
        expect(messages[0]).to.include({ datasetLength: 0, streamed: false });
        expect(messages[0]!.dataset).to.equal(undefined);
        expect(fromCommandSet(messages[1]!.command)).to.deep.equal(SAMPLES['C-STORE-RQ']);
        expect(Buffer.concat(messages[1]!.dataset!).equals(dataset)).to.equal(true);
        expect(messages[1]!.datasetLength).to.equal(dataset.length);
        expect(messages[1]!.dataset!.every((chunk) => chunk.buffer === dataset.buffer)).to.equal(true); // not copied
        expect(Buffer.concat(messages[2]!.dataset!).equals(identifier)).to.equal(true);
      });
    }

    it('streams data sets to onDatasetChunk when asked, per message', () => {
      const chunks: [number, number, boolean][] = [];
      const received: Buffer[] = [];
      const asked: number[] = [];
      const assembler = new MessageAssembler({
        streamDataset: (contextId, command) => {
          asked.push(contextId);
          return command.CommandField === 0x0001;
        },
        onDatasetChunk: (contextId, chunk, isLast) => {
          chunks.push([contextId, chunk.length, isLast]);
          received.push(chunk);
        },
      });
      const dataset = bytes(10000);
      const identifier = bytes(40);
      const messages = feed(assembler, [...fragmentMessage(3, store, dataset, 4096), ...fragmentMessage(5, find, identifier, 4096)]);
      expect(asked).to.deep.equal([3, 5]);
      expect(chunks).to.deep.equal([
        [3, 4090, false],
        [3, 4090, false],
        [3, 1820, true],
      ]);
      expect(Buffer.concat(received).equals(dataset)).to.equal(true);
      expect(messages[0]).to.include({ streamed: true, datasetLength: 10000, presentationContextId: 3 });
      expect(messages[0]!.dataset).to.equal(undefined);
      expect(messages[1]).to.include({ streamed: false, datasetLength: 40 });
      expect(Buffer.concat(messages[1]!.dataset!).equals(identifier)).to.equal(true);
    });

    it('drops a half-received message on reset()', () => {
      const assembler = new MessageAssembler();
      expect(assembler.push({ presentationContextId: 1, isCommand: true, isLast: true, data: store })).to.equal(undefined);
      expect(assembler.idle).to.equal(false);
      assembler.reset();
      expect(assembler.idle).to.equal(true);
      expect(feed(assembler, fragmentMessage(1, echo, undefined, 0))).to.have.length(1);
    });

    it('streams every data set when only onDatasetChunk is given, an empty last fragment included', () => {
      const chunks: boolean[] = [];
      const assembler = new MessageAssembler({ onDatasetChunk: (_id, _chunk, isLast) => chunks.push(isLast) });
      const messages = feed(assembler, [
        { presentationContextId: 1, isCommand: true, isLast: true, data: find },
        { presentationContextId: 1, isCommand: false, isLast: false, data: bytes(10) },
        { presentationContextId: 1, isCommand: false, isLast: true, data: Buffer.alloc(0) },
      ]);
      expect(chunks).to.deep.equal([false, true]);
      expect(messages[0]).to.include({ streamed: true, datasetLength: 10 });
      expect(() => new MessageAssembler({ streamDataset: () => true })).to.throw(TypeError);
    });

    describe('refuses traffic that breaks PS3.8 Annex E, then starts afresh', () => {
      const cmd = (presentationContextId: number, data: Buffer, isLast = true): Pdv => ({ presentationContextId, isCommand: true, isLast, data });
      const dat = (presentationContextId: number, data: Buffer, isLast = true): Pdv => ({ presentationContextId, isCommand: false, isLast, data });
      const cases: [string, Pdv[], DimseErrorCode, MessageAssembler?][] = [
        ['a data set fragment before any command', [dat(1, bytes(10))], 'ERR_DIMSE_PDV_SEQUENCE'],
        ['a data set after a command announcing none (0101H)', [cmd(1, echo), dat(1, bytes(10))], 'ERR_DIMSE_PDV_SEQUENCE'],
        ['a data set fragment before the last command fragment', [cmd(1, store.subarray(0, 20), false), dat(1, bytes(10))], 'ERR_DIMSE_PDV_SEQUENCE'],
        ['a context change inside a command', [cmd(1, store.subarray(0, 20), false), cmd(3, store.subarray(20))], 'ERR_DIMSE_PDV_SEQUENCE'],
        ['a context change inside a data set', [cmd(1, store), dat(1, bytes(10), false), dat(3, bytes(10))], 'ERR_DIMSE_PDV_SEQUENCE'],
        ['a command while a data set is incomplete', [cmd(1, store), dat(1, bytes(10), false), cmd(1, echo)], 'ERR_DIMSE_PDV_SEQUENCE'],
        ['a new command where the data set should start', [cmd(1, store), cmd(1, echo)], 'ERR_DIMSE_PDV_SEQUENCE'],
        ['an even presentation context ID', [cmd(2, echo)], 'ERR_DIMSE_UNKNOWN_CONTEXT'],
        ['a presentation context ID above 255', [cmd(257, echo)], 'ERR_DIMSE_UNKNOWN_CONTEXT'],
        ['a context not accepted (set)', [cmd(5, echo)], 'ERR_DIMSE_UNKNOWN_CONTEXT', new MessageAssembler({ acceptedContexts: new Set([1, 3]) })],
        ['a context not accepted (predicate)', [cmd(3, echo)], 'ERR_DIMSE_UNKNOWN_CONTEXT', new MessageAssembler({ acceptedContexts: (id) => id === 1 })],
        ['a command set over the limit', [cmd(1, store.subarray(0, 64), false), cmd(1, store.subarray(64))], 'ERR_DIMSE_TOO_LARGE', new MessageAssembler({ maxCommandLength: 100 })],
        ['a collected data set over the limit', [cmd(1, find), dat(1, bytes(60), false), dat(1, bytes(60))], 'ERR_DIMSE_TOO_LARGE', new MessageAssembler({ maxDatasetLength: 100 })],
        ['a malformed command set', [cmd(1, echo.subarray(0, 30))], 'ERR_DIMSE_MALFORMED'],
        ['a command set without Command Data Set Type', [cmd(1, encodeCommand({ CommandField: 0x0030, MessageID: 1 }))], 'ERR_DIMSE_MALFORMED'],
      ];
      for (const [name, pdvs, code, given] of cases) {
        it(name, () => {
          const assembler = given ?? new MessageAssembler();
          const error = expectDimseError(() => feed(assembler, pdvs), code);
          expect(error.abort).to.equal(true);
          expect(assembler.idle).to.equal(true);
          const next = feed(assembler, fragmentMessage(1, echo, undefined, 16384));
          expect(next).to.have.length(1);
        });
      }
    });

    it('survives random PDV sequences with DimseErrors only', () => {
      const pool = [echo, store, find, bytes(30), Buffer.alloc(0)];
      const assembler = new MessageAssembler({ acceptedContexts: new Set([1, 3]) });
      let completed = 0;
      for (let i = 0; i < 5000; i++) {
        const data = pool[Math.floor(random() * pool.length)]!;
        const pdv: Pdv = {
          presentationContextId: random() < 0.9 ? 1 : 3,
          isCommand: random() < 0.5,
          isLast: random() < 0.7,
          data: data.subarray(0, random() < 0.8 ? data.length : Math.floor(random() * data.length)),
        };
        try {
          if (assembler.push(pdv)) completed++;
        } catch (e) {
          expect(e, String(e)).to.be.instanceOf(DimseError);
        }
      }
      expect(completed).to.be.greaterThan(0);
    });
  });

  it('documents which error codes abort the association', () => {
    expect(Object.keys(DIMSE_ERROR_CODES)).to.have.length(8);
    expect(isDimseError(new DimseError('ERR_DIMSE_MALFORMED', 'x'))).to.equal(true);
    expect(isDimseError(new RangeError('x'))).to.equal(false);
    expect(new DimseError('ERR_DIMSE_MISSING_FIELD', 'x', { field: 'MessageID' })).to.include({ abort: false, field: 'MessageID', name: 'DimseError' });
  });
});
