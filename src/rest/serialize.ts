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
import { DICOM_ATTACHMENT, integerValue, MetadataType, type ResourceRow } from '../store/sqlite-index.js';

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
  /**
   * Orthanc 1.12.5's `ResponseContent`: the parts to answer besides `ID` and `Type`. Undefined: Orthanc's expanded
   * resource (every part but `Metadata` and `Attachments`, plus `LastUpdate`).
   */
  content?: ReadonlySet<ResponseContent>;
}

/** The values of `/tools/find`'s `ResponseContent` (Orthanc 1.12.5). */
export const RESPONSE_CONTENT = ['MainDicomTags', 'Metadata', 'Children', 'Parent', 'Labels', 'Attachments', 'Status', 'IsStable'] as const;
export type ResponseContent = (typeof RESPONSE_CONTENT)[number];

const METADATA_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(MetadataType).map(([name, n]) => [n, name]));

/** Orthanc's name of a metadata: a core name, a `UserMetadata` name, or the number itself. */
export function metadataName(type: number, userMetadata: Readonly<Record<string, number>>): string {
  const core = METADATA_NAMES.get(type);
  if (core !== undefined) return core;
  const user = Object.entries(userMetadata).find(([, n]) => n === type);
  return user ? user[0] : String(type);
}

/** The number of a metadata named as Orthanc names them (core name, `UserMetadata` name, or number); undefined if unknown. */
export function metadataNumber(name: string, userMetadata: Readonly<Record<string, number>>): number | undefined {
  const core = (MetadataType as Record<string, number>)[name];
  if (core !== undefined && Object.prototype.hasOwnProperty.call(MetadataType, name)) return core;
  if (Object.prototype.hasOwnProperty.call(userMetadata, name)) return userMetadata[name];
  if (/^\d+$/.test(name) && Number(name) <= 65535) return Number(name);
  return undefined;
}

/** The expanded JSON of resources of one level, in the order given. */
export async function serializeResources(
  ctx: AppContext,
  rows: readonly ResourceRow[],
  level: Level,
  options: SerializeOptions = {},
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  if (options.content) return serializeContent(ctx, rows, level, options.content, options);
  const { index, store } = ctx;
  const format = options.format ?? 'human';
  const ids = rows.map((r) => r.id);
  const mainTags = index.mainTagsMany(ids);
  const lastUpdate = index.metadataOf(ids, MetadataType.LastUpdate);
  const parents = index.findManyById(rows.filter((r) => r.parentId !== null).map((r) => r.parentId!));
  const children = level === Level.Instance ? undefined : index.childrenMany(ids);
  const labels = index.labelsOf(ids);
  const patientTags =
    level === Level.Study ? index.mainTagsMany([...new Set(rows.map((r) => r.parentId!))]) : undefined;
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
      out.IndexInSeries = indexNumber(indexInSeries!.get(row.id));
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
    if (level === Level.Series) out.Status = index.seriesStatus(row.id, out.ExpectedNumberOfInstances as number | null);
    out.Type = LEVEL_NAMES[level];
    return out;
  });
}

/** The JSON of resources with the parts `content` names (Orthanc 1.12.5 `ResponseContent`), keys sorted as Orthanc. */
async function serializeContent(
  ctx: AppContext,
  rows: readonly ResourceRow[],
  level: Level,
  content: ReadonlySet<ResponseContent>,
  options: SerializeOptions,
): Promise<Record<string, unknown>[]> {
  const { index, store } = ctx;
  const format = options.format ?? 'human';
  const ids = rows.map((r) => r.id);
  const want = (part: ResponseContent) => content.has(part);
  const mainTags = want('MainDicomTags') ? index.mainTagsMany(ids) : undefined;
  const patientTags = want('MainDicomTags') && level === Level.Study ? index.mainTagsMany([...new Set(rows.map((r) => r.parentId!))]) : undefined;
  const parents = want('Parent') ? index.findManyById(rows.filter((r) => r.parentId !== null).map((r) => r.parentId!)) : undefined;
  const needChildren = level !== Level.Instance && (want('Children') || (want('Status') && level === Level.Series));
  const children = needChildren ? index.childrenMany(ids) : undefined;
  const labels = want('Labels') ? index.labelsOf(ids) : undefined;
  const requested = options.requestedTags && options.requestedTags.length > 0
    ? await requestedTagValues(ctx, rows, level, options.requestedTags)
    : undefined;
  return rows.map((row) => {
    const out: Record<string, unknown> = { ID: row.publicId, Type: LEVEL_NAMES[level] };
    if (mainTags) out.MainDicomTags = formatTagMap(mainTags.get(row.id) ?? new Map(), format);
    if (patientTags) out.PatientMainDicomTags = formatTagMap(patientTags.get(row.parentId!) ?? new Map(), format);
    if (parents && PARENT_KEYS[level]) out[PARENT_KEYS[level]!] = row.parentId !== null ? (parents.get(row.parentId)?.publicId ?? null) : null;
    if (children && want('Children')) out[CHILD_KEYS[level as 0 | 1 | 2]] = children.get(row.id) ?? [];
    if (labels) out.Labels = labels.get(row.id) ?? [];
    if (want('IsStable') && level !== Level.Instance) out.IsStable = store.isStable(row.publicId);
    if (want('Status') && level === Level.Series) {
      const exp = index.getMetadata(row.id, MetadataType.ExpectedNumberOfInstances);
      const expected = exp !== undefined ? Number(exp.value) : null;
      out.ExpectedNumberOfInstances = expected;
      out.Status = index.seriesStatus(row.id, expected);
    }
    if (want('Status') && level === Level.Instance) {
      const att = index.attachment(row.id, DICOM_ATTACHMENT);
      out.FileSize = att?.uncompressedSize ?? 0;
      out.FileUuid = att?.uuid ?? null;
      out.IndexInSeries = indexNumber(index.getMetadata(row.id, MetadataType.IndexInSeries)?.value);
    }
    if (want('Metadata')) {
      const metadata: Record<string, string> = {};
      for (const m of index.metadata(row.id)) metadata[metadataName(m.type, ctx.config.UserMetadata)] = m.value;
      out.Metadata = metadata;
    }
    if (want('Attachments')) {
      out.Attachments = index.attachments(row.id).map((a) => ({
        CompressedMD5: a.compressedMd5,
        CompressedSize: a.compressedSize,
        ContentType: a.contentType,
        UncompressedMD5: a.uncompressedMd5,
        UncompressedSize: a.uncompressedSize,
        Uuid: a.uuid,
      }));
    }
    if (requested) out.RequestedTags = requested.get(row.id) ?? {};
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

/** Orthanc's series status: Unknown without ExpectedNumberOfInstances, else Complete/Missing/Inconsistent. */

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

/** IndexInSeries as a number (the InstanceNumber or ImageIndex it was taken from); null when absent or not an integer. */
function indexNumber(value: string | undefined): number | null {
  return integerValue(value) ?? null;
}
