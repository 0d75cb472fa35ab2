/**
 * The HTTP(S) client towards Orthanc peers (Orthanc's HttpClient over WebServiceParameters), on Node's `node:http`
 * and `node:https`: HTTP Basic credentials, the peer's `HttpHeaders`, HTTPS with `HttpsCACertificates` and
 * `HttpsVerifyPeers`, client certificates (`CertificateFile`, `CertificateKeyFile`, `CertificateKeyPassword`),
 * `HttpProxy` (absolute-form requests for http:// peers, a CONNECT tunnel for https:// ones), and a timeout:
 * `HttpTimeout` (or the peer's own `Timeout`) seconds without any progress (connecting, sending or receiving)
 * fail the request with a clear error, so that a request never hangs.
 *
 * Request bodies may be streams (a stored file is sent as it is read from disk; the caller closes or drains its
 * stream after a failure); answers are read whole (a peer answers small JSON documents).
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { PacsError } from '../core/errors.js';
import { PACSNODE_VERSION } from '../core/version.js';
import type { OrthancPeer } from './registry.js';

/** The global settings of HTTP requests to peers (Orthanc's configuration keys). */
export interface PeerHttpSettings {
  /** `HttpTimeout`, seconds without progress before a request fails; 0 = no timeout. */
  timeoutSeconds: number;
  /** `HttpsVerifyPeers`: the certificate of an https:// peer must be valid and trusted. */
  verifyPeers: boolean;
  /** `HttpsCACertificates`: PEM bundle of the CAs trusted for https:// peers ('' = Node's bundled roots). */
  caCertificates: string;
  /** `HttpProxy`: `http://[user:password@]host:port` ('' = none; a value without scheme is taken as http). */
  proxy: string;
}

export interface PeerRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Relative to the peer's URL, without a leading slash (e.g. `instances`). */
  path: string;
  /** A Buffer, or a stream (then give `contentLength` when known; otherwise the body is sent chunked). */
  body?: Buffer | Readable;
  contentLength?: number;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface PeerResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Answers larger than this are refused (a peer answers small JSON documents). */
const MAX_ANSWER = 64 << 20;

const TLS_TRUST_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
]);

const MAX_TIMER_SECONDS = 2147483;

class PeerTimeoutError extends Error {
  constructor(seconds: number, source: string) {
    super(`no progress for ${seconds} s (${source}): the peer did not answer in time`);
    this.name = 'PeerTimeoutError';
  }
}

function readPem(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new PacsError('InexistentFile', `${what}: cannot read ${path} (${(e as Error).message})`, { httpStatus: 500 });
  }
}

/** The URL of a peer (a URL without scheme is taken as http, as by libcurl). */
export function peerBaseUrl(peer: OrthancPeer): URL {
  return new URL(peer.url.includes('://') ? peer.url : `http://${peer.url}`);
}

/** A URL as shown in messages: without credentials. */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}${url.search}`;
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/**
 * Creates the clients of peers; holds what they share (the settings, the CA bundle once read). One per
 * application context.
 */
export class PeerHttp {
  private ca: Buffer | undefined;

  constructor(readonly settings: Readonly<PeerHttpSettings>) {}

  /** A client for one peer (keeps its connection open between requests until `close()`). */
  client(peer: OrthancPeer): PeerClient {
    return new PeerClient(peer, this);
  }

  /** The CA bundle of HttpsCACertificates, read on first use; undefined = Node's bundled roots. */
  caBundle(): Buffer | undefined {
    if (this.settings.caCertificates === '') return undefined;
    return (this.ca ??= readPem('HttpsCACertificates', this.settings.caCertificates));
  }
}

export class PeerClient {
  private agent: http.Agent | undefined;
  private closed = false;

  constructor(
    readonly peer: OrthancPeer,
    private readonly owner: PeerHttp,
  ) {}

  /** The seconds without progress after which a request fails (the peer's Timeout, else HttpTimeout); 0 = none. */
  get timeoutSeconds(): number {
    // Capped at what Node's timers hold (2^31 - 1 ms): a larger value would fire at once.
    return Math.min(MAX_TIMER_SECONDS, this.peer.timeout > 0 ? this.peer.timeout : this.owner.settings.timeoutSeconds);
  }

  /** Closes the kept-alive connection. */
  close(): void {
    this.closed = true;
    this.agent?.destroy();
    this.agent = undefined;
  }

  /** The URL of a path of the peer (relative to its URL). */
  url(path: string): URL {
    return new URL(path, peerBaseUrl(this.peer));
  }

  /**
   * Sends a request and reads the whole answer, whatever its status (the caller decides what a 4xx means). Fails
   * with a `NetworkProtocol` PacsError naming the peer, the method and the URL when the peer cannot be reached, the
   * TLS handshake fails, the request times out, or the connection breaks.
   */
  request(req: PeerRequest): Promise<PeerResponse> {
    const target = this.url(req.path);
    const what = `${req.method} ${displayUrl(target)}`;
    if (this.peer.pkcs11) {
      return Promise.reject(new PacsError('NotImplemented', `peer "${this.peer.name}": PKCS#11 client authentication is not supported`));
    }
    let prepared: ReturnType<PeerClient['prepare']>;
    try {
      prepared = this.prepare(target, req);
    } catch (e) {
      return Promise.reject(e);
    }
    const { options, send, isHttps } = prepared;
    const seconds = this.timeoutSeconds;
    const timeoutSource = this.peer.timeout > 0 ? `Timeout of peer "${this.peer.name}"` : 'HttpTimeout';
    return new Promise<PeerResponse>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        reject(this.describe(e, what, isHttps));
      };
      let r: http.ClientRequest;
      // The socket's timeout is set before it connects (the `timeout` option), so connecting is covered too.
      if (seconds > 0) options.timeout = seconds * 1000;
      try {
        r = send(options);
      } catch (e) {
        fail(e);
        return;
      }
      // Without Nagle's algorithm: a streamed body's last segment would otherwise wait for the peer's delayed ACK
      // (about 40 ms per request).
      r.on('socket', (socket) => socket.setNoDelay(true));
      r.on('timeout', () => {
        const e = new PeerTimeoutError(seconds, timeoutSource);
        fail(e);
        r.destroy(e);
      });
      r.on('error', fail);
      r.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER) {
            const e = new Error(`the answer is larger than ${MAX_ANSWER} bytes`);
            fail(e);
            r.destroy(e);
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('the connection was closed before the end of the answer')));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
      });
      const body = req.body;
      if (body === undefined) r.end();
      else if (Buffer.isBuffer(body)) r.end(body);
      else {
        // The caller owns a stream body: on a failure it is only unpiped (an HTTP request being forwarded must stay
        // readable, so that an error can still be answered on its connection).
        body.once('error', (e) => {
          fail(e);
          r.destroy(e);
        });
        r.once('error', () => body.unpipe(r));
        body.pipe(r);
      }
    });
  }

  private prepare(target: URL, req: PeerRequest) {
    const { peer, owner } = this;
    const settings = owner.settings;
    if (this.closed) throw new PacsError('BadSequenceOfCalls', `the client of peer "${peer.name}" is closed`);
    const isHttps = target.protocol === 'https:';
    const headers: Record<string, string> = { 'User-Agent': `pacsnode/${PACSNODE_VERSION}`, Accept: 'application/json' };
    if (peer.username !== '') headers.Authorization = basic(peer.username, peer.password);
    else if (target.username !== '') headers.Authorization = basic(decodeURIComponent(target.username), decodeURIComponent(target.password));
    Object.assign(headers, peer.httpHeaders, req.headers);
    if (Buffer.isBuffer(req.body)) headers['Content-Length'] = String(req.body.length);
    else if (req.body !== undefined && req.contentLength !== undefined) headers['Content-Length'] = String(req.contentLength);
    else if (req.body === undefined && req.method !== 'GET') headers['Content-Length'] = '0';

    const tlsOptions: tls.ConnectionOptions = {};
    if (isHttps) {
      tlsOptions.rejectUnauthorized = settings.verifyPeers;
      const ca = owner.caBundle();
      if (ca) tlsOptions.ca = ca;
      if (peer.certificateFile !== '') {
        tlsOptions.cert = readPem(`CertificateFile of peer "${peer.name}"`, peer.certificateFile);
        tlsOptions.key =
          peer.certificateKeyFile !== '' ? readPem(`CertificateKeyFile of peer "${peer.name}"`, peer.certificateKeyFile) : tlsOptions.cert;
        if (peer.certificateKeyPassword !== '') tlsOptions.passphrase = peer.certificateKeyPassword;
      }
      // SNI takes a host name, never an IP address.
      if (isIP(target.hostname) === 0) tlsOptions.servername = target.hostname.replace(/^\[|\]$/g, '');
    }
    const port = Number(target.port || (isHttps ? 443 : 80));
    const hostname = target.hostname.replace(/^\[|\]$/g, '');
    const path = `${target.pathname}${target.search}`;
    const proxy = settings.proxy === '' ? undefined : new URL(settings.proxy.includes('://') ? settings.proxy : `http://${settings.proxy}`);
    const proxyAuth = proxy && proxy.username !== '' ? basic(decodeURIComponent(proxy.username), decodeURIComponent(proxy.password)) : undefined;

    if (proxy && !isHttps) {
      // Absolute-form request to the proxy (RFC 7230 §5.3.2).
      if (proxyAuth) headers['Proxy-Authorization'] = proxyAuth;
      headers.Host = target.host;
      this.agent ??= new http.Agent({ keepAlive: true, maxSockets: 1 });
      const options: http.RequestOptions = {
        host: proxy.hostname.replace(/^\[|\]$/g, ''),
        port: Number(proxy.port || 80),
        method: req.method,
        path: target.href.replace(/\/\/[^/@]*@/, '//'),
        headers,
        agent: this.agent,
        signal: req.signal,
      };
      return { options, send: (o: http.RequestOptions) => http.request(o), isHttps };
    }
    if (proxy && isHttps) {
      // A CONNECT tunnel through the proxy, then TLS with the peer (a new tunnel per request).
      const seconds = this.timeoutSeconds;
      const options: https.RequestOptions = {
        host: hostname,
        port,
        method: req.method,
        path,
        headers,
        signal: req.signal,
        createConnection: ((_o: unknown, done: (err: Error | null, socket?: Socket) => void) => {
          const connect = http.request({
            host: proxy.hostname.replace(/^\[|\]$/g, ''),
            port: Number(proxy.port || 80),
            method: 'CONNECT',
            path: `${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`,
            headers: { Host: `${hostname}:${port}`, ...(proxyAuth ? { 'Proxy-Authorization': proxyAuth } : {}) },
            signal: req.signal,
          });
          if (seconds > 0) connect.setTimeout(seconds * 1000, () => connect.destroy(new PeerTimeoutError(seconds, 'HttpTimeout, through HttpProxy')));
          connect.once('error', (e) => done(e));
          connect.once('connect', (res, socket) => {
            if (res.statusCode !== 200) {
              socket.destroy();
              done(new Error(`the proxy ${proxy.host} answered HTTP ${res.statusCode} to CONNECT ${hostname}:${port}`));
              return;
            }
            done(null, tls.connect({ ...tlsOptions, socket, host: hostname }));
          });
          connect.end();
          return undefined;
        }) as unknown as https.RequestOptions['createConnection'],
      };
      return { options, send: (o: https.RequestOptions) => https.request(o), isHttps };
    }
    if (isHttps) {
      this.agent ??= new https.Agent({ keepAlive: true, maxSockets: 1, ...tlsOptions });
      const options: https.RequestOptions = { host: hostname, port, method: req.method, path, headers, agent: this.agent, signal: req.signal };
      return { options, send: (o: https.RequestOptions) => https.request(o), isHttps };
    }
    this.agent ??= new http.Agent({ keepAlive: true, maxSockets: 1 });
    const options: http.RequestOptions = { host: hostname, port, method: req.method, path, headers, agent: this.agent, signal: req.signal };
    return { options, send: (o: http.RequestOptions) => http.request(o), isHttps };
  }

  /** A network failure as a PacsError naming the peer and what was asked. */
  private describe(e: unknown, what: string, isHttps: boolean): Error {
    if (e instanceof PacsError) return e;
    const err = e as NodeJS.ErrnoException;
    if (err?.name === 'AbortError') return new PacsError('CanceledJob', `peer "${this.peer.name}": ${what}: the request was cancelled`, { cause: e });
    const code = typeof err?.code === 'string' ? err.code : '';
    let reason: string;
    if (e instanceof PeerTimeoutError) reason = e.message;
    else if (code === 'ECONNREFUSED') reason = 'connection refused (is the peer running, and is its URL right?)';
    else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') reason = `unknown host (${err.message})`;
    else if (code === 'ECONNRESET' || code === 'EPIPE') {
      // With TLS 1.3 a client certificate is checked after the client's side of the handshake: a refusal shows as a
      // closed connection.
      const hint = isHttps && this.peer.certificateFile !== '' ? `; over HTTPS, a peer that does not trust our client certificate (${this.peer.certificateFile}) does this` : '';
      reason = `the peer closed the connection (${err.message})${hint}`;
    }
    else if (TLS_TRUST_CODES.has(code)) {
      reason = `the certificate of the peer is not trusted (${code}: ${err.message}): set HttpsCACertificates to the CA that issued it (or, at your own risk, HttpsVerifyPeers to false)`;
    } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') reason = `the certificate of the peer does not name its host (${err.message})`;
    else if (code.includes('ALERT_CERTIFICATE_REQUIRED')) {
      reason = `the peer requires a client certificate: set CertificateFile and CertificateKeyFile in the definition of peer "${this.peer.name}"`;
    } else if (code.includes('ALERT_UNKNOWN_CA') || code.includes('ALERT_BAD_CERTIFICATE') || code.includes('ALERT_CERTIFICATE_UNKNOWN')) {
      reason = `the peer refused our client certificate (${this.peer.certificateFile || 'none'}): it does not trust the CA that issued it`;
    } else if (isHttps && (code.startsWith('ERR_SSL') || code === 'EPROTO')) {
      reason = `TLS handshake failed (${(err as { reason?: string }).reason ?? err.message.trim()})`;
    }
    else reason = err?.message ?? String(e);
    return new PacsError('NetworkProtocol', `peer "${this.peer.name}": ${what}: ${reason}`, { cause: e });
  }
}

/** A short excerpt of an answer, for error messages. */
export function answerExcerpt(res: PeerResponse): string {
  const text = res.body.toString('utf8').replace(/\s+/g, ' ').trim();
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}

/** Throws `NetworkProtocol` unless the answer is 2xx. */
export function expectSuccess(res: PeerResponse, peer: string, what: string): void {
  if (res.status >= 200 && res.status < 300) return;
  const excerpt = answerExcerpt(res);
  throw new PacsError('NetworkProtocol', `peer "${peer}" answered HTTP ${res.status} to ${what}${excerpt ? `: ${excerpt}` : ''}`);
}
