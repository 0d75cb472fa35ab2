/**
 * The one query engine behind C-FIND, `/tools/find` and QIDO-RS. A query names a level and matching keys
 * (raw DICOM query strings); constraints on main tags (at the level, an ancestor or a descendant) and on
 * ModalitiesInStudy are evaluated in SQL by the index; other tags are matched on the stored file of one
 * instance of each candidate (when StorageAccessOnFind allows it). Computed tags (counts, ModalitiesInStudy,
 * SOPClassesInStudy) are answered from the index.
 */
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { DataSet } from '../dicom/dataset.js';
import { vrOf } from '../dicom/dictionary.js';
import { Tags, type Tag } from '../dicom/tag.js';
import { Level } from '../store/levels.js';
import type { IndexConstraint, LabelsFilter } from '../store/lookup.js';
import { MetadataType, type ResourceRow } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';
import { isCaseSensitive, matchValue, parseMatcher, type Matcher } from './matching.js';

const log = logger('query');

export interface FindConstraint {
  tag: Tag;
  /** The query value as DICOM writes it (`DOE*`, `20200101-`, `1.2\1.3`, ...). */
  value: string;
}

export interface FindQuery {
  level: Level;
  constraints: readonly FindConstraint[];
  /** Case-sensitive matching of non-PN values (Orthanc's `CaseSensitive`, default true). */
  caseSensitive?: boolean;
  since?: number;
  limit?: number;
  labels?: LabelsFilter;
  /** Sort keys (Orthanc 1.12.5 `OrderBy`), then insertion order; without them, insertion order. */
  orderBy?: readonly FindOrder[];
}

/** One sort key: a main tag (of the query level or an ancestor), or a metadata of the resources. */
export type FindOrder = { kind: 'tag'; tag: Tag; descending: boolean } | { kind: 'metadata'; type: number; descending: boolean };

export interface EngineOptions {
  storageAccessOnFind: 'Always' | 'Answers' | 'Never';
  /** Cap on results at patient, study and series level (0 = none). */
  limitFindResults: number;
  /** Cap on results at instance level (0 = none). */
  limitFindInstances: number;
}

/** Tags computed from the index, and the level of the resources they describe. */
export const COMPUTED_TAGS: ReadonlyMap<Tag, readonly Level[]> = new Map([
  [Tags.ModalitiesInStudy, [Level.Study]],
  [Tags.SOPClassesInStudy, [Level.Study]],
  [Tags.NumberOfStudyRelatedSeries, [Level.Study]],
  [Tags.NumberOfStudyRelatedInstances, [Level.Study]],
  [Tags.NumberOfPatientRelatedStudies, [Level.Patient]],
  [Tags.NumberOfPatientRelatedSeries, [Level.Patient]],
  [Tags.NumberOfPatientRelatedInstances, [Level.Patient]],
  [Tags.NumberOfSeriesRelatedInstances, [Level.Series]],
]);

interface FileConstraint {
  tag: Tag;
  matcher: Matcher;
  caseSensitive: boolean;
}

const PAGE = 500;

export class QueryEngine {
  /** Tag -> levels where it is a main tag. */
  private readonly mainTagLevels = new Map<Tag, Level[]>();

  constructor(
    readonly store: DicomStore,
    readonly options: EngineOptions,
  ) {
    store.mainDicomTagsPerLevel.forEach((tags, level) => {
      for (const tag of tags) {
        const levels = this.mainTagLevels.get(tag) ?? [];
        levels.push(level as Level);
        this.mainTagLevels.set(tag, levels);
      }
    });
  }

  /** The level at which a tag is indexed for a query at `level`, or undefined when it is not a main tag. */
  indexedLevel(tag: Tag, level: Level): Level | undefined {
    const levels = this.mainTagLevels.get(tag);
    if (!levels) return undefined;
    const up = levels.filter((l) => l <= level);
    if (up.length > 0) return Math.max(...up) as Level;
    return Math.min(...levels) as Level;
  }

  /** Splits a query's matching keys into constraints the index evaluates and constraints on the stored files. */
  private plan(query: FindQuery): { indexConstraints: IndexConstraint[]; fileConstraints: FileConstraint[] } {
    const caseSensitive = query.caseSensitive ?? true;
    const indexConstraints: IndexConstraint[] = [];
    const fileConstraints: FileConstraint[] = [];
    for (const c of query.constraints) {
      const vr = vrOf(c.tag);
      const matcher = parseMatcher(c.value, vr);
      if (matcher.kind === 'universal') continue;
      const cs = isCaseSensitive(vr, caseSensitive);
      if (c.tag === Tags.ModalitiesInStudy && query.level === Level.Study) {
        indexConstraints.push(toIndexConstraint(Tags.Modality, Level.Series, matcher, cs));
        continue;
      }
      if (COMPUTED_TAGS.has(c.tag) || c.tag === Tags.SpecificCharacterSet || c.tag === Tags.QueryRetrieveLevel) continue;
      const level = this.indexedLevel(c.tag, query.level);
      if (level !== undefined) {
        indexConstraints.push(toIndexConstraint(c.tag, level, matcher, cs));
      } else if (this.options.storageAccessOnFind === 'Always') {
        fileConstraints.push({ tag: c.tag, matcher, caseSensitive: cs });
      } else {
        log.debug(`constraint on ${c.tag.toString(16)} ignored: not a main tag and StorageAccessOnFind is not Always`);
      }
    }
    return { indexConstraints, fileConstraints };
  }

  /** Whether the query filters on tags that are not in the index (matched on the stored files). */
  readsFiles(query: FindQuery): boolean {
    return this.plan(query).fileConstraints.length > 0;
  }

  /**
   * The sort keys of a query as the index takes them. A tag must be a main tag of the query level or of an
   * ancestor level (ParameterOutOfRange otherwise).
   */
  private sortKeys(query: FindQuery): ({ tag: Tag; up: number; descending: boolean } | { metadata: number; descending: boolean })[] {
    return (query.orderBy ?? []).map((o) => {
      if (o.kind === 'metadata') return { metadata: o.type, descending: o.descending };
      const level = this.indexedLevel(o.tag, query.level);
      if (level === undefined || level > query.level) {
        throw new PacsError(
          'ParameterOutOfRange',
          `cannot order by ${o.tag.toString(16).padStart(8, '0')}: not a main DICOM tag of the query level or of an upper level`,
          { httpStatus: 400 },
        );
      }
      return { tag: o.tag, up: query.level - level, descending: o.descending };
    });
  }

  /** The matching resources, in the order they were received (or in the query's `orderBy` order). */
  async find(query: FindQuery): Promise<ResourceRow[]> {
    const { indexConstraints, fileConstraints } = this.plan(query);
    const sortKeys = this.sortKeys(query);
    const cap = query.level === Level.Instance ? this.options.limitFindInstances : this.options.limitFindResults;
    let limit = query.limit ?? 0;
    if (cap > 0 && (limit === 0 || limit > cap)) limit = cap;
    const since = query.since ?? 0;
    const index = this.store.index;
    if (fileConstraints.length === 0) {
      return sortKeys.length > 0
        ? index.lookupSorted(query.level, indexConstraints, { since, limit, labels: query.labels }, sortKeys)
        : index.lookup(query.level, indexConstraints, { since, limit, labels: query.labels });
    }
    // Page through the index candidates, keeping those whose file matches.
    const out: ResourceRow[] = [];
    let skipped = 0;
    for (let offset = 0; ; offset += PAGE) {
      const options = { since: offset, limit: PAGE, labels: query.labels };
      const page =
        sortKeys.length > 0
          ? index.lookupSorted(query.level, indexConstraints, options, sortKeys)
          : index.lookup(query.level, indexConstraints, options);
      for (const row of page) {
        const ds = await this.representativeDataset(row);
        if (!ds || !fileConstraints.every((fc) => matchValue(fc.matcher, valuesOf(ds, fc.tag), fc.caseSensitive))) continue;
        if (skipped < since) {
          skipped++;
          continue;
        }
        out.push(row);
        if (limit > 0 && out.length >= limit) return out;
      }
      if (page.length < PAGE) return out;
    }
  }

  /** The number of matching resources (`/tools/count-resources`): neither `since`, `limit` nor LimitFind* apply. */
  async count(query: FindQuery): Promise<number> {
    const { indexConstraints, fileConstraints } = this.plan(query);
    if (fileConstraints.length === 0) return this.store.index.countLookup(query.level, indexConstraints, { labels: query.labels });
    let n = 0;
    for (let offset = 0; ; offset += PAGE) {
      const page = this.store.index.lookup(query.level, indexConstraints, { since: offset, limit: PAGE, labels: query.labels });
      for (const row of page) {
        const ds = await this.representativeDataset(row);
        if (ds && fileConstraints.every((fc) => matchValue(fc.matcher, valuesOf(ds, fc.tag), fc.caseSensitive))) n++;
      }
      if (page.length < PAGE) return n;
    }
  }

  /** The dataset (up to the pixel data) of the first instance of a resource. */
  async representativeDataset(row: ResourceRow): Promise<DataSet | undefined> {
    const instance =
      row.level === Level.Instance ? row : this.store.index.descendants(row.id, row.level, Level.Instance)[0];
    if (!instance) return undefined;
    try {
      return (await this.store.parseInstance(instance.publicId, { untilPixelData: true })).dataset;
    } catch (e) {
      log.warn(`cannot read instance ${instance.publicId} for a query: ${(e as Error).message}`);
      return undefined;
    }
  }

  /** Main tags of each resource and of its ancestors (Orthanc answers patient tags at study level, etc.). */
  mainTagsWithAncestors(rows: readonly ResourceRow[]): Map<number, Map<Tag, string>> {
    const index = this.store.index;
    const out = new Map<number, Map<Tag, string>>();
    let current = rows.map((r) => ({ root: r.id, row: r as ResourceRow | undefined }));
    const merged = new Map<number, Map<Tag, string>>(rows.map((r) => [r.id, new Map()]));
    while (current.some((c) => c.row)) {
      const ids = [...new Set(current.filter((c) => c.row).map((c) => c.row!.id))];
      const tags = index.mainTagsOf(ids);
      const parents = index.findManyById(
        [...new Set(current.filter((c) => c.row && c.row.parentId !== null).map((c) => c.row!.parentId!))],
      );
      for (const c of current) {
        if (!c.row) continue;
        const target = merged.get(c.root)!;
        for (const [tag, value] of tags.get(c.row.id) ?? []) if (!target.has(tag)) target.set(tag, value);
      }
      current = current.map((c) => ({ root: c.root, row: c.row?.parentId != null ? parents.get(c.row.parentId) : undefined }));
    }
    for (const r of rows) out.set(r.id, merged.get(r.id)!);
    return out;
  }

  /** Values of computed tags for resources of one level (tags that do not apply to the level are skipped). */
  computedTags(rows: readonly ResourceRow[], level: Level, tags: readonly Tag[]): Map<number, Map<Tag, string>> {
    const index = this.store.index;
    const ids = rows.map((r) => r.id);
    const out = new Map<number, Map<Tag, string>>(ids.map((id) => [id, new Map()]));
    const put = (tag: Tag, values: Map<number, string | number | string[]>) => {
      for (const [id, v] of values) out.get(id)?.set(tag, Array.isArray(v) ? v.join('\\') : String(v));
    };
    for (const tag of tags) {
      if (!COMPUTED_TAGS.get(tag)?.includes(level)) continue;
      switch (tag) {
        case Tags.ModalitiesInStudy:
          put(tag, index.distinctDescendantValues(ids, level, Level.Series, Tags.Modality));
          break;
        case Tags.SOPClassesInStudy:
          put(tag, index.distinctDescendantMetadata(ids, level, MetadataType.SopClassUid));
          break;
        case Tags.NumberOfStudyRelatedSeries:
        case Tags.NumberOfPatientRelatedStudies:
          put(tag, index.countDescendants(ids, level, level + 1));
          break;
        case Tags.NumberOfPatientRelatedSeries:
          put(tag, index.countDescendants(ids, level, Level.Series));
          break;
        case Tags.NumberOfStudyRelatedInstances:
        case Tags.NumberOfPatientRelatedInstances:
        case Tags.NumberOfSeriesRelatedInstances:
          put(tag, index.countDescendants(ids, level, Level.Instance));
          break;
      }
    }
    return out;
  }
}

function toIndexConstraint(tag: Tag, level: Level, matcher: Exclude<Matcher, { kind: 'universal' }>, caseSensitive: boolean): IndexConstraint {
  switch (matcher.kind) {
    case 'equal':
      return { tag, level, kind: 'equal', value: matcher.value, caseSensitive };
    case 'wildcard':
      return { tag, level, kind: 'wildcard', pattern: matcher.pattern, caseSensitive };
    case 'range':
      return { tag, level, kind: 'range', lower: matcher.lower, upper: matcher.upper };
    case 'list':
      return { tag, level, kind: 'list', values: matcher.values, caseSensitive };
  }
}

/** The text values of a tag in a dataset; undefined when absent. */
function valuesOf(ds: DataSet, tag: Tag): string[] | undefined {
  const el = ds.get(tag);
  if (!el) return undefined;
  if (el.items) return [];
  const numbers = ds.elementNumbers(el);
  if (numbers.length > 0 && el.vr !== 'DS' && el.vr !== 'IS') return numbers.map(String);
  return ds.elementStrings(el);
}
