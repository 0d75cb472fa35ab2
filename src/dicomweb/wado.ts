/**
 * WADO-RS retrieval (PS3.18 §10.4): studies, series and instances as `multipart/related; type="application/dicom"`
 * streamed part by part from the storage area, with transfer syntax negotiation between the uncompressed syntaxes
 * (PS3.18 §8.7.3.5); and frames (§10.4.1.1.4) as `multipart/related` parts in the stored syntax.
 *
 * What can be converted: any native (uncompressed) syntax to Implicit VR Little Endian, Explicit VR Little Endian,
 * Explicit VR Big Endian or Deflated Explicit VR Little Endian. Compressing or decompressing pixel data is not
 * available: such a request answers 406 with a message saying so (unless the Accept header also offers a syntax
 * that can be served).
 */
import { ServerResponse } from 'node:http';
import { Readable, type Writable } from 'node:stream';
import { deflateRawSync } from 'node:zlib';
import { PacsError } from '../core/errors.js';
import type { DataSet, Element } from '../dicom/dataset.js';
import { rawFrame, swapUnit, valueRange } from '../dicom/frames.js';
import type { ParsedDicom } from '../dicom/reader.js';
import { Tags } from '../dicom/tag.js';
import {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
  transferSyntax,
  type TransferSyntax,
} from '../dicom/transfer-syntax.js';
import { encodeDataset, type WriteElement } from '../dicom/writer.js';
import { shareWithReaders } from '../store/reader-pool.js';
import { MetadataType, type AttachmentInfo, type ResourceRow } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';
import { findResource } from './metadata.js';
import { closeDelimiter, parseAccept, partHead, type AcceptedType } from './multipart.js';

// ---------------------------------------------------------------------------------------------- resources

/** The UIDs of a WADO-RS URL: a study, a series of it, or an instance of that series. */
export interface WadoTarget {
  study: string;
  series?: string;
  instance?: string;
}

/** An instance to send: its index row and its stored transfer syntax. */
export interface InstanceToSend {
  row: ResourceRow;
  transferSyntaxUid: string;
  /** Size of the DICOM file (uncompressed), 0 when unknown. */
  size: number;
  /** The DICOM file's attachment (undefined when missing, which none should be). */
  attachment?: AttachmentInfo;
}

/**
 * The instances a WADO-RS URL names, in the order they were received (series by series), with their stored
 * transfer syntax; 404 when the study, series or instance is unknown.
 */
export function findInstances(store: DicomStore, target: WadoTarget): InstanceToSend[] {
  const resource = findResource(store, target.study, target.series, target.instance);
  // An instance without the TransferSyntax metadata (none should lack it) is taken as Explicit VR Little Endian.
  return store.index.instanceFiles(resource.id, resource.level, MetadataType.TransferSyntax).map((f) => ({
    row: f.row,
    transferSyntaxUid: f.metadata ?? ExplicitVRLittleEndian,
    size: f.attachment?.uncompressedSize ?? 0,
    attachment: f.attachment,
  }));
}

// ---------------------------------------------------------------------------------------------- negotiation

/** The native syntaxes an instance can be converted to. */
const CONVERTIBLE_TARGETS: ReadonlySet<string> = new Set([
  ImplicitVRLittleEndian,
  ExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  DeflatedExplicitVRLittleEndian,
]);

/** A transfer syntax an Accept range asks for: a UID, or '*' (as stored). */
type Wanted = string;

/**
 * The syntaxes an Accept header asks for when retrieving instances (best first): `transfer-syntax=*` or no
 * parameter means "as stored" (pacsnode, as the issue asks: PS3.18's default would be Explicit VR Little Endian).
 * Ranges that are not `application/dicom` (alone or as the type of `multipart/related`) are ignored; 406 when
 * none is.
 */
export function wantedInstanceSyntaxes(accept: string | string[] | undefined): Wanted[] {
  const out: Wanted[] = [];
  for (const range of parseAccept(accept)) {
    const type = partTypeOf(range);
    if (type === undefined || type === '*/*' || type === 'application/dicom' || type === 'application/*') {
      out.push(range.params.get('transfer-syntax') ?? '*');
    }
  }
  if (out.length === 0) {
    throw new PacsError(
      'NotAcceptable',
      'studies, series and instances are retrieved as multipart/related; type="application/dicom" (bulk data and rendered media types are not available here)',
    );
  }
  return out;
}

/**
 * The part type an Accept range asks for: `type` of a `multipart/related` range (undefined without one), the range
 * itself for a single-part media type, `*\/*` for `*\/*` and `multipart/*`.
 */
function partTypeOf(range: AcceptedType): string | undefined {
  if (range.type === '*/*' || range.type === 'multipart/*') return '*/*';
  if (range.type === 'multipart/related') return range.params.get('type')?.toLowerCase();
  return range.type;
}

/** How one instance is sent: as stored, or converted to `target`. */
export interface SendPlan {
  target: string;
  convert: boolean;
}

/** Native pixel data: Encapsulated Uncompressed Explicit VR Little Endian has fragments, so it is not. */
function convertibleFrom(uid: string): boolean {
  return !transferSyntax(uid).encapsulated && uid !== '1.2.840.10008.1.2.1.98';
}

/** The first wanted syntax an instance stored in `stored` can be sent in; undefined when none. */
export function planFor(stored: string, wanted: readonly Wanted[]): SendPlan | undefined {
  for (const w of wanted) {
    if (w === '*' || w === stored) return { target: stored, convert: false };
    if (convertibleFrom(stored) && CONVERTIBLE_TARGETS.has(w)) return { target: w, convert: true };
  }
  return undefined;
}

/** A plan for every instance, or 406 naming the first instance that cannot be served. */
export function planAll(instances: readonly InstanceToSend[], wanted: readonly Wanted[]): SendPlan[] {
  return instances.map((i) => {
    const plan = planFor(i.transferSyntaxUid, wanted);
    if (plan) return plan;
    const ts = transferSyntax(i.transferSyntaxUid);
    throw new PacsError(
      'NotAcceptable',
      `an instance is stored in ${ts.name} (${ts.uid}) and converting it to ${wanted.join(', ')} is not available: ` +
        (!convertibleFrom(ts.uid)
          ? 'pacsnode cannot compress or decompress pixel data yet; ask for transfer-syntax=* to get it as stored'
          : `uncompressed instances can be sent in ${[...CONVERTIBLE_TARGETS].join(', ')} or as stored (transfer-syntax=*)`),
    );
  });
}

// ---------------------------------------------------------------------------------------------- streaming

/** Files up to this size are read whole, straight into their part; larger ones are read in chunks of this size. */
const WHOLE_FILE_READ = 4 << 20;
/** Reads started ahead of the part being sent: at most this many bytes (so a study is never held whole). */
const READ_AHEAD_BYTES = 8 << 20;

/** One instance's part, ready to send: its head, the file (or its first chunk), and the close delimiter if last. */
type PartRead = Promise<Buffer[]>;

/**
 * The buffers of the parts sent: slices of a few 8 MB blocks of shared memory (at most 32 MB), each block reused
 * once the socket has taken every part cut from it, so that a study sent allocates (and the garbage collector frees)
 * next to nothing, and the storage area's reader threads read the files straight into them (store/reader-pool.ts:
 * they learn each block once). A part larger than 1 MB, or one asked for while every block is busy, is an ordinary
 * buffer of its own.
 */
const partBuffers = new (class {
  private readonly blocks: Array<{ memory: SharedArrayBuffer; used: number; parts: number }> = [];
  private readonly byMemory = new Map<ArrayBufferLike, { memory: SharedArrayBuffer; used: number; parts: number }>();
  private current: { memory: SharedArrayBuffer; used: number; parts: number } | undefined;

  allocate(length: number): Buffer {
    if (length > 1 << 20) return Buffer.allocUnsafeSlow(length);
    let block = this.current;
    if (!block || block.used + length > block.memory.byteLength) {
      // A block whose parts have all been sent starts again from its beginning.
      block = this.blocks.find((b) => b.parts === 0 && b !== this.current);
      if (!block && this.blocks.length < 4) {
        block = { memory: shareWithReaders(new SharedArrayBuffer(8 << 20)), used: 0, parts: 0 };
        this.blocks.push(block);
        this.byMemory.set(block.memory, block);
      }
      if (!block) return Buffer.allocUnsafeSlow(length);
      block.used = 0;
      this.current = block;
    }
    const part = Buffer.from(block.memory, block.used, length);
    // Parts start on 8-byte boundaries.
    block.used += (length + 7) & ~7;
    block.parts++;
    return part;
  }

  owns(chunk: Buffer): boolean {
    return this.byMemory.has(chunk.buffer);
  }

  inUse(): number {
    return this.blocks.reduce((n, b) => n + b.parts, 0);
  }

  /** A part the socket has taken (or that will never be sent). */
  release(chunk: Buffer): void {
    const block = this.byMemory.get(chunk.buffer);
    if (!block) return;
    block.parts--;
    if (block.parts === 0 && block === this.current) block.used = 0;
  }
})();

/** Parts cut from the shared blocks and not given back yet (0 when no retrieval is under way; for tests). */
export function sharedPartsInUse(): number {
  return partBuffers.inUse();
}

/** Where the chunks go: `emit` hands one on (false: the consumer is full), `more` waits until it wants more. */
interface Sink {
  emit(chunk: Buffer): boolean;
  more(): Promise<void>;
}

/**
 * The multipart body of a WADO-RS retrieval as a byte stream, part by part, with as few chunks as possible: a file
 * stored uncompressed (up to 4 MB) is read with one open and one read straight into a buffer that already holds
 * its part head (and, for the last part, the close delimiter after it), so each instance is one chunk and one
 * socket write, with no copy of the file's bytes. The next files are read while a part is sent (up to 8 MB
 * ahead, several reads in flight). A larger file is read in 4 MB chunks; a compressed one is inflated whole; a
 * converted instance is parsed, converted, then sent. Back-pressure: nothing more is read while the consumer is
 * full.
 *
 * Piped into a response (what fastify does with a stream answer), the stream writes to it directly, with a
 * callback per chunk: a part's buffer is reused for a later part once the socket has taken it, so that sending a
 * study does not allocate (and garbage-collect) a buffer per instance. Read any other way, every part is a new
 * buffer.
 */
export class DicomPartsStream extends Readable {
  private readonly reads = new Map<number, PartRead>();
  /** Next instance to send, next instance whose read is not started, bytes read ahead and not yet sent. */
  private sent = 0;
  private next = 0;
  private ahead = 0;
  private pumping = false;
  /** Piped straight into a response: parts come from the shared blocks and go back once the socket has them. */
  private direct = false;
  private readonly released = new WeakSet<Buffer>();
  /** Set while the readable side waits for its consumer to ask for more. */
  private wake: (() => void) | undefined;
  private readonly close: Buffer;

  constructor(
    private readonly store: DicomStore,
    private readonly instances: readonly InstanceToSend[],
    private readonly plans: readonly SendPlan[],
    private readonly boundary: string,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.close = closeDelimiter(boundary);
  }

  override _read(): void {
    const wake = this.wake;
    this.wake = undefined;
    if (wake) wake();
    else if (!this.pumping) void this.pump(this.readableSink());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Reads still in flight end on their own (then their parts go back); their failures are of no interest any more.
    for (const read of this.reads.values()) read.then((chunks) => this.release(...chunks), () => undefined);
    this.reads.clear();
    this.wake?.();
    callback(error);
  }

  /**
   * Piped into an HTTP response (once, before any read): writes straight to it, reusing the buffers it has taken.
   * Only a response: its write callback means the bytes are in the socket (a PassThrough, say, calls back while it
   * still holds the chunk).
   */
  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    if (!(destination instanceof ServerResponse) || this.pumping || this.readableFlowing !== null || this.sent > 0) {
      return super.pipe(destination, options);
    }
    const dest = destination as unknown as Writable;
    this.direct = true;
    void this.pump(this.directSink(dest), true).then((finished) => {
      if (!finished) return;
      if (options?.end !== false) dest.end();
      // The readable side ends too, for whoever watches it (fastify waits for its end).
      this.push(null);
      this.resume();
    });
    return destination;
  }

  private readableSink(): Sink {
    return {
      emit: (chunk) => this.push(chunk),
      more: () => new Promise<void>((resolve) => (this.wake = resolve)),
    };
  }

  /**
   * Writes to the response. A shared part goes back once the socket has it (the write's callback), or once the
   * connection is closed: Node calls no callback for a write to a response whose socket is already destroyed, nor
   * for writes queued behind a pipelined answer when the connection goes; once the socket is closed, libuv has
   * finished or cancelled every write.
   */
  private directSink(dest: Writable): Sink {
    const socket = (dest as unknown as ServerResponse).socket;
    const sent = new Set<Buffer>();
    const releaseAll = () => {
      for (const chunk of sent) this.release(chunk);
      sent.clear();
    };
    // The socket outlives the answer on a kept-alive connection: its listener goes with the answer.
    dest.once('close', () => {
      socket?.off('close', releaseAll);
      releaseAll();
    });
    socket?.once('close', releaseAll);
    const written = (chunk: Buffer) => () => {
      sent.delete(chunk);
      this.release(chunk);
    };
    return {
      emit: (chunk) => {
        if (!partBuffers.owns(chunk)) return dest.write(chunk);
        if (dest.destroyed || socket?.destroyed) {
          this.release(chunk);
          return false;
        }
        sent.add(chunk);
        return dest.write(chunk, written(chunk));
      },
      more: () =>
        new Promise<void>((resolve) => {
          const done = () => {
            dest.off('drain', done).off('close', done).off('error', done);
            resolve();
          };
          dest.on('drain', done).on('close', done).on('error', done);
          if (dest.destroyed) done();
        }),
    };
  }

  /** A part's buffer: from the shared blocks when piped into a response, else one of its own (the reader keeps it). */
  private allocate(length: number): Buffer {
    return this.direct ? partBuffers.allocate(length) : Buffer.allocUnsafeSlow(length);
  }

  /** Gives back the shared parts among `chunks` once nothing reads or writes them any more (once each). */
  private release(...chunks: Buffer[]): void {
    for (const chunk of chunks) {
      if (this.released.has(chunk)) continue;
      this.released.add(chunk);
      partBuffers.release(chunk);
    }
  }

  /** Sends the parts to `sink` until it is full (false) or everything is sent (true). */
  private async pump(sink: Sink, direct = false): Promise<boolean> {
    this.pumping = true;
    try {
      while (!this.destroyed) {
        if (this.sent === this.instances.length) {
          if (this.instances.length === 0) sink.emit(this.close);
          if (!direct) this.push(null);
          return true;
        }
        const i = this.sent;
        this.readAhead(i);
        const read = this.reads.get(i);
        const chunks = read ? await read : await this.sendOther(i, sink);
        if (read) {
          this.reads.delete(i);
          this.ahead -= this.instances[i]!.size;
        }
        this.sent++;
        if (this.destroyed) {
          this.release(...chunks);
          return false;
        }
        let more = true;
        for (const chunk of chunks) more = sink.emit(chunk);
        if (!more) await sink.more();
      }
    } catch (e) {
      this.destroy(e as Error);
    } finally {
      this.pumping = false;
    }
    return false;
  }

  private partHead(i: number, length: number): Buffer {
    const type = `application/dicom; transfer-syntax=${this.plans[i]!.target}`;
    return partHead(this.boundary, { 'Content-Type': type, 'Content-Length': length }, i === 0);
  }

  private isWhole(i: number): boolean {
    const { size, attachment } = this.instances[i]!;
    return !this.plans[i]!.convert && attachment?.compression === 1 && size <= WHOLE_FILE_READ;
  }

  /** Starts the reads of the files read whole from `i` on, up to the read-ahead budget or a file sent otherwise. */
  private readAhead(i: number): void {
    if (this.next < i) this.next = i;
    while (this.next < this.instances.length && this.isWhole(this.next)) {
      const size = this.instances[this.next]!.size;
      if (this.reads.size > 0 && this.ahead + size > READ_AHEAD_BYTES) break;
      const read = this.readWhole(this.next);
      read.catch(() => undefined); // awaited in turn; not an unhandled rejection if the client leaves first
      this.reads.set(this.next, read);
      this.ahead += size;
      this.next++;
    }
    if (this.next === i && !this.isWhole(i)) this.next = i + 1;
  }

  /** Head, file and (last part) close delimiter in one buffer, the file read straight into its place. */
  private async readWhole(i: number): PartRead {
    const { size, attachment } = this.instances[i]!;
    const head = this.partHead(i, size);
    const last = i === this.instances.length - 1;
    const part = this.allocate(head.length + size + (last ? this.close.length : 0));
    head.copy(part, 0);
    let n: number;
    try {
      n = await this.store.storage.readInto(attachment!.uuid, part.subarray(0, head.length + size), head.length, 0, size);
    } catch (e) {
      this.release(part);
      throw e;
    }
    if (n !== size) this.release(part);
    if (n !== size) throw new PacsError('CorruptedFile', `attachment ${attachment!.uuid} has ${n} bytes, the index says ${size}`);
    if (last) this.close.copy(part, head.length + size);
    return [part];
  }

  /** A converted, compressed or large instance: sent from here, chunk by chunk for a large file. */
  private async sendOther(i: number, sink: Sink): PartRead {
    const { row, size, attachment } = this.instances[i]!;
    const last = i === this.instances.length - 1 ? [this.close] : [];
    if (this.plans[i]!.convert) {
      const chunks = convertPart10(await this.store.parseInstance(row.publicId), this.plans[i]!.target);
      return [this.partHead(i, chunks.reduce((n, c) => n + c.length, 0)), ...chunks, ...last];
    }
    if (!attachment) throw new PacsError('InexistentFile', `instance ${row.publicId} has no DICOM file`);
    if (attachment.compression !== 1) {
      const bytes = await this.store.readAttachment(attachment);
      return [this.partHead(i, bytes.length), bytes, ...last];
    }
    // A large file: its head now, then its chunks as the consumer asks for them.
    let more = sink.emit(this.partHead(i, size));
    for (let position = 0; position < size; ) {
      if (!more) await sink.more();
      if (this.destroyed) return [];
      const chunk = this.allocate(Math.min(WHOLE_FILE_READ, size - position));
      const n = await this.store.storage.readInto(attachment.uuid, chunk, 0, position).catch((e: unknown) => {
        this.release(chunk);
        throw e;
      });
      if (n !== chunk.length) this.release(chunk);
      if (n !== chunk.length) throw new PacsError('CorruptedFile', `attachment ${attachment.uuid} is shorter than the index says`);
      position += n;
      more = sink.emit(chunk);
    }
    return last;
  }
}

/** The multipart body of a WADO-RS retrieval (see `DicomPartsStream`). */
export function dicomParts(
  store: DicomStore,
  instances: readonly InstanceToSend[],
  plans: readonly SendPlan[],
  boundary: string,
): Readable {
  return new DicomPartsStream(store, instances, plans, boundary);
}

// ---------------------------------------------------------------------------------------------- conversion

const SHORT_LENGTH_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI',
  'UL', 'US',
]);

/** A valid explicit VR for the element: its own, or UN when it is not a VR or its value is too long for it. */
function explicitVrOf(el: Element): string {
  if (!/^[A-Z]{2}$/.test(el.vr)) return 'UN';
  if (SHORT_LENGTH_VRS.has(el.vr) && el.length > 0xffff) return 'UN';
  return el.vr;
}

/** An element or item header (PS3.5 §7.1.2, §7.5) in the target syntax; `vr` undefined for item tags. */
function elementHeader(tag: number, vr: string | undefined, length: number, ts: TransferSyntax): Buffer {
  const le = ts.littleEndian;
  const write16 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const write32 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt32LE(v >>> 0, o) : b.writeUInt32BE(v >>> 0, o));
  const explicit = vr !== undefined && ts.explicitVr;
  const long = explicit && !SHORT_LENGTH_VRS.has(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  write16(h, tag >>> 16, 0);
  write16(h, tag & 0xffff, 2);
  if (!explicit) write32(h, length, 4);
  else {
    h.write(vr, 4, 'latin1');
    if (long) write32(h, length, 8);
    else write16(h, length, 6);
  }
  return h;
}

const UNDEFINED_LENGTH = 0xffffffff;

/** A value's bytes in the target byte order (views when no swap is needed). */
function valueIn(ds: DataSet, el: Element, ts: TransferSyntax): Buffer {
  const le = valueRange(ds, el, 0, el.length);
  const unit = swapUnit(el.vr);
  if (ts.littleEndian || unit === 1) return le;
  const copy = Buffer.from(le);
  const whole = copy.subarray(0, copy.length - (copy.length % unit));
  if (unit === 2) whole.swap16();
  else if (unit === 4) whole.swap32();
  else whole.swap64();
  return copy;
}

/**
 * Re-encodes a native dataset in another native syntax (PS3.5 §7): the same elements in the same order (group
 * lengths left out), values kept byte for byte (swapped for a change of byte order), sequences and items with
 * undefined lengths.
 */
function encodeNativeDataset(ds: DataSet, ts: TransferSyntax, out: Buffer[]): void {
  for (const el of ds.elements.values()) {
    if (el.tag >>> 16 === 0x0002) continue;
    // Group lengths (gggg,0000; retired in datasets) would be wrong once headers change size: dropped, as DCMTK does.
    if ((el.tag & 0xffff) === 0) continue;
    if (el.fragments) throw new PacsError('NotImplemented', 'encapsulated pixel data cannot be converted to a native syntax');
    if (el.items !== undefined || el.vr === 'SQ') {
      out.push(elementHeader(el.tag, 'SQ', UNDEFINED_LENGTH, ts));
      for (const item of el.items ?? []) {
        out.push(elementHeader(Tags.Item, undefined, UNDEFINED_LENGTH, ts));
        encodeNativeDataset(item, ts, out);
        out.push(elementHeader(Tags.ItemDelimitationItem, undefined, 0, ts));
      }
      out.push(elementHeader(Tags.SequenceDelimitationItem, undefined, 0, ts));
      continue;
    }
    const value = valueIn(ds, el, ts);
    out.push(elementHeader(el.tag, ts.explicitVr ? explicitVrOf(el) : undefined, value.length, ts), value);
  }
}

/** The File Meta Information of the converted file: the original's elements with the new Transfer Syntax UID. */
function convertedMetaHeader(parsed: ParsedDicom, targetUid: string): Buffer {
  const elements: WriteElement[] = [];
  for (const el of parsed.meta.elements.values()) {
    if (el.tag === Tags.FileMetaInformationGroupLength || el.tag === Tags.TransferSyntaxUID) continue;
    elements.push({ tag: el.tag, vr: explicitVrOf(el), value: Buffer.from(parsed.meta.valueBytes(el)) });
  }
  if (!parsed.meta.has(Tags.MediaStorageSOPClassUID) && parsed.dataset.has(Tags.SOPClassUID)) {
    elements.push({ tag: Tags.MediaStorageSOPClassUID, vr: 'UI', value: parsed.dataset.string(Tags.SOPClassUID) ?? '' });
  }
  if (!parsed.meta.has(Tags.MediaStorageSOPInstanceUID) && parsed.dataset.has(Tags.SOPInstanceUID)) {
    elements.push({ tag: Tags.MediaStorageSOPInstanceUID, vr: 'UI', value: parsed.dataset.string(Tags.SOPInstanceUID) ?? '' });
  }
  elements.push({ tag: Tags.TransferSyntaxUID, vr: 'UI', value: targetUid });
  const explicitLe = { explicitVr: true, littleEndian: true };
  const group = encodeDataset(elements, explicitLe);
  const groupLength = encodeDataset([{ tag: Tags.FileMetaInformationGroupLength, vr: 'UL', value: [group.length] }], explicitLe);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, groupLength, group]);
}

/**
 * A stored instance of a native syntax as a Part 10 file in another native syntax, as chunks to send in order
 * (most are views into the parsed bytes).
 */
export function convertPart10(parsed: ParsedDicom, targetUid: string): Buffer[] {
  const ts = transferSyntax(targetUid);
  if (!CONVERTIBLE_TARGETS.has(targetUid) || !convertibleFrom(parsed.transferSyntaxUid)) {
    throw new PacsError('NotImplemented', `converting ${parsed.transferSyntaxUid} to ${targetUid} is not available`);
  }
  const body: Buffer[] = [];
  encodeNativeDataset(parsed.dataset, ts, body);
  const meta = convertedMetaHeader(parsed, targetUid);
  if (ts.deflated) return [meta, deflateRawSync(Buffer.concat(body))];
  return [meta, ...body];
}

// ---------------------------------------------------------------------------------------------- frames

/** `1`, `1,3,5` (PS3.18 §10.4.1.1.4: frame numbers from 1, in the order asked, repeats allowed); 400 otherwise. */
export function parseFrameList(text: string): number[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => !/^[1-9][0-9]{0,9}$/.test(s))) {
    throw new PacsError('BadRequest', `not a list of frame numbers (from 1, separated by commas): ${JSON.stringify(text.slice(0, 80))}`);
  }
  return items.map(Number);
}

/** Media type names clients use for the same frame encoding (dicomweb-client asks for the x- forms). */
const FRAME_TYPE_ALIASES: Readonly<Record<string, string>> = {
  'image/x-dicom-rle': 'image/dicom-rle',
  'image/x-jls': 'image/jls',
  'image/jhc': 'image/jphc',
};

/** What the parts of a frames answer are: their media type and the transfer syntax they are in. */
export interface FramePlan {
  type: string;
  transferSyntaxUid: string;
}

/**
 * The part type of a frames answer for an instance stored in `storedUid` (PS3.18 §8.7.3.5.2, Table 8.7.3-3):
 * native frames are `application/octet-stream` in Explicit VR Little Endian (their bytes in little endian order);
 * encapsulated frames are sent as stored, with their own media type (`image/jpeg`, `image/jp2`,
 * `image/dicom-rle`, ...), when the Accept header allows it: `transfer-syntax=*`, the stored syntax, the frame's
 * media type (or a range covering it), or `*\/*`. Quoted and unquoted parameters are the same. 406 otherwise, saying
 * that decompression and compression are not available.
 */
export function planFrames(accept: string | string[] | undefined, storedUid: string): FramePlan {
  const stored = transferSyntax(storedUid);
  const native: FramePlan = { type: 'application/octet-stream', transferSyntaxUid: ExplicitVRLittleEndian };
  const asStored: FramePlan = stored.encapsulated
    ? { type: stored.frameMediaType ?? 'application/octet-stream', transferSyntaxUid: storedUid }
    : native;
  for (const range of parseAccept(accept)) {
    const rawType = partTypeOf(range);
    const ts = range.params.get('transfer-syntax');
    if (rawType === undefined || rawType === '*/*') return asStored;
    const type = FRAME_TYPE_ALIASES[rawType] ?? rawType;
    if (type === 'application/octet-stream') {
      if (ts === '*') return asStored;
      if (!stored.encapsulated && (ts === undefined || ts === ExplicitVRLittleEndian || ts === storedUid)) return native;
      if (stored.encapsulated && ts === storedUid) return { type, transferSyntaxUid: storedUid };
      continue;
    }
    if (!stored.encapsulated) continue;
    const mediaType = stored.frameMediaType ?? 'application/octet-stream';
    const covers = type === mediaType || (type.endsWith('/*') && mediaType.startsWith(type.slice(0, -1)));
    if (covers && (ts === undefined || ts === '*' || ts === storedUid)) return asStored;
  }
  const what = stored.encapsulated
    ? `frames are stored compressed in ${stored.name} (${storedUid}) and pacsnode cannot decompress or transcode them yet: ` +
      `ask for multipart/related; type="${asStored.type}" or transfer-syntax=*`
    : `frames are stored uncompressed; pacsnode cannot compress them: ask for multipart/related; type="application/octet-stream"`;
  throw new PacsError('NotAcceptable', what);
}

/** The bytes of each frame asked for (as chunks), in the order asked; 400 for a frame past the last one. */
export function framesOf(parsed: ParsedDicom, frames: readonly number[]): Buffer[][] {
  return frames.map((n) => rawFrame(parsed.dataset, parsed.transferSyntaxUid, n - 1));
}
