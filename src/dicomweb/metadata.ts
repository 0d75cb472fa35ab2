/**
 * WADO-RS Retrieve Metadata (PS3.18 §10.4.1.1.2): the DICOM JSON of every instance of a study, a series or one
 * instance, large binary values (the pixel data, binaries over 1 KB) given as BulkDataURIs to the bulk data route.
 *
 * The three modes of Orthanc's DICOMweb plugin (`StudiesMetadata`, `SeriesMetadata`):
 * - `Full`: each instance's stored dataset up to its pixel data (elements after the pixel data, such as trailing
 *   padding, are not listed);
 * - `MainDicomTags`: the main tags of the instance and its parents from the index, and its SOP Class UID;
 * - `Extrapolate`: the main tags, plus the extrapolated tags (`*MetadataExtrapolatedTags`) whose value the majority
 *   of three instances (first, middle, last) share.
 *
 * The metadata cache (`EnableMetadataCache`): the Full answer of a series is kept, gzipped, as attachment 4301 of
 * the series (as the plugin does), written once its first read has been answered. It carries a signature of the
 * series' instances (their public IDs and the UUIDs of their files), so an instance added, deleted or overwritten
 * makes it stale: it is then rebuilt. The latest series are also kept in memory (32 M characters). The cached
 * text holds a marker in place of the public base, so one entry serves every host name.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { DataSet } from '../dicom/dataset.js';
import { tagFromKeywordOrString } from '../dicom/dictionary.js';
import { datasetToDicomJson, type DicomJsonAttribute, type DicomJsonDataset } from '../dicom/json.js';
import { formatTagJson, Tags, type Tag } from '../dicom/tag.js';
import { ResourceAttachments } from '../store/attachments.js';
import { Level } from '../store/levels.js';
import type { IndexConstraint } from '../store/lookup.js';
import { MetadataType, type ResourceRow } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';
import type { DicomWebOptions, MetadataMode } from './options.js';
import { fileAttributes, textToDicomJson } from './qido.js';
import { bulkDataUri } from './uris.js';

const log = logger('dicomweb');

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** The attachment holding a series' metadata cache (the number Orthanc's DICOMweb plugin uses). */
export const METADATA_CACHE_ATTACHMENT = 4301;

/** Instances parsed at the same time for a Full answer. */
const PARALLEL_READS = 8;

/** Stands for the public base in cached BulkDataURIs. */
const BASE_MARKER = 'pacsnode-base:/';

/** What the metadata routes need. */
export interface MetadataContext {
  store: DicomStore;
  options: DicomWebOptions;
}

/** The UIDs of an instance (for its BulkDataURIs). */
interface InstanceUids {
  study: string;
  series: string;
  instance: string;
}

/** The Full metadata of one instance, BulkDataURIs under `base`. */
async function fullInstance(store: DicomStore, row: ResourceRow, uids: InstanceUids, base: string): Promise<DicomJsonDataset> {
  const { dataset } = await store.parseInstance(row.publicId, { untilPixelData: true });
  return datasetToDicomJson(dataset, {
    bulkDataUri: (path) => bulkDataUri(base, uids.study, uids.series, uids.instance, path),
  });
}

/** The UIDs of instances, from the index. */
function instanceUids(store: DicomStore, rows: readonly ResourceRow[]): Map<number, InstanceUids> {
  const tags = store.index.mainTagsOf(rows.map((r) => r.id));
  const out = new Map<number, InstanceUids>();
  for (const row of rows) {
    const chain = store.index.ancestry(row.id);
    const series = chain.find((r) => r.level === Level.Series);
    const study = chain.find((r) => r.level === Level.Study);
    const seriesTags = series ? store.index.mainTags(series.id) : undefined;
    const studyTags = study ? store.index.mainTags(study.id) : undefined;
    out.set(row.id, {
      study: studyTags?.get(Tags.StudyInstanceUID) ?? '',
      series: seriesTags?.get(Tags.SeriesInstanceUID) ?? '',
      instance: tags.get(row.id)?.get(Tags.SOPInstanceUID) ?? '',
    });
  }
  return out;
}

/** A signature of a series' content: its instances and the files they point to. */
function seriesSignature(store: DicomStore, instances: readonly ResourceRow[]): string {
  const files = store.index.dicomAttachmentsOf(instances.map((r) => r.id));
  const hash = createHash('md5');
  for (const row of instances) hash.update(`${row.publicId}:${files.get(row.id)?.uuid ?? ''}\n`);
  return hash.digest('hex');
}

/** `JSON.stringify` of a string without its quotes: the base as it appears inside a JSON string. */
function jsonInner(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/** The instances' Full metadata as the elements of a JSON array (without brackets), base marker inside. */
async function fullSeriesText(store: DicomStore, instances: readonly ResourceRow[]): Promise<string> {
  const uids = instanceUids(store, instances);
  const parts: string[] = new Array<string>(instances.length);
  // A few files are read at a time, so their reads overlap.
  let next = 0;
  const worker = async () => {
    while (next < instances.length) {
      const i = next++;
      const row = instances[i]!;
      parts[i] = JSON.stringify(await fullInstance(store, row, uids.get(row.id)!, BASE_MARKER));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_READS, instances.length) }, worker));
  return parts.join(',');
}

/**
 * A series' Full metadata as the elements of a JSON array (no brackets), with `base` in the BulkDataURIs: from
 * the cache when it is current, else computed (and cached when `EnableMetadataCache`).
 */
async function fullSeries(context: MetadataContext, series: ResourceRow, base: string): Promise<string> {
  const { store, options } = context;
  const instances = store.index.children(series.id);
  let text: string | undefined;
  if (options.enableMetadataCache) {
    const signature = seriesSignature(store, instances);
    const memory = memoryCache(store);
    text = memory.get(series.id, signature);
    const att = text === undefined ? store.index.attachment(series.id, METADATA_CACHE_ATTACHMENT) : undefined;
    if (att) {
      try {
        const cached = (await gunzipAsync(await store.readAttachment(att))).toString('utf8');
        const newline = cached.indexOf('\n');
        if (newline > 0 && cached.slice(0, newline) === signature) text = cached.slice(newline + 1);
      } catch (e) {
        log.warn(`metadata cache of series ${series.publicId} unreadable, rebuilt: ${(e as Error).message}`);
      }
    }
    if (text === undefined) {
      text = await fullSeriesText(store, instances);
      // Written after the answer: the client does not wait for the cache (see `metadataCacheWritten`).
      trackWrite(store, writeCache(store, series, `${signature}\n${text}`));
    }
    memory.set(series.id, signature, text);
  } else {
    text = await fullSeriesText(store, instances);
  }
  return text.split(`"BulkDataURI":"${BASE_MARKER}`).join(`"BulkDataURI":"${jsonInner(base)}`);
}

/**
 * The most recently used series texts, in memory, in front of the attachments (no file read nor gunzip for a series
 * read again): at most `MEMORY_CACHE_CHARS` characters per store, the least recently used dropped first.
 */
class MemoryCache {
  private readonly entries = new Map<number, { signature: string; text: string }>();
  private size = 0;

  get(seriesId: number, signature: string): string | undefined {
    const entry = this.entries.get(seriesId);
    if (!entry || entry.signature !== signature) return undefined;
    this.entries.delete(seriesId);
    this.entries.set(seriesId, entry);
    return entry.text;
  }

  set(seriesId: number, signature: string, text: string): void {
    const old = this.entries.get(seriesId);
    if (old) this.size -= old.text.length;
    this.entries.delete(seriesId);
    if (text.length > MEMORY_CACHE_CHARS / 4) return;
    this.entries.set(seriesId, { signature, text });
    this.size += text.length;
    for (const [id, entry] of this.entries) {
      if (this.size <= MEMORY_CACHE_CHARS) break;
      this.entries.delete(id);
      this.size -= entry.text.length;
    }
  }
}

const MEMORY_CACHE_CHARS = 32 << 20;
const memoryCaches = new WeakMap<DicomStore, MemoryCache>();

function memoryCache(store: DicomStore): MemoryCache {
  let cache = memoryCaches.get(store);
  if (!cache) memoryCaches.set(store, (cache = new MemoryCache()));
  return cache;
}

/** Cache writes in progress, per store. */
const pendingWrites = new WeakMap<DicomStore, Set<Promise<void>>>();

function trackWrite(store: DicomStore, write: Promise<void>): void {
  let set = pendingWrites.get(store);
  if (!set) pendingWrites.set(store, (set = new Set()));
  set.add(write);
  void write.finally(() => set.delete(write));
}

/** Resolves once the metadata cache writes started so far are done (for tests and orderly shutdowns). */
export async function metadataCacheWritten(store: DicomStore): Promise<void> {
  await Promise.all([...(pendingWrites.get(store) ?? [])]);
}

async function writeCache(store: DicomStore, series: ResourceRow, text: string): Promise<void> {
  try {
    const body = await gzipAsync(Buffer.from(text, 'utf8'));
    await new ResourceAttachments(store).putAttachment(series.publicId, Level.Series, METADATA_CACHE_ATTACHMENT, Readable.from([body]), { maxBytes: 0, tooLarge: () => new Error('unreachable') }, undefined);
  } catch (e) {
    // The series may have been deleted meanwhile: the answer stands, only the cache is lost.
    log.warn(`cannot write the metadata cache of series ${series.publicId}: ${(e as Error).message}`);
  }
}

/** The extrapolated tags of a mode, as tags (unknown names are skipped with a warning). */
function extrapolatedTags(names: readonly string[]): Tag[] {
  const out: Tag[] = [];
  for (const name of names) {
    const tag = tagFromKeywordOrString(name);
    if (tag === undefined) log.warn(`DicomWeb: unknown extrapolated tag ${name}`);
    else out.push(tag);
  }
  return out;
}

/** The first, middle and last of a list (fewer when it is shorter). */
function samples<T>(list: readonly T[]): T[] {
  if (list.length <= 3) return [...list];
  return [list[0]!, list[Math.floor(list.length / 2)]!, list[list.length - 1]!];
}

/** The values of `tags` that a majority of up to three instances share. */
async function extrapolate(store: DicomStore, instances: readonly ResourceRow[], tags: readonly Tag[]): Promise<Map<Tag, DicomJsonAttribute>> {
  const out = new Map<Tag, DicomJsonAttribute>();
  if (tags.length === 0 || instances.length === 0) return out;
  const picked = samples(instances);
  const datasets: DataSet[] = [];
  for (const row of picked) {
    try {
      datasets.push((await store.parseInstance(row.publicId, { untilPixelData: true })).dataset);
    } catch (e) {
      log.warn(`cannot read instance ${row.publicId} to extrapolate metadata: ${(e as Error).message}`);
    }
  }
  const votes = new Map<Tag, Map<string, { attr: DicomJsonAttribute; count: number }>>();
  for (const ds of datasets) {
    const json = fileAttributes(ds, tags);
    for (const tag of tags) {
      const attr = json[formatTagJson(tag)];
      if (!attr) continue;
      const key = JSON.stringify(attr);
      const byValue = votes.get(tag) ?? new Map<string, { attr: DicomJsonAttribute; count: number }>();
      const entry = byValue.get(key) ?? { attr, count: 0 };
      entry.count++;
      byValue.set(key, entry);
      votes.set(tag, byValue);
    }
  }
  for (const [tag, byValue] of votes) {
    for (const { attr, count } of byValue.values()) if (count * 2 > picked.length) out.set(tag, attr);
  }
  return out;
}

/** The main tags of instances and their parents, with the SOP Class UID, plus `extra` attributes. */
function mainTagsInstances(store: DicomStore, instances: readonly ResourceRow[], extra: Map<Tag, DicomJsonAttribute>): string {
  const ids = instances.map((r) => r.id);
  const own = store.index.mainTagsOf(ids);
  const classes = store.index.metadataOf(ids, MetadataType.SopClassUid);
  const parentsTags = new Map<number, Map<Tag, string>>();
  const parts: string[] = [];
  for (const row of instances) {
    const attrs = new Map<Tag, DicomJsonAttribute>();
    for (const parent of store.index.ancestry(row.id)) {
      if (parent.id === row.id) continue;
      let tags = parentsTags.get(parent.id);
      if (!tags) parentsTags.set(parent.id, (tags = store.index.mainTags(parent.id)));
      for (const [tag, value] of tags) attrs.set(tag, textToDicomJson(tag, value));
    }
    for (const [tag, value] of own.get(row.id) ?? []) attrs.set(tag, textToDicomJson(tag, value));
    const sopClass = classes.get(row.id);
    if (sopClass !== undefined) attrs.set(Tags.SOPClassUID, { vr: 'UI', Value: [sopClass] });
    for (const [tag, attr] of extra) if (!attrs.has(tag)) attrs.set(tag, attr);
    const ds: DicomJsonDataset = {};
    for (const tag of [...attrs.keys()].sort((a, b) => a - b)) ds[formatTagJson(tag)] = attrs.get(tag)!;
    parts.push(JSON.stringify(ds));
  }
  return parts.join(',');
}

/** A series' metadata in a mode, as the elements of a JSON array. */
async function seriesText(context: MetadataContext, series: ResourceRow, mode: MetadataMode, base: string, studyExtra?: Map<Tag, DicomJsonAttribute>): Promise<string> {
  if (mode === 'Full') return fullSeries(context, series, base);
  const instances = context.store.index.children(series.id);
  const extra = new Map(studyExtra ?? []);
  if (mode === 'Extrapolate') {
    const tags = extrapolatedTags(context.options.seriesMetadataExtrapolatedTags);
    for (const [tag, attr] of await extrapolate(context.store, instances, tags)) extra.set(tag, attr);
  }
  return mainTagsInstances(context.store, instances, extra);
}

/** The resource a metadata request names, found through the index by UIDs; 404 when it is unknown. */
export function findResource(store: DicomStore, study: string, series?: string, instance?: string): ResourceRow {
  const uid = (tag: Tag, level: Level, value: string): IndexConstraint => ({ tag, level, kind: 'equal', value, caseSensitive: true });
  const constraints = [uid(Tags.StudyInstanceUID, Level.Study, study)];
  if (series !== undefined) constraints.push(uid(Tags.SeriesInstanceUID, Level.Series, series));
  if (instance !== undefined) constraints.push(uid(Tags.SOPInstanceUID, Level.Instance, instance));
  const level = instance !== undefined ? Level.Instance : series !== undefined ? Level.Series : Level.Study;
  const [row] = store.index.lookup(level, constraints, { limit: 1 });
  if (row) return row;
  if (level === Level.Study) throw new PacsError('UnknownResource', `unknown study: ${study}`);
  // Say which UID is unknown.
  findResource(store, study, level === Level.Instance ? series : undefined);
  throw new PacsError('UnknownResource', level === Level.Series ? `unknown series: ${series} in study ${study}` : `unknown instance: ${instance} in series ${series}`);
}

/**
 * The metadata of a study, a series or an instance as the chunks of a JSON array: one series at a time, so a
 * large study is never held whole.
 */
export async function* metadataChunks(context: MetadataContext, row: ResourceRow, base: string): AsyncGenerator<string> {
  const { store, options } = context;
  if (row.level === Level.Instance) {
    const uids = instanceUids(store, [row]).get(row.id)!;
    yield `[${JSON.stringify(await fullInstance(store, row, uids, base))}]`;
    return;
  }
  if (row.level === Level.Series) {
    yield `[${await seriesText(context, row, options.seriesMetadata, base)}]`;
    return;
  }
  const mode = options.studiesMetadata;
  let studyExtra: Map<Tag, DicomJsonAttribute> | undefined;
  if (mode === 'Extrapolate') {
    const instances = store.index.descendants(row.id, Level.Study, Level.Instance);
    studyExtra = await extrapolate(store, instances, extrapolatedTags(options.studiesMetadataExtrapolatedTags));
  }
  yield '[';
  let first = true;
  for (const series of store.index.children(row.id)) {
    const text = await seriesText(context, series, mode, base, studyExtra);
    if (text === '') continue;
    yield first ? text : `,${text}`;
    first = false;
  }
  yield ']';
}
