/**
 * A streaming ZIP writer (PKWARE APPNOTE 6.3.x): entries are written to a `Writable` as they are produced, so an
 * archive of any size goes out with flat memory. Only the central directory (about 100 bytes per entry) is kept
 * until `finish()`.
 *
 * - Streamed entries set bit 3 of the flags: CRC-32 and sizes follow the data in a data descriptor (APPNOTE
 *   4.3.9), with its optional signature. In-memory entries (`addBuffer`) carry them in the local header instead.
 * - Entries are stored (method 0) by default; `deflate` (method 8, raw DEFLATE) is available per entry.
 * - ZIP64 (APPNOTE 4.3.14, 4.5.3) is used where needed, entry by entry: an entry whose size may reach 4 GiB (or
 *   is unknown) gets a ZIP64 local extra field and an 8-byte data descriptor; central records get a ZIP64 extra
 *   field for the sizes and offsets past 32 bits; the ZIP64 end of central directory record and its locator are
 *   written when the entry count, the directory's size or its offset do not fit the classic record.
 *   `zip64: 'always'` forces all of these (for readers' tests).
 * - Back-pressure: every write waits for `drain` when the output asks for it; a closed or destroyed output, or the
 *   `signal` aborting, rejects the pending call (the entry's source stream is then destroyed).
 */
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { crc32, createDeflateRaw, deflateRaw } from 'node:zlib';

const SIG_LOCAL = 0x04034b50;
const SIG_DESCRIPTOR = 0x08074b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;

const MAX16 = 0xffff;
const MAX32 = 0xffffffff;
/** Extra field header ID of the ZIP64 extended information (APPNOTE 4.5.3). */
const ZIP64_EXTRA_ID = 0x0001;

const FLAG_DESCRIPTOR = 1 << 3;
const FLAG_UTF8 = 1 << 11;

/** "Version made by": UNIX (3), APPNOTE 4.5 (so that external attributes carry UNIX permissions). */
const MADE_BY = (3 << 8) | 45;
/** -rw-r--r-- regular file, in the high 16 bits of the external attributes (UNIX hosts). */
const EXTERNAL_ATTRIBUTES = (0o100644 << 16) >>> 0;

export type ZipMethod = 'store' | 'deflate';

export interface ZipWriterOptions {
  /** `auto` (default): ZIP64 only where sizes, offsets or counts need it; `always`: every record in ZIP64 form. */
  zip64?: 'auto' | 'always';
  /** Archive comment (end of central directory record), at most 65535 bytes. */
  comment?: string;
  /** Aborts the pending and later calls. */
  signal?: AbortSignal;
}

export interface ZipEntryOptions {
  /** Uncompressed size when known in advance: below 4 GiB the entry is written without ZIP64 (`auto` mode). */
  size?: number;
  /** Modification time (local time, DOS format); now by default. */
  date?: Date;
  /** `store` (default) or `deflate`. */
  method?: ZipMethod;
  /** zlib level for `deflate` (default 6). */
  level?: number;
}

interface CentralEntry {
  record: Buffer;
}

/** DOS date and time (APPNOTE 4.4.6), local time, 2-second precision; years before 1980 are clamped. */
export function dosDateTime(date: Date): { time: number; date: number } {
  const year = Math.min(Math.max(date.getFullYear(), 1980), 2107);
  return {
    time: (date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1),
    date: ((year - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate(),
  };
}

function writeUInt64(buf: Buffer, value: number, offset: number): void {
  buf.writeBigUInt64LE(BigInt(value), offset);
}

export class ZipWriter {
  private offset = 0;
  private readonly central: CentralEntry[] = [];
  private busy = false;
  private finished = false;
  private readonly forceZip64: boolean;
  private readonly comment: Buffer;

  constructor(
    private readonly output: Writable,
    private readonly options: ZipWriterOptions = {},
  ) {
    this.forceZip64 = options.zip64 === 'always';
    this.comment = Buffer.from(options.comment ?? '', 'utf8');
    if (this.comment.length > MAX16) throw new RangeError('ZIP comment longer than 65535 bytes');
  }

  /** Bytes written so far. */
  get bytesWritten(): number {
    return this.offset;
  }

  /** Entries written so far. */
  get entryCount(): number {
    return this.central.length;
  }

  /** Adds an entry whose content is in memory: CRC-32 and sizes go in the local header (no data descriptor). */
  async addBuffer(name: string, data: Buffer, options: Omit<ZipEntryOptions, 'size'> = {}): Promise<void> {
    this.begin();
    try {
      const method = options.method ?? 'store';
      const body = method === 'deflate' ? await deflateBuffer(data, options.level) : data;
      const crc = crc32(data) >>> 0;
      const zip64 = this.forceZip64 || data.length >= MAX32 || body.length >= MAX32;
      const nameBytes = Buffer.from(name, 'utf8');
      const flags = isAscii(name) ? 0 : FLAG_UTF8;
      const { time, date } = dosDateTime(options.date ?? new Date());
      const localOffset = this.offset;
      const extra = zip64 ? zip64Extra([data.length, body.length]) : Buffer.alloc(0);
      const header = localHeader({
        flags,
        method,
        time,
        date,
        crc,
        compressedSize: zip64 ? MAX32 : body.length,
        size: zip64 ? MAX32 : data.length,
        name: nameBytes,
        extra,
        zip64,
      });
      await this.write(header);
      if (body.length > 0) await this.write(body);
      this.addCentral({ flags, method, time, date, crc, compressedSize: body.length, size: data.length, localOffset, name: nameBytes, zip64Local: zip64 });
    } finally {
      this.busy = false;
    }
  }

  /**
   * Adds an entry from a stream, written as it is read. The source is destroyed when writing fails or is
   * aborted. Rejects when the content's length differs from `options.size` by crossing the 4 GiB limit the
   * entry was declared under.
   */
  async addStream(name: string, source: Readable | AsyncIterable<Buffer>, options: ZipEntryOptions = {}): Promise<void> {
    this.begin();
    try {
      const method = options.method ?? 'store';
      // Without a known size below 4 GiB, the local header announces ZIP64 (8-byte descriptor sizes).
      const zip64Local = this.forceZip64 || options.size === undefined || options.size >= MAX32;
      const nameBytes = Buffer.from(name, 'utf8');
      const flags = FLAG_DESCRIPTOR | (isAscii(name) ? 0 : FLAG_UTF8);
      const { time, date } = dosDateTime(options.date ?? new Date());
      const localOffset = this.offset;
      // With bit 3 set, the local CRC and sizes are zero (APPNOTE 4.4.4); the ZIP64 extra then holds zeros too.
      const extra = zip64Local ? zip64Extra([0, 0]) : Buffer.alloc(0);
      await this.write(
        localHeader({ flags, method, time, date, crc: 0, compressedSize: 0, size: 0, name: nameBytes, extra, zip64: zip64Local }),
      );

      let crc = 0;
      let size = 0;
      let compressedSize = 0;
      if (method === 'store') {
        for await (const chunk of source as AsyncIterable<Buffer>) {
          this.checkAborted();
          crc = crc32(chunk, crc);
          size += chunk.length;
          if (chunk.length > 0) await this.write(chunk);
        }
        compressedSize = size;
      } else {
        const counter = async function* (this: ZipWriter, input: AsyncIterable<Buffer>) {
          for await (const chunk of input) {
            this.checkAborted();
            crc = crc32(chunk, crc);
            size += chunk.length;
            yield chunk;
          }
        }.bind(this);
        const sink = new Writable({
          write: (chunk: Buffer, _encoding, callback) => {
            compressedSize += chunk.length;
            this.write(chunk).then(() => callback(), callback);
          },
        });
        await pipeline(source, counter, createDeflateRaw({ level: options.level ?? 6 }), sink);
      }
      crc >>>= 0;
      if (!zip64Local && (size >= MAX32 || compressedSize >= MAX32)) {
        throw new RangeError(`ZIP entry ${name}: ${size} bytes, more than declared (${options.size}) and past 4 GiB`);
      }
      await this.write(dataDescriptor(crc, compressedSize, size, zip64Local));
      this.addCentral({ flags, method, time, date, crc, compressedSize, size, localOffset, name: nameBytes, zip64Local });
    } finally {
      this.busy = false;
    }
  }

  /**
   * Writes the central directory and the end records, then ends the output (unless `end: false`) and waits for it
   * to finish; resolves with the archive size.
   */
  async finish(options: { end?: boolean } = {}): Promise<number> {
    this.begin();
    this.finished = true;
    try {
      const cdOffset = this.offset;
      // Central records are flushed in batches: a few writes instead of one per entry.
      let batch: Buffer[] = [];
      let batchSize = 0;
      for (const entry of this.central) {
        batch.push(entry.record);
        batchSize += entry.record.length;
        if (batchSize >= 1 << 20) {
          await this.write(Buffer.concat(batch, batchSize));
          batch = [];
          batchSize = 0;
        }
      }
      if (batchSize > 0) await this.write(Buffer.concat(batch, batchSize));
      const cdSize = this.offset - cdOffset;
      const count = this.central.length;
      const zip64 = this.forceZip64 || count >= MAX16 || cdSize >= MAX32 || cdOffset >= MAX32;
      if (zip64) {
        const end64Offset = this.offset;
        // APPNOTE 4.3.14: ZIP64 end of central directory record (version 1, no extensible data).
        const end64 = Buffer.alloc(56);
        end64.writeUInt32LE(SIG_END64, 0);
        writeUInt64(end64, 44, 4);
        end64.writeUInt16LE(MADE_BY, 12);
        end64.writeUInt16LE(45, 14);
        end64.writeUInt32LE(0, 16);
        end64.writeUInt32LE(0, 20);
        writeUInt64(end64, count, 24);
        writeUInt64(end64, count, 32);
        writeUInt64(end64, cdSize, 40);
        writeUInt64(end64, cdOffset, 48);
        // APPNOTE 4.3.15: its locator.
        const locator = Buffer.alloc(20);
        locator.writeUInt32LE(SIG_LOCATOR64, 0);
        locator.writeUInt32LE(0, 4);
        writeUInt64(locator, end64Offset, 8);
        locator.writeUInt32LE(1, 16);
        await this.write(Buffer.concat([end64, locator]));
      }
      // APPNOTE 4.3.16: fields that do not fit are set to their maximum, telling readers to use the ZIP64 record.
      const end = Buffer.alloc(22);
      end.writeUInt32LE(SIG_END, 0);
      const countField = zip64 && (this.forceZip64 || count >= MAX16) ? MAX16 : count;
      end.writeUInt16LE(countField, 8);
      end.writeUInt16LE(countField, 10);
      end.writeUInt32LE(zip64 && (this.forceZip64 || cdSize >= MAX32) ? MAX32 : cdSize, 12);
      end.writeUInt32LE(zip64 && (this.forceZip64 || cdOffset >= MAX32) ? MAX32 : cdOffset, 16);
      end.writeUInt16LE(this.comment.length, 20);
      await this.write(this.comment.length > 0 ? Buffer.concat([end, this.comment]) : end);
      if (options.end ?? true) {
        // Resolves once the output has taken every byte (a file: written out), rejects if it closes before.
        this.output.end();
        await finished(this.output, { readable: false });
      }
      return this.offset;
    } finally {
      this.busy = false;
    }
  }

  private begin(): void {
    if (this.finished) throw new Error('ZIP writer already finished');
    if (this.busy) throw new Error('ZIP writer: one entry at a time');
    this.checkAborted();
    this.busy = true;
  }

  private checkAborted(): void {
    const signal = this.options.signal;
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('ZIP writing aborted');
  }

  private addCentral(e: {
    flags: number;
    method: ZipMethod;
    time: number;
    date: number;
    crc: number;
    compressedSize: number;
    size: number;
    localOffset: number;
    name: Buffer;
    zip64Local: boolean;
  }): void {
    // APPNOTE 4.5.3: in the central header, only the fields set to 0xFFFFFFFF are in the ZIP64 extra, in order.
    const big = (v: number) => this.forceZip64 || v >= MAX32;
    const extraValues: number[] = [];
    if (big(e.size)) extraValues.push(e.size);
    if (big(e.compressedSize)) extraValues.push(e.compressedSize);
    if (big(e.localOffset)) extraValues.push(e.localOffset);
    const extra = extraValues.length > 0 ? zip64Extra(extraValues) : Buffer.alloc(0);
    const needs64 = e.zip64Local || extraValues.length > 0;
    const record = Buffer.alloc(46 + e.name.length + extra.length);
    record.writeUInt32LE(SIG_CENTRAL, 0);
    record.writeUInt16LE(MADE_BY, 4);
    record.writeUInt16LE(needs64 ? 45 : 20, 6);
    record.writeUInt16LE(e.flags, 8);
    record.writeUInt16LE(e.method === 'deflate' ? 8 : 0, 10);
    record.writeUInt16LE(e.time, 12);
    record.writeUInt16LE(e.date, 14);
    record.writeUInt32LE(e.crc, 16);
    record.writeUInt32LE(big(e.compressedSize) ? MAX32 : e.compressedSize, 20);
    record.writeUInt32LE(big(e.size) ? MAX32 : e.size, 24);
    record.writeUInt16LE(e.name.length, 28);
    record.writeUInt16LE(extra.length, 30);
    record.writeUInt16LE(0, 32); // comment length
    record.writeUInt16LE(0, 34); // disk number start
    record.writeUInt16LE(0, 36); // internal attributes
    record.writeUInt32LE(EXTERNAL_ATTRIBUTES, 38);
    record.writeUInt32LE(big(e.localOffset) ? MAX32 : e.localOffset, 42);
    e.name.copy(record, 46);
    extra.copy(record, 46 + e.name.length);
    this.central.push({ record });
  }

  /** Writes to the output, waiting for `drain` when asked; rejects once the output is closed or the signal aborts. */
  private async write(chunk: Buffer): Promise<void> {
    this.checkAborted();
    const out = this.output;
    if (out.destroyed || out.writableEnded) throw new Error('ZIP output closed');
    this.offset += chunk.length;
    if (out.write(chunk)) return;
    await waitDrain(out, this.options.signal);
  }
}

async function waitDrain(out: Writable, signal: AbortSignal | undefined): Promise<void> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([
      once(out, 'drain', { signal: ac.signal }),
      once(out, 'close', { signal: ac.signal }).then(() => {
        throw new Error('ZIP output closed');
      }),
    ]);
  } catch (e) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('ZIP writing aborted');
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    ac.abort();
  }
}

function isAscii(text: string): boolean {
  return /^[\x20-\x7e]*$/.test(text);
}

function zip64Extra(values: readonly number[]): Buffer {
  const extra = Buffer.alloc(4 + values.length * 8);
  extra.writeUInt16LE(ZIP64_EXTRA_ID, 0);
  extra.writeUInt16LE(values.length * 8, 2);
  values.forEach((v, i) => writeUInt64(extra, v, 4 + i * 8));
  return extra;
}

function localHeader(h: {
  flags: number;
  method: ZipMethod;
  time: number;
  date: number;
  crc: number;
  compressedSize: number;
  size: number;
  name: Buffer;
  extra: Buffer;
  zip64: boolean;
}): Buffer {
  // APPNOTE 4.3.7.
  const header = Buffer.alloc(30 + h.name.length + h.extra.length);
  header.writeUInt32LE(SIG_LOCAL, 0);
  header.writeUInt16LE(h.zip64 ? 45 : 20, 4);
  header.writeUInt16LE(h.flags, 6);
  header.writeUInt16LE(h.method === 'deflate' ? 8 : 0, 8);
  header.writeUInt16LE(h.time, 10);
  header.writeUInt16LE(h.date, 12);
  header.writeUInt32LE(h.crc, 14);
  // A streamed ZIP64 entry says "see the extra field" (0xFFFFFFFF), as its sizes are not known yet.
  const streamed64 = h.zip64 && (h.flags & FLAG_DESCRIPTOR) !== 0;
  header.writeUInt32LE(streamed64 ? MAX32 : h.compressedSize, 18);
  header.writeUInt32LE(streamed64 ? MAX32 : h.size, 22);
  header.writeUInt16LE(h.name.length, 26);
  header.writeUInt16LE(h.extra.length, 28);
  h.name.copy(header, 30);
  h.extra.copy(header, 30 + h.name.length);
  return header;
}

function dataDescriptor(crc: number, compressedSize: number, size: number, zip64: boolean): Buffer {
  // APPNOTE 4.3.9: with a ZIP64 local extra field, the sizes are 8 bytes.
  const d = Buffer.alloc(zip64 ? 24 : 16);
  d.writeUInt32LE(SIG_DESCRIPTOR, 0);
  d.writeUInt32LE(crc, 4);
  if (zip64) {
    writeUInt64(d, compressedSize, 8);
    writeUInt64(d, size, 16);
  } else {
    d.writeUInt32LE(compressedSize, 8);
    d.writeUInt32LE(size, 12);
  }
  return d;
}

const deflateRawAsync = promisify(deflateRaw);

function deflateBuffer(data: Buffer, level = 6): Promise<Buffer> {
  return deflateRawAsync(data, { level });
}
