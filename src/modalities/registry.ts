/**
 * Remote DICOM modalities (Orthanc's `DicomModalities`), in the short form `["AET", "host", port]` (an optional
 * fourth value names the manufacturer) or the long form `{AET, Host, Port, Manufacturer, AllowEcho, AllowFind,
 * AllowMove, AllowGet, AllowStore, UseDicomTls, LocalAet, Timeout, RetrieveMethod, ...}`. Looked up by AE title for
 * access control and as C-MOVE destinations, by symbolic name for the SCUs (`/modalities/{id}/...`).
 *
 * The registry is mutable (`PUT`/`DELETE /modalities/{id}`): the DICOM server asks it at every association and
 * request, so a change applies at once. A `persist` callback (set by the application when
 * `DicomModalitiesInDatabase` is true) is called with the whole set after every change.
 */
import { PacsError } from '../core/errors.js';

/** Orthanc's RetrieveMethod: how `/queries/{id}/retrieve` retrieves (SystemDefault: `DicomDefaultRetrieveMethod`). */
export type RetrieveMethod = 'SystemDefault' | 'C-MOVE' | 'C-GET';

/**
 * Orthanc's ModalityManufacturer values. They change outgoing C-FIND queries: `GenericNoWildcardInDates` sends an
 * empty value instead of `*` for dates, `GenericNoUniversalWildcard` for every attribute, `GE` uses `*` as the
 * universal value of the keys Orthanc adds.
 */
export const MANUFACTURERS = ['Generic', 'GenericNoWildcardInDates', 'GenericNoUniversalWildcard', 'StoreScp', 'Vitrea', 'GE'] as const;
export type Manufacturer = (typeof MANUFACTURERS)[number];

/** Names older Orthanc releases accepted, mapped as Orthanc maps them. */
const OBSOLETE_MANUFACTURERS: Readonly<Record<string, Manufacturer>> = {
  AgfaImpax: 'GenericNoWildcardInDates',
  SyngoVia: 'GenericNoWildcardInDates',
  EFilm2: 'GenericNoUniversalWildcard',
  ClearCanvas: 'Generic',
  Dcm4Chee: 'Generic',
  MedInria: 'Generic',
};

export interface RemoteModality {
  /** The symbolic name (the key in DicomModalities). */
  name: string;
  aet: string;
  host: string;
  port: number;
  manufacturer: Manufacturer;
  allowEcho: boolean;
  allowFind: boolean;
  allowFindWorklist: boolean;
  allowMove: boolean;
  allowGet: boolean;
  allowStore: boolean;
  /** Storage commitment requests (N-ACTION) and reports (N-EVENT-REPORT): kept for Orthanc's JSON. */
  allowNAction: boolean;
  allowNEventReport: boolean;
  allowTranscoding: boolean;
  /** Orthanc's `UseDicomTls`: associations we open towards this modality use DICOM TLS (default false). */
  useDicomTls: boolean;
  /** Our AE title towards this modality ('' = `DicomAet`). */
  localAet: string;
  /** DIMSE timeout towards this modality, in seconds (0 = `DicomScuTimeout`). */
  timeout: number;
  retrieveMethod: RetrieveMethod;
}

export type DicomService = 'echo' | 'find' | 'move' | 'get' | 'store';

function bool(value: unknown, name: string, key: string, byDefault = true): boolean {
  if (value === undefined) return byDefault; // Orthanc: everything allowed unless said otherwise
  if (typeof value !== 'boolean') throw new PacsError('BadFileFormat', `DicomModalities.${name}.${key} must be a Boolean`);
  return value;
}

function isAet(value: unknown): value is string {
  return typeof value === 'string' && value.trim() !== '' && value.length <= 16 && !value.includes('\\');
}

/** Orthanc's manufacturer names (case-sensitive, as Orthanc), the obsolete ones mapped. */
export function parseManufacturer(value: unknown, name: string): Manufacturer {
  if (typeof value !== 'string') throw new PacsError('BadFileFormat', `DicomModalities.${name}: Manufacturer must be a string`);
  if ((MANUFACTURERS as readonly string[]).includes(value)) return value as Manufacturer;
  const mapped = OBSOLETE_MANUFACTURERS[value];
  if (mapped) return mapped;
  throw new PacsError('ParameterOutOfRange', `DicomModalities.${name}: unknown modality manufacturer "${value}" (${MANUFACTURERS.join(', ')})`, {
    httpStatus: 400,
  });
}

/** Orthanc's `RetrieveMethod` values. */
export function parseRetrieveMethod(value: unknown, what: string): RetrieveMethod {
  if (value === 'C-MOVE' || value === 'C-GET' || value === 'SystemDefault') return value;
  throw new PacsError('ParameterOutOfRange', `${what} must be "C-MOVE", "C-GET" or "SystemDefault", found ${JSON.stringify(value)}`, {
    httpStatus: 400,
  });
}

/** Orthanc's rule for the names of modalities and peers: letters, digits, `-` and `_`. */
export function checkModalityName(name: string): void {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) {
    throw new PacsError(
      'BadFileFormat',
      `Only alphanumeric, dash characters and underscores are allowed in the names of modalities/peers, but found: ${JSON.stringify(name)}`,
    );
  }
}

/** Parses one entry of DicomModalities (or a `PUT /modalities/{id}` body); throws a 400-style error naming it. */
export function parseModality(name: string, raw: unknown): RemoteModality {
  let aet: unknown;
  let host: unknown;
  let port: unknown;
  let manufacturer: unknown = 'Generic';
  let flags: Record<string, unknown> = {};
  if (Array.isArray(raw)) {
    if (raw.length < 3 || raw.length > 4) {
      throw new PacsError('BadFileFormat', `DicomModalities.${name} must be ["AET", "host", port] or an object`);
    }
    [aet, host, port] = raw;
    if (raw.length === 4) manufacturer = raw[3];
  } else if (raw !== null && typeof raw === 'object') {
    const o = raw as Record<string, unknown>;
    aet = o.AET;
    host = o.Host;
    port = o.Port;
    if (o.Manufacturer !== undefined) manufacturer = o.Manufacturer;
    flags = o;
  } else {
    throw new PacsError('BadFileFormat', `DicomModalities.${name} must be ["AET", "host", port] or an object`);
  }
  if (typeof port === 'string' && /^\d+$/.test(port)) port = Number(port);
  if (!isAet(aet)) {
    throw new PacsError('BadFileFormat', `DicomModalities.${name}: AET must be 1..16 characters (no backslash)`);
  }
  if (typeof host !== 'string' || host === '') throw new PacsError('BadFileFormat', `DicomModalities.${name}: Host must be a string`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PacsError('BadFileFormat', `DicomModalities.${name}: Port must be an integer 1..65535`);
  }
  const localAet = flags.LocalAet ?? '';
  if (localAet !== '' && !isAet(localAet)) {
    throw new PacsError('BadFileFormat', `DicomModalities.${name}: LocalAet must be 1..16 characters (no backslash), or ""`);
  }
  const timeout = flags.Timeout ?? 0;
  if (typeof timeout !== 'number' || !Number.isSafeInteger(timeout) || timeout < 0) {
    throw new PacsError('BadFileFormat', `DicomModalities.${name}: Timeout must be a non-negative integer (seconds)`);
  }
  const storageCommitment = flags.AllowStorageCommitment === undefined ? undefined : bool(flags.AllowStorageCommitment, name, 'AllowStorageCommitment');
  return {
    name,
    aet,
    host,
    port,
    manufacturer: parseManufacturer(manufacturer, name),
    allowEcho: bool(flags.AllowEcho, name, 'AllowEcho'),
    allowFind: bool(flags.AllowFind, name, 'AllowFind'),
    allowFindWorklist: bool(flags.AllowFindWorklist, name, 'AllowFindWorklist'),
    allowMove: bool(flags.AllowMove, name, 'AllowMove'),
    allowGet: bool(flags.AllowGet, name, 'AllowGet'),
    allowStore: bool(flags.AllowStore, name, 'AllowStore'),
    allowNAction: storageCommitment ?? bool(flags.AllowNAction, name, 'AllowNAction'),
    allowNEventReport: storageCommitment ?? bool(flags.AllowEventReport, name, 'AllowEventReport'),
    allowTranscoding: bool(flags.AllowTranscoding, name, 'AllowTranscoding'),
    useDicomTls: bool(flags.UseDicomTls, name, 'UseDicomTls', false),
    localAet: localAet as string,
    timeout,
    retrieveMethod: flags.RetrieveMethod === undefined ? 'SystemDefault' : parseRetrieveMethod(flags.RetrieveMethod, `DicomModalities.${name}.RetrieveMethod`),
  };
}

/** Whether Orthanc would need its long form to write this modality (RemoteModalityParameters::IsAdvancedFormatNeeded). */
function needsLongForm(m: RemoteModality): boolean {
  return (
    !m.allowEcho ||
    !m.allowStore ||
    !m.allowFind ||
    !m.allowFindWorklist ||
    !m.allowGet ||
    !m.allowMove ||
    !m.allowNAction ||
    !m.allowNEventReport ||
    !m.allowTranscoding ||
    m.useDicomTls ||
    m.localAet !== '' ||
    m.timeout !== 0 ||
    m.retrieveMethod !== 'SystemDefault'
  );
}

/**
 * Orthanc's JSON of a modality (RemoteModalityParameters::Serialize): the long form (keys in Orthanc's order) when
 * `long` or when the short one cannot say it all, otherwise `["AET", "host", port, "Manufacturer"]`.
 */
export function modalityToJson(m: RemoteModality, long: boolean): unknown {
  if (!long && !needsLongForm(m)) return [m.aet, m.host, m.port, m.manufacturer];
  return {
    AET: m.aet,
    AllowEcho: m.allowEcho,
    AllowEventReport: m.allowNEventReport,
    AllowFind: m.allowFind,
    AllowFindWorklist: m.allowFindWorklist,
    AllowGet: m.allowGet,
    AllowMove: m.allowMove,
    AllowNAction: m.allowNAction,
    AllowStore: m.allowStore,
    AllowTranscoding: m.allowTranscoding,
    Host: m.host,
    LocalAet: m.localAet,
    Manufacturer: m.manufacturer,
    Port: m.port,
    RetrieveMethod: m.retrieveMethod,
    Timeout: m.timeout,
    UseDicomTls: m.useDicomTls,
  };
}

export interface AccessRules {
  checkCalledAet: boolean;
  ourAet: string;
  checkModalityHost: boolean;
  /** Orthanc's StrictAetComparison (false: AE titles compare case-insensitively). */
  strictAetComparison: boolean;
  alwaysAllow: Readonly<Record<DicomService, boolean>>;
}

/** The modalities known to this server, and Orthanc's access rules over them. */
export class ModalityRegistry {
  private modalities = new Map<string, RemoteModality>();
  /** Called with every modality (long form) after each change; set when modalities are kept in the index. */
  persist?: (entries: Record<string, unknown>) => void;

  constructor(
    entries: Readonly<Record<string, unknown>>,
    private readonly rules: AccessRules,
  ) {
    for (const [name, raw] of Object.entries(entries)) this.modalities.set(name, parseModality(name, raw));
  }

  /** Every modality, by symbolic name in alphabetical order (as Orthanc lists them). */
  list(): RemoteModality[] {
    return [...this.modalities.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  get(name: string): RemoteModality | undefined {
    return this.modalities.get(name);
  }

  /** The modality of that symbolic name, or Orthanc's 404 `No modality with symbolic name`. */
  require(name: string): RemoteModality {
    const m = this.modalities.get(name);
    if (!m) throw new PacsError('InexistentItem', `No modality with symbolic name: ${name}`);
    return m;
  }

  /** Defines or replaces a modality (Orthanc's UpdateModality); throws a 400-style error for a bad name or entry. */
  set(name: string, raw: unknown): RemoteModality {
    checkModalityName(name);
    const modality = parseModality(name, raw);
    this.modalities.set(name, modality);
    this.save();
    return modality;
  }

  /** Removes a modality (Orthanc's RemoveModality): 404 when there is none of that name. */
  delete(name: string): void {
    if (!this.modalities.delete(name)) throw new PacsError('InexistentItem', `Unknown DICOM modality with symbolic name: ${name}`);
    this.save();
  }

  /** Replaces every modality (loading them from the index); entries that cannot be parsed are reported, not kept. */
  replaceAll(entries: Readonly<Record<string, unknown>>, onError?: (name: string, error: Error) => void): void {
    const next = new Map<string, RemoteModality>();
    for (const [name, raw] of Object.entries(entries)) {
      try {
        next.set(name, parseModality(name, raw));
      } catch (e) {
        onError?.(name, e as Error);
      }
    }
    this.modalities = next;
  }

  /** Every modality in its long form, by name (what `persist` receives, and `GET /modalities?expand`). */
  toJson(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const m of this.list()) out[m.name] = modalityToJson(m, true);
    return out;
  }

  private save(): void {
    this.persist?.(this.toJson());
  }

  private sameAet(a: string, b: string): boolean {
    return this.rules.strictAetComparison ? a === b : a.toUpperCase() === b.toUpperCase();
  }

  /** Modalities declared with this AE title (and, with DicomCheckModalityHost, this address). */
  byAet(aet: string, remoteAddress?: string): RemoteModality[] {
    return this.list().filter(
      (m) =>
        this.sameAet(m.aet, aet) &&
        (!this.rules.checkModalityHost || remoteAddress === undefined || sameHost(m.host, remoteAddress)),
    );
  }

  /**
   * Orthanc's IsAllowedConnection: the called AE title (when checked), then any caller when one DicomAlwaysAllow*
   * is on, else only declared modalities.
   */
  isAllowedConnection(callingAet: string, calledAet: string, remoteAddress: string): 'ok' | 'called' | 'calling' {
    if (this.rules.checkCalledAet && !this.sameAet(calledAet, this.rules.ourAet)) return 'called';
    if (Object.values(this.rules.alwaysAllow).some(Boolean)) return 'ok';
    return this.byAet(callingAet, remoteAddress).length > 0 ? 'ok' : 'calling';
  }

  /** Orthanc's IsAllowedRequest: DicomAlwaysAllow<Service>, or a declared modality allowing it. */
  isAllowedRequest(service: DicomService, callingAet: string, remoteAddress: string): boolean {
    if (this.rules.alwaysAllow[service]) return true;
    const key = { echo: 'allowEcho', find: 'allowFind', move: 'allowMove', get: 'allowGet', store: 'allowStore' }[service] as
      | 'allowEcho'
      | 'allowFind'
      | 'allowMove'
      | 'allowGet'
      | 'allowStore';
    return this.byAet(callingAet, remoteAddress).some((m) => m[key]);
  }
}

/** Compares a configured host with a socket's address (IPv4-mapped IPv6 and localhost tolerated). */
function sameHost(configured: string, remote: string): boolean {
  const norm = (h: string) => {
    const x = h.replace(/^::ffff:/, '');
    return x === 'localhost' || x === '::1' ? '127.0.0.1' : x;
  };
  return norm(configured) === norm(remote);
}
