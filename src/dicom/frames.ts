/**
 * Frames of an image (PS3.5 §8.2 native pixel data, §A.4 encapsulated pixel data), as Orthanc's
 * `/instances/{id}/frames` and `/frames/{n}/raw` give them: the number of frames, and the raw bytes of one frame
 * without decoding. Results are views into the parsed bytes where possible (no copy): a list of chunks to be sent
 * one after the other.
 */
import { PacsError } from '../core/errors.js';
import type { DataSet, Element, Fragment } from './dataset.js';
import { Tags } from './tag.js';

/** Extended Offset Table (7FE0,0001) OV and its lengths (7FE0,0002) OV (PS3.5 §A.4, CP-1818). */
export const EXTENDED_OFFSET_TABLE = 0x7fe00001;

/** Video syntaxes: one "frame" is the whole stream, whatever NumberOfFrames says (as Orthanc since 1.8.1). */
const VIDEO_SYNTAXES: ReadonlySet<string> = new Set([
  '1.2.840.10008.1.2.4.100',
  '1.2.840.10008.1.2.4.101',
  '1.2.840.10008.1.2.4.102',
  '1.2.840.10008.1.2.4.103',
  '1.2.840.10008.1.2.4.104',
  '1.2.840.10008.1.2.4.105',
  '1.2.840.10008.1.2.4.106',
  '1.2.840.10008.1.2.4.107',
  '1.2.840.10008.1.2.4.108',
]);

/**
 * The number of frames, as Orthanc counts them: 1 for video syntaxes and when NumberOfFrames (0028,0008) is absent
 * or empty, its value otherwise; a value that is not a non-negative integer is a bad file (400).
 */
export function countFrames(ds: DataSet, transferSyntaxUid: string): number {
  if (VIDEO_SYNTAXES.has(transferSyntaxUid)) return 1;
  const el = ds.get(Tags.NumberOfFrames);
  if (!el || el.length === 0) return 1;
  const text = ds.elementText(el).trim();
  if (text === '') return 1;
  if (!/^\+?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new PacsError('BadFileFormat', `NumberOfFrames (0028,0008) is not a non-negative integer: "${text}"`);
  }
  return Number(text);
}

/** Orthanc's Content-Type of a raw frame: JPEG baseline and JPEG 2000 have their own, the rest is binary. */
export function rawFrameMimeType(transferSyntaxUid: string): string {
  switch (transferSyntaxUid) {
    case '1.2.840.10008.1.2.4.50':
      return 'image/jpeg';
    case '1.2.840.10008.1.2.4.90':
    case '1.2.840.10008.1.2.4.91':
      return 'image/jp2';
    default:
      return 'application/octet-stream';
  }
}

/** Bytes per swapped unit of a binary VR in a big endian dataset (DCMTK swaps OW by 16-bit words, and so on). */
export function swapUnit(vr: string): number {
  switch (vr) {
    case 'OW':
    case 'US':
    case 'SS':
    case 'AT':
      return 2;
    case 'OF':
    case 'OL':
    case 'UL':
    case 'SL':
    case 'FL':
      return 4;
    case 'OD':
    case 'OV':
    case 'FD':
    case 'SV':
    case 'UV':
      return 8;
    default:
      return 1;
  }
}

/**
 * Bytes `[start, end)` of a value (relative to the value's first byte), in little endian order: a view when the
 * dataset is little endian or the VR has no byte order, a swapped copy of the covering units otherwise (as DCMTK
 * hands values to Orthanc in the host's byte order).
 */
export function valueRange(ds: DataSet, el: Element, start: number, end: number): Buffer {
  const bytes = ds.bytes.subarray(el.offset, el.offset + el.length);
  const unit = swapUnit(el.vr);
  if (ds.littleEndian || unit === 1) return bytes.subarray(start, end);
  const from = Math.floor(start / unit) * unit;
  const to = Math.min(bytes.length, Math.ceil(end / unit) * unit);
  const copy = Buffer.from(bytes.subarray(from, to));
  const whole = copy.length - (copy.length % unit);
  if (unit === 2) copy.subarray(0, whole).swap16();
  else if (unit === 4) copy.subarray(0, whole).swap32();
  else copy.subarray(0, whole).swap64();
  return copy.subarray(start - from, end - from);
}

/** Which fragments make up each frame of encapsulated pixel data. */
export interface FragmentIndex {
  /** `frames[i]` = the fragments of frame i, in order. */
  frames: Fragment[][];
}

function readOffsets(ds: DataSet, table: Fragment, unit: 4 | 8): number[] {
  const out: number[] = [];
  for (let o = table.offset; o + unit <= table.offset + table.length; o += unit) {
    // Offset tables are always little endian (PS3.5 §A.4).
    out.push(unit === 4 ? ds.bytes.readUInt32LE(o) : Number(ds.bytes.readBigUInt64LE(o)));
  }
  return out;
}

/**
 * Groups the fragments of encapsulated pixel data into frames, with Orthanc's rules: as many fragments as frames
 * means one fragment per frame; otherwise the Basic Offset Table says where each frame starts (an empty one means
 * one frame made of every fragment). Where Orthanc stops, the Extended Offset Table (7FE0,0001) is used when the
 * Basic Offset Table is empty. Inconsistent tables are a bad file (400).
 */
export function indexFragments(ds: DataSet, pixel: Element, frameCount: number): FragmentIndex {
  const fragments = pixel.fragments ?? [];
  if (fragments.length < frameCount) {
    throw new PacsError('BadFileFormat', `${fragments.length} fragments for ${frameCount} frames`);
  }
  if (fragments.length === frameCount) return { frames: fragments.map((f) => [f]) };

  const bot = pixel.offsetTable;
  let offsets: number[];
  if (bot && bot.length > 0) {
    if (bot.length % 4 !== 0) throw new PacsError('BadFileFormat', 'Basic Offset Table length is not a multiple of 4');
    offsets = readOffsets(ds, bot, 4);
  } else {
    const eot = ds.get(EXTENDED_OFFSET_TABLE);
    if (eot && eot.length > 0 && eot.length % 8 === 0 && !eot.undefinedLength) {
      offsets = readOffsets(ds, { offset: eot.offset, length: eot.length }, 8);
    } else {
      offsets = [0];
    }
  }
  if (offsets.length !== frameCount || offsets[0] !== 0) {
    throw new PacsError('BadFileFormat', `the offset table lists ${offsets.length} frames, NumberOfFrames says ${frameCount}`);
  }
  // Offsets count from the first byte of the first fragment's item header; each item header is 8 bytes.
  const first = fragments[0]!.offset;
  const frames: Fragment[][] = [[]];
  for (const fragment of fragments) {
    const position = fragment.offset - first;
    const next = frames.length;
    if (next < frameCount && position === offsets[next]) frames.push([]);
    frames[frames.length - 1]!.push(fragment);
  }
  if (frames.length !== frameCount) {
    throw new PacsError('BadFileFormat', 'an offset of the offset table does not point at the start of a fragment');
  }
  return { frames };
}

/** The geometry of native pixel data: how many bits one frame takes. */
function nativeFrameBits(ds: DataSet): number {
  const rows = ds.number(Tags.Rows);
  const columns = ds.number(Tags.Columns);
  const bitsAllocated = ds.number(Tags.BitsAllocated);
  if (rows === undefined || columns === undefined || bitsAllocated === undefined || bitsAllocated === 0) {
    throw new PacsError('BadFileFormat', 'native pixel data without Rows, Columns or BitsAllocated');
  }
  const samplesPerPixel = ds.number(Tags.SamplesPerPixel) ?? 1;
  const photometric = (ds.string(Tags.PhotometricInterpretation) ?? '').toUpperCase();
  // PS3.3 C.7.6.3.1.2: native YBR_FULL_422 / YBR_PARTIAL_422 keep two chroma samples per two pixels.
  const samples = (photometric === 'YBR_FULL_422' || photometric === 'YBR_PARTIAL_422') && samplesPerPixel === 3
    ? rows * columns * 2
    : rows * columns * samplesPerPixel;
  return samples * bitsAllocated;
}

/** Bits `[startBit, startBit + bitCount)` of `bytes` (least significant bit first, PS3.5 §8.1.1), as new bytes. */
function extractBits(bytes: Buffer, startBit: number, bitCount: number): Buffer {
  const out = Buffer.alloc(Math.ceil(bitCount / 8));
  const shift = startBit % 8;
  const first = Math.floor(startBit / 8);
  for (let k = 0; k < out.length; k++) {
    const low = bytes[first + k] ?? 0;
    const high = bytes[first + k + 1] ?? 0;
    out[k] = shift === 0 ? low : ((low >>> shift) | (high << (8 - shift))) & 0xff;
  }
  const rest = bitCount % 8;
  if (rest !== 0) out[out.length - 1]! &= (1 << rest) - 1;
  return out;
}

/**
 * The raw bytes of frame `index` (0-based) as chunks to send in order, with Orthanc's errors: no pixel data -> 400
 * BadRequest; an index past the last frame -> 400 ParameterOutOfRange; pixel data shorter than its frames or an
 * inconsistent offset table -> 400 BadFileFormat. Native pixel data is sliced per frame (big endian values in
 * little endian order, as Orthanc gives them); encapsulated pixel data gives the frame's fragments.
 */
export function rawFrame(ds: DataSet, transferSyntaxUid: string, index: number): Buffer[] {
  const pixel = ds.get(Tags.PixelData);
  if (!pixel) {
    throw new PacsError('BadRequest', 'Cannot extract a frame from a DICOM file that does not have pixel data.');
  }
  const frameCount = countFrames(ds, transferSyntaxUid);
  const outOfRange = () => new PacsError('ParameterOutOfRange', `frame ${index} of an instance with ${frameCount} frame(s)`);
  if (frameCount === 0) throw outOfRange();
  // As Orthanc: the frames are indexed (and a bad file refused) before the index is checked.
  if (pixel.fragments) {
    const { frames } = indexFragments(ds, pixel, frameCount);
    const fragments = frames[index];
    if (!fragments) throw outOfRange();
    return fragments.map((f) => ds.bytes.subarray(f.offset, f.offset + f.length));
  }
  if (pixel.length === 0) {
    if (index >= frameCount) throw outOfRange();
    throw new PacsError('BadFileFormat', 'Cannot access a raw frame: the pixel data is empty');
  }
  const frameBits = nativeFrameBits(ds);
  if (pixel.length * 8 < frameBits * frameCount) {
    throw new PacsError(
      'BadFileFormat',
      `pixel data of ${pixel.length} bytes is shorter than ${frameCount} frame(s) of ${frameBits / 8} bytes`,
    );
  }
  if (index >= frameCount) throw outOfRange();
  const startBit = frameBits * index;
  if (startBit % 8 === 0 && frameBits % 8 === 0) {
    return [valueRange(ds, pixel, startBit / 8, (startBit + frameBits) / 8)];
  }
  // Frames of 1-bit pixels that do not end on a byte boundary (PS3.5 §8.1.1): realigned on a byte.
  return [extractBits(valueRange(ds, pixel, 0, pixel.length), startBit, frameBits)];
}
