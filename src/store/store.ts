/**
 * The shared store: the one ingestion path (`store(input, origin)`) used by every door (REST, C-STORE, STOW-RS),
 * and reading/deleting on top of the index and the storage area (Orthanc's ServerContext role).
 *
 * Ingestion: the bytes are spooled into a pending write of the storage area while their MD5 is computed (memory
 * does not grow with the instance size); the head is parsed up to the pixel data; the index transaction commits;
 * the pending write is published (a rename) in the same tick. A crash before the commit leaves a temp file that
 * start-up discards; a crash after it leaves a temp file that start-up publishes. Nothing acknowledged is lost and
 * nothing is orphaned.
 */
import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { deflateSync, inflateSync } from 'node:zlib';
import { DicomFormatError, PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { DataSet } from '../dicom/dataset.js';
import { NeedMoreBytes, readPart10, type ParsedDicom } from '../dicom/reader.js';
import { Tags, type Tag } from '../dicom/tag.js';
import { buildMetaHeader } from '../dicom/writer.js';
import { publicIds, type PublicIds } from './ids.js';
import { LEVEL_PATHS, Level, mainDicomTags, type MainTagsConfig } from './levels.js';
import {
  ChangeType,
  DICOM_ATTACHMENT,
  MetadataType,
  type AttachmentInfo,
  type DeleteOutcome,
  type NewInstance,
  type ResourceRow,
  type SqliteIndex,
  type StorageLimits,
  type StoreOutcome,
} from './sqlite-index.js';
import type { PendingWrite, StorageArea } from './storage-area.js';

const log = logger('store');

/** Where an instance came from (Orthanc's DicomInstanceOrigin). */
export type Origin =
  | { kind: 'rest'; remoteIp?: string; httpUsername?: string }
  | { kind: 'dimse'; remoteAet: string; calledAet: string; remoteIp?: string }
  | { kind: 'plugin' | 'lua' | 'webdav' | 'unknown'; remoteIp?: string };

const ORIGIN_NAMES: Record<Origin['kind'], string> = {
  rest: 'RestApi',
  dimse: 'DicomProtocol',
  plugin: 'Plugins',
  lua: 'Lua',
  webdav: 'WebDav',
  unknown: 'Unknown',
};

export type StoreStatus = 'Success' | 'AlreadyStored';

/** Orthanc's answer to a stored instance. */
export interface StoreResult {
  ID: string;
  ParentPatient: string;
  ParentStudy: string;
  ParentSeries: string;
  Path: string;
  Status: StoreStatus;
}

export interface StoreOptions {
  storageCompression: boolean;
  overwriteInstances: boolean;
  limits: StorageLimits;
  stableAge: number;
  defaultEncoding: string;
  extraMainDicomTags?: MainTagsConfig;
}

export interface StoredInstanceEvent {
  result: StoreResult;
  origin: Origin;
  /** Levels created by this instance. */
  created: Level[];
}

export interface ChangeEvent {
  changeType: number;
  level: Level;
  publicId: string;
}

/** Consecutive DICOM files that share a storage folder (see `attachmentUuid`). */
const FOLDER_RUN = 64;

/** Bytes kept in memory from a streamed input; beyond this the head is re-read from the spooled file. */
const HEAD_IN_MEMORY = 1 << 20;

/** Orthanc's date format for metadata and changes: `YYYYMMDDTHHMMSS` (UTC). */
export function isoNow(date = new Date()): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
}

/** Emitted by `DicomStore.delete`: what went (the resource and emptied ancestors) and the closest ancestor left. */
export type DeletedEvent = DeleteOutcome;

export class DicomStore extends EventEmitter<{ stored: [StoredInstanceEvent]; change: [ChangeEvent]; deleted: [DeletedEvent] }> {
  private readonly mainTags: Tag[][];
  /**
   * Resources that received an instance less than StableAge ago: public ID -> level and last touch (ms). Keyed by
   * public ID, not internal id: SQLite reuses the internal id of a deleted row.
   */
  private readonly unstable = new Map<string, { level: Level; touched: number }>();
  private stabilityTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private inFlight = new Set<Promise<unknown>>();
  private commitQueue: Array<{
    input: NewInstance;
    pending: PendingWrite;
    resolve: (outcome: StoreOutcome) => void;
    reject: (error: unknown) => void;
  }> = [];
  private closed = false;
  private folderPrefix = '';
  private folderRun = 0;

  constructor(
    readonly index: SqliteIndex,
    readonly storage: StorageArea,
    readonly options: StoreOptions,
  ) {
    super();
    this.mainTags = mainDicomTags(options.extraMainDicomTags);
  }

  /** Start-up recovery and background duties. */
  async open(): Promise<void> {
    const recovered = await this.storage.recover((uuid) => this.index.isAttachmentKnown(uuid));
    if (recovered.published + recovered.discarded > 0) {
      log.warn(
        `recovered the storage area after an interruption: ${recovered.published} write(s) completed, ${recovered.discarded} discarded`,
      );
    }
    await this.flushPendingFiles();
    const period = Math.max(100, Math.min(1000, this.options.stableAge * 250));
    this.stabilityTimer = setInterval(() => this.checkStability(), period);
    this.stabilityTimer.unref();
  }

  /** Waits for in-flight stores, stops the timers. The caller closes the index afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.stabilityTimer) clearInterval(this.stabilityTimer);
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.flushing;
    await this.storage.close();
  }

  get mainDicomTagsPerLevel(): readonly (readonly Tag[])[] {
    return this.mainTags;
  }

  // ---------------------------------------------------------------- ingestion

  /** The one ingestion path. `input` is a whole Part 10 file, or a stream of one. */
  store(input: Buffer | Readable, origin: Origin): Promise<StoreResult> {
    if (this.closed) return Promise.reject(new PacsError('BadSequenceOfCalls', 'the store is closing'));
    const p = this.storeInternal(input, origin);
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  /**
   * A random (version 4) UUID for a new DICOM file, except that FOLDER_RUN consecutive ones share their first four
   * hex digits, i.e. their folder in Orthanc's layout (`ab/cd/`): a folder made for a file serves the next ones
   * instead of each file making its own (a mkdir was a sizeable part of storing an instance while the 65,536
   * folders do not all exist yet). Files are spread over all the folders all the same, one run at a time.
   */
  private attachmentUuid(): string {
    const uuid = randomUUID();
    if (this.folderRun === 0) this.folderPrefix = uuid.slice(0, 4);
    this.folderRun = (this.folderRun + 1) % FOLDER_RUN;
    return this.folderPrefix + uuid.slice(4);
  }

  private async storeInternal(input: Buffer | Readable, origin: Origin): Promise<StoreResult> {
    const uuid = this.attachmentUuid();
    const pending = await this.storage.begin(uuid);
    // A whole Part 10 file stored as received is written (and synced) while it is parsed and checked: the write is
    // most of an instance's latency. Any later refusal waits for it, then removes the file.
    let early: Promise<void> | undefined;
    try {
      const spooled = Buffer.isBuffer(input) ? inMemory(input) : await this.spoolStream(pending, input);
      if (spooled.whole && !this.options.storageCompression && hasPart10Preamble(spooled.whole)) {
        early = pending.writeAll(spooled.whole);
        early.catch(() => undefined);
      }
      let parsed = await this.parseHead(spooled, pending);
      if (parsed.truncated || (parsed.pixelDataEnd !== undefined && parsed.pixelDataEnd > spooled.size)) {
        throw new DicomFormatError(`truncated DICOM file (${spooled.size} bytes): refused, nothing stored`);
      }
      if (parsed.encodingMismatch) {
        throw new DicomFormatError(
          `the dataset is not encoded as its meta header's transfer syntax (${parsed.transferSyntaxUid}) says: refused, nothing stored`,
        );
      }
      const info = this.describe(parsed);
      const ids = publicIds(info.identifiers);
      const publicIdList = [ids.patient, ids.study, ids.series, ids.instance] as const;

      // An already stored instance is not indexed again (a file written meanwhile is removed, as Orthanc does). A
      // whole Part 10 input is being written already: the index transaction finds it (`AlreadyStored`), with no
      // lookup before. Any other input would first be compressed, completed or synced for nothing: looked up now.
      if (!this.options.overwriteInstances && !early && this.index.findByPublicId(ids.instance)) {
        await pending.abort();
        return this.result(ids, 'AlreadyStored');
      }

      // A bare dataset gets a meta header; the dataset bytes themselves are kept as received.
      const prefix = parsed.hasMetaHeader
        ? undefined
        : buildMetaHeader({
            sopClassUid: info.sopClassUid,
            sopInstanceUid: info.identifiers.sopInstanceUid,
            transferSyntaxUid: parsed.transferSyntaxUid,
          });
      let attachment: Omit<AttachmentInfo, 'revision'>;
      if (spooled.whole || prefix || this.options.storageCompression) {
        const whole = spooled.whole ?? (await pending.readRange(0, spooled.size));
        const content = prefix ? Buffer.concat([prefix, whole]) : whole;
        const md5 = prefix ? createHash('md5').update(content).digest('hex') : spooled.md5;
        const stored = this.options.storageCompression ? compressOrthanc(content) : content;
        let target = pending;
        if (!spooled.whole) {
          // The spool holds the raw input: replace it with the final content.
          await pending.abort();
          target = await this.storage.begin(uuid);
        }
        if (early && target === pending && stored === spooled.whole) await early;
        else await target.writeAll(stored);
        attachment = {
          contentType: DICOM_ATTACHMENT,
          uuid,
          compressedSize: stored.length,
          uncompressedSize: content.length,
          compression: this.options.storageCompression ? 2 : 1,
          uncompressedMd5: md5,
          compressedMd5: this.options.storageCompression ? createHash('md5').update(stored).digest('hex') : md5,
        };
        if (prefix && parsed.pixelDataOffset !== undefined) {
          parsed = { ...parsed, pixelDataOffset: parsed.pixelDataOffset + prefix.length };
        }
        return await this.commit(target, parsed, info, ids, publicIdList, attachment, origin);
      }
      await pending.finish();
      attachment = {
        contentType: DICOM_ATTACHMENT,
        uuid,
        compressedSize: spooled.size,
        uncompressedSize: spooled.size,
        compression: 1,
        uncompressedMd5: spooled.md5,
        compressedMd5: spooled.md5,
      };
      return await this.commit(pending, parsed, info, ids, publicIdList, attachment, origin);
    } catch (e) {
      if (early) await early.catch(() => undefined);
      await pending.abort().catch(() => undefined);
      throw e;
    }
  }

  /** The index transaction, then the publication of the file in the same tick. */
  private async commit(
    pending: PendingWrite,
    parsed: ParsedDicom,
    info: ReturnType<DicomStore['describe']>,
    ids: ReturnType<typeof publicIds>,
    publicIdList: readonly [string, string, string, string],
    attachment: Omit<AttachmentInfo, 'revision'>,
    origin: Origin,
  ): Promise<StoreResult> {
    const now = isoNow();
    const metadata = new Map<number, string>([
      [MetadataType.ReceptionDate, now],
      [MetadataType.Origin, ORIGIN_NAMES[origin.kind]],
      [MetadataType.TransferSyntax, parsed.transferSyntaxUid],
      [MetadataType.SopClassUid, info.sopClassUid],
      [MetadataType.RemoteIP, origin.remoteIp ?? ''],
      // Orthanc records it for every origin (empty outside DICOM).
      [MetadataType.RemoteAET, origin.kind === 'dimse' ? origin.remoteAet : ''],
    ]);
    if (origin.kind === 'dimse') metadata.set(MetadataType.CalledAET, origin.calledAet);
    if (origin.kind === 'rest') metadata.set(MetadataType.HttpUsername, origin.httpUsername ?? '');
    if (parsed.pixelDataOffset !== undefined) metadata.set(MetadataType.PixelDataOffset, String(parsed.pixelDataOffset));

    let outcome: StoreOutcome;
    try {
      outcome = await this.indexInstance(
        {
          publicIds: publicIdList,
          mainTags: info.mainTags,
          metadata,
          attachment,
          overwrite: this.options.overwriteInstances,
          limits: this.options.limits,
          now,
        },
        pending,
      );
    } catch (e) {
      await pending.abort();
      throw e;
    }
    if (outcome.status === 'AlreadyStored') {
      await pending.abort();
      return this.result(ids, 'AlreadyStored');
    }
    if (outcome.recycledPatients.length > 0) {
      log.info(`recycled ${outcome.recycledPatients.length} patient(s) to respect the storage limits`);
    }
    // Overwrite or recycling queued old files for removal: remove them before answering.
    if (outcome.queuedFiles) {
      this.scheduleFlush();
      await this.flushing;
    }
    const result = this.result(ids, 'Success');
    const touched = Date.now();
    for (const level of [Level.Patient, Level.Study, Level.Series] as const) {
      this.unstable.set(publicIdList[level], { level, touched });
    }
    for (const level of [...outcome.created].reverse()) {
      const changeType = [ChangeType.NewPatient, ChangeType.NewStudy, ChangeType.NewSeries, ChangeType.NewInstance][level]!;
      this.emit('change', { changeType, level, publicId: publicIdList[level] });
    }
    if (outcome.completedSeries) this.emit('change', { changeType: ChangeType.CompletedSeries, level: Level.Series, publicId: publicIdList[Level.Series] });
    this.emit('stored', { result, origin, created: outcome.created });
    log.debug(`stored instance ${ids.instance} (${parsed.transferSyntaxUid})`);
    return result;
  }

  /**
   * Group commit: instances ready in the same event-loop turn share one index transaction, and each file is
   * published (renamed) right after that commit, in the same tick.
   */
  private indexInstance(input: NewInstance, pending: PendingWrite): Promise<StoreOutcome> {
    return new Promise((resolve, reject) => {
      this.commitQueue.push({ input, pending, resolve, reject });
      // A lone store (one association sending one instance at a time) has nobody to wait for: it commits now, an
      // event-loop turn earlier.
      if (this.commitQueue.length === 1 && this.inFlight.size <= 1) this.flushCommits();
      else if (this.commitQueue.length === 1) setImmediate(() => this.flushCommits());
    });
  }

  private flushCommits(): void {
    const batch = this.commitQueue;
    this.commitQueue = [];
    let results: Array<{ outcome: StoreOutcome } | { error: unknown }>;
    try {
      results = this.index.storeInstances(batch.map((b) => b.input));
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    batch.forEach((item, i) => {
      const r = results[i]!;
      if ('error' in r) {
        item.reject(r.error);
        return;
      }
      try {
        if (r.outcome.status === 'Success') item.pending.publish();
        item.resolve(r.outcome);
      } catch (error) {
        // The row is committed and the file is complete in the temp folder: keep it, start-up recovery publishes it.
        item.pending.keep();
        log.error(`cannot publish ${item.pending.uuid}: ${(error as Error).message}`);
        item.reject(error);
      }
    });
  }

  /** Orthanc's answer; the public IDs are derived from the identifiers, so no lookup can race a deletion. */
  private result(ids: PublicIds, status: StoreStatus): StoreResult {
    return {
      ID: ids.instance,
      ParentPatient: ids.patient,
      ParentStudy: ids.study,
      ParentSeries: ids.series,
      Path: `/instances/${ids.instance}`,
      Status: status,
    };
  }

  private async spoolStream(pending: PendingWrite, input: Readable): Promise<Spooled> {
    const md5 = createHash('md5');
    const headChunks: Buffer[] = [];
    let headSize = 0;
    let size = 0;
    // Small inputs (nearly all) stay in memory and are written later in one call; larger ones stream to the spool.
    let spooling = false;
    for await (const chunk of input as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      md5.update(buf);
      size += buf.length;
      if (!spooling) {
        headChunks.push(buf);
        headSize += buf.length;
        if (headSize > HEAD_IN_MEMORY) {
          spooling = true;
          await pending.write(Buffer.concat(headChunks));
        }
      } else {
        await pending.write(buf);
      }
    }
    const head = Buffer.concat(headChunks);
    return { whole: spooling ? undefined : head, head, size, md5: md5.digest('hex') };
  }

  /** Parses up to the pixel data, re-reading a growing head from the spool for large files. */
  /**
   * Parses what indexing needs. A file in memory is parsed whole, so that a file cut anywhere (in the pixel data's
   * fragments, or after them) is seen as truncated; a large spooled file is parsed up to its pixel data, from a
   * growing head re-read from the spool.
   */
  private async parseHead(spooled: Spooled, pending: PendingWrite): Promise<ParsedDicom> {
    if (spooled.size === 0) throw new DicomFormatError('empty file');
    if (spooled.whole) return readPart10(spooled.whole, { defaultEncoding: this.options.defaultEncoding });
    let head = spooled.head;
    while (true) {
      const complete = head.length >= spooled.size;
      try {
        return readPart10(head, {
          untilPixelData: true,
          partial: !complete,
          defaultEncoding: this.options.defaultEncoding,
        });
      } catch (e) {
        if (!(e instanceof NeedMoreBytes) || complete) throw e;
        head = await pending.readRange(0, Math.min(spooled.size, Math.max(head.length * 4, 4 << 20)));
      }
    }
  }

  /** Identifiers, main tags per level and the SOP class of a parsed instance. */
  private describe(parsed: ParsedDicom): {
    identifiers: { patientId: string; studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string };
    mainTags: [Map<Tag, string>, Map<Tag, string>, Map<Tag, string>, Map<Tag, string>];
    sopClassUid: string;
  } {
    const ds = parsed.dataset;
    const required = (tag: Tag, name: string): string => {
      const value = ds.string(tag);
      if (!value) {
        throw new DicomFormatError(`missing required tag ${name} (${formatTag(tag)}): cannot index this instance`);
      }
      return value;
    };
    const identifiers = {
      patientId: ds.string(Tags.PatientID) ?? '',
      studyInstanceUid: required(Tags.StudyInstanceUID, 'StudyInstanceUID'),
      seriesInstanceUid: required(Tags.SeriesInstanceUID, 'SeriesInstanceUID'),
      sopInstanceUid: required(Tags.SOPInstanceUID, 'SOPInstanceUID'),
    };
    const mainTags = this.mainTags.map((tags) => extractMainTags(ds, tags)) as [
      Map<Tag, string>,
      Map<Tag, string>,
      Map<Tag, string>,
      Map<Tag, string>,
    ];
    const sopClassUid = ds.string(Tags.SOPClassUID) ?? parsed.meta.string(Tags.MediaStorageSOPClassUID) ?? '';
    return { identifiers, mainTags, sopClassUid };
  }

  // ---------------------------------------------------------------- reading

  resource(publicId: string, level?: Level): ResourceRow {
    const row = this.index.findByPublicId(publicId);
    if (!row || (level !== undefined && row.level !== level)) {
      throw new PacsError('UnknownResource', `unknown ${level !== undefined ? LEVEL_PATHS[level] : 'resource'}: ${publicId}`);
    }
    return row;
  }

  /** The DICOM file of an instance, as stored (uncompressed). */
  async readDicom(instanceId: string): Promise<Buffer> {
    const row = this.resource(instanceId, Level.Instance);
    const att = this.index.attachment(row.id, DICOM_ATTACHMENT);
    if (!att) throw new PacsError('InexistentFile', `instance ${instanceId} has no DICOM file`);
    return this.readAttachment(att);
  }

  async readAttachment(att: AttachmentInfo): Promise<Buffer> {
    const raw = await this.storage.read(att.uuid, att.compressedSize);
    // A file cut short on disk (a crash of the machine, an outside hand) is not served as if it were whole.
    if (raw.length !== att.compressedSize) {
      throw new PacsError('CorruptedFile', `attachment ${att.uuid} has ${raw.length} bytes on disk, the index says ${att.compressedSize}`);
    }
    return att.compression === 2 ? decompressOrthanc(raw) : raw;
  }

  /**
   * The DICOM file of an instance as a stream with its size: read from disk as it is sent when stored
   * uncompressed (any size), inflated in memory when compressed.
   */
  async openDicom(instanceId: string): Promise<{ stream: Readable | Buffer; size: number }> {
    const row = this.resource(instanceId, Level.Instance);
    const att = this.index.attachment(row.id, DICOM_ATTACHMENT);
    if (!att) throw new PacsError('InexistentFile', `instance ${instanceId} has no DICOM file`);
    if (att.compression === 2) {
      const bytes = await this.readAttachment(att);
      return { stream: bytes, size: bytes.length };
    }
    return { stream: this.storage.createReadStream(att.uuid), size: att.uncompressedSize };
  }

  /**
   * The parsed dataset of an instance: the whole file, or with `untilPixelData` only its head, read up to the
   * pixel data (from the PixelDataOffset metadata) instead of the whole file.
   */
  async parseInstance(instanceId: string, options: { untilPixelData?: boolean } = {}): Promise<ParsedDicom> {
    const read = { defaultEncoding: this.options.defaultEncoding };
    if (options.untilPixelData) {
      const row = this.resource(instanceId, Level.Instance);
      const att = this.index.attachment(row.id, DICOM_ATTACHMENT);
      const offset = Number(this.index.getMetadata(row.id, MetadataType.PixelDataOffset)?.value ?? NaN);
      if (att && att.compression === 1 && Number.isFinite(offset) && offset > 0) {
        // The pixel data element header is at most 12 bytes (explicit VR, 4-byte length).
        const head = await this.storage.readRange(att.uuid, 0, Math.min(att.uncompressedSize, offset + 12));
        return readPart10(head, { ...read, untilPixelData: true });
      }
    }
    const bytes = await this.readDicom(instanceId);
    return readPart10(bytes, { ...read, untilPixelData: options.untilPixelData });
  }

  // ---------------------------------------------------------------- deletion

  /** Deletes a resource and its descendants (and parents left empty); returns the remaining ancestor. */
  async delete(publicId: string, level?: Level): Promise<ResourceRow | null> {
    const row = this.resource(publicId, level);
    const outcome = this.index.deleteResource(row.id);
    for (const r of outcome.deleted) this.unstable.delete(r.publicId);
    this.emit('deleted', outcome);
    this.scheduleFlush();
    await this.flushing;
    return outcome.remainingAncestor;
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = this.flushPendingFiles().finally(() => {
      this.flushing = undefined;
    });
  }

  /** Removes the files whose attachments were deleted, then forgets them. */
  async flushPendingFiles(): Promise<void> {
    while (true) {
      const uuids = this.index.pendingFiles(500);
      if (uuids.length === 0) return;
      await Promise.all(uuids.map((u) => this.storage.remove(u)));
      this.index.forgetPendingFiles(uuids);
    }
  }

  // ---------------------------------------------------------------- stability

  isStable(publicId: string): boolean {
    return !this.unstable.has(publicId);
  }

  private checkStability(): void {
    const limit = Date.now() - this.options.stableAge * 1000;
    const now = isoNow();
    for (const [publicId, entry] of this.unstable) {
      if (entry.touched > limit) continue;
      this.unstable.delete(publicId);
      const row = this.index.findByPublicId(publicId);
      if (!row) continue; // deleted or recycled meanwhile
      const changeType = [ChangeType.StablePatient, ChangeType.StableStudy, ChangeType.StableSeries][entry.level]!;
      this.index.logChange(changeType, row.id, entry.level, publicId, now);
      this.emit('change', { changeType, level: entry.level, publicId });
    }
  }
}

/** 128-byte preamble then `DICM`: the file already has its meta header. */
function hasPart10Preamble(bytes: Buffer): boolean {
  return bytes.length > 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

function inMemory(input: Buffer): Spooled {
  return { whole: input, head: input, size: input.length, md5: createHash('md5').update(input).digest('hex') };
}

interface Spooled {
  /** The whole input when it is in memory. */
  whole: Buffer | undefined;
  head: Buffer;
  size: number;
  md5: string;
}

function formatTag(tag: Tag): string {
  const h = tag.toString(16).padStart(8, '0').toUpperCase();
  return `${h.slice(0, 4)},${h.slice(4)}`;
}

/** Main tags present in the dataset, as Orthanc's text values (multiple values joined by backslashes). */
function extractMainTags(ds: DataSet, tags: readonly Tag[]): Map<Tag, string> {
  const out = new Map<Tag, string>();
  for (const tag of tags) {
    const el = ds.get(tag);
    if (!el || el.items || el.vr === 'SQ') continue;
    if (el.vr === 'US' || el.vr === 'SS' || el.vr === 'UL' || el.vr === 'SL' || el.vr === 'FL' || el.vr === 'FD') {
      out.set(tag, ds.elementNumbers(el).join('\\'));
    } else if (el.vr === 'OB' || el.vr === 'OW' || el.vr === 'UN') {
      continue;
    } else {
      out.set(tag, ds.elementStrings(el).join('\\'));
    }
  }
  return out;
}

/** Orthanc's zlib attachment format: the uncompressed size (uint64 LE), then a zlib stream. */
export function compressOrthanc(content: Buffer): Buffer {
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(content.length));
  return Buffer.concat([size, deflateSync(content)]);
}

export function decompressOrthanc(stored: Buffer): Buffer {
  if (stored.length < 8) throw new PacsError('CorruptedFile', 'compressed attachment shorter than its header');
  const expected = Number(stored.readBigUInt64LE(0));
  const content = inflateSync(stored.subarray(8));
  if (content.length !== expected) throw new PacsError('CorruptedFile', 'compressed attachment has the wrong size');
  return content;
}
