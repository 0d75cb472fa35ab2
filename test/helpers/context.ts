/** Test contexts: a whole pacsnode (index + storage + store + engine) in a temp folder, and an HTTP server on port 0. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, type AppContext } from '../../src/app/context.js';
import { buildConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { buildHttpServer, startHttpServer, type HttpServer } from '../../src/rest/http-server.js';

export interface TestContext {
  ctx: AppContext;
  dir: string;
  close(): Promise<void>;
}

export async function tempContext(overrides: Partial<Config> = {}): Promise<TestContext> {
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-test-'));
  const { config } = buildConfig({}, 'test', {
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'storage'),
    SyncStorageArea: false,
    HttpPort: 0,
    DicomPort: 0,
    ...overrides,
  });
  const ctx = await createContext(config);
  return {
    ctx,
    dir,
    async close() {
      await ctx.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestServer extends TestContext {
  http: HttpServer;
  url: string;
}

export async function tempServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const t = await tempContext(overrides);
  const http = buildHttpServer(t.ctx);
  const port = await startHttpServer(http, 0, '127.0.0.1');
  return {
    ...t,
    http,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await http.close();
      await t.close();
    },
  };
}
