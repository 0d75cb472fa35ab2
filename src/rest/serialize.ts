/**
 * Orthanc's JSON shapes of resources (`GET /{level}/{id}`, `?expand`, `/tools/find` with `Expand`), built in a
 * few batched index queries whatever the number of resources.
 */
import type { AppContext } from '../app/context.js';
import { keywordOf } from '../dicom/dictionary.js';
import { datasetToOrthancJson, orthancLeafValue } from '../dicom/json.js';
import { formatTagOrthanc, type Tag } from '../dicom/tag.js';
import { COMPUTED_TAGS } from '../query/engine.js';
import { LEVEL_NAMES, Level } from '../store/levels.js';
import { DICOM_ATTACHMENT, MetadataType, type ResourceRow } from '../store/sqlite-index.js';

/** Orthanc's formats of tag maps in resource answers: `human` (keywords, default), `full`, `short`. */
export type TagsFormat = 'human' | 'full' | 'short';

export function formatTagMap(tags: Map<Tag, string>, format: TagsFormat): Record<string, unknown> {
  const entries = [...tags.entries()].map(([tag, value]) => {
    const keyword = keywordOf(tag) ?? formatTagOrthanc(tag);
    return { tag, keyword, value };
  });
  const out: Record<string, unknown> = {};
  if (format === 'human') {
    entries.sort((a, b) => (a.keyword < b.keyword ? -1 : a.keyword > b.keyword ? 1 : 0));
    for (const e of entries) out[e.keyword] = e.value;
  } else {
    entries.sort((a, b) => a.tag - b.tag);
    for (const e of entries) {
      out[formatTagOrthanc(e.tag)] = format === 'short' ? e.value : { Name: e.keyword, Type: 'String', Value: e.value };
    }
  }
  return out;
}

const CHILD_KEYS = ['Studies', 'Series', 'Instances'] as const;
const PARENT_KEYS = [undefined, 'ParentPatient', 'ParentStudy', 'ParentSeries'] as const;

export interface SerializeOptions {
  format?: TagsFormat;
  /** Tags to add under `RequestedTags` (main, computed, or read from the stored file). */
  requestedTags?: readonly Tag[];
}

/** The expanded JSON of resources of one level, in the order given. */
export async function serializeResources(
  ctx: AppContext,
  rows: readonly ResourceRow[],
  level: Level,
  options: SerializeOptions = {},
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const { index, store } = ctx;
  const format = options.format ?? 'human';
  const ids = rows.map((r) => r.id);
  const mainTags = index.mainTagsOf(ids);
  const lastUpdate = index.metadataOf(ids, MetadataType.LastUpdate);
  const parents = index.findManyById(rows.filter((r) => r.parentId !== null).map((r) => r.parentId!));
  const children = level === Level.Instance ? undefined : index.childrenPublicIds(ids);
  const labels = index.labelsOf(ids);
  const patientTags =
    level === Level.Study ? index.mainTagsOf([...new Set(rows.map((r) => r.parentId!))]) : undefined;
  const attachments = level === Level.Instance ? index.dicomAttachmentsOf(ids) : undefined;
  const indexInSeries = level === Level.Instance ? index.metadataOf(ids, MetadataType.IndexInSeries) : undefined;
  const expected = level === Level.Series ? index.metadataOf(ids, MetadataType.ExpectedNumberOfInstances) : undefined;
  const requested = options.requestedTags && options.requestedTags.length > 0
    ? await requestedTagValues(ctx, rows, level, options.requestedTags)
    : undefined;

  return rows.map((row) => {
    const out: Record<string, unknown> = {};
    if (level === Level.Series) {
      const exp = expected!.get(row.id);
      out.ExpectedNumberOfInstances = exp !== undefined ? Number(exp) : null;
    }
    if (level === Level.Instance) {
      const att = attachments!.get(row.id);
      out.FileSize = att?.uncompressedSize ?? 0;
      out.FileUuid = att?.uuid ?? null;
    }
    out.ID = row.publicId;
    if (level === Level.Instance) {
      const idx = indexInSeries!.get(row.id);
      out.IndexInSeries = idx !== undefined ? Number(idx) : null;
    }
    if (level !== Level.Instance) {
      out[CHILD_KEYS[level]!] = children!.get(row.id) ?? [];
      out.IsStable = store.isStable(row.publicId);
    }
    out.Labels = labels.get(row.id) ?? [];
    if (level !== Level.Instance) out.LastUpdate = lastUpdate.get(row.id) ?? null;
    out.MainDicomTags = formatTagMap(mainTags.get(row.id) ?? new Map(), format);
    const parentKey = PARENT_KEYS[level];
    if (parentKey) out[parentKey] = row.parentId !== null ? (parents.get(row.parentId)?.publicId ?? null) : null;
    if (level === Level.Study) out.PatientMainDicomTags = formatTagMap(patientTags!.get(row.parentId!) ?? new Map(), format);
    if (requested) out.RequestedTags = requested.get(row.id) ?? {};
    if (level === Level.Series) out.Status = seriesStatus(out.ExpectedNumberOfInstances as number | null, (children!.get(row.id) ?? []).length);
    out.Type = LEVEL_NAMES[level];
    return out;
  });
}

/** Orthanc's series status: Unknown without ExpectedNumberOfInstances, else Complete/Missing/Inconsistent. */
function seriesStatus(expected: number | null, count: number): string {
  if (expected === null) return 'Unknown';
  if (count === expected) return 'Complete';
  return count < expected ? 'Missing' : 'Inconsistent';
}

/** Values of requested tags: computed by the index, main tags of the resource or its ancestors, or from the file. */
async function requestedTagValues(
  ctx: AppContext,
  rows: readonly ResourceRow[],
  level: Level,
  tags: readonly Tag[],
): Promise<Map<number, Record<string, unknown>>> {
  const { engine } = ctx;
  const computed = engine.computedTags(rows, level, tags.filter((t) => COMPUTED_TAGS.has(t)));
  const main = engine.mainTagsWithAncestors(rows);
  const out = new Map<number, Record<string, unknown>>();
  for (const row of rows) {
    const values: Record<string, unknown> = {};
    const missing: Tag[] = [];
    for (const tag of tags) {
      const name = keywordOf(tag) ?? formatTagOrthanc(tag);
      const c = computed.get(row.id)?.get(tag);
      const m = main.get(row.id)?.get(tag);
      if (c !== undefined) values[name] = c;
      else if (COMPUTED_TAGS.has(tag)) continue;
      else if (m !== undefined) values[name] = m;
      else missing.push(tag);
    }
    if (missing.length > 0 && ctx.config.StorageAccessOnFind !== 'Never') {
      const ds = await engine.representativeDataset(row);
      if (ds) {
        const wanted = new Set(missing);
        const json = datasetToOrthancJson(ds, 'simplify', { omit: (t) => !wanted.has(t) });
        for (const tag of missing) {
          const el = ds.get(tag);
          if (!el) continue;
          const name = keywordOf(tag) ?? formatTagOrthanc(tag);
          values[name] = el.items ? json[name] : ((l) => (l.type === 'String' ? l.value : null))(orthancLeafValue(ds, el));
        }
      }
    }
    out.set(row.id, values);
  }
  return out;
}

export { DICOM_ATTACHMENT };
