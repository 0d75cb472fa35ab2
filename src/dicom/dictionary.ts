/**
 * The PS3.6 data dictionary: tag -> VR, VM, keyword, and keyword -> tag. The table is generated and committed
 * (`dictionary-data.ts`, see its header for the source edition); it is parsed once, on first use.
 */
import { DICTIONARY_EDITION, DICTIONARY_ROWS } from './dictionary-data.js';
import { type Tag, makeTag, parseTagString } from './tag.js';

export interface DictionaryEntry {
  tag: Tag;
  /** The VR, with PS3.6's ambiguous ones resolved to the usual choice (see `resolveAmbiguousVr`). */
  vr: string;
  /** The VR as PS3.6 lists it (`ox`, `xs`, `lt`, `up`, `na` for the ambiguous ones). */
  rawVr: string;
  vm: string;
  keyword: string;
  retired: boolean;
}

export { DICTIONARY_EDITION };

let byTag: Map<Tag, DictionaryEntry> | undefined;
let byKeyword: Map<string, DictionaryEntry> | undefined;

/** The usual resolution of an ambiguous VR when nothing else (BitsAllocated, PixelRepresentation) is known. */
export function resolveAmbiguousVr(rawVr: string): string {
  switch (rawVr) {
    case 'ox':
      return 'OW';
    case 'xs':
      return 'US';
    case 'lt':
      return 'OW';
    case 'up':
      return 'UL';
    case 'na':
      return 'UN';
    default:
      return rawVr;
  }
}

function load(): void {
  byTag = new Map();
  byKeyword = new Map();
  for (const line of DICTIONARY_ROWS.split('\n')) {
    const [hex, rawVr, vm, name] = line.split('\t') as [string, string, string, string];
    const tag = parseInt(hex, 16) >>> 0;
    const retired = name.startsWith('RETIRED_');
    const entry: DictionaryEntry = { tag, vr: resolveAmbiguousVr(rawVr), rawVr, vm, keyword: name, retired };
    byTag.set(tag, entry);
    byKeyword.set(name, entry);
    if (retired) {
      const plain = name.slice('RETIRED_'.length);
      if (!byKeyword.has(plain)) byKeyword.set(plain, entry);
    }
  }
}

const REPEATING_GROUPS = new Set([0x5000, 0x6000, 0x7f00]);

/** The entry for a tag, following repeating groups (50xx, 60xx, 7Fxx) and group lengths (gggg,0000). */
export function lookupTag(tag: Tag): DictionaryEntry | undefined {
  if (!byTag) load();
  const direct = byTag!.get(tag);
  if (direct) return direct;
  const group = tag >>> 16;
  const element = tag & 0xffff;
  if (element === 0 && group % 2 === 0) {
    return { tag, vr: 'UL', rawVr: 'UL', vm: '1', keyword: 'GenericGroupLength', retired: false };
  }
  const base = group & 0xff00;
  if (REPEATING_GROUPS.has(base) && group % 2 === 0) {
    const entry = byTag!.get(makeTag(base, element));
    if (entry) return { ...entry, tag };
  }
  return undefined;
}

/** The tag of a keyword (`PatientName`) or of a tag string (`0010,0010`, `00100010`). */
export function tagFromKeywordOrString(text: string): Tag | undefined {
  const parsed = parseTagString(text);
  if (parsed !== undefined) return parsed;
  if (!byKeyword) load();
  return byKeyword!.get(text)?.tag;
}

/** The VR of a tag, `UN` when the dictionary does not know it (private tags other than creators). */
export function vrOf(tag: Tag): string {
  const entry = lookupTag(tag);
  if (entry) return entry.vr;
  const element = tag & 0xffff;
  if ((tag >>> 16) % 2 === 1 && element >= 0x0010 && element <= 0x00ff) return 'LO'; // private creator
  return 'UN';
}

/** The keyword (`PatientName`), or undefined for unknown and private tags. */
export function keywordOf(tag: Tag): string | undefined {
  return lookupTag(tag)?.keyword;
}
