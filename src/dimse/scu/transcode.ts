/**
 * Conversion between the uncompressed transfer syntaxes (PS3.5 §10, Annex A.1-A.3), for a C-STORE SCU whose
 * peer did not accept a file's own syntax: the dataset is read with `dicom/reader.ts` and written again element
 * by element with `dicom/writer.ts`. Values are carried as bytes: only the element headers change (implicit <->
 * explicit VR little endian), plus the byte order of binary values (explicit VR big endian -> little endian).
 * Text is never decoded, so the character set is untouched. Sequences and items, of defined or undefined length
 * in the source, are written with defined lengths (PS3.5 §7.5 allows both). Group lengths (gggg,0000), retired
 * and wrong once headers change size, are dropped.
 *
 * Compressed (encapsulated) syntaxes are not converted: that needs codecs.
 */
import type { DataSet, Element } from '../../dicom/dataset.js';
import type { ParsedDicom } from '../../dicom/reader.js';
import {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
  transferSyntax,
} from '../../dicom/transfer-syntax.js';
import { encodeDataset, type WriteElement } from '../../dicom/writer.js';

/** Syntaxes a dataset can be converted from (the deflated one is read inflated). */
const SOURCES: ReadonlySet<string> = new Set([
  ImplicitVRLittleEndian,
  ExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  DeflatedExplicitVRLittleEndian,
]);

/** Syntaxes a dataset can be converted to, in our order of preference (explicit keeps the VRs). */
export const CONVERSION_TARGETS: readonly string[] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian];

/** True when a dataset in `from` can be sent in `to` by this module. */
export function canTranscode(from: string, to: string): boolean {
  return from !== to && SOURCES.has(from) && CONVERSION_TARGETS.includes(to);
}

/** True for the syntaxes this module reads (uncompressed, or deflated). */
export function isConvertibleSource(ts: string): boolean {
  return SOURCES.has(ts);
}

export class TranscodeError extends Error {
  readonly code = 'ERR_TRANSCODE';
  constructor(message: string) {
    super(message);
    this.name = 'TranscodeError';
  }
}

/** Every VR of PS3.5 Table 6.2-1; anything else is written as UN in an explicit syntax. */
const VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN',
  'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);

/** VRs with a 2-byte length in explicit syntaxes (PS3.5 Table 7.1-2): a longer value must go as UN. */
const SHORT_LENGTH_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI',
  'UL', 'US',
]);

/**
 * The size of the units whose byte order a VR's value depends on (PS3.5 §7.3): 2 for 16-bit words, 4, 8; AT is
 * a pair of 16-bit numbers. Text, OB and UN are byte streams.
 */
const SWAP_UNIT: Readonly<Record<string, number>> = {
  US: 2, SS: 2, OW: 2, AT: 2,
  UL: 4, SL: 4, FL: 4, OF: 4, OL: 4,
  FD: 8, OD: 8, SV: 8, UV: 8, OV: 8,
};

function swapped(value: Buffer, unit: number): Buffer {
  const out = Buffer.from(value); // a copy: the source bytes are never changed
  const whole = out.length - (out.length % unit);
  if (unit === 2) out.subarray(0, whole).swap16();
  else if (unit === 4) out.subarray(0, whole).swap32();
  else out.subarray(0, whole).swap64();
  return out;
}

interface Conversion {
  swap: boolean;
  explicitTarget: boolean;
}

function convertElement(ds: DataSet, el: Element, conv: Conversion): WriteElement {
  if (el.items !== undefined || el.vr === 'SQ') {
    return { tag: el.tag, vr: 'SQ', value: (el.items ?? []).map((item) => convertItem(item, conv)) };
  }
  if (el.fragments !== undefined) {
    throw new TranscodeError(`(${el.tag.toString(16).padStart(8, '0')}) holds encapsulated pixel data: it cannot be converted`);
  }
  // An element the file had as UN is written as UN: its bytes are what the file had.
  let vr = el.fromUN ? 'UN' : el.vr;
  let value = ds.valueBytes(el);
  if (conv.swap && SWAP_UNIT[vr] !== undefined) value = swapped(value, SWAP_UNIT[vr]!);
  if (conv.explicitTarget && (!VRS.has(vr) || (SHORT_LENGTH_VRS.has(vr) && value.length > 0xffff))) vr = 'UN';
  return { tag: el.tag, vr, value };
}

function convertItem(ds: DataSet, conv: Conversion): WriteElement[] {
  const out: WriteElement[] = [];
  for (const el of ds.elements.values()) {
    // Group lengths are retired (PS3.5 §7.2) and would be wrong once headers change size; no meta element
    // belongs in a dataset.
    if ((el.tag & 0xffff) === 0 || el.tag >>> 16 === 0x0002) continue;
    out.push(convertElement(ds, el, conv));
  }
  return out;
}

/**
 * The dataset of `parsed` (read whole, not `untilPixelData`) encoded in `to` (explicit or implicit VR little
 * endian). Throws `TranscodeError` when the conversion is not one this module makes, or the file is truncated.
 */
export function transcodeDataset(parsed: ParsedDicom, to: string): Buffer {
  const from = parsed.transferSyntaxUid;
  if (!CONVERSION_TARGETS.includes(to)) throw new TranscodeError(`cannot convert to ${transferSyntax(to).name} (${to})`);
  if (!SOURCES.has(from)) {
    throw new TranscodeError(`cannot convert from ${transferSyntax(from).name} (${from}): compressed transcoding is not available yet`);
  }
  if (parsed.truncated) throw new TranscodeError('the file is truncated: it cannot be converted');
  const ds = parsed.dataset;
  const target = transferSyntax(to);
  const conv: Conversion = { swap: !ds.littleEndian, explicitTarget: target.explicitVr };
  return encodeDataset(convertItem(ds, conv), { explicitVr: target.explicitVr, littleEndian: true });
}
