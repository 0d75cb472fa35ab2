/**
 * `pacsnode echo [--aet CALLING] [--aec CALLED] HOST PORT`: a C-ECHO to a DICOM node (what DCMTK's echoscu does).
 * Exit code 0 when the peer answers Success, 1 when it answers something else or stops answering, 2 on bad usage
 * or when no association could be established (connection refused, rejected, timeout).
 */
import { type Command, InvalidArgumentError } from 'commander';
import { echo } from '../dimse/scu/echo.js';
import { loadDicomTls, type DicomTls } from '../net/tls.js';
import { describeStatus, formatStatus, isAssociationError, statusCategory } from '../dimse/scu/session.js';

/** Options shared by the network commands. */
export interface NetworkCliOptions {
  aet: string;
  aec: string;
  timeout: number;
  connectTimeout: number;
  maxPdu: number;
  tls?: boolean;
  tlsCertificate?: string;
  tlsKey?: string;
  tlsTrusted?: string;
  tlsVerify: boolean;
  tlsMinimum?: number;
  /** Set by the pre-action hook from the options above when `--tls` is given. */
  dicomTls?: DicomTls;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) throw new InvalidArgumentError('a TCP port is 1..65535');
  return port;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('a number of seconds >= 0 (0 = no timeout)');
  return n;
}

function parsePdu(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || (n !== 0 && (n < 4096 || n > 0xffffffff))) {
    throw new InvalidArgumentError('a PDU length of 4096 bytes or more (0 = unlimited)');
  }
  return n;
}

function parseAet(value: string): string {
  if (value.length === 0 || value.length > 16 || !/^[\x20-\x5b\x5d-\x7e]+$/.test(value) || value.trim() === '') {
    throw new InvalidArgumentError('an AE title has 1 to 16 characters of the default repertoire, not all spaces, no backslash');
  }
  return value;
}

/** Adds the options every network command takes; bad usage exits 2 (commander's own would be 1). */
export function networkCommand(cmd: Command): Command {
  return cmd
    .option('--aet <title>', 'our (calling) AE title', parseAet, 'PACSNODE')
    .option('--aec <title>', "the peer's (called) AE title", parseAet, 'ANY-SCP')
    .option('--timeout <seconds>', 'DIMSE timeout: waiting for each response', parseSeconds, 30)
    .option('--connect-timeout <seconds>', 'TCP connection and association timeout', parseSeconds, 10)
    .option('--max-pdu <bytes>', 'largest PDU we receive (0 = unlimited)', parsePdu, 16384)
    .option('--tls', 'DICOM over TLS (PS3.15 B.1)')
    .option('--tls-certificate <pem>', 'our certificate, when the peer asks for one (with --tls-key)')
    .option('--tls-key <pem>', 'the private key of --tls-certificate, unencrypted')
    .option('--tls-trusted <pem>', "the CAs the peer's certificate must chain to (default: Node's root CAs)")
    .option('--no-tls-verify', "do not verify the peer's certificate")
    .option('--tls-minimum <n>', "lowest protocol, Orthanc's DicomTlsMinimumProtocolVersion scale 0..5 (0: TLS 1.2)", parseTlsMinimum)
    .hook('preAction', (_command, action) => {
      const opts = action.opts<NetworkCliOptions>();
      if (!opts.tls) {
        if (opts.tlsCertificate || opts.tlsKey || opts.tlsTrusted) usageError(action, '--tls-certificate, --tls-key and --tls-trusted need --tls');
        return;
      }
      try {
        action.setOptionValue(
          'dicomTls',
          loadDicomTls(
            {
              DicomTlsCertificate: opts.tlsCertificate,
              DicomTlsPrivateKey: opts.tlsKey,
              DicomTlsTrustedCertificates: opts.tlsTrusted,
              DicomTlsRemoteCertificateRequired: opts.tlsVerify,
              DicomTlsMinimumProtocolVersion: opts.tlsMinimum ?? 0,
            },
            'requestor',
          ),
        );
      } catch (e) {
        usageError(action, (e as Error).message.replace(/DicomTlsCertificate/g, '--tls-certificate').replace(/DicomTlsPrivateKey/g, '--tls-key').replace(/DicomTlsTrustedCertificates/g, '--tls-trusted'));
      }
    })
    .exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT_OK : EXIT_USAGE));
}

function usageError(command: Command, message: string): never {
  process.stderr.write(`pacsnode ${command.name()}: ${message}\n`);
  process.exit(EXIT_USAGE);
}

function parseTlsMinimum(value: string): number {
  const n = Number(value);
  if (!/^[0-5]$/.test(value)) throw new InvalidArgumentError('0 to 5');
  return n;
}

/** The SCU target of the command line. */
export function cliTarget(host: string, port: number, opts: NetworkCliOptions) {
  return {
    host,
    port,
    callingAet: opts.aet,
    calledAet: opts.aec,
    maxPduLength: opts.maxPdu,
    dimseTimeoutMs: opts.timeout * 1000,
    timeouts: { connectMs: opts.connectTimeout * 1000, responseMs: opts.connectTimeout * 1000 },
    tls: opts.dicomTls,
  };
}

export async function echoCommand(host: string, port: number, opts: NetworkCliOptions): Promise<number> {
  const started = process.hrtime.bigint();
  const where = `${opts.aet} -> ${opts.aec}@${host}:${port}`;
  try {
    const status = await echo(cliTarget(host, port, opts));
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    process.stdout.write(`C-ECHO ${where}: ${formatStatus(status)} ${describeStatus(status, 'C-ECHO')} (${ms.toFixed(1)} ms)\n`);
    return statusCategory(status) === 'success' ? EXIT_OK : EXIT_FAILED;
  } catch (e) {
    process.stderr.write(`pacsnode echo: ${where}: ${(e as Error).message}\n`);
    return isAssociationError(e) ? EXIT_USAGE : EXIT_FAILED;
  }
}

export function registerEchoCommand(program: Command): void {
  networkCommand(
    program
      .command('echo')
      .description('send a C-ECHO (DICOM ping) to a DICOM node')
      .argument('<host>', 'host name or address of the peer')
      .argument('<port>', 'its DICOM port', parsePort),
  ).action(async (host: string, port: number, opts: NetworkCliOptions) => {
    process.exitCode = await echoCommand(host, port, opts);
  });
}
