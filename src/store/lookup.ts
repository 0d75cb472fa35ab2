/**
 * The constraint vocabulary the index understands: what the query engine hands down after parsing PS3.4
 * C.2.2.2 matching keys. The index turns it into SQL on the main-tags table (no scan of every row).
 */
import type { Tag } from '../dicom/tag.js';
import type { Level } from './levels.js';

interface Base {
  tag: Tag;
  /** The level where the tag is a main tag: the query level, an ancestor (joined) or a descendant (EXISTS). */
  level: Level;
}

export type IndexConstraint =
  | (Base & { kind: 'equal'; value: string; caseSensitive: boolean })
  | (Base & { kind: 'wildcard'; pattern: string; caseSensitive: boolean })
  | (Base & { kind: 'range'; lower?: string; upper?: string })
  | (Base & { kind: 'list'; values: string[]; caseSensitive: boolean });

export interface LabelsFilter {
  labels: string[];
  constraint: 'All' | 'Any' | 'None';
}

export interface LookupOptions {
  /** Skip this many results (Orthanc's `Since`). */
  since?: number;
  /** At most this many results (0 or undefined: no limit). */
  limit?: number;
  labels?: LabelsFilter;
}

/** Upper case without accents: the form PN and case-insensitive matching compare (stored in the index). */
export function normalizeForMatching(value: string): string {
  // Fast path for plain ASCII, which is nearly every value.
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(value)) return value.toUpperCase();
  return value.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toUpperCase();
}
