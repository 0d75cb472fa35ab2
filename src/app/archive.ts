/**
 * ZIP archives and DICOMDIR media of stored resources (Orthanc's ArchiveJob), produced as a stream.
 *
 * Two steps, so that a job can wrap them (progress from the plan, output to a file) as well as a synchronous HTTP
 * answer (output to the response):
 *
 * 1. `planArchive(ctx, request)` resolves the resources (an unknown ID, or one of another level than the route's,
 *    is a 404 before anything is sent), merges them as Orthanc does (a resource and its ancestor: the ancestor's
 *    whole content; several instances of a series: just those) and names every file: the list of entries with
 *    their sizes, computed from the index alone.
 * 2. `writeArchive(ctx, plan, output, signal)` streams each stored file into a `ZipWriter` over `output` (memory
 *    does not grow with the archive), then, for media, the DICOMDIR. `ArchiveWriter` does the same one file per
 *    call, for the archive jobs (`app/archive-job.ts`), whose steps write one file each.
 *
 * Orthanc's layout (1.12, ArchiveJob + HierarchicalZipWriter):
 * - archive: `{PatientID} {PatientName}/{AccessionNumber} {StudyDescription}/{Modality} {SeriesDescription}/` then
 *   `CT000000.dcm`... (the first two letters of the modality, upper case, and a counter from 0 per series, on 8
 *   characters in all: `%08d.dcm` without a modality, `M%07d.dcm` with a one-letter one). Folders are visited in the
 *   order of their Orthanc IDs, instances in the order they were stored. A folder name with nothing left after
 *   cleaning is `Unknown Patient` / `Unknown Study` / `Unknown Series`.
 * - names are cleaned: non-ASCII and control characters dropped, `^` made a space, runs of white space made one
 *   space, anything but letters, digits, `.`, `_` and space dropped, leading and trailing spaces removed; the
 *   second file or folder of the same name in a folder gets `-2`, the third `-3`...
 * - media: every instance in `IMAGES/` as `IM0`, `IM1`... (8-character file IDs, PS3.10 §8.2), and `DICOMDIR` last.
 *
 * Files are stored (no compression: DICOM pixel data gains little, and storing keeps the throughput of the disk);
 * `compression: 'deflate'` deflates them as Orthanc does (level 6).
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createInflate } from 'node:zlib';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { ZipWriter } from '../core/zip-writer.js';
import { DicomDirBuilder } from '../dicom/dicomdir.js';
import { NeedMoreBytes, readPart10, type ParsedDicom } from '../dicom/reader.js';
import { Tags, type Tag } from '../dicom/tag.js';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian, isKnownTransferSyntax, transferSyntax } from '../dicom/transfer-syntax.js';
import { buildMetaHeader } from '../dicom/writer.js';
import { canTranscode, transcodeDataset } from '../dimse/scu/transcode.js';
import { LEVEL_NAMES, Level } from '../store/levels.js';
import { MetadataType, type AttachmentInfo, type ResourceRow, type SqliteIndex } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';

const log = logger('http');

/** What the archive needs from the application context. */
export interface ArchiveContext {
  index: SqliteIndex;
  store: DicomStore;
}

export interface ArchiveRequest {
  /** Orthanc IDs of patients, studies, series or instances. */
  resources: readonly string[];
  /** For the single-resource routes: the level every ID must have (another level is an unknown resource). */
  level?: Level;
  /** A DICOMDIR media instead of a plain archive. */
  media?: boolean;
  /** Extended DICOMDIR (Series Description in the series records). */
  extended?: boolean;
  /** Transfer syntax UID to write the files in (see `checkTranscodeTarget`). */
  transcode?: string;
  /** `store` (default) or `deflate` the files. */
  compression?: 'store' | 'deflate';
}

export interface ArchiveEntry {
  /** Path in the ZIP. */
  path: string;
  /** Orthanc ID of the instance. */
  instanceId: string;
  /** The stored DICOM file. */
  attachment: AttachmentInfo;
  /** Media: the file ID in the DICOMDIR (`['IMAGES', 'IM0']`). */
  fileId?: string[];
  /** Media: where the pixel data starts (PixelDataOffset metadata), to read only the head for the DICOMDIR. */
  pixelDataOffset?: number;
}

export interface ArchivePlan {
  media: boolean;
  extended: boolean;
  transcode?: string;
  compression: 'store' | 'deflate';
  entries: ArchiveEntry[];
  /** Sum of the stored files' sizes (uncompressed). */
  uncompressedSize: number;
}

export interface ArchiveProgress {
  /** Instances written (or skipped) so far, out of `total`. */
  done: number;
  total: number;
  /** Archive bytes written so far. */
  archiveSize: number;
}

export interface ArchiveResult {
  instancesCount: number;
  /** Instances deleted (or whose file vanished) after the plan was made: left out, as Orthanc does. */
  skipped: number;
  archiveSize: number;
  uncompressedSize: number;
}

/** Transfer syntaxes an archive can be transcoded to: the uncompressed ones `dimse/scu/transcode.ts` writes. */
export const ARCHIVE_TRANSCODE_TARGETS: readonly string[] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian];

/** Checks a `Transcode` value: an unknown UID is Orthanc's 400; a syntax needing a codec is not supported yet. */
export function checkTranscodeTarget(uid: string): string {
  const value = uid.trim();
  if (!isKnownTransferSyntax(value)) {
    throw new PacsError('ParameterOutOfRange', `Unknown transfer syntax: ${uid}`, { httpStatus: 400 });
  }
  if (!ARCHIVE_TRANSCODE_TARGETS.includes(value)) {
    throw new PacsError(
      'BadRequest',
      `transcoding archives to ${transferSyntax(value).name} (${value}) is not supported yet: only ${ARCHIVE_TRANSCODE_TARGETS.join(' and ')}`,
    );
  }
  return value;
}

// ------------------------------------------------------------------------------------------------ naming

const IS_SPACE = /[ \t\n\v\f\r]/;

/** Orthanc's `HierarchicalZipWriter::Index::KeepAlphanumeric`. */
export function cleanZipName(source: string): string {
  let out = '';
  let lastSpace = false;
  for (const ch of source) {
    const c = ch === '^' ? ' ' : ch;
    if (c.charCodeAt(0) > 127) continue;
    if (IS_SPACE.test(c)) {
      if (!lastSpace) {
        lastSpace = true;
        out += ' ';
      }
    } else if (/[A-Za-z0-9._]/.test(c)) {
      out += c;
      lastSpace = false;
    }
  }
  return out.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
}

/** Orthanc's `Toolbox::ConvertToAscii` then `StripSpaces`. */
function asciiStripped(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '').replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
}

/** The folders of the archive being named, each with the names it already holds (Orthanc's unique names). */
class ZipNames {
  private readonly stack: Array<{ name: string; content: Map<string, number> }> = [{ name: '', content: new Map() }];

  private unique(name: string, fallback: string): string {
    const clean = cleanZipName(name) || cleanZipName(fallback);
    const content = this.stack[this.stack.length - 1]!.content;
    const seen = content.get(clean);
    if (seen === undefined) {
      content.set(clean, 1);
      return clean;
    }
    content.set(clean, seen + 1);
    return `${clean}-${seen + 1}`;
  }

  openDirectory(name: string, fallback: string): void {
    const unique = this.unique(name, fallback);
    this.stack.push({ name: unique, content: new Map() });
  }

  closeDirectory(): void {
    if (this.stack.length > 1) this.stack.pop();
  }

  file(name: string): { path: string; name: string } {
    const unique = this.unique(name, 'file');
    const dirs = this.stack.slice(1).map((d) => `${d.name}/`).join('');
    return { path: `${dirs}${unique}`, name: unique };
  }
}

function tag(tags: Map<Tag, string>, t: Tag): string {
  return tags.get(t) ?? '';
}

function upperAscii(c: string | undefined): string {
  return c !== undefined && c >= 'a' && c <= 'z' ? c.toUpperCase() : (c ?? '');
}

/** Orthanc's instance names in a series folder: modality letters and a counter, 8 characters before `.dcm`. */
export function instanceFileName(modality: string, counter: number): string {
  if (modality.length === 0) return `${String(counter).padStart(8, '0')}.dcm`;
  if (modality.length === 1) return `${upperAscii(modality[0])}${String(counter).padStart(7, '0')}.dcm`;
  return `${upperAscii(modality[0])}${upperAscii(modality[1])}${String(counter).padStart(6, '0')}.dcm`;
}

// ------------------------------------------------------------------------------------------------ planning

interface PlanNode {
  row: ResourceRow;
  /** The whole resource is wanted (its children are listed from the index when visited). */
  full: boolean;
  /** Patients, studies: the children wanted; series: none (see `instances`). */
  children: Map<string, PlanNode>;
  /** Series not wanted whole: the instances wanted, in the order asked (and their internal IDs). */
  instances: ResourceRow[];
  instanceIds: Set<number>;
}

function node(row: ResourceRow): PlanNode {
  return { row, full: false, children: new Map(), instances: [], instanceIds: new Set() };
}

/**
 * Resolves the resources and lists the archive's files (Orthanc's ArchiveIndex and visitors). Throws
 * `UnknownResource` (404) for an unknown ID or one of another level than `request.level`.
 */
export function planArchive(ctx: ArchiveContext, request: ArchiveRequest): ArchivePlan {
  const { index } = ctx;
  const roots = new Map<string, PlanNode>();
  for (const id of request.resources) {
    const row = index.findByPublicId(id);
    if (!row || (request.level !== undefined && row.level !== request.level)) {
      const what = request.level !== undefined ? LEVEL_NAMES[request.level].toLowerCase() : 'resource';
      throw new PacsError('UnknownResource', `unknown ${what}: ${id}`);
    }
    let map = roots;
    let parent: PlanNode | undefined;
    for (const r of index.ancestry(row.id)) {
      if (r.level === Level.Instance) {
        if (parent && !parent.instanceIds.has(r.id)) {
          parent.instanceIds.add(r.id);
          parent.instances.push(r);
        }
        break;
      }
      let n = map.get(r.publicId);
      if (!n) {
        n = node(r);
        map.set(r.publicId, n);
      }
      if (n.full) break; // already wanted whole
      if (r.id === row.id) {
        n.full = true;
        n.children.clear();
        n.instances = [];
        n.instanceIds.clear();
        break;
      }
      parent = n;
      map = n.children;
    }
  }

  const media = request.media ?? false;
  const names = new ZipNames();
  const instances: Array<{ row: ResourceRow; path: string; fileId?: string[] }> = [];
  let mediaCounter = 0;
  if (media) names.openDirectory('IMAGES', 'IMAGES');

  const visit = (map: Map<string, PlanNode>, level: Level) => {
    // Orthanc keeps resources in a std::map: folders come in the order of their IDs.
    const sorted = [...map.values()].sort((a, b) => (a.row.publicId < b.row.publicId ? -1 : a.row.publicId > b.row.publicId ? 1 : 0));
    for (const n of sorted) {
      const tags = index.mainTags(n.row.id);
      let modality = '';
      if (!media) {
        let name: string;
        if (level === Level.Patient) name = `${tag(tags, Tags.PatientID)} ${tag(tags, Tags.PatientName)}`;
        else if (level === Level.Study) name = `${tag(tags, Tags.AccessionNumber)} ${tag(tags, Tags.StudyDescription)}`;
        else {
          modality = tag(tags, Tags.Modality);
          name = `${modality} ${tag(tags, Tags.SeriesDescription)}`;
        }
        names.openDirectory(asciiStripped(name), `Unknown ${LEVEL_NAMES[level]}`);
      }
      if (level === Level.Series) {
        const rows = n.full ? index.children(n.row.id) : n.instances;
        let counter = 0;
        for (const row of rows) {
          if (media) {
            const f = names.file(`IM${mediaCounter++}`);
            instances.push({ row, path: f.path, fileId: ['IMAGES', f.name] });
          } else {
            instances.push({ row, path: names.file(instanceFileName(modality, counter++)).path });
          }
        }
      } else {
        const children = n.full
          ? new Map(index.children(n.row.id).map((c) => [c.publicId, { ...node(c), full: true }] as const))
          : n.children;
        visit(children, level + 1);
      }
      if (!media) names.closeDirectory();
    }
  };
  visit(roots, Level.Patient);

  const ids = instances.map((i) => i.row.id);
  const attachments = index.dicomAttachmentsOf(ids);
  const offsets = media ? index.metadataOf(ids, MetadataType.PixelDataOffset) : new Map<number, string>();
  const entries: ArchiveEntry[] = [];
  let uncompressedSize = 0;
  for (const i of instances) {
    const attachment = attachments.get(i.row.id);
    if (!attachment) continue; // as Orthanc: an instance without its file is left out
    const offset = Number(offsets.get(i.row.id) ?? NaN);
    entries.push({
      path: i.path,
      instanceId: i.row.publicId,
      attachment,
      ...(i.fileId ? { fileId: i.fileId } : {}),
      ...(Number.isFinite(offset) && offset > 0 ? { pixelDataOffset: offset } : {}),
    });
    uncompressedSize += attachment.uncompressedSize;
  }
  return {
    media,
    extended: request.extended ?? false,
    ...(request.transcode !== undefined ? { transcode: checkTranscodeTarget(request.transcode) } : {}),
    compression: request.compression ?? 'store',
    entries,
    uncompressedSize,
  };
}

// ------------------------------------------------------------------------------------------------ writing

/** Head bytes kept for the DICOMDIR when the pixel data offset is unknown (files without pixel data are small). */
const HEAD_WITHOUT_OFFSET = 1 << 20;

let running = 0;

/** Archives being written right now (observability, tests). */
export function runningArchives(): number {
  return running;
}

/**
 * The stored file of an instance as a stream, inflated when stored compressed (Orthanc's zlib format); `file` is
 * the stream that holds the file descriptor (the same one when the file is not compressed).
 */
function openStoredFile(store: DicomStore, att: AttachmentInfo): { stream: Readable; file: Readable } {
  if (att.compression !== 2) {
    const file = store.storage.createReadStream(att.uuid);
    return { stream: file, file };
  }
  // 8 bytes of uncompressed size, then a zlib stream (inflated as it is read: reading, inflating and sending overlap).
  const file = store.storage.createReadStream(att.uuid, { start: 8, end: att.compressedSize });
  const inflate = createInflate({ chunkSize: 256 * 1024 });
  pipeline(file, inflate).catch(() => undefined); // errors surface on `inflate`, which its reader sees
  return { stream: inflate, file };
}

/** Destroys a stream and resolves once it has closed (for a file: once its descriptor is closed). */
async function destroyed(stream: Readable): Promise<void> {
  if (stream.closed) return;
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  stream.destroy();
  await closed;
}

/** A stored file being read: its chunks, and `release()` (idempotent), which resolves once the file is closed. */
interface OpenFile {
  chunks: AsyncIterable<Buffer>;
  release(): Promise<void>;
}

/**
 * Opens a stored file and reads its first chunk before anything is written, so that a file gone since the plan
 * is skipped (undefined) instead of leaving half an entry. The caller releases it however the writing ends (the
 * file is then closed before the writing ends, so that an archive that stopped holds no file open).
 */
async function openChecked(store: DicomStore, att: AttachmentInfo): Promise<OpenFile | undefined> {
  const { stream, file } = openStoredFile(store, att);
  let released: Promise<void> | undefined;
  const release = () => {
    released ??= (async () => {
      stream.destroy();
      await destroyed(file);
    })();
    return released;
  };
  const it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let first: IteratorResult<Buffer>;
  try {
    first = await it.next();
  } catch (e) {
    await release();
    if (isMissingFile(e)) return undefined;
    throw e;
  }
  const chunks = async function* () {
    if (!first.done) yield first.value;
    while (true) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  };
  return { chunks: chunks(), release };
}

function isMissingFile(e: unknown): boolean {
  return (e as NodeJS.ErrnoException).code === 'ENOENT' || (e instanceof PacsError && e.code === 'InexistentFile');
}

async function* capture(source: AsyncIterable<Buffer>, limit: number, into: Buffer[]): AsyncGenerator<Buffer> {
  let kept = 0;
  for await (const chunk of source) {
    if (kept < limit) {
      const part = chunk.subarray(0, limit - kept);
      into.push(Buffer.from(part));
      kept += part.length;
    }
    yield chunk;
  }
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(c);
  return Buffer.concat(chunks);
}

/** The file converted to `target` when this can be done here; else unchanged (as Orthanc when a transcoding fails). */
function transcodeFile(bytes: Buffer, parsed: ParsedDicom, target: string, instanceId: string): { data: Buffer; syntax: string } {
  const from = parsed.transferSyntaxUid;
  if (from === target) return { data: bytes, syntax: from };
  if (!canTranscode(from, target)) {
    log.info(`archive: instance ${instanceId} is kept in ${transferSyntax(from).name}: it cannot be converted to ${transferSyntax(target).name} yet`);
    return { data: bytes, syntax: from };
  }
  const ds = parsed.dataset;
  const meta = parsed.meta;
  const header = buildMetaHeader({
    sopClassUid: meta.text(Tags.MediaStorageSOPClassUID) ?? ds.text(Tags.SOPClassUID) ?? '',
    sopInstanceUid: meta.text(Tags.MediaStorageSOPInstanceUID) ?? ds.text(Tags.SOPInstanceUID) ?? '',
    transferSyntaxUid: target,
    sourceAet: meta.text(Tags.SourceApplicationEntityTitle),
  });
  return { data: Buffer.concat([header, transcodeDataset(parsed, target)]), syntax: target };
}

/**
 * Writes the archive of a plan one file at a time (what a job's steps need: a step per file, the state kept between
 * steps): `writeNext()` adds the next file, `finish()` the DICOMDIR (media) and the central directory, then ends
 * the output. A call that fails (an I/O error, `signal` aborting, the output closing) leaves the writer unusable.
 */
export class ArchiveWriter {
  private readonly zip: ZipWriter;
  private readonly dicomdir: DicomDirBuilder | undefined;
  private readonly entryOptions: { method: 'store' | 'deflate'; date: Date };
  private next = 0;
  private skipped = 0;
  private uncompressedSize = 0;

  constructor(
    private readonly ctx: ArchiveContext,
    readonly plan: ArchivePlan,
    output: Writable,
    private readonly signal?: AbortSignal,
  ) {
    this.zip = new ZipWriter(output, { signal });
    this.dicomdir = plan.media ? new DicomDirBuilder({ extended: plan.extended }) : undefined;
    this.entryOptions = { method: plan.compression, date: new Date() };
  }

  /** Files of the plan handled so far (written, or skipped because they were gone). */
  get done(): number {
    return this.next;
  }

  /** Archive bytes written so far. */
  get archiveSize(): number {
    return this.zip.bytesWritten;
  }

  progress(): ArchiveProgress {
    return { done: this.next, total: this.plan.entries.length, archiveSize: this.zip.bytesWritten };
  }

  /** Writes the next file of the plan (or leaves it out when it is gone); false once every file has been handled. */
  async writeNext(): Promise<boolean> {
    const { plan, ctx, dicomdir, zip, entryOptions } = this;
    if (this.next >= plan.entries.length) return false;
    this.signal?.throwIfAborted();
    const { store } = ctx;
    const entry = plan.entries[this.next]!;
    const size = entry.attachment.uncompressedSize;
    const source = await openChecked(store, entry.attachment);
    if (!source) {
      log.warn(`archive: instance ${entry.instanceId} was removed after the archive was planned; left out`);
      this.skipped++;
      this.next++;
      return true;
    }
    try {
      if (plan.transcode !== undefined) {
        const bytes = await collect(source.chunks);
        const parsed = readPart10(bytes, { defaultEncoding: store.options.defaultEncoding });
        const { data, syntax } = transcodeFile(bytes, parsed, plan.transcode, entry.instanceId);
        await zip.addBuffer(entry.path, data, entryOptions);
        if (dicomdir && entry.fileId) dicomdir.add(entry.fileId, parsed, syntax);
        this.uncompressedSize += data.length;
      } else if (dicomdir && entry.fileId) {
        const limit = Math.min(size, entry.pixelDataOffset !== undefined ? entry.pixelDataOffset + 12 : HEAD_WITHOUT_OFFSET);
        const head: Buffer[] = [];
        await zip.addStream(entry.path, capture(source.chunks, limit, head), { ...entryOptions, size });
        dicomdir.add(entry.fileId, await parseHead(ctx, Buffer.concat(head), size, entry.instanceId));
        this.uncompressedSize += size;
      } else {
        await zip.addStream(entry.path, source.chunks, { ...entryOptions, size });
        this.uncompressedSize += size;
      }
    } finally {
      await source.release();
    }
    this.next++;
    return true;
  }

  /** Media: adds the DICOMDIR; then writes the central directory and ends the output (waits for it to finish). */
  async finish(): Promise<ArchiveResult> {
    if (this.dicomdir) await this.zip.addBuffer('DICOMDIR', this.dicomdir.encode(), this.entryOptions);
    const archiveSize = await this.zip.finish();
    return {
      instancesCount: this.next - this.skipped,
      skipped: this.skipped,
      archiveSize,
      uncompressedSize: this.uncompressedSize,
    };
  }
}

/**
 * Writes the archive of `plan` to `output` and ends it. Rejects when `signal` aborts or the output closes (a
 * client gone), after releasing the file being read; the output is then left to the caller to destroy.
 */
export async function writeArchive(
  ctx: ArchiveContext,
  plan: ArchivePlan,
  output: Writable,
  signal?: AbortSignal,
  onProgress?: (progress: ArchiveProgress) => void,
): Promise<ArchiveResult> {
  running++;
  try {
    const writer = new ArchiveWriter(ctx, plan, output, signal);
    while (await writer.writeNext()) onProgress?.(writer.progress());
    return await writer.finish();
  } finally {
    running--;
  }
}

/** The dataset for the DICOMDIR from the bytes captured; the whole file when they end before the pixel data. */
async function parseHead(ctx: ArchiveContext, head: Buffer, size: number, instanceId: string): Promise<ParsedDicom> {
  const defaultEncoding = ctx.store.options.defaultEncoding;
  try {
    return readPart10(head, { untilPixelData: true, partial: head.length < size, defaultEncoding });
  } catch (e) {
    if (!(e instanceof NeedMoreBytes)) throw e;
    return ctx.store.parseInstance(instanceId, { untilPixelData: true });
  }
}

/** Plans and writes in one call: `(resources, options, output, signal)`, the shape a job wraps. */
export async function createArchive(
  ctx: ArchiveContext,
  request: ArchiveRequest,
  output: Writable,
  signal?: AbortSignal,
  onProgress?: (progress: ArchiveProgress) => void,
): Promise<ArchiveResult> {
  return writeArchive(ctx, planArchive(ctx, request), output, signal, onProgress);
}
