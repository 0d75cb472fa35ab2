/**
 * The URIs the DICOMweb server writes into its answers (RetrieveURL, BulkDataURI) and reads back (bulk data tag
 * paths, UIDs in paths), shared by QIDO-RS, WADO-RS metadata and bulk data retrieval.
 *
 * The public base URL follows Orthanc's DICOMweb plugin (`GetBasePublicUrl`): the host is the `Host` option when
 * set, otherwise the `host=` of the first `Forwarded` element (RFC 7239), otherwise `X-Forwarded-Host`, otherwise
 * the request's `Host` header; the scheme is `proto=` of `Forwarded` (or `X-Forwarded-Proto`), otherwise `https`
 * when `Ssl` is true; the path is `PublicRoot` (default: `Root`). With `RelativeUris` (pacsnode option), URIs are
 * written without scheme and host (`/dicom-web/studies/...`), for proxies that rewrite neither header.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { PacsError } from '../core/errors.js';
import type { DicomWebOptions } from './options.js';

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s.trim() === '' ? undefined : s.trim();
}

/** `host` and `proto` of the first element of a `Forwarded` header (RFC 7239 §4), quotes removed. */
export function parseForwarded(value: string): { host?: string; proto?: string } {
  const first = value.split(',')[0] ?? '';
  const out: { host?: string; proto?: string } = {};
  for (const pair of first.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim().toLowerCase();
    let v = pair.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    if (v === '') continue;
    if (name === 'host') out.host = v;
    else if (name === 'proto') out.proto = v.toLowerCase();
  }
  return out;
}

/** A path with one leading and one trailing slash. */
function rootPath(path: string): string {
  let p = path.startsWith('/') ? path : `/${path}`;
  if (!p.endsWith('/')) p += '/';
  return p;
}

/**
 * The base of every URI in an answer, ending with '/': `http://host:port/dicom-web/` (or `/dicom-web/` with
 * `RelativeUris`). Only the headers are read, so any HTTP framework's request fits.
 */
export function publicBase(request: { headers: IncomingHttpHeaders }, options: DicomWebOptions): string {
  const root = rootPath(options.publicRoot ?? options.root);
  if (options.relativeUris) return root;
  const headers = request.headers;
  const forwarded = header(headers, 'forwarded');
  const fwd = forwarded ? parseForwarded(forwarded) : {};
  const xHost = header(headers, 'x-forwarded-host')?.split(',')[0]?.trim();
  const xProto = header(headers, 'x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  const host = (options.host && options.host !== '' ? options.host : undefined) ?? fwd.host ?? xHost ?? header(headers, 'host') ?? 'localhost';
  const proto = fwd.proto ?? xProto ?? (options.ssl ? 'https' : 'http');
  return `${proto === 'https' ? 'https' : 'http'}://${host}${root}`;
}

/** `GGGGEEEE` in lower case, as Orthanc writes tags in bulk data URIs. */
function hexTag(tag: number): string {
  return (tag >>> 0).toString(16).padStart(8, '0');
}

/**
 * The tag path of a bulk data URI: `tag` for a top-level element, `seq/item/tag` inside sequences. `path` is
 * `[tag, itemIndex, tag, ...]` with 0-based item indexes; the URI counts items from 1, as Orthanc does
 * (`.../bulk/00540016/1/00181072`).
 */
export function formatBulkTagPath(path: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < path.length; i++) parts.push(i % 2 === 0 ? hexTag(path[i]!) : String(path[i]! + 1));
  return parts.join('/');
}

/**
 * The inverse of `formatBulkTagPath`: `[tag, itemIndex (0-based), tag, ...]`, or undefined when the text is not a
 * tag path (tags as 8 hex digits, items as integers from 1, an odd number of segments).
 */
export function parseBulkTagPath(text: string): number[] | undefined {
  const parts = text.split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.length % 2 === 0) return undefined;
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (i % 2 === 0) {
      if (!/^[0-9a-fA-F]{8}$/.test(p)) return undefined;
      out.push(parseInt(p, 16) >>> 0);
    } else {
      if (!/^[1-9][0-9]{0,8}$/.test(p)) return undefined;
      out.push(Number(p) - 1);
    }
  }
  return out;
}

/** `{base}studies/{st}/series/{se}/instances/{sop}/bulk/{tag path}`. */
export function bulkDataUri(base: string, study: string, series: string, instance: string, tagPath: readonly number[]): string {
  return `${instanceUrl(base, study, series, instance)}/bulk/${formatBulkTagPath(tagPath)}`;
}

/** `{base}studies/{st}/series/{se}/instances/{sop}` (the prefix of an instance's bulk data URIs). */
export function instanceUrl(base: string, study: string, series: string, instance: string): string {
  return `${base}studies/${study}/series/${series}/instances/${instance}`;
}

/** The Retrieve URL (0008,1190) of a study, a series or an instance. */
export function retrieveUrl(base: string, study: string, series?: string, instance?: string): string {
  let url = `${base}studies/${study}`;
  if (series !== undefined) url += `/series/${series}`;
  if (series !== undefined && instance !== undefined) url += `/instances/${instance}`;
  return url;
}

const UID_RE = /^[0-9]+(\.[0-9]+)*$/;

/**
 * A UID as PS3.5 §9.1 writes it: digits and dots, components not empty, at most 64 characters (leading zeros,
 * which legacy data has, are accepted).
 */
export function isValidUid(text: string): boolean {
  return text.length > 0 && text.length <= 64 && UID_RE.test(text);
}

/** A UID from a request path or parameter; 400 (PS3.18: the request is malformed) when it is not one. */
export function checkUid(text: string, what: string): string {
  if (!isValidUid(text)) {
    throw new PacsError('BadRequest', `invalid ${what}: ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text)}`);
  }
  return text;
}
