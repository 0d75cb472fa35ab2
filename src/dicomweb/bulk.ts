/**
 * WADO-RS bulk data (PS3.18 §10.4.1.1.5): the value of one element of an instance, named by the tag path of its
 * BulkDataURI (`.../bulk/7fe00010`, `.../bulk/00540016/1/00181072`), with HTTP Range requests (RFC 9110 §14:
 * one range, 206 with Content-Range, 416 when it cannot be satisfied). Orthanc has no Range support; pacsnode
 * has.
 */
import { PacsError } from '../core/errors.js';
import type { DataSet, Element } from '../dicom/dataset.js';
import { valueRange } from '../dicom/frames.js';
import type { ParsedDicom } from '../dicom/reader.js';
import { Tags } from '../dicom/tag.js';
import { transferSyntax } from '../dicom/transfer-syntax.js';
import { DICOM_ATTACHMENT, MetadataType } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';
import { parseAccept } from './multipart.js';
import { formatBulkTagPath } from './uris.js';
import type { InstanceToSend } from './wado.js';

/** The element a tag path names (`[tag, item, tag, ...]`, items from 0); 404 when it is not there. */
export function locateElement(dataset: DataSet, path: readonly number[]): { ds: DataSet; el: Element } {
  let ds = dataset;
  for (let i = 0; i < path.length; i += 2) {
    const el = ds.get(path[i]!);
    const missing = () => new PacsError('UnknownResource', `no bulk data at ${formatBulkTagPath(path.slice(0, i + 1))}`);
    if (!el) throw missing();
    if (i + 1 >= path.length) return { ds, el };
    const item = el.items?.[path[i + 1]!];
    if (!item) throw new PacsError('UnknownResource', `no item ${path[i + 1]! + 1} in ${formatBulkTagPath(path.slice(0, i + 1))}`);
    ds = item;
  }
  throw new PacsError('BadRequest', 'empty bulk data tag path');
}

/** The bytes of a bulk data value, as chunks (views where the byte order allows). */
export interface BulkValue {
  chunks: Buffer[];
  length: number;
}

/**
 * The value of the element: its bytes in little endian order (as the DICOM JSON model's InlineBinary would be);
 * for encapsulated pixel data, the fragments one after the other (the compressed frames without item headers).
 * A sequence has no bulk value (400).
 */
export function bulkValue(parsed: ParsedDicom, path: readonly number[]): BulkValue {
  const { ds, el } = locateElement(parsed.dataset, path);
  if (el.items !== undefined || el.vr === 'SQ') {
    throw new PacsError('BadRequest', `${formatBulkTagPath(path)} is a sequence, not bulk data`);
  }
  const chunks = el.fragments
    ? el.fragments.map((f) => ds.bytes.subarray(f.offset, f.offset + f.length))
    : [valueRange(ds, el, 0, el.length)];
  return { chunks, length: chunks.reduce((n, c) => n + c.length, 0) };
}

/** A byte range `[start, end)` of a value. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The one range of a `Range: bytes=...` header for a value of `length` bytes (RFC 9110 §14.1.2): undefined when
 * there is no header, when it is not a bytes range, or when it asks for several ranges (the whole value is then
 * sent, as RFC 9110 allows); 416 (`BadRange`) when the range starts past the end.
 */
export function parseRange(header: string | undefined, length: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    // RFC 9110 §14.1.1: a suffix range of an empty representation is unsatisfiable.
    if (suffix === 0 || length === 0) throw unsatisfiable(length);
    return { start: Math.max(0, length - suffix), end: length };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? length - 1 : Number(m[2]);
  if (m[2] !== '' && last < start) return undefined;
  if (start >= length) throw unsatisfiable(length);
  return { start, end: Math.min(length, last + 1) };
}

function unsatisfiable(length: number): PacsError {
  return new PacsError('BadRange', `the range starts past the end of the ${length}-byte value`);
}

/** Bytes `[start, end)` of a list of chunks, as views. */
export function sliceChunks(chunks: readonly Buffer[], range: ByteRange): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const c of chunks) {
    const from = Math.max(range.start, at);
    const to = Math.min(range.end, at + c.length);
    if (to > from) out.push(c.subarray(from - at, to - at));
    at += c.length;
    if (at >= range.end) break;
  }
  return out;
}

/**
 * How bulk data is sent, from the Accept header: as the body itself (`application/octet-stream`, `*\/*`, absent)
 * or as one part of `multipart/related; type="application/octet-stream"` (PS3.18's default when the client
 * asks for multipart). 406 for anything else.
 */
export function bulkAnswerKind(accept: string | string[] | undefined): 'single' | 'multipart' {
  for (const range of parseAccept(accept)) {
    if (range.type === '*/*' || range.type === 'application/*' || range.type === 'application/octet-stream') return 'single';
    if (range.type === 'multipart/related' || range.type === 'multipart/*') {
      const type = range.params.get('type')?.toLowerCase();
      if (type === undefined || type === 'application/octet-stream' || type === '*/*' || type === 'application/*') return 'multipart';
    }
  }
  throw new PacsError(
    'NotAcceptable',
    'bulk data is sent as application/octet-stream, alone or in multipart/related; type="application/octet-stream"',
  );
}

/** A bulk data value ready to send: its length, and its bytes (or a range of them) chunk by chunk. */
export interface BulkSource {
  length: number;
  read(range?: ByteRange): AsyncIterable<Buffer> | Buffer[];
}

/** VRs whose explicit header has 2 reserved bytes and a 4-byte length (PS3.5 Table 7.1-1). */
const LONG_BINARY_VRS: ReadonlySet<string> = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN']);

/**
 * The native pixel data of a file stored uncompressed in a little endian syntax, read straight from the storage
 * area (only the asked range, streamed): its element header is at the PixelDataOffset metadata. Undefined when that
 * does not apply (encapsulated, big endian, deflated, compressed storage, undefined length).
 */
async function storedPixelData(store: DicomStore, instance: InstanceToSend): Promise<BulkSource | undefined> {
  const ts = transferSyntax(instance.transferSyntaxUid);
  if (ts.encapsulated || ts.deflated || !ts.littleEndian) return undefined;
  const att = store.index.attachment(instance.row.id, DICOM_ATTACHMENT);
  const offset = Number(store.index.getMetadata(instance.row.id, MetadataType.PixelDataOffset)?.value ?? NaN);
  if (!att || att.compression !== 1 || !Number.isSafeInteger(offset) || offset <= 0) return undefined;
  const headerLength = ts.explicitVr ? 12 : 8;
  const header = await store.storage.readRange(att.uuid, offset, offset + headerLength);
  if (header.length < headerLength || header.readUInt16LE(0) !== 0x7fe0 || header.readUInt16LE(2) !== 0x0010) return undefined;
  if (ts.explicitVr && !LONG_BINARY_VRS.has(header.toString('latin1', 4, 6))) return undefined;
  const length = header.readUInt32LE(headerLength - 4);
  const start = offset + headerLength;
  if (length === 0 || length === 0xffffffff || start + length > att.uncompressedSize) return undefined;
  return {
    length,
    read: (range) => store.storage.createReadStream(att.uuid, { start: start + (range?.start ?? 0), end: start + (range?.end ?? length) }),
  };
}

/**
 * The value a bulk data URI names: native pixel data streamed from the stored file when it can be (a range reads
 * only that range), any other value from the parsed instance.
 */
export async function bulkSource(store: DicomStore, instance: InstanceToSend, path: readonly number[]): Promise<BulkSource> {
  if (path.length === 1 && path[0] === Tags.PixelData) {
    const stored = await storedPixelData(store, instance);
    if (stored) return stored;
  }
  const value = bulkValue(await store.parseInstance(instance.row.publicId), path);
  return { length: value.length, read: (range) => (range ? sliceChunks(value.chunks, range) : value.chunks) };
}
