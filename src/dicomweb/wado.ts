/**
 * WADO-RS retrieval (PS3.18 §10.4): studies, series and instances as `multipart/related; type="application/dicom"`
 * streamed part by part from the storage area, with transfer syntax negotiation between the uncompressed syntaxes
 * (PS3.18 §8.7.3.5); and frames (§10.4.1.1.4) as `multipart/related` parts in the stored syntax.
 *
 * What can be converted: any native (uncompressed) syntax to Implicit VR Little Endian, Explicit VR Little Endian,
 * Explicit VR Big Endian or Deflated Explicit VR Little Endian. Compressing or decompressing pixel data is not
 * available: such a request answers 406 with a message saying so (unless the Accept header also offers a syntax
 * that can be served).
 */
import { deflateRawSync } from 'node:zlib';
import { PacsError } from '../core/errors.js';
import type { DataSet, Element } from '../dicom/dataset.js';
import { rawFrame, swapUnit, valueRange } from '../dicom/frames.js';
import type { ParsedDicom } from '../dicom/reader.js';
import { Tags } from '../dicom/tag.js';
import {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
  transferSyntax,
  type TransferSyntax,
} from '../dicom/transfer-syntax.js';
import { encodeDataset, type WriteElement } from '../dicom/writer.js';
import { Level } from '../store/levels.js';
import { MetadataType, type ResourceRow } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';
import { findResource } from './metadata.js';
import { closeDelimiter, parseAccept, partHead, type AcceptedType } from './multipart.js';

// ---------------------------------------------------------------------------------------------- resources

/** The UIDs of a WADO-RS URL: a study, a series of it, or an instance of that series. */
export interface WadoTarget {
  study: string;
  series?: string;
  instance?: string;
}

/** An instance to send: its index row and its stored transfer syntax. */
export interface InstanceToSend {
  row: ResourceRow;
  transferSyntaxUid: string;
  /** Size of the DICOM file (uncompressed), 0 when unknown. */
  size: number;
}

/**
 * The instances a WADO-RS URL names, in the order they were received (series by series), with their stored
 * transfer syntax; 404 when the study, series or instance is unknown.
 */
export function findInstances(store: DicomStore, target: WadoTarget): InstanceToSend[] {
  const resource = findResource(store, target.study, target.series, target.instance);
  const index = store.index;
  const rows = index.descendants(resource.id, resource.level, Level.Instance);
  const syntaxes = index.metadataOf(
    rows.map((r) => r.id),
    MetadataType.TransferSyntax,
  );
  const files = index.dicomAttachmentsOf(rows.map((r) => r.id));
  // An instance without the TransferSyntax metadata (none should lack it) is taken as Explicit VR Little Endian.
  return rows.map((row) => ({
    row,
    transferSyntaxUid: syntaxes.get(row.id) ?? ExplicitVRLittleEndian,
    size: files.get(row.id)?.uncompressedSize ?? 0,
  }));
}

// ---------------------------------------------------------------------------------------------- negotiation

/** The native syntaxes an instance can be converted to. */
const CONVERTIBLE_TARGETS: ReadonlySet<string> = new Set([
  ImplicitVRLittleEndian,
  ExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  DeflatedExplicitVRLittleEndian,
]);

/** A transfer syntax an Accept range asks for: a UID, or '*' (as stored). */
type Wanted = string;

/**
 * The syntaxes an Accept header asks for when retrieving instances (best first): `transfer-syntax=*` or no
 * parameter means "as stored" (pacsnode, as the issue asks: PS3.18's default would be Explicit VR Little Endian).
 * Ranges that are not `application/dicom` (alone or as the type of `multipart/related`) are ignored; 406 when
 * none is.
 */
export function wantedInstanceSyntaxes(accept: string | string[] | undefined): Wanted[] {
  const out: Wanted[] = [];
  for (const range of parseAccept(accept)) {
    const type = partTypeOf(range);
    if (type === undefined || type === '*/*' || type === 'application/dicom' || type === 'application/*') {
      out.push(range.params.get('transfer-syntax') ?? '*');
    }
  }
  if (out.length === 0) {
    throw new PacsError(
      'NotAcceptable',
      'studies, series and instances are retrieved as multipart/related; type="application/dicom" (bulk data and rendered media types are not available here)',
    );
  }
  return out;
}

/**
 * The part type an Accept range asks for: `type` of a `multipart/related` range (undefined without one), the range
 * itself for a single-part media type, `*\/*` for `*\/*` and `multipart/*`.
 */
function partTypeOf(range: AcceptedType): string | undefined {
  if (range.type === '*/*' || range.type === 'multipart/*') return '*/*';
  if (range.type === 'multipart/related') return range.params.get('type')?.toLowerCase();
  return range.type;
}

/** How one instance is sent: as stored, or converted to `target`. */
export interface SendPlan {
  target: string;
  convert: boolean;
}

/** Native pixel data: Encapsulated Uncompressed Explicit VR Little Endian has fragments, so it is not. */
function convertibleFrom(uid: string): boolean {
  return !transferSyntax(uid).encapsulated && uid !== '1.2.840.10008.1.2.1.98';
}

/** The first wanted syntax an instance stored in `stored` can be sent in; undefined when none. */
export function planFor(stored: string, wanted: readonly Wanted[]): SendPlan | undefined {
  for (const w of wanted) {
    if (w === '*' || w === stored) return { target: stored, convert: false };
    if (convertibleFrom(stored) && CONVERTIBLE_TARGETS.has(w)) return { target: w, convert: true };
  }
  return undefined;
}

/** A plan for every instance, or 406 naming the first instance that cannot be served. */
export function planAll(instances: readonly InstanceToSend[], wanted: readonly Wanted[]): SendPlan[] {
  return instances.map((i) => {
    const plan = planFor(i.transferSyntaxUid, wanted);
    if (plan) return plan;
    const ts = transferSyntax(i.transferSyntaxUid);
    throw new PacsError(
      'NotAcceptable',
      `an instance is stored in ${ts.name} (${ts.uid}) and converting it to ${wanted.join(', ')} is not available: ` +
        (!convertibleFrom(ts.uid)
          ? 'pacsnode cannot compress or decompress pixel data yet; ask for transfer-syntax=* to get it as stored'
          : `uncompressed instances can be sent in ${[...CONVERTIBLE_TARGETS].join(', ')} or as stored (transfer-syntax=*)`),
    );
  });
}

// ---------------------------------------------------------------------------------------------- streaming

/** Files up to this size are read in one call; larger ones stream from the storage area. */
const WHOLE_FILE_READ = 8 << 20;
/** Reads started ahead of the part being sent: at most this many bytes (so a study is never held whole). */
const READ_AHEAD_BYTES = 16 << 20;

/**
 * The multipart body of a WADO-RS retrieval, part by part. A file up to 8 MB is read in one call, and the next
 * files are read while it is sent (up to 16 MB ahead); a larger file streams from the storage area; a converted
 * instance is read whole, converted, then sent.
 */
export async function* dicomParts(
  store: DicomStore,
  instances: readonly InstanceToSend[],
  plans: readonly SendPlan[],
  boundary: string,
): AsyncGenerator<Buffer, void, undefined> {
  const isWhole = (i: number) => !plans[i]!.convert && instances[i]!.size > 0 && instances[i]!.size <= WHOLE_FILE_READ;
  const reads = new Map<number, Promise<Buffer>>();
  let next = 0;
  let ahead = 0;
  /** Starts the reads of the files from `i` on, up to the read-ahead budget and the next file not read whole. */
  const readAhead = (i: number) => {
    if (next < i) next = i;
    while (next < instances.length) {
      if (!isWhole(next)) {
        if (next > i) break;
        next++;
        continue;
      }
      if (reads.size > 0 && ahead + instances[next]!.size > READ_AHEAD_BYTES) break;
      const read = store.readDicom(instances[next]!.row.publicId);
      read.catch(() => undefined); // awaited below; not an unhandled rejection if the client leaves first
      reads.set(next, read);
      ahead += instances[next]!.size;
      next++;
    }
  };
  for (let i = 0; i < instances.length; i++) {
    const { row, size } = instances[i]!;
    const plan = plans[i]!;
    const type = `application/dicom; transfer-syntax=${plan.target}`;
    readAhead(i);
    const whole = reads.get(i);
    if (plan.convert) {
      const parsed = await store.parseInstance(row.publicId);
      const chunks = convertPart10(parsed, plan.target);
      const length = chunks.reduce((n, c) => n + c.length, 0);
      yield partHead(boundary, { 'Content-Type': type, 'Content-Length': length }, i === 0);
      yield* chunks;
    } else if (whole) {
      const bytes = await whole;
      reads.delete(i);
      ahead -= size;
      yield partHead(boundary, { 'Content-Type': type, 'Content-Length': bytes.length }, i === 0);
      yield bytes;
    } else {
      const { stream, size: length } = await store.openDicom(row.publicId);
      yield partHead(boundary, { 'Content-Type': type, 'Content-Length': length }, i === 0);
      if (Buffer.isBuffer(stream)) yield stream;
      else for await (const chunk of stream) yield chunk as Buffer;
    }
  }
  yield closeDelimiter(boundary);
}

// ---------------------------------------------------------------------------------------------- conversion

const SHORT_LENGTH_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI',
  'UL', 'US',
]);

/** A valid explicit VR for the element: its own, or UN when it is not a VR or its value is too long for it. */
function explicitVrOf(el: Element): string {
  if (!/^[A-Z]{2}$/.test(el.vr)) return 'UN';
  if (SHORT_LENGTH_VRS.has(el.vr) && el.length > 0xffff) return 'UN';
  return el.vr;
}

/** An element or item header (PS3.5 §7.1.2, §7.5) in the target syntax; `vr` undefined for item tags. */
function elementHeader(tag: number, vr: string | undefined, length: number, ts: TransferSyntax): Buffer {
  const le = ts.littleEndian;
  const write16 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const write32 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt32LE(v >>> 0, o) : b.writeUInt32BE(v >>> 0, o));
  const explicit = vr !== undefined && ts.explicitVr;
  const long = explicit && !SHORT_LENGTH_VRS.has(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  write16(h, tag >>> 16, 0);
  write16(h, tag & 0xffff, 2);
  if (!explicit) write32(h, length, 4);
  else {
    h.write(vr, 4, 'latin1');
    if (long) write32(h, length, 8);
    else write16(h, length, 6);
  }
  return h;
}

const UNDEFINED_LENGTH = 0xffffffff;

/** A value's bytes in the target byte order (views when no swap is needed). */
function valueIn(ds: DataSet, el: Element, ts: TransferSyntax): Buffer {
  const le = valueRange(ds, el, 0, el.length);
  const unit = swapUnit(el.vr);
  if (ts.littleEndian || unit === 1) return le;
  const copy = Buffer.from(le);
  const whole = copy.subarray(0, copy.length - (copy.length % unit));
  if (unit === 2) whole.swap16();
  else if (unit === 4) whole.swap32();
  else whole.swap64();
  return copy;
}

/**
 * Re-encodes a native dataset in another native syntax (PS3.5 §7): the same elements in the same order, values
 * kept byte for byte (swapped for a change of byte order), sequences and items with undefined lengths.
 */
function encodeNativeDataset(ds: DataSet, ts: TransferSyntax, out: Buffer[]): void {
  for (const el of ds.elements.values()) {
    if (el.tag >>> 16 === 0x0002) continue;
    if (el.fragments) throw new PacsError('NotImplemented', 'encapsulated pixel data cannot be converted to a native syntax');
    if (el.items !== undefined || el.vr === 'SQ') {
      out.push(elementHeader(el.tag, 'SQ', UNDEFINED_LENGTH, ts));
      for (const item of el.items ?? []) {
        out.push(elementHeader(Tags.Item, undefined, UNDEFINED_LENGTH, ts));
        encodeNativeDataset(item, ts, out);
        out.push(elementHeader(Tags.ItemDelimitationItem, undefined, 0, ts));
      }
      out.push(elementHeader(Tags.SequenceDelimitationItem, undefined, 0, ts));
      continue;
    }
    const value = valueIn(ds, el, ts);
    out.push(elementHeader(el.tag, ts.explicitVr ? explicitVrOf(el) : undefined, value.length, ts), value);
  }
}

/** The File Meta Information of the converted file: the original's elements with the new Transfer Syntax UID. */
function convertedMetaHeader(parsed: ParsedDicom, targetUid: string): Buffer {
  const elements: WriteElement[] = [];
  for (const el of parsed.meta.elements.values()) {
    if (el.tag === Tags.FileMetaInformationGroupLength || el.tag === Tags.TransferSyntaxUID) continue;
    elements.push({ tag: el.tag, vr: explicitVrOf(el), value: Buffer.from(parsed.meta.valueBytes(el)) });
  }
  if (!parsed.meta.has(Tags.MediaStorageSOPClassUID) && parsed.dataset.has(Tags.SOPClassUID)) {
    elements.push({ tag: Tags.MediaStorageSOPClassUID, vr: 'UI', value: parsed.dataset.string(Tags.SOPClassUID) ?? '' });
  }
  if (!parsed.meta.has(Tags.MediaStorageSOPInstanceUID) && parsed.dataset.has(Tags.SOPInstanceUID)) {
    elements.push({ tag: Tags.MediaStorageSOPInstanceUID, vr: 'UI', value: parsed.dataset.string(Tags.SOPInstanceUID) ?? '' });
  }
  elements.push({ tag: Tags.TransferSyntaxUID, vr: 'UI', value: targetUid });
  const explicitLe = { explicitVr: true, littleEndian: true };
  const group = encodeDataset(elements, explicitLe);
  const groupLength = encodeDataset([{ tag: Tags.FileMetaInformationGroupLength, vr: 'UL', value: [group.length] }], explicitLe);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, groupLength, group]);
}

/**
 * A stored instance of a native syntax as a Part 10 file in another native syntax, as chunks to send in order
 * (most are views into the parsed bytes).
 */
export function convertPart10(parsed: ParsedDicom, targetUid: string): Buffer[] {
  const ts = transferSyntax(targetUid);
  if (!CONVERTIBLE_TARGETS.has(targetUid) || !convertibleFrom(parsed.transferSyntaxUid)) {
    throw new PacsError('NotImplemented', `converting ${parsed.transferSyntaxUid} to ${targetUid} is not available`);
  }
  const body: Buffer[] = [];
  encodeNativeDataset(parsed.dataset, ts, body);
  const meta = convertedMetaHeader(parsed, targetUid);
  if (ts.deflated) return [meta, deflateRawSync(Buffer.concat(body))];
  return [meta, ...body];
}

// ---------------------------------------------------------------------------------------------- frames

/** `1`, `1,3,5` (PS3.18 §10.4.1.1.4: frame numbers from 1, in the order asked, repeats allowed); 400 otherwise. */
export function parseFrameList(text: string): number[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => !/^[1-9][0-9]{0,9}$/.test(s))) {
    throw new PacsError('BadRequest', `not a list of frame numbers (from 1, separated by commas): ${JSON.stringify(text.slice(0, 80))}`);
  }
  return items.map(Number);
}

/** Media type names clients use for the same frame encoding (dicomweb-client asks for the x- forms). */
const FRAME_TYPE_ALIASES: Readonly<Record<string, string>> = {
  'image/x-dicom-rle': 'image/dicom-rle',
  'image/x-jls': 'image/jls',
  'image/jhc': 'image/jphc',
};

/** What the parts of a frames answer are: their media type and the transfer syntax they are in. */
export interface FramePlan {
  type: string;
  transferSyntaxUid: string;
}

/**
 * The part type of a frames answer for an instance stored in `storedUid` (PS3.18 §8.7.3.5.2, Table 8.7.3-3):
 * native frames are `application/octet-stream` in Explicit VR Little Endian (their bytes in little endian order);
 * encapsulated frames are sent as stored, with their own media type (`image/jpeg`, `image/jp2`,
 * `image/dicom-rle`, ...), when the Accept header allows it: `transfer-syntax=*`, the stored syntax, the frame's
 * media type (or a range covering it), or `*\/*`. Quoted and unquoted parameters are the same. 406 otherwise, saying
 * that decompression and compression are not available.
 */
export function planFrames(accept: string | string[] | undefined, storedUid: string): FramePlan {
  const stored = transferSyntax(storedUid);
  const native: FramePlan = { type: 'application/octet-stream', transferSyntaxUid: ExplicitVRLittleEndian };
  const asStored: FramePlan = stored.encapsulated
    ? { type: stored.frameMediaType ?? 'application/octet-stream', transferSyntaxUid: storedUid }
    : native;
  for (const range of parseAccept(accept)) {
    const rawType = partTypeOf(range);
    const ts = range.params.get('transfer-syntax');
    if (rawType === undefined || rawType === '*/*') return asStored;
    const type = FRAME_TYPE_ALIASES[rawType] ?? rawType;
    if (type === 'application/octet-stream') {
      if (ts === '*') return asStored;
      if (!stored.encapsulated && (ts === undefined || ts === ExplicitVRLittleEndian || ts === storedUid)) return native;
      if (stored.encapsulated && ts === storedUid) return { type, transferSyntaxUid: storedUid };
      continue;
    }
    if (!stored.encapsulated) continue;
    const mediaType = stored.frameMediaType ?? 'application/octet-stream';
    const covers = type === mediaType || (type.endsWith('/*') && mediaType.startsWith(type.slice(0, -1)));
    if (covers && (ts === undefined || ts === '*' || ts === storedUid)) return asStored;
  }
  const what = stored.encapsulated
    ? `frames are stored compressed in ${stored.name} (${storedUid}) and pacsnode cannot decompress or transcode them yet: ` +
      `ask for multipart/related; type="${asStored.type}" or transfer-syntax=*`
    : `frames are stored uncompressed; pacsnode cannot compress them: ask for multipart/related; type="application/octet-stream"`;
  throw new PacsError('NotAcceptable', what);
}

/** The bytes of each frame asked for (as chunks), in the order asked; 400 for a frame past the last one. */
export function framesOf(parsed: ParsedDicom, frames: readonly number[]): Buffer[][] {
  return frames.map((n) => rawFrame(parsed.dataset, parsed.transferSyntaxUid, n - 1));
}
