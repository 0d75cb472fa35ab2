/**
 * The acceptor: every connection becomes an `Association` in the acceptor role (the only place besides
 * `connect.ts` and `tls.ts` that touches `node:net` / `node:tls`). What to do with an association request is the
 * caller's business. With `tls`, the server accepts only TLS connections (PS3.15 B.1: a port for TLS alone); an
 * association starts once the handshake has succeeded.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { logger } from '../core/log.js';
import { Association, type AssociationOptions } from './association.js';
import { tlsServerOptions, type DicomTls } from './tls.js';

const log = logger('dicom');

export interface UlServerOptions extends AssociationOptions {
  /** Called for every new association (before its A-ASSOCIATE-RQ arrives). */
  onAssociation: (association: Association) => void;
  /** DICOM over TLS (`net/tls.ts`): only TLS connections are accepted. The handshake must end within ARTIM. */
  tls?: DicomTls;
}

export class UlServer {
  private readonly server: Server;
  readonly associations = new Set<Association>();

  constructor(options: UlServerOptions) {
    const onSocket = (socket: Socket) => {
      const association = new Association(socket, options);
      this.associations.add(association);
      association.on('closed', () => this.associations.delete(association));
      options.onAssociation(association);
    };
    if (options.tls) {
      const server = createTlsServer(
        { ...tlsServerOptions(options.tls), noDelay: true, handshakeTimeout: options.artimTimeoutMs },
        (socket: TLSSocket) => {
          const peer = socket.getPeerX509Certificate();
          log.verbose(
            `TLS connection from ${socket.remoteAddress} (${socket.getProtocol()}` +
              `${peer ? `, client certificate ${peer.subject.replace(/\n/g, ', ')}` : ''})`,
          );
          onSocket(socket);
        },
      );
      // A failed handshake (no or untrusted client certificate, plain TCP, timeout) never becomes an association.
      server.on('tlsClientError', (error, socket) => {
        // A client certificate that does not verify ends the handshake without an OpenSSL error: its reason is here.
        const why = socket.authorizationError
          ? `client certificate refused (${String(socket.authorizationError)})`
          : ((error as { reason?: string }).reason ?? error.message) + // OpenSSL's reason, without its file and line
            ((error as { code?: string }).code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? ' (not a TLS client?)' : '');
        log.warn(`TLS connection from ${socket.remoteAddress ?? 'a client'} refused: ${why}`);
      });
      this.server = server;
    } else {
      this.server = createServer(onSocket);
    }
  }

  /** Resolves with the bound port (useful with port 0). */
  listen(port: number, host?: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  /** Stops accepting connections; established associations are left to finish (`abortAll` ends them). */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  abortAll(): void {
    for (const a of this.associations) a.abort();
  }
}
