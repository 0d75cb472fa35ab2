/**
 * Reads Orthanc-format configuration: one JSON file (comments allowed) or a directory whose `*.json` files
 * are merged, `${VAR}` / `${VAR:-default}` environment substitution, validation of every supported key
 * against `Config`, and a deeply frozen result. The only place that reads `process.env` for configuration.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, isPacsError } from '../core/errors.js';
import { checkModalityName, parseModality } from '../modalities/registry.js';
import { checkPeerName, parsePeer } from '../peers/registry.js';
import { logger } from '../core/log.js';
import { DEFAULT_CONFIG, OPTIONAL_KEYS, SUPPORTED_KEYS, type Config, type ExtraMainDicomTags } from './schema.js';

const log = logger('config');

export interface LoadResult {
  config: Readonly<Config>;
  warnings: string[];
  /** Absolute paths of the files read, in reading order (empty for embedded defaults). */
  files: string[];
}

/**
 * Top-level keys of Orthanc's own configuration (Configuration.json) and of its usual plugin sections that
 * pacsnode does not implement. Finding one is a warning that names it as an Orthanc option; any other key not
 * in `SUPPORTED_KEYS` is reported as unknown.
 */
export const ORTHANC_UNSUPPORTED_KEYS: ReadonlySet<string> = new Set([
  // Core options
  'TemporaryDirectory', 'LuaScripts', 'LuaHeartBeatPeriod', 'Plugins',
  'JobsEngineThreadsCount', 'HttpServerEnabled', 'OrthancExplorerEnabled',
  'WebDavEnabled', 'WebDavDeleteAllowed', 'WebDavUploadAllowed',
  'AcceptedSopClasses',
  'RejectedSopClasses', 'DicomTlsCiphersAccepted',
  'DicomAlwaysAllowFindWorklist',
  'DicomScuPreferredTransferSyntax', 'DicomThreadsCount',
  'HttpVerbose',
  'HttpThreadsCount', 'StoreMD5ForAttachments', 'StoreDicom', 'CaseSensitivePN', 'LoadPrivateDictionary',
  'Dictionary', 'MetricsEnabled',
  'ExecuteLuaEnabled', 'RestApiWriteToFileSystemEnabled', 'DefaultPrivateCreator',
  'StorageCommitmentReportsSize', 'TranscodeDicomProtocol', 'BuiltinDecoderTranscoderOrder', 'IngestTranscoding',
  'IngestTranscodingOfUncompressed', 'IngestTranscodingOfCompressed', 'DicomLossyTranscodingQuality',
  'MallocArenaMax', 'DeidentifyLogs', 'DeidentifyLogsDicomVersion', 'SynchronousZipStream', 'ZipLoaderThreads',
  'LoaderThreads', 'Warnings', 'ReadOnly', 'DatabaseServerIdentifier', 'Locale', 'UserAuthorizationFailure',
  'OverwriteInstancesOnlyIfDifferent', 'StorageCompressionLevel',
  // Plugin sections
  'PostgreSQL', 'MySQL', 'Odbc', 'Gdcm', 'Worklists', 'Transfers', 'WebViewer', 'StoneWebViewer',
  'OrthancExplorer2', 'Authorization', 'PythonScript', 'PythonVerbose', 'Python', 'Housekeeper',
  'DelayedDeletion', 'ServeFolders', 'AwsS3Storage', 'AzureBlobStorage', 'GoogleCloudStorage', 'Ohif', 'VolView',
  'MultitenantDicom', 'Indexer', 'AdvancedStorage', 'Wsi', 'Tcia', 'ConnectivityChecks', 'Neuro', 'Education',
]);

// ---------------------------------------------------------------------------------------------------------
// JSON with comments
// ---------------------------------------------------------------------------------------------------------

export interface ParseOptions {
  /**
   * Environment for Orthanc's `${VAR}` / `${VAR:-default}` substitution. When given, it is applied to every
   * string (member names included) and a bare `${...}` in place of a value is replaced by its text and read as a
   * JSON value (so `"HttpPort": ${PORT:-8042}` works, as with Orthanc's textual substitution). When absent,
   * strings are left as they are and a bare `$` is a syntax error.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Receives non-fatal findings: a member defined twice in one object, an unset variable. */
  warnings?: string[];
}

const VARIABLE = /\$\{([^}]*)\}/g;

class JsonParser {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly fileName: string,
    private readonly options: ParseOptions,
  ) {}

  document(): unknown {
    if (this.text.charCodeAt(0) === 0xfeff) this.pos = 1; // UTF-8 byte order mark
    this.skip();
    if (this.pos >= this.text.length) this.fail(this.pos, 'expected a JSON value but found end of file');
    const value = this.value();
    this.skip();
    if (this.pos < this.text.length) {
      this.fail(this.pos, `expected end of file after the JSON value but found ${this.describe(this.pos)}`);
    }
    return value;
  }

  /** "line:column" (both 1-based) of an offset; `\r\n`, `\n` and a lone `\r` each end a line. */
  where(offset: number): string {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset && i < this.text.length; i++) {
      const c = this.text.charCodeAt(i);
      if (c === 10 || (c === 13 && this.text.charCodeAt(i + 1) !== 10)) {
        line++;
        lineStart = i + 1;
      }
    }
    return `${line}:${offset - lineStart + 1}`;
  }

  private fail(offset: number, message: string): never {
    throw new ConfigError(`${this.fileName}:${this.where(offset)}: ${message}`);
  }

  private describe(offset: number): string {
    if (offset >= this.text.length) return 'end of file';
    const word = /[A-Za-z_][A-Za-z0-9_]*/y;
    word.lastIndex = offset;
    const m = word.exec(this.text);
    if (m) return `'${m[0].length > 20 ? `${m[0].slice(0, 20)}...` : m[0]}'`;
    const c = this.text.charCodeAt(offset);
    if (c === 10 || c === 13) return 'a line break';
    if (c < 0x20) return `control character U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
    return `'${this.text[offset]}'`;
  }

  /** Whitespace and both kinds of comments. */
  private skip(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t[this.pos];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
        this.pos++;
      } else if (c === '/' && t[this.pos + 1] === '/') {
        while (this.pos < t.length && t[this.pos] !== '\n' && t[this.pos] !== '\r') this.pos++;
      } else if (c === '/' && t[this.pos + 1] === '*') {
        const end = t.indexOf('*/', this.pos + 2);
        if (end < 0) this.fail(this.pos, "unterminated block comment: expected '*/' before end of file");
        this.pos = end + 2;
      } else if (c === '/') {
        this.fail(this.pos, `expected '//' or '/*' to start a comment but found ${this.describe(this.pos + 1)} after '/'`);
      } else {
        return;
      }
    }
  }

  private value(): unknown {
    const c = this.text[this.pos];
    switch (c) {
      case '{':
        return this.object();
      case '[':
        return this.array();
      case '"':
        return this.substitute(this.string());
      case '$':
        if (this.options.env && this.text[this.pos + 1] === '{') return this.bareVariable();
        break;
      case "'":
        this.fail(this.pos, "expected a JSON value but found ''' (JSON strings use double quotes)");
        break;
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        if (c !== undefined && /[A-Za-z_]/.test(c)) return this.literal();
    }
    return this.fail(this.pos, `expected a JSON value but found ${this.describe(this.pos)}`);
  }

  private object(): Record<string, unknown> {
    const open = this.pos++;
    const result: Record<string, unknown> = {};
    this.skip();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return result;
    }
    for (;;) {
      this.skip();
      if (this.text[this.pos] !== '"') {
        this.fail(this.pos, `expected a member name (a string in double quotes) but found ${this.describe(this.pos)}`);
      }
      const keyAt = this.pos;
      const key = this.substitute(this.string());
      this.skip();
      if (this.text[this.pos] !== ':') {
        this.fail(this.pos, `expected ':' after the member name "${key}" but found ${this.describe(this.pos)}`);
      }
      this.pos++;
      this.skip();
      if (this.pos >= this.text.length) this.fail(this.pos, `expected a value for "${key}" but found end of file`);
      const value = this.value();
      if (Object.prototype.hasOwnProperty.call(result, key)) {
        this.options.warnings?.push(
          `${this.fileName}:${this.where(keyAt)}: "${key}" is defined twice in the same object; the last value is used`,
        );
      }
      // defineProperty: a member named "__proto__" stays an ordinary property.
      Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
      this.skip();
      const next = this.text[this.pos];
      if (next === ',') {
        const comma = this.pos++;
        this.skip();
        if (this.text[this.pos] === '}') {
          this.fail(comma, "trailing comma: expected another member after ',' but found '}' (remove the ',')");
        }
        continue;
      }
      if (next === '}') {
        this.pos++;
        return result;
      }
      this.fail(
        this.pos,
        `expected ',' or '}' after the value of "${key}" but found ${this.describe(this.pos)}` +
          (this.pos >= this.text.length ? ` (the object opened at ${this.where(open)} is not closed)` : ''),
      );
    }
  }

  private array(): unknown[] {
    const open = this.pos++;
    const result: unknown[] = [];
    this.skip();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return result;
    }
    for (;;) {
      this.skip();
      if (this.pos >= this.text.length) {
        this.fail(this.pos, `expected a value but found end of file (the array opened at ${this.where(open)} is not closed)`);
      }
      result.push(this.value());
      this.skip();
      const next = this.text[this.pos];
      if (next === ',') {
        const comma = this.pos++;
        this.skip();
        if (this.text[this.pos] === ']') {
          this.fail(comma, "trailing comma: expected another value after ',' but found ']' (remove the ',')");
        }
        continue;
      }
      if (next === ']') {
        this.pos++;
        return result;
      }
      this.fail(
        this.pos,
        `expected ',' or ']' in the array but found ${this.describe(this.pos)}` +
          (this.pos >= this.text.length ? ` (the array opened at ${this.where(open)} is not closed)` : ''),
      );
    }
  }

  private string(): string {
    const t = this.text;
    const open = this.pos++;
    let out = '';
    let runStart = this.pos;
    for (;;) {
      if (this.pos >= t.length) this.fail(open, "unterminated string: expected a closing '\"' before end of file");
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(runStart, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) {
        this.fail(
          this.pos,
          `expected '"' to close the string opened at ${this.where(open)} but found ${this.describe(this.pos)} ` +
            '(control characters must be escaped inside strings)',
        );
      }
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += t.slice(runStart, this.pos);
      const e = t[this.pos + 1];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && e in simple) {
        out += simple[e];
        this.pos += 2;
      } else if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(t.slice(this.pos + 2, this.pos + 6))) {
        out += String.fromCharCode(parseInt(t.slice(this.pos + 2, this.pos + 6), 16));
        this.pos += 6;
      } else {
        this.fail(
          this.pos,
          `invalid escape sequence '\\${e ?? ''}': expected one of \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX ` +
            '(write a Windows path with "/" or "\\\\")',
        );
      }
      runStart = this.pos;
    }
  }

  private number(): number {
    const re = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    const after = m ? this.pos + m[0].length : this.pos;
    if (!m || /[0-9A-Za-z_.+-]/.test(this.text[after] ?? '')) {
      const bad = /[-+0-9A-Za-z_.]*/y;
      bad.lastIndex = this.pos;
      this.fail(this.pos, `expected a number but found '${bad.exec(this.text)?.[0] ?? ''}'`);
    }
    this.pos = after;
    return Number(m[0]);
  }

  private literal(): boolean | null {
    const re = /[A-Za-z_][A-Za-z0-9_]*/y;
    re.lastIndex = this.pos;
    const word = re.exec(this.text)?.[0] ?? '';
    const values: Record<string, boolean | null> = { true: true, false: false, null: null };
    if (!(word in values)) {
      this.fail(this.pos, `expected a JSON value (true, false, null, a number, a string, an object or an array) but found '${word}'`);
    }
    this.pos += word.length;
    return values[word] as boolean | null;
  }

  /** A `${...}` in place of a value: its replacement text is read as a JSON value. */
  private bareVariable(): unknown {
    const at = this.pos;
    const end = this.text.indexOf('}', at);
    if (end < 0) this.fail(at, "unterminated '${': expected '}'");
    const expression = this.text.slice(at, end + 1);
    const replacement = this.substitute(expression);
    this.pos = end + 1;
    try {
      return new JsonParser(replacement, '(substituted)', {}).document();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return this.fail(at, `${expression} was replaced by ${JSON.stringify(replacement)}, which is not a JSON value`);
    }
  }

  private substitute(s: string): string {
    const env = this.options.env;
    if (!env || !s.includes('${')) return s;
    return s.replace(VARIABLE, (_whole, inner: string) => {
      const sep = inner.indexOf(':-');
      const name = sep < 0 ? inner : inner.slice(0, sep);
      const fallback = sep < 0 ? undefined : inner.slice(sep + 2);
      const value = env[name];
      if (value !== undefined && (value !== '' || fallback === undefined)) return value;
      if (fallback !== undefined) return fallback;
      this.options.warnings?.push(
        `${this.fileName}: environment variable ${name} is not set; \${${inner}} is replaced by an empty string`,
      );
      return '';
    });
  }
}

/**
 * Orthanc's JSON-with-comments: `//` line and `/* *\/` block comments outside strings are allowed (Orthanc's
 * format); trailing commas are not, nor single quotes, unquoted names or other JSON5 extensions. Throws a
 * `ConfigError` "file:line:column: what was expected but found".
 */
export function parseJsonWithComments(text: string, fileName: string, options: ParseOptions = {}): unknown {
  return new JsonParser(text, fileName, options).document();
}

// ---------------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------------

interface CheckContext {
  key: string;
  /** Where the value came from (a file path, a source label, "overrides"). */
  source: string;
  /** Folder a relative path is resolved against. */
  baseDir: string;
  /** Reports a non-fatal finding (an ignored member of a section). */
  warn?: (message: string) => void;
}

type Check<T> = (value: unknown, ctx: CheckContext) => T;

function show(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string': {
      const s = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
      return `${s} (a string)`;
    }
    case 'number':
      return String(value);
    case 'boolean':
      return `${String(value)} (a boolean)`;
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

function invalid(ctx: CheckContext, expected: string, value: unknown, what = ctx.key): never {
  throw new ConfigError(`${ctx.source}: ${what} must be ${expected}, found ${show(value)}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const bool: Check<boolean> = (v, ctx) => (typeof v === 'boolean' ? v : invalid(ctx, 'a boolean (true or false)', v));

const string: Check<string> = (v, ctx) => (typeof v === 'string' ? v : invalid(ctx, 'a string', v));

const nonEmptyString: Check<string> = (v, ctx) =>
  typeof v === 'string' && v.length > 0 ? v : invalid(ctx, 'a non-empty string', v);

function integer(min: number, max: number, expected: string): Check<number> {
  return (v, ctx) => (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : invalid(ctx, expected, v));
}

const count = integer(0, Number.MAX_SAFE_INTEGER, 'a non-negative integer');
/** Seconds a Node timer can hold (2^31 - 1 ms); 0 = none. */
const timerSeconds = integer(0, 2147483, 'an integer 0..2147483 (seconds; 0 = no timeout)');
const port = integer(0, 65535, 'an integer 0..65535 (0 = any free port)');

function oneOf<T extends string>(values: readonly T[]): Check<T> {
  const expected = `one of ${values.map((x) => `"${x}"`).join(', ')}`;
  return (v, ctx) => (typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T) : invalid(ctx, expected, v));
}

/** Orthanc's `SslCiphersAccepted`: a list of cipher names (each checked against OpenSSL when HTTPS starts). */
const cipherList: Check<string[]> = (v, ctx) =>
  Array.isArray(v) && v.length > 0 && v.every((c) => typeof c === 'string' && c.trim() !== '')
    ? v.map((c: string) => c.trim())
    : invalid(ctx, 'a non-empty array of cipher names (strings such as "ECDHE-RSA-AES128-GCM-SHA256")', v);

/** `AcceptedTransferSyntaxes`: one UID or a list, each a UID or a pattern with `*` and `?` (checked again at start). */
const transferSyntaxList: Check<string[]> = (v, ctx) => {
  const list = typeof v === 'string' ? [v] : v;
  return Array.isArray(list) && list.every((x) => typeof x === 'string' && /^[0-9.*?]+$/.test(x))
    ? (list as string[])
    : invalid(ctx, 'a transfer syntax UID or a list of them (wildcards * and ? allowed, e.g. "1.2.840.10008.1.*")', v);
};

/** AE title: 1..16 characters of the DICOM default repertoire (printable ASCII) without backslash, not all spaces. */
const aet: Check<string> = (v, ctx) =>
  typeof v === 'string' && /^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(v) && v.trim() !== ''
    ? v
    : invalid(ctx, '1..16 characters of the DICOM default repertoire (printable ASCII, no backslash, not only spaces)', v);

const directory: Check<string> = (v, ctx) =>
  typeof v === 'string' && v.length > 0 ? path.resolve(ctx.baseDir, v) : invalid(ctx, 'a non-empty string (a folder path)', v);

/** A file, resolved like a folder (its existence and content are checked by whoever reads it, at start-up). */
const file: Check<string> = (v, ctx) =>
  typeof v === 'string' && v.length > 0 ? path.resolve(ctx.baseDir, v) : invalid(ctx, 'a non-empty string (a file path)', v);

/** Orthanc's names of `Encoding` values (`StringToEncoding` is case-insensitive); returned in Orthanc's spelling. */
const ENCODINGS = [
  'Ascii', 'Utf8', 'Latin1', 'Latin2', 'Latin3', 'Latin4', 'Latin5', 'Cyrillic', 'Windows1251', 'Arabic', 'Greek',
  'Hebrew', 'Thai', 'Japanese', 'Chinese', 'JapaneseKanji', 'Korean', 'SimplifiedChinese',
] as const;

const encoding: Check<string> = (v, ctx) => {
  const found = typeof v === 'string' ? ENCODINGS.find((e) => e.toLowerCase() === v.toLowerCase()) : undefined;
  return found ?? invalid(ctx, `one of ${ENCODINGS.join(', ')}`, v);
};

const USER_RANGE = 'an integer 1024..65535';
const userNumber = integer(1024, 65535, USER_RANGE);

function checkUniqueNumbers(ctx: CheckContext, entries: Array<[string, number]>): void {
  const seen = new Map<number, string>();
  for (const [name, n] of entries) {
    const other = seen.get(n);
    if (other !== undefined) {
      throw new ConfigError(`${ctx.source}: ${ctx.key} gives the same number ${n} to "${other}" and "${name}"`);
    }
    seen.set(n, name);
  }
}

const userMetadata: Check<Record<string, number>> = (v, ctx) => {
  if (!isPlainObject(v)) return invalid(ctx, 'an object of name -> integer 1024..65535', v);
  const out: Record<string, number> = {};
  for (const [name, n] of Object.entries(v)) {
    if (name === '') invalid(ctx, 'an object whose names are not empty', v);
    out[name] = userNumber(n, { ...ctx, key: `${ctx.key}.${name}` });
  }
  checkUniqueNumbers(ctx, Object.entries(out));
  return out;
};

const MIME = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?$/;

const userContentType: Check<Record<string, number | [number, string]>> = (v, ctx) => {
  if (!isPlainObject(v)) return invalid(ctx, 'an object of name -> integer 1024..65535 or [integer, "mime/type"]', v);
  const out: Record<string, number | [number, string]> = {};
  const numbers: Array<[string, number]> = [];
  for (const [name, item] of Object.entries(v)) {
    const sub = { ...ctx, key: `${ctx.key}.${name}` };
    const expected = `${USER_RANGE} or [integer 1024..65535, "mime/type"]`;
    if (name === '') invalid(ctx, 'an object whose names are not empty', v);
    if (typeof item === 'number') {
      out[name] = integer(1024, 65535, expected)(item, sub);
      numbers.push([name, item]);
    } else if (Array.isArray(item) && item.length === 2 && typeof item[1] === 'string') {
      const n = integer(1024, 65535, expected)(item[0], sub);
      if (!MIME.test(item[1])) invalid(sub, 'a MIME type such as "application/pdf" in its second element', item[1]);
      out[name] = [n, item[1]];
      numbers.push([name, n]);
    } else {
      invalid(sub, expected, item);
    }
  }
  checkUniqueNumbers(ctx, numbers);
  return out;
};

const LEVELS = ['Patient', 'Study', 'Series', 'Instance'] as const;

const extraMainDicomTags: Check<ExtraMainDicomTags> = (v, ctx) => {
  const expected = 'an object with optional "Patient", "Study", "Series" and "Instance" arrays of tag names';
  if (!isPlainObject(v)) return invalid(ctx, expected, v);
  const out: ExtraMainDicomTags = { Patient: [], Study: [], Series: [], Instance: [] };
  for (const [level, tags] of Object.entries(v)) {
    if (!(LEVELS as readonly string[]).includes(level)) {
      throw new ConfigError(`${ctx.source}: ${ctx.key} must be ${expected}; "${level}" is not a level`);
    }
    const sub = { ...ctx, key: `${ctx.key}.${level}` };
    if (!Array.isArray(tags)) invalid(sub, 'an array of strings (tag keywords or "gggg,eeee")', tags);
    out[level as keyof ExtraMainDicomTags] = tags.map((t, i) =>
      typeof t === 'string' && t.trim() !== '' ? t.trim() : invalid(sub, 'an array of non-empty strings', t, `${sub.key}[${i}]`),
    );
  }
  return out;
};

const registeredUsers: Check<Record<string, string>> = (v, ctx) => {
  if (!isPlainObject(v)) return invalid(ctx, 'an object of user name -> password (strings)', v);
  const out: Record<string, string> = {};
  for (const [user, password] of Object.entries(v)) {
    // The password itself never appears in a message.
    if (typeof password !== 'string') {
      throw new ConfigError(`${ctx.source}: ${ctx.key}."${user}" must be a string (the password)`);
    }
    out[user] = password;
  }
  return out;
};

/** DicomModalities: each entry in Orthanc's short or long form (checked by the registry's own parser). */
const dicomModalities: Check<Record<string, unknown>> = (value, ctx) => {
  if (!isPlainObject(value)) invalid(ctx, 'an object of modalities', value);
  for (const [name, entry] of Object.entries(value as Record<string, unknown>)) {
    try {
      checkModalityName(name);
      parseModality(name, entry);
    } catch (e) {
      throw new ConfigError(`${ctx.source}: ${isPacsError(e) && e.details ? e.details : (e as Error).message}`);
    }
  }
  return structuredClone(value as Record<string, unknown>);
};

/** OrthancPeers: each entry in Orthanc's short or long form (checked by the peers registry's own parser). */
const orthancPeers: Check<Record<string, unknown>> = (value, ctx) => {
  if (!isPlainObject(value)) invalid(ctx, 'an object of peers (name -> ["url", "username", "password"] or {Url, ...})', value);
  for (const [name, entry] of Object.entries(value as Record<string, unknown>)) {
    try {
      checkPeerName(name);
      parsePeer(name, entry, `${ctx.key}.${name}`);
    } catch (e) {
      throw new ConfigError(`${ctx.source}: ${isPacsError(e) && e.details ? e.details : (e as Error).message}`);
    }
  }
  return structuredClone(value as Record<string, unknown>);
};

/** A file that may be '' (= none), resolved like `file`. */
const optionalFile: Check<string> = (v, ctx) =>
  typeof v === 'string' ? (v === '' ? '' : path.resolve(ctx.baseDir, v)) : invalid(ctx, 'a string (a file path, or "" for none)', v);

/** `HttpProxy`: '' or `[http://][user:password@]host:port` (as libcurl takes it). */
const httpProxy: Check<string> = (v, ctx) => {
  const expected = '"" or a proxy URL such as "http://proxy.local:3128"';
  if (typeof v !== 'string') return invalid(ctx, expected, v);
  if (v === '') return v;
  try {
    const url = new URL(v.includes('://') ? v : `http://${v}`);
    if (url.protocol === 'http:' && url.hostname !== '') return v;
  } catch {
    // reported below
  }
  return invalid(ctx, expected, v);
};

/** Members of Orthanc's `DicomWeb` section that pacsnode does not read (client side, threads): a warning each. */
const DICOMWEB_UNSUPPORTED = new Set([
  'Servers', 'ServersInDatabase', 'MetadataWorkerThreadsCount', 'StowMaxInstances', 'StowMaxSize', 'EnablePerformanceLogs',
  'WadoRsLoaderThreadsCount',
]);

/** A tag of `*ExtrapolatedTags`: a keyword, `gggg,eeee` or `ggggeeee` (whether the keyword exists is checked at start). */
const TAG_NAME = /^([A-Za-z][A-Za-z0-9]*|[0-9A-Fa-f]{4},?[0-9A-Fa-f]{4})$/;

/** Orthanc's DICOMweb plugin section: each member checked; Orthanc members pacsnode does not read are reported. */
const dicomWeb: Check<NonNullable<Config['DicomWeb']>> = (v, ctx) => {
  if (!isPlainObject(v)) return invalid(ctx, 'an object (the DICOMweb plugin section)', v);
  const sub = (name: string): CheckContext => ({ ...ctx, key: `${ctx.key}.${name}` });
  const mode = oneOf(['Full', 'MainDicomTags', 'Extrapolate'] as const);
  const tags: Check<string[]> = (list, c) => {
    if (!Array.isArray(list)) return invalid(c, 'an array of tag names (keywords or "gggg,eeee")', list);
    return list.map((t, i) =>
      typeof t === 'string' && TAG_NAME.test(t.trim()) ? t.trim() : invalid(c, 'a tag keyword or "gggg,eeee"', t, `${c.key}[${i}]`),
    );
  };
  const path: Check<string> = (p, c) =>
    typeof p === 'string' && /^\/?[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/.test(p) && !p.includes('//')
      ? p
      : invalid(c, 'a URI path such as "/dicom-web/"', p);
  const checks: Record<string, Check<unknown>> = {
    Enable: bool, Root: path, EnableWado: bool, WadoRoot: path, Ssl: bool, QidoCaseSensitive: bool, Host: string,
    PublicRoot: path, StudiesMetadata: mode, SeriesMetadata: mode, StudiesMetadataExtrapolatedTags: tags,
    SeriesMetadataExtrapolatedTags: tags, EnableMetadataCache: bool, RelativeUris: bool,
  };
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(v)) {
    const check = checks[name];
    if (check) out[name] = check(value, sub(name));
    else if (DICOMWEB_UNSUPPORTED.has(name)) ctx.warn?.(`${ctx.source}: "${ctx.key}.${name}" is an Orthanc option that pacsnode does not support yet; ignored`);
    else ctx.warn?.(`${ctx.source}: unknown configuration key "${ctx.key}.${name}"; ignored`);
  }
  if (out.Root === '/' || out.Root === '') invalid(sub('Root'), 'a URI path other than "/" (the REST API is there)', out.Root);
  return out as NonNullable<Config['DicomWeb']>;
};

/** One check per key of `Config`: adding a key to the schema without a check here does not compile. */
const CHECKS: { [K in keyof Config]-?: Check<NonNullable<Config[K]>> } = {
  Name: string,
  HttpPort: port,
  DicomPort: port,
  DicomAet: aet,
  StorageDirectory: directory,
  IndexDirectory: directory,
  StorageCompression: bool,
  MaximumStorageSize: count,
  MaximumStorageCacheSize: count,
  MaximumPatientCount: count,
  MaximumStorageMode: oneOf(['Recycle', 'Reject'] as const),
  OverwriteInstances: bool,
  StableAge: count,
  UserMetadata: userMetadata,
  UserContentType: userContentType,
  ExtraMainDicomTags: extraMainDicomTags,
  DefaultEncoding: encoding,
  CheckRevisions: bool,
  RemoteAccessAllowed: bool,
  AuthenticationEnabled: bool,
  RegisteredUsers: registeredUsers,
  SyncStorageArea: bool,
  SyncIndex: bool,
  StorageAccessOnFind: oneOf(['Always', 'Answers', 'Never'] as const),
  LimitFindResults: count,
  LimitFindInstances: count,
  HttpBindAddress: nonEmptyString,
  MaximumHttpBodySize: count,
  SslEnabled: bool,
  SslCertificate: file,
  SslMinimumProtocolVersion: integer(0, 5, 'an integer 0..5 (4 = TLS 1.2 and above)'),
  SslCiphersAccepted: cipherList,
  SslVerifyPeers: bool,
  SslTrustedClientCertificates: file,
  KeepAlive: bool,
  KeepAliveTimeout: count,
  HttpCompressionEnabled: bool,
  HttpDescribeErrors: bool,
  TcpNoDelay: bool,
  HttpRequestTimeout: count,
  OrthancApiVersion: nonEmptyString,
  DicomServerEnabled: bool,
  DicomCheckCalledAet: bool,
  DicomScpTimeout: timerSeconds,
  MaximumPduLength: integer(4096, 131072, 'an integer 4096..131072 (bytes)'),
  UnknownSopClassAccepted: bool,
  AcceptedTransferSyntaxes: transferSyntaxList,
  DeflatedTransferSyntaxAccepted: bool,
  JpegTransferSyntaxAccepted: bool,
  Jpeg2000TransferSyntaxAccepted: bool,
  JpegLosslessTransferSyntaxAccepted: bool,
  JpipTransferSyntaxAccepted: bool,
  Mpeg2TransferSyntaxAccepted: bool,
  Mpeg4TransferSyntaxAccepted: bool,
  H265TransferSyntaxAccepted: bool,
  RleTransferSyntaxAccepted: bool,
  DicomModalities: dicomModalities,
  DicomAlwaysAllowEcho: bool,
  DicomAlwaysAllowStore: bool,
  DicomAlwaysAllowFind: bool,
  DicomAlwaysAllowGet: bool,
  DicomAlwaysAllowMove: bool,
  DicomCheckModalityHost: bool,
  StrictAetComparison: bool,
  SynchronousCMove: bool,
  DicomScuTimeout: timerSeconds,
  DicomModalitiesInDatabase: bool,
  DicomDefaultRetrieveMethod: oneOf(['C-MOVE', 'C-GET'] as const),
  DicomAssociationCloseDelay: count,
  DicomEchoChecksFind: bool,
  LogExportedResources: bool,
  QueryRetrieveSize: integer(1, Number.MAX_SAFE_INTEGER, 'a positive integer'),
  OrthancPeers: orthancPeers,
  OrthancPeersInDatabase: bool,
  HttpTimeout: timerSeconds,
  HttpsVerifyPeers: bool,
  HttpsCACertificates: optionalFile,
  HttpProxy: httpProxy,
  ConcurrentJobs: count,
  JobsHistorySize: count,
  MediaArchiveSize: integer(1, Number.MAX_SAFE_INTEGER, 'a positive integer'),
  SaveJobs: bool,
  DicomTlsEnabled: bool,
  DicomTlsCertificate: file,
  DicomTlsPrivateKey: file,
  DicomTlsTrustedCertificates: file,
  DicomTlsRemoteCertificateRequired: bool,
  DicomTlsMinimumProtocolVersion: integer(0, 5, 'an integer 0..5 (0 = default: TLS 1.2 or 1.3)'),
  DicomWeb: dicomWeb,
};

// ---------------------------------------------------------------------------------------------------------
// Assembly
// ---------------------------------------------------------------------------------------------------------

interface Setting {
  value: unknown;
  source: string;
}

function warn(warnings: string[], message: string): void {
  warnings.push(message);
  log.warn(message);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Validates `settings` (values read from files or given in memory), then `overrides`, fills the rest from
 * `DEFAULT_CONFIG`. Relative folders of `settings` (and the default `OrthancStorage`) are resolved against
 * `baseDir`, those of `overrides` against the current directory.
 */
function assemble(
  settings: Map<string, Setting>,
  baseDir: string,
  overrides: Partial<Config> | undefined,
  files: string[],
  warnings: string[],
): LoadResult {
  const given = new Map<string, unknown>();
  const sources = new Map<string, string>();
  const apply = (key: string, value: unknown, source: string, dir: string): void => {
    if (!SUPPORTED_KEYS.has(key) || !(key in CHECKS)) {
      if (ORTHANC_UNSUPPORTED_KEYS.has(key)) {
        warn(warnings, `${source}: "${key}" is an Orthanc option that pacsnode does not support yet; ignored`);
      } else {
        warn(warnings, `${source}: unknown configuration key "${key}"; ignored`);
      }
      return;
    }
    const check = CHECKS[key as keyof Config] as Check<unknown>;
    given.set(key, check(value, { key, source, baseDir: dir, warn: (message) => warn(warnings, message) }));
    sources.set(key, source);
  };

  for (const [key, { value, source }] of settings) apply(key, value, source, baseDir);
  for (const [key, value] of Object.entries(overrides ?? {})) {
    if (value !== undefined) apply(key, value, 'overrides', process.cwd());
  }

  const config: Record<string, unknown> = {};
  for (const key of Object.keys(DEFAULT_CONFIG) as Array<keyof Config>) {
    config[key] = given.has(key) ? given.get(key) : structuredClone(DEFAULT_CONFIG[key]);
  }
  if (!given.has('StorageDirectory')) config.StorageDirectory = path.resolve(baseDir, DEFAULT_CONFIG.StorageDirectory);
  // As in Orthanc, IndexDirectory follows StorageDirectory unless it is given itself.
  if (!given.has('IndexDirectory')) config.IndexDirectory = config.StorageDirectory;
  for (const key of OPTIONAL_KEYS) if (given.has(key)) config[key] = given.get(key);
  // A default value is blamed on the file that turned TLS on.
  checkDicomTls(config as unknown as Config, (key) => sources.get(key) ?? sources.get('DicomTlsEnabled') ?? 'defaults');

  // Orthanc 1.5.8+ (its main.cpp): remote access without an explicit AuthenticationEnabled turns authentication on;
  // authentication with remote access and no registered user creates the default user orthanc/orthanc (and /system
  // reports the server insecure), whether AuthenticationEnabled was given or not.
  const remote = config.RemoteAccessAllowed === true;
  if (remote && !given.has('AuthenticationEnabled')) config.AuthenticationEnabled = true;
  if (remote && config.AuthenticationEnabled === false) {
    warn(warnings, 'remote access is allowed while HTTP authentication is disabled: make sure this is intended');
  }
  if (config.AuthenticationEnabled === true && Object.keys(config.RegisteredUsers as Record<string, string>).length === 0) {
    if (remote) {
      config.RegisteredUsers = { orthanc: 'orthanc' };
      warn(
        warnings,
        'RemoteAccessAllowed is true and no user is registered: HTTP authentication is on with the default user ' +
          '"orthanc" (password "orthanc"), as Orthanc does. Declare RegisteredUsers to secure the server.',
      );
    } else {
      warn(warnings, 'HTTP authentication is enabled but RegisteredUsers declares no user: every HTTP request will be refused (401)');
    }
  }
  httpsDefaults(config as unknown as Config, given, baseDir, warnings);

  return { config: deepFreeze(config as unknown as Config), warnings, files };
}

/**
 * The DICOM TLS keys that go together (the files themselves are read and checked at start-up, by
 * `loadDicomTls` in net/tls.ts): a TLS server needs a certificate and its key, and the trusted certificates when
 * client certificates are required; a certificate never goes without its key.
 */
function checkDicomTls(config: Config, sourceOf: (key: string) => string): void {
  const missing = (key: keyof Config, because: keyof Config, what: string): never => {
    throw new ConfigError(`${sourceOf(because)}: ${because} is ${JSON.stringify(config[because])} but ${key} is not set (${what})`);
  };
  if (config.DicomTlsEnabled) {
    if (!config.DicomTlsCertificate) missing('DicomTlsCertificate', 'DicomTlsEnabled', "the PEM file of the server's certificate");
    if (!config.DicomTlsPrivateKey) missing('DicomTlsPrivateKey', 'DicomTlsEnabled', "the PEM file of the server's private key");
    if (config.DicomTlsRemoteCertificateRequired && !config.DicomTlsTrustedCertificates) {
      missing('DicomTlsTrustedCertificates', 'DicomTlsRemoteCertificateRequired', 'the PEM bundle of the CAs client certificates must chain to');
    }
  }
  if (config.DicomTlsCertificate && !config.DicomTlsPrivateKey) {
    throw new ConfigError(`${sourceOf('DicomTlsCertificate')}: DicomTlsCertificate is set but DicomTlsPrivateKey is not (the PEM file of its key)`);
  }
  if (config.DicomTlsPrivateKey && !config.DicomTlsCertificate) {
    throw new ConfigError(`${sourceOf('DicomTlsPrivateKey')}: DicomTlsPrivateKey is set but DicomTlsCertificate is not (the PEM file of the certificate)`);
  }
}

/**
 * Orthanc's defaults for the HTTPS files (its main.cpp): with SslEnabled, SslCertificate defaults to
 * `certificate.pem` and, with SslVerifyPeers, SslTrustedClientCertificates to `trustedCertificates.pem`, both next to
 * the configuration. The files themselves are read and checked at start-up (`loadHttps` in rest/https.ts).
 */
function httpsDefaults(config: Config, given: ReadonlyMap<string, unknown>, baseDir: string, warnings: string[]): void {
  const mutable = config as { -readonly [K in keyof Config]: Config[K] };
  if (config.SslEnabled && !given.has('SslCertificate')) mutable.SslCertificate = path.resolve(baseDir, 'certificate.pem');
  if (config.SslEnabled && config.SslVerifyPeers && !given.has('SslTrustedClientCertificates')) {
    mutable.SslTrustedClientCertificates = path.resolve(baseDir, 'trustedCertificates.pem');
  }
  if (config.SslVerifyPeers && !config.SslEnabled) {
    warn(warnings, 'SslVerifyPeers is true but SslEnabled is false: client certificates are only checked over HTTPS; ignored');
  }
}

/** Same validation on an in-memory object (tests and embedding). Relative folders resolve against the current directory; no environment substitution. */
export function buildConfig(raw: Record<string, unknown>, source: string, overrides?: Partial<Config>): LoadResult {
  if (!isPlainObject(raw)) throw new ConfigError(`${source}: the configuration must be a JSON object, found ${show(raw)}`);
  const settings = new Map<string, Setting>();
  for (const [key, value] of Object.entries(raw)) settings.set(key, { value, source });
  return assemble(settings, process.cwd(), overrides, [], []);
}

function readConfigFile(file: string, warnings: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: cannot read the configuration file (${(e as Error).message})`);
  }
  const parseWarnings: string[] = [];
  const value = parseJsonWithComments(text, file, { env: process.env, warnings: parseWarnings });
  for (const w of parseWarnings) warn(warnings, w);
  if (!isPlainObject(value)) {
    throw new ConfigError(`${file}: the configuration must be a JSON object ({ ... }), found ${show(value)}`);
  }
  return value;
}

/** The `*.json` files (extension case-insensitive, as Orthanc) directly inside `dir`, in alphabetical order. */
function listJsonFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw new ConfigError(`${dir}: cannot list the configuration directory (${(e as Error).message})`);
  }
  return names
    .filter((name) => name.toLowerCase().endsWith('.json'))
    .map((name) => path.join(dir, name))
    .filter((file) => {
      try {
        return fs.statSync(file).isFile();
      } catch {
        return false; // dangling symbolic link
      }
    })
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Loads the configuration. `configPath` may be a file or a directory (every `*.json` file of the directory is
 * read, in alphabetical order; a key defined in two files is an error, as in Orthanc). `undefined` gives the
 * embedded defaults. `overrides` are applied last (tests and CLI flags).
 *
 * Relative `StorageDirectory` / `IndexDirectory` values of a file are resolved as Orthanc does: against the
 * folder of the configuration file (or against the configuration directory itself); without a file, and for
 * `overrides`, against the current directory. `IndexDirectory` defaults to `StorageDirectory`.
 */
export function loadConfig(configPath?: string, overrides?: Partial<Config>): LoadResult {
  const warnings: string[] = [];
  if (configPath === undefined) return assemble(new Map(), process.cwd(), overrides, [], warnings);

  const target = path.resolve(configPath);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch {
    throw new ConfigError(`configuration file or directory not found: ${target}`);
  }

  const files = stat.isDirectory() ? listJsonFiles(target) : [target];
  if (stat.isDirectory() && files.length === 0) {
    warn(warnings, `${target}: no *.json file in the configuration directory; using the defaults`);
  }
  const settings = new Map<string, Setting>();
  for (const file of files) {
    log.verbose(`Reading the configuration file: ${file}`);
    for (const [key, value] of Object.entries(readConfigFile(file, warnings))) {
      const previous = settings.get(key);
      if (previous) {
        throw new ConfigError(
          `The configuration section "${key}" is defined in 2 different configuration files: ${previous.source} and ${file}`,
        );
      }
      settings.set(key, { value, source: file });
    }
  }
  return assemble(settings, stat.isDirectory() ? target : path.dirname(target), overrides, files, warnings);
}

/** A short multi-line summary for the start-up log; passwords never appear. */
export function describeConfig(config: Readonly<Config>): string {
  const users = Object.keys(config.RegisteredUsers).length;
  const http = [
    `port ${config.HttpPort}`,
    config.RemoteAccessAllowed ? `remote access allowed${config.HttpBindAddress ? ` (bind ${config.HttpBindAddress})` : ''}` : 'localhost only',
    config.AuthenticationEnabled ? `authentication enabled (${users} registered user${users === 1 ? '' : 's'})` : 'no authentication',
  ];
  if (config.SslEnabled) http.push(`HTTPS only${config.SslVerifyPeers ? ' (client certificates required)' : ''}`);
  const limit = (n: number, unit = ''): string => (n === 0 ? 'unlimited' : `${n}${unit}`);
  const extra = (Object.keys(config.ExtraMainDicomTags) as Array<keyof ExtraMainDicomTags>)
    .filter((level) => config.ExtraMainDicomTags[level].length > 0)
    .map((level) => `${level} +${config.ExtraMainDicomTags[level].length}`);
  return [
    `Name: ${config.Name} (Orthanc API ${config.OrthancApiVersion})`,
    `HTTP: ${http.join(', ')}`,
    `DICOM: AET ${config.DicomAet}, port ${config.DicomPort}` +
      (config.DicomTlsEnabled
        ? `, TLS only (client certificates ${config.DicomTlsRemoteCertificateRequired ? 'required' : 'not requested'})`
        : ''),
    `Storage: ${config.StorageDirectory} (compression ${config.StorageCompression ? 'on' : 'off'}, fsync ${config.SyncStorageArea ? 'on' : 'off'}, ` +
      `cache ${config.MaximumStorageCacheSize > 0 ? `${config.MaximumStorageCacheSize} MB` : 'off'})`,
    `Index: ${config.IndexDirectory}`,
    `Limits: storage ${limit(config.MaximumStorageSize, ' MB')}, patients ${limit(config.MaximumPatientCount)} ` +
      `(${config.MaximumStorageMode}), find results ${limit(config.LimitFindResults)}, find instances ${limit(config.LimitFindInstances)}`,
    `Stable age: ${config.StableAge} s; overwrite instances: ${config.OverwriteInstances ? 'yes' : 'no'}; ` +
      `default encoding: ${config.DefaultEncoding}; storage access on find: ${config.StorageAccessOnFind}` +
      (extra.length > 0 ? `; extra main tags: ${extra.join(', ')}` : ''),
  ].join('\n');
}
