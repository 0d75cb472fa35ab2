/**
 * Building new datasets (PS3.5 §7): C-FIND responses, meta headers for datasets received without one, and
 * anything else pacsnode creates. Received datasets are never re-encoded with this: their bytes are kept.
 */
import { encodeString } from './charset.js';
import { isNumericVr } from './dataset.js';
import { vrOf } from './dictionary.js';
import { Tags, type Tag } from './tag.js';
import { ExplicitVRLittleEndian } from './transfer-syntax.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uids.js';

export type WriteValue = string | readonly string[] | readonly number[] | Buffer | readonly WriteItem[] | null;

/** One element to write; `vr` defaults to the dictionary's. */
export interface WriteElement {
  tag: Tag;
  vr?: string;
  value: WriteValue;
}

export type WriteItem = readonly WriteElement[];

export interface EncodeOptions {
  explicitVr: boolean;
  littleEndian: boolean;
  /** Specific Character Set term used to encode text (the dataset's (0008,0005) should say the same). */
  specificCharacterSet?: string;
}

/** VRs with a 2-byte length in explicit syntaxes (PS3.5 Table 7.1-2); the others have 2 reserved bytes + 4. */
const SHORT_LENGTH_VRS = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI',
  'UL', 'US',
]);

const NUMBER_WRITERS: Record<string, { size: number; write: (b: Buffer, v: number, o: number, le: boolean) => void }> = {
  US: { size: 2, write: (b, v, o, le) => void (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o)) },
  SS: { size: 2, write: (b, v, o, le) => void (le ? b.writeInt16LE(v, o) : b.writeInt16BE(v, o)) },
  UL: { size: 4, write: (b, v, o, le) => void (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o)) },
  SL: { size: 4, write: (b, v, o, le) => void (le ? b.writeInt32LE(v, o) : b.writeInt32BE(v, o)) },
  FL: { size: 4, write: (b, v, o, le) => void (le ? b.writeFloatLE(v, o) : b.writeFloatBE(v, o)) },
  FD: { size: 8, write: (b, v, o, le) => void (le ? b.writeDoubleLE(v, o) : b.writeDoubleBE(v, o)) },
  SV: { size: 8, write: (b, v, o, le) => void (le ? b.writeBigInt64LE(BigInt(v), o) : b.writeBigInt64BE(BigInt(v), o)) },
  UV: { size: 8, write: (b, v, o, le) => void (le ? b.writeBigUInt64LE(BigInt(v), o) : b.writeBigUInt64BE(BigInt(v), o)) },
};

function encodeValue(el: WriteElement, vr: string, options: EncodeOptions): Buffer {
  const { value } = el;
  if (value === null || value === undefined) return Buffer.alloc(0);
  if (Buffer.isBuffer(value)) return value.length % 2 === 1 ? Buffer.concat([value, Buffer.from([0])]) : value;
  if (vr === 'AT') {
    const tags = value as readonly number[];
    const out = Buffer.alloc(tags.length * 4);
    tags.forEach((t, i) => {
      const g = t >>> 16;
      const e = t & 0xffff;
      if (options.littleEndian) {
        out.writeUInt16LE(g, i * 4);
        out.writeUInt16LE(e, i * 4 + 2);
      } else {
        out.writeUInt16BE(g, i * 4);
        out.writeUInt16BE(e, i * 4 + 2);
      }
    });
    return out;
  }
  if (isNumericVr(vr)) {
    const numbers = (typeof value === 'string' ? value.split('\\').map(Number) : value) as readonly number[];
    const w = NUMBER_WRITERS[vr]!;
    const out = Buffer.alloc(numbers.length * w.size);
    numbers.forEach((n, i) => w.write(out, n, i * w.size, options.littleEndian));
    return out;
  }
  const text = typeof value === 'string' ? value : (value as readonly (string | number)[]).map(String).join('\\');
  const bytes = vr === 'UI' || vr === 'CS' || vr === 'DA' || vr === 'TM' || vr === 'DT' || vr === 'AE' || vr === 'DS' || vr === 'IS' || vr === 'AS'
    ? Buffer.from(text, 'latin1')
    : encodeString(text, options.specificCharacterSet);
  if (bytes.length % 2 === 0) return bytes;
  return Buffer.concat([bytes, Buffer.from([vr === 'UI' ? 0 : 0x20])]);
}

function header(tag: Tag, vr: string, length: number, options: EncodeOptions): Buffer {
  const le = options.littleEndian;
  const g = tag >>> 16;
  const e = tag & 0xffff;
  if (!options.explicitVr) {
    const h = Buffer.alloc(8);
    if (le) {
      h.writeUInt16LE(g, 0);
      h.writeUInt16LE(e, 2);
      h.writeUInt32LE(length >>> 0, 4);
    } else {
      h.writeUInt16BE(g, 0);
      h.writeUInt16BE(e, 2);
      h.writeUInt32BE(length >>> 0, 4);
    }
    return h;
  }
  const short = SHORT_LENGTH_VRS.has(vr);
  const h = Buffer.alloc(short ? 8 : 12);
  if (le) {
    h.writeUInt16LE(g, 0);
    h.writeUInt16LE(e, 2);
  } else {
    h.writeUInt16BE(g, 0);
    h.writeUInt16BE(e, 2);
  }
  h.write(vr, 4, 'latin1');
  if (short) {
    if (length > 0xffff) throw new RangeError(`value of ${tag.toString(16)} too long for VR ${vr}`);
    if (le) h.writeUInt16LE(length, 6);
    else h.writeUInt16BE(length, 6);
  } else if (le) h.writeUInt32LE(length >>> 0, 8);
  else h.writeUInt32BE(length >>> 0, 8);
  return h;
}

function itemTag(tag: Tag, length: number, options: EncodeOptions): Buffer {
  const h = Buffer.alloc(8);
  if (options.littleEndian) {
    h.writeUInt16LE(tag >>> 16, 0);
    h.writeUInt16LE(tag & 0xffff, 2);
    h.writeUInt32LE(length >>> 0, 4);
  } else {
    h.writeUInt16BE(tag >>> 16, 0);
    h.writeUInt16BE(tag & 0xffff, 2);
    h.writeUInt32BE(length >>> 0, 4);
  }
  return h;
}

/** Encodes the elements (sorted by tag) in the given syntax; sequences and items get defined lengths. */
export function encodeDataset(elements: readonly WriteElement[], options: EncodeOptions): Buffer {
  const parts: Buffer[] = [];
  const sorted = [...elements].sort((a, b) => (a.tag >>> 0) - (b.tag >>> 0));
  for (const el of sorted) {
    const vr = el.vr ?? vrOf(el.tag);
    if (vr === 'SQ') {
      const items = (el.value ?? []) as readonly WriteItem[];
      const encodedItems = items.map((item) => {
        const body = encodeDataset(item, options);
        return Buffer.concat([itemTag(Tags.Item, body.length, options), body]);
      });
      const body = Buffer.concat(encodedItems);
      parts.push(header(el.tag, 'SQ', body.length, options), body);
      continue;
    }
    const value = encodeValue(el, vr, options);
    parts.push(header(el.tag, vr, value.length, options), value);
  }
  return Buffer.concat(parts);
}

export interface MetaHeaderFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  sourceAet?: string;
}

/** The 128-byte preamble, `DICM` and the File Meta Information group (PS3.10 §7.1). */
export function buildMetaHeader(fields: MetaHeaderFields): Buffer {
  const explicitLe: EncodeOptions = { explicitVr: true, littleEndian: true };
  const elements: WriteElement[] = [
    { tag: 0x00020001, vr: 'OB', value: Buffer.from([0, 1]) },
    { tag: Tags.MediaStorageSOPClassUID, vr: 'UI', value: fields.sopClassUid },
    { tag: Tags.MediaStorageSOPInstanceUID, vr: 'UI', value: fields.sopInstanceUid },
    { tag: Tags.TransferSyntaxUID, vr: 'UI', value: fields.transferSyntaxUid },
    { tag: Tags.ImplementationClassUID, vr: 'UI', value: IMPLEMENTATION_CLASS_UID },
    { tag: Tags.ImplementationVersionName, vr: 'SH', value: IMPLEMENTATION_VERSION_NAME },
  ];
  if (fields.sourceAet) elements.push({ tag: Tags.SourceApplicationEntityTitle, vr: 'AE', value: fields.sourceAet });
  const group = encodeDataset(elements, explicitLe);
  const groupLength = encodeDataset([{ tag: Tags.FileMetaInformationGroupLength, vr: 'UL', value: [group.length] }], explicitLe);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, groupLength, group]);
}

/** A whole Part 10 file: meta header + dataset encoded in the transfer syntax named (uncompressed syntaxes). */
export function encodePart10(
  elements: readonly WriteElement[],
  fields: Omit<MetaHeaderFields, 'transferSyntaxUid'> & { transferSyntaxUid?: string },
  options?: { specificCharacterSet?: string },
): Buffer {
  const ts = fields.transferSyntaxUid ?? ExplicitVRLittleEndian;
  const explicitVr = ts !== '1.2.840.10008.1.2';
  const littleEndian = ts !== '1.2.840.10008.1.2.2';
  const meta = buildMetaHeader({ ...fields, transferSyntaxUid: ts });
  return Buffer.concat([meta, encodeDataset(elements, { explicitVr, littleEndian, ...options })]);
}
