/**
 * Raw access to an instance's content, as Orthanc's `/instances/{id}/content/{path}`, `/header` and `/pdf` answer:
 * - a path interleaves tags and item indexes (`0008-1140/0/0008-1150`); tags are `gggg-eeee`, `gggg,eeee`,
 *   `ggggeeee` or a keyword;
 * - a dataset (the root, or an item) lists its tags as `gggg-eeee`, a sequence lists its item indexes as strings,
 *   any other element gives its raw value bytes (padding included; big endian values in little endian order, as
 *   DCMTK hands them to Orthanc);
 * - `7fe0-0010` at the root is special: its "blocks" are listed (encapsulated: the Basic Offset Table item then each
 *   fragment; native: one block, the whole value) and `7fe0-0010/{n}` gives block n.
 * Misses are PacsErrors with a 404 status (Orthanc sends an empty 404 there).
 */
import { PacsError } from '../core/errors.js';
import type { DataSet, Element, Fragment } from './dataset.js';
import { BINARY_VRS } from './dataset.js';
import { keywordOf, lookupTag, tagFromKeywordOrString } from './dictionary.js';
import { valueRange } from './frames.js';
import { orthancLeafValue, type OrthancTagsFormat } from './json.js';
import { formatTagOrthanc, isPrivateTag, Tags, type Tag } from './tag.js';
import { SopClasses } from './uids.js';

export type ContentAnswer =
  | { kind: 'list'; value: string[] }
  | { kind: 'bytes'; chunks: Buffer[]; length: number };

const HEX_TAG_RE = /^([0-9a-fA-F]{4})[-,]?([0-9a-fA-F]{4})$/;
const INDEX_RE = /^\d+$/;

/** A tag in a content path; an unknown keyword is Orthanc's UnknownDicomTag. */
export function parseContentTag(text: string): Tag {
  const hex = HEX_TAG_RE.exec(text);
  if (hex) return ((parseInt(hex[1]!, 16) << 16) | parseInt(hex[2]!, 16)) >>> 0;
  const tag = tagFromKeywordOrString(text);
  if (tag === undefined) throw new PacsError('UnknownDicomTag', text);
  return tag;
}

/** `gggg-eeee`, the form Orthanc lists tags in under `/content`. */
export function formatContentTag(tag: Tag): string {
  return formatTagOrthanc(tag).replace(',', '-');
}

function parseIndex(text: string): number | undefined {
  if (!INDEX_RE.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function bytesAnswer(chunks: Buffer[]): ContentAnswer {
  return { kind: 'bytes', chunks, length: chunks.reduce((n, c) => n + c.length, 0) };
}

function listTags(ds: DataSet): ContentAnswer {
  const tags = [...ds.elements.keys()].sort((a, b) => a - b);
  return { kind: 'list', value: tags.map(formatContentTag) };
}

function listIndexes(count: number): ContentAnswer {
  return { kind: 'list', value: Array.from({ length: count }, (_, i) => String(i)) };
}

function isSequence(el: Element): boolean {
  return el.items !== undefined || el.vr === 'SQ';
}

/** The raw value of a leaf element (a view, or a byte-swapped copy for big endian binary numbers). */
export function rawValue(ds: DataSet, el: Element): Buffer {
  return valueRange(ds, el, 0, el.length);
}

function pixelDataBlocks(ds: DataSet, block: string | undefined, where: string): ContentAnswer {
  const pixel = ds.get(Tags.PixelData);
  if (!pixel) throw new PacsError('InexistentTag', `no pixel data at ${where}`);
  if (pixel.fragments) {
    const items: Fragment[] = [pixel.offsetTable ?? { offset: pixel.offset, length: 0 }, ...pixel.fragments];
    if (block === undefined) return listIndexes(items.length);
    const n = parseIndex(block);
    const item = n === undefined ? undefined : items[n];
    if (!item) throw new PacsError('InexistentItem', `no block ${block} in the pixel data (${items.length} blocks)`);
    return bytesAnswer([ds.bytes.subarray(item.offset, item.offset + item.length)]);
  }
  if (block === undefined) return listIndexes(1);
  if (parseIndex(block) !== 0) throw new PacsError('InexistentItem', `no block ${block} in native pixel data (1 block)`);
  return bytesAnswer([rawValue(ds, pixel)]);
}

/** Resolves a content path (already split on `/`, without empty segments) against a dataset. */
export function resolveContentPath(root: DataSet, segments: readonly string[]): ContentAnswer {
  const where = segments.join('/') || '/';
  if (segments.length === 1 || segments.length === 2) {
    if (parseContentTag(segments[0]!) === Tags.PixelData) return pixelDataBlocks(root, segments[1], where);
  }
  let ds = root;
  for (let pos = 0; pos < Math.floor(segments.length / 2); pos++) {
    const index = parseIndex(segments[2 * pos + 1]!);
    if (index === undefined) throw new PacsError('InexistentItem', `"${segments[2 * pos + 1]}" is not an item index (${where})`);
    const tag = parseContentTag(segments[2 * pos]!);
    const el = ds.get(tag);
    if (!el || !isSequence(el)) throw new PacsError('InexistentTag', `no sequence ${formatContentTag(tag)} at ${where}`);
    const item = el.items?.[index];
    if (!item) throw new PacsError('InexistentItem', `no item ${index} in ${formatContentTag(tag)} (${where})`);
    ds = item;
  }
  if (segments.length % 2 === 0) return listTags(ds);
  const tag = parseContentTag(segments[segments.length - 1]!);
  const el = ds.get(tag);
  if (!el) throw new PacsError('InexistentTag', `no tag ${formatContentTag(tag)} at ${where}`);
  if (isSequence(el)) return listIndexes(el.items?.length ?? 0);
  return bytesAnswer([rawValue(ds, el)]);
}

/**
 * Orthanc's `/instances/{id}/header`: the meta header's tags in one of the `/tags` formats. As Orthanc
 * (`HeaderToJson` without flags), binary elements (FileMetaInformationVersion...), private and unknown tags are
 * left out, and no value is `TooLong`.
 */
export function metaHeaderToOrthancJson(meta: DataSet, format: OrthancTagsFormat): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const tags = [...meta.elements.keys()].sort((a, b) => a - b);
  for (const tag of tags) {
    const el = meta.elements.get(tag)!;
    const keyword = keywordOf(tag);
    if (isPrivateTag(tag) || !lookupTag(tag) || keyword === undefined) continue;
    if (BINARY_VRS.has(el.vr) || el.fragments || isSequence(el)) continue;
    const leaf = orthancLeafValue(meta, el, 0);
    const value = leaf.type === 'String' ? leaf.value : null;
    if (format === 'full') out[formatTagOrthanc(tag)] = { Name: keyword, Type: leaf.type, Value: value };
    else out[format === 'simplify' ? keyword : formatTagOrthanc(tag)] = value;
  }
  return out;
}

const MIMETypeOfEncapsulatedDocument = 0x00420012;
const EncapsulatedDocument = 0x00420011;

function leafText(ds: DataSet, tag: Tag): string | undefined {
  const el = ds.get(tag);
  if (!el || isSequence(el)) return undefined;
  const leaf = orthancLeafValue(ds, el, 0);
  return leaf.type === 'String' ? leaf.value : '';
}

/**
 * The PDF of an Encapsulated PDF instance (`/instances/{id}/pdf`), as Orthanc extracts it: SOP Class UID
 * Encapsulated PDF Storage, MIME type `application/pdf`, and the Encapsulated Document without its pad byte (the
 * last byte is dropped unless it is CR or LF, PDF's last characters). Undefined for any other instance.
 */
export function encapsulatedPdf(ds: DataSet): Buffer | undefined {
  if (leafText(ds, Tags.SOPClassUID) !== SopClasses.EncapsulatedPDFStorage) return undefined;
  if (leafText(ds, MIMETypeOfEncapsulatedDocument) !== 'application/pdf') return undefined;
  const el = ds.get(EncapsulatedDocument);
  if (!el || isSequence(el)) return undefined;
  const pdf = rawValue(ds, el);
  if (pdf.length > 0) {
    const last = pdf[pdf.length - 1];
    if (last !== 0x0a && last !== 0x0d) return pdf.subarray(0, pdf.length - 1);
  }
  return pdf;
}

/**
 * Orthanc's `/instances/{id}/tags` without `whole` (DicomToJsonFlags_StopAfterPixelData): the root dataset's tags
 * after the pixel data are not shown. Meant as `datasetToOrthancJson`'s `omit`; with `?whole` (Orthanc 1.12.4+)
 * nothing is omitted.
 */
export function afterPixelData(tag: Tag): boolean {
  return tag >>> 0 > Tags.PixelData;
}
