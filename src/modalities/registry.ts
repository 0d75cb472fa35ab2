/**
 * Remote DICOM modalities (Orthanc's `DicomModalities`), in the short form `["AET", "host", port]` (an optional
 * fourth value names the manufacturer) or the long form `{AET, Host, Port, AllowEcho, AllowFind, AllowMove,
 * AllowGet, AllowStore, UseDicomTls, ...}`. Looked up by AE title for access control and as C-MOVE destinations.
 */
import { PacsError } from '../core/errors.js';

export interface RemoteModality {
  /** The symbolic name (the key in DicomModalities). */
  name: string;
  aet: string;
  host: string;
  port: number;
  manufacturer: string;
  allowEcho: boolean;
  allowFind: boolean;
  allowMove: boolean;
  allowGet: boolean;
  allowStore: boolean;
  /** Orthanc's `UseDicomTls`: associations we open towards this modality use DICOM TLS (default false). */
  useDicomTls: boolean;
}

export type DicomService = 'echo' | 'find' | 'move' | 'get' | 'store';

function bool(value: unknown, name: string, key: string, byDefault = true): boolean {
  if (value === undefined) return byDefault; // Orthanc: everything allowed unless said otherwise
  if (typeof value !== 'boolean') throw new PacsError('BadParameterType', `DicomModalities.${name}.${key} must be a Boolean`);
  return value;
}

/** Parses one entry of DicomModalities; throws a 400-style error naming the entry when it is malformed. */
export function parseModality(name: string, raw: unknown): RemoteModality {
  let aet: unknown;
  let host: unknown;
  let port: unknown;
  let manufacturer: unknown = 'Generic';
  let flags: Record<string, unknown> = {};
  if (Array.isArray(raw)) {
    if (raw.length < 3 || raw.length > 4) {
      throw new PacsError('BadParameterType', `DicomModalities.${name} must be ["AET", "host", port] or an object`);
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
    throw new PacsError('BadParameterType', `DicomModalities.${name} must be ["AET", "host", port] or an object`);
  }
  if (typeof port === 'string' && /^\d+$/.test(port)) port = Number(port);
  if (typeof aet !== 'string' || aet.trim() === '' || aet.length > 16) {
    throw new PacsError('BadParameterType', `DicomModalities.${name}: AET must be 1..16 characters`);
  }
  if (typeof host !== 'string' || host === '') throw new PacsError('BadParameterType', `DicomModalities.${name}: Host must be a string`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PacsError('BadParameterType', `DicomModalities.${name}: Port must be an integer 1..65535`);
  }
  if (typeof manufacturer !== 'string') throw new PacsError('BadParameterType', `DicomModalities.${name}: Manufacturer must be a string`);
  return {
    name,
    aet,
    host,
    port,
    manufacturer,
    allowEcho: bool(flags.AllowEcho, name, 'AllowEcho'),
    allowFind: bool(flags.AllowFind, name, 'AllowFind'),
    allowMove: bool(flags.AllowMove, name, 'AllowMove'),
    allowGet: bool(flags.AllowGet, name, 'AllowGet'),
    allowStore: bool(flags.AllowStore, name, 'AllowStore'),
    useDicomTls: bool(flags.UseDicomTls, name, 'UseDicomTls', false),
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
  private readonly modalities = new Map<string, RemoteModality>();

  constructor(
    entries: Readonly<Record<string, unknown>>,
    private readonly rules: AccessRules,
  ) {
    for (const [name, raw] of Object.entries(entries)) this.modalities.set(name, parseModality(name, raw));
  }

  list(): RemoteModality[] {
    return [...this.modalities.values()];
  }

  get(name: string): RemoteModality | undefined {
    return this.modalities.get(name);
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
