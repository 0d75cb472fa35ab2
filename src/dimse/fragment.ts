/**
 * DIMSE messages over P-DATA (PS3.8 §9.3.5 and Annex E): splitting a command or a data set into PDV payloads
 * that fit the peer's maximum PDU length, and reassembling received PDVs into messages while enforcing the
 * encapsulation rules. Pure: the PDU codec (`net/`) frames the PDVs, this module only sees their content.
 */
import { type CommandSet, decodeCommand, DimseError, hasDataset } from './command.js';

/**
 * Bytes of a PDV item around its fragment (PS3.8 Table 9-23): Item-length (4), Presentation-context-ID (1) and
 * the Message Control Header (1, Annex E.2).
 */
export const PDV_OVERHEAD = 6;

/** The largest PDU length field (4 bytes); also the bound used when the peer sets no maximum (0). */
const MAX_UINT32 = 0xffffffff;

/**
 * The largest fragment one PDV may carry in a P-DATA-TF PDU whose variable field is at most `maxPduLength` bytes
 * (PS3.8 D.1.1: the Maximum Length is the PDU length of P-DATA-TF, "0 indicates that no maximum length is
 * specified"), the PDV alone in its PDU. Fragments have an even length (PS3.8 Annex E.1), so the result is even.
 * Throws `DimseError` ERR_DIMSE_MAX_PDU_LENGTH when not even 2 bytes fit.
 */
export function maxFragmentLength(maxPduLength: number): number {
  if (!Number.isInteger(maxPduLength) || maxPduLength < 0 || maxPduLength > MAX_UINT32) {
    throw new DimseError('ERR_DIMSE_MAX_PDU_LENGTH', `${maxPduLength} is not a PDU length`);
  }
  const room = (maxPduLength === 0 ? MAX_UINT32 : maxPduLength) - PDV_OVERHEAD;
  const even = room - (room % 2);
  if (even < 2) {
    throw new DimseError('ERR_DIMSE_MAX_PDU_LENGTH', `a maximum PDU length of ${maxPduLength} leaves no room for a fragment`);
  }
  return even;
}

/**
 * Splits a command set or a data set into the fragments of successive PDVs, one per P-DATA-TF PDU of at most
 * `maxPduLength` (0 = unlimited). The fragments are views into `data` (no copy); each has an even length except
 * the last when `data` itself is odd; the last one is the fragment to send with the "last" bit of the Message
 * Control Header. Empty data gives one empty fragment, so that there is always a last PDV.
 */
export function fragment(data: Buffer, maxPduLength: number): Buffer[] {
  const size = maxFragmentLength(maxPduLength);
  if (data.length <= size) return [data];
  const out: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) out.push(data.subarray(offset, Math.min(offset + size, data.length)));
  return out;
}

/** One Presentation Data Value: a message fragment with its context and Message Control Header bits. */
export interface Pdv {
  presentationContextId: number;
  /** Message Control Header bit 0: 1 = command, 0 = data set (PS3.8 Annex E.2). */
  isCommand: boolean;
  /** Message Control Header bit 1: last fragment of the command or of the data set. */
  isLast: boolean;
  data: Buffer;
}

/** The Message Control Header byte (PS3.8 Annex E.2); bits 2-7 are 0. */
export function messageControlHeader(isCommand: boolean, isLast: boolean): number {
  return (isCommand ? 0x01 : 0x00) | (isLast ? 0x02 : 0x00);
}

/** Reads a Message Control Header byte; bits 2-7 are "never checked by the receiver" (PS3.8 Annex E.2). */
export function parseMessageControlHeader(byte: number): { isCommand: boolean; isLast: boolean } {
  return { isCommand: (byte & 0x01) !== 0, isLast: (byte & 0x02) !== 0 };
}

/**
 * The PDVs of a whole message: command fragments, then data set fragments, all on one presentation context
 * (PS3.8 Annex E.1). Each PDV fits alone in a PDU of `maxPduLength`.
 */
export function fragmentMessage(
  presentationContextId: number,
  command: Buffer,
  dataset: Buffer | undefined,
  maxPduLength: number,
): Pdv[] {
  const pdvs: Pdv[] = [];
  const add = (data: Buffer, isCommand: boolean): void => {
    const parts = fragment(data, maxPduLength);
    parts.forEach((part, i) => pdvs.push({ presentationContextId, isCommand, isLast: i === parts.length - 1, data: part }));
  };
  add(command, true);
  if (dataset !== undefined) add(dataset, false);
  return pdvs;
}

// ---------------------------------------------------------------------------------------------------------------
// Reassembly

/** A complete message. */
export interface AssembledMessage {
  presentationContextId: number;
  command: CommandSet;
  /**
   * The data set fragments in order, as received (views into the PDU buffers, not concatenated); undefined when
   * the command announces no data set, or when the data set was streamed through `onDatasetChunk`.
   */
  dataset?: Buffer[];
  /** Bytes of the data set (collected or streamed); 0 without one. */
  datasetLength: number;
  /** The data set went to `onDatasetChunk` instead of `dataset`. */
  streamed: boolean;
}

export interface MessageAssemblerOptions {
  /**
   * The presentation contexts accepted on the association (a set of IDs, or a predicate). A PDV naming another
   * one is an error. Default: any odd ID from 1 to 255 (PS3.8 Table 9-23).
   */
  acceptedContexts?: ReadonlySet<number> | ((presentationContextId: number) => boolean);
  /** Largest command set accepted, in bytes (default 1 MiB); command sets are a few hundred bytes. */
  maxCommandLength?: number;
  /** Largest data set collected in memory, in bytes (default unlimited); streamed data sets are not counted. */
  maxDatasetLength?: number;
  /**
   * Called when a command set is complete and a data set follows it: return true to receive that data set
   * through `onDatasetChunk` instead of in the message (a large C-STORE written to the store as it arrives).
   * Default when `onDatasetChunk` is given: stream every data set.
   */
  streamDataset?: (presentationContextId: number, command: CommandSet) => boolean;
  /** Receives the fragments of a streamed data set in order; `isLast` on the final one (which may be empty). */
  onDatasetChunk?: (presentationContextId: number, chunk: Buffer, isLast: boolean) => void;
}

type AssemblerState =
  | { phase: 'idle' }
  | { phase: 'command'; contextId: number; parts: Buffer[]; length: number }
  | { phase: 'dataset'; contextId: number; command: CommandSet; parts: Buffer[] | undefined; length: number };

const DEFAULT_MAX_COMMAND_LENGTH = 1024 * 1024;

/**
 * Turns the PDVs received on one association, in order, into messages (PS3.8 Annex E.1): the command fragments
 * come first and end with a "last" command fragment, then, if Command Data Set Type announces one, the data set
 * fragments up to a "last" one; every fragment of a message is on the same presentation context, and messages do
 * not interleave. Any breach throws `DimseError` (ERR_DIMSE_PDV_SEQUENCE, ERR_DIMSE_UNKNOWN_CONTEXT,
 * ERR_DIMSE_TOO_LARGE, or ERR_DIMSE_MALFORMED from the command set codec), after which the assembler is back to
 * idle and the caller aborts the association (see `DIMSE_ERROR_CODES`).
 */
export class MessageAssembler {
  private state: AssemblerState = { phase: 'idle' };
  private readonly accepts: (presentationContextId: number) => boolean;
  private readonly maxCommandLength: number;
  private readonly maxDatasetLength: number;
  private readonly streamDataset?: (presentationContextId: number, command: CommandSet) => boolean;
  private readonly onDatasetChunk?: (presentationContextId: number, chunk: Buffer, isLast: boolean) => void;

  constructor(options: MessageAssemblerOptions = {}) {
    const accepted = options.acceptedContexts;
    this.accepts =
      accepted === undefined
        ? (id) => Number.isInteger(id) && id >= 1 && id <= 255 && id % 2 === 1
        : typeof accepted === 'function'
          ? accepted
          : (id) => accepted.has(id);
    this.maxCommandLength = options.maxCommandLength ?? DEFAULT_MAX_COMMAND_LENGTH;
    this.maxDatasetLength = options.maxDatasetLength ?? Number.POSITIVE_INFINITY;
    this.onDatasetChunk = options.onDatasetChunk;
    this.streamDataset = options.streamDataset ?? (options.onDatasetChunk ? () => true : undefined);
    if (this.streamDataset && !this.onDatasetChunk) {
      throw new TypeError('MessageAssembler: streamDataset needs onDatasetChunk');
    }
  }

  /** True between messages (nothing half-received): e.g. before accepting an A-RELEASE-RQ quietly. */
  get idle(): boolean {
    return this.state.phase === 'idle';
  }

  /** Drops a half-received message. */
  reset(): void {
    this.state = { phase: 'idle' };
  }

  /**
   * Takes the next PDV; returns the message it completes, or undefined. The PDV's `data` is kept by reference
   * in collected data sets: the caller must not reuse the PDU buffer.
   */
  push(pdv: Pdv): AssembledMessage | undefined {
    try {
      return this.step(pdv);
    } catch (e) {
      this.state = { phase: 'idle' };
      throw e;
    }
  }

  private step(pdv: Pdv): AssembledMessage | undefined {
    const id = pdv.presentationContextId;
    if (!this.accepts(id)) {
      throw new DimseError('ERR_DIMSE_UNKNOWN_CONTEXT', `presentation context ${id} was not accepted on this association`);
    }
    const state = this.state;
    switch (state.phase) {
      case 'idle':
        if (!pdv.isCommand) throw sequence(`a data set fragment on context ${id} that no command announced`);
        this.state = { phase: 'command', contextId: id, parts: [], length: 0 };
        return this.commandFragment(pdv);
      case 'command':
        if (id !== state.contextId) throw sequence(`a fragment on context ${id} inside a command on context ${state.contextId}`);
        if (!pdv.isCommand) throw sequence(`a data set fragment before the last command fragment (context ${id})`);
        return this.commandFragment(pdv);
      case 'dataset':
        if (id !== state.contextId) throw sequence(`a fragment on context ${id} inside a data set on context ${state.contextId}`);
        if (pdv.isCommand) throw sequence(`a command fragment while the data set of context ${id} is incomplete`);
        return this.datasetFragment(pdv, state);
    }
  }

  private commandFragment(pdv: Pdv): AssembledMessage | undefined {
    const state = this.state as Extract<AssemblerState, { phase: 'command' }>;
    state.length += pdv.data.length;
    if (state.length > this.maxCommandLength) {
      throw new DimseError('ERR_DIMSE_TOO_LARGE', `command set longer than ${this.maxCommandLength} bytes`);
    }
    state.parts.push(pdv.data);
    if (!pdv.isLast) return undefined;
    const bytes = state.parts.length === 1 ? state.parts[0]! : Buffer.concat(state.parts, state.length);
    const command = decodeCommand(bytes);
    const contextId = state.contextId;
    if (command.CommandDataSetType === undefined) {
      throw new DimseError('ERR_DIMSE_MALFORMED', 'command set without Command Data Set Type (0000,0800)');
    }
    if (!hasDataset(command)) {
      this.state = { phase: 'idle' };
      return { presentationContextId: contextId, command, datasetLength: 0, streamed: false };
    }
    const streamed = this.streamDataset?.(contextId, command) === true;
    this.state = { phase: 'dataset', contextId, command, parts: streamed ? undefined : [], length: 0 };
    return undefined;
  }

  private datasetFragment(pdv: Pdv, state: Extract<AssemblerState, { phase: 'dataset' }>): AssembledMessage | undefined {
    state.length += pdv.data.length;
    if (state.parts === undefined) {
      this.onDatasetChunk!(state.contextId, pdv.data, pdv.isLast);
    } else {
      if (state.length > this.maxDatasetLength) {
        throw new DimseError('ERR_DIMSE_TOO_LARGE', `data set longer than ${this.maxDatasetLength} bytes`);
      }
      if (pdv.data.length > 0) state.parts.push(pdv.data);
    }
    if (!pdv.isLast) return undefined;
    this.state = { phase: 'idle' };
    const message: AssembledMessage = {
      presentationContextId: state.contextId,
      command: state.command,
      datasetLength: state.length,
      streamed: state.parts === undefined,
    };
    if (state.parts !== undefined) message.dataset = state.parts;
    return message;
  }
}

function sequence(message: string): DimseError {
  return new DimseError('ERR_DIMSE_PDV_SEQUENCE', message);
}
