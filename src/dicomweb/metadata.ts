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
 * the series (as the plugin does), written ahead of the first read by `MetadataCacheBuilder` once the series is
 * stable, or by a read that finds none (after answering). It carries a signature of the
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
import { ChangeType, MetadataType, type ResourceRow } from '../store/sqlite-index.js';
import type { ChangeEvent, DeletedEvent, DicomStore } from '../store/store.js';
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

/** What one store's metadata cache holds besides its attachments. */
class CacheState {
  /** The most recently used series texts. */
  readonly memory = new MemoryCache();
  /** Attachment writes in progress. */
  readonly writes = new Set<Promise<void>>();
  /** Texts being computed: series id -> signature and text, so a read and the builder never compute one twice. */
  readonly computing = new Map<number, { signature: string; text: Promise<string> }>();
  /** Series texts computed from the files so far (by reads and by the builder). */
  computed = 0;
  /** The background builder, when one runs on this store. */
  builder: MetadataCacheBuilder | undefined;
}

const cacheStates = new WeakMap<DicomStore, CacheState>();

function cacheState(store: DicomStore): CacheState {
  let state = cacheStates.get(store);
  if (!state) cacheStates.set(store, (state = new CacheState()));
  return state;
}

/** A series' cached text (memory, then attachment 4301) if it has `signature`, else undefined. */
async function cachedText(store: DicomStore, series: ResourceRow, signature: string): Promise<string | undefined> {
  const state = cacheState(store);
  const text = state.memory.get(series.id, signature);
  if (text !== undefined) return text;
  const att = store.index.attachment(series.id, METADATA_CACHE_ATTACHMENT);
  if (!att) return undefined;
  try {
    const cached = (await gunzipAsync(await store.readAttachment(att))).toString('utf8');
    const newline = cached.indexOf('\n');
    if (newline <= 0 || cached.slice(0, newline) !== signature) return undefined;
    const found = cached.slice(newline + 1);
    state.memory.set(series.id, signature, found);
    return found;
  } catch (e) {
    log.warn(`metadata cache of series ${series.publicId} unreadable, rebuilt: ${(e as Error).message}`);
    return undefined;
  }
}

/**
 * Computes a series' text from its files, keeps it in memory and starts writing attachment 4301 (not awaited: a
 * reader does not wait for the write, see `metadataCacheWritten`). A computation of the same content already running
 * is joined.
 */
function computeText(store: DicomStore, series: ResourceRow, instances: readonly ResourceRow[], signature: string): Promise<string> {
  const state = cacheState(store);
  const running = state.computing.get(series.id);
  if (running?.signature === signature) return running.text;
  state.computed++;
  const text = fullSeriesText(store, instances).then((t) => {
    state.memory.set(series.id, signature, t);
    trackWrite(state, writeCache(store, series, `${signature}\n${t}`));
    return t;
  });
  const entry = { signature, text };
  state.computing.set(series.id, entry);
  const done = () => {
    if (state.computing.get(series.id) === entry) state.computing.delete(series.id);
  };
  text.then(done, done);
  return text;
}

/**
 * A series' Full metadata as the elements of a JSON array (no brackets), with `base` in the BulkDataURIs: from
 * the cache when it is current, else computed (and cached when `EnableMetadataCache`).
 */
async function fullSeries(context: MetadataContext, series: ResourceRow, base: string): Promise<string> {
  const { store, options } = context;
  const instances = store.index.children(series.id);
  let text: string;
  if (options.enableMetadataCache) {
    const signature = seriesSignature(store, instances);
    text = (await cachedText(store, series, signature)) ?? (await computeText(store, series, instances, signature));
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

function trackWrite(state: CacheState, write: Promise<void>): void {
  state.writes.add(write);
  void write.finally(() => state.writes.delete(write));
}

/** Resolves once the metadata cache writes started so far are done (for tests and orderly shutdowns). */
export async function metadataCacheWritten(store: DicomStore): Promise<void> {
  await Promise.all([...(cacheStates.get(store)?.writes ?? [])]);
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

// ------------------------------------------------------------------ the background builder

export interface MetadataCacheBuilderSettings {
  /** After an instance is deleted, its series is rebuilt once it has not changed for this long (ms). */
  quietMs: number;
  /** Series built at the same time. */
  concurrency: number;
}

/**
 * Writes the metadata cache of a series ahead of its first read, as Orthanc's DICOMweb plugin (1.15+) does: when the
 * series becomes stable (the store's `StableSeries` change, `StableAge` seconds after its last instance), and, which
 * the plugin does not, `quietMs` after the last deletion of one of its instances. The ingestion path does no work
 * for it (the stability timer already exists); the builds run `concurrency` at a time, each reading a few files at
 * a time, and a read of a series being built joins the build. A series still current in the cache is skipped; one
 * deleted meanwhile is dropped. Series waiting when the server stops are built by their first read after the restart.
 */
export class MetadataCacheBuilder {
  /** Series whose instances were deleted: public ID -> time of the last deletion (ms), least recent first. */
  private readonly changed = new Map<string, number>();
  /** Series due, waiting for a build slot. */
  private readonly due = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];
  private closed = false;
  private readonly onChange = (event: ChangeEvent) => {
    if (event.changeType !== ChangeType.StableSeries || this.closed) return;
    this.changed.delete(event.publicId);
    this.due.add(event.publicId);
    this.pump();
  };
  private readonly onDeleted = (event: DeletedEvent) => {
    for (const row of event.deleted) {
      if (row.level !== Level.Series) continue;
      this.changed.delete(row.publicId);
      this.due.delete(row.publicId);
    }
    if (event.remainingAncestor?.level === Level.Series) this.touch(event.remainingAncestor.publicId);
  };

  constructor(
    private readonly store: DicomStore,
    private readonly settings: MetadataCacheBuilderSettings,
  ) {
    store.on('change', this.onChange);
    store.on('deleted', this.onDeleted);
  }

  /** Series waiting or being built. */
  get pending(): number {
    return this.changed.size + this.due.size + this.running.size;
  }

  /** Resolves when no series is waiting nor being built and the cache writes are done. */
  async idle(): Promise<void> {
    while (this.pending > 0 && !this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
    await metadataCacheWritten(this.store);
  }

  /** Stops listening, drops the waiting series, waits for the builds running. */
  async close(): Promise<void> {
    this.closed = true;
    const state = cacheStates.get(this.store);
    if (state?.builder === this) state.builder = undefined;
    this.store.off('change', this.onChange);
    this.store.off('deleted', this.onDeleted);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.changed.clear();
    this.due.clear();
    await Promise.allSettled([...this.running]);
    this.notify();
  }

  private touch(seriesPublicId: string): void {
    if (this.closed) return;
    this.changed.delete(seriesPublicId);
    this.changed.set(seriesPublicId, Date.now());
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, this.settings.quietMs / 4)));
      this.timer.unref();
    }
  }

  private sweep(): void {
    const limit = Date.now() - this.settings.quietMs;
    for (const [publicId, at] of this.changed) {
      if (at > limit) break;
      this.changed.delete(publicId);
      this.due.add(publicId);
    }
    if (this.changed.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.settings.concurrency && this.due.size > 0) {
      const publicId = this.due.values().next().value as string;
      this.due.delete(publicId);
      const build: Promise<void> = this.build(publicId)
        .catch((e: unknown) => log.warn(`cannot build the metadata cache of series ${publicId}: ${(e as Error).message}`))
        .finally(() => {
          this.running.delete(build);
          this.pump();
        });
      this.running.add(build);
    }
    this.notify();
  }

  private notify(): void {
    if (this.pending > 0 && !this.closed) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private async build(publicId: string): Promise<void> {
    const series = this.store.index.findByPublicId(publicId);
    if (!series || series.level !== Level.Series) return; // deleted meanwhile
    const instances = this.store.index.children(series.id);
    if (instances.length === 0) return;
    const signature = seriesSignature(this.store, instances);
    if ((await cachedText(this.store, series, signature)) !== undefined) return;
    log.debug(`building the metadata cache of series ${publicId} (${instances.length} instances)`);
    await computeText(this.store, series, instances, signature);
    await metadataCacheWritten(this.store);
  }
}

/**
 * Starts the background builder of a store's metadata cache when the cache serves something: `EnableMetadataCache`
 * with `Full` series or study metadata. Returns it (to close before the store), or undefined.
 */
export function startMetadataCacheBuilder(store: DicomStore, options: DicomWebOptions): MetadataCacheBuilder | undefined {
  const full = options.seriesMetadata === 'Full' || options.studiesMetadata === 'Full';
  if (!options.enable || !options.enableMetadataCache || !full) return undefined;
  const state = cacheState(store);
  if (state.builder) return state.builder;
  const builder = new MetadataCacheBuilder(store, { quietMs: store.options.stableAge * 1000, concurrency: 1 });
  state.builder = builder;
  return builder;
}

/** For tests and benchmarks: the store's background builder (if any) and how many series texts were computed. */
export function metadataCacheStatus(store: DicomStore): { builder: MetadataCacheBuilder | undefined; computed: number } {
  const state = cacheStates.get(store);
  return { builder: state?.builder, computed: state?.computed ?? 0 };
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
