/**
 * Part 10 reading (PS3.10 §7): meta header, every transfer syntax (implicit/explicit VR little endian, explicit
 * big endian, deflated, encapsulated), files without a meta header, and salvage of truncated files. Parsing is
 * done by dicom-parser (zero copy, measured in STYLE.md); this module turns its output into `DataSet`s with
 * numeric tags, dictionary VRs and the Specific Character Set in force.
 */
import { inflateRawSync } from 'node:zlib';
import dicomParser from 'dicom-parser';
import { DicomFormatError } from '../core/errors.js';
import { CharsetDecoder } from './charset.js';
import { DataSet, type Element, type Fragment } from './dataset.js';
import { lookupTag } from './dictionary.js';
import { Tags, type Tag } from './tag.js';
import {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
  transferSyntax,
} from './transfer-syntax.js';
import { trimPad } from './trim.js';

/**
 * The most a deflated dataset may inflate to: 256 times its compressed size, at least 64 MiB, at most
 * `limit` (default 1 GiB). Real deflated datasets (SR, waveforms, small images) stay far below this; a crafted
 * "deflate bomb" of 1.5 MB would otherwise allocate 4 GB.
 */
export function maxInflatedSize(compressedSize: number, limit = 1 << 30): number {
  return Math.min(limit, Math.max(64 << 20, compressedSize * 256));
}

export interface ReadOptions {
  /** Upper bound for the inflated size of a deflated dataset (see `maxInflatedSize`). */
  maxInflatedSize?: number;
  /** Stop before the pixel data (indexing needs nothing after it). */
  untilPixelData?: boolean;
  /** Orthanc's DefaultEncoding, used when the dataset has no Specific Character Set. */
  defaultEncoding?: string;
  /**
   * The bytes are a prefix of a larger file: an element running past the end means "read more", not
   * "truncated". `readPart10` then throws `NeedMoreBytes` instead of salvaging.
   */
  partial?: boolean;
}

export interface ParsedDicom {
  /** The bytes element offsets refer to (for deflated syntaxes: meta header + inflated dataset). */
  bytes: Buffer;
  /** Group 0002 elements (empty when the file has no meta header). */
  meta: DataSet;
  dataset: DataSet;
  transferSyntaxUid: string;
  hasMetaHeader: boolean;
  /** Offset of the first dataset byte after the preamble and meta header. */
  datasetOffset: number;
  /** Offset of the pixel data element's header, when present (Orthanc's PixelDataOffset metadata). */
  pixelDataOffset?: number;
  /** Offset just past the pixel data value, when its length is defined (to detect truncated files). */
  pixelDataEnd?: number;
  /** The file ended inside an element; what was readable is kept. */
  truncated: boolean;
  /** The dataset is not encoded as its meta header says (explicit/implicit VR); it was read as found. */
  encodingMismatch: boolean;
  warnings: string[];
}

/** Thrown in `partial` mode when the prefix ends before the dataset does. */
export class NeedMoreBytes extends Error {
  constructor() {
    super('need more bytes');
    this.name = 'NeedMoreBytes';
  }
}

type DpElement = dicomParser.Element;
type DpDataSet = dicomParser.DataSet;

const PIXEL_DATA_KEY = 'x7fe00010';
const VR_RE = /^[A-Z]{2}$/;
const KNOWN_VRS = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN',
  'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);

function keyToTag(key: string): Tag {
  return parseInt(key.slice(1), 16) >>> 0;
}

/** dicom-parser's VR callback for implicit syntaxes: the dictionary VR, or undefined so that it peeks for items. */
function implicitVr(key: string): string | undefined {
  const entry = lookupTag(keyToTag(key));
  if (!entry || entry.vr === 'UN') return undefined;
  return entry.vr;
}

function hasDicmPrefix(bytes: Buffer): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

function cleanUid(text: string): string {
  return trimPad(text, true);
}

/** Guesses the syntax of a dataset without a meta header from its first element. */
function guessTransferSyntax(bytes: Buffer, offset: number): string {
  if (bytes.length < offset + 8) return ImplicitVRLittleEndian;
  const vr = bytes.toString('latin1', offset + 4, offset + 6);
  const groupLe = bytes.readUInt16LE(offset);
  const groupBe = bytes.readUInt16BE(offset);
  if (KNOWN_VRS.has(vr)) {
    if (groupLe > 0x00ff && groupBe <= 0x00ff) return ExplicitVRBigEndian;
    return ExplicitVRLittleEndian;
  }
  return ImplicitVRLittleEndian;
}

function isOutOfBounds(e: unknown): boolean {
  const text = typeof e === 'string' ? e : e instanceof Error ? e.message : '';
  return /past end|buffer overrun|eof encountered|maxPosition|out of range|outside|beyond/i.test(text);
}

interface ParseOutcome {
  dp: DpDataSet;
  error?: unknown;
}

/** The encoding actually found at `position`: some writers declare explicit VR and write implicit, or the reverse. */
function detectEncoding(bytes: Buffer, position: number, declared: string): string {
  if (bytes.length < position + 8) return declared;
  const syntax = transferSyntax(declared);
  if (!syntax.littleEndian) return declared;
  const looksExplicit = KNOWN_VRS.has(bytes.toString('latin1', position + 4, position + 6));
  if (syntax.explicitVr && !looksExplicit) return ImplicitVRLittleEndian;
  if (!syntax.explicitVr && looksExplicit) return ExplicitVRLittleEndian;
  return declared;
}

/** VRs added to PS3.5 after dicom-parser's table was written; like OB, they have 2 reserved bytes and a 4-byte length. */
const VRS_UNKNOWN_TO_DICOM_PARSER = new Set(['OV', 'SV', 'UV']);

/**
 * dicom-parser reads a 2-byte length for the VRs it does not know, so an OV, SV or UV element (e.g. the Extended
 * Offset Table) derails the rest of the dataset. The stream reports them as UN, whose header has the same layout;
 * `convertDataSet` restores the VR from the file. Only this stream instance is changed, and dicom-parser reads a
 * 2-character string from it only for explicit VRs.
 */
function reportLongVrsAsUn(stream: dicomParser.ByteStream): void {
  const read = stream.readFixedString.bind(stream);
  stream.readFixedString = (length: number): string => {
    const text = read(length);
    return length === 2 && VRS_UNKNOWN_TO_DICOM_PARSER.has(text) ? 'UN' : text;
  };
}

function parseDataSet(bytes: Buffer, position: number, ts: string, untilPixelData: boolean): ParseOutcome {
  const syntax = transferSyntax(ts);
  const parser = syntax.littleEndian ? dicomParser.littleEndianByteArrayParser : dicomParser.bigEndianByteArrayParser;
  const stream = new dicomParser.ByteStream(parser, bytes, position);
  if (syntax.explicitVr) reportLongVrsAsUn(stream);
  const dp = new (dicomParser as unknown as { DataSet: new (p: unknown, b: Buffer, e: object) => DpDataSet }).DataSet(
    parser,
    bytes,
    {},
  );
  dp.warnings = stream.warnings;
  const options = untilPixelData ? { untilTag: PIXEL_DATA_KEY } : {};
  try {
    if (syntax.explicitVr) {
      dicomParser.parseDicomDataSetExplicit(dp, stream, bytes.length, options as { untilTag: string });
    } else {
      dicomParser.parseDicomDataSetImplicit(dp, stream, bytes.length, {
        ...(options as { untilTag: string }),
        vrCallback: implicitVr as (tag: string) => string,
      });
    }
    return { dp };
  } catch (error) {
    return { dp, error };
  }
}

interface ConvertContext {
  bytes: Buffer;
  littleEndian: boolean;
  explicitVr: boolean;
  truncated: boolean;
  /** Parsing stopped at the pixel data header: its value is not in `bytes` and is not checked here. */
  untilPixelData?: boolean;
  /** Pixel Representation (0028,0103) of the root dataset: resolves the US-or-SS VR of implicit VR elements. */
  pixelRepresentation?: number;
}

function convertDataSet(dp: DpDataSet, ctx: ConvertContext, charset: CharsetDecoder, defaultEncoding: string): DataSet {
  const elements = new Map<Tag, Element>();
  const ds = new DataSet(ctx.bytes, ctx.littleEndian, ctx.explicitVr, elements, charset);
  for (const key of Object.keys(dp.elements)) {
    // dicom-parser keeps the Item Delimitation Item (FFFE,E00D) of an undefined-length item as one of its
    // elements: it is encoding, not data (PS3.5 §7.5.2).
    if (key.startsWith('xfffe')) continue;
    const src = dp.elements[key] as DpElement;
    const tag = keyToTag(key);
    let vr = src.vr;
    if (vr === 'UN' && ctx.explicitVr && src.dataOffset >= 8) {
      // See `reportLongVrsAsUn`: the VR written in the file is 8 bytes before the value.
      const written = ctx.bytes.toString('latin1', src.dataOffset - 8, src.dataOffset - 6);
      if (VRS_UNKNOWN_TO_DICOM_PARSER.has(written)) vr = written;
    }
    if (!vr || !ctx.explicitVr) {
      if (src.items) vr = 'SQ';
      else {
        const entry = lookupTag(tag);
        vr = entry?.vr ?? (isPrivateCreator(tag) ? 'LO' : 'UN');
        // PS3.5 Annex A.1 c: US or SS (e.g. Smallest Image Pixel Value) follows the Pixel Representation.
        if (entry?.rawVr === 'xs' && ctx.pixelRepresentation === 1) vr = 'SS';
      }
    }
    const undefinedLength = src.hadUndefinedLength === true;
    let unKnown = false;
    if (vr === 'UN' && !undefinedLength && !src.items) {
      // CP-246: a public tag sent as UN is read with its dictionary VR (as Orthanc and DCMTK do); a private
      // creator with LO, the VR PS3.5 §7.8.1 gives it.
      const known = lookupTag(tag)?.vr ?? (isPrivateCreator(tag) ? 'LO' : undefined);
      if (known && known !== 'UN' && known !== 'SQ') {
        vr = known;
        unKnown = true;
      }
    }
    let length = src.length;
    if (undefinedLength) length = 0;
    const pixelHeaderOnly = ctx.untilPixelData === true && key === PIXEL_DATA_KEY;
    if (pixelHeaderOnly) {
      length = 0;
    } else if (src.dataOffset + length > ctx.bytes.length) {
      length = Math.max(0, ctx.bytes.length - src.dataOffset);
      ctx.truncated = true;
    }
    const el: Element = { tag, vr, offset: src.dataOffset, length, undefinedLength };
    if (unKnown) el.fromUN = true;
    if (undefinedLength && !src.items && src.fragments === undefined && src.length !== 0xffffffff) {
      // dicom-parser found the delimiter: `length` is the real length of an undefined-length non-sequence value.
      el.length = Math.min(src.length, ctx.bytes.length - src.dataOffset);
    }
    if (src.items) {
      el.vr = vr === 'UN' ? 'SQ' : vr;
      el.items = src.items.map((item) =>
        item.dataSet ? convertDataSet(item.dataSet, ctx, charset, defaultEncoding) : emptyDataSet(ctx, charset),
      );
    }
    if (src.encapsulatedPixelData || src.fragments) {
      el.fragments = (src.fragments ?? []).map((f): Fragment => ({ offset: f.position, length: f.length }));
      const bot = src.basicOffsetTable;
      el.offsetTable = { offset: src.dataOffset + 8, length: bot ? bot.length * 4 : 0 };
    } else if (key === PIXEL_DATA_KEY && undefinedLength && !src.items && !pixelHeaderOnly && ctx.littleEndian) {
      // Encapsulated pixel data in an implicit VR dataset (a meta header naming a compressed syntax over a dataset
      // written implicit): dicom-parser only looks for an item delimiter there, so the fragments are read here.
      const items = readPixelItems(ctx.bytes, src.dataOffset);
      if (items && items.length > 0) {
        el.offsetTable = items[0]!;
        el.fragments = items.slice(1);
        el.length = 0;
      }
    }
    elements.set(tag, el);
  }
  // An item with its own Specific Character Set uses it for its own values (PS3.5 §6.1.2.5.2... via PS3.3 C.12.1.1.2).
  const own = elements.get(Tags.SpecificCharacterSet);
  if (own && own.length > 0) {
    const value = ctx.bytes.toString('latin1', own.offset, own.offset + own.length);
    ds.charset = CharsetDecoder.for(value, defaultEncoding);
  }
  return ds;
}

/**
 * The items of an encapsulated pixel data value starting at `offset` (PS3.5 §A.4): Basic Offset Table first, then
 * the fragments; undefined when the bytes there are not items. A truncated last item is clamped.
 */
function readPixelItems(bytes: Buffer, offset: number): Fragment[] | undefined {
  const items: Fragment[] = [];
  let position = offset;
  while (position + 8 <= bytes.length) {
    if (bytes.readUInt16LE(position) !== 0xfffe) return undefined;
    const element = bytes.readUInt16LE(position + 2);
    const length = bytes.readUInt32LE(position + 4);
    if (element === 0xe0dd) return items;
    if (element !== 0xe000 || length === 0xffffffff) return undefined;
    items.push({ offset: position + 8, length: Math.min(length, bytes.length - position - 8) });
    position += 8 + length;
  }
  return items;
}

/** The root dataset's Pixel Representation (0028,0103), an implicit VR little endian US. */
function readPixelRepresentation(bytes: Buffer, dp: DpDataSet): number | undefined {
  const el = dp.elements.x00280103;
  if (!el || el.length < 2 || el.dataOffset + 2 > bytes.length) return undefined;
  return bytes.readUInt16LE(el.dataOffset);
}

/** Native (not encapsulated, not deflated) syntaxes, where the VR encoding can be checked. */
function syntax0(ts: string): boolean {
  const s = transferSyntax(ts);
  return !s.deflated && s.littleEndian;
}

function isPrivateCreator(tag: Tag): boolean {
  const element = tag & 0xffff;
  return (tag >>> 16) % 2 === 1 && element >= 0x10 && element <= 0xff;
}

function emptyDataSet(ctx: ConvertContext, charset: CharsetDecoder): DataSet {
  return new DataSet(ctx.bytes, ctx.littleEndian, ctx.explicitVr, new Map(), charset);
}

/** Reads a Part 10 file (or a bare dataset). Throws `DicomFormatError` for bytes that are not DICOM. */
export function readPart10(input: Buffer, options: ReadOptions = {}): ParsedDicom {
  const defaultEncoding = options.defaultEncoding ?? 'Latin1';
  const untilPixelData = options.untilPixelData ?? false;
  const warnings: string[] = [];
  let bytes = input;
  let hasMetaHeader = false;
  let metaDp: DpDataSet | undefined;
  let position = 0;
  let ts: string;

  const startsWithMeta = bytes.length >= 8 && bytes.readUInt16LE(0) === 0x0002 && bytes.toString('latin1', 4, 6) === 'UL';
  // A prefix too short to show the DICM prefix cannot be judged yet.
  if (options.partial && bytes.length < 132 && !startsWithMeta) throw new NeedMoreBytes();
  if (hasDicmPrefix(bytes) || startsWithMeta) {
    hasMetaHeader = true;
    const metaStart = startsWithMeta && !hasDicmPrefix(bytes) ? 0 : 132;
    const meta = readMetaGroup(bytes, metaStart, options.partial ?? false);
    metaDp = meta.dp;
    position = meta.end;
    const tsElement = metaDp.elements.x00020010;
    if (tsElement) {
      ts = cleanUid(bytes.toString('latin1', tsElement.dataOffset, tsElement.dataOffset + tsElement.length));
    } else {
      ts = guessTransferSyntax(bytes, position);
      warnings.push('meta header without TransferSyntaxUID (0002,0010): syntax guessed from the dataset');
    }
  } else {
    ts = guessTransferSyntax(bytes, 0);
    if (!looksLikeDataset(bytes, ts)) {
      throw new DicomFormatError('not a DICOM file (no DICM prefix and no recognizable dataset)');
    }
    warnings.push('no Part 10 meta header: transfer syntax guessed');
  }

  if (position >= bytes.length) {
    // dicom-parser cannot even open a stream there.
    if (options.partial) throw new NeedMoreBytes();
    throw new DicomFormatError('no dataset after the Part 10 meta header');
  }

  if (ts === DeflatedExplicitVRLittleEndian) {
    if (options.partial) throw new NeedMoreBytes();
    const deflated = bytes.subarray(position);
    const cap = maxInflatedSize(deflated.length, options.maxInflatedSize);
    try {
      const inflated = inflateRawSync(deflated, { maxOutputLength: cap });
      bytes = Buffer.concat([bytes.subarray(0, position), inflated]);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new DicomFormatError(`deflated dataset inflates beyond ${cap} bytes: refused (a deflate bomb?)`, { cause });
      }
      throw new DicomFormatError('deflated dataset cannot be inflated', { cause });
    }
  }

  const encoding = syntax0(ts) ? detectEncoding(bytes, position, ts) : ts;
  if (encoding !== ts) warnings.push(`dataset encoded as ${transferSyntax(encoding).name} although the meta header says ${ts}`);
  const syntax = transferSyntax(encoding);
  const outcome = parseDataSet(bytes, position, encoding, untilPixelData);
  const ctx: ConvertContext = {
    bytes,
    littleEndian: syntax.littleEndian,
    explicitVr: syntax.explicitVr,
    truncated: false,
    untilPixelData,
    pixelRepresentation: syntax.explicitVr ? undefined : readPixelRepresentation(bytes, outcome.dp),
  };
  if (options.partial && outcome.error === undefined && !(untilPixelData && outcome.dp.elements[PIXEL_DATA_KEY])) {
    // The prefix ended between two elements before the pixel data: the rest of the dataset is still to come.
    throw new NeedMoreBytes();
  }
  if (outcome.error !== undefined) {
    if (options.partial && isOutOfBounds(outcome.error)) throw new NeedMoreBytes();
    ctx.truncated = true;
    warnings.push(`dataset truncated or malformed: ${describe(outcome.error)}`);
  }
  const charsetEl = outcome.dp.elements.x00080005;
  const charsetValue = charsetEl
    ? bytes.toString('latin1', charsetEl.dataOffset, charsetEl.dataOffset + Math.min(charsetEl.length, bytes.length - charsetEl.dataOffset))
    : undefined;
  const charset = CharsetDecoder.for(charsetValue, defaultEncoding);
  const dataset = convertDataSet(outcome.dp, ctx, charset, defaultEncoding);
  if (options.partial && ctx.truncated) throw new NeedMoreBytes();
  if (dataset.elements.size === 0) {
    throw new DicomFormatError(outcome.error !== undefined ? `unreadable dataset: ${describe(outcome.error)}` : 'empty dataset');
  }
  const meta = metaDp
    ? convertDataSet(metaDp, { bytes, littleEndian: true, explicitVr: true, truncated: false }, charset, defaultEncoding)
    : emptyDataSet({ bytes, littleEndian: true, explicitVr: true, truncated: false }, charset);
  const pixel = outcome.dp.elements[PIXEL_DATA_KEY];
  const pixelDataOffset = pixel ? pixel.dataOffset - (syntax.explicitVr ? 12 : 8) : undefined;
  return {
    bytes,
    meta,
    dataset,
    transferSyntaxUid: ts,
    hasMetaHeader,
    datasetOffset: position,
    pixelDataOffset: ts === DeflatedExplicitVRLittleEndian ? undefined : pixelDataOffset,
    pixelDataEnd:
      pixel && pixel.length !== 0xffffffff && !pixel.hadUndefinedLength && ts !== DeflatedExplicitVRLittleEndian
        ? pixel.dataOffset + pixel.length
        : undefined,
    truncated: ctx.truncated,
    encodingMismatch: encoding !== ts,
    warnings: warnings.concat(outcome.dp.warnings ?? []),
  };
}

/**
 * Where the dataset of a Part 10 file starts (after the DICM prefix and the meta group), found without parsing the
 * dataset; 0 for a bare dataset. For files known to be well formed (the storage area's): `readPart10` checks more.
 */
export function part10DatasetOffset(bytes: Buffer): number {
  const startsWithMeta = bytes.length >= 8 && bytes.readUInt16LE(0) === 0x0002 && bytes.toString('latin1', 4, 6) === 'UL';
  if (hasDicmPrefix(bytes)) return readMetaGroup(bytes, 132, false).end;
  return startsWithMeta ? readMetaGroup(bytes, 0, false).end : 0;
}

function readMetaGroup(bytes: Buffer, start: number, partial: boolean): { dp: DpDataSet; end: number } {
  if (start + 8 > bytes.length) {
    if (partial) throw new NeedMoreBytes();
    throw new DicomFormatError('DICM prefix without a meta header');
  }
  const parser = dicomParser.littleEndianByteArrayParser;
  const stream = new dicomParser.ByteStream(parser, bytes, start);
  const dp = new (dicomParser as unknown as { DataSet: new (p: unknown, b: Buffer, e: object) => DpDataSet }).DataSet(
    parser,
    bytes,
    {},
  );
  dp.warnings = [];
  try {
    while (stream.position + 8 <= bytes.length) {
      const group = bytes.readUInt16LE(stream.position);
      if (group !== 0x0002) break;
      const el = dicomParser.readDicomElementExplicit(stream, dp.warnings);
      if (el.dataOffset + el.length > bytes.length) throw new Error('meta header element past end of buffer');
      dp.elements[el.tag] = el;
    }
  } catch (cause) {
    if (partial) throw new NeedMoreBytes();
    throw new DicomFormatError('malformed Part 10 meta header', { cause });
  }
  if (Object.keys(dp.elements).length === 0) {
    if (partial && bytes.length < start + 8) throw new NeedMoreBytes();
    throw new DicomFormatError('DICM prefix without a meta header');
  }
  return { dp, end: stream.position };
}

/** A cheap plausibility check for bytes without a meta header, so that random bytes are rejected. */
function looksLikeDataset(bytes: Buffer, ts: string): boolean {
  if (bytes.length < 8) return false;
  const syntax = transferSyntax(ts);
  const group = syntax.littleEndian ? bytes.readUInt16LE(0) : bytes.readUInt16BE(0);
  const element = syntax.littleEndian ? bytes.readUInt16LE(2) : bytes.readUInt16BE(2);
  // Datasets start with a low, even group (0008 in practice; 0000-0010 allowed), and a known tag there.
  if (group > 0x0010 || group % 2 === 1) return false;
  if (!lookupTag(((group << 16) | element) >>> 0) && element !== 0) return false;
  if (!syntax.explicitVr) {
    const length = bytes.readUInt32LE(4);
    return length === 0xffffffff || length <= bytes.length - 8;
  }
  return VR_RE.test(bytes.toString('latin1', 4, 6));
}

function describe(e: unknown): string {
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message;
  if (e && typeof e === 'object' && 'exception' in e) return describe((e as { exception: unknown }).exception);
  return String(e);
}


export { ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian };

/**
 * Reads a bare dataset whose transfer syntax is known from elsewhere (a DIMSE identifier, whose syntax is the
 * presentation context's). Throws `DicomFormatError` when it cannot be read whole.
 */
export function readDataset(bytes: Buffer, transferSyntaxUid: string, options: { defaultEncoding?: string } = {}): DataSet {
  const defaultEncoding = options.defaultEncoding ?? 'Latin1';
  let data = bytes;
  if (transferSyntaxUid === DeflatedExplicitVRLittleEndian) {
    try {
      data = inflateRawSync(bytes, { maxOutputLength: maxInflatedSize(bytes.length) });
    } catch (cause) {
      throw new DicomFormatError('deflated dataset cannot be inflated', { cause });
    }
  }
  const syntax = transferSyntax(transferSyntaxUid);
  const outcome = parseDataSet(data, 0, transferSyntaxUid, false);
  if (outcome.error !== undefined) throw new DicomFormatError(`unreadable dataset: ${describe(outcome.error)}`);
  const ctx: ConvertContext = {
    bytes: data,
    littleEndian: syntax.littleEndian,
    explicitVr: syntax.explicitVr,
    truncated: false,
    pixelRepresentation: syntax.explicitVr ? undefined : readPixelRepresentation(data, outcome.dp),
  };
  const charsetEl = outcome.dp.elements.x00080005;
  const charsetValue = charsetEl ? data.toString('latin1', charsetEl.dataOffset, charsetEl.dataOffset + charsetEl.length) : undefined;
  const dataset = convertDataSet(outcome.dp, ctx, CharsetDecoder.for(charsetValue, defaultEncoding), defaultEncoding);
  if (ctx.truncated) throw new DicomFormatError('truncated dataset');
  return dataset;
}
