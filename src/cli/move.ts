/**
 * `pacsnode move [--aet] [--aec] [-P|-S] --dest AET [-L LEVEL] -k KEY=VALUE ... HOST PORT`: a C-MOVE (what DCMTK's
 * movescu does): the peer sends what the unique keys designate to the destination AE title, which it must know.
 * Progress (each pending response) goes to stderr, the summary to stdout. Exit code 0 when every sub-operation
 * succeeded, 1 when some failed or the peer refused (unknown destination A801...), 2 on bad usage or when no
 * association could be established.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { move, type RetrieveCounts, type RetrieveSummary } from '../dimse/scu/move.js';
import { describeStatus, formatStatus } from '../dimse/scu/session.js';
import { EXIT_FAILED, EXIT_OK, cliTarget, parsePort } from './echo.js';
import { cancelOnInterrupt, queryCommand, queryFromOptions, reportError, type QueryCliOptions } from './find.js';

interface MoveCliOptions extends QueryCliOptions {
  dest: string;
}

function parseDestination(value: string): string {
  if (value.length === 0 || value.length > 16 || !/^[\x20-\x5b\x5d-\x7e]+$/.test(value) || value.trim() === '') {
    throw new InvalidArgumentError('an AE title has 1 to 16 characters of the default repertoire, not all spaces, no backslash');
  }
  return value;
}

export function formatCounts(counts: RetrieveCounts): string {
  const remaining = counts.remaining !== undefined ? `remaining ${counts.remaining}, ` : '';
  return `${remaining}completed ${counts.completed}, failed ${counts.failed}, warning ${counts.warning}`;
}

/** The summary line, and the failed instances (stderr). */
export function reportRetrieve(service: 'C-MOVE' | 'C-GET', what: string, summary: RetrieveSummary, extra = ''): void {
  const comment = summary.errorComment ? ` (${summary.errorComment})` : '';
  process.stdout.write(
    `${service} ${what}: ${formatStatus(summary.status)} ${describeStatus(summary.status, service)}${comment}: ${formatCounts(summary.counts)}${extra}\n`,
  );
  for (const uid of summary.failedSopInstanceUids) process.stderr.write(`failed: ${uid}\n`);
}

export async function moveCommand(host: string, port: number, opts: MoveCliOptions): Promise<number> {
  const where = `${opts.aet} -> ${opts.aec}@${host}:${port}`;
  let query;
  try {
    query = queryFromOptions(opts);
  } catch (e) {
    return reportError('move', where, e);
  }
  const interrupt = cancelOnInterrupt();
  try {
    const summary = await move(
      cliTarget(host, port, opts),
      { ...query, destinationAet: opts.dest },
      { signal: interrupt.signal, onPending: (counts) => process.stderr.write(`${formatCounts(counts)}\n`) },
    );
    reportRetrieve('C-MOVE', `${where} to ${opts.dest}`, summary);
    return summary.category === 'success' ? EXIT_OK : EXIT_FAILED;
  } catch (e) {
    return reportError('move', where, e);
  } finally {
    interrupt.dispose();
  }
}

export function registerMoveCommand(program: Command): void {
  queryCommand(
    program
      .command('move')
      .description('have a DICOM node send instances to a destination AE title with C-MOVE')
      .argument('<host>', 'host name or address of the peer')
      .argument('<port>', 'its DICOM port', parsePort)
      .requiredOption('--dest <title>', 'the move destination: an AE title the peer knows (DCMTK movescu -aem)', parseDestination),
  ).action(async (host: string, port: number, opts: MoveCliOptions) => {
    process.exitCode = await moveCommand(host, port, opts);
  });
}
