/**
 * Metadata and attachments of resources as Orthanc's REST API changes them: names and numbers (core ones and the
 * `UserMetadata` / `UserContentType` ones), revision checks, user attachments streamed into the storage area,
 * Orthanc's zlib format, compression changes and MD5 verification.
 *
 * An attachment is written whole or not at all, as an instance is (docs/storage.md): the bytes go to a pending
 * write (`<uuid>.tmp`, fsync'ed), one index transaction checks the revision and replaces the row (the trigger
 * queues the replaced file in pending_files), the pending write is published in the same tick, and the replaced
 * file is removed after the commit. A refusal at any step discards the pending write and changes nothing.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { Readable, pipeline as pipelineCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDeflate, createInflate } from 'node:zlib';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { LEVEL_PATHS, type Level } from './levels.js';
import { ChangeType, DICOM_ATTACHMENT, type AttachmentInfo, type ResourceRow, type SqliteIndex } from './sqlite-index.js';
import type { PendingWrite, StorageArea } from './storage-area.js';
import { compressOrthanc, isoNow, type DicomStore } from './store.js';

const log = logger('store');

/** Orthanc's first user metadata and content type number (`MetadataType_StartUser`, `FileContentType_StartUser`). */
export const START_USER = 1024;
export const END_USER = 65535;

/** Orthanc's names of the core metadata (ServerEnumerations.cpp, 1.12). */
export const CORE_METADATA_NAMES: Readonly<Record<number, string>> = {
  1: 'IndexInSeries',
  2: 'ReceptionDate',
  3: 'RemoteAET',
  4: 'ExpectedNumberOfInstances',
  5: 'ModifiedFrom',
  6: 'AnonymizedFrom',
  7: 'LastUpdate',
  8: 'Origin',
  9: 'TransferSyntax',
  10: 'SopClassUid',
  11: 'RemoteIP',
  12: 'CalledAET',
  13: 'HttpUsername',
  14: 'PixelDataOffset',
  15: 'MainDicomTagsSignature',
  16: 'MainDicomSequences',
};

/** Orthanc's names of the core attachment content types. */
export const CORE_CONTENT_TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'dicom',
  2: 'dicom-as-json',
  3: 'dicom-until-pixel-data',
};

export const DICOM_AS_JSON_ATTACHMENT = 2;

export function isUserNumber(n: number): boolean {
  return n >= START_USER && n <= END_USER;
}

/**
 * A two-way dictionary as Orthanc's EnumerationDictionary: a name maps to its number, an integer string to itself,
 * and a number without a name is written as its decimal string. An unknown name is Orthanc's 404 "Accessing an
 * inexistent item".
 */
export class NameDictionary {
  private readonly byName = new Map<string, number>();
  private readonly byNumber = new Map<number, string>();

  constructor(core: Readonly<Record<number, string>>, user: Readonly<Record<string, number>>) {
    for (const [n, name] of Object.entries(core)) this.add(Number(n), name);
    for (const [name, n] of Object.entries(user)) this.add(n, name);
  }

  private add(n: number, name: string): void {
    this.byName.set(name, n);
    this.byNumber.set(n, name);
  }

  /** The number of a name or of an integer string (Orthanc's `Toolbox::IsInteger`: optional `-`, digits). */
  parse(text: string, what: string): number {
    const trimmed = text.trim();
    if (/^-?\d+$/.test(trimmed)) {
      const n = Number(trimmed);
      // Orthanc casts to a C int: out of that range nothing can match.
      return Number.isSafeInteger(n) && n >= -0x80000000 && n <= 0x7fffffff ? n : -1;
    }
    const n = this.byName.get(text);
    if (n === undefined) throw new PacsError('InexistentItem', `unknown ${what}: ${JSON.stringify(text)}`);
    return n;
  }

  name(n: number): string {
    return this.byNumber.get(n) ?? String(n);
  }
}

/** `UserContentType` values: a number, or `[number, "mime/type"]`. */
export type UserContentTypes = Readonly<Record<string, number | readonly [number, string]>>;

/** Names and MIME types of metadata and content types, from Orthanc's core tables and the configuration. */
export class ResourceNames {
  readonly metadata: NameDictionary;
  readonly contentTypes: NameDictionary;
  private readonly mimeTypes = new Map<number, string>();

  constructor(userMetadata: Readonly<Record<string, number>>, userContentTypes: UserContentTypes) {
    this.metadata = new NameDictionary(CORE_METADATA_NAMES, userMetadata);
    const numbers: Record<string, number> = {};
    for (const [name, value] of Object.entries(userContentTypes)) {
      if (typeof value === 'number') {
        numbers[name] = value;
      } else {
        numbers[name] = value[0];
        this.mimeTypes.set(value[0], value[1]);
      }
    }
    this.contentTypes = new NameDictionary(CORE_CONTENT_TYPE_NAMES, numbers);
  }

  /** Orthanc's `GetFileContentMime`: the configured MIME type of a user content type, else by core type. */
  mimeType(contentType: number): string {
    const configured = isUserNumber(contentType) ? this.mimeTypes.get(contentType) : undefined;
    if (configured !== undefined) return configured;
    if (contentType === DICOM_ATTACHMENT) return 'application/dicom';
    if (contentType === DICOM_AS_JSON_ATTACHMENT) return 'application/json; charset=utf-8';
    return 'application/octet-stream';
  }
}

/** The revision a client says it is updating (from `If-Match`: Orthanc's ETag is `"<revision>-<md5>"`). */
export interface RevisionCheck {
  revision: number;
  md5: string;
}

export function md5Hex(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

function checkRevision(current: { revision: number; md5: string }, expected: RevisionCheck | undefined): void {
  if (expected && (expected.revision !== current.revision || expected.md5 !== current.md5)) {
    throw new PacsError('Revision');
  }
}

/** Bodies up to this size are collected in memory and written in one call; larger ones stream to disk. */
const IN_MEMORY_BODY = 1 << 20;
/** Chunk size when re-reading a spooled body. */
const READ_CHUNK = 1 << 20;

export interface BodyLimits {
  /** 0 = no limit. */
  maxBytes: number;
  tooLarge: () => Error;
}

/** What the REST routes need from the store. */
export type AttachmentsHost = Pick<DicomStore, 'index' | 'storage' | 'options' | 'flushPendingFiles' | 'emit'>;

export class ResourceAttachments {
  private readonly index: SqliteIndex;
  private readonly storage: StorageArea;

  constructor(private readonly host: AttachmentsHost) {
    this.index = host.index;
    this.storage = host.storage;
  }

  /** The resource, or Orthanc's 404 `Unknown resource`. */
  resource(publicId: string, level: Level): ResourceRow {
    const row = this.index.findByPublicId(publicId);
    if (!row || row.level !== level) throw new PacsError('UnknownResource', `unknown ${LEVEL_PATHS[level]}: ${publicId}`);
    return row;
  }

  // ---------------------------------------------------------------- metadata

  /**
   * Sets a metadata value and logs UpdatedMetadata; with `check` the current value (if any) must have that revision
   * and MD5 (409 otherwise). Returns the new revision (0 for a new value).
   */
  setMetadata(publicId: string, level: Level, type: number, value: string, check: RevisionCheck | undefined): number {
    const revision = this.index.transaction(() => {
      const row = this.resource(publicId, level);
      const current = this.index.getMetadata(row.id, type);
      if (current) checkRevision({ revision: current.revision, md5: md5Hex(current.value) }, check);
      return this.index.setMetadata(row, type, value, isoNow());
    });
    this.emitChange(ChangeType.UpdatedMetadata, level, publicId);
    return revision;
  }

  /** Deletes a metadata value (logs UpdatedMetadata); false when there was none. */
  deleteMetadata(publicId: string, level: Level, type: number, check: RevisionCheck | undefined): boolean {
    const deleted = this.index.transaction(() => {
      const row = this.resource(publicId, level);
      const current = this.index.getMetadata(row.id, type);
      if (!current) return false;
      checkRevision({ revision: current.revision, md5: md5Hex(current.value) }, check);
      return this.index.deleteMetadata(row, type, isoNow());
    });
    if (deleted) this.emitChange(ChangeType.UpdatedMetadata, level, publicId);
    return deleted;
  }

  // ---------------------------------------------------------------- attachments

  attachment(publicId: string, level: Level, contentType: number): AttachmentInfo | undefined {
    return this.index.attachment(this.resource(publicId, level).id, contentType);
  }

  /**
   * Stores `body` as the attachment `contentType` of the resource (compressed when `StorageCompression` is on),
   * replacing the current one. Large bodies stream to disk; nothing is visible before the commit. Returns the new
   * revision and the MD5 of the body.
   */
  async putAttachment(
    publicId: string,
    level: Level,
    contentType: number,
    body: AsyncIterable<Buffer | string>,
    limits: BodyLimits,
    check: RevisionCheck | undefined,
  ): Promise<{ revision: number; md5: string }> {
    // A revision that already conflicts is refused before the body is read (it is checked again at the commit).
    if (check) {
      const old = this.index.attachment(this.resource(publicId, level).id, contentType);
      if (old) checkRevision({ revision: old.revision, md5: old.uncompressedMd5 }, check);
    }
    const compress = this.host.options.storageCompression;
    const uuid = randomUUID();
    const md5 = createHash('md5');
    const head: Buffer[] = [];
    let size = 0;
    // Beyond IN_MEMORY_BODY the body streams to `spool`: the final file when stored as is, else a scratch file
    // (under its own UUID, never published: start-up recovery discards it after a crash) to compress from.
    let spool: PendingWrite | undefined;
    let target: PendingWrite | undefined;
    try {
      for await (const piece of body) {
        const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
        size += chunk.length;
        if (limits.maxBytes > 0 && size > limits.maxBytes) throw limits.tooLarge();
        md5.update(chunk);
        if (spool) {
          await spool.write(chunk);
        } else {
          head.push(chunk);
          if (size > IN_MEMORY_BODY) {
            spool = await this.storage.begin(compress ? randomUUID() : uuid);
            await spool.write(Buffer.concat(head));
            head.length = 0;
          }
        }
      }
      const uncompressedMd5 = md5.digest('hex');
      let stored: { size: number; md5: string };
      if (!spool) {
        const content = Buffer.concat(head);
        const bytes = compress ? compressOrthancAllowingEmpty(content) : content;
        target = await this.storage.begin(uuid);
        await target.writeAll(bytes);
        stored = { size: bytes.length, md5: compress ? md5Hex(bytes) : uncompressedMd5 };
      } else if (!compress) {
        await spool.finish();
        target = spool;
        spool = undefined;
        stored = { size, md5: uncompressedMd5 };
      } else {
        await spool.finish();
        target = await this.storage.begin(uuid);
        stored = await writeCompressed(target, spoolReader(spool, size), size);
        await target.finish();
        await spool.abort();
        spool = undefined;
      }
      const revision = this.commitAttachment(publicId, level, target, check, {
        contentType,
        uuid,
        compressedSize: stored.size,
        uncompressedSize: size,
        compression: compress ? 2 : 1,
        uncompressedMd5,
        compressedMd5: stored.md5,
      });
      target = undefined;
      await this.host.flushPendingFiles();
      return { revision, md5: uncompressedMd5 };
    } catch (e) {
      await spool?.abort().catch(() => undefined);
      await target?.abort().catch(() => undefined);
      throw e;
    }
  }

  /** Deletes an attachment (logs UpdatedAttachment for user types); false when there was none. */
  async deleteAttachment(publicId: string, level: Level, contentType: number, check: RevisionCheck | undefined): Promise<boolean> {
    const deleted = this.index.transaction(() => {
      const row = this.resource(publicId, level);
      const current = this.index.attachment(row.id, contentType);
      if (!current) return false;
      checkRevision({ revision: current.revision, md5: current.uncompressedMd5 }, check);
      this.index.deleteAttachmentRow(row.id, contentType);
      if (isUserNumber(contentType)) this.index.logChange(ChangeType.UpdatedAttachment, row.id, row.level, row.publicId, isoNow());
      return true;
    });
    if (deleted) {
      if (isUserNumber(contentType)) this.emitChange(ChangeType.UpdatedAttachment, level, publicId);
      await this.host.flushPendingFiles();
    }
    return deleted;
  }

  /**
   * Rewrites an attachment stored with zlib (`compress`) or as is, as Orthanc's `/compress` and `/uncompress`:
   * a new file and a new revision; nothing happens when it already is so. The content is streamed and its MD5
   * checked against the index before the commit.
   */
  async changeCompression(publicId: string, level: Level, contentType: number, compress: boolean): Promise<void> {
    const current = this.attachment(publicId, level, contentType);
    if (!current) throw new PacsError('UnknownResource', `no attachment ${contentType} on ${LEVEL_PATHS[level]}/${publicId}`);
    if ((current.compression === 2) === compress) return;
    const uuid = randomUUID();
    let target: PendingWrite | undefined = await this.storage.begin(uuid);
    try {
      const content = this.contentStream(current);
      const contentMd5 = createHash('md5');
      const counted = hashing(content, contentMd5);
      let stored: { size: number; md5: string };
      if (compress) {
        stored = await writeCompressed(target, counted, current.uncompressedSize);
      } else {
        const md5 = createHash('md5');
        let size = 0;
        for await (const chunk of counted) {
          md5.update(chunk);
          size += chunk.length;
          await target.write(chunk);
        }
        stored = { size, md5: md5.digest('hex') };
      }
      // Nothing was written for an empty content: the (empty) file must exist all the same.
      if (stored.size === 0) await target.writeAll(Buffer.alloc(0));
      else await target.finish();
      const actual = contentMd5.digest('hex');
      if (current.uncompressedMd5 !== '' && actual !== current.uncompressedMd5) {
        throw new PacsError('CorruptedFile', `attachment ${current.uuid} does not match its MD5`);
      }
      this.commitAttachment(publicId, level, target, { revision: current.revision, md5: current.uncompressedMd5 }, {
        contentType,
        uuid,
        compressedSize: stored.size,
        uncompressedSize: current.uncompressedSize,
        compression: compress ? 2 : 1,
        uncompressedMd5: current.uncompressedMd5,
        compressedMd5: stored.md5,
      });
      target = undefined;
      await this.host.flushPendingFiles();
    } catch (e) {
      await target?.abort().catch(() => undefined);
      throw e;
    }
  }

  /** The attachment's content (inflated when stored compressed), streamed from the storage area. */
  contentStream(att: AttachmentInfo): Readable {
    if (att.compression !== 2) return this.storage.createReadStream(att.uuid);
    // Orthanc stores an empty content compressed as an empty file.
    if (att.compressedSize === 0) return Readable.from([]);
    const raw = this.storage.createReadStream(att.uuid, { start: 8, end: att.compressedSize });
    return pipelineCallback(raw, createInflate(), () => undefined);
  }

  /** The bytes as stored (compressed or not). */
  storedStream(att: AttachmentInfo): Readable {
    if (att.compressedSize === 0) return Readable.from([]);
    return this.storage.createReadStream(att.uuid);
  }

  /** Orthanc's `verify-md5`: the stored bytes against the compressed MD5, then (compressed) the content's. */
  async verifyMd5(att: AttachmentInfo): Promise<boolean> {
    try {
      const stored = createHash('md5');
      for await (const chunk of this.storedStream(att)) stored.update(chunk as Buffer);
      if (stored.digest('hex') !== att.compressedMd5) return false;
      if (att.compression !== 2) return true;
      const content = createHash('md5');
      for await (const chunk of this.contentStream(att)) content.update(chunk as Buffer);
      return content.digest('hex') === att.uncompressedMd5;
    } catch (e) {
      // A missing file or a broken zlib stream: the attachment does not verify.
      log.warn(`verify-md5 of attachment ${att.uuid}: ${(e as Error).message}`);
      return false;
    }
  }

  /** The index transaction (revision check, row replaced, change logged), then the publication in the same tick. */
  private commitAttachment(
    publicId: string,
    level: Level,
    pending: PendingWrite,
    check: RevisionCheck | undefined,
    info: Omit<AttachmentInfo, 'revision'>,
  ): number {
    const revision = this.index.transaction(() => {
      const row = this.resource(publicId, level);
      const old = this.index.attachment(row.id, info.contentType);
      let next = 0;
      if (old) {
        checkRevision({ revision: old.revision, md5: old.uncompressedMd5 }, check);
        next = old.revision + 1;
      }
      this.index.putAttachmentRow(row.id, { ...info, revision: next });
      if (isUserNumber(info.contentType)) {
        this.index.logChange(ChangeType.UpdatedAttachment, row.id, row.level, row.publicId, isoNow());
      }
      return next;
    });
    try {
      pending.publish();
    } catch (error) {
      // The row is committed and the file is complete: start-up recovery publishes it.
      pending.keep();
      log.error(`cannot publish attachment ${pending.uuid}: ${(error as Error).message}`);
      throw error;
    }
    if (isUserNumber(info.contentType)) this.emitChange(ChangeType.UpdatedAttachment, level, publicId);
    return revision;
  }

  private emitChange(changeType: number, level: Level, publicId: string): void {
    this.host.emit('change', { changeType, level, publicId });
  }
}

/** Orthanc's zlib format, except that an empty content is stored as an empty file (as Orthanc's ZlibCompressor). */
function compressOrthancAllowingEmpty(content: Buffer): Buffer {
  return content.length === 0 ? content : compressOrthanc(content);
}

/** Reads a finished spool back in chunks. */
async function* spoolReader(spool: PendingWrite, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < size; offset += READ_CHUNK) {
    yield await spool.readRange(offset, Math.min(READ_CHUNK, size - offset));
  }
}

/** Passes chunks through, adding them to `hash`. */
async function* hashing(source: AsyncIterable<Buffer | string>, hash: Hash): AsyncGenerator<Buffer> {
  for await (const piece of source) {
    const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
    hash.update(chunk);
    yield chunk;
  }
}

/**
 * Writes `content` (of `size` bytes) in Orthanc's zlib format to `target`: the size as uint64 LE, then a zlib
 * stream; an empty content is an empty file. Returns the stored size and MD5.
 */
async function writeCompressed(target: PendingWrite, content: AsyncIterable<Buffer>, size: number): Promise<{ size: number; md5: string }> {
  const md5 = createHash('md5');
  let written = 0;
  const emit = async (chunk: Buffer) => {
    md5.update(chunk);
    written += chunk.length;
    await target.write(chunk);
  };
  if (size === 0) {
    // Drain the source (it may still be hashed by the caller).
    for await (const chunk of content) if (chunk.length > 0) throw new PacsError('CorruptedFile', 'attachment larger than its recorded size');
    return { size: 0, md5: md5.digest('hex') };
  }
  const header = Buffer.alloc(8);
  header.writeBigUInt64LE(BigInt(size));
  await emit(header);
  let seen = 0;
  const counted = async function* () {
    for await (const chunk of content) {
      seen += chunk.length;
      yield chunk;
    }
  };
  await pipeline(Readable.from(counted()), createDeflate(), async (deflated: AsyncIterable<Buffer>) => {
    for await (const chunk of deflated) await emit(chunk);
  });
  if (seen !== size) throw new PacsError('CorruptedFile', `attachment of ${seen} bytes, ${size} recorded`);
  return { size: written, md5: md5.digest('hex') };
}
