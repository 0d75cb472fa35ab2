/**
 * Where attachment bytes live. The store writes through `begin()` (invisible until `publish()`), so an
 * object-store implementation can later offer the same contract: a write is either published under its UUID
 * or discarded, never half there.
 */
import type { Readable } from 'node:stream';

export interface PendingWrite {
  readonly uuid: string;
  /** Writes the whole content and finishes, in one step (the fast path for inputs already in memory). */
  writeAll(data: Buffer): Promise<void>;
  /** Appends bytes; resolves once the OS accepted them (back-pressure for the producer). */
  write(chunk: Buffer): Promise<void>;
  /** Flushes (fsync when the area is durable) and closes; resolves with the number of bytes written. */
  finish(): Promise<number>;
  /** Reads back bytes already written (used to parse the head of a large spooled file). */
  readRange(start: number, length: number): Promise<Buffer>;
  /** Makes the bytes visible under `uuid`. Synchronous and atomic, so it can follow an index commit at once. */
  publish(): void;
  /** Discards the bytes (does nothing once published or kept). */
  abort(): Promise<void>;
  /**
   * Marks the write as owned by a committed index row even though `publish()` failed: `abort()` then leaves it
   * alone and start-up recovery publishes it.
   */
  keep(): void;
}

export interface StorageArea {
  begin(uuid: string): Promise<PendingWrite>;
  /**
   * The whole attachment. `size`, when the caller knows it (the index does), lets the area read exactly that many
   * bytes without asking the file system first.
   */
  read(uuid: string, size?: number): Promise<Buffer>;
  /** Bytes `[start, end)` of an attachment. */
  readRange(uuid: string, start: number, end: number): Promise<Buffer>;
  createReadStream(uuid: string, range?: { start: number; end: number }): Readable;
  /**
   * Reads an attachment's bytes from `position` into `target` from `offset` on, until `target` is full or the
   * attachment ends; resolves with the number of bytes read. One open and as few reads as the OS allows: the fast
   * path for a file whose size is known (WADO-RS reads each stored file straight into its multipart part).
   * `size`, when the caller knows the attachment's whole size (the index does), lets a cache keep a whole read.
   */
  readInto(uuid: string, target: Buffer, offset: number, position?: number, size?: number): Promise<number>;
  remove(uuid: string): Promise<void>;
  /**
   * Start-up recovery: writes that were interrupted are published when the index knows their UUID (the crash
   * came between the index commit and `publish()`), discarded otherwise.
   */
  recover(isKnown: (uuid: string) => boolean): Promise<{ published: number; discarded: number }>;
  /** A human-readable location, for logs. */
  readonly description: string;
  /** Releases resources (threads, handles). */
  close(): Promise<void>;
}
