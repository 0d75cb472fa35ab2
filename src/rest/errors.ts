/**
 * Orthanc's error JSON (`HttpError`, `HttpStatus`, `Message`, `Method`, `OrthancError`, `OrthancStatus`, `Uri`,
 * `Details`) from any thrown error. `PacsError.code` decides the status through `core/errors.ts`'s table.
 */
import { STATUS_CODES } from 'node:http';
import { ERROR_CODES, isPacsError, type ErrorCode } from '../core/errors.js';

export interface OrthancErrorBody {
  Details?: string;
  HttpError: string;
  HttpStatus: number;
  Message: string;
  Method: string;
  OrthancError: string;
  OrthancStatus: number;
  Uri: string;
}

export function errorBody(error: unknown, method: string, uri: string): OrthancErrorBody {
  let code: ErrorCode = 'InternalError';
  let details: string | undefined;
  let status: number | undefined;
  if (isPacsError(error)) {
    code = error.code;
    details = error.details;
    status = error.httpStatus;
  } else if (error instanceof Error) {
    details = error.message;
  }
  const info = ERROR_CODES[code];
  const httpStatus = status ?? info.http;
  const body: OrthancErrorBody = {
    HttpError: STATUS_CODES[httpStatus] ?? 'Error',
    HttpStatus: httpStatus,
    Message: info.description,
    Method: method,
    OrthancError: info.description,
    OrthancStatus: info.status,
    Uri: uri,
  };
  if (details !== undefined) return { Details: details, ...body };
  return body;
}
