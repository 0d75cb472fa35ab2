/**
 * One error base class with stable codes (STYLE.md habit 8). The codes are Orthanc's public error codes
 * (OrthancFramework ErrorCodes), so the REST layer can answer with Orthanc's error JSON
 * (`OrthancError`, `OrthancStatus`, `HttpStatus`) without a second table.
 */

export interface ErrorCodeInfo {
  /** Orthanc's numeric code (`OrthancStatus`). */
  status: number;
  /** Orthanc's description (`OrthancError`). */
  description: string;
  /** HTTP status for the REST API; 500 when Orthanc does not name one. */
  http: number;
}

export const ERROR_CODES = {
  InternalError: { status: -1, description: 'Internal error', http: 500 },
  NotImplemented: { status: 2, description: 'Not implemented yet', http: 500 },
  ParameterOutOfRange: { status: 3, description: 'Parameter out of range', http: 400 },
  BadParameterType: { status: 5, description: 'Bad type for a parameter', http: 400 },
  BadSequenceOfCalls: { status: 6, description: 'Bad sequence of calls', http: 500 },
  InexistentItem: { status: 7, description: 'Accessing an inexistent item', http: 404 },
  BadRequest: { status: 8, description: 'Bad request', http: 400 },
  NetworkProtocol: { status: 9, description: 'Error in the network protocol', http: 500 },
  Database: { status: 11, description: 'Error with the database engine', http: 500 },
  UriSyntax: { status: 12, description: 'Badly formatted URI', http: 400 },
  InexistentFile: { status: 13, description: 'Inexistent file', http: 404 },
  CannotWriteFile: { status: 14, description: 'Cannot write to file', http: 500 },
  BadFileFormat: { status: 15, description: 'Bad file format', http: 400 },
  Timeout: { status: 16, description: 'Timeout', http: 500 },
  UnknownResource: { status: 17, description: 'Unknown resource', http: 404 },
  IncompatibleDatabaseVersion: { status: 18, description: 'Incompatible version of the database', http: 500 },
  FullStorage: { status: 19, description: 'The file storage is full', http: 500 },
  CorruptedFile: { status: 20, description: 'Corrupted file (e.g. inconsistent MD5 hash)', http: 500 },
  InexistentTag: { status: 21, description: 'Inexistent tag', http: 404 },
  ReadOnly: { status: 22, description: 'Cannot modify a read-only data structure', http: 500 },
  UnknownDicomTag: { status: 27, description: 'Unknown DICOM tag', http: 500 },
  BadJson: { status: 28, description: 'Cannot parse a JSON document', http: 400 },
  Unauthorized: { status: 29, description: 'Bad credentials were provided to an HTTP request', http: 401 },
  EmptyRequest: { status: 33, description: 'The request is empty', http: 500 },
  NotAcceptable: {
    status: 34,
    description: 'Cannot send a response which is acceptable according to the Accept HTTP header',
    http: 406,
  },
  CanceledJob: { status: 37, description: 'This job was canceled', http: 500 },
  BadRange: { status: 41, description: 'Incorrect range request', http: 416 },
  Revision: {
    status: 43,
    description: 'A bad revision number was provided, which might indicate conflict between multiple writers',
    http: 409,
  },
  ForbiddenAccess: { status: 45, description: 'Access to a resource is forbidden', http: 403 },
  DirectoryOverFile: {
    status: 2000,
    description: 'The directory to be created is already occupied by a regular file',
    http: 500,
  },
  FileStorageCannotWrite: {
    status: 2001,
    description: 'Unable to create a subdirectory or a file in the file storage',
    http: 500,
  },
  HttpPortInUse: { status: 2003, description: 'The TCP port of the HTTP server is privileged or already in use', http: 500 },
  DicomPortInUse: { status: 2004, description: 'The TCP port of the DICOM server is privileged or already in use', http: 500 },
  MakeDirectory: { status: 2008, description: 'Cannot create a directory', http: 500 },
  CannotStoreInstance: { status: 2018, description: 'Cannot store an instance', http: 500 },
  UnknownModality: { status: 2027, description: 'Unknown modality', http: 500 },
  UnsupportedMediaType: { status: 3000, description: 'Unsupported media type', http: 415 },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The base of every error pacsnode raises on purpose. `code` is stable: branch on it, never on the message. */
export class PacsError extends Error {
  readonly code: ErrorCode;
  /** Optional detail for the caller (Orthanc's `Details`). */
  readonly details?: string;
  /** Overrides the code's HTTP status where Orthanc answers differently for this case. */
  readonly httpStatus?: number;

  constructor(code: ErrorCode, details?: string, options?: { cause?: unknown; httpStatus?: number }) {
    super(details ? `${ERROR_CODES[code].description}: ${details}` : ERROR_CODES[code].description, {
      cause: options?.cause,
    });
    this.name = 'PacsError';
    this.code = code;
    this.details = details;
    this.httpStatus = options?.httpStatus;
  }

  get info(): ErrorCodeInfo {
    return ERROR_CODES[this.code];
  }
}

export function isPacsError(e: unknown): e is PacsError {
  return e instanceof PacsError;
}

/** A DICOM file that cannot be parsed or lacks what the store needs (HTTP 400 at the REST door). */
export class DicomFormatError extends PacsError {
  constructor(details: string, options?: { cause?: unknown }) {
    super('BadFileFormat', details, options);
    this.name = 'DicomFormatError';
  }
}

/** A configuration file that cannot be used; `where` names the file and position. */
export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
