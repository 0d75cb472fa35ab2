/**
 * The one error the PDU codec and framer raise (STYLE.md habit 8: branch on `code`, never on the message).
 * Decoding hostile bytes raises nothing else: every length is checked before it is used.
 */
import { ABORT_REASONS, type AbortReason } from './types.js';

export type PduErrorCode =
  /** The structure does not hold: a length overruns its parent, a PDU is truncated, a mandatory item is missing or repeated. */
  | 'ERR_PDU_MALFORMED'
  /** The structure holds but a field has a value PS3.8 does not allow (AE title characters, even context ID, result code...). */
  | 'ERR_PDU_INVALID_VALUE'
  /** The PDU-type is none of 01H..07H. */
  | 'ERR_PDU_UNKNOWN_TYPE'
  /** The PDU-length is beyond the cap the framer was given for that PDU type. */
  | 'ERR_PDU_TOO_LARGE'
  /** An A-ASSOCIATE-RQ proposes no presentation context (PS3.8 §9.3.2: "one or more"). */
  | 'ERR_PDU_NO_PRESENTATION_CONTEXT'
  /** encodePdu was given a value that cannot go on the wire (AE title over 16 characters, item over 65535 bytes...). */
  | 'ERR_PDU_CANNOT_ENCODE';

/** PS3.8 §9.3.4: what an acceptor may answer with A-ASSOCIATE-RJ instead of an A-ABORT, for an RQ it can read. */
export interface PduRejection {
  result: 1 | 2;
  source: 1 | 2 | 3;
  reason: number;
}

export class PduError extends Error {
  readonly code: PduErrorCode;
  /**
   * The Reason/Diag. of the A-ABORT (source 2, service provider) to send for this error (PS3.8 §9.3.8); undefined for
   * encoding errors, which are ours, not the peer's.
   */
  readonly abortReason: AbortReason | undefined;
  /** Set where an acceptor that received an A-ASSOCIATE-RQ can answer with an A-ASSOCIATE-RJ rather than abort. */
  readonly rejection: PduRejection | undefined;
  /** Byte offset in the PDU (header included) where the problem was found, when known. */
  readonly offset: number | undefined;

  constructor(
    code: PduErrorCode,
    message: string,
    options: { abortReason?: AbortReason; rejection?: PduRejection; offset?: number } = {},
  ) {
    super(options.offset === undefined ? message : `${message} (at byte ${options.offset})`);
    this.name = 'PduError';
    this.code = code;
    this.abortReason = options.abortReason;
    this.rejection = options.rejection;
    this.offset = options.offset;
  }
}

export function isPduError(e: unknown): e is PduError {
  return e instanceof PduError;
}

/** The structure does not hold (abort reason 6, invalid-PDU-parameter value, unless said otherwise). */
export function malformed(message: string, offset?: number, abortReason: AbortReason = ABORT_REASONS['invalid-PDU-parameter-value']): PduError {
  return new PduError('ERR_PDU_MALFORMED', message, { abortReason, offset });
}

/** A field's value is not one PS3.8 allows (abort reason 6, invalid-PDU-parameter value). */
export function invalidValue(message: string, offset?: number): PduError {
  return new PduError('ERR_PDU_INVALID_VALUE', message, { abortReason: ABORT_REASONS['invalid-PDU-parameter-value'], offset });
}

/** A mandatory-once item seen twice (abort reason 5, unexpected-PDU parameter). */
export function unexpectedItem(message: string, offset?: number): PduError {
  return malformed(message, offset, ABORT_REASONS['unexpected-PDU-parameter']);
}

export function cannotEncode(message: string): PduError {
  return new PduError('ERR_PDU_CANNOT_ENCODE', message);
}
