/**
 * PS3.4 §C.2.2.2 attribute matching: single value, universal, wildcard (`*`, `?`), range (DA, TM, DT, open
 * ended too), and lists (backslash-separated values, as for UIDs). `parseMatcher` turns a query value into a
 * matcher; the index evaluates it in SQL, and `matchValue` evaluates it on values read from a file.
 */
import { normalizeForMatching } from '../store/lookup.js';
import { trimEndPad, trimPad } from '../dicom/trim.js';

export type Matcher =
  | { kind: 'universal' }
  | { kind: 'equal'; value: string }
  | { kind: 'wildcard'; pattern: string }
  | { kind: 'range'; lower?: string; upper?: string }
  | { kind: 'list'; values: string[] };

const RANGE_VRS = new Set(['DA', 'TM', 'DT']);

/** Parses a query value for an attribute of the given VR. */
export function parseMatcher(rawValue: string, vr: string): Matcher {
  const value = vr === 'UI' ? trimEndPad(rawValue) : trimPad(rawValue, true);
  if (value === '' || value === '*') return { kind: 'universal' };
  if (value.includes('\\')) {
    const values = value.split('\\').map((v) => v.trim()).filter((v) => v !== '');
    if (values.length === 0) return { kind: 'universal' };
    return values.length === 1 ? parseMatcher(values[0]!, vr) : { kind: 'list', values };
  }
  if (RANGE_VRS.has(vr) && value.includes('-')) {
    const i = value.indexOf('-');
    const lower = value.slice(0, i).trim();
    const upper = value.slice(i + 1).trim();
    if (lower === '' && upper === '') return { kind: 'universal' };
    return {
      kind: 'range',
      ...(lower !== '' ? { lower } : {}),
      ...(upper !== '' ? { upper: vr === 'DT' || vr === 'TM' ? padUpper(upper) : upper } : {}),
    };
  }
  if (vr !== 'UI' && /[*?]/.test(value)) return { kind: 'wildcard', pattern: value };
  return { kind: 'equal', value };
}

/** An upper bound of a TM/DT range matches the whole unit it names (`-1200` includes 12:00:59.999). */
function padUpper(upper: string): string {
  return upper.includes('.') ? upper : `${upper}\uffff`;
}

/** PN is matched case-insensitively, as Orthanc does; other VRs follow the query's case sensitivity. */
export function isCaseSensitive(vr: string, caseSensitive: boolean): boolean {
  return vr === 'PN' ? false : caseSensitive;
}

function wildcardToRegExp(pattern: string, flags: string): RegExp {
  let re = '^';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`, flags);
}

/**
 * True when one of the attribute's values matches (an attribute with several values matches if any does).
 * An absent attribute matches only universal matching.
 */
export function matchValue(matcher: Matcher, values: readonly string[] | undefined, caseSensitive: boolean): boolean {
  if (matcher.kind === 'universal') return true;
  if (!values) return false;
  const norm = (s: string) => (caseSensitive ? s : normalizeForMatching(s));
  const candidates = values.length === 0 ? [''] : values;
  switch (matcher.kind) {
    case 'equal': {
      const v = norm(matcher.value);
      return candidates.some((c) => norm(c) === v);
    }
    case 'wildcard': {
      // `u`: `?` is one character, also outside the Basic Multilingual Plane (as SQLite's GLOB counts).
      const re = wildcardToRegExp(norm(matcher.pattern), 'su');
      return candidates.some((c) => re.test(norm(c)));
    }
    case 'list': {
      const set = new Set(matcher.values.map(norm));
      return candidates.some((c) => set.has(norm(c)));
    }
    case 'range':
      return candidates.some(
        (c) =>
          c !== '' &&
          (matcher.lower === undefined || c >= matcher.lower) &&
          (matcher.upper === undefined || c <= matcher.upper),
      );
  }
}
