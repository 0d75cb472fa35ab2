/**
 * DICOM Specific Character Set (0008,0005) support: decoding of the
 * charset-sensitive value representations to JS strings, and encoding back.
 *
 * References (DICOM PS3.3 and PS3.5):
 * - PS3.3 C.12.1.1.2, Tables C.12-2 to C.12-5: the Defined Terms.
 * - PS3.5 6.1.2.4 / 6.1.2.5: ISO/IEC 2022 code extension techniques, the
 *   assumed initial states (6.1.2.5.1), the requirement to return to the
 *   initial designations before delimiters (6.1.2.5.3) and the levels of
 *   implementation (6.1.2.5.4).
 * - PS3.5 Annexes H, I, J, K: Japanese, Korean, Chinese (Unicode/GB18030) and
 *   Simplified Chinese (GB 2312) examples.
 *
 * Decoding is table driven: every Defined Term names the graphic character
 * sets it designates to the G0 / G1 code elements, with their escape
 * sequences. Single-byte sets are 128-entry lookup tables built once from
 * Node's (ICU) TextDecoder; double-byte sets are decoded by turning the
 * 7-bit ISO 2022 code into the corresponding EUC form and handing runs of
 * them to TextDecoder ('euc-jp', 'euc-kr', 'gbk'). Everything is a single
 * linear pass over the value bytes.
 *
 * @module
 */

import { TextDecoder } from 'node:util';
import { trimPad } from './trim.js';

/** Value representations whose bytes are decoded with the Specific Character Set; all others are ASCII. */
export const CHARSET_VRS: ReadonlySet<string> = new Set(['SH', 'LO', 'ST', 'LT', 'UT', 'PN', 'UC']);

/**
 * Text VRs hold one free-text value (VM 1) in which BACKSLASH is an ordinary
 * character, not a value delimiter (PS3.5 Table 6.2-1).
 */
const TEXT_VRS: ReadonlySet<string> = new Set(['ST', 'LT', 'UT']);

const ESC = 0x1b;
const BACKSLASH = 0x5c;
const CARET = 0x5e;
const EQUALS = 0x3d;
const SPACE = 0x20;
const DEL = 0x7f;
const REPLACEMENT = 0xfffd;

// ---------------------------------------------------------------------------
// Graphic character sets (the things designated to G0 / G1)
// ---------------------------------------------------------------------------

/**
 * A single-byte 94- or 96-character graphic set. `table` is indexed by the
 * 7-bit code (byte & 0x7F), so the same table serves the set whether it is
 * invoked in GL (G0) or GR (G1).
 */
interface SingleByteSet {
  readonly kind: 'single';
  readonly name: string;
  readonly table: Uint16Array;
}

/**
 * A 94^2 double-byte set. Each 7-bit code pair (0x21-0x7E each) is decoded
 * as the EUC sequence `prefix?, b1 | 0x80, b2 | 0x80` with the WHATWG/ICU
 * decoder `label`.
 */
interface MultiByteSet {
  readonly kind: 'multi';
  readonly name: string;
  readonly label: 'euc-jp' | 'euc-kr' | 'gbk';
  /** 0 for none; 0x8F (EUC-JP SS3) for JIS X 0212. */
  readonly prefix: number;
}

type GraphicSet = SingleByteSet | MultiByteSet;

/** Identity mapping of 0x00-0x7F (ISO 646 IRV, ISO-IR 6). */
function asciiTable(): Uint16Array {
  const table = new Uint16Array(128);
  for (let c = 0; c < 128; c++) table[c] = c;
  return table;
}

/**
 * JIS X 0201 katakana (ISO-IR 13): 0x21-0x5F map to the half-width katakana
 * U+FF61-U+FF9F; the other positions are unassigned.
 */
function katakanaTable(): Uint16Array {
  const table = new Uint16Array(128).fill(REPLACEMENT);
  for (let c = 0x21; c <= 0x5f; c++) table[c] = 0xff61 + (c - 0x21);
  return table;
}

/**
 * The right-hand part (0xA0-0xFF) of an ISO 8859 (or TIS 620) code page as a
 * 96-character set. `label` is a WHATWG encoding label whose upper half is
 * identical to the ISO set (windows-1254 for 8859-9 and windows-874 for
 * TIS 620: they differ only in 0x80-0x9F, which is not used here). `null`
 * means ISO 8859-1, whose code points equal the byte values. Code points that
 * the decoder maps to the Private Use Area (windows-874 fills the TIS 620
 * holes that way) are treated as unassigned.
 */
function upperHalfTable(label: string | null): Uint16Array {
  const table = new Uint16Array(128).fill(REPLACEMENT);
  const bytes = new Uint8Array(96);
  for (let i = 0; i < 96; i++) bytes[i] = 0xa0 + i;
  const text = label === null ? String.fromCharCode(...bytes) : new TextDecoder(label).decode(bytes);
  if (text.length !== 96) throw new Error(`charset: unexpected decoding of ${label ?? 'latin1'}`);
  for (let i = 0; i < 96; i++) {
    const u = text.charCodeAt(i);
    table[0x20 + i] = u >= 0xe000 && u <= 0xf8ff ? REPLACEMENT : u;
  }
  return table;
}

type SetId =
  | 'ascii' | 'romaji' | 'katakana'
  | 'latin1' | 'latin2' | 'latin3' | 'latin4' | 'cyrillic' | 'arabic' | 'greek' | 'hebrew' | 'latin5' | 'latin9' | 'thai'
  | 'jisx0208' | 'jisx0212' | 'ksx1001' | 'gb2312';

/** How to build each graphic set (built lazily, once). */
const SET_FACTORIES: Readonly<Record<SetId, () => GraphicSet>> = {
  ascii: () => ({ kind: 'single', name: 'ISO-IR 6 (ASCII)', table: asciiTable() }),
  /**
   * JIS X 0201 romaji (ISO-IR 14) differs from ASCII only at 05/12 (YEN SIGN)
   * and 07/14 (OVERLINE). 05/12 is nevertheless the DICOM value delimiter, so
   * both positions are decoded as in ASCII ('\\' and '~'), which is also what
   * Shift_JIS based systems and pydicom do.
   */
  romaji: () => ({ kind: 'single', name: 'ISO-IR 14 (JIS X 0201 romaji)', table: asciiTable() }),
  katakana: () => ({ kind: 'single', name: 'ISO-IR 13 (JIS X 0201 katakana)', table: katakanaTable() }),
  latin1: () => ({ kind: 'single', name: 'ISO-IR 100 (ISO 8859-1)', table: upperHalfTable(null) }),
  latin2: () => ({ kind: 'single', name: 'ISO-IR 101 (ISO 8859-2)', table: upperHalfTable('iso-8859-2') }),
  latin3: () => ({ kind: 'single', name: 'ISO-IR 109 (ISO 8859-3)', table: upperHalfTable('iso-8859-3') }),
  latin4: () => ({ kind: 'single', name: 'ISO-IR 110 (ISO 8859-4)', table: upperHalfTable('iso-8859-4') }),
  cyrillic: () => ({ kind: 'single', name: 'ISO-IR 144 (ISO 8859-5)', table: upperHalfTable('iso-8859-5') }),
  arabic: () => ({ kind: 'single', name: 'ISO-IR 127 (ISO 8859-6)', table: upperHalfTable('iso-8859-6') }),
  greek: () => ({ kind: 'single', name: 'ISO-IR 126 (ISO 8859-7)', table: upperHalfTable('iso-8859-7') }),
  hebrew: () => ({ kind: 'single', name: 'ISO-IR 138 (ISO 8859-8)', table: upperHalfTable('iso-8859-8') }),
  latin5: () => ({ kind: 'single', name: 'ISO-IR 148 (ISO 8859-9)', table: upperHalfTable('windows-1254') }),
  latin9: () => ({ kind: 'single', name: 'ISO-IR 203 (ISO 8859-15)', table: upperHalfTable('iso-8859-15') }),
  thai: () => ({ kind: 'single', name: 'ISO-IR 166 (TIS 620-2533)', table: upperHalfTable('windows-874') }),
  jisx0208: () => ({ kind: 'multi', name: 'ISO-IR 87 (JIS X 0208)', label: 'euc-jp', prefix: 0 }),
  jisx0212: () => ({ kind: 'multi', name: 'ISO-IR 159 (JIS X 0212)', label: 'euc-jp', prefix: 0x8f }),
  ksx1001: () => ({ kind: 'multi', name: 'ISO-IR 149 (KS X 1001)', label: 'euc-kr', prefix: 0 }),
  gb2312: () => ({ kind: 'multi', name: 'ISO-IR 58 (GB 2312)', label: 'gbk', prefix: 0 }),
};

const builtSets = new Map<SetId, GraphicSet>();

function graphicSet(id: SetId): GraphicSet {
  let set = builtSets.get(id);
  if (set === undefined) {
    set = SET_FACTORIES[id]();
    builtSets.set(id, set);
  }
  return set;
}

function singleByteSet(id: SetId): SingleByteSet {
  const set = graphicSet(id);
  if (set.kind !== 'single') throw new Error(`charset: ${set.name} is not a single-byte set`);
  return set;
}

// ---------------------------------------------------------------------------
// Defined Terms (PS3.3 Tables C.12-2 to C.12-5)
// ---------------------------------------------------------------------------

/** One code element designation: the set and (for ISO 2022 terms) its escape sequence after ESC. */
interface Designation {
  readonly set: SetId;
  /** The escape sequence bytes following ESC, as a latin1 string, e.g. '$)C' for ESC 02/04 02/09 04/03. */
  readonly escape?: string;
}

interface DefinedTerm {
  /** Where the term is defined. */
  readonly table: 'C.12-2' | 'C.12-3' | 'C.12-4' | 'C.12-5';
  /** The set designated to G0 (GL). */
  readonly g0?: Designation;
  /** The set designated to G1 (GR). */
  readonly g1?: Designation;
  /** Variable-length codes without code extensions (Table C.12-5): the TextDecoder label for the whole value. */
  readonly whole?: 'utf-8' | 'gb18030' | 'gbk';
}

const G0_ASCII: Designation = { set: 'ascii', escape: '(B' };

/** The Defined Terms of (0008,0005), as data. */
const DEFINED_TERMS: Readonly<Record<string, DefinedTerm>> = {
  // Table C.12-2: single-byte character sets without code extensions.
  // The default repertoire has no Defined Term (value empty); 'ISO_IR 6' is
  // widely used for it (and by Orthanc) and accepted as such.
  'ISO_IR 6': { table: 'C.12-2', g0: { set: 'ascii' } },
  'ISO_IR 100': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'latin1' } },
  'ISO_IR 101': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'latin2' } },
  'ISO_IR 109': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'latin3' } },
  'ISO_IR 110': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'latin4' } },
  'ISO_IR 144': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'cyrillic' } },
  'ISO_IR 127': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'arabic' } },
  'ISO_IR 126': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'greek' } },
  'ISO_IR 138': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'hebrew' } },
  'ISO_IR 148': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'latin5' } },
  'ISO_IR 203': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'latin9' } },
  'ISO_IR 13': { table: 'C.12-2', g0: { set: 'romaji' }, g1: { set: 'katakana' } },
  'ISO_IR 166': { table: 'C.12-2', g0: { set: 'ascii' }, g1: { set: 'thai' } },

  // Table C.12-3: single-byte character sets with code extensions.
  'ISO 2022 IR 6': { table: 'C.12-3', g0: G0_ASCII },
  'ISO 2022 IR 100': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'latin1', escape: '-A' } },
  'ISO 2022 IR 101': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'latin2', escape: '-B' } },
  'ISO 2022 IR 109': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'latin3', escape: '-C' } },
  'ISO 2022 IR 110': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'latin4', escape: '-D' } },
  'ISO 2022 IR 144': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'cyrillic', escape: '-L' } },
  'ISO 2022 IR 127': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'arabic', escape: '-G' } },
  'ISO 2022 IR 126': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'greek', escape: '-F' } },
  'ISO 2022 IR 138': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'hebrew', escape: '-H' } },
  'ISO 2022 IR 148': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'latin5', escape: '-M' } },
  'ISO 2022 IR 203': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'latin9', escape: '-b' } },
  'ISO 2022 IR 13': {
    table: 'C.12-3',
    g0: { set: 'romaji', escape: '(J' },
    g1: { set: 'katakana', escape: ')I' },
  },
  'ISO 2022 IR 166': { table: 'C.12-3', g0: G0_ASCII, g1: { set: 'thai', escape: '-T' } },

  // Table C.12-4: multi-byte character sets with code extensions.
  'ISO 2022 IR 87': { table: 'C.12-4', g0: { set: 'jisx0208', escape: '$B' } },
  'ISO 2022 IR 159': { table: 'C.12-4', g0: { set: 'jisx0212', escape: '$(D' } },
  'ISO 2022 IR 149': { table: 'C.12-4', g1: { set: 'ksx1001', escape: '$)C' } },
  'ISO 2022 IR 58': { table: 'C.12-4', g1: { set: 'gb2312', escape: '$)A' } },

  // Table C.12-5: multi-byte character sets without code extensions.
  'ISO_IR 192': { table: 'C.12-5', whole: 'utf-8' },
  'GB18030': { table: 'C.12-5', whole: 'gb18030' },
  'GBK': { table: 'C.12-5', whole: 'gbk' },
};

/**
 * Escape sequences recognized while decoding (bytes after ESC -> element and
 * set). Built from {@link DEFINED_TERMS}, plus ISO 2022 designations that are
 * not listed in PS3.3 but unambiguous: ESC $ @ (JIS C 6226-1978, decoded with
 * JIS X 0208), ESC $ ( B (long form of ESC $ B) and ESC ( I (katakana in G0).
 */
const ESCAPES: ReadonlyMap<string, { readonly element: 0 | 1; readonly set: SetId }> = (() => {
  const map = new Map<string, { element: 0 | 1; set: SetId }>();
  for (const term of Object.values(DEFINED_TERMS)) {
    if (term.g0?.escape !== undefined) map.set(term.g0.escape, { element: 0, set: term.g0.set });
    if (term.g1?.escape !== undefined) map.set(term.g1.escape, { element: 1, set: term.g1.set });
  }
  map.set('$@', { element: 0, set: 'jisx0208' });
  map.set('$(B', { element: 0, set: 'jisx0208' });
  map.set('(I', { element: 0, set: 'katakana' });
  return map;
})();

/** Orthanc's `DefaultEncoding` names -> Defined Term (`null`: no DICOM term). */
const ORTHANC_ENCODINGS: Readonly<Record<string, string | null>> = {
  Ascii: 'ISO_IR 6',
  Utf8: 'ISO_IR 192',
  Latin1: 'ISO_IR 100',
  Latin2: 'ISO_IR 101',
  Latin3: 'ISO_IR 109',
  Latin4: 'ISO_IR 110',
  Latin5: 'ISO_IR 148',
  Cyrillic: 'ISO_IR 144',
  Windows1251: null,
  Arabic: 'ISO_IR 127',
  Greek: 'ISO_IR 126',
  Hebrew: 'ISO_IR 138',
  Thai: 'ISO_IR 166',
  Japanese: 'ISO_IR 13',
  Chinese: 'GB18030',
  Korean: 'ISO 2022 IR 149',
  JapaneseKanji: 'ISO 2022 IR 87',
  SimplifiedChinese: 'ISO 2022 IR 58',
};

function orthancEncodingName(name: string): string | undefined {
  if (Object.hasOwn(ORTHANC_ENCODINGS, name)) return name;
  const lower = name.trim().toLowerCase();
  return Object.keys(ORTHANC_ENCODINGS).find((k) => k.toLowerCase() === lower);
}

/** Orthanc's DefaultEncoding name -> the Specific Character Set term (e.g. 'Latin1' -> 'ISO_IR 100', 'Utf8' -> 'ISO_IR 192'); throws Error for unknown names. */
export function specificCharacterSetForEncoding(name: string): string {
  const key = orthancEncodingName(name);
  if (key === undefined) throw new Error(`Unknown encoding "${name}"`);
  const term = ORTHANC_ENCODINGS[key];
  if (term === null) {
    throw new Error(`Encoding "${key}" has no DICOM Specific Character Set defined term (PS3.3 C.12.1.1.2)`);
  }
  return term;
}

/**
 * Normalizes one value of (0008,0005) to its Defined Term spelling. Accepts
 * the exact term, and leniently case, '_' / '-' / blank variants (e.g.
 * 'ISO-IR 100', 'ISO_IR100', 'iso 2022 ir 87'), 'UTF-8' and the 'ISO 2022 GBK'
 * / 'ISO 2022 58' spellings once printed in PS3.3. Returns undefined if unknown.
 */
function canonicalTerm(value: string): string | undefined {
  if (Object.hasOwn(DEFINED_TERMS, value)) return value;
  const key = value.toUpperCase().replace(/[\s_-]+/g, '');
  let term: string | undefined;
  let m: RegExpExecArray | null;
  if ((m = /^ISO2022IR(\d+)$/.exec(key))) term = `ISO 2022 IR ${Number(m[1])}`;
  else if ((m = /^ISOIR(\d+)$/.exec(key))) term = `ISO_IR ${Number(m[1])}`;
  else if (key === 'GB18030') term = 'GB18030';
  else if (key === 'GBK' || key === 'ISO2022GBK') term = 'GBK';
  else if (key === 'ISO202258') term = 'ISO 2022 IR 58';
  else if (key === 'UTF8') term = 'ISO_IR 192';
  return term !== undefined && Object.hasOwn(DEFINED_TERMS, term) ? term : undefined;
}

/** The 'ISO 2022 IR n' form of an 'ISO_IR n' term, if PS3.3 defines one. */
function codeExtensionForm(term: string): string | undefined {
  const m = /^ISO_IR (\d+)$/.exec(term);
  const candidate = m ? `ISO 2022 IR ${m[1]}` : term;
  return DEFINED_TERMS[candidate]?.table === 'C.12-3' ? candidate : undefined;
}

// ---------------------------------------------------------------------------
// Decoding helpers
// ---------------------------------------------------------------------------

const textDecoders = new Map<string, TextDecoder>();

/** Shared, non-fatal TextDecoder (stateless between non-streaming calls). A BOM is kept, not swallowed. */
function textDecoder(label: string): TextDecoder {
  let decoder = textDecoders.get(label);
  if (decoder === undefined) {
    decoder = new TextDecoder(label, { ignoreBOM: true });
    textDecoders.set(label, decoder);
  }
  return decoder;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Output of one decode: runs of UTF-16 units and runs of EUC bytes, flushed in order. */
class Output {
  private readonly parts: string[] = [];
  private readonly units: Uint16Array;
  private unitCount = 0;
  private euc: Uint8Array | undefined;
  private eucCount = 0;
  private eucLabel = '';

  /** `size` = input length; every input byte yields at most one UTF-16 unit or 1.5 EUC bytes. */
  constructor(private readonly size: number) {
    this.units = new Uint16Array(size);
  }

  unit(u: number): void {
    if (this.eucCount > 0) this.flushEuc();
    this.units[this.unitCount++] = u;
  }

  /** One double-byte character given by its two 7-bit codes. */
  pair(set: MultiByteSet, c1: number, c2: number): void {
    if (this.unitCount > 0) this.flushUnits();
    if (this.eucCount > 0 && this.eucLabel !== set.label) this.flushEuc();
    this.euc ??= new Uint8Array(Math.ceil(this.size * 1.5) + 3);
    this.eucLabel = set.label;
    if (set.prefix !== 0) this.euc[this.eucCount++] = set.prefix;
    this.euc[this.eucCount++] = c1 | 0x80;
    this.euc[this.eucCount++] = c2 | 0x80;
  }

  finish(): string {
    if (this.unitCount > 0) this.flushUnits();
    if (this.eucCount > 0) this.flushEuc();
    return this.parts.length === 1 ? this.parts[0]! : this.parts.join('');
  }

  private flushUnits(): void {
    const chunk = 8192;
    for (let start = 0; start < this.unitCount; start += chunk) {
      const end = Math.min(start + chunk, this.unitCount);
      this.parts.push(String.fromCharCode(...this.units.subarray(start, end)));
    }
    this.unitCount = 0;
  }

  private flushEuc(): void {
    this.parts.push(textDecoder(this.eucLabel).decode(this.euc!.subarray(0, this.eucCount)));
    this.eucCount = 0;
  }
}

/**
 * Parses the ISO 2022 escape sequence at `bytes[at]` (ESC, intermediate
 * bytes 02/00-02/15, one final byte 03/00-07/14). Returns its length and the
 * bytes after ESC, or `key: undefined` if it is malformed (truncated).
 */
function readEscape(bytes: Uint8Array, at: number): { length: number; key: string | undefined } {
  let i = at + 1;
  while (i < bytes.length && bytes[i]! >= 0x20 && bytes[i]! <= 0x2f) i++;
  if (i < bytes.length && bytes[i]! >= 0x30 && bytes[i]! <= 0x7e) {
    return { length: i + 1 - at, key: latin1(bytes.subarray(at + 1, i + 1)) };
  }
  return { length: i - at, key: undefined };
}

// ---------------------------------------------------------------------------
// CharsetDecoder
// ---------------------------------------------------------------------------

const CACHE_LIMIT = 1024;

/**
 * Decoder for the values of one Specific Character Set (0008,0005).
 * Obtain instances with {@link CharsetDecoder.for}; they are immutable and cached.
 */
export class CharsetDecoder {
  private static readonly cache = new Map<string, CharsetDecoder>();

  /** Normalized defined terms, e.g. ['ISO 2022 IR 6', 'ISO 2022 IR 87']. */
  readonly terms: readonly string[];
  /** Problems found in (0008,0005) (unknown or misspelled terms ...). */
  readonly warnings: readonly string[];

  /** Whole-value decoder for the variable-length codes of Table C.12-5 (and Windows-1251). */
  private readonly whole: TextDecoder | undefined;
  /** PS3.5 6.1.2.5.1 / 6.1.2.5.4: initial designations, restored at every delimiter. */
  private readonly initialG0: SingleByteSet;
  private readonly initialG1: GraphicSet | null;
  /** Used for GR bytes while G1 is undesignated (value 1 empty / ISO 2022 IR 6). */
  private readonly fallbackG1: GraphicSet;

  /**
   * @param specificCharacterSet the raw (0008,0005) string as found in the file, possibly multi-valued
   *   with backslashes, possibly with padding spaces, possibly undefined/empty.
   * @param defaultEncoding Orthanc's DefaultEncoding name used when the value is absent/empty (and for
   *   unknown terms); 'Latin1' if not given.
   */
  static for(specificCharacterSet: string | undefined, defaultEncoding = 'Latin1'): CharsetDecoder {
    const key = `${defaultEncoding}\u0000${specificCharacterSet ?? ''}`;
    let decoder = CharsetDecoder.cache.get(key);
    if (decoder === undefined) {
      decoder = new CharsetDecoder(specificCharacterSet ?? '', defaultEncoding);
      if (CharsetDecoder.cache.size >= CACHE_LIMIT) CharsetDecoder.cache.clear();
      CharsetDecoder.cache.set(key, decoder);
    }
    return decoder;
  }

  private constructor(specificCharacterSet: string, defaultEncoding: string) {
    const warnings: string[] = [];

    // The default encoding, as a Defined Term (null: Windows-1251, which has none).
    let encodingName = orthancEncodingName(defaultEncoding);
    if (encodingName === undefined) {
      warnings.push(`Unknown default encoding "${defaultEncoding}", using Latin1`);
      encodingName = 'Latin1';
    }
    const defaultTerm = ORTHANC_ENCODINGS[encodingName]!;

    const values = specificCharacterSet.split('\\').map((v) => trimPad(v, true));
    let terms: string[];
    if (values.every((v) => v === '')) {
      terms = defaultTerm === null ? [] : [defaultTerm];
    } else if (values.length === 1) {
      const term = this.normalize(values[0]!, warnings);
      if (term !== undefined) {
        terms = [term];
      } else {
        warnings.push(`Unknown Specific Character Set "${values[0]}", using the default encoding ${encodingName}`);
        terms = defaultTerm === null ? [] : [defaultTerm];
      }
    } else {
      terms = this.normalizeMultiValued(values, defaultTerm, encodingName, warnings);
    }

    this.terms = Object.freeze(terms);
    this.warnings = Object.freeze(warnings);

    // Set up the decoding state.
    const first = terms.length > 0 ? DEFINED_TERMS[terms[0]!]! : undefined;
    if (terms.length === 0) {
      this.whole = textDecoder('windows-1251');
    } else if (first?.whole !== undefined) {
      this.whole = textDecoder(first.whole);
    }
    // PS3.5 6.1.2.5.4: value 1 (or ISO-IR 6 if empty) is designated initially.
    // A double-byte G0 set (ISO 2022 IR 87 / 159) cannot be the initial G0 as
    // the delimiters must stay in ISO 646; it is then only reached by escapes.
    const g0 = first?.g0 && graphicSet(first.g0.set).kind === 'single' ? first.g0.set : 'ascii';
    this.initialG0 = singleByteSet(g0);
    this.initialG1 = first?.g1 ? graphicSet(first.g1.set) : null;
    // G1 undesignated: a GR byte is not valid ISO 2022; read it with the first
    // G1 set declared in values 2-n (common for '\ISO 2022 IR 149' data written
    // without escapes), else as Latin-1 like the rest of the DICOM world.
    const declaredG1 = terms.map((t) => DEFINED_TERMS[t]!.g1?.set).find((s) => s !== undefined);
    this.fallbackG1 = this.initialG1 ?? graphicSet(declaredG1 ?? 'latin1');
  }

  private normalize(value: string, warnings: string[]): string | undefined {
    const term = canonicalTerm(value);
    if (term !== undefined && term !== value) {
      warnings.push(`Specific Character Set "${value}" is not a Defined Term, read as "${term}"`);
    }
    return term;
  }

  /** PS3.5 6.1.2.5.4 c: multi-valued (0008,0005), code extensions in use. */
  private normalizeMultiValued(
    values: readonly string[],
    defaultTerm: string | null,
    encodingName: string,
    warnings: string[],
  ): string[] {
    const terms: string[] = [];
    for (let index = 0; index < values.length; index++) {
      const value = values[index]!;
      let term: string | undefined;
      if (value === '') {
        if (index > 0) {
          warnings.push(`Empty value ${index + 1} of Specific Character Set ignored`);
          continue;
        }
        term = 'ISO 2022 IR 6';
      } else {
        term = this.normalize(value, warnings);
        if (term === undefined) {
          if (index > 0) {
            warnings.push(`Unknown Specific Character Set "${value}" ignored`);
            continue;
          }
          term = (defaultTerm !== null && codeExtensionForm(defaultTerm)) || 'ISO 2022 IR 6';
          warnings.push(`Unknown Specific Character Set "${value}", using the default encoding ${encodingName} (${term})`);
        }
      }
      const def = DEFINED_TERMS[term]!;
      if (def.whole !== undefined) {
        warnings.push(`${term} does not allow code extensions (PS3.5 6.1.2.5.4), other values ignored`);
        return [term];
      }
      if (def.table === 'C.12-2') {
        const extended = codeExtensionForm(term);
        if (extended !== undefined) {
          warnings.push(`"${term}" used with code extensions, read as "${extended}"`);
          term = extended;
        }
      }
      if (!terms.includes(term)) terms.push(term);
    }
    return terms;
  }

  /**
   * Decode one element's value bytes (all values, backslashes kept) for the
   * given VR. Values of VRs outside {@link CHARSET_VRS} are read as
   * ASCII/Latin-1. Nothing is trimmed.
   *
   * With ISO 2022 code extensions (PS3.5 6.1.2.4/6.1.2.5) escape sequences
   * switch the G0/G1 designations, and the initial designations are restored
   * (PS3.5 6.1.2.5.3) at every control character (CR, LF, FF, TAB, ...), at
   * the value delimiter '\' (not in ST/LT/UT, where it is text), and in PN
   * also at the '^' and '=' delimiters. While G0 holds a double-byte set its
   * bytes pair up, so '\', '^' and '=' can be halves of a character there.
   * Unrecognized escape sequences are kept verbatim; undecodable bytes become
   * U+FFFD.
   */
  decode(bytes: Uint8Array, vr: string): string {
    if (bytes.length === 0) return '';
    if (!CHARSET_VRS.has(vr)) return latin1(bytes);
    if (this.whole !== undefined) return this.whole.decode(bytes);
    let plain = true;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (b >= 0x80 || b === ESC) {
        plain = false;
        break;
      }
    }
    // The initial G0 (ISO 646 or JIS X 0201 romaji) reads 7-bit bytes as ASCII.
    if (plain) return latin1(bytes);
    return this.decodeIso2022(bytes, vr === 'PN', !TEXT_VRS.has(vr));
  }

  /** The ISO 2022 state machine: one pass over the bytes. */
  private decodeIso2022(bytes: Uint8Array, isPN: boolean, backslashDelimits: boolean): string {
    const n = bytes.length;
    const out = new Output(n);
    let g0: GraphicSet = this.initialG0;
    let g1 = this.initialG1;
    let i = 0;
    while (i < n) {
      const b = bytes[i]!;

      if (b === ESC) {
        const { length, key } = readEscape(bytes, i);
        const designation = key === undefined ? undefined : ESCAPES.get(key);
        if (designation !== undefined) {
          if (designation.element === 0) g0 = graphicSet(designation.set);
          else g1 = graphicSet(designation.set);
        } else {
          for (let k = 0; k < length; k++) out.unit(bytes[i + k]!);
        }
        i += length;
        continue;
      }

      // C0 and C1 control characters: back to the initial designations.
      if (b < 0x20 || (b >= 0x80 && b < 0xa0)) {
        g0 = this.initialG0;
        g1 = this.initialG1;
        out.unit(b);
        i++;
        continue;
      }

      if (b < 0x80) {
        // GL: G0
        if (b === SPACE || b === DEL) {
          out.unit(b);
          i++;
        } else if (g0.kind === 'multi') {
          const b2 = i + 1 < n ? bytes[i + 1]! : 0;
          if (b2 >= 0x21 && b2 <= 0x7e) {
            out.pair(g0, b, b2);
            i += 2;
          } else {
            out.unit(REPLACEMENT);
            i++;
          }
        } else {
          if (b === BACKSLASH ? backslashDelimits : isPN && (b === CARET || b === EQUALS)) {
            g0 = this.initialG0;
            g1 = this.initialG1;
          }
          out.unit(g0.table[b]!);
          i++;
        }
        continue;
      }

      // GR: G1
      const set = g1 ?? this.fallbackG1;
      if (set.kind === 'multi') {
        const b2 = i + 1 < n ? bytes[i + 1]! : 0;
        if (b !== 0xa0 && b !== 0xff && b2 >= 0xa1 && b2 <= 0xfe) {
          out.pair(set, b & 0x7f, b2 & 0x7f);
          i += 2;
        } else {
          out.unit(REPLACEMENT);
          i++;
        }
      } else {
        out.unit(set.table[b & 0x7f]!);
        i++;
      }
    }
    return out.finish();
  }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

const QUESTION_MARK = 0x3f;
const reverseTables = new Map<string, Map<number, number>>();

/** Code point -> byte for a term built from single-byte sets (G0 in GL, G1 in GR). */
function singleByteReverse(term: string, def: DefinedTerm): Map<number, number> {
  let map = reverseTables.get(term);
  if (map === undefined) {
    map = new Map();
    if (def.g1 !== undefined) {
      const table = singleByteSet(def.g1.set).table;
      for (let c = 0x20; c < 0x80; c++) if (table[c] !== REPLACEMENT) map.set(table[c]!, c | 0x80);
    }
    const g0 = singleByteSet(def.g0?.set ?? 'ascii').table;
    for (let c = 0; c < 0x80; c++) map.set(g0[c]!, c);
    reverseTables.set(term, map);
  }
  return map;
}

let gbTwoByte: Map<number, number> | undefined;
let gbFourByte: Map<number, number> | undefined;

/** GB18030 / GBK two-byte codes (lead 0x81-0xFE, trail 0x40-0xFE except 0x7F): code point -> (lead << 8 | trail). */
function gbTwoByteMap(): Map<number, number> {
  if (gbTwoByte === undefined) {
    const codes: number[] = [];
    for (let lead = 0x81; lead <= 0xfe; lead++) {
      for (let trail = 0x40; trail <= 0xfe; trail++) if (trail !== 0x7f) codes.push((lead << 8) | trail);
    }
    const bytes = new Uint8Array(codes.length * 2);
    codes.forEach((code, k) => {
      bytes[2 * k] = code >> 8;
      bytes[2 * k + 1] = code & 0xff;
    });
    const decoder = new TextDecoder('gb18030');
    let text = decoder.decode(bytes);
    // Every two-byte code decodes to one BMP unit; if not, fall back to per-code decoding.
    const perCode = text.length !== codes.length;
    const map = new Map<number, number>();
    codes.forEach((code, k) => {
      if (perCode) text = decoder.decode(bytes.subarray(2 * k, 2 * k + 2));
      const u = perCode ? (text.length === 1 ? text.charCodeAt(0) : REPLACEMENT) : text.charCodeAt(k);
      if (u !== REPLACEMENT && !map.has(u)) map.set(u, code);
    });
    gbTwoByte = map;
  }
  return gbTwoByte;
}

/** GB18030 four-byte pointer -> its bytes. */
function gbFourBytes(pointer: number): number[] {
  return [
    0x81 + Math.floor(pointer / 12600),
    0x30 + (Math.floor(pointer / 1260) % 10),
    0x81 + (Math.floor(pointer / 10) % 126),
    0x30 + (pointer % 10),
  ];
}

/** GB18030 four-byte codes of the BMP (pointers 0-39419): code point -> pointer. */
function gbFourByteMap(): Map<number, number> {
  if (gbFourByte === undefined) {
    const count = 39420;
    const bytes = new Uint8Array(count * 4);
    for (let p = 0; p < count; p++) bytes.set(gbFourBytes(p), 4 * p);
    const text = new TextDecoder('gb18030').decode(bytes);
    const map = new Map<number, number>();
    if (text.length === count) {
      for (let p = 0; p < count; p++) {
        const u = text.charCodeAt(p);
        if (u !== REPLACEMENT && !map.has(u)) map.set(u, p);
      }
    }
    gbFourByte = map;
  }
  return gbFourByte;
}

function encodeGb(value: string, fourByte: boolean): Buffer {
  const out: number[] = [];
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80) {
      out.push(cp);
      continue;
    }
    const two = cp <= 0xffff ? gbTwoByteMap().get(cp) : undefined;
    if (two !== undefined) {
      out.push(two >> 8, two & 0xff);
    } else if (fourByte && cp > 0xffff) {
      out.push(...gbFourBytes(cp - 0x10000 + 189000));
    } else if (fourByte && gbFourByteMap().has(cp)) {
      out.push(...gbFourBytes(gbFourByteMap().get(cp)!));
    } else {
      out.push(QUESTION_MARK);
    }
  }
  return Buffer.from(out);
}

/**
 * Encode a JS string for writing into a dataset with the given single
 * SpecificCharacterSet term: ISO_IR 192 (UTF-8), GB18030, GBK, '' / undefined /
 * ISO_IR 6 (ASCII, the default repertoire) and every single-byte term of
 * Tables C.12-2/C.12-3 (ISO_IR 100 ... ISO_IR 13, also in their 'ISO 2022 IR n'
 * spelling, encoded with the initial designations only). Characters that the
 * set cannot represent become '?'. Throws for unknown terms and for the ISO 2022
 * multi-byte terms (IR 87, 159, 149, 58), which need escape sequences.
 */
export function encodeString(value: string, specificCharacterSet: string | undefined): Buffer {
  const raw = trimPad(specificCharacterSet ?? '', true);
  const term = raw === '' ? 'ISO_IR 6' : canonicalTerm(raw);
  if (term === undefined) throw new Error(`Unknown Specific Character Set "${raw}"`);
  const def = DEFINED_TERMS[term]!;
  if (def.whole === 'utf-8') return Buffer.from(value, 'utf8');
  if (def.whole !== undefined) return encodeGb(value, def.whole === 'gb18030');
  const singleByte =
    (def.g0 === undefined || graphicSet(def.g0.set).kind === 'single') &&
    (def.g1 === undefined || graphicSet(def.g1.set).kind === 'single') &&
    def.g0 !== undefined;
  if (!singleByte) throw new Error(`Encoding to "${term}" (ISO 2022 multi-byte) is not supported`);
  const map = singleByteReverse(term, def);
  const out = Buffer.allocUnsafe(value.length);
  let n = 0;
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    out[n++] = map.get(cp) ?? QUESTION_MARK;
  }
  return out.subarray(0, n);
}
