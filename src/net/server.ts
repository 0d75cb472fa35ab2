/**
 * The TCP acceptor: every connection becomes an `Association` in the acceptor role (the only place besides
 * `connect.ts` that touches `node:net`). What to do with an association request is the caller's business.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Association, type AssociationOptions } from './association.js';

export interface UlServerOptions extends AssociationOptions {
  /** Called for every new association (before its A-ASSOCIATE-RQ arrives). */
  onAssociation: (association: Association) => void;
}

export class UlServer {
  private readonly server: Server;
  readonly associations = new Set<Association>();

  constructor(options: UlServerOptions) {
    this.server = createServer((socket: Socket) => {
      const association = new Association(socket, options);
      this.associations.add(association);
      association.on('closed', () => this.associations.delete(association));
      options.onAssociation(association);
    });
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
