/**
 * MIME for DICOMweb: media types and Accept headers (RFC 9110 §8.3, §12.5.1), and `multipart/related` bodies
 * (RFC 2046 §5.1, RFC 2387) read as a stream and written part by part.
 *
 * The reader never holds more than one chunk of the source plus a delimiter's length: a part's body is handed on
 * chunk by chunk as it arrives (views into the source's chunks, no copy), so memory stays flat whatever the body
 * size. A part's body must be read (or is skipped) before the next part is produced.
 */
import { randomBytes } from 'node:crypto';

// ---------------------------------------------------------------------------------------------- media types

export interface MediaType {
  /** `type/subtype`, lower case. */
  type: string;
  /** Parameters by lower-case name; values unquoted (case kept). */
  params: Map<string, string>;
}

export interface AcceptedType extends MediaType {
  /** The `q` weight (1 when absent). */
  q: number;
}

/**
 * Splits `text` on `separator` outside quoted strings (RFC 9110 §5.6.4: `"..."` with `\` escapes).
 */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      current += c;
      if (c === '\\' && i + 1 < text.length) current += text[++i]!;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      current += c;
    } else if (c === separator) {
      out.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  out.push(current);
  return out;
}

function unquote(value: string): string {
  const v = value.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) return v.slice(1, -1).replace(/\\(.)/g, '$1');
  return v;
}

/** `type/subtype; name=value; name="quoted value"`, parameters in any order, names case-insensitive. */
export function parseMediaType(text: string): MediaType {
  const [head = '', ...rest] = splitOutsideQuotes(text, ';');
  const params = new Map<string, string>();
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const name = p.slice(0, eq).trim().toLowerCase();
    if (name) params.set(name, unquote(p.slice(eq + 1)));
  }
  return { type: head.trim().toLowerCase(), params };
}

/**
 * The media ranges of an Accept header, best first (by `q`, then in the order given); ranges with `q=0` are
 * dropped. An absent or empty header is `*\/*`.
 */
export function parseAccept(header: string | string[] | undefined): AcceptedType[] {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  const out: AcceptedType[] = [];
  for (const item of splitOutsideQuotes(text, ',')) {
    if (item.trim() === '') continue;
    const mt = parseMediaType(item);
    if (!mt.type) continue;
    const qText = mt.params.get('q');
    mt.params.delete('q');
    const q = qText === undefined ? 1 : Number(qText);
    if (!Number.isFinite(q) || q <= 0) continue;
    out.push({ ...mt, q });
  }
  if (out.length === 0) return [{ type: '*/*', params: new Map(), q: 1 }];
  return out
    .map((t, i) => ({ t, i }))
    .sort((a, b) => b.t.q - a.t.q || a.i - b.i)
    .map((x) => x.t);
}

/** True when a media range (`*\/*`, `image/*`, `image/jpeg`) covers `type`. */
export function rangeCovers(range: string, type: string): boolean {
  if (range === '*/*' || range === '*') return true;
  if (range.endsWith('/*')) return type.startsWith(range.slice(0, -1));
  return range === type;
}

// ---------------------------------------------------------------------------------------------- reading

export type MultipartErrorKind = 'no-boundary' | 'truncated' | 'bad-header' | 'too-large';

/** A body that is not a well-formed multipart message (HTTP 400 at the door). */
export class MultipartError extends Error {
  readonly code = 'ERR_MULTIPART';
  constructor(
    readonly kind: MultipartErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'MultipartError';
  }
}

export interface MultipartPart {
  /** 0-based position in the message. */
  index: number;
  /** Header fields by lower-case name. */
  headers: Map<string, string>;
  /** Its Content-Type, when it has one. */
  contentType?: MediaType;
  /**
   * The part's bytes, chunk by chunk; iterate it once. It throws a `MultipartError` ('truncated') when the message
   * ends before the part's closing delimiter.
   */
  body: AsyncIterable<Buffer>;
}

export interface MultipartReadOptions {
  /** The largest header block accepted for one part (default 64 KB). */
  maxHeaderBytes?: number;
}

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Length of the longest suffix of `buf` that is a proper prefix of `delim` (a delimiter cut by the chunking). */
function partialSuffix(buf: Buffer, delim: Buffer): number {
  const from = Math.max(0, buf.length - delim.length + 1);
  let at = buf.indexOf(delim[0]!, from);
  while (at >= 0) {
    const n = buf.length - at;
    if (buf.compare(delim, 0, n, at, buf.length) === 0) return n;
    at = buf.indexOf(delim[0]!, at + 1);
  }
  return 0;
}

/**
 * RFC 2046 boundary characters, no trailing space. RFC 2046 allows 70 of them; up to 200 are accepted because
 * Orthanc's DICOMweb client (plugin 1.7) sends 73 (two UUIDs joined by a dash).
 */
export function isValidBoundary(boundary: string): boolean {
  return /^[0-9A-Za-z'()+_,\-./:=? ]{0,199}[0-9A-Za-z'()+_,\-./:=?]$/.test(boundary);
}

/**
 * Reads a multipart body as it arrives. Parts are produced in order; each part's `body` streams its bytes, and
 * asking for the next part first skips whatever the previous body left unread. The preamble and epilogue are
 * ignored. Throws `MultipartError` when the boundary never appears ('no-boundary'), when the message ends before
 * its close delimiter ('truncated', raised by the unfinished part's body or here between parts), or for a header
 * block that is too long or has no end ('bad-header').
 */
export async function* readMultipart(
  source: AsyncIterable<Buffer>,
  boundary: string,
  options: MultipartReadOptions = {},
): AsyncGenerator<MultipartPart, void, undefined> {
  const maxHeaderBytes = options.maxHeaderBytes ?? 64 * 1024;
  const delim = Buffer.from(`\r\n--${boundary}`, 'latin1');
  const iterator = source[Symbol.asyncIterator]();
  // A CR LF before the message makes a delimiter at its very start look like any other.
  let buf: Buffer = CRLF;
  let eof = false;

  const fill = async (): Promise<boolean> => {
    if (eof) return false;
    const { value, done } = await iterator.next();
    if (done) {
      eof = true;
      return false;
    }
    const chunk = typeof value === 'string' ? Buffer.from(value, 'latin1') : (value as Buffer);
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    return true;
  };

  /**
   * Scans for the next delimiter, handing on the bytes before it (`emit`), and consumes the delimiter and its line.
   * Returns 'next' (a part follows), 'close' (close delimiter) or 'eof' (the message ended first).
   */
  const scan = async function* (): AsyncGenerator<Buffer, 'next' | 'close' | 'eof', undefined> {
    let from = 0;
    while (true) {
      const at = buf.indexOf(delim, from);
      if (at < 0) {
        const keep = partialSuffix(buf, delim);
        if (buf.length - keep > 0) {
          const out = buf.subarray(0, buf.length - keep);
          buf = buf.subarray(buf.length - keep);
          yield out;
        }
        from = 0;
        if (!(await fill())) return 'eof';
        continue;
      }
      // What follows the boundary tells a delimiter ("--", or optional white space then CR LF) from content.
      let end = at + delim.length;
      while (buf.length < end + 2 && (await fill()));
      if (buf.length >= end + 2 && buf[end] === DASH && buf[end + 1] === DASH) {
        if (at > 0) yield buf.subarray(0, at);
        buf = buf.subarray(end + 2);
        return 'close';
      }
      if (buf.length === end) {
        // The message ends right after a boundary without "--": taken as the close delimiter.
        if (at > 0) yield buf.subarray(0, at);
        buf = buf.subarray(end);
        return 'close';
      }
      // Transport padding (RFC 2046: linear white space) before the line's CR LF.
      while (true) {
        while (end < buf.length && (buf[end] === 0x20 || buf[end] === 0x09)) end++;
        if (end + 2 <= buf.length || !(await fill())) break;
      }
      if (end + 2 <= buf.length && buf[end] === CR && buf[end + 1] === LF) {
        if (at > 0) yield buf.subarray(0, at);
        buf = buf.subarray(end + 2);
        return 'next';
      }
      if (end >= buf.length && eof) {
        if (at > 0) yield buf.subarray(0, at);
        buf = buf.subarray(buf.length);
        return 'eof';
      }
      // Not a delimiter: the boundary text is part of a longer line.
      from = at + 1;
    }
  };

  const readHeaders = async (): Promise<Map<string, string>> => {
    let end: number;
    while (true) {
      if (buf.length >= 2 && buf[0] === CR && buf[1] === LF) {
        buf = buf.subarray(2);
        return new Map();
      }
      end = buf.indexOf(CRLFCRLF);
      if (end >= 0) break;
      if (buf.length > maxHeaderBytes) throw new MultipartError('bad-header', `a part's header block is longer than ${maxHeaderBytes} bytes`);
      if (!(await fill())) throw new MultipartError('truncated', "the message ends inside a part's header block");
    }
    if (end > maxHeaderBytes) throw new MultipartError('bad-header', `a part's header block is longer than ${maxHeaderBytes} bytes`);
    const text = buf.subarray(0, end).toString('latin1');
    buf = buf.subarray(end + 4);
    const headers = new Map<string, string>();
    let last: string | undefined;
    for (const line of text.split('\r\n')) {
      if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
        headers.set(last, `${headers.get(last)!} ${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) throw new MultipartError('bad-header', `not a header field: "${line.slice(0, 80)}"`);
      last = line.slice(0, colon).trim().toLowerCase();
      headers.set(last, line.slice(colon + 1).trim());
    }
    return headers;
  };

  /** Reads the epilogue (so the request completes) without keeping it. */
  const drain = async (): Promise<void> => {
    buf = Buffer.alloc(0);
    while (!eof) {
      const { done } = await iterator.next();
      if (done) eof = true;
    }
  };

  // The preamble: everything before the first delimiter.
  {
    const preamble = scan();
    let r = await preamble.next();
    while (!r.done) r = await preamble.next();
    if (r.value === 'eof') {
      throw new MultipartError('no-boundary', `the body does not contain the boundary "${boundary}"`);
    }
    if (r.value === 'close') {
      await drain();
      return;
    }
  }

  for (let index = 0; ; index++) {
    const headers = await readHeaders();
    const ct = headers.get('content-type');
    let outcome: 'next' | 'close' | 'eof' | undefined;
    /** What stopped the body's scan (the source failed: a client gone); the scan cannot be resumed after it. */
    let failure: unknown;
    let started = false;
    const bodyScan = scan();
    const body: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]() {
        if (started) throw new Error('a part body can be read once');
        started = true;
        return {
          async next(): Promise<IteratorResult<Buffer>> {
            if (failure !== undefined) throw failure;
            if (outcome !== undefined) return { done: true, value: undefined };
            let r: IteratorResult<Buffer, 'next' | 'close' | 'eof'>;
            try {
              r = await bodyScan.next();
            } catch (e) {
              failure = e;
              throw e;
            }
            if (!r.done) return { done: false, value: r.value };
            outcome = r.value;
            if (outcome === 'eof') throw new MultipartError('truncated', `the message ends inside part ${index + 1}`);
            return { done: true, value: undefined };
          },
          async return(): Promise<IteratorResult<Buffer>> {
            return { done: true, value: undefined };
          },
        };
      },
    };
    yield { index, headers, contentType: ct === undefined ? undefined : parseMediaType(ct), body };
    // Skip what the consumer left unread. A scan that failed under the consumer (its generator is then finished:
    // `next()` answers done with no value) ends the message with that failure, never a loop.
    if (failure !== undefined) throw failure;
    while (outcome === undefined) {
      const r = await bodyScan.next();
      if (r.done) {
        if (r.value === undefined) throw new MultipartError('truncated', `the message ends inside part ${index + 1}`);
        outcome = r.value;
      }
    }
    if (outcome === 'eof') throw new MultipartError('truncated', `the message ends inside part ${index + 1}`);
    if (outcome === 'close') {
      await drain();
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------- writing

/** A fresh boundary: random, and long enough never to occur in the parts. */
export function newBoundary(): string {
  return `pacsnode-${randomBytes(16).toString('hex')}`;
}

/** The delimiter line and header block that open a part (the first part has no leading CR LF). */
export function partHead(boundary: string, headers: Readonly<Record<string, string | number>>, first: boolean): Buffer {
  let text = `${first ? '' : '\r\n'}--${boundary}\r\n`;
  for (const [name, value] of Object.entries(headers)) text += `${name}: ${value}\r\n`;
  return Buffer.from(`${text}\r\n`, 'latin1');
}

/** The close delimiter (after at least one part). */
export function closeDelimiter(boundary: string): Buffer {
  return Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
}

/** The Content-Type of a multipart/related answer whose parts are `partType`. */
export function multipartContentType(partType: string, boundary: string): string {
  return `multipart/related; type="${partType}"; boundary=${boundary}`;
}
