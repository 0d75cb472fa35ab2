/**
 * `pacsnode get [--aet] [--aec] [-P|-S] [-L LEVEL] -k KEY=VALUE ... [--out DIR] HOST PORT`: a C-GET (what DCMTK's
 * getscu does): the instances come back on the same association and are written, as received, into DIR as
 * `<SOP Instance UID>.dcm`. Progress goes to stderr (one line per instance), the summary to stdout. Exit code 0
 * when every instance came and was written, 1 when some failed or the peer refused, 2 on bad usage or when no
 * association could be established.
 */
import type { Command } from 'commander';
import { get } from '../dimse/scu/get.js';
import { formatStatus, statusCategory } from '../dimse/scu/session.js';
import { EXIT_FAILED, EXIT_OK, cliTarget, parsePort } from './echo.js';
import { cancelOnInterrupt, queryCommand, queryFromOptions, reportError, type QueryCliOptions } from './find.js';
import { formatCounts, reportRetrieve } from './move.js';

interface GetCliOptions extends QueryCliOptions {
  out: string;
  storageClass: string[];
  transferSyntax: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function getCommand(host: string, port: number, opts: GetCliOptions): Promise<number> {
  const where = `${opts.aet} -> ${opts.aec}@${host}:${port}`;
  let query;
  try {
    query = queryFromOptions(opts);
  } catch (e) {
    return reportError('get', where, e);
  }
  const interrupt = cancelOnInterrupt();
  let received = 0;
  try {
    const summary = await get(cliTarget(host, port, opts), query, {
      into: opts.out,
      signal: interrupt.signal,
      ...(opts.storageClass.length > 0 ? { storageClasses: opts.storageClass } : {}),
      ...(opts.transferSyntax.length > 0 ? { transferSyntaxes: opts.transferSyntax } : {}),
      onPending: (counts) => process.stderr.write(`${formatCounts(counts)}\n`),
      onInstance: (instance) => {
        received++;
        if (statusCategory(instance.status) === 'failure') {
          process.stderr.write(`[${received}] FAILED ${instance.sopInstanceUid}: ${formatStatus(instance.status)} ${instance.message ?? ''}\n`);
        } else process.stderr.write(`[${received}] received ${instance.sopInstanceUid} -> ${instance.path ?? ''}\n`);
      },
    });
    const written = summary.instances.filter((i) => i.path !== undefined).length;
    reportRetrieve('C-GET', where, summary, `; ${written} file${written === 1 ? '' : 's'} written into ${opts.out}`);
    const allWritten = written === summary.instances.length;
    return summary.category === 'success' && allWritten ? EXIT_OK : EXIT_FAILED;
  } catch (e) {
    return reportError('get', where, e);
  } finally {
    interrupt.dispose();
  }
}

export function registerGetCommand(program: Command): void {
  queryCommand(
    program
      .command('get')
      .description('retrieve instances from a DICOM node with C-GET, into a folder')
      .argument('<host>', 'host name or address of the peer')
      .argument('<port>', 'its DICOM port', parsePort)
      .option('--out <dir>', 'the folder to write the instances into (created if need be)', '.')
      .option('--storage-class <uid>', 'a storage SOP Class to accept (replaces the default list); repeat', collect, [])
      .option('--transfer-syntax <uid>', 'a transfer syntax to accept them in (default: the uncompressed ones); repeat', collect, []),
  ).action(async (host: string, port: number, opts: GetCliOptions) => {
    process.exitCode = await getCommand(host, port, opts);
  });
}
