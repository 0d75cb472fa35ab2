/**
 * The parsed dataset model: elements point into the received bytes (zero copy); values are decoded on demand.
 * Produced by `reader.ts`; consumed by the store (indexing), the JSON model and the query engine.
 */
import type { CharsetDecoder } from './charset.js';
import type { Tag } from './tag.js';
import { trimEndPad, trimStartPad } from './trim.js';

export interface Fragment {
  /** Offset of the fragment's value in `DataSet.bytes`. */
  offset: number;
  length: number;
}

export interface Element {
  tag: Tag;
  /** The VR: from the file (explicit syntaxes) or from the dictionary (implicit). */
  vr: string;
  /** Offset of the value in `DataSet.bytes`. */
  offset: number;
  /** Length of the value in bytes (clamped to the available bytes for a truncated file). */
  length: number;
  undefinedLength: boolean;
  /** Sequence items. */
  items?: DataSet[];
  /** Encapsulated pixel data: the fragments after the Basic Offset Table item. */
  fragments?: Fragment[];
  /** Encapsulated pixel data: the Basic Offset Table item. */
  offsetTable?: Fragment;
  /**
   * The element was encoded as UN and is read with its dictionary VR (CP-246). Its text keeps trailing spaces:
   * Orthanc strips only a trailing NUL there, and public IDs hashed from such values depend on it.
   */
  fromUN?: boolean;
}

const NUMERIC_READERS = {
  US: { size: 2, le: (b: Buffer, o: number) => b.readUInt16LE(o), be: (b: Buffer, o: number) => b.readUInt16BE(o) },
  SS: { size: 2, le: (b: Buffer, o: number) => b.readInt16LE(o), be: (b: Buffer, o: number) => b.readInt16BE(o) },
  UL: { size: 4, le: (b: Buffer, o: number) => b.readUInt32LE(o), be: (b: Buffer, o: number) => b.readUInt32BE(o) },
  SL: { size: 4, le: (b: Buffer, o: number) => b.readInt32LE(o), be: (b: Buffer, o: number) => b.readInt32BE(o) },
  FL: { size: 4, le: (b: Buffer, o: number) => b.readFloatLE(o), be: (b: Buffer, o: number) => b.readFloatBE(o) },
  FD: { size: 8, le: (b: Buffer, o: number) => b.readDoubleLE(o), be: (b: Buffer, o: number) => b.readDoubleBE(o) },
  SV: { size: 8, le: (b: Buffer, o: number) => Number(b.readBigInt64LE(o)), be: (b: Buffer, o: number) => Number(b.readBigInt64BE(o)) },
  UV: { size: 8, le: (b: Buffer, o: number) => Number(b.readBigUInt64LE(o)), be: (b: Buffer, o: number) => Number(b.readBigUInt64BE(o)) },
} as const;

export type NumericVr = keyof typeof NUMERIC_READERS;

export function isNumericVr(vr: string): vr is NumericVr {
  return vr in NUMERIC_READERS;
}

/** VRs whose value is text (PS3.5 §6.2). */
export const STRING_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT',
]);

/** VRs whose value is one text value (a backslash is not a delimiter). */
const SINGLE_TEXT_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);

/** VRs that are binary blobs. */
export const BINARY_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

export class DataSet {
  constructor(
    /** The bytes that element offsets refer to (the whole file, or its inflated form for deflated syntaxes). */
    readonly bytes: Buffer,
    readonly littleEndian: boolean,
    readonly explicitVr: boolean,
    /** Ordered as in the file. */
    readonly elements: Map<Tag, Element>,
    /** Specific Character Set in force for this dataset (items inherit their parent's unless they carry their own). */
    public charset: CharsetDecoder,
  ) {}

  get(tag: Tag): Element | undefined {
    return this.elements.get(tag);
  }

  has(tag: Tag): boolean {
    return this.elements.has(tag);
  }

  /** The raw value bytes (a view, not a copy). */
  raw(tag: Tag): Buffer | undefined {
    const el = this.elements.get(tag);
    return el ? this.valueBytes(el) : undefined;
  }

  valueBytes(el: Element): Buffer {
    return this.bytes.subarray(el.offset, el.offset + el.length);
  }

  /** The whole text of a string element, decoded with the character set, trailing padding removed. */
  text(tag: Tag): string | undefined {
    const el = this.elements.get(tag);
    if (!el) return undefined;
    return this.elementText(el);
  }

  elementText(el: Element): string {
    if (el.length === 0 || el.undefinedLength) return '';
    const decoded = this.charset.decode(this.valueBytes(el), el.vr);
    if (el.fromUN) return decoded.replace(/\0$/, '');
    return trimValue(decoded, el.vr, SINGLE_TEXT_VRS.has(el.vr));
  }

  /** The values of a string element split on backslashes and trimmed (PS3.5 §6.2); [] when absent or empty. */
  strings(tag: Tag): string[] {
    const el = this.elements.get(tag);
    if (!el) return [];
    return this.elementStrings(el);
  }

  elementStrings(el: Element): string[] {
    if (el.length === 0 || el.undefinedLength) return [];
    const decoded = this.charset.decode(this.valueBytes(el), el.vr);
    if (el.fromUN) return decoded.replace(/\0$/, '').split('\\');
    if (SINGLE_TEXT_VRS.has(el.vr)) return [trimValue(decoded, el.vr, true)];
    return decoded.split('\\').map((v) => trimValue(v, el.vr, false));
  }

  /** First value of a string element, trimmed; undefined when absent. */
  string(tag: Tag): string | undefined {
    const el = this.elements.get(tag);
    if (!el) return undefined;
    if (SINGLE_TEXT_VRS.has(el.vr)) return this.elementText(el);
    const values = this.elementStrings(el);
    return values.length > 0 ? values[0] : '';
  }

  /** Numeric values of a binary-number element (US, SS, UL, SL, FL, FD, SV, UV) or of a DS/IS string. */
  numbers(tag: Tag): number[] {
    const el = this.elements.get(tag);
    if (!el) return [];
    return this.elementNumbers(el);
  }

  elementNumbers(el: Element): number[] {
    if (el.vr === 'DS' || el.vr === 'IS') {
      return this.elementStrings(el)
        .filter((s) => s !== '')
        .map(Number);
    }
    if (!isNumericVr(el.vr)) return [];
    const reader = NUMERIC_READERS[el.vr];
    const read = this.littleEndian ? reader.le : reader.be;
    const count = Math.floor(el.length / reader.size);
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) out[i] = read(this.bytes, el.offset + i * reader.size);
    return out;
  }

  number(tag: Tag): number | undefined {
    const values = this.numbers(tag);
    return values.length > 0 ? values[0] : undefined;
  }

  /** AT values as tags. */
  elementTags(el: Element): Tag[] {
    const out: Tag[] = [];
    for (let o = el.offset; o + 4 <= el.offset + el.length; o += 4) {
      const g = this.littleEndian ? this.bytes.readUInt16LE(o) : this.bytes.readUInt16BE(o);
      const e = this.littleEndian ? this.bytes.readUInt16LE(o + 2) : this.bytes.readUInt16BE(o + 2);
      out.push(((g << 16) | e) >>> 0);
    }
    return out;
  }

  items(tag: Tag): DataSet[] {
    return this.elements.get(tag)?.items ?? [];
  }
}

/**
 * Removes the padding PS3.5 allows: trailing spaces (and NUL for UI), and leading spaces for the VRs whose
 * leading spaces are not significant.
 */
export function trimValue(value: string, vr: string, singleText: boolean): string {
  if (vr === 'UI') return trimEndPad(value);
  if (singleText) return trimEndPad(value);
  if (vr === 'PN' || vr === 'LO' || vr === 'SH' || vr === 'UC' || vr === 'CS' || vr === 'AE' || vr === 'DS' || vr === 'IS' || vr === 'DA' || vr === 'DT' || vr === 'TM' || vr === 'AS') {
    return trimStartPad(trimEndPad(value));
  }
  return trimEndPad(value);
}
