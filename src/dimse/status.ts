/**
 * DIMSE status codes (PS3.7 Annex C, and the service-specific codes of PS3.4 Annexes B and C) and their
 * categories. Codes and classes are tables, so each row can be checked against the standard.
 */

export type StatusCategory = 'success' | 'pending' | 'warning' | 'failure' | 'cancel';

/**
 * Named status codes. Some values mean different things in different services (0xA900, 0xB000): both names are
 * listed; `STATUS_MEANINGS` says which service uses which.
 */
export const Status = {
  // PS3.7 C.1, C.2, C.3
  Success: 0x0000,
  Cancel: 0xfe00,
  Pending: 0xff00,
  /** C-FIND: matches are continuing, one or more Optional Keys were not supported (PS3.4 C.4.1.1.4). */
  PendingWarning: 0xff01,
  // PS3.7 C.4 (warnings)
  Warning: 0x0001,
  AttributeListError: 0x0107,
  AttributeValueOutOfRange: 0x0116,
  // PS3.7 C.5 (failures with a standard meaning)
  NoSuchAttribute: 0x0105,
  InvalidAttributeValue: 0x0106,
  ProcessingFailure: 0x0110,
  DuplicateSOPInstance: 0x0111,
  NoSuchSOPInstance: 0x0112,
  NoSuchEventType: 0x0113,
  NoSuchArgument: 0x0114,
  InvalidArgumentValue: 0x0115,
  InvalidObjectInstance: 0x0117,
  NoSuchSOPClass: 0x0118,
  ClassInstanceConflict: 0x0119,
  MissingAttribute: 0x0120,
  MissingAttributeValue: 0x0121,
  SOPClassNotSupported: 0x0122,
  NoSuchActionType: 0x0123,
  NotAuthorized: 0x0124,
  DuplicateInvocation: 0x0210,
  UnrecognizedOperation: 0x0211,
  MistypedArgument: 0x0212,
  ResourceLimitation: 0x0213,
  // PS3.4 B.2.3 (C-STORE), C.4.1.1.4 (C-FIND), C.4.2.1.5 (C-MOVE), C.4.3.1.4 (C-GET)
  OutOfResources: 0xa700,
  OutOfResourcesUnableToCalculateNumberOfMatches: 0xa701,
  OutOfResourcesUnableToPerformSubOperations: 0xa702,
  MoveDestinationUnknown: 0xa801,
  IdentifierDoesNotMatchSOPClass: 0xa900,
  DataSetDoesNotMatchSOPClass: 0xa900,
  UnableToProcess: 0xc000,
  CannotUnderstand: 0xc000,
  CoercionOfDataElements: 0xb000,
  SubOperationsCompleteWithFailures: 0xb000,
  ElementsDiscarded: 0xb006,
  DataSetDoesNotMatchSOPClassWarning: 0xb007,
} as const;

/**
 * PS3.7 Annex C status classes: "Success 0000; Warning 0001 or Bxxx or 0107 or 0116; Failure Axxx or Cxxx or
 * 01xx (except 0107 and 0116) or 02xx; Cancel FE00; Pending FF00 and FF01". First matching row wins.
 */
export const STATUS_CLASSES: readonly { from: number; to: number; category: StatusCategory }[] = [
  { from: 0x0000, to: 0x0000, category: 'success' },
  { from: 0x0001, to: 0x0001, category: 'warning' },
  { from: 0x0107, to: 0x0107, category: 'warning' },
  { from: 0x0116, to: 0x0116, category: 'warning' },
  { from: 0x0100, to: 0x02ff, category: 'failure' },
  { from: 0xa000, to: 0xafff, category: 'failure' },
  { from: 0xb000, to: 0xbfff, category: 'warning' },
  { from: 0xc000, to: 0xcfff, category: 'failure' },
  { from: 0xfe00, to: 0xfe00, category: 'cancel' },
  { from: 0xff00, to: 0xff01, category: 'pending' },
];

/** True when the code falls in one of the classes of PS3.7 Annex C ("implementations shall not use" others). */
export function isStandardStatusClass(code: number): boolean {
  return STATUS_CLASSES.some((row) => code >= row.from && code <= row.to);
}

/**
 * The category of a status code (PS3.7 Annex C). A code outside every class is treated as a failure: it is not
 * success, and the peer gave no sign the operation continues.
 */
export function statusCategory(code: number): StatusCategory {
  for (const row of STATUS_CLASSES) if (code >= row.from && code <= row.to) return row.category;
  return 'failure';
}

export type DimseService = 'C-STORE' | 'C-FIND' | 'C-GET' | 'C-MOVE' | 'C-ECHO' | 'general';

/** Status meanings from PS3.7 Annex C and PS3.4, for logs and the REST layer. Ranges cover Axxx-style codes. */
export const STATUS_MEANINGS: readonly { from: number; to: number; services: readonly DimseService[]; meaning: string }[] = [
  { from: 0x0000, to: 0x0000, services: ['general'], meaning: 'Success' },
  { from: 0x0001, to: 0x0001, services: ['general'], meaning: 'Warning' },
  { from: 0x0105, to: 0x0105, services: ['general'], meaning: 'No such attribute' },
  { from: 0x0106, to: 0x0106, services: ['general'], meaning: 'Invalid attribute value' },
  { from: 0x0107, to: 0x0107, services: ['general'], meaning: 'Attribute list error' },
  { from: 0x0110, to: 0x0110, services: ['general'], meaning: 'Processing failure' },
  { from: 0x0111, to: 0x0111, services: ['general'], meaning: 'Duplicate SOP Instance' },
  { from: 0x0112, to: 0x0112, services: ['general'], meaning: 'No such SOP Instance' },
  { from: 0x0113, to: 0x0113, services: ['general'], meaning: 'No such event type' },
  { from: 0x0114, to: 0x0114, services: ['general'], meaning: 'No such argument' },
  { from: 0x0115, to: 0x0115, services: ['general'], meaning: 'Invalid argument value' },
  { from: 0x0116, to: 0x0116, services: ['general'], meaning: 'Attribute value out of range' },
  { from: 0x0117, to: 0x0117, services: ['general'], meaning: 'Invalid object instance' },
  { from: 0x0118, to: 0x0118, services: ['general'], meaning: 'No such SOP Class' },
  { from: 0x0119, to: 0x0119, services: ['general'], meaning: 'Class-instance conflict' },
  { from: 0x0120, to: 0x0120, services: ['general'], meaning: 'Missing attribute' },
  { from: 0x0121, to: 0x0121, services: ['general'], meaning: 'Missing attribute value' },
  { from: 0x0122, to: 0x0122, services: ['general'], meaning: 'Refused: SOP Class not supported' },
  { from: 0x0123, to: 0x0123, services: ['general'], meaning: 'No such action type' },
  { from: 0x0124, to: 0x0124, services: ['general'], meaning: 'Refused: not authorized' },
  { from: 0x0210, to: 0x0210, services: ['general'], meaning: 'Duplicate invocation' },
  { from: 0x0211, to: 0x0211, services: ['general'], meaning: 'Unrecognized operation' },
  { from: 0x0212, to: 0x0212, services: ['general'], meaning: 'Mistyped argument' },
  { from: 0x0213, to: 0x0213, services: ['general'], meaning: 'Resource limitation' },
  { from: 0xa700, to: 0xa7ff, services: ['C-STORE'], meaning: 'Refused: out of resources' },
  { from: 0xa700, to: 0xa700, services: ['C-FIND'], meaning: 'Refused: out of resources' },
  { from: 0xa701, to: 0xa701, services: ['C-MOVE', 'C-GET'], meaning: 'Refused: out of resources, unable to calculate number of matches' },
  { from: 0xa702, to: 0xa702, services: ['C-MOVE', 'C-GET'], meaning: 'Refused: out of resources, unable to perform sub-operations' },
  { from: 0xa801, to: 0xa801, services: ['C-MOVE'], meaning: 'Refused: move destination unknown' },
  { from: 0xa900, to: 0xa9ff, services: ['C-STORE'], meaning: 'Error: data set does not match SOP Class' },
  { from: 0xa900, to: 0xa900, services: ['C-FIND', 'C-MOVE', 'C-GET'], meaning: 'Failed: identifier does not match SOP Class' },
  { from: 0xb000, to: 0xb000, services: ['C-STORE'], meaning: 'Coercion of data elements' },
  { from: 0xb000, to: 0xb000, services: ['C-MOVE', 'C-GET'], meaning: 'Sub-operations complete, one or more failures or warnings' },
  { from: 0xb006, to: 0xb006, services: ['C-STORE'], meaning: 'Elements discarded' },
  { from: 0xb007, to: 0xb007, services: ['C-STORE'], meaning: 'Data set does not match SOP Class' },
  { from: 0xc000, to: 0xcfff, services: ['C-STORE'], meaning: 'Error: cannot understand' },
  { from: 0xc000, to: 0xcfff, services: ['C-FIND', 'C-MOVE', 'C-GET'], meaning: 'Failed: unable to process' },
  { from: 0xfe00, to: 0xfe00, services: ['general'], meaning: 'Cancel' },
  { from: 0xff00, to: 0xff00, services: ['general'], meaning: 'Pending' },
  { from: 0xff01, to: 0xff01, services: ['C-FIND'], meaning: 'Pending: one or more optional keys not supported' },
];

/**
 * A readable meaning for a status, preferring the service's own; falls back to the category
 * (`0xC123` -> "failure"). For logs and REST answers, never for decisions: use `statusCategory` for those.
 */
export function describeStatus(code: number, service: DimseService = 'general'): string {
  const matches = STATUS_MEANINGS.filter((row) => code >= row.from && code <= row.to);
  const own = matches.find((row) => row.services.includes(service)) ?? matches.find((row) => row.services.includes('general'));
  return own?.meaning ?? (matches.length === 1 ? matches[0]!.meaning : statusCategory(code));
}

/** `0xA801` as DCMTK and Orthanc print it: `A801`. */
export function formatStatus(code: number): string {
  return (code & 0xffff).toString(16).toUpperCase().padStart(4, '0');
}
