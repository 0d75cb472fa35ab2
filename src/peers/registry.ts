/**
 * Orthanc peers (Orthanc's `OrthancPeers`, WebServiceParameters): other Orthanc or pacsnode servers reached over
 * HTTP(S). A peer is declared in the short form `["http://host:8042/", "user", "password"]` (or just the URL) or
 * the long form `{Url, Username, Password, HttpHeaders, CertificateFile, CertificateKeyFile,
 * CertificateKeyPassword, Pkcs11, Timeout, ...}` (other members are user properties, kept as strings).
 *
 * The registry holds the peers of the configuration, changed by `PUT|DELETE /peers/{id}` in memory only, or, with
 * `OrthancPeersInDatabase`, kept in the index (a `PeersStore`) and read from there at start-up as Orthanc does.
 */
import { existsSync, statSync } from 'node:fs';
import { PacsError } from '../core/errors.js';

export interface OrthancPeer {
  /** The symbolic name (the key in OrthancPeers, the `{id}` of `/peers/{id}`). */
  name: string;
  /** The root of the peer's REST API, with a trailing slash. */
  url: string;
  /** HTTP Basic credentials ('' = none). */
  username: string;
  password: string;
  /** Sent with every request to this peer. */
  httpHeaders: Record<string, string>;
  /** PEM client certificate for HTTPS ('' = none); may hold the key too when `certificateKeyFile` is ''. */
  certificateFile: string;
  certificateKeyFile: string;
  certificateKeyPassword: string;
  pkcs11: boolean;
  /** Seconds; 0 = the global `HttpTimeout`. */
  timeout: number;
  /** Members of the long form that are not Orthanc's, as strings (Orthanc's user properties). */
  userProperties: Record<string, string>;
}

/** Where `OrthancPeersInDatabase` keeps the peers: one JSON document (name -> definition). */
export interface PeersStore {
  load(): string | undefined;
  save(json: string): void;
}

const RESERVED = new Set([
  'CertificateFile',
  'CertificateKeyFile',
  'CertificateKeyPassword',
  'HttpHeaders',
  'Password',
  'Pkcs11',
  'Url',
  'URL',
  'Username',
  'Timeout',
]);

/** RFC 7230 token (a header name) and a header value without control characters but tab. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// eslint-disable-next-line no-control-regex
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;

function bad(details: string): never {
  throw new PacsError('BadFileFormat', details);
}

/** Orthanc's CheckAlphanumeric: letters, digits, '-' and '_'. */
export function checkPeerName(name: string): void {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) {
    bad(`Only alphanumeric, dash characters and underscores are allowed in the names of modalities/peers, but found: ${name}`);
  }
}

/** Orthanc's WebServiceParameters::SetUrl: http(s) only (a URL without scheme is taken as http), a trailing slash. */
function normalizeUrl(where: string, url: unknown): string {
  if (typeof url !== 'string') bad(`${where}: the URL must be a string`);
  if (url === '') bad(`${where}: empty URL`);
  if (url.includes('://') && !url.startsWith('http://') && !url.startsWith('https://')) {
    bad(`${where}: bad URL (only http:// and https:// are allowed): ${url}`);
  }
  try {
    new URL(url.includes('://') ? url : `http://${url}`);
  } catch {
    bad(`${where}: bad URL: ${url}`);
  }
  return url.endsWith('/') ? url : `${url}/`;
}

function optionalString(where: string, o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (v === undefined) return '';
  if (typeof v !== 'string') bad(`${where}.${key} must be a string`);
  return v;
}

/**
 * Parses one peer definition (either form); throws a 400 `PacsError` naming the peer when it is malformed.
 * `where` prefixes the messages (`OrthancPeers.sample` by default).
 */
export function parsePeer(name: string, raw: unknown, where = `OrthancPeers.${name}`): OrthancPeer {
  const peer: OrthancPeer = {
    name,
    url: '',
    username: '',
    password: '',
    httpHeaders: {},
    certificateFile: '',
    certificateKeyFile: '',
    certificateKeyPassword: '',
    pkcs11: false,
    timeout: 0,
    userProperties: {},
  };
  if (Array.isArray(raw)) {
    if (raw.length === 2) bad(`${where}: the HTTP password is not provided (expected ["url"] or ["url", "username", "password"])`);
    if (raw.length !== 1 && raw.length !== 3) bad(`${where} must be ["url"], ["url", "username", "password"] or an object`);
    peer.url = normalizeUrl(where, raw[0]);
    if (raw.length === 3) {
      if (typeof raw[1] !== 'string' || typeof raw[2] !== 'string') bad(`${where}: the username and password must be strings`);
      peer.username = raw[1];
      peer.password = raw[2];
    }
  } else if (raw !== null && typeof raw === 'object') {
    const o = raw as Record<string, unknown>;
    const url = optionalString(where, o, 'Url');
    peer.url = normalizeUrl(where, url === '' ? (o.URL ?? '') : url);
    peer.username = optionalString(where, o, 'Username');
    peer.password = optionalString(where, o, 'Password');
    peer.certificateFile = optionalString(where, o, 'CertificateFile');
    if (peer.certificateFile !== '') {
      peer.certificateKeyFile = optionalString(where, o, 'CertificateKeyFile');
      peer.certificateKeyPassword = optionalString(where, o, 'CertificateKeyPassword');
    }
    if (o.Pkcs11 !== undefined) {
      if (typeof o.Pkcs11 !== 'boolean') bad(`${where}.Pkcs11 must be a Boolean`);
      peer.pkcs11 = o.Pkcs11;
    }
    if (o.Timeout !== undefined) {
      if (typeof o.Timeout !== 'number' || !Number.isSafeInteger(o.Timeout) || o.Timeout < 0) {
        bad(`${where}.Timeout must be a non-negative integer (seconds)`);
      }
      peer.timeout = o.Timeout;
    }
    if (o.HttpHeaders !== undefined) {
      const h = o.HttpHeaders;
      if (h === null || typeof h !== 'object' || Array.isArray(h)) bad(`${where}.HttpHeaders must be an object of header -> value`);
      for (const [key, value] of Object.entries(h as Record<string, unknown>)) {
        if (!HEADER_NAME.test(key)) bad(`${where}.HttpHeaders: bad header name ${JSON.stringify(key)}`);
        if (typeof value !== 'string' || !HEADER_VALUE.test(value)) bad(`${where}.HttpHeaders.${key} must be a string without control characters`);
        peer.httpHeaders[key] = value;
      }
    }
    for (const [key, value] of Object.entries(o)) {
      if (RESERVED.has(key)) continue;
      if (typeof value === 'string') peer.userProperties[key] = value;
      else if (typeof value === 'boolean') peer.userProperties[key] = value ? '1' : '0';
      else if (typeof value === 'number' && Number.isInteger(value)) peer.userProperties[key] = String(value);
      else bad(`${where}: user-defined properties associated with a Web service must be strings: ${key}`);
    }
  } else {
    bad(`${where} must be ["url"], ["url", "username", "password"] or an object`);
  }
  if (peer.username === '' && peer.password !== '') bad(`${where}: a password without a username`);
  return peer;
}

function needsAdvancedFormat(peer: OrthancPeer): boolean {
  return (
    peer.certificateFile !== '' ||
    peer.certificateKeyFile !== '' ||
    peer.certificateKeyPassword !== '' ||
    peer.pkcs11 ||
    Object.keys(peer.httpHeaders).length > 0 ||
    Object.keys(peer.userProperties).length > 0 ||
    peer.timeout !== 0
  );
}

/**
 * The URL as answers show it: a password written in it (`http://user:secret@host/`, sent as Basic credentials) is
 * masked as `***`, like the `Password` field; the URL kept for sending is unchanged. (Orthanc shows it as it is.)
 */
export function publicUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i.exec(url);
  return m ? `${m[1]}:***@${url.slice(m[0].length)}` : url;
}

/**
 * Orthanc's WebServiceParameters::Serialize: the short form when it is enough (unless `forceAdvanced`), with or
 * without the passwords (an omitted password is '' in the short form, absent in the long one).
 */
export function serializePeer(peer: OrthancPeer, options: { forceAdvanced: boolean; includePasswords: boolean }): unknown {
  const hasCredentials = peer.username !== '' || peer.password !== '';
  const url = options.includePasswords ? peer.url : publicUrl(peer.url);
  if (!options.forceAdvanced && !needsAdvancedFormat(peer)) {
    return hasCredentials ? [url, peer.username, options.includePasswords ? peer.password : ''] : [url];
  }
  const out: Record<string, unknown> = { Url: url };
  if (hasCredentials) {
    out.Username = peer.username;
    if (options.includePasswords) out.Password = peer.password;
  }
  if (peer.certificateFile !== '') out.CertificateFile = peer.certificateFile;
  if (peer.certificateKeyFile !== '') out.CertificateKeyFile = peer.certificateKeyFile;
  if (peer.certificateKeyPassword !== '' && options.includePasswords) out.CertificateKeyPassword = peer.certificateKeyPassword;
  out.Pkcs11 = peer.pkcs11;
  out.Timeout = peer.timeout;
  out.HttpHeaders = { ...peer.httpHeaders };
  Object.assign(out, peer.userProperties);
  return out;
}

/**
 * Orthanc's WebServiceParameters::FormatPublic (`/peers?expand`, `/peers/{id}/configuration`): secrets as null,
 * the names of the HTTP headers without their values.
 */
export function formatPublic(peer: OrthancPeer): Record<string, unknown> {
  const out: Record<string, unknown> = { Url: publicUrl(peer.url) };
  if (peer.username !== '') {
    out.Username = peer.username;
    out.Password = null;
  }
  if (peer.certificateFile !== '') {
    out.CertificateFile = peer.certificateFile;
    out.CertificateKeyFile = null;
    out.CertificateKeyPassword = null;
  }
  out.Pkcs11 = peer.pkcs11;
  out.Timeout = peer.timeout;
  out.HttpHeaders = Object.keys(peer.httpHeaders);
  Object.assign(out, peer.userProperties);
  return out;
}

/** Orthanc's CheckClientCertificate: the certificate (and key) files of a peer defined through the REST API exist. */
function checkClientCertificate(peer: OrthancPeer): void {
  const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
  if (peer.certificateFile !== '') {
    if (!isFile(peer.certificateFile)) bad(`cannot open the certificate file of peer "${peer.name}": ${peer.certificateFile}`);
    if (peer.certificateKeyFile !== '' && !isFile(peer.certificateKeyFile)) {
      bad(`cannot open the key file of peer "${peer.name}": ${peer.certificateKeyFile}`);
    }
  }
}

/** The known peers, by symbolic name. */
export class PeerRegistry {
  private readonly peers = new Map<string, OrthancPeer>();

  /**
   * `configured` is `OrthancPeers` (already validated). With a `store` (OrthancPeersInDatabase), the peers are
   * read from the store instead, as Orthanc does: the configuration's peers are then not used.
   */
  constructor(
    configured: Readonly<Record<string, unknown>>,
    private readonly store?: PeersStore,
  ) {
    let source: Record<string, unknown> = { ...configured };
    let where = 'OrthancPeers';
    if (store) {
      const saved = store.load();
      where = 'the peers saved in the index (OrthancPeersInDatabase)';
      source = {};
      if (saved !== undefined) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(saved);
        } catch {
          throw new PacsError('InternalError', `cannot read ${where}: not JSON`);
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
          throw new PacsError('InternalError', `cannot read ${where}: not an object`);
        }
        source = parsed as Record<string, unknown>;
      }
    }
    for (const [name, raw] of Object.entries(source)) {
      checkPeerName(name);
      this.peers.set(name, parsePeer(name, raw, `${where}: ${name}`));
    }
  }

  /** The names, sorted (as Orthanc lists them). */
  names(): string[] {
    return [...this.peers.keys()].sort();
  }

  lookup(name: string): OrthancPeer | undefined {
    return this.peers.get(name);
  }

  /** The peer of this name; 404 `Unknown resource` otherwise. */
  get(name: string): OrthancPeer {
    const peer = this.peers.get(name);
    if (!peer) throw new PacsError('UnknownResource', `No peer with symbolic name: ${name}`);
    return peer;
  }

  /** `PUT /peers/{name}`: defines or replaces a peer (kept in the index with OrthancPeersInDatabase). */
  put(name: string, raw: unknown): OrthancPeer {
    checkPeerName(name);
    const peer = parsePeer(name, raw, `peer "${name}"`);
    checkClientCertificate(peer);
    this.peers.set(name, peer);
    this.save();
    return peer;
  }

  /** `DELETE /peers/{name}`; 404 `Accessing an inexistent item` for an unknown peer. */
  delete(name: string): void {
    if (!this.peers.delete(name)) throw new PacsError('InexistentItem', `Unknown Orthanc peer: ${name}`);
    this.save();
  }

  private save(): void {
    if (!this.store) return;
    const out: Record<string, unknown> = {};
    for (const name of this.names()) {
      out[name] = serializePeer(this.peers.get(name)!, { forceAdvanced: false, includePasswords: true });
    }
    this.store.save(JSON.stringify(out));
  }
}
