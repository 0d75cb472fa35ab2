/** Reading request arguments and bodies the way Orthanc does. */
import type { FastifyRequest } from 'fastify';
import { PacsError } from '../core/errors.js';

type Query = Record<string, string | string[] | undefined>;

function arg(request: FastifyRequest, name: string): string | undefined {
  const q = request.query as Query;
  const v = q[name];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

export function hasArg(request: FastifyRequest, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(request.query as Query, name);
}

/** Orthanc's boolean arguments: present without a value means true; `false`/`0` mean false. */
export function boolArg(request: FastifyRequest, name: string, defaultValue = false): boolean {
  if (!hasArg(request, name)) return defaultValue;
  const v = (arg(request, name) ?? '').toLowerCase();
  if (v === '' || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new PacsError('ParameterOutOfRange', `argument "${name}" must be a Boolean, found "${v}"`, { httpStatus: 400 });
}

export function intArg(request: FastifyRequest, name: string, defaultValue: number): number {
  const v = arg(request, name);
  if (v === undefined || v === '') return defaultValue;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new PacsError('ParameterOutOfRange', `argument "${name}" must be a non-negative integer, found "${v}"`, {
      httpStatus: 400,
    });
  }
  return Number(v);
}

export function stringArg(request: FastifyRequest, name: string): string | undefined {
  return arg(request, name);
}

/** Reads the whole body (for small JSON bodies only), refusing more than `limit` bytes. */
export async function readBody(request: FastifyRequest, limit = 16 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request.raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new PacsError('BadRequest', `request body larger than ${limit} bytes`, { httpStatus: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A JSON object body; Orthanc answers 400 "The body must contain a JSON object" otherwise. */
export async function readJsonObject(request: FastifyRequest): Promise<Record<string, unknown>> {
  const text = (await readBody(request)).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PacsError('BadRequest', 'The body must contain a JSON object');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new PacsError('BadRequest', 'The body must contain a JSON object');
  }
  return value as Record<string, unknown>;
}

/** Pretty JSON as Orthanc sends it. */
export function json(value: unknown): string {
  return JSON.stringify(value, null, 3);
}
