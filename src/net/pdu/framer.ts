/**
 * Cuts a TCP byte stream into whole PDUs (PS3.8 §9.3: a 6-byte header, PDU-type and PDU-length, then the body).
 * Pure: fed arbitrary chunks, returns the PDUs each chunk completes; decoding is `codec.ts`'s job.
 *
 * The header is read as soon as its 6 bytes are in, and its PDU-length is checked against the cap for its PDU-type
 * before a byte of the body is kept: a peer declaring 4 GB costs 6 bytes. Bodies are kept as a list of slices of the
 * chunks and concatenated once, when complete; a PDU lying inside one chunk is returned as a view of that chunk (no
 * copy), so returned Buffers may share memory with the chunks: do not mutate either.
 */
import { PDU_HEADER_LENGTH } from './codec.js';
import { PduError } from './errors.js';
import { ABORT_REASONS, PDU_TYPE_CODES } from './types.js';

export interface PduFramerOptions {
  /**
   * Cap on the PDU-length of a P-DATA-TF: the Maximum Length we advertised (PS3.8 §D.1 counts the PDU's variable field,
   * which is what PDU-length counts), plus any slack the caller wants to allow for peers that overshoot. Must be >= 1.
   */
  maxPduLength: number;
  /** Cap on the PDU-length of an A-ASSOCIATE-RQ or -AC. Default 64 KiB (128 proposed contexts take about 18 KB). */
  maxAssociateLength?: number;
  /** Cap on the PDU-length of A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT. Default 4, the length PS3.8 fixes for them. */
  maxOtherLength?: number;
}

export const DEFAULT_MAX_ASSOCIATE_LENGTH = 64 * 1024;
export const DEFAULT_MAX_OTHER_LENGTH = 4;

function checkCap(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 0xffffffff) {
    throw new RangeError(`PduFramer: ${name} must be an integer 1..4294967295, got ${value}`);
  }
  return value;
}

export class PduFramer {
  /** PDU-type code -> cap on its PDU-length (STYLE.md habit 2); a code not in it is an unrecognized PDU. */
  private readonly caps: ReadonlyMap<number, number>;
  /** Slices of the PDU being collected, in order; their total is `pendingBytes`. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Total size (header included) of the PDU being collected once its header is read; 0 before. */
  private need = 0;
  private failure: PduError | undefined;

  constructor(opts: PduFramerOptions) {
    const pdata = checkCap(opts.maxPduLength, 'maxPduLength');
    const associate = checkCap(opts.maxAssociateLength ?? DEFAULT_MAX_ASSOCIATE_LENGTH, 'maxAssociateLength');
    const other = checkCap(opts.maxOtherLength ?? DEFAULT_MAX_OTHER_LENGTH, 'maxOtherLength');
    this.caps = new Map([
      [PDU_TYPE_CODES['A-ASSOCIATE-RQ'], associate],
      [PDU_TYPE_CODES['A-ASSOCIATE-AC'], associate],
      [PDU_TYPE_CODES['A-ASSOCIATE-RJ'], other],
      [PDU_TYPE_CODES['P-DATA-TF'], pdata],
      [PDU_TYPE_CODES['A-RELEASE-RQ'], other],
      [PDU_TYPE_CODES['A-RELEASE-RP'], other],
      [PDU_TYPE_CODES['A-ABORT'], other],
    ]);
  }

  /** Bytes held for a PDU not yet complete (never more than the header plus the capped body). */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /** The error that stopped this framer, if one did. */
  get error(): PduError | undefined {
    return this.failure;
  }

  /**
   * Feeds one chunk; returns the PDUs it completes, each a whole PDU with its header. Throws PduError
   * ('ERR_PDU_UNKNOWN_TYPE' or 'ERR_PDU_TOO_LARGE') as soon as a header is read that cannot be accepted; after that
   * the framer holds nothing and throws the same error for any further input.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.failure) throw this.failure;
    try {
      return this.cut(chunk);
    } catch (e) {
      // Only PduError is expected here; anything else is a bug of ours, rethrown as is (and the framer still stops).
      this.failure = e instanceof PduError ? e : new PduError('ERR_PDU_MALFORMED', `framer failed: ${String(e)}`);
      this.pending = [];
      this.pendingBytes = 0;
      this.need = 0;
      throw e;
    }
  }

  private cut(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.pendingBytes === 0) {
        // At a PDU boundary: whole PDUs inside this chunk are returned as views, without copying.
        const avail = chunk.length - off;
        if (avail < PDU_HEADER_LENGTH) {
          this.keep(chunk.subarray(off));
          break;
        }
        const total = this.checkHeader(chunk, off);
        if (avail >= total) {
          out.push(chunk.subarray(off, off + total));
          off += total;
          continue;
        }
        this.need = total;
        this.keep(chunk.subarray(off));
        break;
      }
      if (this.need === 0) {
        // A header split across chunks: gather its 6 bytes (at most 5 are held before the check).
        const take = Math.min(PDU_HEADER_LENGTH - this.pendingBytes, chunk.length - off);
        this.keep(chunk.subarray(off, off + take));
        off += take;
        if (this.pendingBytes < PDU_HEADER_LENGTH) break;
        const header = Buffer.concat(this.pending, PDU_HEADER_LENGTH);
        this.pending = [header];
        this.need = this.checkHeader(header, 0);
      }
      const take = Math.min(this.need - this.pendingBytes, chunk.length - off);
      if (take > 0) {
        this.keep(chunk.subarray(off, off + take));
        off += take;
      }
      if (this.pendingBytes === this.need) {
        out.push(this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.need));
        this.pending = [];
        this.pendingBytes = 0;
        this.need = 0;
      }
    }
    return out;
  }

  private keep(slice: Buffer): void {
    this.pending.push(slice);
    this.pendingBytes += slice.length;
  }

  /** Reads PDU-type and PDU-length at `off`; returns the PDU's total size or throws before anything is kept. */
  private checkHeader(buf: Buffer, off: number): number {
    const type = buf[off]!;
    const cap = this.caps.get(type);
    if (cap === undefined) {
      throw new PduError('ERR_PDU_UNKNOWN_TYPE', `unrecognized PDU type ${type.toString(16).padStart(2, '0')}H`, {
        abortReason: ABORT_REASONS['unrecognized-PDU'],
        offset: 0,
      });
    }
    const length = buf.readUInt32BE(off + 2);
    if (length > cap) {
      // PS3.8 names no reason for an oversized PDU; its PDU-length parameter has a value we cannot accept.
      throw new PduError('ERR_PDU_TOO_LARGE', `PDU type ${type.toString(16).padStart(2, '0')}H declares ${length} bytes; the cap is ${cap}`, {
        abortReason: ABORT_REASONS['invalid-PDU-parameter-value'],
        offset: 2,
      });
    }
    return PDU_HEADER_LENGTH + length;
  }
}
