/**
 * Orthanc's storage cache (`MaximumStorageCacheSize`, in MB, default 128; 0 disables it): a copy in memory of the
 * attachments most recently read, so that a study just viewed (or retrieved) is sent again without touching the
 * disk. Wraps any storage area and keeps its contract: what it answers is what the area holds.
 *
 * - Filled by whole-file reads: `read`, and `readInto` when the caller gives the attachment's size (the index
 *   knows it) and reads all of it. Not by writes (see `begin`).
 * - Least recently used entries go first once the total passes the limit; a file larger than a quarter of the
 *   cache is never kept. `remove` forgets an attachment before removing it.
 * - An entry is immutable: the bytes kept are the cache's own copy, and a hit is a copy, so no caller can change
 *   what another one reads.
 */
import type { Readable } from 'node:stream';
import type { PendingWrite, StorageArea } from './storage-area.js';

export class CachedStorage implements StorageArea {
  /** Insertion order is recency: a hit moves its entry to the end, eviction takes from the start. */
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  /** Files removed (and closes) so far: see `keep`. */
  private removals = 0;
  private readonly maxEntry: number;

  constructor(
    readonly inner: StorageArea,
    private readonly maxBytes: number,
  ) {
    this.maxEntry = Math.floor(maxBytes / 4);
  }

  get description(): string {
    return `${this.inner.description}, cache ${Math.round(this.maxBytes / (1 << 20))} MB`;
  }

  /** Bytes and files held (for tests and /statistics-like reports). */
  get usage(): { bytes: number; files: number } {
    return { bytes: this.bytes, files: this.entries.size };
  }

  /**
   * Writes go straight to the area: filling the cache as instances arrive cost ingestion about 15 % more CPU per
   * STOW-RS instance (many buffers held outside V8's heap make its collections slower), for files that may never
   * be read. The first read of a file fills it instead.
   */
  begin(uuid: string): Promise<PendingWrite> {
    return this.inner.begin(uuid);
  }

  async read(uuid: string, size?: number): Promise<Buffer> {
    const hit = this.hit(uuid);
    if (hit) return Buffer.from(hit);
    const removals = this.removals;
    const bytes = await this.inner.read(uuid, size);
    // A file shorter or longer than the index says is not kept (the store refuses it as CorruptedFile).
    if ((size === undefined || bytes.length === size) && bytes.length <= this.maxEntry) this.keep(uuid, Buffer.from(bytes), removals);
    return bytes;
  }

  async readRange(uuid: string, start: number, end: number): Promise<Buffer> {
    const hit = this.hit(uuid);
    if (hit) return Buffer.from(hit.subarray(Math.min(start, hit.length), Math.min(Math.max(start, end), hit.length)));
    return this.inner.readRange(uuid, start, end);
  }

  /** Streams come from the area itself: they serve large files and archives, whose readers hold the file open. */
  createReadStream(uuid: string, range?: { start: number; end: number }): Readable {
    return this.inner.createReadStream(uuid, range);
  }

  /**
   * As the area's `readInto`; `size` is the attachment's whole size when the caller knows it: a read of all of it
   * from the start is kept.
   */
  async readInto(uuid: string, target: Buffer, offset: number, position = 0, size?: number): Promise<number> {
    const hit = this.hit(uuid);
    if (hit) return hit.copy(target, offset, Math.min(position, hit.length));
    const removals = this.removals;
    const n = await this.inner.readInto(uuid, target, offset, position);
    if (position === 0 && size !== undefined && n === size && size <= this.maxEntry) {
      this.keep(uuid, Buffer.from(target.subarray(offset, offset + n)), removals);
    }
    return n;
  }

  async remove(uuid: string): Promise<void> {
    this.removals++;
    this.forget(uuid);
    await this.inner.remove(uuid);
  }

  recover(isKnown: (uuid: string) => boolean): Promise<{ published: number; discarded: number }> {
    return this.inner.recover(isKnown);
  }

  async close(): Promise<void> {
    this.removals++;
    this.entries.clear();
    this.bytes = 0;
    await this.inner.close();
  }

  private hit(uuid: string): Buffer | undefined {
    const entry = this.entries.get(uuid);
    if (!entry) return undefined;
    this.entries.delete(uuid);
    this.entries.set(uuid, entry);
    return entry;
  }

  /**
   * Keeps what a read got, unless a file was removed while it read (`removals` changed since it began): a read that
   * started before its file's removal must not bring the file back. Removals are rare next to reads: skipping
   * every read in flight then costs nothing worth tracking files one by one.
   */
  private keep(uuid: string, bytes: Buffer, removalsBefore: number): void {
    if (this.removals === removalsBefore) this.add(uuid, bytes);
  }

  private add(uuid: string, bytes: Buffer): void {
    this.forget(uuid);
    this.entries.set(uuid, bytes);
    this.bytes += bytes.length;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= entry.length;
    }
  }

  private forget(uuid: string): void {
    const entry = this.entries.get(uuid);
    if (!entry) return;
    this.entries.delete(uuid);
    this.bytes -= entry.length;
  }
}
