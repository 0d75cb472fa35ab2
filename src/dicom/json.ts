/**
 * JSON views of a dataset:
 * - the DICOM JSON model (PS3.18 Annex F), shared by DICOMweb and anything that answers DICOM JSON, with
 *   BulkDataURI for large binary values;
 * - Orthanc's three formats of `/instances/{id}/tags`: full (`{"0010,0010": {Name, Type, Value}}`),
 *   `simplify` (`{"PatientName": "..."}`) and `short` (`{"0010,0010": "..."}`).
 */
import type { DataSet, Element } from './dataset.js';
import { BINARY_VRS, STRING_VRS, isNumericVr, trimValue } from './dataset.js';
import { keywordOf } from './dictionary.js';
import { valueRange } from './frames.js';
import { formatTagJson, formatTagOrthanc, isPrivateTag, type Tag } from './tag.js';
import { trimEndChar } from './trim.js';

/** VRs whose value is one text (no backslash delimiter): PS3.5 §6.2. */
const SINGLE_TEXT_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);

// ------------------------------------------------------------------ DICOM JSON (PS3.18 Annex F)

export interface DicomJsonAttribute {
  vr: string;
  Value?: unknown[];
  BulkDataURI?: string;
  InlineBinary?: string;
}

export type DicomJsonDataset = Record<string, DicomJsonAttribute>;

/** A path to an element from the root: tag, item index, tag, ... */
export type TagPath = readonly number[];

export interface DicomJsonOptions {
  /**
   * URI for a binary value, or undefined to inline it. Called for binary values longer than
   * `bulkDataThreshold` and for pixel data.
   */
  bulkDataUri?: (path: TagPath, el: Element) => string | undefined;
  /** Binary values up to this many bytes are inlined (default 1024, like common DICOMweb servers). */
  bulkDataThreshold?: number;
  /** Skip elements (e.g. group 0002 or private tags); return true to omit. */
  omit?: (tag: Tag) => boolean;
}

function pnToJson(text: string): Record<string, string> | null {
  if (text === '') return null;
  const [alphabetic, ideographic, phonetic] = text.split('=');
  const out: Record<string, string> = {};
  if (alphabetic) out.Alphabetic = alphabetic;
  if (ideographic) out.Ideographic = ideographic;
  if (phonetic) out.Phonetic = phonetic;
  return out;
}

function numberOrString(text: string, integer: boolean): number | string | null {
  const t = text.trim();
  if (t === '') return null;
  const n = Number(t);
  if (!Number.isFinite(n)) return t;
  return integer ? Math.trunc(n) : n;
}

/**
 * A float32 value as the number with the fewest significant digits that reads back to the same float32
 * (-77.20406, not the float64 digits -77.20406341552734): JSON numbers are read as doubles.
 */
export function shortestFloat32(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  for (let precision = 1; precision < 9; precision++) {
    const candidate = Number(x.toPrecision(precision));
    if (Math.fround(candidate) === x) return candidate;
  }
  return Number(x.toPrecision(9)); // 9 significant digits always identify a float32
}

function attributeToJson(ds: DataSet, el: Element, path: number[], options: DicomJsonOptions): DicomJsonAttribute {
  const vr = el.vr;
  if (el.items || vr === 'SQ') {
    const items = (el.items ?? []).map((item, i) => datasetToDicomJson(item, options, [...path, i]));
    return items.length > 0 ? { vr: 'SQ', Value: items } : { vr: 'SQ' };
  }
  if (BINARY_VRS.has(vr) || el.fragments) {
    const threshold = options.bulkDataThreshold ?? 1024;
    const isPixel = el.tag === 0x7fe00010 || el.fragments !== undefined;
    if ((isPixel || el.length > threshold) && options.bulkDataUri) {
      const uri = options.bulkDataUri(path, el);
      if (uri !== undefined) return { vr, BulkDataURI: uri };
    }
    if (el.fragments) return { vr };
    if (el.length === 0) return { vr };
    // DICOM JSON's binary values are in little endian order (PS3.18 F.2.7): a big endian file's words are swapped.
    return { vr, InlineBinary: valueRange(ds, el, 0, el.length).toString('base64') };
  }
  if (el.length === 0) return { vr };
  if (isNumericVr(vr)) return { vr, Value: vr === 'FL' ? ds.elementNumbers(el).map(shortestFloat32) : ds.elementNumbers(el) };
  if (vr === 'AT') return { vr, Value: ds.elementTags(el).map(formatTagJson) };
  // A value sent as UN keeps its padding in the dataset (see `Element.fromUN`); DICOM JSON has none.
  const strings = el.fromUN
    ? ds.elementStrings(el).map((s) => trimValue(s, vr, SINGLE_TEXT_VRS.has(vr)))
    : ds.elementStrings(el);
  if (vr === 'PN') return { vr, Value: strings.map(pnToJson) };
  if (vr === 'DS' || vr === 'IS') return { vr, Value: strings.map((s) => numberOrString(s, vr === 'IS')) };
  const values = strings.map((s) => (s === '' ? null : s));
  if (values.every((v) => v === null) && values.length === 1) return { vr };
  return { vr, Value: values };
}

/** A key JavaScript orders before all others, numerically, whatever the insertion order (an array index). */
function isArrayIndexKey(key: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(key) && Number(key) < 4294967295;
}

/**
 * Keys such as `30040002` or `20100010` (all digits, no leading zero) are array indexes to JavaScript, which lists
 * them first whatever the insertion order, so a plain object cannot keep tag order (PS3.18 F.2: sorted by tag).
 * Such datasets are wrapped in a Proxy that lists its keys sorted, which `JSON.stringify`, `Object.keys` and
 * `for...in` follow (a structured clone of it is not possible).
 */
function inTagOrder(out: DicomJsonDataset): DicomJsonDataset {
  if (!Object.keys(out).some(isArrayIndexKey)) return out;
  return new Proxy(out, {
    ownKeys: (target) => Reflect.ownKeys(target).sort((a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0)),
  });
}

/** The DICOM JSON model of a dataset (keys are `GGGGEEEE`, in tag order). */
export function datasetToDicomJson(ds: DataSet, options: DicomJsonOptions = {}, basePath: number[] = []): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  const tags = [...ds.elements.keys()].sort((a, b) => a - b);
  for (const tag of tags) {
    if (options.omit?.(tag)) continue;
    const el = ds.elements.get(tag)!;
    out[formatTagJson(tag)] = attributeToJson(ds, el, [...basePath, tag], options);
  }
  return inTagOrder(out);
}

// ------------------------------------------------------------------ Orthanc formats

const DATA_SET_TRAILING_PADDING = 0xfffcfffc;

export type OrthancTagsFormat = 'full' | 'simplify' | 'short';

/** Orthanc's ORTHANC_MAXIMUM_TAG_LENGTH: longer values are reported as `TooLong` (null). */
export const ORTHANC_MAXIMUM_TAG_LENGTH = 256;

type LeafValue = { type: 'String'; value: string } | { type: 'Null' } | { type: 'TooLong' };

/** The exact decimal digits of a finite, non-zero |x| and the power of ten of the first one (x = 0.d1d2... x 10^(e+1)). */
function exactDigits(x: number): { digits: string; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const high = view.getUint32(0);
  const biased = (high >>> 20) & 0x7ff;
  let mantissa = (BigInt(high & 0xfffff) << 32n) | BigInt(view.getUint32(4));
  let exp2 = -1074;
  if (biased !== 0) {
    mantissa |= 1n << 52n;
    exp2 = biased - 1075;
  }
  // |x| = mantissa * 2^exp2 = mantissa * 5^-exp2 / 10^-exp2 when exp2 < 0: exact in decimal.
  const digits = exp2 >= 0 ? (mantissa << BigInt(exp2)).toString() : (mantissa * 5n ** BigInt(-exp2)).toString();
  const decimals = Math.max(0, -exp2);
  return { digits, exponent: digits.length - 1 - decimals };
}

/**
 * A binary floating-point number as C's `%.17g` writes it, which is how Orthanc (through DCMTK) prints FL and FD
 * values: 17 significant digits rounded half to even from the exact value, trailing zeros removed, exponent form
 * below 1e-4 and from 1e17 on.
 */
export function formatFloat17(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const PRECISION = 17;
  let { digits, exponent } = exactDigits(x);
  digits = trimEndChar(digits, '0') || '0';
  if (digits.length > PRECISION) {
    const rest = digits.slice(PRECISION);
    let head = BigInt(digits.slice(0, PRECISION));
    // Round half to even: exactly half way only when the dropped digits are 5 then zeros.
    const up = rest[0]! > '5' || (rest[0] === '5' && (!/^50*$/.test(rest) || head % 2n === 1n));
    if (up) head += 1n;
    digits = head.toString();
    if (digits.length > PRECISION) {
      digits = digits.slice(0, PRECISION);
      exponent += 1;
    }
    digits = trimEndChar(digits, '0') || '0';
  }
  const sign = x < 0 ? '-' : '';
  if (exponent < -4 || exponent >= PRECISION) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const integer = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
  const fraction = digits.slice(exponent + 1);
  return fraction ? `${sign}${integer}.${fraction}` : `${sign}${integer}`;
}

/**
 * The text Orthanc shows for a string element: the whole value (backslashes included) up to its first NUL,
 * decoded, with trailing spaces removed and leading spaces kept (DCMTK's padding rules). A value that was sent as
 * UN (CP-246) keeps its padding.
 */
function orthancText(ds: DataSet, el: Element): string {
  if (el.fromUN) return ds.elementText(el);
  let bytes = ds.valueBytes(el);
  const nul = bytes.indexOf(0);
  if (nul >= 0) bytes = bytes.subarray(0, nul);
  return trimEndChar(ds.charset.decode(bytes, el.vr), ' ');
}

/**
 * Orthanc's text form of a leaf element: strings as stored (see `orthancText`), binary numbers joined by
 * backslashes (FL/FD as `%.17g`), AT as `gggg,eeee`; binary values, SV/UV, empty binary numbers and public tags
 * sent as UN whose dictionary VR is not a string -> Null; text longer than `maxStringLength` UTF-8 bytes ->
 * TooLong.
 */
export function orthancLeafValue(ds: DataSet, el: Element, maxStringLength = ORTHANC_MAXIMUM_TAG_LENGTH): LeafValue {
  let text: string;
  if (BINARY_VRS.has(el.vr) || el.fragments || el.undefinedLength) return { type: 'Null' };
  if (el.fromUN && !STRING_VRS.has(el.vr)) return { type: 'Null' };
  if (el.vr === 'SV' || el.vr === 'UV') return { type: 'Null' };
  if (el.vr === 'AT' || isNumericVr(el.vr)) {
    if (el.length === 0) return { type: 'Null' };
    if (el.vr === 'AT') text = ds.elementTags(el).map(formatTagOrthanc).join('\\');
    else if (el.vr === 'FL' || el.vr === 'FD') text = ds.elementNumbers(el).map(formatFloat17).join('\\');
    else text = ds.elementNumbers(el).join('\\');
  } else if (el.length === 0) {
    text = '';
  } else {
    text = orthancText(ds, el);
  }
  if (maxStringLength > 0 && Buffer.byteLength(text, 'utf8') > maxStringLength) return { type: 'TooLong' };
  return { type: 'String', value: text };
}

/**
 * The private creator of a private tag, when the dataset declares it. Like Orthanc (DCMTK), a creator that was
 * sent as UN is not used.
 */
function privateCreator(ds: DataSet, tag: Tag): string | undefined {
  const element = tag & 0xffff;
  if (element < 0x1000) return undefined;
  const creatorTag = ((tag & 0xffff0000) | (element >>> 8)) >>> 0;
  const creator = ds.get(creatorTag);
  return creator && !creator.fromUN ? ds.string(creatorTag) : undefined;
}

function tagName(tag: Tag): string {
  const keyword = keywordOf(tag);
  if (keyword) return keyword;
  const element = tag & 0xffff;
  if (isPrivateTag(tag) && element === 0) return 'PrivateGroupLength';
  if (isPrivateTag(tag) && element >= 0x0010 && element <= 0x00ff) return 'PrivateCreator';
  return 'Unknown Tag & Data';
}

export interface OrthancJsonOptions {
  maxStringLength?: number;
  /** Stop before the pixel data's siblings after it (Orthanc includes PixelData itself as Null). */
  omit?: (tag: Tag) => boolean;
}

/** Orthanc's `/tags` JSON of a dataset in one of its three formats. Group 0002 is not part of the dataset. */
export function datasetToOrthancJson(
  ds: DataSet,
  format: OrthancTagsFormat,
  options: OrthancJsonOptions = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const maxLength = options.maxStringLength ?? ORTHANC_MAXIMUM_TAG_LENGTH;
  const tags = [...ds.elements.keys()].sort((a, b) => a - b);
  for (const tag of tags) {
    // Orthanc shows neither the meta header nor the Data Set Trailing Padding (FFFC,FFFC).
    if (tag >>> 16 === 0x0002 || tag === DATA_SET_TRAILING_PADDING || options.omit?.(tag)) continue;
    const el = ds.elements.get(tag)!;
    const key = format === 'simplify' ? (keywordOf(tag) ?? formatTagOrthanc(tag)) : formatTagOrthanc(tag);
    if (el.items || el.vr === 'SQ') {
      const items = (el.items ?? []).map((item) => datasetToOrthancJson(item, format, { maxStringLength: maxLength }));
      out[key] = format === 'full' ? { Name: tagName(tag), Type: 'Sequence', Value: items } : items;
      continue;
    }
    const leaf = orthancLeafValue(ds, el, maxLength);
    const value = leaf.type === 'String' ? leaf.value : null;
    if (format === 'full') {
      const node: Record<string, unknown> = { Name: tagName(tag) };
      const creator = isPrivateTag(tag) ? privateCreator(ds, tag) : undefined;
      if (creator !== undefined) node.PrivateCreator = creator;
      node.Type = leaf.type;
      node.Value = value;
      out[key] = node;
    } else {
      out[key] = value;
    }
  }
  return out;
}
