/**
 * DIMSE messages (PS3.7 §9.3 for DIMSE-C, §10.3 for DIMSE-N): a table of message types keyed by Command Field
 * with each type's fields and data set rule, typed messages discriminated by `type`, conversion to and from
 * command sets with validation, and response builders. Pure: no sockets.
 */
import type { Tag } from '../dicom/tag.js';
import {
  type CommandFields,
  type CommandKeyword,
  DATASET_PRESENT,
  decodeCommand,
  DimseError,
  encodeCommand,
  NO_DATASET,
} from './command.js';
import { statusCategory } from './status.js';

// ---------------------------------------------------------------------------------------------------------------
// The table

/**
 * Usage of a field in a message (PS3.7 §9.3, §10.3 and the service definitions of §9.1, §10.1): M mandatory,
 * U user option, C conditional (the condition is the service's: the codec checks M only).
 */
export type FieldUsage = 'M' | 'U' | 'C';

/**
 * Whether a data set follows the command: `required` (Command Data Set Type shall not be 0101H), `none` (shall be
 * 0101H), `conditional` (either; the message says which through `hasDataset`).
 */
export type DatasetUsage = 'required' | 'none' | 'conditional';

export type MessageTypeName =
  | 'C-STORE-RQ'
  | 'C-STORE-RSP'
  | 'C-FIND-RQ'
  | 'C-FIND-RSP'
  | 'C-GET-RQ'
  | 'C-GET-RSP'
  | 'C-MOVE-RQ'
  | 'C-MOVE-RSP'
  | 'C-ECHO-RQ'
  | 'C-ECHO-RSP'
  | 'C-CANCEL-RQ'
  | 'N-EVENT-REPORT-RQ'
  | 'N-EVENT-REPORT-RSP'
  | 'N-GET-RQ'
  | 'N-GET-RSP'
  | 'N-SET-RQ'
  | 'N-SET-RSP'
  | 'N-ACTION-RQ'
  | 'N-ACTION-RSP'
  | 'N-CREATE-RQ'
  | 'N-CREATE-RSP'
  | 'N-DELETE-RQ'
  | 'N-DELETE-RSP';

export interface MessageTypeInfo {
  readonly type: MessageTypeName;
  readonly commandField: number;
  /** Where the fields are listed. */
  readonly reference: string;
  /**
   * The fields besides Command Group Length, Command Field and Command Data Set Type, which every message has
   * and the codec fills in.
   */
  readonly fields: Readonly<Partial<Record<CommandKeyword, FieldUsage>>>;
  readonly dataset: DatasetUsage;
}

/** Fields any response may carry with an error or warning status (PS3.7 Annex C.4, C.5). */
const STATUS_DETAIL = { OffendingElement: 'C', ErrorComment: 'C', ErrorID: 'C' } as const;
/** DIMSE-N responses may also name attributes (PS3.7 C.4.2 Attribute List Error, C.5.x). */
const N_STATUS_DETAIL = { ...STATUS_DETAIL, AttributeIdentifierList: 'C' } as const;

const C_RETRIEVE_RSP_FIELDS = {
  AffectedSOPClassUID: 'U',
  MessageIDBeingRespondedTo: 'M',
  Status: 'M',
  NumberOfRemainingSuboperations: 'C',
  NumberOfCompletedSuboperations: 'C',
  NumberOfFailedSuboperations: 'C',
  NumberOfWarningSuboperations: 'C',
  ...STATUS_DETAIL,
} as const;

const N_RSP_FIELDS = {
  AffectedSOPClassUID: 'U',
  MessageIDBeingRespondedTo: 'M',
  Status: 'M',
  AffectedSOPInstanceUID: 'U',
  ...N_STATUS_DETAIL,
} as const;

function row(
  type: MessageTypeName,
  commandField: number,
  reference: string,
  dataset: DatasetUsage,
  fields: Partial<Record<CommandKeyword, FieldUsage>>,
): [number, MessageTypeInfo] {
  return [commandField, Object.freeze({ type, commandField, reference, dataset, fields: Object.freeze({ ...fields }) })];
}

/** Every DIMSE message, keyed by Command Field (0000,0100) (PS3.7 Table E.1-1). */
export const MESSAGE_TYPES: Readonly<Record<number, MessageTypeInfo>> = Object.freeze(
  Object.fromEntries([
    row('C-STORE-RQ', 0x0001, 'PS3.7 Table 9.3-1', 'required', {
      AffectedSOPClassUID: 'M',
      MessageID: 'M',
      Priority: 'M',
      AffectedSOPInstanceUID: 'M',
      MoveOriginatorApplicationEntityTitle: 'U',
      MoveOriginatorMessageID: 'U',
    }),
    row('C-STORE-RSP', 0x8001, 'PS3.7 Table 9.3-2', 'none', {
      AffectedSOPClassUID: 'U',
      MessageIDBeingRespondedTo: 'M',
      Status: 'M',
      AffectedSOPInstanceUID: 'U',
      ...STATUS_DETAIL,
    }),
    row('C-FIND-RQ', 0x0020, 'PS3.7 Table 9.3-3', 'required', { AffectedSOPClassUID: 'M', MessageID: 'M', Priority: 'M' }),
    row('C-FIND-RSP', 0x8020, 'PS3.7 Table 9.3-4', 'conditional', {
      AffectedSOPClassUID: 'U',
      MessageIDBeingRespondedTo: 'M',
      Status: 'M',
      ...STATUS_DETAIL,
    }),
    row('C-GET-RQ', 0x0010, 'PS3.7 Table 9.3-6', 'required', { AffectedSOPClassUID: 'M', MessageID: 'M', Priority: 'M' }),
    row('C-GET-RSP', 0x8010, 'PS3.7 Table 9.3-7', 'conditional', C_RETRIEVE_RSP_FIELDS),
    row('C-MOVE-RQ', 0x0021, 'PS3.7 Table 9.3-9', 'required', {
      AffectedSOPClassUID: 'M',
      MessageID: 'M',
      Priority: 'M',
      MoveDestination: 'M',
    }),
    row('C-MOVE-RSP', 0x8021, 'PS3.7 Table 9.3-10', 'conditional', C_RETRIEVE_RSP_FIELDS),
    row('C-ECHO-RQ', 0x0030, 'PS3.7 Table 9.3-12', 'none', { AffectedSOPClassUID: 'M', MessageID: 'M' }),
    row('C-ECHO-RSP', 0x8030, 'PS3.7 Table 9.3-13', 'none', {
      AffectedSOPClassUID: 'U',
      MessageIDBeingRespondedTo: 'M',
      Status: 'M',
      ...STATUS_DETAIL,
    }),
    row('C-CANCEL-RQ', 0x0fff, 'PS3.7 Tables 9.3-5, 9.3-8, 9.3-11', 'none', { MessageIDBeingRespondedTo: 'M' }),
    row('N-EVENT-REPORT-RQ', 0x0100, 'PS3.7 Table 10.3-1', 'conditional', {
      AffectedSOPClassUID: 'M',
      MessageID: 'M',
      AffectedSOPInstanceUID: 'M',
      EventTypeID: 'M',
    }),
    row('N-EVENT-REPORT-RSP', 0x8100, 'PS3.7 Table 10.3-2', 'conditional', { ...N_RSP_FIELDS, EventTypeID: 'C' }),
    row('N-GET-RQ', 0x0110, 'PS3.7 Table 10.3-3', 'none', {
      RequestedSOPClassUID: 'M',
      MessageID: 'M',
      RequestedSOPInstanceUID: 'M',
      AttributeIdentifierList: 'U',
    }),
    row('N-GET-RSP', 0x8110, 'PS3.7 Table 10.3-4', 'conditional', N_RSP_FIELDS),
    row('N-SET-RQ', 0x0120, 'PS3.7 Table 10.3-5', 'required', {
      RequestedSOPClassUID: 'M',
      MessageID: 'M',
      RequestedSOPInstanceUID: 'M',
    }),
    row('N-SET-RSP', 0x8120, 'PS3.7 Table 10.3-6', 'conditional', N_RSP_FIELDS),
    row('N-ACTION-RQ', 0x0130, 'PS3.7 Table 10.3-7', 'conditional', {
      RequestedSOPClassUID: 'M',
      MessageID: 'M',
      RequestedSOPInstanceUID: 'M',
      ActionTypeID: 'M',
    }),
    row('N-ACTION-RSP', 0x8130, 'PS3.7 Table 10.3-8', 'conditional', { ...N_RSP_FIELDS, ActionTypeID: 'C' }),
    row('N-CREATE-RQ', 0x0140, 'PS3.7 Table 10.3-9', 'conditional', {
      AffectedSOPClassUID: 'M',
      MessageID: 'M',
      AffectedSOPInstanceUID: 'U',
    }),
    row('N-CREATE-RSP', 0x8140, 'PS3.7 Table 10.3-10', 'conditional', { ...N_RSP_FIELDS, AffectedSOPInstanceUID: 'C' }),
    row('N-DELETE-RQ', 0x0150, 'PS3.7 Table 10.3-11', 'none', {
      RequestedSOPClassUID: 'M',
      MessageID: 'M',
      RequestedSOPInstanceUID: 'M',
    }),
    row('N-DELETE-RSP', 0x8150, 'PS3.7 Table 10.3-12', 'none', N_RSP_FIELDS),
  ]),
);

/** `MESSAGE_TYPES` keyed by name. */
export const MESSAGE_TYPE_BY_NAME: Readonly<Record<MessageTypeName, MessageTypeInfo>> = Object.freeze(
  Object.fromEntries(Object.values(MESSAGE_TYPES).map((info) => [info.type, info])) as Record<MessageTypeName, MessageTypeInfo>,
);

/** True for a request Command Field (bit 15 clear), false for a response. */
export function isRequestCommandField(commandField: number): boolean {
  return (commandField & 0x8000) === 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Typed messages (field names as in PS3.7 Annex E)

/** Fields a response may carry with a warning or failure status (PS3.7 Annex C). */
export interface StatusDetail {
  OffendingElement?: Tag[];
  ErrorComment?: string;
  ErrorID?: number;
}

interface ResponseBase extends StatusDetail {
  MessageIDBeingRespondedTo: number;
  Status: number;
}

interface NResponseBase extends ResponseBase {
  AffectedSOPClassUID?: string;
  AffectedSOPInstanceUID?: string;
  AttributeIdentifierList?: Tag[];
  hasDataset?: boolean;
}

/** PS3.7 Table 9.3-1; the data set is the SOP Instance. */
export interface CStoreRq {
  type: 'C-STORE-RQ';
  MessageID: number;
  AffectedSOPClassUID: string;
  AffectedSOPInstanceUID: string;
  Priority: number;
  /** Set when the C-STORE is a sub-operation of a C-MOVE (PS3.7 §9.1.1.1.7, 9.1.1.1.8). */
  MoveOriginatorApplicationEntityTitle?: string;
  MoveOriginatorMessageID?: number;
}

/** PS3.7 Table 9.3-2. */
export interface CStoreRsp extends ResponseBase {
  type: 'C-STORE-RSP';
  AffectedSOPClassUID?: string;
  AffectedSOPInstanceUID?: string;
}

/** PS3.7 Table 9.3-3; the data set is the Identifier. */
export interface CFindRq {
  type: 'C-FIND-RQ';
  MessageID: number;
  AffectedSOPClassUID: string;
  Priority: number;
}

/** PS3.7 Table 9.3-4; a pending response carries an Identifier (`hasDataset`). */
export interface CFindRsp extends ResponseBase {
  type: 'C-FIND-RSP';
  AffectedSOPClassUID?: string;
  /** Whether an Identifier follows; false when omitted. */
  hasDataset?: boolean;
}

/** PS3.7 Table 9.3-6; the data set is the Identifier. */
export interface CGetRq {
  type: 'C-GET-RQ';
  MessageID: number;
  AffectedSOPClassUID: string;
  Priority: number;
}

interface RetrieveRspFields extends ResponseBase {
  AffectedSOPClassUID?: string;
  NumberOfRemainingSuboperations?: number;
  NumberOfCompletedSuboperations?: number;
  NumberOfFailedSuboperations?: number;
  NumberOfWarningSuboperations?: number;
  /** Whether an Identifier (Failed SOP Instance UID List) follows; false when omitted. */
  hasDataset?: boolean;
}

/** PS3.7 Table 9.3-7. */
export interface CGetRsp extends RetrieveRspFields {
  type: 'C-GET-RSP';
}

/** PS3.7 Table 9.3-9; the data set is the Identifier. */
export interface CMoveRq {
  type: 'C-MOVE-RQ';
  MessageID: number;
  AffectedSOPClassUID: string;
  Priority: number;
  MoveDestination: string;
}

/** PS3.7 Table 9.3-10. */
export interface CMoveRsp extends RetrieveRspFields {
  type: 'C-MOVE-RSP';
}

/** PS3.7 Table 9.3-12. */
export interface CEchoRq {
  type: 'C-ECHO-RQ';
  MessageID: number;
  AffectedSOPClassUID: string;
}

/** PS3.7 Table 9.3-13. */
export interface CEchoRsp extends ResponseBase {
  type: 'C-ECHO-RSP';
  AffectedSOPClassUID?: string;
}

/** C-FIND-CANCEL, C-GET-CANCEL and C-MOVE-CANCEL (PS3.7 Tables 9.3-5, 9.3-8, 9.3-11, §9.3.2.3). */
export interface CCancelRq {
  type: 'C-CANCEL-RQ';
  MessageIDBeingRespondedTo: number;
}

/** PS3.7 Table 10.3-1; the data set is the Event Information. */
export interface NEventReportRq {
  type: 'N-EVENT-REPORT-RQ';
  MessageID: number;
  AffectedSOPClassUID: string;
  AffectedSOPInstanceUID: string;
  EventTypeID: number;
  hasDataset?: boolean;
}

/** PS3.7 Table 10.3-2. */
export interface NEventReportRsp extends NResponseBase {
  type: 'N-EVENT-REPORT-RSP';
  EventTypeID?: number;
}

/** PS3.7 Table 10.3-3. */
export interface NGetRq {
  type: 'N-GET-RQ';
  MessageID: number;
  RequestedSOPClassUID: string;
  RequestedSOPInstanceUID: string;
  AttributeIdentifierList?: Tag[];
}

/** PS3.7 Table 10.3-4; the data set is the Attribute List. */
export interface NGetRsp extends NResponseBase {
  type: 'N-GET-RSP';
}

/** PS3.7 Table 10.3-5; the data set is the Modification List. */
export interface NSetRq {
  type: 'N-SET-RQ';
  MessageID: number;
  RequestedSOPClassUID: string;
  RequestedSOPInstanceUID: string;
}

/** PS3.7 Table 10.3-6. */
export interface NSetRsp extends NResponseBase {
  type: 'N-SET-RSP';
}

/** PS3.7 Table 10.3-7; the data set is the Action Information. */
export interface NActionRq {
  type: 'N-ACTION-RQ';
  MessageID: number;
  RequestedSOPClassUID: string;
  RequestedSOPInstanceUID: string;
  ActionTypeID: number;
  hasDataset?: boolean;
}

/** PS3.7 Table 10.3-8. */
export interface NActionRsp extends NResponseBase {
  type: 'N-ACTION-RSP';
  ActionTypeID?: number;
}

/** PS3.7 Table 10.3-9; the data set is the Attribute List. */
export interface NCreateRq {
  type: 'N-CREATE-RQ';
  MessageID: number;
  AffectedSOPClassUID: string;
  AffectedSOPInstanceUID?: string;
  hasDataset?: boolean;
}

/** PS3.7 Table 10.3-10. */
export interface NCreateRsp extends NResponseBase {
  type: 'N-CREATE-RSP';
}

/** PS3.7 Table 10.3-11. */
export interface NDeleteRq {
  type: 'N-DELETE-RQ';
  MessageID: number;
  RequestedSOPClassUID: string;
  RequestedSOPInstanceUID: string;
}

/** PS3.7 Table 10.3-12. */
export interface NDeleteRsp extends Omit<NResponseBase, 'hasDataset'> {
  type: 'N-DELETE-RSP';
}

export type DimseCRequest = CStoreRq | CFindRq | CGetRq | CMoveRq | CEchoRq | CCancelRq;
export type DimseCResponse = CStoreRsp | CFindRsp | CGetRsp | CMoveRsp | CEchoRsp;
export type DimseNRequest = NEventReportRq | NGetRq | NSetRq | NActionRq | NCreateRq | NDeleteRq;
export type DimseNResponse = NEventReportRsp | NGetRsp | NSetRsp | NActionRsp | NCreateRsp | NDeleteRsp;
export type DimseMessage = DimseCRequest | DimseCResponse | DimseNRequest | DimseNResponse;

// ---------------------------------------------------------------------------------------------------------------
// Conversion

function missing(field: string, type: MessageTypeName | undefined): DimseError {
  return new DimseError('ERR_DIMSE_MISSING_FIELD', type ? `${type} without ${field}` : `no ${field}`, { field });
}

/** Whether a data set follows this message (from its type, or `hasDataset` for conditional types). */
export function messageHasDataset(msg: DimseMessage): boolean {
  const info = MESSAGE_TYPE_BY_NAME[msg.type];
  if (info.dataset === 'conditional') return (msg as { hasDataset?: boolean }).hasDataset === true;
  return info.dataset === 'required';
}

/**
 * The command set of a message: its fields, Command Field, and Command Data Set Type (0101H without a data set,
 * `DATASET_PRESENT` with one). Fields the type does not list are left out. Throws `DimseError`
 * ERR_DIMSE_MISSING_FIELD when a mandatory field is absent.
 */
export function toCommandSet(msg: DimseMessage): CommandFields {
  const info = MESSAGE_TYPE_BY_NAME[msg.type] as MessageTypeInfo | undefined;
  if (!info) throw new DimseError('ERR_DIMSE_UNKNOWN_COMMAND', `message type ${JSON.stringify(msg.type)}`, { field: 'CommandField' });
  const source = msg as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { CommandField: info.commandField };
  for (const [keyword, usage] of Object.entries(info.fields)) {
    const value = source[keyword];
    if (value === undefined) {
      if (usage === 'M') throw missing(keyword, info.type);
      continue;
    }
    out[keyword] = value;
  }
  out.CommandDataSetType = messageHasDataset(msg) ? DATASET_PRESENT : NO_DATASET;
  return out as CommandFields;
}

/**
 * The typed message of a command set. Throws `DimseError`: ERR_DIMSE_UNKNOWN_COMMAND for a Command Field that
 * names no message (a request may be answered with status 0211H, Unrecognized Operation),
 * ERR_DIMSE_MISSING_FIELD naming the first mandatory field absent, ERR_DIMSE_INVALID_FIELD when Command Data Set
 * Type contradicts the message type (a C-ECHO-RQ announcing a data set, a C-STORE-RQ without one). Fields the
 * type does not list (a retired Message ID in a response, say) are ignored.
 */
export function fromCommandSet(cs: CommandFields): DimseMessage {
  if (cs.CommandField === undefined) throw missing('CommandField', undefined);
  const info = MESSAGE_TYPES[cs.CommandField];
  if (!info) {
    throw new DimseError('ERR_DIMSE_UNKNOWN_COMMAND', `Command Field 0x${cs.CommandField.toString(16).padStart(4, '0')}`, {
      field: 'CommandField',
    });
  }
  if (cs.CommandDataSetType === undefined) throw missing('CommandDataSetType', info.type);
  const withDataset = cs.CommandDataSetType !== NO_DATASET;
  if ((info.dataset === 'required' && !withDataset) || (info.dataset === 'none' && withDataset)) {
    throw new DimseError(
      'ERR_DIMSE_INVALID_FIELD',
      `${info.type} with Command Data Set Type 0x${cs.CommandDataSetType.toString(16).padStart(4, '0')} (${info.reference}: data set ${info.dataset})`,
      { field: 'CommandDataSetType' },
    );
  }
  const source = cs as Record<string, unknown>;
  const msg: Record<string, unknown> = { type: info.type };
  for (const [keyword, usage] of Object.entries(info.fields)) {
    const value = source[keyword];
    if (value === undefined) {
      if (usage === 'M') throw missing(keyword, info.type);
      continue;
    }
    msg[keyword] = value;
  }
  if (info.dataset === 'conditional') msg.hasDataset = withDataset;
  return msg as unknown as DimseMessage;
}

/** `encodeCommand(toCommandSet(msg))`. */
export function encodeMessage(msg: DimseMessage): Buffer {
  return encodeCommand(toCommandSet(msg));
}

/** `fromCommandSet(decodeCommand(bytes))`. */
export function decodeMessage(bytes: Buffer): DimseMessage {
  return fromCommandSet(decodeCommand(bytes));
}

// ---------------------------------------------------------------------------------------------------------------
// Response builders

/** Sub-operation counters of a C-GET or C-MOVE response (PS3.7 §9.1.3.1, §9.1.4.1). */
export interface SubOperationCounts {
  remaining?: number;
  completed?: number;
  failed?: number;
  warning?: number;
}

function detailFields(detail: StatusDetail | undefined): StatusDetail {
  const out: StatusDetail = {};
  if (detail?.ErrorComment !== undefined) out.ErrorComment = detail.ErrorComment;
  if (detail?.OffendingElement !== undefined) out.OffendingElement = detail.OffendingElement;
  if (detail?.ErrorID !== undefined) out.ErrorID = detail.ErrorID;
  return out;
}

/**
 * The C-STORE-RSP to a request: Message ID Being Responded To, and the Affected SOP Class and Instance UIDs
 * copied (PS3.7 Table 9.1-1: U(=), "shall be equal to the value in the request").
 */
export function cStoreRsp(rq: CStoreRq, status: number, detail?: StatusDetail): CStoreRsp {
  return {
    type: 'C-STORE-RSP',
    MessageIDBeingRespondedTo: rq.MessageID,
    AffectedSOPClassUID: rq.AffectedSOPClassUID,
    AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID,
    Status: status,
    ...detailFields(detail),
  };
}

/**
 * A C-FIND-RSP: an Identifier follows a pending response (PS3.4 C.4.1.1.4); override with `hasDataset`.
 */
export function cFindRsp(rq: CFindRq, status: number, detail?: StatusDetail & { hasDataset?: boolean }): CFindRsp {
  return {
    type: 'C-FIND-RSP',
    MessageIDBeingRespondedTo: rq.MessageID,
    AffectedSOPClassUID: rq.AffectedSOPClassUID,
    Status: status,
    hasDataset: detail?.hasDataset ?? statusCategory(status) === 'pending',
    ...detailFields(detail),
  };
}

function retrieveCounts(status: number, counts: SubOperationCounts | undefined): Partial<RetrieveRspFields> {
  const out: Partial<RetrieveRspFields> = {};
  if (!counts) return out;
  const category = statusCategory(status);
  // Remaining: pending responses shall have it, a canceled one may, final responses shall not (PS3.4 C.4.2.1.6,
  // C.4.3.1.6); the other counters go in whenever known.
  if (counts.remaining !== undefined && (category === 'pending' || category === 'cancel')) {
    out.NumberOfRemainingSuboperations = counts.remaining;
  }
  if (counts.completed !== undefined) out.NumberOfCompletedSuboperations = counts.completed;
  if (counts.failed !== undefined) out.NumberOfFailedSuboperations = counts.failed;
  if (counts.warning !== undefined) out.NumberOfWarningSuboperations = counts.warning;
  return out;
}

/**
 * A C-GET-RSP with the sub-operation counts (Remaining only in pending and canceled responses). An Identifier
 * (Failed SOP Instance UID List) follows only when `detail.hasDataset` says so.
 */
export function cGetRsp(
  rq: CGetRq,
  status: number,
  counts?: SubOperationCounts,
  detail?: StatusDetail & { hasDataset?: boolean },
): CGetRsp {
  return {
    type: 'C-GET-RSP',
    MessageIDBeingRespondedTo: rq.MessageID,
    AffectedSOPClassUID: rq.AffectedSOPClassUID,
    Status: status,
    ...retrieveCounts(status, counts),
    hasDataset: detail?.hasDataset ?? false,
    ...detailFields(detail),
  };
}

/** A C-MOVE-RSP, as `cGetRsp`. */
export function cMoveRsp(
  rq: CMoveRq,
  status: number,
  counts?: SubOperationCounts,
  detail?: StatusDetail & { hasDataset?: boolean },
): CMoveRsp {
  return {
    type: 'C-MOVE-RSP',
    MessageIDBeingRespondedTo: rq.MessageID,
    AffectedSOPClassUID: rq.AffectedSOPClassUID,
    Status: status,
    ...retrieveCounts(status, counts),
    hasDataset: detail?.hasDataset ?? false,
    ...detailFields(detail),
  };
}

/** A C-ECHO-RSP (Success unless told otherwise). */
export function cEchoRsp(rq: CEchoRq, status = 0x0000, detail?: StatusDetail): CEchoRsp {
  return {
    type: 'C-ECHO-RSP',
    MessageIDBeingRespondedTo: rq.MessageID,
    AffectedSOPClassUID: rq.AffectedSOPClassUID,
    Status: status,
    ...detailFields(detail),
  };
}

/** The C-CANCEL-RQ of an outstanding C-FIND, C-GET or C-MOVE (PS3.7 §9.3.2.3, §9.3.3.3, §9.3.4.3). */
export function cCancelRq(rq: CFindRq | CGetRq | CMoveRq): CCancelRq {
  return { type: 'C-CANCEL-RQ', MessageIDBeingRespondedTo: rq.MessageID };
}

type NResponseTo<R extends DimseNRequest> = R extends NEventReportRq
  ? NEventReportRsp
  : R extends NGetRq
    ? NGetRsp
    : R extends NSetRq
      ? NSetRsp
      : R extends NActionRq
        ? NActionRsp
        : R extends NCreateRq
          ? NCreateRsp
          : NDeleteRsp;

/**
 * The DIMSE-N response to a request: the Affected SOP Class and Instance UIDs are the request's Affected or
 * Requested ones (PS3.7 §10.1: U(=)), Event Type ID and Action Type ID are copied. A data set follows when
 * `detail.hasDataset` says so (never for N-DELETE-RSP).
 */
export function nRsp<R extends DimseNRequest>(
  rq: R,
  status: number,
  detail?: StatusDetail & { hasDataset?: boolean; AttributeIdentifierList?: Tag[] },
): NResponseTo<R> {
  const info = MESSAGE_TYPE_BY_NAME[rq.type];
  const rsp = MESSAGE_TYPES[info.commandField | 0x8000]!;
  const source = rq as unknown as Partial<Record<string, unknown>>;
  const out: Record<string, unknown> = { type: rsp.type, MessageIDBeingRespondedTo: rq.MessageID, Status: status };
  const sopClass = source.AffectedSOPClassUID ?? source.RequestedSOPClassUID;
  const sopInstance = source.AffectedSOPInstanceUID ?? source.RequestedSOPInstanceUID;
  if (sopClass !== undefined) out.AffectedSOPClassUID = sopClass;
  if (sopInstance !== undefined) out.AffectedSOPInstanceUID = sopInstance;
  if (source.EventTypeID !== undefined) out.EventTypeID = source.EventTypeID;
  if (source.ActionTypeID !== undefined) out.ActionTypeID = source.ActionTypeID;
  if (rsp.dataset === 'conditional') out.hasDataset = detail?.hasDataset ?? false;
  if (detail?.AttributeIdentifierList !== undefined) out.AttributeIdentifierList = detail.AttributeIdentifierList;
  Object.assign(out, detailFields(detail));
  return out as unknown as NResponseTo<R>;
}
