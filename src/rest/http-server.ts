/**
 * The HTTP server (fastify; the only file that imports it). Bodies are never parsed by the framework: each
 * route streams or reads its body itself (a DICOM upload goes to the store as a stream). Orthanc's rules apply:
 * `RemoteAccessAllowed` (loopback clients only when false), `AuthenticationEnabled` with `RegisteredUsers`
 * (HTTP Basic, 401 with `WWW-Authenticate`), and Orthanc's error JSON for every failure.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AppContext } from '../app/context.js';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { errorBody } from './errors.js';
import { registerArchiveRoutes } from './routes/archive.js';
import { registerAttachmentRoutes } from './routes/attachments.js';
import { registerLabelRoutes } from './routes/labels.js';
import { registerMetadataRoutes } from './routes/metadata.js';
import { registerContentRoutes } from './routes/content.js';
import { registerChangesRoutes } from './routes/changes.js';
import { registerJobRoutes } from './routes/jobs.js';
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
}

export function buildHttpServer(ctx: AppContext): FastifyInstance {
  const app = Fastify({
    logger: false,
    // DICOMweb paths carry long UIDs.
    routerOptions: { maxParamLength: 1024 },
    // Bodies are read by the routes themselves (streamed), never buffered by the framework.
    bodyLimit: Number.MAX_SAFE_INTEGER,
    forceCloseConnections: 'idle',
  });
  app.decorateRequest('httpUsername', '');
  app.removeAllContentTypeParsers();
  // Leave the body unread: routes consume `request.raw` as a stream.
  app.addContentTypeParser('*', (_request: FastifyRequest, _payload: IncomingMessage, done: (err: Error | null, body?: unknown) => void) =>
    done(null, undefined),
  );

  const { config } = ctx;
  app.addHook('onRequest', async (request, reply) => {
    if (!config.RemoteAccessAllowed && !isLoopback(request.socket.remoteAddress)) {
      return sendError(reply, request, new PacsError('ForbiddenAccess', 'remote access is not allowed (RemoteAccessAllowed is false)'));
    }
    const maxBody = config.MaximumHttpBodySize * 1024 * 1024;
    const declared = Number(request.headers['content-length'] ?? 0);
    if (maxBody > 0 && declared > maxBody) {
      return sendError(reply, request, tooLarge(maxBody));
    }
    if (config.AuthenticationEnabled) {
      const user = checkBasicAuth(request.headers.authorization, config.RegisteredUsers);
      if (user === undefined) {
        reply.header('WWW-Authenticate', `Basic realm="${config.Name.replace(/"/g, '')}"`);
        return sendError(reply, request, new PacsError('Unauthorized'));
      }
      request.httpUsername = user;
    }
    return undefined;
  });

  // While stopping, answers to requests still in flight close their connection, so the process can exit at once.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('Connection', 'close');
    return payload;
  });

  if (log.isEnabled('verbose')) {
    app.addHook('onResponse', async (request, reply) => {
      log.verbose(`${request.method} ${request.url} -> ${reply.statusCode}`);
    });
  }

  app.setErrorHandler((error, request, reply) => {
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
  registerChangesRoutes(routes);
  registerMetadataRoutes(routes);
  registerLabelRoutes(routes);
  registerAttachmentRoutes(routes);
  registerArchiveRoutes(routes);
  return app;
}

export function tooLarge(maxBytes: number): PacsError {
  return new PacsError('BadRequest', `request body larger than MaximumHttpBodySize (${maxBytes} bytes)`, { httpStatus: 413 });
}

export function sendError(reply: FastifyReply, request: FastifyRequest, error: unknown): FastifyReply {
  const body = errorBody(error, request.method, request.url.split('?')[0] ?? request.url);
  // The body of the request may still be arriving: do not keep reading it.
  if (!request.raw.complete) reply.header('Connection', 'close');
  return reply.code(body.HttpStatus).type('application/json').send(JSON.stringify(body, null, 2));
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
