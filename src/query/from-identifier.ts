/**
 * C-FIND Identifier <-> the query engine (PS3.4 C.4.1): the Identifier's keys with a value are matching keys, the
 * empty ones return keys; the answers carry every requested key, with the value the index (main tags, computed
 * tags) or the stored file (other tags, when StorageAccessOnFind allows) gives, empty when none.
 */
import type { DataSet } from '../dicom/dataset.js';
import { isNumericVr } from '../dicom/dataset.js';
import { vrOf } from '../dicom/dictionary.js';
import { Tags, type Tag } from '../dicom/tag.js';
import type { WriteElement } from '../dicom/writer.js';
import { Level } from '../store/levels.js';
import type { ResourceRow } from '../store/sqlite-index.js';
import { COMPUTED_TAGS, type FindConstraint, type FindQuery, type QueryEngine } from './engine.js';

/** QueryRetrieveLevel values (PS3.4 C.4.1.1.1) and pacsnode's levels. */
export const QR_LEVELS: Readonly<Record<string, Level>> = { PATIENT: Level.Patient, STUDY: Level.Study, SERIES: Level.Series, IMAGE: Level.Instance };
const LEVEL_NAMES_QR = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'] as const;

export class IdentifierError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentifierError';
  }
}

export interface IdentifierQuery {
  query: FindQuery;
  /** The keys to return, in the Identifier's order (without QueryRetrieveLevel and SpecificCharacterSet). */
  requested: Tag[];
}

/** Elements that are never keys. */
function isKeyTag(tag: Tag): boolean {
  const group = tag >>> 16;
  const element = tag & 0xffff;
  return group !== 0x0002 && element !== 0 && tag !== Tags.SpecificCharacterSet && tag !== Tags.QueryRetrieveLevel;
}

/**
 * Reads an Identifier. `patientRootOnly` is the Study Root information model's rule: no PATIENT level there.
 * Throws `IdentifierError` when the level is missing or unknown.
 */
export function queryFromIdentifier(identifier: DataSet, options: { studyRoot: boolean; caseSensitive: boolean; limit?: number }): IdentifierQuery {
  const levelText = (identifier.string(Tags.QueryRetrieveLevel) ?? '').toUpperCase();
  const level = QR_LEVELS[levelText];
  if (level === undefined) throw new IdentifierError(`QueryRetrieveLevel missing or unknown: "${levelText}"`);
  if (options.studyRoot && level === Level.Patient) throw new IdentifierError('PATIENT level in the Study Root information model');
  const constraints: FindConstraint[] = [];
  const requested: Tag[] = [];
  for (const [tag, el] of identifier.elements) {
    if (!isKeyTag(tag)) continue;
    requested.push(tag);
    if (el.items || el.vr === 'SQ' || el.length === 0) continue; // sequence matching is not supported: return key
    const value = isNumericVr(el.vr) ? identifier.elementNumbers(el).join('\\') : identifier.elementText(el);
    if (value !== '') constraints.push({ tag, value });
  }
  return { query: { level, constraints, caseSensitive: options.caseSensitive, limit: options.limit }, requested };
}

/**
 * The Identifier of each match: QueryRetrieveLevel, SpecificCharacterSet (ISO_IR 192 when a value is not ASCII),
 * and every requested key.
 */
export async function identifiersOf(
  engine: QueryEngine,
  rows: readonly ResourceRow[],
  level: Level,
  requested: readonly Tag[],
  options: { readFiles: boolean },
): Promise<WriteElement[][]> {
  const main = engine.mainTagsWithAncestors(rows);
  const computed = engine.computedTags(rows, level, requested.filter((t) => COMPUTED_TAGS.has(t)));
  const out: WriteElement[][] = [];
  for (const row of rows) {
    const values = new Map<Tag, string | undefined>();
    const missing: Tag[] = [];
    for (const tag of requested) {
      const v = computed.get(row.id)?.get(tag) ?? main.get(row.id)?.get(tag);
      if (v !== undefined) values.set(tag, v);
      else if (!COMPUTED_TAGS.has(tag)) missing.push(tag);
    }
    if (missing.length > 0 && options.readFiles) {
      const ds = await engine.representativeDataset(row);
      for (const tag of missing) {
        const el = ds?.get(tag);
        if (!ds || !el || el.items || el.vr === 'SQ') continue;
        values.set(tag, isNumericVr(el.vr) ? ds.elementNumbers(el).join('\\') : ds.elementStrings(el).join('\\'));
      }
    }
    // eslint-disable-next-line no-control-regex
    const ascii = [...values.values()].every((v) => v === undefined || /^[\x00-\x7f]*$/.test(v));
    const elements: WriteElement[] = [{ tag: Tags.QueryRetrieveLevel, vr: 'CS', value: LEVEL_NAMES_QR[level]! }];
    if (!ascii) elements.push({ tag: Tags.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 192' });
    for (const tag of requested) {
      const vr = vrOf(tag);
      const value = values.get(tag);
      if (vr === 'SQ') elements.push({ tag, vr, value: [] });
      else if (value === undefined || value === '') elements.push({ tag, vr: vr === 'UN' ? 'UN' : vr, value: null });
      else if (isNumericVr(vr)) elements.push({ tag, vr, value: value.split('\\').map(Number) });
      else elements.push({ tag, vr, value });
    }
    out.push(elements);
  }
  return out;
}
