/**
 * `pacsnode serve`: runs the server in the foreground. SIGINT/SIGTERM stop accepting requests, let in-flight
 * requests and stores finish, close the index, and exit 0.
 */
import { describeConfig, loadConfig } from '../config/load.js';
import { createContext } from '../app/context.js';
import { createDicomHandlers } from '../app/dicom-handlers.js';
import { DicomScpServer } from '../dimse/scp/server.js';
import { logger } from '../core/log.js';
import { loadDicomTls } from '../net/tls.js';
import { buildHttpServer, startHttpServer } from '../rest/http-server.js';
import { loadHttps } from '../rest/https.js';

const log = logger('generic');

export interface ServeOptions {
  config?: string;
}

export async function serve(options: ServeOptions): Promise<void> {
  const { config, warnings } = loadConfig(options.config);
  for (const w of warnings) log.warn(w);
  log.info(`starting pacsnode\n${describeConfig(config)}`);
  // The TLS files are read and checked before anything starts: a bad one stops here, with its key and path.
  const dicomTls = config.DicomServerEnabled && config.DicomTlsEnabled ? loadDicomTls(config, 'acceptor') : undefined;
  const https = config.SslEnabled ? loadHttps(config) : undefined;
  for (const w of https?.warnings ?? []) log.warn(w);
  const ctx = await createContext(config);
  const http = buildHttpServer(ctx, { https });
  const host = config.HttpBindAddress ?? (config.RemoteAccessAllowed ? '0.0.0.0' : '127.0.0.1');
  const port = await startHttpServer(http, config.HttpPort, host);
  log.info(`HTTP server listening on ${https ? 'https' : 'http'}://${host}:${port}/${https ? ` (${https.description})` : ''}`);
  let dicom: DicomScpServer | undefined;
  let dicomPort = 0;
  if (config.DicomServerEnabled) {
    dicom = new DicomScpServer(createDicomHandlers(ctx), {
      aet: config.DicomAet,
      maxPduLength: config.MaximumPduLength,
      idleTimeoutMs: config.DicomScpTimeout * 1000,
      tls: dicomTls,
    });
    dicomPort = await dicom.listen(config.DicomPort);
    log.info(`DICOM server listening on port ${dicomPort}${dicomTls ? ' (TLS only)' : ''}, AET ${config.DicomAet}`);
  }
  // A machine-readable line for scripts and tests that start us with port 0.
  process.stdout.write(`pacsnode ready: http=${port} dicom=${dicomPort}\n`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal} received: finishing in-flight work`);
    try {
      await Promise.all([http.close(), dicom?.close()]);
      await ctx.close();
      log.info('stopped');
      process.exit(0);
    } catch (e) {
      log.error(`error while stopping: ${(e as Error).message}`);
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
