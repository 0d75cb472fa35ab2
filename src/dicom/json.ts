/**
 * JSON views of a dataset:
 * - the DICOM JSON model (PS3.18 Annex F), shared by DICOMweb and anything that answers DICOM JSON, with
 *   BulkDataURI for large binary values;
 * - Orthanc's three formats of `/instances/{id}/tags`: full (`{"0010,0010": {Name, Type, Value}}`),
 *   `simplify` (`{"PatientName": "..."}`) and `short` (`{"0010,0010": "..."}`).
 */
import type { DataSet, Element } from './dataset.js';
import { BINARY_VRS, isNumericVr } from './dataset.js';
import { keywordOf } from './dictionary.js';
import { formatTagJson, formatTagOrthanc, isPrivateTag, type Tag } from './tag.js';

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
    return { vr, InlineBinary: ds.valueBytes(el).toString('base64') };
  }
  if (el.length === 0) return { vr };
  if (isNumericVr(vr)) return { vr, Value: ds.elementNumbers(el) };
  if (vr === 'AT') return { vr, Value: ds.elementTags(el).map(formatTagJson) };
  if (vr === 'PN') return { vr, Value: ds.elementStrings(el).map(pnToJson) };
  if (vr === 'DS' || vr === 'IS') return { vr, Value: ds.elementStrings(el).map((s) => numberOrString(s, vr === 'IS')) };
  const values = ds.elementStrings(el).map((s) => (s === '' ? null : s));
  if (values.every((v) => v === null) && values.length === 1) return { vr };
  return { vr, Value: values };
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
  return out;
}

// ------------------------------------------------------------------ Orthanc formats

export type OrthancTagsFormat = 'full' | 'simplify' | 'short';

/** Orthanc's ORTHANC_MAXIMUM_TAG_LENGTH: longer values are reported as `TooLong` (null). */
export const ORTHANC_MAXIMUM_TAG_LENGTH = 256;

type LeafValue = { type: 'String'; value: string } | { type: 'Null' } | { type: 'TooLong' };

/** Orthanc's text form of a leaf element (numbers and strings joined by backslashes; binary -> Null). */
export function orthancLeafValue(ds: DataSet, el: Element, maxStringLength = ORTHANC_MAXIMUM_TAG_LENGTH): LeafValue {
  let text: string;
  if (BINARY_VRS.has(el.vr) || el.fragments || el.undefinedLength) return { type: 'Null' };
  if (el.length === 0) text = '';
  else if (el.vr === 'AT') text = ds.elementTags(el).map(formatTagOrthanc).join('\\');
  else if (isNumericVr(el.vr)) text = ds.elementNumbers(el).join('\\');
  else text = ds.elementStrings(el).join('\\');
  if (maxStringLength > 0 && Buffer.byteLength(text, 'utf8') > maxStringLength) return { type: 'TooLong' };
  return { type: 'String', value: text };
}

/** The private creator of a private tag, when the dataset declares it. */
function privateCreator(ds: DataSet, tag: Tag): string | undefined {
  const element = tag & 0xffff;
  if (element < 0x1000) return undefined;
  const creatorTag = ((tag & 0xffff0000) | (element >>> 8)) >>> 0;
  return ds.has(creatorTag) ? ds.string(creatorTag) : undefined;
}

function tagName(tag: Tag): string {
  const keyword = keywordOf(tag);
  if (keyword) return keyword;
  const element = tag & 0xffff;
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
    if (tag >>> 16 === 0x0002 || options.omit?.(tag)) continue;
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
