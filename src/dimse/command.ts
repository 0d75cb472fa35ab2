/**
 * The DIMSE command set codec (PS3.7 §6.3.1 and Annex E): group 0000 elements, always encoded in implicit VR
 * little endian whatever transfer syntax the presentation context negotiated, with Command Group Length
 * (0000,0000) first. Pure: Buffers in, Buffers out, no sockets.
 *
 * Values are encoded by `dicom/writer.ts` (padding: UI with NUL, text with space) and read through
 * `dicom/dataset.ts`; this module adds what is specific to command sets: the command dictionary, the group length,
 * and strict validation of received bytes (every defect is a `DimseError`, never a RangeError).
 */
import { CharsetDecoder } from '../dicom/charset.js';
import { DataSet, type Element } from '../dicom/dataset.js';
import { formatTagOrthanc, type Tag } from '../dicom/tag.js';
import { encodeDataset, type WriteElement } from '../dicom/writer.js';

// ---------------------------------------------------------------------------------------------------------------
// Errors

/**
 * Stable codes of `DimseError` (STYLE.md habit 8), with what the caller is expected to do. `abort: true` marks
 * the protocol errors after which the association cannot go on (PS3.8 §9.1.6: A-ABORT, or A-P-ABORT by the
 * provider); the others concern one message, or are programming errors on our side.
 */
export const DIMSE_ERROR_CODES = {
  /** The bytes of a command set cannot be decoded (truncated, overrun, wrong group length, non-0000 element). */
  ERR_DIMSE_MALFORMED: { abort: true, description: 'Malformed DIMSE command set' },
  /** A field the message type requires (PS3.7 Tables 9.3-x, 10.3-x) is absent; `field` names it. */
  ERR_DIMSE_MISSING_FIELD: { abort: false, description: 'Required command field missing' },
  /** A field has a value the standard does not allow there (range, characters, Command Data Set Type). */
  ERR_DIMSE_INVALID_FIELD: { abort: false, description: 'Invalid command field value' },
  /** Command Field (0000,0100) names no DIMSE message (PS3.7 Annex E). */
  ERR_DIMSE_UNKNOWN_COMMAND: { abort: false, description: 'Unknown DIMSE Command Field' },
  /** A PDV names a presentation context that was not accepted on this association (PS3.8 §9.3.5.1). */
  ERR_DIMSE_UNKNOWN_CONTEXT: { abort: true, description: 'PDV for an unknown presentation context' },
  /** PDVs break PS3.8 Annex E: data before command, a context change inside a message, an unexpected data set. */
  ERR_DIMSE_PDV_SEQUENCE: { abort: true, description: 'PDVs out of sequence' },
  /** A command set (or a collected data set) is larger than the assembler's limit. */
  ERR_DIMSE_TOO_LARGE: { abort: true, description: 'DIMSE message too large' },
  /** A maximum PDU length too small to carry any fragment (PS3.8 §9.3.5, Annex E.1: fragments are even). */
  ERR_DIMSE_MAX_PDU_LENGTH: { abort: false, description: 'Maximum PDU length cannot carry a fragment' },
} as const;

export type DimseErrorCode = keyof typeof DIMSE_ERROR_CODES;

/** Every error raised by `src/dimse` codecs. Branch on `code`, never on the message. */
export class DimseError extends Error {
  readonly code: DimseErrorCode;
  /** The command field concerned (standard keyword), when there is one. */
  readonly field?: string;

  constructor(code: DimseErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(`${DIMSE_ERROR_CODES[code].description}: ${message}`, { cause: options?.cause });
    this.name = 'DimseError';
    this.code = code;
    this.field = options?.field;
  }

  /** True when the association should be aborted (see `DIMSE_ERROR_CODES`). */
  get abort(): boolean {
    return DIMSE_ERROR_CODES[this.code].abort;
  }
}

export function isDimseError(e: unknown): e is DimseError {
  return e instanceof DimseError;
}

// ---------------------------------------------------------------------------------------------------------------
// The command dictionary: PS3.7 Annex E, Table E.1-1 (retired elements of Annex D are not listed)

/** VRs used by command elements. */
export type CommandVr = 'UL' | 'US' | 'UI' | 'AE' | 'LO' | 'AT';

export interface CommandElementInfo {
  readonly tag: Tag;
  readonly vr: CommandVr;
  readonly vm: '1' | '1-n';
}

/** PS3.7 Table E.1-1, by standard keyword. */
export const COMMAND_DICTIONARY = {
  CommandGroupLength: { tag: 0x00000000, vr: 'UL', vm: '1' },
  AffectedSOPClassUID: { tag: 0x00000002, vr: 'UI', vm: '1' },
  RequestedSOPClassUID: { tag: 0x00000003, vr: 'UI', vm: '1' },
  CommandField: { tag: 0x00000100, vr: 'US', vm: '1' },
  MessageID: { tag: 0x00000110, vr: 'US', vm: '1' },
  MessageIDBeingRespondedTo: { tag: 0x00000120, vr: 'US', vm: '1' },
  MoveDestination: { tag: 0x00000600, vr: 'AE', vm: '1' },
  Priority: { tag: 0x00000700, vr: 'US', vm: '1' },
  CommandDataSetType: { tag: 0x00000800, vr: 'US', vm: '1' },
  Status: { tag: 0x00000900, vr: 'US', vm: '1' },
  OffendingElement: { tag: 0x00000901, vr: 'AT', vm: '1-n' },
  ErrorComment: { tag: 0x00000902, vr: 'LO', vm: '1' },
  ErrorID: { tag: 0x00000903, vr: 'US', vm: '1' },
  AffectedSOPInstanceUID: { tag: 0x00001000, vr: 'UI', vm: '1' },
  RequestedSOPInstanceUID: { tag: 0x00001001, vr: 'UI', vm: '1' },
  EventTypeID: { tag: 0x00001002, vr: 'US', vm: '1' },
  AttributeIdentifierList: { tag: 0x00001005, vr: 'AT', vm: '1-n' },
  ActionTypeID: { tag: 0x00001008, vr: 'US', vm: '1' },
  NumberOfRemainingSuboperations: { tag: 0x00001020, vr: 'US', vm: '1' },
  NumberOfCompletedSuboperations: { tag: 0x00001021, vr: 'US', vm: '1' },
  NumberOfFailedSuboperations: { tag: 0x00001022, vr: 'US', vm: '1' },
  NumberOfWarningSuboperations: { tag: 0x00001023, vr: 'US', vm: '1' },
  MoveOriginatorApplicationEntityTitle: { tag: 0x00001030, vr: 'AE', vm: '1' },
  MoveOriginatorMessageID: { tag: 0x00001031, vr: 'US', vm: '1' },
} as const satisfies Record<string, CommandElementInfo>;

export type CommandKeyword = keyof typeof COMMAND_DICTIONARY;

type ValueOfVr<V extends CommandVr> = V extends 'UI' | 'AE' | 'LO' ? string : V extends 'AT' ? Tag[] : number;

/** Command fields by standard keyword; AT values are lists of tags (`0xggggeeee`). */
export type CommandFields = {
  -readonly [K in CommandKeyword]?: ValueOfVr<(typeof COMMAND_DICTIONARY)[K]['vr']>;
};

/** An element of group 0000 that is not in Table E.1-1 (a retired Annex D element, say), kept as received. */
export interface UnrecognizedCommandElement {
  tag: Tag;
  value: Buffer;
}

/** A decoded command set. */
export interface CommandSet extends CommandFields {
  CommandGroupLength: number;
  /** Group 0000 elements unknown to Table E.1-1; absent when there are none. They are not re-encoded. */
  unrecognized?: UnrecognizedCommandElement[];
}

/** Command Data Set Type (0000,0800) value meaning "no data set" (PS3.7 Table E.1-1). */
export const NO_DATASET = 0x0101;
/**
 * The value we send when a data set follows: PS3.7 allows any value other than 0101H; 0001H is what DCMTK sends
 * (its C-STORE-RQ, captured in test/dimse.test.ts).
 */
export const DATASET_PRESENT = 0x0001;

/** PS3.7 Table E.1-1 Priority values. */
export const Priority = { Medium: 0x0000, High: 0x0001, Low: 0x0002 } as const;

const BY_TAG: ReadonlyMap<Tag, { keyword: CommandKeyword } & CommandElementInfo> = new Map(
  (Object.entries(COMMAND_DICTIONARY) as [CommandKeyword, CommandElementInfo][]).map(([keyword, info]) => [
    info.tag,
    { keyword, ...info },
  ]),
);

/** The keyword of a command element tag, undefined for tags outside Table E.1-1. */
export function commandKeyword(tag: Tag): CommandKeyword | undefined {
  return BY_TAG.get(tag >>> 0)?.keyword;
}

/** True when a data set follows a command with this Command Data Set Type (any value but 0101H). */
export function hasDataset(command: Pick<CommandFields, 'CommandDataSetType'>): boolean {
  return command.CommandDataSetType !== undefined && command.CommandDataSetType !== NO_DATASET;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** PS3.5 Table 6.2-1: maximum lengths of the text VRs used in command sets. */
const MAX_TEXT_LENGTH: Partial<Record<CommandVr, number>> = { AE: 16, LO: 64, UI: 64 };
const PRINTABLE_ASCII = /^[\x20-\x5b\x5d-\x7e]*$/; // no backslash: every command text element has VM 1

function invalid(keyword: string, why: string): DimseError {
  return new DimseError('ERR_DIMSE_INVALID_FIELD', `${keyword}: ${why}`, { field: keyword });
}

function checkInteger(keyword: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalid(keyword, `${String(value)} is not an integer in 0..${max}`);
  }
  return value;
}

function encodeElement(keyword: CommandKeyword, value: unknown): WriteElement {
  const { tag, vr } = COMMAND_DICTIONARY[keyword];
  switch (vr) {
    case 'US':
    case 'UL':
      return { tag, vr, value: [checkInteger(keyword, value, vr === 'US' ? 0xffff : 0xffffffff)] };
    case 'AT': {
      if (!Array.isArray(value)) throw invalid(keyword, 'expected a list of tags');
      return { tag, vr, value: value.map((t) => checkInteger(keyword, t, 0xffffffff)) };
    }
    default: {
      if (typeof value !== 'string') throw invalid(keyword, 'expected a string');
      let text = value;
      const max = MAX_TEXT_LENGTH[vr]!;
      // Error Comment is informational: a long handler message is cut rather than losing the response.
      if (keyword === 'ErrorComment') text = text.slice(0, max).replace(/[^\x20-\x5b\x5d-\x7e]/g, '?');
      if (!PRINTABLE_ASCII.test(text)) throw invalid(keyword, `${JSON.stringify(text)} has characters outside the default repertoire`);
      // AE titles and UIDs are checked for length; a received UID longer than 64 is echoed back unchanged.
      if (vr === 'AE' && text.trim().length > max) throw invalid(keyword, `${JSON.stringify(text)} is longer than ${max}`);
      return { tag, vr, value: text };
    }
  }
}

/**
 * Encodes a command set in implicit VR little endian (PS3.7 §6.3.1), elements in tag order, with Command Group
 * Length (0000,0000) computed and prepended; a `CommandGroupLength` in `fields` is ignored, and so are
 * `unrecognized` elements. Throws `DimseError` ERR_DIMSE_INVALID_FIELD for a value the VR cannot carry.
 */
export function encodeCommand(fields: CommandFields): Buffer {
  const elements: WriteElement[] = [];
  for (const keyword of Object.keys(fields) as CommandKeyword[]) {
    if (keyword === 'CommandGroupLength' || !(keyword in COMMAND_DICTIONARY)) continue;
    const value = fields[keyword];
    if (value === undefined) continue;
    elements.push(encodeElement(keyword, value));
  }
  const implicitLe = { explicitVr: false, littleEndian: true } as const;
  const body = encodeDataset(elements, implicitLe);
  const groupLength = encodeDataset([{ tag: 0x00000000, vr: 'UL', value: [body.length] }], implicitLe);
  return Buffer.concat([groupLength, body], groupLength.length + body.length);
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

function malformed(message: string): DimseError {
  return new DimseError('ERR_DIMSE_MALFORMED', message);
}

/** The fixed value lengths of the binary VRs (VM 1). */
const BINARY_LENGTH: Partial<Record<CommandVr, number>> = { US: 2, UL: 4 };
const DEFAULT_REPERTOIRE = CharsetDecoder.for(undefined, 'Latin1');

/**
 * Decodes and validates a whole command set (PS3.7 §6.3.1): it must start with Command Group Length (0000,0000),
 * UL, whose value is exactly the number of bytes after it; every element must be of group 0000, inside the
 * bytes, of defined length, present once, and of the length its VR allows (US 2 bytes, UL 4, AT a multiple of 4).
 * An empty value reads as an absent field. Elements out of tag order are accepted; group 0000 elements outside
 * Table E.1-1 are kept in `unrecognized`. Every defect throws `DimseError` ERR_DIMSE_MALFORMED.
 */
export function decodeCommand(bytes: Buffer): CommandSet {
  if (bytes.length < 12) throw malformed(`${bytes.length} bytes cannot hold Command Group Length`);
  if (bytes.readUInt32LE(0) !== 0x00000000 || bytes.readUInt32LE(4) !== 4) {
    throw malformed(`the first element is (${formatTag(bytes, 0)}) length ${bytes.readUInt32LE(4)}, not Command Group Length`);
  }
  const groupLength = bytes.readUInt32LE(8);
  if (groupLength !== bytes.length - 12) {
    throw malformed(`Command Group Length is ${groupLength} but ${bytes.length - 12} bytes follow it`);
  }
  const elements = new Map<Tag, Element>();
  const result: CommandSet = { CommandGroupLength: groupLength };
  let position = 12;
  while (position < bytes.length) {
    if (position + 8 > bytes.length) throw malformed(`truncated element header at offset ${position}`);
    const group = bytes.readUInt16LE(position);
    const tag = ((group << 16) | bytes.readUInt16LE(position + 2)) >>> 0;
    const length = bytes.readUInt32LE(position + 4);
    const offset = position + 8;
    if (group !== 0x0000) throw malformed(`element (${formatTagOrthanc(tag)}) at offset ${position} is not a command element`);
    if (length === 0xffffffff) throw malformed(`element (${formatTagOrthanc(tag)}) has an undefined length`);
    if (length > bytes.length - offset) {
      throw malformed(`element (${formatTagOrthanc(tag)}) of length ${length} overruns the command set by ${length - (bytes.length - offset)} bytes`);
    }
    if (tag === 0x00000000 || elements.has(tag)) throw malformed(`element (${formatTagOrthanc(tag)}) occurs twice`);
    const info = BY_TAG.get(tag);
    if (!info) {
      (result.unrecognized ??= []).push({ tag, value: Buffer.from(bytes.subarray(offset, offset + length)) });
    } else if (length > 0) {
      const fixed = BINARY_LENGTH[info.vr];
      if (fixed !== undefined && length !== fixed) {
        throw malformed(`${info.keyword} (${formatTagOrthanc(tag)}) is ${info.vr} but ${length} bytes long`);
      }
      if (info.vr === 'AT' && length % 4 !== 0) {
        throw malformed(`${info.keyword} (${formatTagOrthanc(tag)}) is AT but ${length} bytes long`);
      }
      elements.set(tag, { tag, vr: info.vr, offset, length, undefinedLength: false });
    }
    position = offset + length;
  }
  const ds = new DataSet(bytes, true, false, elements, DEFAULT_REPERTOIRE);
  const out = result as unknown as Record<string, unknown>;
  for (const el of elements.values()) {
    const { keyword, vr } = BY_TAG.get(el.tag)!;
    if (vr === 'US' || vr === 'UL') out[keyword] = ds.elementNumbers(el)[0];
    else if (vr === 'AT') out[keyword] = ds.elementTags(el);
    else out[keyword] = ds.elementText(el);
  }
  return result;
}

function formatTag(bytes: Buffer, position: number): string {
  return formatTagOrthanc(((bytes.readUInt16LE(position) << 16) | bytes.readUInt16LE(position + 2)) >>> 0);
}
