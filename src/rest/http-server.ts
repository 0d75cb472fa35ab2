/**
 * The HTTP server (fastify; the only file that imports it). Bodies are never parsed by the framework: each
 * route streams or reads its body itself (a DICOM upload goes to the store as a stream). Orthanc's rules apply:
 * `RemoteAccessAllowed` (loopback clients only when false), `AuthenticationEnabled` with `RegisteredUsers`
 * (HTTP Basic, 401 with `WWW-Authenticate`), Orthanc's error JSON for every failure (`HttpDescribeErrors`), HTTPS
 * (`Ssl*`, loaded by `https.ts`), `KeepAlive` / `KeepAliveTimeout`, `HttpCompressionEnabled`, `TcpNoDelay` and
 * `HttpRequestTimeout`.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';
import { deflate, gzip } from 'node:zlib';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AppContext } from '../app/context.js';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { errorBody } from './errors.js';
import { loadHttps, type Https } from './https.js';
import { registerArchiveRoutes } from './routes/archive.js';
import { registerPeerRoutes } from './routes/peers.js';
import { registerAttachmentRoutes } from './routes/attachments.js';
import { registerLabelRoutes } from './routes/labels.js';
import { registerMetadataRoutes } from './routes/metadata.js';
import { registerContentRoutes } from './routes/content.js';
import { registerDicomWebRoutes } from './routes/dicomweb.js';
import { registerChangesRoutes } from './routes/changes.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerModalityRoutes } from './routes/modalities.js';
import { registerQueryRoutes } from './routes/queries.js';
import { registerResourceRoutes } from './routes/resources.js';
import { registerSystemRoutes } from './routes/system.js';
import { registerToolsRoutes } from './routes/tools.js';

const log = logger('http');

export type HttpServer = FastifyInstance;

/** What a route module receives: the app context and the helpers every route shares. */
export interface RouteContext {
  app: FastifyInstance;
  ctx: AppContext;
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1' || address.startsWith('127.');
}

function checkBasicAuth(header: string | undefined, users: Readonly<Record<string, string>>): string | undefined {
  if (!header || !header.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  const expected = Object.prototype.hasOwnProperty.call(users, user) ? users[user] : undefined;
  if (expected === undefined) return undefined;
  const a = Buffer.from(password);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b) ? user : undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated user (HTTP Basic), '' when authentication is off. */
    httpUsername: string;
  }
  interface FastifyInstance {
    /** `HttpDescribeErrors`: error answers carry Orthanc's error JSON (otherwise the status code alone). */
    httpDescribeErrors: boolean;
  }
}

export interface HttpServerOptions {
  /** HTTPS as `loadHttps` gives it (`pacsnode serve` loads it first); by default loaded here when `SslEnabled`. */
  https?: Https;
}

export function buildHttpServer(ctx: AppContext, options: HttpServerOptions = {}): FastifyInstance {
  const { config } = ctx;
  let https = options.https;
  if (!https && config.SslEnabled) {
    https = loadHttps(config);
    for (const w of https.warnings) log.warn(w);
  }
  // Orthanc's KeepAlive / KeepAliveTimeout (civetweb's keep_alive_timeout_ms): 0 s closes every connection after
  // its answer, like KeepAlive false. Node announces the timeout in a `Keep-Alive: timeout=N` header, as Orthanc.
  const keepAlive = config.KeepAlive && config.KeepAliveTimeout > 0;
  const serverOptions = {
    logger: false,
    // DICOMweb paths carry long UIDs.
    routerOptions: { maxParamLength: 1024 },
    // Bodies are read by the routes themselves (streamed), never buffered by the framework.
    bodyLimit: Number.MAX_SAFE_INTEGER,
    forceCloseConnections: 'idle' as const,
    keepAliveTimeout: Math.max(1, config.KeepAliveTimeout) * 1000,
    // HttpRequestTimeout: the sockets' inactivity timeout, refined by `stallTimeout` below.
    connectionTimeout: config.HttpRequestTimeout * 1000,
  };
  // With `https`, fastify's instance is typed over https.Server; the routes only see what both servers share.
  const app = https ? (Fastify({ ...serverOptions, https: https.options }) as unknown as FastifyInstance) : Fastify(serverOptions);
  app.decorateRequest('httpUsername', '');
  app.decorate('httpDescribeErrors', config.HttpDescribeErrors);
  app.server.on('connection', (socket: Socket) => socket.setNoDelay(config.TcpNoDelay));
  if (config.HttpRequestTimeout > 0) stallTimeout(app.server);
  if (https) {
    // A failed handshake (plain HTTP on the HTTPS port, a refused client certificate) has no HTTP answer: a log line.
    app.server.on('tlsClientError', (error: Error & { reason?: string }, socket: Socket) => {
      // OpenSSL's `reason` ("http request", "peer did not return a certificate") reads better than its message.
      log.verbose(`TLS handshake with ${socket.remoteAddress ?? 'a client'} failed: ${error.reason ?? error.message}`);
      socket.destroy();
    });
  }
  app.removeAllContentTypeParsers();
  // Leave the body unread: routes consume `request.raw` as a stream.
  app.addContentTypeParser('*', (_request: FastifyRequest, _payload: IncomingMessage, done: (err: Error | null, body?: unknown) => void) =>
    done(null, undefined),
  );

  // The hooks take callbacks rather than being async: no promise and microtask hop per request and hook.
  app.addHook('onRequest', (request, reply, done) => {
    // Orthanc's order: remote access, then credentials; the size of the body only matters to an authorized client.
    if (!config.RemoteAccessAllowed && !isLoopback(request.socket.remoteAddress)) {
      sendError(reply, request, new PacsError('ForbiddenAccess', 'remote access is not allowed (RemoteAccessAllowed is false)'));
      return;
    }
    if (config.AuthenticationEnabled) {
      const user = checkBasicAuth(request.headers.authorization, config.RegisteredUsers);
      if (user === undefined) {
        reply.header('WWW-Authenticate', `Basic realm="${config.Name.replace(/"/g, '')}"`);
        sendError(reply, request, new PacsError('Unauthorized'));
        return;
      }
      request.httpUsername = user;
    }
    const maxBody = config.MaximumHttpBodySize * 1024 * 1024;
    const declared = Number(request.headers['content-length'] ?? 0);
    if (maxBody > 0 && declared > maxBody) {
      sendError(reply, request, tooLarge(maxBody));
      return;
    }
    done();
  });

  // While stopping, answers to requests still in flight close their connection, so the process can exit at once.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing || !keepAlive) reply.header('Connection', 'close');
    done(null, payload);
  });
  if (config.HttpCompressionEnabled) app.addHook('onSend', compressAnswer);

  // Checked per request: /tools/log-level may turn it on while the server runs.
  app.addHook('onResponse', (request, reply, done) => {
    if (log.isEnabled('verbose')) log.verbose(`${request.method} ${request.url} -> ${reply.statusCode}`);
    done();
  });

  app.setErrorHandler((error, request, reply) => {
    // A connection closed under the request (the client left, HttpRequestTimeout): nobody to answer, no server fault.
    // (`socket` may already be null here: Node detaches it from a request whose answer has begun.)
    const socket = request.raw.socket as Socket | null;
    if (socket !== null && socket.destroyed && !request.raw.complete) {
      log.verbose(`${request.method} ${request.url}: the connection closed before the request was read (${(error as Error).message})`);
      return;
    }
    if (!(error instanceof PacsError)) log.error(`${request.method} ${request.url}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    void sendError(reply, request, error);
  });

  app.setNotFoundHandler((request, reply) => {
    void sendError(reply, request, new PacsError('UnknownResource', `no route for ${request.method} ${request.url.split('?')[0]}`));
  });

  const routes: RouteContext = { app, ctx };
  registerSystemRoutes(routes);
  registerResourceRoutes(routes);
  registerContentRoutes(routes);
  registerToolsRoutes(routes);
  registerJobRoutes(routes);
  registerModalityRoutes(routes);
  registerQueryRoutes(routes);
  registerChangesRoutes(routes);
  registerMetadataRoutes(routes);
  registerLabelRoutes(routes);
  registerAttachmentRoutes(routes);
  registerArchiveRoutes(routes);
  registerDicomWebRoutes(routes);
  registerPeerRoutes(routes);
  return app;
}

export function tooLarge(maxBytes: number): PacsError {
  return new PacsError('BadRequest', `request body larger than MaximumHttpBodySize (${maxBytes} bytes)`, { httpStatus: 413 });
}

export function sendError(reply: FastifyReply, request: FastifyRequest, error: unknown): FastifyReply {
  const body = errorBody(error, request.method, request.url.split('?')[0] ?? request.url);
  // The body of the request may still be arriving: do not keep reading it.
  if (!request.raw.complete) reply.header('Connection', 'close');
  // HttpDescribeErrors false: Orthanc answers the status code alone, with an empty body.
  if (request.server.httpDescribeErrors === false) return reply.code(body.HttpStatus).send();
  return reply.code(body.HttpStatus).type('application/json').send(JSON.stringify(body, null, 2));
}

const gzipAsync = promisify(gzip);
const deflateAsync = promisify(deflate);

/** Textual answers; Orthanc 1.12.2+ also compresses only "known compressible content types". */
const COMPRESSIBLE = /^\s*(?:text\/|application\/(?:json|xml|javascript|[\w.-]+\+(?:json|xml))\s*(?:;|$))/i;

/**
 * The encoding Orthanc would use for an `Accept-Encoding` header: gzip when offered, else deflate (zlib format, as
 * HTTP's "deflate" is), else none. An encoding offered with `q=0` is refused, as HTTP says.
 */
export function acceptedEncoding(header: string | undefined): 'gzip' | 'deflate' | undefined {
  const offered = new Set<string>();
  for (const item of (header ?? '').split(',')) {
    const [name = '', ...params] = item.split(';').map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    if (name !== '' && !(q !== undefined && Number(q.slice(2)) === 0)) offered.add(name);
  }
  if (offered.has('gzip')) return 'gzip';
  if (offered.has('deflate')) return 'deflate';
  return undefined;
}

/**
 * `HttpCompressionEnabled`: an answer held in memory (JSON, text, XML; not a stream such as a DICOM file or an
 * archive) is compressed when the client accepts gzip or deflate.
 */
async function compressAnswer(request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
  if (payload.length === 0 || reply.hasHeader('content-encoding')) return payload;
  if (!COMPRESSIBLE.test(String(reply.getHeader('content-type') ?? ''))) return payload;
  const encoding = acceptedEncoding(request.headers['accept-encoding']);
  if (encoding === undefined) return payload;
  const compressed = await (encoding === 'gzip' ? gzipAsync : deflateAsync)(payload);
  reply.header('Content-Encoding', encoding);
  const vary = reply.getHeader('vary');
  reply.header('Vary', vary ? `${String(vary)}, Accept-Encoding` : 'Accept-Encoding');
  reply.removeHeader('content-length');
  return compressed;
}

/**
 * Orthanc's `HttpRequestTimeout` is civetweb's `request_timeout_ms`, i.e. SO_RCVTIMEO / SO_SNDTIMEO: a connection
 * whose request stops arriving, or whose client stops reading the answer, for that long is closed; a request the
 * server is still working on (a synchronous C-MOVE, a large archive being prepared) is not. Node's socket timeout
 * (set through fastify's `connectionTimeout`) fires on any inactivity: this decides which case it is.
 */
function stallTimeout(server: Server): void {
  const inFlight = new WeakMap<Socket, IncomingMessage>();
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    inFlight.set(request.socket, request);
    response.once('close', () => {
      if (inFlight.get(request.socket) === request) inFlight.delete(request.socket);
    });
  });
  // With a listener here Node leaves every timed-out socket to it (an idle keep-alive connection included).
  server.on('timeout', (socket: Socket) => {
    const request = inFlight.get(socket);
    const working = request !== undefined && request.complete && !socket.writableNeedDrain;
    if (!working) socket.destroy();
  });
}

/** Starts listening; resolves with the bound port (useful with port 0 in tests). */
export async function startHttpServer(app: FastifyInstance, port: number, host: string): Promise<number> {
  try {
    await app.listen({ port, host });
  } catch (cause) {
    throw new PacsError('HttpPortInUse', `cannot listen on ${host}:${port}`, { cause });
  }
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : port;
}
